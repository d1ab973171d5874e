"""Run by ``tests/test_sharding.py`` in a process with 8 simulated CPU devices.

Checks that the documented jitted init, ``jax.jit(opt.init,
out_shardings=gradtx.state_shardings(opt, params, mesh, axis=None))``,
places every moment like its parameter, on an Auto mesh and on an Explicit
one.  Prints one line per check and exits non-zero on the first failure.
"""

from __future__ import annotations

import collections
import sys

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx

OPTIMIZERS = {
    "sgd_momentum": lambda: gradtx.sgd(0.1, momentum=0.9),
    "rmsprop_centered": lambda: gradtx.rmsprop(0.01, centered=True),
    "adagrad": lambda: gradtx.adagrad(0.1),
    "adam": lambda: gradtx.adam(0.01),
    "adamw": lambda: gradtx.adamw(0.01, weight_decay=0.1),
    "amsgrad": lambda: gradtx.amsgrad(0.01),
    "apply_if_finite_adam": lambda: gradtx.apply_if_finite(gradtx.adam(0.01)),
}
SPECS = {
    "w1": ((16, 8), P("data", "model")),
    "b1": ((8,), P("model")),
    "w2": ((8, 4), P(None, "data")),
    "scale": ((3,), P()),
}


def bytes_per_device(tree):
    per_device = collections.Counter()
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            per_device[shard.device] += shard.data.nbytes
    return per_device


def check(name, make, axis_type):
    mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(axis_type,) * 2)
    params = {
        k: jax.device_put(jnp.ones(shape), NamedSharding(mesh, spec))
        for k, (shape, spec) in SPECS.items()
    }
    opt = make()
    with jax.set_mesh(mesh):
        state = jax.jit(
            opt.init, out_shardings=gradtx.state_shardings(opt, params, mesh, axis=None)
        )(params)
    eager = opt.init(params)  # eager init: each moment made beside its parameter
    for (path, leaf), ref in zip(
        jax.tree_util.tree_flatten_with_path(state)[0], jax.tree.leaves(eager)
    ):
        where = f"{name} ({axis_type}): state leaf {jax.tree_util.keystr(path)}"
        assert leaf.sharding.device_set == set(mesh.devices.flat), f"{where} left the mesh"
        if leaf.ndim == 0:  # a counter: replicated over the mesh
            assert leaf.sharding.is_fully_replicated, f"{where} is {leaf.sharding}"
        else:
            assert leaf.sharding.is_equivalent_to(ref.sharding, leaf.ndim), (
                f"{where} is {leaf.sharding}, eager init gives {ref.sharding}"
            )
    moments = [x for x in jax.tree.leaves(state) if x.ndim]
    assert bytes_per_device(moments) == bytes_per_device(
        [x for x in jax.tree.leaves(eager) if x.ndim]
    ), name
    print(
        f"ok {name} {axis_type}: per-device state bytes {max(bytes_per_device(moments).values())}",
        flush=True,
    )


def main():
    assert jax.device_count() == 8, jax.devices()
    for axis_type in (AxisType.Auto, AxisType.Explicit):
        for name, make in OPTIMIZERS.items():
            check(name, make, axis_type)
    print("all ok")


if __name__ == "__main__":
    sys.exit(main())
