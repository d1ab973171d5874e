"""Loading a checkpoint written by ``save_checkpoint``: the file read as hostile.

The file format, and what loading checks, are described in ``_checkpoint``
(the saving side); this module reads the zip's directory and members, the
manifest and the leaves, checking each against the template before anything
large is read, and raises ``CheckpointError`` for anything else.
"""

from __future__ import annotations

import ast
import json
import math
import os
import struct
import sys
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from ._checkpoint import (
    _DIRECTORY_MAX,
    _ENTRIES_MAX,
    _FLOAT0,
    _FORMAT,
    _MEMBERS,
    _NPY_HEADER_MAX,
    _VERSION,
    CheckpointError,
    _entry,
    _is_key,
    _layout,
    _native,
    _node_types,
    _packed_nodes,
)
from ._paths import path_str
from ._typing import PyTree

# ----------------------------------------------------------------------------
# Loading.


def _template_dtype_shape(owner: str, path: str, leaf):
    """What a template leaf is stored as: (dtype, shape, the PRNG implementation of a key)."""
    if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct)) and _is_key(leaf.dtype):
        impl = []  # read under eval_shape, which takes a ShapeDtypeStruct as well as a key

        def data_of(key):
            impl.append(str(jax.random.key_impl(key)))
            return jax.random.key_data(key)

        data = jax.eval_shape(data_of, leaf)
        return np.dtype(data.dtype), tuple(data.shape), impl[0]
    if isinstance(leaf, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct)):
        return _native(np.dtype(leaf.dtype)), tuple(leaf.shape), None
    if isinstance(leaf, (bool, int, float, complex)):
        return np.asarray(leaf).dtype, (), None
    raise TypeError(
        f"{owner}: template leaf {path} is a {type(leaf).__name__}; the template "
        f"must hold arrays, numbers or jax.ShapeDtypeStruct (e.g. a fresh init)"
    )


def _is_int(x, low=0) -> bool:
    return type(x) is int and x >= low  # not bool: True is an int to isinstance


def _is_entry(e) -> bool:
    return (
        isinstance(e, dict)
        and isinstance(e.get("path"), str)
        and isinstance(e.get("dtype"), str)
        and isinstance(e.get("shape"), list)
        and all(_is_int(n) for n in e["shape"])
        and _is_int(e.get("offset"))
        and isinstance(e.get("key", ""), str)
        and isinstance(e.get("types", []), list)
        and all(isinstance(t, str) for t in e.get("types", []))
    )


def _is_packed_record(r) -> bool:
    return (
        isinstance(r, dict)
        and isinstance(r.get("at"), str)
        and isinstance(r.get("leaves"), list)
        and all(
            isinstance(x, list)
            and len(x) == 3
            and isinstance(x[0], str)
            and isinstance(x[1], str)
            and isinstance(x[2], list)
            and all(_is_int(n) for n in x[2])
            for x in r["leaves"]
        )
    )


def _check_directory(owner: str, path: str, f) -> None:
    """Refuse a zip whose central directory is large, before ``zipfile`` reads it.

    ``zipfile`` reads the whole directory and makes an object per entry; a
    15 MB file of 300,000 entries would take 150 MB before the member check
    below could refuse it.  The end-of-directory record (and its zip64 form,
    which ``zipfile`` prefers where present) gives both numbers in a few bytes.
    A file without the record is left to ``zipfile``'s own error.
    """
    f.seek(0, os.SEEK_END)
    size = f.tell()
    tail_size = min(size, 22 + 65535 + 20)  # the record, its longest comment, a zip64 locator
    f.seek(size - tail_size)
    tail = f.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return
    counts = [struct.unpack_from("<HHHHII", tail, at + 4)[3:5]]  # entries, directory size
    if at >= 20 and tail[at - 20 : at - 16] == b"PK\x06\x07":
        (record_at,) = struct.unpack_from("<Q", tail, at - 20 + 8)
        f.seek(min(record_at, size))
        record = f.read(56)
        if len(record) == 56 and record[:4] == b"PK\x06\x06":
            counts.insert(0, struct.unpack_from("<QQ", record, 32))
    for entries, directory in counts:
        if entries > _ENTRIES_MAX or directory > _DIRECTORY_MAX:
            raise CheckpointError(
                f"{owner}: {path} is a zip of {entries} entries ({directory} bytes "
                f"of directory); a gradtx checkpoint holds {len(_MEMBERS)}, so the "
                f"file is corrupt or was made by another program"
            )


