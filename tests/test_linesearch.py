"""The zoom line search and L-BFGS with it: against optax step by step; the Wolfe conditions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import pytest
from problems import PROBLEMS, STEPS, assert_trajectories_close

import gradtx

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


def _run(lib, opt, problem, steps=STEPS, dtype=np.float64):
    """``steps`` solver iterations; the value and gradient come from the line search's state."""
    value_and_grad = lib.value_and_grad_from_state(problem.loss)

    @jax.jit
    def step(params, state):
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=problem.loss
        )
        return lib.apply_updates(params, updates), state

    params = jax.tree.map(lambda p: jnp.asarray(p, dtype), problem.params)
    state = opt.init(params)
    trajectory = []
    for _ in range(steps):
        params, state = step(params, state)
        trajectory.append([np.asarray(p) for p in jax.tree.leaves(params)])
    return trajectory, state


CASES = {
    "lbfgs": lambda m: m.lbfgs(),
    "lbfgs_memory_3_unscaled": lambda m: m.lbfgs(memory_size=3, scale_init_precond=False),
    "lbfgs_keep_guess": lambda m: m.lbfgs(
        linesearch=m.scale_by_zoom_linesearch(
            15, max_learning_rate=2.0, initial_guess_strategy="keep", approx_dec_rtol=None
        )
    ),
    "lbfgs_no_curvature": lambda m: m.lbfgs(
        linesearch=m.scale_by_zoom_linesearch(15, curv_rtol=jnp.inf, initial_guess_strategy="one")
    ),
    "sgd_zoom": lambda m: m.chain(
        m.sgd(1.0), m.scale_by_zoom_linesearch(10, curv_rtol=0.5, stepsize_precision=1e-8)
    ),
}


# L-BFGS with optax's default search on every problem; the variants (a short
# unscaled memory, the kept guess with a capped step, the search under SGD) on
# the problems where they branch most (compiling a search is the cost here).
PAIRS = [("lbfgs", p) for p in PROBLEMS] + [
    ("lbfgs_memory_3_unscaled", "rosenbrock"),
    ("lbfgs_keep_guess", "mlp"),
    ("lbfgs_no_curvature", "rosenbrock"),
    ("sgd_zoom", "rosenbrock"),
]


@pytest.mark.parametrize("name, problem_name", PAIRS)
def test_linesearch_optimizer_matches_optax_in_float64(name, problem_name, x64):
    problem = PROBLEMS[problem_name]
    actual, _ = _run(gradtx, CASES[name](gradtx), problem)
    with jax.numpy_dtype_promotion("standard"):
        expected, _ = _run(optax, CASES[name](optax), problem)
    assert_trajectories_close(actual, expected, f"{name} on {problem_name} vs optax")
    start = jax.tree.leaves(problem.params)
    assert max(np.max(np.abs(a - b)) for a, b in zip(actual[-1], start)) > 1e-3


@pytest.mark.parametrize("name", ["lbfgs"])
def test_linesearch_optimizer_in_float32_matches_optax(name):
    problem = PROBLEMS["nested_quadratic"]
    actual, _ = _run(gradtx, CASES[name](gradtx), problem, dtype=np.float32)
    with jax.numpy_dtype_promotion("standard"):
        expected, _ = _run(optax, CASES[name](optax), problem, dtype=np.float32)
    assert all(a.dtype == np.float32 for a in actual[-1])
    assert_trajectories_close(
        actual, expected, f"{name} float32 vs optax float32", rtol=1e-5, atol=1e-6
    )


def test_zoom_linesearch_step_satisfies_strong_wolfe(x64):
    # One search from the start of Rosenbrock along -g: the accepted step has
    # sufficient decrease and a small enough slope.
    problem = PROBLEMS["rosenbrock"]
    x = jax.tree.map(jnp.asarray, problem.params)
    value, grad = jax.value_and_grad(problem.loss)(x)
    direction = jax.tree.map(jnp.negative, grad)
    tx = gradtx.scale_by_zoom_linesearch(30, approx_dec_rtol=None)
    updates, state = tx.update(
        direction, tx.init(x), x, value=value, grad=grad, value_fn=problem.loss
    )
    eta = float(state.learning_rate)
    slope0 = float(
        sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction)))
    )
    new = gradtx.apply_updates(x, updates)
    new_value, new_grad = jax.value_and_grad(problem.loss)(new)
    slope = float(
        sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(new_grad), jax.tree.leaves(direction)))
    )
    assert 0 < eta < 1
    assert float(new_value) <= float(value) + 1e-4 * eta * slope0
    assert abs(slope) <= 0.9 * abs(slope0)
    np.testing.assert_allclose(float(state.value), float(new_value), rtol=1e-12)
    assert int(state.info.num_linesearch_steps) >= 2


def test_value_and_grad_from_state_reuses_the_search_evaluation():
    calls = []

    def f(x):
        calls.append(1)
        return jnp.sum((x - 2.0) ** 2)

    opt = gradtx.lbfgs()
    value_and_grad = gradtx.value_and_grad_from_state(f)
    x = jnp.zeros(2)
    state = opt.init(x)
    value, grad = value_and_grad(x, state=state)  # value is inf: evaluates
    updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
    x = gradtx.apply_updates(x, updates)
    calls.clear()
    value, grad = jax.jit(lambda x, s: value_and_grad(x, state=s))(x, state)
    np.testing.assert_allclose(value, f(x), rtol=1e-6)
    np.testing.assert_allclose(grad, 2 * (x - 2.0), rtol=1e-6)


