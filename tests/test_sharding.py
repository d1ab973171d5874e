"""gradtx on several devices and several processes.

The multi-device checks need jax to start with more than one CPU device, which
must be set before jax is imported, so they run in processes of their own:

* ``tests/sharding_checks.py`` (a pytest file) on 8 simulated devices;
* two ``tests/sharding_worker.py`` processes joined with ``jax.distributed`` on
  127.0.0.1, 4 devices each;
* ``tests/sharding_init_worker.py`` on 8 simulated devices:
  ``jax.jit(opt.init, out_shardings=gradtx.state_shardings(opt, params, mesh,
  axis=None))`` must place every moment like its parameter, for several
  optimizers on Auto and Explicit meshes;
* ``tests/sharding_rows_worker.py`` on 4 and on 8 simulated devices: every
  row of the shared optimizer table, eager init, plain ``jax.jit(opt.init)``
  on an Auto mesh and ``state_shardings``, each state leaf shaped like a
  parameter sharded like it (about 20-25 s per device count on a loaded
  2-core machine).

This process keeps its single device; it checks ``state_shardings``'s argument
errors and computes the single-device reference of the two-process run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
CHECKS_TIMEOUT_S = 600
TWO_PROCESS_TIMEOUT_S = 240
INIT_TIMEOUT_S = 300


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


def _tail(text: str, limit: int = 8000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _load_worker():
    spec = importlib.util.spec_from_file_location("sharding_worker", TESTS / "sharding_worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# In this process (one device)


def test_state_shardings_with_unknown_axis_raises():
    mesh = jax.make_mesh((1,), ("data",))
    with pytest.raises(ValueError, match="axis 'batch' is not an axis of the mesh"):
        gradtx.state_shardings(gradtx.adam(0.1), {"w": jnp.ones(3)}, mesh, axis="batch")


def test_state_shardings_with_non_mesh_raises():
    with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh, got str"):
        gradtx.state_shardings(gradtx.adam(0.1), {"w": jnp.ones(3)}, "data")


def test_state_shardings_with_non_transformation_raises():
    mesh = jax.make_mesh((1,), ("data",))
    with pytest.raises(TypeError, match="opt must be a gradient transformation"):
        gradtx.state_shardings(lambda p: p, {"w": jnp.ones(3)}, mesh)


def test_state_shardings_with_params_on_another_mesh_raises():
    mesh = jax.make_mesh((1,), ("data",))
    other = jax.make_mesh((1,), ("model",))
    params = {"w": jax.device_put(jnp.ones(3), NamedSharding(other, P("model")))}
    with pytest.raises(
        ValueError,
        match=r"parameter \['w'\] is sharded on a mesh with axes "
        r"\{'model': 1\}, not on the given mesh",
    ):
        gradtx.state_shardings(gradtx.adam(0.1), params, mesh)


def test_state_shardings_on_one_device_mesh_places_state_like_init():
    mesh = jax.make_mesh((1,), ("data",))
    params = {"w": jnp.ones((4, 3)), "b": jnp.ones((3,))}
    opt = gradtx.adamw(0.1)
    shardings = gradtx.state_shardings(opt, params, mesh)
    state = opt.init(params)
    assert jax.tree.structure(shardings) == jax.tree.structure(state)
    for sharding, leaf in zip(jax.tree.leaves(shardings), jax.tree.leaves(state)):
        assert isinstance(sharding, NamedSharding) and sharding.mesh == mesh
        assert sharding.spec.count("data") == (1 if leaf.ndim else 0), (sharding, leaf.shape)


# ---------------------------------------------------------------------------
# In processes of their own


def test_eight_device_checks_pass():
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rf",
        "--tb=short",
        str(TESTS / "sharding_checks.py"),
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=_env(8), capture_output=True, text=True, timeout=CHECKS_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        output = (
            (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        )
        pytest.fail(
            f"tests/sharding_checks.py on 8 devices timed out after "
            f"{CHECKS_TIMEOUT_S} s:\n{_tail(output)}"
        )
    output = proc.stdout + proc.stderr
    failed = "\n".join(line for line in output.splitlines() if line.startswith(("FAILED", "ERROR")))
    assert proc.returncode == 0, (
        f"tests/sharding_checks.py on 8 simulated devices failed (exit {proc.returncode}); "
        f"rerun with XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest "
        f"tests/sharding_checks.py\n{failed}\n\n{_tail(output)}"
    )


def test_two_processes_on_loopback_train_like_one_device(tmp_path):
    port = _free_port()
    procs, logs = [], []
    timed_out = False
    try:
        for process_id in range(2):
            log = open(tmp_path / f"process_{process_id}.log", "w")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(TESTS / "sharding_worker.py"),
                        str(port),
                        str(process_id),
                        str(tmp_path),
                    ],
                    cwd=ROOT,
                    env=_env(4),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + TWO_PROCESS_TIMEOUT_S
        for proc in procs:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
                break
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
    output = "\n".join(
        f"--- process {i} (exit {p.returncode}) ---\n"
        + _tail((tmp_path / f"process_{i}.log").read_text(), 4000)
        for i, p in enumerate(procs)
    )
    assert not timed_out, f"two-process run timed out after {TWO_PROCESS_TIMEOUT_S} s:\n{output}"
    assert all(p.returncode == 0 for p in procs), f"two-process run failed:\n{output}"

    worker = _load_worker()
    reference = worker.train_single_device()
    params0, _, _ = worker.problem()
    for process_id in range(2):
        with np.load(tmp_path / f"process_{process_id}.npz") as result:
            info = json.loads(str(result["info"]))
            final = {k: result[k] for k in reference}
        assert (info["process_index"], info["process_count"]) == (process_id, 2), info
        assert (info["device_count"], info["local_device_count"]) == (8, 4), info
        for key, want in reference.items():
            np.testing.assert_allclose(
                final[key],
                want,
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"process {process_id}: params[{key}]",
            )
            assert not np.allclose(want, params0[key]), f"params[{key}] did not train"
        # AdamW's two float32 moments: each leaf split 8 ways except b2 (4
        # floats, not divisible); the scalar counters replicated.
        n_moment_floats = sum(
            v.size // 8 if any(d % 8 == 0 for d in v.shape) else v.size for v in params0.values()
        )
        expected = 2 * 4 * n_moment_floats + info["state_scalar_bytes"]
        assert set(info["state_bytes_per_local_device"].values()) == {expected}, info


def test_jitted_init_with_state_shardings_places_state_like_params_on_8_devices():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "sharding_init_worker.py")],
        env=_env(8),
        capture_output=True,
        text=True,
        timeout=INIT_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert "all ok" in result.stdout, output[-8000:]


@pytest.mark.parametrize("n_devices", [4, 8])
def test_every_row_places_moments_like_params_eager_jit_and_planned(n_devices):
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "sharding_rows_worker.py")],
        env=_env(n_devices),
        capture_output=True,
        text=True,
        timeout=INIT_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert f"wrappers on {n_devices} devices" in result.stdout, output[-8000:]


def test_readme_documents_jitted_init_with_out_shardings():
    readme = (ROOT / "README.md").read_text()
    assert (
        "jax.jit(opt.init, out_shardings=gradtx.state_shardings(opt, params, mesh, "
        "axis=None))(params)"
    ) in readme
