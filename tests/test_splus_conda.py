"""SPlus and Conda (and their transforms) against NumPy transcriptions of the papers'
equations (float64) and pytorch-optimizer 4.1.0's ``SPlus`` and ``Conda`` (float32)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_splus_conda as ref_sc
from problems import Problem, assert_trajectories_close, run_jax, run_reference, run_torch

import gradtx

STEPS = 40

# The trajectories (40 jitted steps, and pytorch-optimizer's import) take seconds each:
# marked slow, the quick tier leaves them out.


def _matrices():
    """0.5 ||W X - Y||^2 for a tall, a wide and a square matrix, and a quadratic in a vector.

    Shapes keep every statistic's null space at most one-dimensional after the
    first gradient (where eigh's basis is otherwise arbitrary).
    """
    rng = np.random.default_rng(3)
    shapes = {"tall": (4, 3), "wide": (3, 4), "square": (3, 3)}
    params = {k: rng.normal(size=s) for k, s in shapes.items()}
    params["vector"] = rng.normal(size=5)
    xs = {k: rng.normal(size=(s[1], 6)) for k, s in shapes.items()}
    ys = {k: rng.normal(size=(s[0], 6)) for k, s in shapes.items()}
    centre, curvature = rng.normal(size=5), rng.uniform(0.5, 2.0, size=5)
    treedef = jax.tree.structure(params)
    names = [k for k in sorted(params)]  # jax.tree.leaves order of a dict

    def loss(p):
        total = 0.5 * jnp.sum(curvature * (p["vector"] - centre) ** 2)
        for k in shapes:
            total = total + 0.5 * jnp.sum((p[k] @ xs[k] - ys[k]) ** 2)
        return total

    def grad_np(leaves):
        p = dict(zip(names, leaves))
        out = {"vector": curvature * (p["vector"] - centre)}
        out.update({k: (p[k] @ xs[k] - ys[k]) @ xs[k].T for k in shapes})
        return [out[k] for k in names]

    problem = Problem("matrices", params, loss, grad_np, lr_scale=1.0)
    assert problem.treedef == treedef
    return problem


PROBLEM = _matrices()


def _moved(trajectory, at_least=1e-2):
    start = jax.tree.leaves(PROBLEM.params)
    return max(np.max(np.abs(a - b)) for a, b in zip(trajectory[-1], start)) > at_least


# ----------------------------------------------------------------------------
# SPlus.

SPLUS_CASES = {
    "refresh_every_4": dict(inverse_steps=4, weight_decay=0.0),
    "weight_decay": dict(inverse_steps=5, weight_decay=0.1),
    # The tall matrix's long side (4) and the wide one's are not rotated.
    "max_dim_4": dict(inverse_steps=3, max_dim=4, nonstandard_constant=0.01, weight_decay=0.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(SPLUS_CASES))
def test_splus_matches_closed_form(case, x64):
    kw = SPLUS_CASES[case]
    lr = 0.3
    opt = gradtx.splus(lr, ema_rate=None, **kw)
    actual = run_jax(opt, PROBLEM, gradtx.apply_updates, steps=STEPS)
    expected = run_reference(ref_sc.splus(lr, **kw), PROBLEM, steps=STEPS)
    assert_trajectories_close(actual, expected, f"splus {case} vs NumPy")
    assert _moved(actual)


def _run_float32(opt, steps=STEPS):
    """opt in float32 on the problem's NumPy gradients (as ``run_torch`` feeds torch); the
    trajectory and the last state."""
    params = [jnp.asarray(p, jnp.float32) for p in jax.tree.leaves(PROBLEM.params)]
    params = jax.tree.unflatten(PROBLEM.treedef, params)
    state = opt.init(params)
    step = jax.jit(opt.update)
    trajectory = []
    for _ in range(steps):
        leaves = [np.asarray(p, np.float64) for p in jax.tree.leaves(params)]
        grads = [jnp.asarray(g, jnp.float32) for g in PROBLEM.grad_np(leaves)]
        u, state = step(jax.tree.unflatten(PROBLEM.treedef, grads), state, params)
        params = gradtx.apply_updates(params, u)
        trajectory.append([np.asarray(p) for p in jax.tree.leaves(params)])
    return trajectory, state


# pytorch-optimizer's SPlus runs eigh in float32 whatever the tensors' dtype; the
# tall matrix's statistic L (4 x 4, rank 3 after the first gradient) has eigenvalues
# spread over decades, so its float32 eigenvectors carry errors of about 1e-4 that
# the rotation passes on: over these 40 steps its float32 (and float64) trajectory is
# within 1.3e-4 of the float64 NumPy reference, gradtx's float32 one within 3e-5.
SPLUS_TORCH_TOL = dict(rtol=1e-3, atol=2e-4)


@pytest.mark.slow
def test_splus_matches_pytorch_optimizer():
    import torch
    from pytorch_optimizer import SPlus

    lr, kw = 0.3, dict(weight_decay=0.0, inverse_steps=4, ema_rate=0.9)
    actual, state = _run_float32(gradtx.splus(lr, **kw))
    made = []
    theirs = run_torch(
        lambda ps: made.append(SPlus(ps, lr=lr, **kw)) or made[0], PROBLEM, STEPS, torch.float32
    )
    assert_trajectories_close(
        actual, theirs, "splus vs pytorch-optimizer (float32)", **SPLUS_TORCH_TOL
    )
    made[0].eval()  # its parameters become the bias-corrected average
    evaluated = [p.detach().numpy() for p in made[0].param_groups[0]["params"]]
    ema = [np.asarray(e) for e in jax.tree.leaves(state.states[0].ema)]
    assert_trajectories_close(
        [ema], [evaluated], "splus average vs pytorch-optimizer eval()", **SPLUS_TORCH_TOL
    )
    expected = run_reference(ref_sc.splus(lr, weight_decay=0.0, inverse_steps=4), PROBLEM, STEPS)
    assert_trajectories_close(
        actual, expected, "splus float32 vs NumPy float64", rtol=1e-4, atol=5e-5
    )


# ----------------------------------------------------------------------------
# Conda.

CONDA_CASES = {
    "gap_3": dict(update_proj_gap=3),
    "weight_decay_scale": dict(update_proj_gap=5, weight_decay=0.1, scale=0.5),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CONDA_CASES))
def test_conda_matches_closed_form(case, x64):
    kw = CONDA_CASES[case]
    lr = 0.05
    actual = run_jax(gradtx.conda(lr, **kw), PROBLEM, gradtx.apply_updates, steps=STEPS)
    expected = run_reference(ref_sc.conda(lr, **kw), PROBLEM, steps=STEPS)
    assert_trajectories_close(actual, expected, f"conda {case} vs NumPy")
    assert _moved(actual)


@pytest.mark.slow
def test_conda_matches_pytorch_optimizer():
    import torch
    from pytorch_optimizer import Conda

    lr = 0.05
    actual, _ = _run_float32(gradtx.conda(lr, update_proj_gap=3))
    theirs = run_torch(
        lambda ps: Conda(ps, lr=lr, update_proj_gap=3), PROBLEM, STEPS, torch.float32
    )
    assert_trajectories_close(
        actual, theirs, "conda vs pytorch-optimizer (float32)", rtol=1e-4, atol=1e-5
    )


# ----------------------------------------------------------------------------
# The pieces on their own.


@pytest.mark.slow
def test_scale_by_splus_update_does_not_depend_on_eigenvector_order_or_signs(x64):
    rng = np.random.default_rng(5)
    g = {"w": jnp.asarray(rng.normal(size=(4, 3)))}
    tx = gradtx.scale_by_splus(inverse_steps=1)
    _, state = tx.update(g, tx.init(g))
    flips = {0: np.diag([1.0, -1.0, 1.0, -1.0])[:, [2, 0, 3, 1]], 1: np.diag([-1.0, 1.0, -1.0])}
    bases = {"w": {a: q @ flips[a] for a, q in state.bases["w"].items()}}
    again = jax.tree.map(lambda x: 2.0 * x, g)
    expected, _ = tx.update(again, state)
    actual, _ = tx.update(again, state._replace(bases=bases))
    np.testing.assert_allclose(actual["w"], expected["w"], rtol=1e-12, atol=1e-12)
    assert not np.allclose(expected["w"], np.sign(expected["w"]))  # rotated, not a plain sign


def test_scale_by_splus_shape_scales_matrices_by_their_mean_width():
    tx = gradtx.scale_by_splus_shape(nonstandard_constant=0.1, max_dim=5)
    u = {"w": jnp.ones((3, 5)), "long": jnp.ones((3, 6)), "b": jnp.ones(4), "s": jnp.ones(())}
    out, _ = tx.update(u, tx.init(u))
    assert {k: float(v.ravel()[0]) for k, v in out.items()} == pytest.approx(
        {"w": 0.25, "long": 0.1, "b": 0.1, "s": 0.1}
    )


def test_scale_by_conda_rotates_the_shorter_side_of_each_matrix():
    params = {"tall": jnp.zeros((4, 3)), "wide": jnp.zeros((2, 5)), "vector": jnp.zeros(3)}
    bases = gradtx.scale_by_conda().init(params).bases
    assert {k: {a: q.shape for a, q in b.items()} for k, b in bases.items()} == {
        "tall": {1: (3, 3)},
        "wide": {0: (2, 2)},
        "vector": {},
    }


def test_splus_without_ema_rate_keeps_no_average():
    params = {"w": jnp.zeros((2, 2))}
    with_average = gradtx.splus(ema_rate=0.9).init(params)
    without = gradtx.splus(ema_rate=None).init(params)
    assert isinstance(with_average.states[0], gradtx.EmaParamsState)
    assert not any(isinstance(s, gradtx.EmaParamsState) for s in without.states)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: gradtx.splus(inverse_steps=0), "inverse_steps must be an integer >= 1"),
        (lambda: gradtx.splus(max_dim=2.5), "max_dim must be an integer >= 1"),
        (lambda: gradtx.splus(b2=1.0), r"b2 must be in \[0, 1\)"),
        (lambda: gradtx.splus(ema_rate=1.0), r"ema_rate must be in \[0, 1\)"),
        (lambda: gradtx.conda(update_proj_gap=0), "update_proj_gap must be an integer >= 1"),
        (lambda: gradtx.conda(eps=-1.0), "eps must be"),
    ],
)
def test_splus_conda_bad_hyperparameters_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("factory", [gradtx.scale_by_splus, gradtx.scale_by_conda])
def test_splus_conda_complex_params_raise(factory):
    with pytest.raises(TypeError, match="complex parameters are not supported"):
        factory().init({"w": jnp.zeros((2, 2), jnp.complex64)})