def test_value_and_grad_from_state_without_a_search_raises():
    with pytest.raises(ValueError, match=r"^value_and_grad_from_state: the optimizer's state"):
        gradtx.value_and_grad_from_state(jnp.sum)(
            jnp.ones(2), state=gradtx.adam(0.1).init(jnp.ones(2))
        )


def test_zoom_linesearch_without_value_fn_raises():
    tx = gradtx.scale_by_zoom_linesearch(5)
    x = jnp.ones(2)
    with pytest.raises(ValueError, match=r"^scale_by_zoom_linesearch: update needs params and"):
        tx.update(x, tx.init(x), x, value=jnp.asarray(1.0), grad=x)


def test_zoom_linesearch_with_keywords_value_fn_does_not_take_raises():
    tx = gradtx.scale_by_zoom_linesearch(5)
    x = jnp.ones(2)
    with pytest.raises(TypeError, match=r"value_fn takes none of the keywords \['batch'\]"):
        tx.update(
            x, tx.init(x), x, value=jnp.asarray(2.0), grad=x, value_fn=jnp.sum, batch=jnp.ones(3)
        )


def test_zoom_linesearch_passes_value_fn_keywords_through():
    def f(x, scale):
        return scale * jnp.sum(x**2)

    tx = gradtx.scale_by_zoom_linesearch(10)
    x = jnp.ones(2)
    value, grad = jax.value_and_grad(f)(x, 3.0)
    u, state = tx.update(-grad, tx.init(x), x, value=value, grad=grad, value_fn=f, scale=3.0)
    assert float(f(x + u, 3.0)) < float(value)


def test_zoom_linesearch_with_zero_steps_raises():
    with pytest.raises(ValueError, match=r"^scale_by_zoom_linesearch: max_linesearch_steps must"):
        gradtx.scale_by_zoom_linesearch(0)


def test_lbfgs_with_zoom_without_curvature_minimises_quadratic_through_optimistix():
    # optimistix passes value=, grad= and value_fn= to the optimizer's update;
    # curv_rtol=inf is optax's documented way to drop the curvature condition.
    a = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.5]])
    b = np.array([1.0, -2.0, 0.5])

    def loss(x, args):
        return 0.5 * x @ (jnp.asarray(a, jnp.float32) @ x) - jnp.asarray(b, jnp.float32) @ x

    opt = gradtx.lbfgs(linesearch=gradtx.scale_by_zoom_linesearch(15, curv_rtol=jnp.inf))
    solver = optx.OptaxMinimiser(opt, rtol=1e-6, atol=1e-6)
    solution = optx.minimise(loss, solver, jnp.zeros(3), max_steps=100)
    np.testing.assert_allclose(solution.value, np.linalg.solve(a, b), rtol=1e-4, atol=1e-5)


def test_zoom_linesearch_without_curvature_at_zero_slope_has_no_nan():
    # f'(0) = 0 makes inf * |f'(0)| a NaN; without the condition its error is 0.
    tx = gradtx.scale_by_zoom_linesearch(5, curv_rtol=jnp.inf)
    x = jnp.ones(2)
    zero = jnp.zeros(2)
    updates, state = tx.update(
        zero, tx.init(x), x, value=jnp.sum(x**2), grad=zero, value_fn=lambda p: jnp.sum(p**2)
    )
    assert float(state.info.curvature_error) == 0.0
    assert float(state.info.decrease_error) == 0.0
    assert float(state.learning_rate) == 1.0
    np.testing.assert_array_equal(updates, zero)


def test_zoom_linesearch_without_curvature_accepts_first_decreasing_step():
    # f(x) = sum(x^2) from x = 1 along u = -4x: eta = 1 overshoots to -3 (no
    # decrease), the quadratic fit through f(0) = 2, f'(0) = -16, f(1) = 18 gives
    # eta = 16 / (2 * (18 - 2 + 16)) = 0.25, exactly the minimiser; its slope 0 meets
    # any curvature rule, so the search ends there after two evaluations.
    tx = gradtx.scale_by_zoom_linesearch(10, curv_rtol=jnp.inf, initial_guess_strategy="one")
    x = jnp.ones(2)
    u = -4.0 * x
    _, state = tx.update(
        u, tx.init(x), x, value=jnp.sum(x**2), grad=2 * x, value_fn=lambda p: jnp.sum(p**2)
    )
    assert float(state.learning_rate) == 0.25
    assert int(state.info.num_linesearch_steps) == 2


@pytest.mark.parametrize("curv_rtol", [1.0, 2.5, np.float32(np.inf), jnp.array(jnp.inf)])
def test_zoom_linesearch_accepts_curvature_constants_optax_accepts(curv_rtol):
    tx = gradtx.scale_by_zoom_linesearch(np.int32(5), curv_rtol=curv_rtol)
    assert tx.hyperparams["max_linesearch_steps"] == 5


@pytest.mark.parametrize("curv_rtol", [-0.5, float("nan"), -float("inf")])
def test_zoom_linesearch_with_negative_or_nan_curvature_constant_raises(curv_rtol):
    with pytest.raises(ValueError, match=r"^scale_by_zoom_linesearch: curv_rtol must be"):
        gradtx.scale_by_zoom_linesearch(5, curv_rtol=curv_rtol)
