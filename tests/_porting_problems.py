"""Shared by the porting tests: three problems in one pytree, and trajectory helpers.

The problems are a quadratic on a nested pytree (leaves of rank 2, 1 and 0
with different curvatures), the Rosenbrock function, and a small tanh MLP on
fixed data.  The presets are elementwise, so running the three side by side
under one optimizer gives each the trajectory it would have alone, at the
cost of one compilation.  The loss is written once with operators that
``jax.numpy`` arrays and ``torch`` tensors share; ``tanh`` is passed in.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import gradtx

STEPS = 110


def _problem():
    rng = np.random.default_rng(20240607)
    params = {
        "quad": {"a": rng.normal(size=(3, 2)), "b": [rng.normal(size=(4,)), np.array(0.7)]},
        "rosen": np.array([-0.8, 0.9]),
        "mlp": {
            "w1": 0.5 * rng.normal(size=(3, 8)),
            "b1": 0.1 * rng.normal(size=(8,)),
            "w2": 0.5 * rng.normal(size=(8, 1)),
            "b2": np.zeros(1),
        },
    }
    const = {
        "curv": {
            "a": rng.uniform(0.5, 3.0, size=(3, 2)),
            "b": [rng.uniform(0.5, 3.0, size=(4,)), np.array(1.5)],
        },
        "target": {"a": rng.normal(size=(3, 2)), "b": [rng.normal(size=(4,)), np.array(-0.3)]},
        "x": rng.normal(size=(16, 3)),
        "y": 3.0 + np.sin(rng.normal(size=(16, 1))),  # far from the start: no gradient nears 0
    }
    return params, const


PARAMS, CONST = _problem()
LEAVES, TREEDEF = jax.tree.flatten(PARAMS)


def loss(params, const, tanh):
    """Quadratic + Rosenbrock + MLP regression; works on jnp arrays and torch tensors."""
    quad = 0.0
    for p, c, t in [
        (params["quad"]["a"], const["curv"]["a"], const["target"]["a"]),
        (params["quad"]["b"][0], const["curv"]["b"][0], const["target"]["b"][0]),
        (params["quad"]["b"][1], const["curv"]["b"][1], const["target"]["b"][1]),
    ]:
        quad = quad + (0.5 * c * (p - t) ** 2).sum()
    x, y = params["rosen"][0], params["rosen"][1]
    rosen = (1 - x) ** 2 + 100 * (y - x**2) ** 2
    mlp = params["mlp"]
    hidden = tanh(const["x"] @ mlp["w1"] + mlp["b1"])
    mse = ((hidden @ mlp["w2"] + mlp["b2"] - const["y"]) ** 2).mean()
    return quad + rosen + mse


def gradtx_trajectory(opt, sign=1.0, steps=STEPS, dtype=jnp.float64, record=None):
    """Run ``opt`` from PARAMS in ``dtype`` (float64 needs x64 on); leaves stacked over steps.

    ``record(params, state)`` picks what is stacked, a tree shaped like the
    params (default: the params after each step).
    """
    const = jax.tree.map(lambda x: jnp.asarray(x, dtype), CONST)
    grad = jax.grad(lambda p: sign * loss(p, const, jnp.tanh))
    record = record or (lambda params, state: params)

    def body(carry, _):
        params, state = carry
        updates, state = opt.update(grad(params), state, params)
        params = gradtx.apply_updates(params, updates)
        return (params, state), ravel(jax.tree.leaves(record(params, state)))

    def run(params):
        return jax.lax.scan(body, (params, opt.init(params)), None, length=steps)[1]

    params = jax.tree.map(lambda x: jnp.asarray(x, dtype), PARAMS)
    return unravel(compile_quickly(run, params)(params))


def ravel(leaves):
    """One flat vector per step: a single scan output compiles faster than eight."""
    return jnp.concatenate([jnp.ravel(leaf) for leaf in leaves])


def unravel(flat_steps):
    """(steps, n) back to the leaves of PARAMS, each (steps, *shape)."""
    flat_steps = np.asarray(flat_steps)
    sizes = np.cumsum([leaf.size for leaf in LEAVES])[:-1]
    return [
        part.reshape((len(flat_steps),) + leaf.shape)
        for part, leaf in zip(np.split(flat_steps, sizes, axis=1), LEAVES)
    ]


def compile_quickly(fn, *args):
    """jit-compile ``fn`` for ``args`` without LLVM's optimisation passes.

    These graphs run once, so compilation dominates the test's time; level 0
    cuts it by about a third and leaves IEEE arithmetic as it is.
    """
    return jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 0})


def relative_error(ours, theirs):
    """Worst over leaves and steps of max|ours - theirs| / max|theirs| (per leaf and step)."""
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape, (a.shape, b.shape)
        axes = tuple(range(1, b.ndim))
        scale = np.maximum(np.abs(b).max(axis=axes) if axes else np.abs(b), np.finfo(float).tiny)
        diff = np.abs(a - b).max(axis=axes) if axes else np.abs(a - b)
        worst = max(worst, float((diff / scale).max()))
    return worst


def assert_same_trajectory(ours, theirs, rtol=1e-6):
    """Equal to rtol per leaf and step, and far enough from the start to mean something."""
    moved = max(float(np.abs(b[-1] - p0).max()) for b, p0 in zip(theirs, LEAVES))
    assert moved > 1e-3, f"the reference barely moved ({moved:.2e}); the comparison is vacuous"
    assert all(np.all(np.isfinite(b)) for b in theirs), "the reference diverged"
    error = relative_error(ours, theirs)
    assert error < rtol, f"worst relative error {error:.3e} >= {rtol:.0e}"
    return error
