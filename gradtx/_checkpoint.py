"""Checkpoints of a training state in a plain, safe file format.

``save_checkpoint(path, tree)`` writes any pytree of arrays and numbers
(typically ``{"params": ..., "opt_state": ..., "step": ...}``) to one
``.npz`` file; ``load_checkpoint(path, template)`` reads it back into the
structure of ``template``, usually the state that a fresh ``init`` makes.

The file is an uncompressed zip holding two ``.npy`` arrays: ``data``, the
bytes of every leaf one after another (each starting on a 16-byte boundary),
and ``manifest``, UTF-8 JSON listing each leaf's path
(``['opt_state'].states[0].direction.states[0].mu['w']``), dtype and descr
(``'<f4'``: its byte order), shape, offset in ``data``, and the class names
of the named pytree nodes above it (``ChainState > ScaleByAdamState``), and,
for every ``Packed`` buffer (``gradtx.pack``, ``gradtx.flatten``), the path,
dtype and shape of each parameter packed into it.  No pickle is written or
read, so loading a file never runs code from it; the Python types of the
tree (named tuples, dicts, ...) come from the template, not from the file.
Raw bytes keep every dtype exact, bfloat16 included, and one array instead
of one per leaf keeps a 10,000-leaf state quick to write and read.  Leaves
in another byte order are stored in this machine's; ``float0`` leaves (the
gradients of integer inputs) are stored as their shape; typed PRNG keys
(``jax.random.key``) as their ``key_data`` and the name of their
implementation, and come back as the same keys.

Saving is atomic: the file is written to a temporary name in the same
directory (``.NAME.gradtx-HOST-PID-XXXXXXXX.tmp``: a hash of the machine's
name and the saving process's id), flushed to disk, then renamed over
``path``.  The file keeps the permissions of the one it replaces; a new file
gets those the umask allows.  A crash at any moment leaves either the
previous checkpoint or the new one, never a mix; a temporary file a crashed
save left behind is removed by the next save to the same path, on the same
machine, once its process no longer exists.  The temporary file of a save
still running, however slow, is never removed, nor are those of other
machines or of older gradtx versions (named ``.NAME.gradtx-XXXXXXXX.tmp``).

Loading reads the file as hostile.  Everything is checked against the
template before anything large is read: the zip's directory (a few entries,
a few hundred bytes, checked from its end record before it is read), its
members (exactly the two, stored, not compressed, so there is nothing to
inflate), the sizes they claim, the manifest (bounded in size, every entry
typed, offsets exactly the ones ``save_checkpoint`` writes), and each leaf's
path, node types, dtype, byte order and shape.  A file written before the
manifest recorded node types and byte orders is checked by paths, dtypes
and shapes only (it is read in the byte order the manifest names for the
whole file), so a state of another optimizer whose leaves have the same
paths (adabelief's and yogi's) is told apart in new files only.  The
data is then read in one piece of the size the template implies, its CRC
checked.  Any corrupt, truncated, crafted or mismatched file raises
``CheckpointError`` (and nothing is half-loaded), so a caller can catch it
and fall back to an older checkpoint.

Orbax checks each array's path, shape and dtype, not which parameters were
packed into a ``Packed`` buffer (whose path is only its dtype name,
``['float32']``): a packed model restores through Orbax into another model
whose leaves of each dtype add up to the same size.  Save packed params and
``flatten`` states with ``save_checkpoint``, which records and checks the
packed layout; through Orbax, save ``packed.unpack()`` and ``pack`` again
after restoring.
"""

from __future__ import annotations

import collections
import json
import math
import os
import platform
import re
import stat
import sys
import tempfile
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from ._flat import Packed
from ._paths import path_str
from ._typing import PyTree

