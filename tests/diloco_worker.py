"""DiLoCo's four workers on four devices, checked against the float64 NumPy workers.

``tests/test_diloco.py`` runs this file in processes of their own, since jax
must start with several CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count``):

    python tests/diloco_worker.py mesh
        one process, 4 devices: ``jax.shard_map`` over a "workers" mesh axis;
    python tests/diloco_worker.py process <port> <process_id>
        one of two processes with 2 devices each, joined by
        ``jax.distributed.initialize`` (127.0.0.1:<port>, gloo collectives),
        the same shard_map over the 4 devices of both.

Each run trains ``reference_diloco``'s problem in float64, one worker per
device, and prints ``max_abs_error <e>`` against ``reference_diloco.diloco``
(every worker's params after every step, on the devices it holds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_diloco as ref

import gradtx


def optimizer():
    inner = gradtx.adamw(**ref.INNER)
    outer = gradtx.sgd(ref.OUTER["learning_rate"], ref.OUTER["momentum"], nesterov=True)
    return gradtx.diloco(inner, outer, sync_period=ref.SYNC, axis_name="workers")


def train_on_mesh() -> float:
    """Train on a mesh of every device (one worker each); the largest error on this process's."""
    assert jax.device_count() == ref.WORKERS, jax.devices()
    mesh = jax.make_mesh((ref.WORKERS,), ("workers",))
    split = NamedSharding(mesh, P("workers"))
    opt = optimizer()
    params, curv, targets = ref.problem()
    want = ref.diloco(params, curv, targets)

    def one_worker(fn):
        # each device's block holds one worker: drop and restore its leading axis of 1
        def body(*args):
            out = fn(*jax.tree.map(lambda x: x[0], args))
            return jax.tree.map(lambda x: x[None], out)

        return jax.shard_map(body, mesh=mesh, in_specs=P("workers"), out_specs=P("workers"))

    def step(p, state, a, c):
        grads = jax.tree.map(lambda p_, a_, c_: a_ * (p_ - c_), p, a, c)
        updates, state = opt.update(grads, state, p)
        return gradtx.apply_updates(p, updates), state

    def put(value):
        value = np.asarray(value)
        return jax.make_array_from_callback(value.shape, split, lambda index: value[index])

    stacked = {k: put(np.broadcast_to(v, (ref.WORKERS, *v.shape))) for k, v in params.items()}
    curv = {k: put(v) for k, v in curv.items()}
    state = jax.jit(one_worker(opt.init))(stacked)
    run = jax.jit(one_worker(step))
    error = 0.0
    for t in range(ref.STEPS):
        stacked, state = run(stacked, state, curv, {k: put(v[t]) for k, v in targets.items()})
        for k, leaf in stacked.items():
            for shard in leaf.addressable_shards:
                got = np.asarray(shard.data)
                error = max(error, float(np.max(np.abs(got - want[k][t][shard.index]))))
    return error


def main(argv):
    if argv[0] == "mesh":
        print(f"max_abs_error {train_on_mesh():.3e}")
        return
    port, process_id = int(argv[1]), int(argv[2])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    address = f"127.0.0.1:{port}"
    jax.distributed.initialize(
        coordinator_address=address,
        coordinator_bind_address=address,
        num_processes=2,
        process_id=process_id,
        initialization_timeout=120,
        heartbeat_timeout_seconds=30,
        shutdown_timeout_seconds=30,
    )
    try:
        assert jax.local_device_count() == 2 and jax.process_count() == 2
        print(f"max_abs_error {train_on_mesh():.3e}")
    finally:
        jax.distributed.shutdown()


if __name__ == "__main__":
    # Here, not at import: pytest imports every module of tests/ for doctests.
    jax.config.update("jax_enable_x64", True)
    main(sys.argv[1:])
