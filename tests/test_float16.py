"""float16 parameters under extreme gradients, for every row of the shared table.

float16 ends at 65504 and its smallest subnormal is about 6e-8: a default
``eps = 1e-8`` is 0 there, a zero gradient's ``sqrt(0) + eps`` denominator is
0 and ``0 / 0`` is NaN; the square of a gradient above 256 is inf.  gradtx
runs the arithmetic of float16 parameters in float32 (``compute_dtype``) and
keeps second moments in float32, so float16 fails only where the float32
result itself does not fit float16.

Each row takes three jitted steps from float16 parameters with a constant
gradient that is zero, tiny (1e-7, a float16 subnormal) or huge (6e4, near
float16's maximum), and the same three steps from the float32 copy of those
parameters and gradients.  Wherever the float32 run's updates, parameters or
state are finite and fit the float16 run's dtype (finite once cast to it), the float16
run's must be finite too.  The rows of ``HUGE_LIMITS`` keep float16 sums
or inner products that outgrow the gradient: their "huge" is smaller.  One
jitted step per row serves both dtypes and all three gradients (two
traces); the whole table takes about a minute on two cores, and the quick
tier runs its core rows only.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from optimizers import IDS, OPTIMIZERS, typical

import gradtx

STEPS = 3
_RNG = np.random.default_rng(0)
_PARAMS = {"w": _RNG.normal(size=(4, 3)), "b": _RNG.normal(size=3)}
_SIGNS = jax.tree.map(lambda p: np.where(_RNG.normal(size=p.shape) < 0, -1.0, 1.0), _PARAMS)
GRADIENTS = {"zero": 0.0, "tiny": 1e-7, "huge": 6e4}

# Rows with a known float16 limit, where "huge" is smaller.  Heavy-ball sums
# g + b1 m (up to |g| / (1 - b1)) and NAdam's look-ahead before Muon's
# orthogonalization (about 1.5 g at the first step) pass between transforms,
# or stay in state, as float16: 6e3 keeps three steps of them below 65504.
# L-BFGS forms its inner products <y, s> and ||g||^2 in the parameters'
# dtype: 50 keeps ||g||^2 of the 15 entries below 65504.
HUGE_LIMITS = {
    "sgd_nesterov": 6e3,
    "simplified_ademamix": 6e3,
    "muon": 6e3,
    "muon_polar_express": 6e3,
    "lbfgs": 50.0,
    # Dion's and Dion2's buffers M + G are sums kept in the parameters' dtype.
    "dion": 6e3,
    "dion2": 6e3,
    # MuonClip's heavy-ball trace, like muon's momentum, sums up to |g| / (1 - b1).
    "muonclip": 6e3,
}


@functools.cache
def _optimizer_and_step(name):
    opt = typical(OPTIMIZERS[IDS.index(name)])

    def step(params, state, grads):
        value = sum(jnp.sum(g.astype(jnp.float32) ** 2) for g in jax.tree.leaves(grads))
        updates, state = opt.update(grads, state, params, value=value)
        return updates, gradtx.apply_updates(params, updates), state

    return opt, jax.jit(step)


def _run(step, opt, dtype, magnitude):
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float16).astype(dtype), _PARAMS)
    grads = jax.tree.map(lambda s: jnp.asarray(magnitude * s, jnp.float16).astype(dtype), _SIGNS)
    state = opt.init(params)
    trace = []
    for _ in range(STEPS):
        updates, params, state = step(params, state, grads)
        trace.append((updates, params, state))
    return trace


def _floating_leaves(tree):
    return [
        np.asarray(x)
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(x), jnp.floating)
    ]


@pytest.mark.parametrize("kind", sorted(GRADIENTS))
@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_optimizer_float16_is_finite_where_float32_fits_float16(row, kind):
    opt, step = _optimizer_and_step(row.name)
    magnitude = GRADIENTS[kind]
    if kind == "huge":
        magnitude = HUGE_LIMITS.get(row.name, magnitude)
    half = _run(step, opt, jnp.float16, magnitude)
    full = _run(step, opt, jnp.float32, magnitude)
    failures = []
    for t, (h, f) in enumerate(zip(half, full), start=1):
        for what, h_tree, f_tree in zip(("updates", "params", "state"), h, f):
            for i, (x, y) in enumerate(zip(_floating_leaves(h_tree), _floating_leaves(f_tree))):
                with np.errstate(over="ignore"):
                    fits = np.isfinite(y.astype(x.dtype))
                bad = fits & ~np.isfinite(x.astype(np.float32))
                if bad.any():
                    failures.append(f"step {t} {what} leaf {i}: {x[bad][:4]} vs {y[bad][:4]}")
    assert not failures, "\n".join(failures)
