"""DiLoCo and SNOO against float64 NumPy transcriptions: W workers under jax.vmap here, under
jax.shard_map on 4 simulated devices and in two jax.distributed processes in subprocesses."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_diloco as ref

import gradtx


def _optimizer(axis_name="workers", sync=ref.SYNC):
    inner = gradtx.adamw(**ref.INNER)
    outer = gradtx.sgd(ref.OUTER["learning_rate"], ref.OUTER["momentum"], nesterov=True)
    return gradtx.diloco(inner, outer, sync_period=sync, axis_name=axis_name)


def _step(opt):
    def step(params, state, curv, target):
        grads = jax.tree.map(lambda p, a, c: a * (p - c), params, curv, target)
        updates, state = opt.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    return step


def test_diloco_under_vmap_matches_numpy_workers(x64):
    params, curv, targets = ref.problem()
    want = ref.diloco(params, curv, targets)
    opt = _optimizer()
    stacked = {k: jnp.broadcast_to(v, (ref.WORKERS, *v.shape)) for k, v in params.items()}
    state = jax.vmap(opt.init)(stacked)
    step = jax.jit(jax.vmap(_step(opt), axis_name="workers"))
    for t in range(ref.STEPS):
        target = {k: v[t] for k, v in targets.items()}
        stacked, state = step(stacked, state, curv, target)
        for k in params:
            np.testing.assert_allclose(stacked[k], want[k][t], rtol=0, atol=1e-10, err_msg=k)
    # the outer params in every worker's state are the last synchronisation's
    for k in params:
        np.testing.assert_allclose(state.outer_params[k], want[k][5], rtol=0, atol=1e-10)


def test_snoo_matches_numpy_transcription(x64):
    params, curv, targets = ref.problem(workers=1)
    want = ref.snoo(params, curv, targets, k_steps=2, learning_rate=0.5, momentum=0.8)
    opt = gradtx.snoo(gradtx.adamw(**ref.INNER), sync_period=2, learning_rate=0.5, momentum=0.8)
    p = {k: jnp.asarray(v) for k, v in params.items()}
    state = opt.init(p)
    step = jax.jit(_step(opt))
    for t in range(ref.STEPS):
        p, state = step(
            p, state, {k: v[0] for k, v in curv.items()}, {k: v[t, 0] for k, v in targets.items()}
        )
        for k in params:
            np.testing.assert_allclose(p[k], want[k][t], rtol=0, atol=1e-10, err_msg=k)


def test_diloco_with_one_worker_is_snoo_and_lookahead_without_momentum(x64):
    params, curv, targets = ref.problem(workers=1)
    # mu = 0: the outer step is Lookahead's phi + alpha (theta - phi)
    want = ref.snoo(params, curv, targets, k_steps=3, learning_rate=0.5, momentum=0.0)
    opts = [
        gradtx.diloco(gradtx.adamw(**ref.INNER), gradtx.sgd(0.5), sync_period=3),
        gradtx.lookahead_in_state(gradtx.adamw(**ref.INNER), sync_period=3, slow_step_size=0.5),
    ]
    for opt in opts:
        p = {k: jnp.asarray(v) for k, v in params.items()}
        state = opt.init(p)
        step = jax.jit(_step(opt))
        for t in range(ref.STEPS):
            p, state = step(
                p,
                state,
                {k: v[0] for k, v in curv.items()},
                {k: v[t, 0] for k, v in targets.items()},
            )
        for k in params:
            np.testing.assert_allclose(p[k], want[k][-1], rtol=0, atol=1e-10, err_msg=k)


def test_diloco_with_sync_period_below_one_raises():
    with pytest.raises(ValueError, match="diloco: sync_period must be an int >= 1, got 0"):
        gradtx.diloco(gradtx.sgd(0.1), gradtx.sgd(0.7), sync_period=0)
    with pytest.raises(ValueError, match="snoo: sync_period must be an int >= 1, got 2.0"):
        gradtx.snoo(gradtx.sgd(0.1), sync_period=2.0)


def test_diloco_with_non_transformation_raises():
    with pytest.raises(TypeError, match="diloco: outer must be a gradient transformation"):
        gradtx.diloco(gradtx.sgd(0.1), 0.7, sync_period=2)


def test_diloco_with_unbound_axis_name_raises():
    opt = _optimizer(axis_name="workers")
    params = {"w": jnp.zeros(2)}
    with pytest.raises(NameError, match="diloco: axis_name='workers' is not bound here"):
        opt.update(params, opt.init(params), params)


def test_diloco_update_without_params_raises():
    opt = _optimizer(axis_name=None)
    params = {"w": jnp.zeros(2)}
    with pytest.raises(ValueError, match="diloco: update needs params"):
        opt.update(params, opt.init(params))


# In processes of their own: jax must start with several CPU devices.

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "diloco_worker.py"
TIMEOUT_S = 240


def _env(n_devices):
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


def _max_error(output):
    found = re.findall(r"^max_abs_error (\S+)$", output, re.MULTILINE)
    assert len(found) == 1, output[-4000:]
    return float(found[0])


@pytest.mark.slow
def test_diloco_under_shard_map_on_4_devices_matches_numpy_workers():
    proc = subprocess.run(
        [sys.executable, str(WORKER), "mesh"],
        cwd=ROOT,
        env=_env(4),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert _max_error(output) <= 1e-10


@pytest.mark.slow
def test_diloco_in_two_processes_matches_numpy_workers(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logs = [tmp_path / f"process_{i}.log" for i in range(2)]
    procs = []
    try:
        for i, log in enumerate(logs):
            with open(log, "w") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, str(WORKER), "process", str(port), str(i)],
                        cwd=ROOT,
                        env=_env(2),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        deadline = time.monotonic() + TIMEOUT_S
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, log in zip(procs, logs):
        output = log.read_text()
        assert proc.returncode == 0, output[-4000:]
        assert _max_error(output) <= 1e-10


@pytest.mark.slow
def test_snoo_in_float32_matches_torch_adamw_and_nesterov_sgd():
    import torch  # here, not at the top: importing torch takes seconds

    params, curv, targets = ref.problem(workers=1)
    k_steps, lr, mu = 3, 0.5, 0.8
    fast = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in params.items()}
    slow = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in params.items()}
    inner = torch.optim.AdamW(
        list(fast.values()),
        lr=ref.INNER["learning_rate"],
        betas=(ref.INNER["b1"], ref.INNER["b2"]),
        eps=ref.INNER["eps"],
        weight_decay=ref.INNER["weight_decay"],
    )
    outer = torch.optim.SGD(list(slow.values()), lr=lr, momentum=mu, nesterov=True)
    opt = gradtx.snoo(gradtx.adamw(**ref.INNER), sync_period=k_steps, learning_rate=lr, momentum=mu)
    p = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    a = {k: jnp.asarray(v[0], jnp.float32) for k, v in curv.items()}
    state = opt.init(p)
    step = jax.jit(_step(opt))
    for t in range(ref.STEPS):
        c = {k: v[t, 0].astype(np.float32) for k, v in targets.items()}
        p, state = step(p, state, a, {k: jnp.asarray(v) for k, v in c.items()})
        with torch.no_grad():
            for k, w in fast.items():
                w.grad = torch.tensor(curv[k][0], dtype=torch.float32) * (w - torch.tensor(c[k]))
        inner.step()
        if (t + 1) % k_steps == 0:
            with torch.no_grad():
                for k, w in slow.items():
                    w.grad = w - fast[k]  # the pseudo-gradient s = w - w~
            outer.step()
            with torch.no_grad():
                for k, w in fast.items():
                    w.copy_(slow[k])
        for k in params:
            np.testing.assert_allclose(p[k], fast[k].detach().numpy(), rtol=1e-5, atol=1e-6)
