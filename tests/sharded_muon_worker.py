"""Muon with the orthogonalization split over 8 simulated CPU devices (run as a subprocess).

``tests/test_orthogonal.py`` starts this with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``.  It trains a small
transformer-like tree for a few steps with ``gradtx.muon`` on one device and
with ``shard_matrices=(mesh, "data")`` under ZeRO-1 state sharding
(``gradtx.state_shardings``), and prints one JSON line: the largest parameter
difference, and the batch sizes of the dots each device runs in the compiled
sharded step (each device's share of every stack of matrices).
"""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx


def main():
    devices = jax.devices()
    assert len(devices) == 8, devices
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,), devices=devices)
    rng = np.random.default_rng(0)
    params = {f"w{i}": jnp.asarray(rng.normal(size=(16, 16)), jnp.float32) for i in range(16)}
    params.update({f"up{i}": jnp.asarray(rng.normal(size=(16, 48)), jnp.float32) for i in range(8)})
    params["bias"] = jnp.zeros(16, jnp.float32)
    grads = [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        for _ in range(3)
    ]

    def run(opt, shardings=None):
        def step(p, s, g):
            u, s = opt.update(g, s, p)
            return gradtx.apply_updates(p, u), s

        state = opt.init(params)
        p = params
        if shardings is not None:
            replicated = NamedSharding(mesh, P())
            p = jax.device_put(params, replicated)
            state = jax.device_put(state, shardings)
            step = jax.jit(step, out_shardings=(replicated, shardings))
        else:
            step = jax.jit(step)
        for g in grads:
            p, state = step(p, state, g)
        return p, step, state

    def dot_batches(step, state):
        # Batched dots of the polar iteration: f32[batch,m,n] dot(...) in the per-device program.
        hlo = step.lower(params, state, grads[0]).compile().as_text()
        return sorted(
            {int(m.group(1)) for m in re.finditer(r"f32\[(\d+),\d+,\d+\]\{[^}]*\} dot\(", hlo)}
        )

    plain, plain_step, plain_state = run(gradtx.muon(0.02))
    sharded_opt = gradtx.muon(0.02, shard_matrices=(mesh, "data"))
    shardings = gradtx.state_shardings(sharded_opt, params, mesh)
    sharded, step, state = run(sharded_opt, shardings)
    diff = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(sharded))
    )
    print(
        json.dumps(
            {
                "max_abs_diff": diff,
                "dot_batches": dot_batches(step, state),
                "one_device_dot_batches": dot_batches(plain_step, plain_state),
            }
        )
    )


if __name__ == "__main__":
    main()
