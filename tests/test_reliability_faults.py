"""Fault injection: a training process killed with SIGKILL resumes exactly.

The worker (tests/reliability_worker.py) trains a small MLP deterministically
and checkpoints every EVERY steps with gradtx.save_checkpoint.  We kill it
twice: once between checkpoints, once while a checkpoint is being written
(after the temporary file is complete, before the rename), and check that
the resumed run ends bit for bit where an uninterrupted run ends.
"""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import jax
import numpy as np
import pytest
import reliability_worker as worker

import gradtx

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("reliability_worker.py")
TOTAL, EVERY = 24, 4
TIMEOUT = 120  # seconds any one worker may live


_LIVE = []


@pytest.fixture(autouse=True)
def _no_orphans():
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


def test_training_killed_mid_run_and_mid_write_resumes_bit_identical(tmp_path):
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
