"""Checkpoints of a training state in a plain, safe file format.

``save_checkpoint(path, tree)`` writes any pytree of arrays and numbers
(typically ``{"params": ..., "opt_state": ..., "step": ...}``) to one
``.npz`` file; ``load_checkpoint(path, template)`` reads it back into the
structure of ``template``, usually the state that a fresh ``init`` makes.

The file is a zip holding two ``.npy`` arrays: ``data``, the bytes of every
leaf one after another (each starting on a 16-byte boundary), and
``manifest``, UTF-8 JSON listing each leaf's path
(``['opt_state'].states[0].direction.states[0].mu['w']``), dtype, shape and offset in ``data``.
No pickle is written or read (``allow_pickle=False``), so loading a file
never runs code from it; the Python types of the tree (named tuples, dicts,
...) come from the template, not from the file.  Raw bytes keep every dtype
exact, bfloat16 included, and one array instead of one per leaf keeps a
10,000-leaf state quick to write and read.

Saving is atomic: the file is written to a temporary name in the same
directory, flushed to disk, then renamed over ``path``.  A crash at any
moment leaves either the previous checkpoint or the new one, never a mix
(a crash may leave the temporary file, ``.NAME.*.tmp``, behind).  Loading
checks everything (the zip's CRC, the manifest, paths, dtypes, shapes,
offsets) before it builds the result, so a corrupt, truncated or mismatched
file raises ``CheckpointError`` and nothing is half-loaded.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import zipfile

import jax
import numpy as np

from ._paths import path_str
from ._typing import PyTree

_FORMAT = "gradtx.checkpoint"
_VERSION = 1
_ALIGN = 16
_READ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or does not match its template."""


def _host_arrays(owner: str, names: list[str], leaves: list) -> list[np.ndarray]:
    for name, leaf in zip(names, leaves):
        ok = isinstance(leaf, (jax.Array, np.ndarray, np.generic, bool, int, float, complex))
        if ok and isinstance(leaf, np.ndarray):
            ok = leaf.dtype.kind in "biufcV"
        if not ok:
            raise TypeError(f"{owner}: leaf {name} is a {type(leaf).__name__}; a checkpoint "
                            f"holds arrays and numbers only (keep other objects out of the "
                            f"saved tree)")
    return [np.asarray(x) for x in jax.device_get(leaves)]  # one transfer for all leaves


