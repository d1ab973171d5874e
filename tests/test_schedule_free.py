"""schedule_free and its eval params: the averaged point x_t, against NumPy and optax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
import reference_averaging as ref_averaging
from problems import PROBLEMS, assert_trajectories_close

import gradtx

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

STEPS = 120


def _run(tx, eval_params, problem, apply=gradtx.apply_updates):
    """The eval params x_t after each step, as lists of leaves."""
    grad = jax.grad(problem.loss)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(grad(params), state, params)
        params = apply(params, updates)
        return params, state, eval_params(state, params)

    params = jax.tree.map(jnp.asarray, problem.params)
    state = tx.init(params)
    xs = []
    for _ in range(STEPS):
        params, state, x = step(params, state)
        xs.append([np.asarray(leaf) for leaf in jax.tree.leaves(x)])
    return xs


def test_schedule_free_eval_params_match_the_average_and_optax():
    problem = PROBLEMS["nested_quadratic"]
    lr = 0.02
    with jax.enable_x64(True):
        init, update = ref_averaging.schedule_free(
            ref_averaging.adamw_without_momentum(lr, weight_decay=0.1), lr
        )
        params = [np.asarray(p) for p in jax.tree.leaves(problem.params)]
        state, expected = init(params), []
        for _ in range(STEPS):
            updates, state = update(problem.grad_np(params), state, params)
            params = [p + u for p, u in zip(params, updates)]
            expected.append(state["x"])
        actual = _run(
            gradtx.schedule_free_adamw(lr, weight_decay=0.1),
            gradtx.schedule_free_eval_params,
            problem,
        )
        with jax.numpy_dtype_promotion("standard"):
            from_optax = _run(
                optax.contrib.schedule_free_adamw(lr, weight_decay=0.1),
                optax.contrib.schedule_free_eval_params,
                problem,
                optax.apply_updates,
            )
    assert_trajectories_close(actual, expected, "eval params vs NumPy's x_t")
    assert_trajectories_close(actual, from_optax, "eval params vs optax")


def test_schedule_free_wrapping_adam_matches_optax():
    problem = PROBLEMS["mlp"]
    lr = 0.01
    with jax.enable_x64(True):
        actual = _run(
            gradtx.schedule_free(gradtx.adam(lr, b1=0.0), lr, b1=0.95),
            gradtx.schedule_free_eval_params,
            problem,
        )
        with jax.numpy_dtype_promotion("standard"):
            expected = _run(
                optax.contrib.schedule_free(optax.adam(lr, b1=0.0), lr, b1=0.95),
                optax.contrib.schedule_free_eval_params,
                problem,
                optax.apply_updates,
            )
    assert_trajectories_close(actual, expected, "schedule_free(adam) vs optax")


def test_schedule_free_with_bf16_state_dtype_stores_z_in_bf16():
    opt = gradtx.schedule_free_sgd(0.1, state_dtype=jnp.bfloat16)
    params = {"w": jnp.ones(3)}
    _, state = opt.update({"w": jnp.ones(3)}, opt.init(params), params)
    (found,) = [s for s in state.states if isinstance(s, gradtx.ScheduleFreeState)]
    assert found.z["w"].dtype == jnp.bfloat16
    assert opt.init(params).states[0].z["w"].dtype == jnp.bfloat16


def test_schedule_free_eval_params_of_other_state_raises():
    opt = gradtx.adam(0.1)
    params = jnp.ones(2)
    with pytest.raises(
        ValueError, match="schedule_free_eval_params: state holds no ScheduleFreeState"
    ):
        gradtx.schedule_free_eval_params(opt.init(params), params)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: gradtx.schedule_free(gradtx.sgd(0.1), 0.1, b1=0.0),
            r"schedule_free: b1 must be in \(0, 1\], got 0.0",
        ),
        (
            lambda: gradtx.schedule_free(gradtx.sgd(0.1), -0.1),
            r"learning_rate must be in \[0, inf\]",
        ),
        (
            lambda: gradtx.schedule_free_adamw(warmup_steps=0),
            r"schedule_free_adamw: warmup_steps must be an integer >= 1 or None, got 0",
        ),
        (
            lambda: gradtx.schedule_free_adamw(b2=1.0),
            r"schedule_free_adamw: b2 must be in \[0, 1\)",
        ),
    ],
)
def test_schedule_free_invalid_hyperparameter_raises(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_schedule_free_with_a_non_transform_base_raises():
    with pytest.raises(
        TypeError, match="schedule_free: base_optimizer must be a gradient transformation"
    ):
        gradtx.schedule_free(0.1, 0.1)


def test_schedule_free_without_params_raises():
    opt = gradtx.schedule_free_sgd(0.1)
    with pytest.raises(ValueError, match="schedule_free: update needs params"):
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)))
