"""Checkpoints of a training state in a plain, safe file format.

``save_checkpoint(path, tree)`` writes any pytree of arrays and numbers
(typically ``{"params": ..., "opt_state": ..., "step": ...}``) to one
``.npz`` file; ``load_checkpoint(path, template)`` reads it back into the
structure of ``template``, usually the state that a fresh ``init`` makes.

The file is a zip of ``.npy`` arrays, one per leaf, and a JSON manifest
listing each leaf's path (``['opt_state'].states[0].mu['w']``), dtype and
shape.  No pickle is written or read (``allow_pickle=False``), so loading a
file never runs code from it; the Python types of the tree (named tuples,
dicts, ...) come from the template, not from the file.  dtypes that NumPy
does not know natively (bfloat16 and the other ``ml_dtypes``) are stored as
unsigned integers of the same width and viewed back on load, bit for bit.

Saving is atomic: the file is written to a temporary name in the same
directory, flushed to disk, then renamed over ``path``.  A crash at any
moment leaves either the previous checkpoint or the new one, never a mix.
Loading checks everything (manifest, paths, dtypes, shapes, the zip's CRC of
every array) before it builds the result, so a corrupt, truncated or
mismatched file raises ``CheckpointError`` and nothing is half-loaded.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from ._paths import path_str

_FORMAT = "gradtx.checkpoint"
_VERSION = 1
_MANIFEST = "manifest"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or does not match its template."""


def _leaf_array(owner: str, path: str, leaf) -> np.ndarray:
    if isinstance(leaf, (jax.Array, np.ndarray, np.generic, bool, int, float, complex)):
        array = np.asarray(jax.device_get(leaf))
        if array.dtype.kind in "biufcV":
            return array
    raise TypeError(f"{owner}: leaf {path} is a {type(leaf).__name__}; a checkpoint holds "
                    f"arrays and numbers only (keep other objects out of the saved tree)")


def _is_native(dtype: np.dtype) -> bool:
    """Whether NumPy's .npy format stores this dtype under its own name."""
    return dtype.kind in "biufc" and np.dtype(dtype.str) == dtype


def _stored(array: np.ndarray) -> np.ndarray:
    if _is_native(array.dtype):
        return array
    return array.view(np.dtype(f"u{array.dtype.itemsize}"))


def save_checkpoint(path, tree) -> None:
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
      >>> gradtx.load_checkpoint(path, state)["opt_state"].states[0]
      MomentumState(mu={'w': Array([0., 0.], dtype=float32)})
    """
    owner = "save_checkpoint"
    path = os.fspath(path)
    entries, arrays = [], {}
    for i, (key_path, leaf) in enumerate(jax.tree_util.tree_flatten_with_path(tree)[0]):
        name = path_str(key_path)
        array = _leaf_array(owner, name, leaf)
        entries.append({"path": name, "dtype": array.dtype.name, "shape": list(array.shape)})
        arrays[f"leaf{i}"] = _stored(array)
    manifest = json.dumps({"format": _FORMAT, "version": _VERSION, "leaves": entries})
    arrays[_MANIFEST] = np.frombuffer(manifest.encode("utf-8"), np.uint8)

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
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
        array = np.asarray(leaf)
        return array.dtype, ()
    raise TypeError(f"{owner}: template leaf {path} is a {type(leaf).__name__}; the template "
                    f"must hold arrays, numbers or jax.ShapeDtypeStruct (e.g. a fresh init)")


def _describe(dtype, shape) -> str:
    return f"{dtype}{list(shape)}"


def _read_manifest(owner: str, path: str, npz) -> list:
    bad = CheckpointError(f"{owner}: {path} has no valid gradtx manifest; it was not written "
                          f"by gradtx.save_checkpoint, or it is corrupt")
    if _MANIFEST not in npz.files:
        raise bad
    try:
        raw = npz[_MANIFEST]
        manifest = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{owner}: {path}: the manifest cannot be read ({err}); the file "
                              f"is corrupt or truncated") from err
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise bad
    if manifest.get("version") != _VERSION:
        raise CheckpointError(f"{owner}: {path} has checkpoint format version "
                              f"{manifest.get('version')!r}; this gradtx reads version {_VERSION}")
    leaves = manifest.get("leaves")
    ok = isinstance(leaves, list) and all(
        isinstance(e, dict) and isinstance(e.get("path"), str) and isinstance(e.get("dtype"), str)
        and isinstance(e.get("shape"), list) and all(isinstance(n, int) for n in e["shape"])
        for e in leaves)
    if not ok:
        raise bad
    return leaves


def _leaves(n: int) -> str:
    return f"{n} leaf" if n == 1 else f"{n} leaves"


def _check_paths(owner: str, path: str, saved: list[str], expected: list[str]) -> None:
    if saved == expected:
        return
    missing = [p for p in expected if p not in set(saved)]
    extra = [p for p in saved if p not in set(expected)]
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


def _restore_like(leaf, array: np.ndarray):
    """``array`` in the kind of container the template leaf is."""
    if isinstance(leaf, jax.Array):
        return jax.device_put(array, leaf.sharding)
    if isinstance(leaf, jax.ShapeDtypeStruct):
        sharding = getattr(leaf, "sharding", None)
        return jax.device_put(array, sharding) if sharding is not None else jnp.asarray(array)
    if isinstance(leaf, np.ndarray):
        return array
    if isinstance(leaf, np.generic):
        return array[()]
    return type(leaf)(array.item())


def load_checkpoint(path, template):
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
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise CheckpointError(f"{owner}: {path} is not a readable checkpoint ({err}); the "
                                  f"file is corrupt, truncated or of another format") from err
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{owner}: {path} holds a single .npy array, not a gradtx "
                                  f"checkpoint (.npz with a manifest)")
        with npz:
            entries = _read_manifest(owner, path, npz)
            _check_paths(owner, path, [e["path"] for e in entries], names)
            mismatched = []
            for entry, (dtype, shape) in zip(entries, expected):
                if entry["dtype"] != dtype.name or tuple(entry["shape"]) != shape:
                    mismatched.append(f"leaf {entry['path']} is "
                                      f"{entry['dtype']}{entry['shape']} in the checkpoint but "
                                      f"{_describe(dtype, shape)} in the template")
            if mismatched:
                more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
                raise CheckpointError(f"{owner}: {path} does not match the template: "
                                      f"{mismatched[0]}{more}")
            arrays = []
            for i, (entry, (dtype, shape)) in enumerate(zip(entries, expected)):
                stored_dtype = dtype if _is_native(dtype) else np.dtype(f"u{dtype.itemsize}")
                try:
                    stored = npz[f"leaf{i}"]
                except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
                    raise CheckpointError(f"{owner}: {path}: leaf {entry['path']} cannot be read "
                                          f"({err}); the file is corrupt or truncated") from err
                if stored.dtype != stored_dtype or stored.shape != shape:
                    raise CheckpointError(
                        f"{owner}: {path}: leaf {entry['path']} is stored as "
                        f"{_describe(stored.dtype, stored.shape)} but the manifest says "
                        f"{_describe(dtype, shape)}; the file is corrupt")
                arrays.append(stored if stored_dtype == dtype else stored.view(dtype))
    leaves = [_restore_like(leaf, array) for (_, leaf), array in zip(flat, arrays)]
    return jax.tree_util.tree_unflatten(treedef, leaves)
