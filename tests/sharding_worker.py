"""One process of a two-process data-parallel run, and the same run on one device.

``tests/test_sharding.py`` starts two of these, each with 4 simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``):

    python tests/sharding_worker.py <port> <process_id> <out_dir>

They join with ``jax.distributed.initialize`` (coordinator on 127.0.0.1:<port>,
gloo CPU collectives), build one mesh over all 8 devices, and train a small
MLP with AdamW: batch split over the "data" axis, params replicated, optimizer
state split over "data" by ``gradtx.state_shardings`` (ZeRO stage 1).  Each
process writes its final params and what it measured to
``<out_dir>/process_<id>.npz``.  ``train_single_device`` is the same training on
one device, the reference the parent test compares with.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx

NUM_PROCESSES = 2
STEPS = 10


def problem(seed=0, batch=64):
    """Initial MLP params and a regression batch, as NumPy float32 arrays."""
    rng = np.random.default_rng(seed)
    params = {
        "w1": 0.3 * rng.standard_normal((16, 32)),
        "b1": np.zeros((32,)),
        "w2": 0.3 * rng.standard_normal((32, 4)),
        "b2": np.zeros((4,)),
    }
    params = {k: v.astype(np.float32) for k, v in params.items()}
    x = rng.standard_normal((batch, 16)).astype(np.float32)
    y = rng.standard_normal((batch, 4)).astype(np.float32)
    return params, x, y


def loss(params, x, y):
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((h @ params["w2"] + params["b2"] - y) ** 2)


def optimizer():
    return gradtx.adamw(0.01, weight_decay=0.1)


def make_step(opt):
    def step(params, state, x, y):
        grads = jax.grad(loss)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    return step


def train_single_device(steps=STEPS):
    """The whole batch on one device: the reference run."""
    params, x, y = problem()
    params = jax.tree.map(jnp.asarray, params)
    opt = optimizer()
    step = jax.jit(make_step(opt))
    state = opt.init(params)
    for _ in range(steps):
        params, state = step(params, state, jnp.asarray(x), jnp.asarray(y))
    return {k: np.asarray(v) for k, v in params.items()}


def train_distributed(port: int, process_id: int, out_dir: Path, steps=STEPS):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    address = f"127.0.0.1:{port}"
    jax.distributed.initialize(
        coordinator_address=address,
        coordinator_bind_address=address,
        num_processes=NUM_PROCESSES,
        process_id=process_id,
        initialization_timeout=120,
        heartbeat_timeout_seconds=30,
        shutdown_timeout_seconds=30,
    )
    try:
        mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))
        replicated = NamedSharding(mesh, P())
        batch = NamedSharding(mesh, P("data"))

        def global_array(value, sharding):
            # Every process holds the same NumPy value and contributes the
            # slices that its own devices hold.
            return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

        params0, x, y = problem()
        opt = optimizer()
        param_sh = {k: replicated for k in params0}
        state_sh = gradtx.state_shardings(opt, params0, mesh, axis="data")
        params = {k: global_array(v, replicated) for k, v in params0.items()}
        xs, ys = global_array(x, batch), global_array(y, batch)
        state = jax.jit(opt.init, out_shardings=state_sh)(params)
        step = jax.jit(
            make_step(opt),
            in_shardings=(param_sh, state_sh, batch, batch),
            out_shardings=(param_sh, state_sh),
        )
        for _ in range(steps):
            params, state = step(params, state, xs, ys)

        state_bytes = {str(s.device): 0 for s in jax.tree.leaves(state)[0].addressable_shards}
        for leaf in jax.tree.leaves(state):
            for shard in leaf.addressable_shards:
                state_bytes[str(shard.device)] += shard.data.nbytes
        info = {
            "process_index": jax.process_index(),
            "process_count": jax.process_count(),
            "device_count": jax.device_count(),
            "local_device_count": jax.local_device_count(),
            "state_bytes_per_local_device": state_bytes,
            "state_bytes_total": sum(leaf.nbytes for leaf in jax.tree.leaves(state)),
            "state_scalar_bytes": sum(
                leaf.nbytes for leaf in jax.tree.leaves(state) if leaf.ndim == 0
            ),
            "state_specs": [str(s.spec) for s in jax.tree.leaves(state_sh)],
        }
        final = {k: np.asarray(v.addressable_data(0)) for k, v in params.items()}
        np.savez(out_dir / f"process_{process_id}.npz", info=json.dumps(info), **final)
    finally:
        jax.distributed.shutdown()


if __name__ == "__main__":
    port_arg, process_arg, out_arg = sys.argv[1:4]
    train_distributed(int(port_arg), int(process_arg), Path(out_arg))
