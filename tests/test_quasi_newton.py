"""scale_by_lbfgs: the two-loop recursion against NumPy's and optax's, without a line search."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_optax_core as ref
from problems import PROBLEMS, assert_trajectories_close, run_jax, run_reference

import gradtx

# Without a line search L-BFGS needs a small fixed step to stay stable;
# unscaled, Rosenbrock's curvature makes it diverge.  With the scaled initial
# Hessian on the MLP, pairs with small <y, s> amplify round-off (the NumPy
# reference sums its inner products in another order) past 1e-10 within 100
# steps, so that pair runs on the other problems (the MLP is covered with a
# line search, against optax, in test_linesearch.py).
CASES = {
    "lbfgs": (0.2, {}, ("nested_quadratic", "rosenbrock")),
    "lbfgs_memory_2_unscaled": (
        0.05,
        {"memory_size": 2, "scale_init_precond": False},
        ("nested_quadratic", "mlp"),
    ),
}


@pytest.mark.parametrize(
    "name, problem_name", [(n, p) for n, (_, _, problems) in CASES.items() for p in problems]
)
def test_lbfgs_without_linesearch_matches_closed_form_and_optax(name, problem_name, x64):
    lr, kwargs, _ = CASES[name]
    problem = PROBLEMS[problem_name]
    lr = lr * problem.lr_scale
    actual = run_jax(gradtx.lbfgs(lr, linesearch=None, **kwargs), problem, gradtx.apply_updates)
    expected = run_reference(ref.lbfgs(lr, **kwargs), problem, whole_tree=True)
    assert_trajectories_close(actual, expected, f"{name} on {problem_name} vs NumPy")
    with jax.numpy_dtype_promotion("standard"):
        theirs = run_jax(optax.lbfgs(lr, linesearch=None, **kwargs), problem, optax.apply_updates)
    assert_trajectories_close(actual, theirs, f"{name} on {problem_name} vs optax")


def test_lbfgs_without_linesearch_in_float32_matches_optax():
    problem = PROBLEMS["nested_quadratic"]
    actual = run_jax(
        gradtx.lbfgs(0.05, linesearch=None), problem, gradtx.apply_updates, dtype=np.float32
    )
    with jax.numpy_dtype_promotion("standard"):
        expected = run_jax(
            optax.lbfgs(0.05, linesearch=None), problem, optax.apply_updates, dtype=np.float32
        )
    assert_trajectories_close(
        actual, expected, "lbfgs float32 vs optax float32", rtol=1e-5, atol=1e-6
    )


def test_scale_by_lbfgs_state_keeps_optax_fields_and_a_ring_of_pairs():
    tx = gradtx.scale_by_lbfgs(memory_size=3)
    x = {"w": jnp.ones((2, 2))}
    state = tx.init(x)
    assert state._fields == (
        "count",
        "params",
        "updates",
        "diff_params_memory",
        "diff_updates_memory",
        "weights_memory",
    )
    assert state.diff_params_memory["w"].shape == (3, 2, 2)
    for k in range(5):
        x2 = {"w": x["w"] * (1.0 + 0.1 * k)}
        _, state = tx.update(jax.tree.map(lambda p: 2 * p, x2), state, x2)
    assert int(state.count) == 5 and bool(jnp.all(state.weights_memory != 0))


def test_scale_by_lbfgs_first_step_is_normalised_gradient():
    tx = gradtx.scale_by_lbfgs()
    x = jnp.array([0.3, 0.4])
    u, _ = tx.update(x, tx.init(x), x)  # ||g|| = 0.5 < 1: gamma = 1
    np.testing.assert_allclose(u, [0.3, 0.4], rtol=1e-6)


def test_scale_by_lbfgs_with_zero_memory_raises():
    with pytest.raises(ValueError, match=r"^scale_by_lbfgs: memory_size must be an int >= 1"):
        gradtx.scale_by_lbfgs(0)


def test_scale_by_lbfgs_without_params_raises():
    tx = gradtx.scale_by_lbfgs()
    with pytest.raises(ValueError, match=r"^scale_by_lbfgs: update needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
