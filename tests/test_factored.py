"""Adafactor's factored RMS and SM3: against optax's transforms, shapes of their statistics."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from problems import PROBLEMS, assert_transform_matches

import gradtx

TREE = PROBLEMS["nested_quadratic"].params
NO_SCALAR = {k: v for k, v in TREE.items() if k != "scalar"}  # optax's SM3 needs rank >= 1


@pytest.mark.parametrize("min_dim", [1, 3, 128])
def test_scale_by_factored_rms_matches_optax(min_dim, x64):
    def make(m):
        return m.scale_by_factored_rms(
            min_dim_size_to_factor=min_dim,
            decay_rate=0.7,
            step_offset=2,
            epsilon=1e-20,
            decay_rate_fn=gradtx._factored.decay_rate_pow,
        )

    assert_transform_matches(make(gradtx), make(optax), TREE, f"factored rms min_dim={min_dim}")


def test_scale_by_factored_rms_in_float32_matches_optax_default_decay():
    assert_transform_matches(
        gradtx.scale_by_factored_rms(min_dim_size_to_factor=2),
        optax.scale_by_factored_rms(min_dim_size_to_factor=2),
        jnp.zeros((4, 3)),
        "factored rms float32",
        rtol=1e-5,
        atol=1e-6,
    )


def test_factored_state_keeps_rows_and_columns_of_a_matrix():
    tx = gradtx.scale_by_factored_rms(min_dim_size_to_factor=2)
    state = tx.init({"m": jnp.zeros((5, 3)), "v": jnp.zeros(4)})
    assert state._fields == ("count", "v_row", "v_col", "v")
    assert state.v_row["m"].shape == (3,) and state.v_col["m"].shape == (5,)
    assert state.v["m"].shape == (1,) and state.v["v"].shape == (4,)


@pytest.mark.parametrize("b2", [1.0, 0.9])
def test_scale_by_sm3_matches_optax(b2, x64):
    assert_transform_matches(
        gradtx.scale_by_sm3(0.8, b2, eps=1e-6),
        optax.scale_by_sm3(0.8, b2, eps=1e-6),
        NO_SCALAR,
        f"sm3 b2={b2}",
    )


def test_scale_by_sm3_takes_scalar_leaves_as_one_accumulator():
    tx = gradtx.scale_by_sm3(b1=0.0, eps=0.0)
    state = tx.init(jnp.zeros(()))
    u, state = tx.update(jnp.asarray(3.0), state)
    u, state = tx.update(jnp.asarray(4.0), state)  # 4 / sqrt(9 + 16)
    np.testing.assert_allclose(u, 0.8)


def test_scale_by_sm3_with_complex_params_raises():
    with pytest.raises(TypeError, match=r"^scale_by_sm3: complex parameters are not supported"):
        gradtx.scale_by_sm3().init(jnp.zeros(2, jnp.complex64))


def test_factored_rms_without_params_raises():
    tx = gradtx.scale_by_factored_rms()
    with pytest.raises(ValueError, match=r"^scale_by_factored_rms: update needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


def test_sm3_with_zero_size_leaves_gives_them_empty_updates():
    opt = gradtx.scale_by_sm3()
    params = {"w": jnp.ones((3, 2)), "e": jnp.zeros((0, 4)), "v": jnp.zeros((0,))}
    grads = {"w": jnp.arange(6.0).reshape(3, 2), "e": jnp.zeros((0, 4)), "v": jnp.zeros((0,))}
    state = opt.init(params)
    for _ in range(2):
        updates, state = opt.update(grads, state, params)
    assert updates["e"].shape == (0, 4) and updates["v"].shape == (0,)
    # The (4,) accumulator of the empty matrix's columns stays at zero.
    np.testing.assert_array_equal(state.mu["e"][1], np.zeros(4))
    # The matrix beside them is updated as alone.
    alone = gradtx.scale_by_sm3()
    w_state = alone.init({"w": params["w"]})
    for _ in range(2):
        w_updates, w_state = alone.update({"w": grads["w"]}, w_state)
    np.testing.assert_array_equal(updates["w"], w_updates["w"])
