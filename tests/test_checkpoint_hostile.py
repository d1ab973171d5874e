"""Checkpoints read as hostile files: every bad file raises CheckpointError, sizes stay bounded.

The fuzz tests corrupt a real checkpoint every way a short loop can reach
(truncation at every length, every byte flipped, every header position set
to extreme values) and require each load to either raise ``CheckpointError``
or return exactly the saved values.  The default run is a few seconds; the
``slow`` variant flips more bits of a larger state.
"""

import io
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reliability_worker as worker
from checkpoint_files import crafted_manifest
from trees import assert_bitwise_equal

import gradtx


def _state():
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array([0.5, 1.5], jnp.bfloat16)}
    return {"params": params, "step": 3}


def _npy(payload: bytes, shape=None, descr="|u1") -> bytes:
    """A version-1 .npy file of uint8 (or what ``descr`` says), header padded as numpy does."""
    shape = (len(payload),) if shape is None else shape
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def _zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)


def _crafted(path, leaves, nbytes, data: bytes, **kwargs):
    manifest = json.dumps(crafted_manifest(leaves, nbytes)).encode()
    _zip(path, {"manifest.npy": _npy(manifest), "data.npy": _npy(data, **kwargs)})


# ----------------------------------------------------------------------------
# Packed buffers remember what was packed into them.


def _models():
    a = {"embed": jnp.arange(4.0), "head": jnp.arange(6.0).reshape(2, 3) + 100}
    b = {"embed": jnp.zeros((2, 3)), "head": jnp.zeros(4)}
    return a, b


def test_load_checkpoint_packed_params_of_other_model_raises(tmp_path):
    a, b = _models()
    opt = gradtx.flatten(gradtx.adam(1e-3))
    gradtx.save_checkpoint(
        tmp_path / "c.npz", {"params": gradtx.pack(a), "opt_state": opt.init(gradtx.pack(a))}
    )
    template = {"params": gradtx.pack(b), "opt_state": opt.init(gradtx.pack(b))}
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"packed buffers at \['opt_state'\]\.states\[0\]\.direction\.states\[0\]"
        r"\.mu were packed from other parameters: "
        r"packed leaf 0 is \['embed'\] float32\[4\] in the checkpoint but "
        r"\['embed'\] float32\[2, 3\] in the template",
    ):
        gradtx.load_checkpoint(tmp_path / "c.npz", template)


def test_load_checkpoint_flatten_state_of_other_model_raises(tmp_path):
    a, b = _models()
    opt = gradtx.flatten(gradtx.adam(1e-3))
    gradtx.save_checkpoint(tmp_path / "c.npz", {"opt_state": opt.init(a)})
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"packed buffers at \['opt_state'\]"
        r"\.states\[0\]\.direction\.states\[0\]"
        r"\.mu were packed from other",
    ):
        gradtx.load_checkpoint(tmp_path / "c.npz", {"opt_state": opt.init(b)})


def test_load_checkpoint_packed_state_of_same_model_round_trips(tmp_path):
    a, _ = _models()
    opt = gradtx.flatten(gradtx.adam(1e-3))
    state = {"params": gradtx.pack(a), "opt_state": opt.init(gradtx.pack(a))}
    gradtx.save_checkpoint(tmp_path / "c.npz", state)
    restored = gradtx.load_checkpoint(tmp_path / "c.npz", jax.eval_shape(lambda: state))
    assert_bitwise_equal(restored, state)
    np.testing.assert_array_equal(restored["params"].unpack()["head"], a["head"])


def test_load_checkpoint_packed_template_unpacked_file_raises(tmp_path):
    a, _ = _models()
    packed = gradtx.pack(a)
    gradtx.save_checkpoint(tmp_path / "c.npz", {"params": {"float32": packed["float32"]}})
    with pytest.raises(gradtx.CheckpointError, match=r"does not record which"):
        gradtx.load_checkpoint(tmp_path / "c.npz", {"params": packed})


# ----------------------------------------------------------------------------
# Sizes are bounded before anything large is read.


