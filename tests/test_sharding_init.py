"""Jitted init on sharded params, on 8 simulated CPU devices (in a process of its own).

A plain ``jax.jit(opt.init)(params)`` on an Auto mesh returns state on one
device: init reads only the params' shapes, so jit sees no argument to take
placement from (optax's init does the same).  The documented way,
``jax.jit(opt.init, out_shardings=gradtx.state_shardings(opt, params, mesh,
axis=None))``, must place every moment like its parameter; the worker checks
it for several optimizers on Auto and Explicit meshes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300


def _env(n_devices: int) -> dict:
    env = dict(os.environ)
    flags = [
        f
        for f in env.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n_devices}"])
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def test_jitted_init_with_state_shardings_places_state_like_params_on_8_devices():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "sharding_init_worker.py")],
        env=_env(8),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert "all ok" in result.stdout, output[-8000:]


def test_readme_documents_jitted_init_with_out_shardings():
    readme = (ROOT / "README.md").read_text()
    assert (
        "jax.jit(opt.init, out_shardings=gradtx.state_shardings(opt, params, mesh, "
        "axis=None))(params)"
    ) in readme