class _Reader:
    """The two members of a checkpoint zip, read with every size bounded in advance."""

    def __init__(self, owner: str, path: str, f):
        self.owner, self.path = owner, path
        if f.read(6) == b"\x93NUMPY":
            raise CheckpointError(
                f"{owner}: {path} holds a single .npy array, not a gradtx "
                f"checkpoint (.npz with a manifest)"
            )
        _check_directory(owner, path, f)
        f.seek(0)
        try:
            self.zip = zipfile.ZipFile(f)
            infos = self.zip.infolist()
        except Exception as err:  # zipfile raises many kinds on crafted input
            raise CheckpointError(
                f"{owner}: {path} is not a readable checkpoint ({err}); the "
                f"file is corrupt, truncated or of another format"
            ) from err
        names = [i.filename for i in infos]
        if "manifest.npy" not in names:
            raise CheckpointError(
                f"{owner}: {path} has no valid gradtx manifest; it was not "
                f"written by gradtx.save_checkpoint, or it is corrupt"
            )
        if sorted(names) != sorted(_MEMBERS):
            raise CheckpointError(
                f"{owner}: {path} holds the members {names}; a gradtx "
                f"checkpoint holds exactly {list(_MEMBERS)}, so the file is "
                f"corrupt or was made by another program"
            )
        self.infos = {i.filename: i for i in infos}
        for info in infos:
            if (
                info.compress_type != zipfile.ZIP_STORED
                or info.flag_bits & 0x1
                or info.compress_size != info.file_size
            ):
                raise CheckpointError(
                    f"{owner}: {path}: member {info.filename} is compressed "
                    f"or encrypted; gradtx writes stored members only, so the "
                    f"file is corrupt or was made by another program"
                )

    def read(self, name: str, what: str, max_payload: int, exact: int | None = None) -> bytes:
        """The payload of the uint8 ``.npy`` member ``name``, refused if it is over size."""
        owner, path = self.owner, self.path
        info = self.infos[name]
        if info.file_size > max_payload + _NPY_HEADER_MAX:
            raise CheckpointError(
                f"{owner}: {path}: the {what} member claims {info.file_size} "
                f"bytes, more than the template allows ({max_payload} bytes "
                f"of {what}); the file is corrupt or crafted"
            )
        try:
            with self.zip.open(info) as member:
                n = self._npy_length(member, what, info.file_size)
                if exact is not None and n != exact:
                    raise CheckpointError(
                        f"{owner}: {path}: the {what} is uint8[{n}] but the manifest "
                        f"says uint8[{exact}]; the file is corrupt"
                    )
                raw = member.read(n + 1)  # to the end, where zipfile checks the CRC
                if len(raw) != n:
                    raise CheckpointError(
                        f"{owner}: {path}: the {what} is shorter than its "
                        f"header says; the file is corrupt or truncated"
                    )
                return raw
        except CheckpointError:
            raise
        except Exception as err:
            raise CheckpointError(
                f"{owner}: {path}: the {what} cannot be read ({err}); the "
                f"file is corrupt or truncated"
            ) from err

    def _npy_length(self, member, what, file_size) -> int:
        """Check the .npy header (uint8, one dimension, C order); the payload's length."""
        owner, path = self.owner, self.path
        head = member.read(10)
        if len(head) < 10 or head[:6] != b"\x93NUMPY" or head[6] not in (1, 2, 3):
            raise CheckpointError(
                f"{owner}: {path}: the {what} cannot be read (not an .npy "
                f"array); the file is corrupt"
            )
        if head[6] == 1:
            size = int.from_bytes(head[8:10], "little")
        else:
            more = member.read(2)
            size = int.from_bytes(head[8:10] + more, "little")
        if size > _NPY_HEADER_MAX:
            raise CheckpointError(
                f"{owner}: {path}: the {what} has a {size}-byte .npy header; "
                f"the file is corrupt or crafted"
            )
        text = member.read(size)
        try:
            header = ast.literal_eval(text.decode("latin1"))
        except Exception as err:
            raise CheckpointError(
                f"{owner}: {path}: the {what} cannot be read (its .npy "
                f"header: {err}); the file is corrupt"
            ) from err
        shape = header.get("shape") if isinstance(header, dict) else None
        if not (
            isinstance(header, dict)
            and header.get("descr") == "|u1"
            and header.get("fortran_order") is False
            and isinstance(shape, tuple)
            and len(shape) == 1
            and _is_int(shape[0])
        ):
            raise CheckpointError(
                f"{owner}: {path}: the {what} cannot be read (its .npy header "
                f"is {text[:200]!r}, not a uint8 vector; a pickled or foreign "
                f"array is not read, allow_pickle is off); the file is corrupt "
                f"or crafted"
            )
        consumed = 10 + (0 if head[6] == 1 else 2) + size
        if consumed + shape[0] != file_size:
            raise CheckpointError(
                f"{owner}: {path}: the {what} member is {file_size} bytes but "
                f"its header describes {consumed + shape[0]}; the file is "
                f"corrupt"
            )
        return shape[0]


