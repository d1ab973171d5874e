"""conditionally_mask, optax's skip predicates, and keep_params_nonnegative."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from problems import PROBLEMS, assert_transform_matches

import gradtx

TREE = PROBLEMS["nested_quadratic"].params


def test_conditionally_mask_matches_optax(x64):
    def make(m):
        return m.conditionally_mask(m.adam(0.1), lambda step: step % 3 != 1)

    actual = assert_transform_matches(
        make(gradtx), make(optax), TREE, "conditionally_mask", steps=30
    )
    assert not any(np.any(u) for u in actual[1]) and all(np.any(u) for u in actual[2])


def test_conditionally_mask_forwards_extra_args_to_the_condition():
    tx = gradtx.conditionally_mask(
        gradtx.sgd(1.0), lambda step, value: value > 0, forward_extra_args=True
    )
    state = tx.init(jnp.zeros(1))
    u, state = tx.update(jnp.ones(1), state, value=jnp.asarray(-1.0))
    assert float(u[0]) == 0.0 and int(state.step) == 1
    u, state = tx.update(jnp.ones(1), state, value=jnp.asarray(1.0))
    assert float(u[0]) == -1.0


def test_conditionally_mask_with_a_non_callable_condition_raises():
    with pytest.raises(TypeError, match=r"^conditionally_mask: should_transform_fn must be"):
        gradtx.conditionally_mask(gradtx.sgd(0.1), True)


@pytest.mark.parametrize(
    "updates",
    [{"a": jnp.ones(2), "b": jnp.array([1.0, jnp.inf])}, {"a": jnp.ones(2), "b": jnp.zeros(3)}],
)
def test_skip_not_finite_agrees_with_optax(updates):
    ours, info = gradtx.skip_not_finite(updates, 0, None)
    theirs, their_info = optax.skip_not_finite(updates, 0, None)
    assert bool(ours) == bool(theirs)
    assert int(info["num_not_finite"]) == int(their_info["num_not_finite"])


@pytest.mark.parametrize("limit", [24.0, 26.0])
def test_skip_large_updates_agrees_with_optax(limit):
    updates = {"a": jnp.array([3.0]), "b": jnp.array([4.0])}  # squared norm 25
    ours, info = gradtx.skip_large_updates(updates, 0, None, limit)
    with jax.numpy_dtype_promotion("standard"):
        theirs, _ = optax.skip_large_updates(updates, 0, None, limit)
    assert bool(ours) == bool(theirs) == (limit < 25)
    assert float(info["norm_squared"]) == 25.0


def test_skip_predicates_work_inside_optax_multisteps():
    skip = functools.partial(gradtx.skip_large_updates, max_squared_norm=1.0)
    opt = optax.MultiSteps(gradtx.sgd(1.0), every_k_schedule=1, should_skip_update_fn=skip)
    p = jnp.zeros(2)
    with jax.numpy_dtype_promotion("standard"):
        u, _ = opt.update(jnp.array([3.0, 4.0]), opt.init(p), p)
    np.testing.assert_array_equal(u, [0.0, 0.0])


def test_keep_params_nonnegative_matches_optax(x64):
    tree = jax.tree.map(np.abs, TREE)
    assert_transform_matches(
        gradtx.keep_params_nonnegative(),
        optax.keep_params_nonnegative(),
        tree,
        "keep_params_nonnegative",
    )


def test_keep_params_nonnegative_stops_at_zero():
    opt = gradtx.chain(gradtx.sgd(1.0), gradtx.keep_params_nonnegative())
    p = jnp.array([0.5, 2.0])
    u, _ = opt.update(jnp.array([1.0, 1.0]), opt.init(p), p)
    np.testing.assert_array_equal(gradtx.apply_updates(p, u), [0.0, 1.0])
