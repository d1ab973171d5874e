"""scale_by_block_rms on its own: the block second moment (NumPy), state size, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import reference_adam_variants as ref_adam_variants
from problems import PROBLEMS, STEPS, assert_trajectories_close, random_sequence
from test_mars import _transform_trajectory

import gradtx


@pytest.mark.parametrize("block_axes", [None, 0, (0, -1)])
def test_scale_by_block_rms_matches_closed_form(block_axes, x64):
    tree0 = PROBLEMS["nested_quadratic"].params
    grads = random_sequence(tree0, STEPS, seed=8)
    init, update = ref.tree(ref_adam_variants.block_rms(0.95, 1e-3, block_axes))
    state = init(jax.tree.leaves(grads[0]))
    expected = []
    for g in grads:
        u, state = update(jax.tree.leaves(g), state, jax.tree.leaves(g))  # params unused
        expected.append(u)
    actual = _transform_trajectory(
        gradtx.scale_by_block_rms(0.95, 1e-3, block_axes=block_axes), grads
    )
    assert_trajectories_close(actual, expected, f"scale_by_block_rms({block_axes}) vs NumPy")


def test_scale_by_block_rms_keeps_one_number_per_block():
    params = {"kernel": jnp.zeros((6, 4)), "bias": jnp.zeros(4), "scalar": jnp.zeros(())}
    per_leaf = gradtx.scale_by_block_rms().init(params).nu
    per_column = gradtx.scale_by_block_rms(block_axes=0).init(params).nu
    assert jax.tree.map(jnp.shape, per_leaf) == {"kernel": (1, 1), "bias": (1,), "scalar": ()}
    assert jax.tree.map(jnp.shape, per_column) == {"kernel": (1, 4), "bias": (1,), "scalar": ()}


def test_scale_by_block_rms_divides_by_the_blocks_rms():
    # One block: v = mean(g^2) = 12.5 after one step with bias correction.
    tx = gradtx.scale_by_block_rms(0.9, eps=0.0)
    u, _ = tx.update(jnp.array([3.0, 4.0]), tx.init(jnp.zeros(2)))
    np.testing.assert_allclose(u, np.array([3.0, 4.0]) / np.sqrt(12.5), rtol=1e-6)


def test_adam_mini_in_precondition_measures_the_gradient_not_the_momentum():
    # The recipe's preconditioner sees g_t beside the momentum: step 2's v is from g.
    opt = gradtx.adam_mini(1.0, b1=0.5, b2=0.5, eps=0.0)
    params = jnp.zeros(2)
    state = opt.init(params)
    _, state = opt.update(jnp.array([2.0, 2.0]), state, params)
    u, _ = opt.update(jnp.array([4.0, 4.0]), state, params)
    m_hat = (0.5 * 0.5 * 2 + 0.5 * 4) / (1 - 0.25)
    v_hat = (0.5 * 0.5 * 4 + 0.5 * 16) / (1 - 0.25)
    np.testing.assert_allclose(u, -m_hat / np.sqrt(v_hat) * np.ones(2), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(decay=1.0), ValueError, r"scale_by_block_rms: decay must be in \[0, 1\)"),
        (dict(eps=-1.0), ValueError, r"scale_by_block_rms: eps must be in \[0, inf\]"),
        (dict(block_axes="rows"), TypeError, "scale_by_block_rms: block_axes must be None, an int"),
    ],
)
def test_scale_by_block_rms_with_bad_argument_raises(kwargs, error, message):
    with pytest.raises(error, match=message):
        gradtx.scale_by_block_rms(**kwargs)


def test_scale_by_block_rms_with_state_of_other_params_raises():
    tx = gradtx.scale_by_block_rms()
    with pytest.raises(ValueError, match="scale_by_block_rms: .*was the state made by init"):
        tx.update({"a": jnp.ones(2)}, tx.init({"b": jnp.ones(2)}))


def test_adam_mini_with_a_zero_size_leaf_keeps_finite_state_and_is_not_skipped():
    # A NaN in the state of the empty leaf would make apply_if_finite skip every step.
    opt = gradtx.apply_if_finite(gradtx.adam_mini(0.1), max_consecutive_errors=10)
    params = {"w": jnp.ones((2, 2)), "e": jnp.zeros((0, 4))}
    grads = {"w": jnp.full((2, 2), 0.5), "e": jnp.zeros((0, 4))}
    state = opt.init(params)
    for _ in range(3):
        updates, state = opt.update(grads, state, params)
        params = gradtx.apply_updates(params, updates)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))
    assert int(state.total_notfinite) == 0
    assert updates["e"].shape == (0, 4)
    # Adam-mini on w alone, one block: every step moves w by lr = 0.1 (|g| / rms(g) = 1 after debiasing).
    np.testing.assert_allclose(params["w"], 1.0 - 3 * 0.1, rtol=1e-5)