def test_load_checkpoint_deflate_bomb_raises_without_inflating(tmp_path):
    path = tmp_path / "bomb.npz"
    nbytes = 64 << 20
    manifest = json.dumps(
        crafted_manifest(
            [{"path": "[0]", "dtype": "uint8", "shape": [nbytes], "offset": 0}], nbytes
        )
    ).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.npy", _npy(manifest))
        with zf.open("data.npy", "w", force_zip64=True) as member:
            member.write(_npy(b"", shape=(nbytes,)))
            chunk = bytes(1 << 20)
            for _ in range(nbytes >> 20):
                member.write(chunk)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(gradtx.CheckpointError, match=r"member manifest.npy is compressed"):
            gradtx.load_checkpoint(path, (jax.ShapeDtypeStruct((nbytes,), jnp.uint8),))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_load_checkpoint_member_larger_than_template_raises_before_reading(tmp_path):
    leaves = [{"path": "[0]", "dtype": "float32", "shape": [1], "offset": 0}]
    _crafted(tmp_path / "big.npz", leaves, 4, bytes(8 << 20))
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"the data member claims \d+ bytes, more "
        r"than the template allows \(4 bytes",
    ):
        gradtx.load_checkpoint(tmp_path / "big.npz", (jnp.zeros(1),))


def test_load_checkpoint_header_claiming_a_tebibyte_raises_checkpoint_error(tmp_path):
    tib = 1 << 40
    leaves = [{"path": "[0]", "dtype": "uint8", "shape": [tib], "offset": 0}]
    _crafted(tmp_path / "tib.npz", leaves, tib, b"\0" * 16, shape=(tib,))
    tracemalloc.start()
    try:
        with pytest.raises(
            gradtx.CheckpointError,
            match=r"the data member is \d+ bytes but its "
            r"header describes",
        ):
            gradtx.load_checkpoint(tmp_path / "tib.npz", (jax.ShapeDtypeStruct((tib,), jnp.uint8),))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_load_checkpoint_zip_of_many_entries_raises_before_reading_them(tmp_path):
    # 70,000 empty entries (past 65,535, so the counts sit in the zip64 record):
    # zipfile would make an object per entry before the member check could run.
    path = tmp_path / "many.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(70_000):
            zf.writestr(f"e{i}", b"")
    tracemalloc.start()
    try:
        with pytest.raises(
            gradtx.CheckpointError,
            match=r"is a zip of 70000 entries \(\d+ bytes of directory\); a gradtx "
            r"checkpoint holds 2",
        ):
            gradtx.load_checkpoint(path, (jnp.zeros(1),))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # zipfile's own listing of the entries takes far more


# ----------------------------------------------------------------------------
# A manifest that is well-formed JSON but lies.


@pytest.mark.parametrize("descr", [">f4", "<i4"])
def test_load_checkpoint_leaf_stored_in_another_layout_raises(tmp_path, descr):
    native = "<f4" if sys.byteorder == "little" else ">f4"
    stored = descr if descr != ">f4" or native == "<f4" else "<f4"
    leaf = {"path": "[0]", "dtype": "float32", "descr": stored, "shape": [2], "offset": 0}
    _crafted(tmp_path / "c.npz", [leaf], 8, bytes(8))
    with pytest.raises(
        gradtx.CheckpointError,
        match=rf"leaf \[0\] is float32 stored as '{stored}', but gradtx stores it as "
        rf"'{native}' \(this machine's byte order\); the file is corrupt or crafted",
    ):
        gradtx.load_checkpoint(tmp_path / "c.npz", (jnp.zeros(2),))


def test_load_checkpoint_node_types_of_some_leaves_only_raises(tmp_path):
    leaves = [dict(ONE, types=["ChainState"]), TWO]
    _crafted(tmp_path / "c.npz", leaves, 24, bytes(24))
    with pytest.raises(
        gradtx.CheckpointError, match=r"records the node types of some leaves but not all"
    ):
        gradtx.load_checkpoint(tmp_path / "c.npz", (jnp.zeros(2), jnp.zeros(2)))


ONE = {"path": "[0]", "dtype": "float32", "shape": [2], "offset": 0}
TWO = {"path": "[1]", "dtype": "float32", "shape": [2], "offset": 16}


@pytest.mark.parametrize(
    "second, message",
    [
        (dict(TWO, offset=4), r"leaf \[1\] \(8 bytes at offset 4\) overlaps or is misplaced"),
        (dict(TWO, offset=8), r"leaf \[1\] \(8 bytes at offset 8\) overlaps or is misplaced"),
        (dict(TWO, offset=17), r"leaf \[1\] \(8 bytes at offset 17\) lies beyond the end"),
        (dict(TWO, offset=True), r"has no valid gradtx manifest"),
        (dict(TWO, shape=[True, 2]), r"has no valid gradtx manifest"),
        (dict(TWO, offset=16.0), r"has no valid gradtx manifest"),
    ],
)
def test_load_checkpoint_misplaced_offsets_raise(tmp_path, second, message):
    _crafted(tmp_path / "m.npz", [ONE, second], 24, bytes(24))
    with pytest.raises(gradtx.CheckpointError, match=message):
        gradtx.load_checkpoint(tmp_path / "m.npz", (jnp.zeros(2), jnp.zeros(2)))