def save_checkpoint(path: str | os.PathLike[str], tree: PyTree) -> None:
    """Write ``tree`` to ``path`` atomically, as an ``.npz`` file with a JSON manifest.

    Args:
      path: the file to write (replaced if it exists); its directory must exist.
      tree: a pytree whose leaves are arrays or numbers, e.g.
        ``{"params": params, "opt_state": opt_state, "step": step}``.

    Raises:
      TypeError: a leaf is not an array or a number.

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
    arrays = _host_arrays(owner, names, [leaf for _, leaf in flat])
    entries, chunks, offset = [], [], 0
    for name, array in zip(names, arrays):
        pad = -offset % _ALIGN
        chunks.append(b"\0" * pad)
        offset += pad
        entries.append({"path": name, "dtype": array.dtype.name, "shape": list(array.shape),
                        "offset": offset})
        raw = np.ascontiguousarray(array).tobytes()
        chunks.append(raw)
        offset += len(raw)
    manifest = json.dumps({"format": _FORMAT, "version": _VERSION, "byteorder": sys.byteorder,
                           "nbytes": offset, "leaves": entries})
    data = np.frombuffer(b"".join(chunks), np.uint8)
    manifest = np.frombuffer(manifest.encode("utf-8"), np.uint8)

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
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


def _template_dtype_shape(owner: str, path: str, leaf):
    if isinstance(leaf, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct)):
        return np.dtype(leaf.dtype), tuple(leaf.shape)
    if isinstance(leaf, (bool, int, float, complex)):
        return np.asarray(leaf).dtype, ()
    raise TypeError(f"{owner}: template leaf {path} is a {type(leaf).__name__}; the template "
                    f"must hold arrays, numbers or jax.ShapeDtypeStruct (e.g. a fresh init)")


def _describe(dtype, shape) -> str:
    return f"{dtype}{list(shape)}"


def _is_entry(e) -> bool:
    return (isinstance(e, dict) and isinstance(e.get("path"), str)
            and isinstance(e.get("dtype"), str) and isinstance(e.get("shape"), list)
            and all(isinstance(n, int) and n >= 0 for n in e["shape"])
            and isinstance(e.get("offset"), int) and e["offset"] >= 0)


def _read_manifest(owner: str, path: str, npz) -> dict:
    bad = CheckpointError(f"{owner}: {path} has no valid gradtx manifest; it was not written "
                          f"by gradtx.save_checkpoint, or it is corrupt")
    if "manifest" not in npz.files:
        raise bad
    try:
        manifest = json.loads(npz["manifest"].tobytes().decode("utf-8"))
    except _READ_ERRORS as err:
        raise CheckpointError(f"{owner}: {path}: the manifest cannot be read ({err}); the file "
                              f"is corrupt or truncated") from err
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise bad
    if manifest.get("version") != _VERSION:
        raise CheckpointError(f"{owner}: {path} has checkpoint format version "
                              f"{manifest.get('version')!r}; this gradtx reads version {_VERSION}")
    leaves = manifest.get("leaves")
    if not (isinstance(leaves, list) and all(_is_entry(e) for e in leaves)
            and isinstance(manifest.get("nbytes"), int)):
        raise bad
    if manifest.get("byteorder") != sys.byteorder:
        raise CheckpointError(f"{owner}: {path} was written on a {manifest.get('byteorder')}-"
                              f"endian machine; this one is {sys.byteorder}-endian")
    return manifest


def _leaves(n: int) -> str:
    return f"{n} leaf" if n == 1 else f"{n} leaves"


def _check_paths(owner: str, path: str, saved: list[str], expected: list[str]) -> None:
    if saved == expected:
        return
    saved_set, expected_set = set(saved), set(expected)
    missing = [p for p in expected if p not in saved_set]
    extra = [p for p in saved if p not in expected_set]
    problems = []
    if missing:
        problems.append(f"the template has {_leaves(len(missing))} the checkpoint lacks, first "
                        f"{missing[0]}")
    if extra:
        problems.append(f"the checkpoint has {_leaves(len(extra))} the template lacks, first "
                        f"{extra[0]}")
    if not problems:
        first = next(i for i, (a, b) in enumerate(zip(saved, expected)) if a != b)
        problems.append(f"the leaves are in another order: leaf {first} is {saved[first]} in the "
                        f"checkpoint and {expected[first]} in the template")
    raise CheckpointError(f"{owner}: {path} does not match the template: " + "; ".join(problems)
                          + "; was it saved from another model or optimizer?")


def _restore(leaves: list, arrays: list[np.ndarray]) -> list:
    """Each array in the kind of container its template leaf is, moved to devices in bulk.

    A ``jax.Array`` leaf gives its sharding; a ``ShapeDtypeStruct`` without
    one gives the default device, uncommitted, as ``jnp.asarray`` would."""
    out = list(arrays)
    placed, unplaced, shardings = [], [], []
    for i, leaf in enumerate(leaves):
        sharding = getattr(leaf, "sharding", None)
        if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct)):
            if sharding is None:
                unplaced.append(i)
            else:
                placed.append(i)
                shardings.append(sharding)
        elif isinstance(leaf, np.ndarray):
            out[i] = arrays[i].copy()
        elif isinstance(leaf, np.generic):
            out[i] = arrays[i][()]
        else:
            out[i] = type(leaf)(arrays[i].item())
    for indices, where in ((placed, shardings), (unplaced, None)):
        if indices:
            moved = jax.device_put([arrays[i] for i in indices], where)
            for i, array in zip(indices, moved):
                out[i] = array
    return out


def load_checkpoint(path: str | os.PathLike[str], template: PyTree) -> PyTree:
    """Read a checkpoint written by ``save_checkpoint`` into the structure of ``template``.

    Every leaf path, dtype and shape in the file must equal the template's;
    the template supplies the Python types (named tuples, dicts, ...) and
    where arrays live (a ``jax.Array`` leaf gives its sharding; numbers come
    back as numbers).  ``jax.eval_shape(opt.init, params)`` is a template
    that allocates nothing.  Nothing from the file is executed.

    Args:
      path: a file written by ``save_checkpoint``.
      template: a pytree of the same structure, e.g. the freshly initialised
        training state.

    Returns:
      A new pytree shaped like ``template`` holding the saved values.

    Raises:
      FileNotFoundError: there is no file at ``path``.
      CheckpointError: the file is corrupt, truncated, not a gradtx
        checkpoint, or its leaves differ from the template's (the message
        names the first differing path, dtype or shape).
    """
    owner = "load_checkpoint"
    path = os.fspath(path)
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [path_str(p) for p, _ in flat]
    expected = [_template_dtype_shape(owner, n, leaf) for n, (_, leaf) in zip(names, flat)]

    with open(path, "rb") as f:
        try:
            npz = np.load(f, allow_pickle=False)
        except _READ_ERRORS as err:
            raise CheckpointError(f"{owner}: {path} is not a readable checkpoint ({err}); the "
                                  f"file is corrupt, truncated or of another format") from err
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{owner}: {path} holds a single .npy array, not a gradtx "
                                  f"checkpoint (.npz with a manifest)")
        with npz:
            manifest = _read_manifest(owner, path, npz)
            entries = manifest["leaves"]
            _check_paths(owner, path, [e["path"] for e in entries], names)
            mismatched = [f"leaf {e['path']} is {e['dtype']}{e['shape']} in the checkpoint but "
                          f"{_describe(dtype, shape)} in the template"
                          for e, (dtype, shape) in zip(entries, expected)
                          if e["dtype"] != dtype.name or tuple(e["shape"]) != shape]
            if mismatched:
                more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
                raise CheckpointError(f"{owner}: {path} does not match the template: "
                                      f"{mismatched[0]}{more}")
            try:
                data = npz["data"]
            except _READ_ERRORS as err:
                raise CheckpointError(f"{owner}: {path}: the data cannot be read ({err}); the "
                                      f"file is corrupt or truncated") from err
    if data.dtype != np.uint8 or data.shape != (manifest["nbytes"],):
        raise CheckpointError(f"{owner}: {path}: the data is {_describe(data.dtype, data.shape)} "
                              f"but the manifest says uint8[{manifest['nbytes']}]; the file is "
                              f"corrupt")
    arrays = []
    for entry, (dtype, shape) in zip(entries, expected):
        start, size = entry["offset"], dtype.itemsize * math.prod(shape)
        if start + size > data.size:
            raise CheckpointError(f"{owner}: {path}: leaf {entry['path']} ({size} bytes at "
                                  f"offset {start}) lies beyond the end of the data "
                                  f"({data.size} bytes); the file is corrupt")
        arrays.append(data[start:start + size].view(dtype).reshape(shape))
    leaves = _restore([leaf for _, leaf in flat], arrays)
    return jax.tree_util.tree_unflatten(treedef, leaves)