def _read_manifest(owner: str, path: str, reader: _Reader, max_bytes: int) -> dict:
    bad = CheckpointError(
        f"{owner}: {path} has no valid gradtx manifest; it was not written "
        f"by gradtx.save_checkpoint, or it is corrupt"
    )
    raw = reader.read("manifest.npy", "manifest", max_bytes)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except Exception as err:  # UnicodeDecodeError, JSONDecodeError, RecursionError
        raise CheckpointError(
            f"{owner}: {path}: the manifest cannot be read ({err}); the file "
            f"is corrupt or truncated"
        ) from err
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise bad
    if manifest.get("version") != _VERSION:
        raise CheckpointError(
            f"{owner}: {path} has checkpoint format version "
            f"{manifest.get('version')!r}; this gradtx reads version {_VERSION}"
        )
    leaves = manifest.get("leaves")
    packed = manifest.get("packed", [])
    if not (
        isinstance(leaves, list)
        and all(_is_entry(e) for e in leaves)
        and _is_int(manifest.get("nbytes"))
        and isinstance(packed, list)
        and all(_is_packed_record(r) for r in packed)
    ):
        raise bad
    if manifest.get("byteorder") != sys.byteorder:
        raise CheckpointError(
            f"{owner}: {path} was written on a {manifest.get('byteorder')}-"
            f"endian machine; this one is {sys.byteorder}-endian"
        )
    return manifest


def _saved_dtype(entry: dict) -> dict:
    return {k: entry[k] for k in ("dtype", "descr") if k in entry}


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
        problems.append(
            f"the template has {_leaves(len(missing))} the checkpoint lacks, first {missing[0]}"
        )
    if extra:
        problems.append(
            f"the checkpoint has {_leaves(len(extra))} the template lacks, first {extra[0]}"
        )
    if not problems:
        first = next((i for i, (a, b) in enumerate(zip(saved, expected)) if a != b), None)
        if first is None:  # the same paths, one listed twice
            problems.append(
                f"the checkpoint has {len(saved)} leaves and the template {len(expected)}"
            )
        else:
            problems.append(
                f"the leaves are in another order: leaf {first} is {saved[first]} "
                f"in the checkpoint and {expected[first]} in the template"
            )
    raise CheckpointError(
        f"{owner}: {path} does not match the template: "
        + "; ".join(problems)
        + "; was it saved from another model or optimizer?"
    )


def _check_types(owner: str, path: str, entries: list, expected: list) -> None:
    """The pytree node types above each leaf must be the template's.

    A file without the record (written before it was kept) is checked by
    its leaf paths, dtypes and shapes only.
    """
    recorded = ["types" in e for e in entries]
    if not any(recorded):
        return
    if not all(recorded):
        raise CheckpointError(
            f"{owner}: {path} records the node types of some leaves but not all; "
            f"the file is corrupt or crafted"
        )
    for entry, want in zip(entries, expected):
        if entry["types"] != want:

            def show(names):
                return " > ".join(names) if names else "no named node"

            raise CheckpointError(
                f"{owner}: {path} does not match the template: leaf {entry['path']} is in "
                f"{show(entry['types'])} in the checkpoint but in {show(want)} in the "
                f"template; was it saved from another model or optimizer?"
            )


