"""add_scaled_params: a multiple of the parameters, of either sign."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from problems import PROBLEMS, assert_transform_matches

import gradtx

TREE = PROBLEMS["nested_quadratic"].params


@pytest.mark.parametrize("scale", [-0.3, 0.2])
def test_add_scaled_params_matches_optax_add_decayed_weights(scale, x64):
    assert_transform_matches(
        gradtx.add_scaled_params(scale),
        optax.add_decayed_weights(scale),
        TREE,
        f"add_scaled_params({scale})",
    )


def test_add_scaled_params_with_a_schedule_counts_steps():
    tx = gradtx.add_scaled_params(lambda t: -0.5 * (t + 1).astype(jnp.float32))
    p = jnp.array([2.0])
    u, state = tx.update(jnp.zeros(1), tx.init(p), p)
    u2, state = tx.update(jnp.zeros(1), state, p)
    np.testing.assert_allclose([u[0], u2[0]], [-1.0, -2.0])


def test_add_scaled_params_without_params_raises():
    tx = gradtx.add_scaled_params(0.1)
    with pytest.raises(ValueError, match=r"^add_scaled_params: update needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