_FORMAT = "gradtx.checkpoint"
_VERSION = 1
_ALIGN = 16
_MEMBERS = ("manifest.npy", "data.npy")
_NPY_HEADER_MAX = 4096  # our .npy headers are about 128 bytes
_DIRECTORY_MAX = 65536  # bytes of zip central directory read at most (ours is ~200)
_ENTRIES_MAX = 64  # zip entries listed at most before the members are checked
_INT64 = (-(2**63), 2**63 - 1)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or does not match its template."""


# ----------------------------------------------------------------------------
# What the manifest says about a tree: shared by save and load.


_FLOAT0 = np.dtype(jax.dtypes.float0)
_PLAIN_CONTAINERS = (dict, list, tuple, collections.OrderedDict, collections.defaultdict)


def _is_key(dtype) -> bool:
    return jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _is_plain(dtype: np.dtype) -> bool:
    return dtype.fields is None and dtype.subdtype is None


def _native(dtype: np.dtype) -> np.dtype:
    """A plain dtype in this machine's byte order (structured ones keep theirs: their
    descr records it field by field)."""
    return dtype.newbyteorder("=") if _is_plain(dtype) and not dtype.isnative else dtype


def _dtype_fields(dtype: np.dtype) -> dict:
    """How the manifest names a stored dtype: its name and its descr.

    The descr holds the byte order (``'<f4'``), so bytes are never read in
    another order than they were written in; for a structured dtype it is the
    full field layout, since the name alone does not tell them apart (every
    8-byte one is ``void64``).  ``float0`` (the dtype of a gradient with
    respect to an integer) holds no bytes, and is named only.
    """
    if dtype == _FLOAT0:
        return {"dtype": "float0"}
    if _is_plain(dtype):
        return {"dtype": dtype.name, "descr": dtype.str}
    return {
        "dtype": dtype.name,
        "descr": json.loads(json.dumps(np.lib.format.dtype_to_descr(dtype))),
    }


def _node_types(treedef) -> list[list[str]]:
    """For each leaf, the class names of the pytree nodes above it, outermost first.

    Named tuples, dataclasses, ``Packed`` and other registered nodes are
    named; dicts, lists and tuples are not (the path already shows them, and
    a dict saved and read back as an ``OrderedDict`` is the same state).  Two
    optimizers whose states have the same field names (adabelief's and
    yogi's) differ here.
    """
    out: list[list[str]] = []

    def walk(node, above):
        if jax.tree_util.treedef_is_leaf(node):
            if node.num_leaves:
                out.append(above)
            return
        kind = node.node_data()[0]
        if kind not in _PLAIN_CONTAINERS:
            above = [*above, kind.__name__]
        for child in node.children():
            walk(child, above)

    walk(treedef, [])
    return out


def _entry(name: str, dtype: np.dtype, shape, offset: int, key, types) -> dict:
    """A leaf's manifest entry (``key``: the PRNG implementation of a key leaf)."""
    entry = {"path": name, **_dtype_fields(dtype), "shape": list(shape), "offset": offset}
    if key is not None:
        entry["key"] = key
    entry["types"] = types
    return entry


def _packed_nodes(tree) -> list[dict]:
    """Where each ``Packed`` node sits, and the parameters packed into it.

    A packed buffer's own path is only its dtype (``['float32']``), so two
    models whose leaves of a dtype add up to the same size would load into
    each other's buffers; the leaves' paths, dtypes and shapes tell them apart.
    """
    nodes = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: isinstance(x, Packed))[0]
    out = []
    for path, node in nodes:
        if isinstance(node, Packed):
            layout = node.layout
            out.append(
                {
                    "at": path_str(path) or "<root>",
                    "leaves": [
                        [p, d.name, list(s)]
                        for p, d, s in zip(layout.paths, layout.dtypes, layout.shapes)
                    ],
                }
            )
    return out


def _layout(dtypes_shapes: list) -> tuple[list[int], int]:
    """The offsets ``save_checkpoint`` gives the leaves, and the total size of the data."""
    offsets, offset = [], 0
    for dtype, shape in dtypes_shapes:
        offset += -offset % _ALIGN
        offsets.append(offset)
        offset += dtype.itemsize * math.prod(shape)
    return offsets, offset


# ----------------------------------------------------------------------------
# Saving.


def _host_arrays(owner: str, names: list[str], leaves: list):
    """The leaves as host arrays in native byte order, and each key leaf's implementation.

    A typed PRNG key is stored as its ``key_data`` (uint32) with the name of
    its implementation, and comes back as the same key.
    """
    keys: list[str | None] = [None] * len(leaves)
    leaves = list(leaves)
    for i, (name, leaf) in enumerate(zip(names, leaves)):
        if isinstance(leaf, jax.Array) and _is_key(leaf.dtype):
            keys[i] = str(jax.random.key_impl(leaf))
            leaves[i] = jax.random.key_data(leaf)
            continue
        ok = isinstance(leaf, (jax.Array, np.ndarray, np.generic, bool, int, float, complex))
        if ok and isinstance(leaf, np.ndarray):
            ok = leaf.dtype.kind in "biufcV"
        if not ok:
            raise TypeError(
                f"{owner}: leaf {name} is a {type(leaf).__name__}; a checkpoint "
                f"holds arrays and numbers only (keep other objects out of the "
                f"saved tree)"
            )
        if (
            isinstance(leaf, int)
            and not isinstance(leaf, bool)
            and not (_INT64[0] <= leaf <= _INT64[1])
        ):
            raise ValueError(
                f"{owner}: leaf {name} is the Python int {leaf}, outside the "
                f"int64 range [-2**63, 2**63 - 1] that a checkpoint can store "
                f"(store it as a float, or as several ints)"
            )
        dtype = getattr(leaf, "dtype", None)
        if dtype is not None and np.dtype(dtype).hasobject:
            raise TypeError(
                f"{owner}: leaf {name} has dtype {np.dtype(dtype)}, which holds "
                f"Python objects; a checkpoint stores plain numbers only (its "
                f"bytes would be memory addresses)"
            )
    arrays = [np.asarray(x) for x in jax.device_get(leaves)]  # one transfer for all leaves
    return [a.astype(_native(a.dtype)) if a.dtype != _native(a.dtype) else a for a in arrays], keys


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore, as the standard library does
    os.umask(mask)
    return mask