def test_load_checkpoint_structured_dtype_with_other_fields_raises(tmp_path):
    saved = np.zeros(2, np.dtype([("a", "<f4"), ("b", "<i4")]))
    other = np.zeros(2, np.dtype([("b", "<i4"), ("a", "<f4")]))
    assert saved.dtype.name == other.dtype.name
    gradtx.save_checkpoint(tmp_path / "c.npz", {"x": saved})
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"leaf \['x'\] is void64\[2\] in the "
        r"checkpoint but",
    ):
        gradtx.load_checkpoint(tmp_path / "c.npz", {"x": other})
    assert_bitwise_equal(gradtx.load_checkpoint(tmp_path / "c.npz", {"x": saved}), {"x": saved})


def test_load_checkpoint_pickle_header_in_data_raises(tmp_path):
    leaves = [{"path": "[0]", "dtype": "float32", "shape": [1], "offset": 0}]
    _crafted(tmp_path / "p.npz", leaves, 4, b"\0" * 4, descr="|O")
    with pytest.raises(gradtx.CheckpointError, match=r"not a uint8 vector; a pickled"):
        gradtx.load_checkpoint(tmp_path / "p.npz", (jnp.zeros(1),))


def test_load_checkpoint_deeply_nested_manifest_raises_checkpoint_error(tmp_path):
    raw = b"[" * 200_000
    _zip(tmp_path / "n.npz", {"manifest.npy": _npy(raw), "data.npy": _npy(b"")})
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"more than the template allows|cannot be "
        r"read",
    ):
        gradtx.load_checkpoint(tmp_path / "n.npz", (jnp.zeros(1),))
    raw = b"[" * 3000  # small enough to pass the size bound: the parser's recursion fails
    _zip(tmp_path / "n.npz", {"manifest.npy": _npy(raw), "data.npy": _npy(b"")})
    with pytest.raises(gradtx.CheckpointError, match=r"the manifest cannot be read"):
        gradtx.load_checkpoint(tmp_path / "n.npz", [jnp.zeros(1)] * 40)


# ----------------------------------------------------------------------------
# Fuzzing: every load raises CheckpointError or returns the saved values exactly.


def _fuzz(path, original: bytes, variants, template, expected) -> dict:
    counts = {"loads": 0, "refused": 0, "loaded_exactly": 0}
    for raw in variants:
        # A new file each time: rewriting one in place makes ext4 flush it to disk on
        # close (its auto_da_alloc), about 1 ms a load instead of 0.05 ms.
        path.unlink(missing_ok=True)
        path.write_bytes(raw)
        counts["loads"] += 1
        try:
            restored = gradtx.load_checkpoint(path, template)
        except gradtx.CheckpointError:
            counts["refused"] += 1
            continue
        assert_bitwise_equal(restored, expected)
        counts["loaded_exactly"] += 1
    return counts


def _header_positions(raw: bytes) -> list[int]:
    """Every byte of the zip and .npy headers: all of the file but the two payloads."""
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        payload = set()
        for info in zf.infolist():
            name_len, extra_len = struct.unpack(
                "<HH", raw[info.header_offset + 26 : info.header_offset + 30]
            )
            start = info.header_offset + 30 + name_len + extra_len
            npy_header = 10 + struct.unpack("<H", raw[start + 8 : start + 10])[0]
            payload.update(range(start + npy_header, start + info.compress_size))
    return [i for i in range(len(raw)) if i not in payload]


def _variants(raw: bytes, flips=(0xFF,), values=(0, 1, 0x7F, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)):
    for cut in range(len(raw)):  # truncation at every length
        yield raw[:cut]
    for i in range(len(raw)):  # every byte flipped
        for mask in flips:
            out = bytearray(raw)
            out[i] ^= mask
            yield bytes(out)
    for i in _header_positions(raw):  # header fields set to extremes
        for value in values:
            out = bytearray(raw)
            width = 2 if value <= 0xFFFF else 4
            out[i : i + width] = value.to_bytes(width, "little")
            yield bytes(out[: len(raw)])


def test_load_checkpoint_fuzzed_file_raises_checkpoint_error_or_loads_exactly(tmp_path):
    path = tmp_path / "c.npz"
    state = _state()
    gradtx.save_checkpoint(path, state)
    raw = path.read_bytes()
    start = time.perf_counter()
    counts = _fuzz(path, raw, _variants(raw), state, state)
    elapsed = time.perf_counter() - start
    assert counts["loads"] > 3 * len(raw)
    assert counts["refused"] > 0.75 * counts["loads"]  # the rest: fields zipfile ignores
    print(f"fuzz: {counts} in {elapsed:.1f} s for a {len(raw)}-byte file")


