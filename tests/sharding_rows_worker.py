"""Run by ``tests/test_sharding.py`` with N simulated CPU devices (``python tests/sharding_rows_worker.py``).

Every row of the shared optimizer table (``tests/optimizers.py``), with its
typical hyperparameters, on a ("data", "model") mesh of all the devices
(N/2 x 2), and ``flatten``, ``partition`` and ``masked`` around Adam (states
that pack the params, or hold some of them).  The params have distinct shapes, so a state leaf "shaped like a
parameter" names one parameter.  For each row:

* eager ``init`` on the sharded params, a plain ``jax.jit(opt.init)`` on the
  Auto mesh, and ``state_shardings(opt, params, mesh, axis=None)`` each give
  every state leaf shaped like a parameter that parameter's sharding, and
  put every leaf on all the mesh's devices (nothing is gathered onto one);
* the compiled ``jax.jit(opt.init)`` runs no collective (tying a moment to
  its parameter reads nothing);
* L-BFGS's histories, shaped ``(k, *param.shape)``, are sharded like their
  parameter along the trailing dimensions.

Prints one line per row and ``all ok`` at the end; exits non-zero on the
first failure.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

sys.path.insert(0, str(Path(__file__).resolve().parent))

from optimizers import OPTIMIZERS, typical  # noqa: E402

import gradtx  # noqa: E402

# Distinct sizes (no factor or statistic of one parameter is shaped like another),
# every split dimension divisible by its mesh axis on 4 and on 8 devices.
PARAM_SPECS = {
    "w1": ((16, 8), P("data", "model")),
    "w2": ((24, 4), P(None, "data")),
    "b1": ((6,), P("model")),
    "s": ((3,), P()),
}


# Wrappers whose state holds only some params, or packs them: beside the table's rows.
WRAPPERS = {
    "flatten_adam": lambda: gradtx.flatten(gradtx.adam(0.01)),
    "partition": lambda: gradtx.partition(
        {"adam": gradtx.adam(0.01), "sgd": gradtx.sgd(0.1, momentum=0.9)},
        {"w1": "adam", "w2": "sgd", "b1": "adam", "s": "sgd"},
    ),
    "masked_adam": lambda: gradtx.masked(
        gradtx.adam(0.01), {"w1": True, "w2": False, "b1": False, "s": True}
    ),
}


COLLECTIVE = re.compile(
    r"\s(all-gather|all-reduce|reduce-scatter|collective-permute|all-to-all)(?:-start)?\("
)


def full(spec, ndim):
    return tuple(spec) + (None,) * (ndim - len(spec))


def check_tree(where, state, shardings, params, mesh):
    """Each leaf of ``state`` (arrays or shapes) has the sharding at its place in ``shardings``."""
    by_shape = {tuple(p.shape): p for p in params.values()}
    devices = set(mesh.devices.flat)
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    assert jax.tree.structure(shardings) == jax.tree.structure(state), where
    for (path, leaf), sharding in zip(leaves, jax.tree.leaves(shardings)):
        at = f"{where}: state leaf {jax.tree_util.keystr(path)} {tuple(leaf.shape)}"
        assert sharding.device_set == devices, f"{at} is on {len(sharding.device_set)} devices"
        param = by_shape.get(tuple(leaf.shape))
        if param is not None:
            assert sharding.is_equivalent_to(param.sharding, param.ndim), (
                f"{at} has {sharding}, its parameter {param.sharding}"
            )
        if "memory" in jax.tree_util.keystr(path) and leaf.ndim > 1:  # L-BFGS's histories
            param = by_shape[tuple(leaf.shape[1:])]
            want = NamedSharding(mesh, P(None, *full(param.sharding.spec, param.ndim)))
            assert sharding.is_equivalent_to(want, leaf.ndim), f"{at} has {sharding}, not {want}"


def main():
    n = jax.device_count()
    assert n in (4, 8), jax.devices()
    mesh = jax.make_mesh((n // 2, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    rng = np.random.default_rng(0)
    params = {
        k: jax.device_put(
            jnp.asarray(rng.standard_normal(shape), jnp.float32), NamedSharding(mesh, spec)
        )
        for k, (shape, spec) in PARAM_SPECS.items()
    }
    start = time.perf_counter()
    cases = [(row.name, lambda row=row: typical(row)) for row in OPTIMIZERS]
    for name, make in cases + list(WRAPPERS.items()):
        opt = make()
        compiled = jax.jit(opt.init).lower(params).compile()
        found = COLLECTIVE.findall(compiled.as_text())
        assert not found, f"{name}: the jitted init communicates: {found}"
        for how, state in (("eager", opt.init(params)), ("jit", compiled(params))):
            shardings = jax.tree.map(lambda x: x.sharding, state)
            check_tree(f"{name} {how}", state, shardings, params, mesh)
        planned = gradtx.state_shardings(opt, params, mesh, axis=None)
        check_tree(f"{name} state_shardings", state, planned, params, mesh)
        print(f"ok {name}", flush=True)
    print(
        f"all ok: {len(cases)} rows and {len(WRAPPERS)} wrappers on {n} devices in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