def _host_tag() -> str:
    """Eight hex digits naming this machine, so that a pid is only judged where it runs."""
    return f"{zlib.crc32(platform.node().encode('utf-8')):08x}"


def _tmp_prefix(base: str) -> str:
    return f".{base}.gradtx-{_host_tag()}-{os.getpid()}-"


def _pid_is_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # it exists but is another user's, or the question failed
        return False
    return False


def _remove_leftovers(directory: str, base: str) -> None:
    """Remove temporary files of saves to this path whose process has died.

    A temporary file is named after the machine and the process writing it;
    it is removed only when that process no longer exists on this machine, so
    a save that is slow (or stalled) never loses its file to another one.
    Files of other machines, other names and other platforms are left alone.
    """
    if os.name != "posix":  # pragma: no cover - os.kill(pid, 0) would end the process
        return
    pattern = re.compile(
        r"\." + re.escape(base) + r"\.gradtx-" + _host_tag() + r"-([0-9]{1,10})-[a-z0-9_]{8}\.tmp\Z"
    )
    try:
        names = os.listdir(directory)
    except OSError:  # pragma: no cover
        return
    for name in names:
        match = pattern.match(name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        if _pid_is_dead(int(match.group(1))):
            try:
                os.remove(os.path.join(directory, name))
            except OSError:  # removed meanwhile
                pass


def _mode_for(path: str) -> int:
    """The mode of the file being replaced, or for a new file what the umask allows."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def save_checkpoint(path: str | os.PathLike[str], tree: PyTree) -> None:
    """Write ``tree`` to ``path`` atomically, as an ``.npz`` file with a JSON manifest.

    Args:
      path: the file to write (replaced if it exists, keeping its
        permissions); its directory must exist.  A new file gets the
        permissions the umask allows (0644 under the usual 022).
      tree: a pytree whose leaves are arrays (any byte order, ``float0``
        and typed PRNG keys included) or numbers, e.g.
        ``{"params": params, "opt_state": opt_state, "step": step}``.
        Packed buffers (``gradtx.pack``, ``gradtx.flatten`` states) are
        saved with the layout they were packed from; Orbax does not keep it
        (see the module docstring).

    Raises:
      TypeError: a leaf is not an array or a number, or holds Python objects.
      ValueError: a leaf is a Python int outside the int64 range.

    Example:
      >>> import os, tempfile, jax.numpy as jnp, gradtx
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> opt = gradtx.adam(0.1)
      >>> state = {"params": params, "opt_state": opt.init(params), "step": 0}
      >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
      >>> gradtx.save_checkpoint(path, state)
      >>> gradtx.tree_get(gradtx.load_checkpoint(path, state)["opt_state"], "mu")
      {'w': Array([0., 0.], dtype=float32)}
    """
    owner = "save_checkpoint"
    path = os.fspath(path)
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    names = [path_str(p) for p, _ in flat]
    arrays, keys = _host_arrays(owner, names, [leaf for _, leaf in flat])
    offsets, nbytes = _layout([(a.dtype, a.shape) for a in arrays])
    types = _node_types(jax.tree.structure(tree))
    entries, chunks, end = [], [], 0
    for name, array, offset, key, above in zip(names, arrays, offsets, keys, types):
        chunks.append(b"\0" * (offset - end))
        entries.append(_entry(name, array.dtype, array.shape, offset, key, above))
        raw = np.ascontiguousarray(array).tobytes()
        chunks.append(raw)
        end = offset + len(raw)
    manifest = json.dumps(
        {
            "format": _FORMAT,
            "version": _VERSION,
            "byteorder": sys.byteorder,
            "nbytes": nbytes,
            "leaves": entries,
            "packed": _packed_nodes(tree),
        }
    )
    data = np.frombuffer(b"".join(chunks), np.uint8)
    manifest = np.frombuffer(manifest.encode("utf-8"), np.uint8)

    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(base), suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600 whatever the umask
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, manifest=manifest, data=data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_directory(directory)
    _remove_leftovers(directory, base)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (where the OS lets a directory be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
