"""Dion and Dion2 under jit with sharded parameters on 4 simulated CPU devices (run as a subprocess).

``tests/test_dion.py`` starts this with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``.  It runs a few
float64 steps of ``gradtx.dion`` and ``gradtx.dion2`` on a tree whose
matrices are sharded over rows or columns of a 4-device mesh (and whose
state follows them), and on one device, and prints one JSON line: the
largest relative parameter difference per optimizer, and whether the
sharded result kept its sharding.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx


def main():
    devices = jax.devices()
    assert len(devices) == 4, devices
    mesh = jax.make_mesh((4,), ("data",), axis_types=(AxisType.Auto,), devices=devices)
    rng = np.random.default_rng(0)
    params = {
        "rows": jnp.asarray(rng.normal(size=(16, 8))),
        "cols": jnp.asarray(rng.normal(size=(6, 20))),
        "bias": jnp.asarray(rng.normal(size=8)),
    }
    specs = {"rows": P("data", None), "cols": P(None, "data"), "bias": P()}
    shardings = {k: NamedSharding(mesh, s) for k, s in specs.items()}
    grads = [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape)), params) for _ in range(5)
    ]

    def run(opt, sharded):
        def step(p, s, g):
            u, s = opt.update(g, s, p)
            return gradtx.apply_updates(p, u), s

        p = jax.device_put(params, shardings) if sharded else params
        state = opt.init(p)
        step = jax.jit(step)
        for g in grads:
            g = jax.device_put(g, shardings) if sharded else g
            p, state = step(p, state, g)
        return p

    out = {"sharded": True}
    for name, opt in (
        ("dion", gradtx.dion(0.05, rank_fraction=0.5)),
        ("dion2", gradtx.dion2(0.05, fraction=0.5)),
    ):
        one = run(opt, False)
        many = run(opt, True)
        out["sharded"] &= all(
            many[k].sharding.is_equivalent_to(shardings[k], many[k].ndim) for k in params
        )
        out[name] = max(
            float(jnp.max(jnp.abs(many[k] - one[k])) / jnp.max(jnp.abs(one[k]))) for k in params
        )
    print(json.dumps(out))


if __name__ == "__main__":
    # Here, not at import: pytest imports every module of tests/ for doctests.
    jax.config.update("jax_enable_x64", True)
    main()