@pytest.mark.slow
def test_load_checkpoint_fuzzed_optimizer_state_every_bit_raises_or_loads_exactly(tmp_path):
    path = tmp_path / "c.npz"
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2, jnp.float16)}
    state = {"params": params, "opt_state": gradtx.adamw(1e-3).init(params), "step": 7}
    gradtx.save_checkpoint(path, state)
    raw = path.read_bytes()
    rng = np.random.default_rng(0)
    values = tuple(int(v) for v in rng.integers(0, 2**32, 8)) + (0, 0xFFFF, 0xFFFFFFFF)
    counts = _fuzz(
        path,
        raw,
        _variants(raw, flips=tuple(1 << b for b in range(8)), values=values),
        state,
        state,
    )
    print(f"fuzz (slow): {counts} for a {len(raw)}-byte file")


# ----------------------------------------------------------------------------
# File mode, leftovers, values that cannot be stored.


@pytest.fixture
def umask():
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


def test_save_checkpoint_mode_follows_umask(tmp_path, umask):
    path = tmp_path / "c.npz"
    gradtx.save_checkpoint(path, _state())
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    umask(0o027)
    gradtx.save_checkpoint(tmp_path / "d.npz", _state())
    assert stat.S_IMODE((tmp_path / "d.npz").stat().st_mode) == 0o640


def test_save_checkpoint_over_a_private_file_keeps_its_mode(tmp_path, umask):
    # A checkpoint chmod'ed to 0600 stays private when the next save replaces it.
    path = tmp_path / "c.npz"
    gradtx.save_checkpoint(path, _state())
    path.chmod(0o600)
    gradtx.save_checkpoint(path, _state())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o640)
    gradtx.save_checkpoint(path, _state())
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


_CRASHING_SAVE = """
import os, sys
import numpy as np
import gradtx

def crash(*args, **kwargs):
    os._exit(3)  # the process dies mid-write, leaving its temporary file

np.savez = crash
gradtx.save_checkpoint(sys.argv[1], {"w": np.zeros(2, np.float32)})
"""


def test_save_checkpoint_removes_the_temp_file_of_a_crashed_save(tmp_path):
    path = tmp_path / "c.npz"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASHING_SAVE, str(path)], env=env, check=False
    )
    assert crashed.returncode == 3
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(leftovers) == 1
    others = [
        ".c.npz.gradtx-abcd1234.tmp",  # named as older gradtx named them: left alone
        ".c.npz.bak.gradtx-00000000-1-abcd1234.tmp",  # another file's
        "c.npz.notes",
    ]
    for name in others:
        (tmp_path / name).write_bytes(b"partial")
    gradtx.save_checkpoint(path, _state())
    assert sorted(os.listdir(tmp_path)) == sorted(others + ["c.npz"])


def test_save_checkpoint_concurrent_save_keeps_a_stalled_save_alive(tmp_path, monkeypatch):
    # One save stalls (a slow disk) for what looks like minutes; another save to
    # the same path meanwhile must not delete its temporary file.
    path = tmp_path / "c.npz"
    stalled, release = threading.Event(), threading.Event()
    savez = np.savez

    def slow_savez(f, **arrays):
        if threading.current_thread().name == "slow-saver":
            stalled.set()
            release.wait(30)
        savez(f, **arrays)

    monkeypatch.setattr(np, "savez", slow_savez)
    errors = []

    def slow_save():
        try:
            gradtx.save_checkpoint(path, {"w": jnp.array([1.0, 2.0])})
        except Exception as error:  # reported below
            errors.append(error)

    thread = threading.Thread(target=slow_save, name="slow-saver")
    thread.start()
    assert stalled.wait(30)
    hour_ago = time.time() - 3600
    for name in os.listdir(tmp_path):
        os.utime(tmp_path / name, (hour_ago, hour_ago))
    gradtx.save_checkpoint(path, {"w": jnp.array([3.0, 4.0])})
    release.set()
    thread.join(30)
    assert errors == []
    restored = gradtx.load_checkpoint(path, {"w": jnp.zeros(2)})
    np.testing.assert_array_equal(restored["w"], [1.0, 2.0])  # the slow save finished last
    assert os.listdir(tmp_path) == ["c.npz"]


def test_save_checkpoint_int_beyond_int64_raises(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"save_checkpoint: leaf \['step'\] is the Python int "
        r"1180591620717411303424, outside the int64 range",
    ):
        gradtx.save_checkpoint(tmp_path / "c.npz", {"step": 2**70})
    assert os.listdir(tmp_path) == []