def _leaf_problem(owner: str, path: str, entry: dict, want: dict) -> str | None:
    """What is wrong with a leaf's dtype, byte order, key or shape, or None."""
    got = _saved_dtype(entry)
    expected = _saved_dtype(want)
    if "descr" not in got and isinstance(expected.get("descr"), str):
        # Written before plain dtypes recorded their descr: in the byte order
        # the manifest names for the whole file, checked on reading it.
        expected = {"dtype": expected["dtype"]}
    if got.get("dtype") == expected["dtype"] and got != expected:
        if isinstance(got.get("descr"), str) and isinstance(expected.get("descr"), str):
            raise CheckpointError(
                f"{owner}: {path}: leaf {entry['path']} is {got['dtype']} stored as "
                f"{got['descr']!r}, but gradtx stores it as {expected['descr']!r} (this "
                f"machine's byte order); the file is corrupt or crafted"
            )
    if got != expected or entry["shape"] != want["shape"]:
        return (
            f"leaf {entry['path']} is {entry['dtype']}{entry['shape']} in the checkpoint but "
            f"{want['dtype']}{want['shape']} in the template"
        )
    if entry.get("key") != want.get("key"):

        def show(key):
            return "not a PRNG key" if key is None else f"a {key} PRNG key"

        return (
            f"leaf {entry['path']} is {show(entry.get('key'))} in the checkpoint but "
            f"{show(want.get('key'))} in the template"
        )
    return None


def _check_packed(owner: str, path: str, saved: list, expected: list) -> None:
    """Packed buffers load only into params packed from the same leaves."""
    saved_at = {r["at"]: r["leaves"] for r in saved}
    for record in expected:
        at, want = record["at"], record["leaves"]
        got = saved_at.get(at)
        if got is None:
            raise CheckpointError(
                f"{owner}: {path}: the template's packed buffers at {at} hold parameters, but the "
                f"checkpoint does not record which (it was saved unpacked, or by an older "
                f"gradtx); refusing, since the values could land on the wrong parameters"
            )
        if got == want:
            continue
        for i in range(max(len(got), len(want))):
            g = got[i] if i < len(got) else None
            w = want[i] if i < len(want) else None
            if g != w:

                def show(x):
                    return "nothing" if x is None else f"{x[0]} {x[1]}{x[2]}"

                raise CheckpointError(
                    f"{owner}: {path}: the packed buffers at {at} were packed from other "
                    f"parameters: packed leaf {i} is {show(g)} in the checkpoint but {show(w)} "
                    f"in the template; was it saved from another model?"
                )
    extra = [r["at"] for r in saved if r["at"] not in {e["at"] for e in expected}]
    if extra:
        raise CheckpointError(
            f"{owner}: {path}: the checkpoint holds packed buffers at "
            f"{extra[0]}, where the template has none"
        )


