"""L-BFGS without a line search against NumPy's two-loop recursion and optax's lbfgs.

(With a line search, against optax: tests/test_linesearch.py.)
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
import reference_quasi_newton as ref_quasi_newton
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
    expected = run_reference(ref_quasi_newton.lbfgs(lr, **kwargs), problem, whole_tree=True)
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