def test_save_checkpoint_structured_dtype_with_object_field_raises(tmp_path):
    leaf = np.zeros(2, np.dtype([("a", "<f4"), ("o", object)]))
    with pytest.raises(
        TypeError,
        match=r"save_checkpoint: leaf \['x'\] has dtype .*which holds "
        r"Python objects",
    ):
        gradtx.save_checkpoint(tmp_path / "c.npz", {"x": leaf})
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------
# Fault injection: a training process killed with SIGKILL resumes exactly.
#
# The worker (tests/reliability_worker.py) trains a small MLP deterministically and
# checkpoints every EVERY steps with gradtx.save_checkpoint.  It is killed twice: once
# between checkpoints, once while a checkpoint is being written (after the temporary
# file is complete, before the rename); the resumed run must end bit for bit where an
# uninterrupted run ends.


ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("reliability_worker.py")
TOTAL, EVERY = 24, 4
TIMEOUT = 120  # seconds any one worker may live


_LIVE = []


@pytest.fixture
def no_orphans():
    """Kill any worker a failing test leaves behind."""
    yield
    while _LIVE:
        proc = _LIVE.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _start(directory: Path, **env_extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", **env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    stderr = open(directory / "stderr.txt", "a")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            str(directory / "ckpt.npz"),
            str(directory / "final.npz"),
            str(TOTAL),
            str(EVERY),
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        cwd=directory,
    )
    stderr.close()
    _LIVE.append(proc)
    return proc


def _read_until(proc, directory: Path, last_line: str) -> list[str]:
    """The worker's lines up to ``last_line``; kills it if that takes too long."""
    watchdog = threading.Timer(TIMEOUT, proc.kill)
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if lines[-1] == last_line:
                return lines
    finally:
        watchdog.cancel()
    proc.wait()
    raise AssertionError(
        f"worker exited ({proc.returncode}) before printing {last_line!r}; "
        f"stdout {lines}; stderr {(directory / 'stderr.txt').read_text()[-2000:]}"
    )


def _kill(proc) -> list[str]:
    proc.send_signal(signal.SIGKILL)
    rest = proc.stdout.read().split()
    proc.wait(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    return rest


def _run_to_end(directory: Path, proc=None) -> list[str]:
    proc = proc or _start(directory)
    lines = _read_until(proc, directory, "done")
    assert proc.wait(timeout=TIMEOUT) == 0
    return lines


def _saved_step(directory: Path) -> int:
    return gradtx.load_checkpoint(directory / "ckpt.npz", worker.fresh_state())["step"]


def _final_params(directory: Path):
    return gradtx.load_checkpoint(directory / "final.npz", worker.init_params())


@pytest.mark.slow
def test_training_killed_mid_run_and_mid_write_resumes_bit_identical(tmp_path, no_orphans):
    reference, faulty = tmp_path / "reference", tmp_path / "faulty"
    reference.mkdir()
    faulty.mkdir()
    uninterrupted = _start(reference)  # runs alongside the faulty ones

    # Fault 1: SIGKILL between two checkpoints.
    proc = _start(faulty, RELIABILITY_STEP_SLEEP="0.05")
    lines = _read_until(proc, faulty, "step 10")
    lines += _kill(proc)
    assert "done" not in lines
    last_saved = max(int(line.split()[1]) for line in lines if line.startswith("saved"))
    assert last_saved % EVERY == 0 and last_saved < TOTAL
    assert _saved_step(faulty) == last_saved

    # Fault 2: SIGKILL inside save_checkpoint, the new file complete but not yet renamed.
    paused = last_saved + 2 * EVERY
    proc = _start(faulty, RELIABILITY_PAUSE_BEFORE_REPLACE=str(paused))
    lines = _read_until(proc, faulty, f"paused {paused}")
    assert lines[0] == f"resumed {last_saved}"
    _kill(proc)
    leftovers = [name for name in os.listdir(faulty) if name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".ckpt.npz.")
    assert _saved_step(faulty) == paused - EVERY  # the previous checkpoint survived

    lines = _run_to_end(faulty)
    assert lines[0] == f"resumed {paused - EVERY}"
    _run_to_end(reference, uninterrupted)
    expected, got = _final_params(reference), _final_params(faulty)
    initial = worker.init_params()
    for e, g, p in zip(*(jax.tree.leaves(t) for t in (expected, got, initial))):
        e, g = np.asarray(e), np.asarray(g)
        assert e.dtype == g.dtype and e.tobytes() == g.tobytes()
        assert not np.array_equal(e, np.asarray(p))  # training moved every leaf