def _restore(leaves: list, arrays: list[np.ndarray], keys: list) -> list:
    """Each array in the kind of container its template leaf is, moved to devices in bulk.

    A ``jax.Array`` leaf gives its sharding; a ``ShapeDtypeStruct`` without
    one gives the default device, uncommitted, as ``jnp.asarray`` would.  Key
    data becomes a typed key again; ``float0`` leaves stay NumPy arrays (JAX
    arrays cannot hold that dtype); a NumPy leaf gets its template's byte order."""
    out = list(arrays)
    placed, unplaced, shardings = [], [], []
    for i, leaf in enumerate(leaves):
        sharding = getattr(leaf, "sharding", None)
        if keys[i] is not None:
            key = jax.random.wrap_key_data(jnp.asarray(arrays[i]), impl=keys[i])
            out[i] = key if sharding is None else jax.device_put(key, sharding)
        elif arrays[i].dtype == _FLOAT0:
            out[i] = arrays[i]
        elif isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct)):
            if sharding is None:
                unplaced.append(i)
            else:
                placed.append(i)
                shardings.append(sharding)
        elif isinstance(leaf, np.ndarray):
            out[i] = arrays[i].astype(leaf.dtype)  # a copy, in the template's byte order
        elif isinstance(leaf, np.generic):
            out[i] = arrays[i].astype(leaf.dtype)[()]
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

    Every leaf path, dtype, byte order and shape in the file must equal the
    template's, so must the named pytree nodes above each leaf (a yogi state
    does not load into an adabelief template, though their paths agree), and
    packed buffers must have been packed from the same parameters.  Files
    without the node types (written by gradtx before they were recorded) are
    checked by paths, dtypes and shapes only.  The template supplies the
    Python types (named tuples, dicts, ...) and where arrays live (a
    ``jax.Array`` leaf gives its sharding; numbers come back as numbers).
    ``jax.eval_shape(opt.init, params)`` is a template that allocates
    nothing.  Nothing from the file is executed, and no more is read from it
    than the template's size.

    Args:
      path: a file written by ``save_checkpoint``.
      template: a pytree of the same structure, e.g. the freshly initialised
        training state.

    Returns:
      A new pytree shaped like ``template`` holding the saved values.

    Raises:
      FileNotFoundError: there is no file at ``path``.
      CheckpointError: the file is corrupt, truncated, crafted, not a gradtx
        checkpoint, or its leaves differ from the template's (the message
        names the first differing path, node type, dtype or shape).
    """
    owner = "load_checkpoint"
    path = os.fspath(path)
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [path_str(p) for p, _ in flat]
    expected = [_template_dtype_shape(owner, n, leaf) for n, (_, leaf) in zip(names, flat)]
    offsets, nbytes = _layout([(d, s) for d, s, _ in expected])
    packed = _packed_nodes(template)
    types = _node_types(treedef)
    plan_entries = [
        _entry(n, d, s, o, key, above)
        for n, (d, s, key), o, above in zip(names, expected, offsets, types)
    ]
    # What this template's manifest is, give or take number formatting: a bound on the file's.
    plan = json.dumps({"leaves": plan_entries, "packed": packed})
    manifest_max = 2 * len(plan) + 4096

    with open(path, "rb") as f:
        reader = _Reader(owner, path, f)
        manifest = _read_manifest(owner, path, reader, manifest_max)
        entries = manifest["leaves"]
        _check_paths(owner, path, [e["path"] for e in entries], names)
        _check_packed(owner, path, manifest.get("packed", []), packed)
        _check_types(owner, path, entries, types)
        mismatched = [
            problem
            for e, want in zip(entries, plan_entries)
            if (problem := _leaf_problem(owner, path, e, want)) is not None
        ]
        if mismatched:
            more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
            raise CheckpointError(
                f"{owner}: {path} does not match the template: {mismatched[0]}{more}"
            )
        for entry, (dtype, shape, _), offset in zip(entries, expected, offsets):
            if entry["offset"] != offset:
                size = dtype.itemsize * math.prod(shape)
                where = (
                    "lies beyond the end of the data"
                    if entry["offset"] + size > manifest["nbytes"]
                    else "overlaps or is misplaced in the data"
                )
                raise CheckpointError(
                    f"{owner}: {path}: leaf {entry['path']} ({size} bytes at offset "
                    f"{entry['offset']}) {where} ({manifest['nbytes']} bytes; it belongs at "
                    f"offset {offset}); the file is corrupt"
                )
        if manifest["nbytes"] != nbytes:
            raise CheckpointError(
                f"{owner}: {path}: the manifest says the data is "
                f"{manifest['nbytes']} bytes, but its leaves take {nbytes}; "
                f"the file is corrupt"
            )
        data = np.frombuffer(reader.read("data.npy", "data", nbytes, exact=nbytes), np.uint8)
    arrays = [
        np.zeros(s, d)
        if d == _FLOAT0
        else data[o : o + d.itemsize * math.prod(s)].view(d).reshape(s)
        for o, (d, s, _) in zip(offsets, expected)
    ]
    leaves = _restore([leaf for _, leaf in flat], arrays, [key for _, _, key in expected])
    return jax.tree_util.tree_unflatten(treedef, leaves)
