"""scale_by_adopt on its own."""

from __future__ import annotations

import jax.numpy as jnp
import optax.contrib
import pytest
from problems import assert_transform_matches_optax

import gradtx


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(b1=0.8, b2=0.99, eps=1e-3, nesterov=True), dict(use_clipping=False)]
)
def test_scale_by_adopt_matches_optax(kwargs):
    assert_transform_matches_optax(
        gradtx.scale_by_adopt(**kwargs), optax.contrib.scale_by_adopt(**kwargs), f"adopt {kwargs}"
    )


def test_scale_by_adopt_first_step_is_zero_and_records_nu():
    tx = gradtx.scale_by_adopt()
    u, state = tx.update(jnp.array([2.0, -3.0]), tx.init(jnp.zeros(2)))
    assert jnp.all(u == 0)
    assert jnp.allclose(state.nu, jnp.array([4.0, 9.0]))


def test_scale_by_adopt_invalid_hyperparameter_raises():
    with pytest.raises(ValueError, match=r"^adopt: b2 must be in \[0, 1\), got 1.0"):
        gradtx.adopt(0.1, b2=1.0)
    with pytest.raises(TypeError, match="scale_by_adopt: clip_value_fn must be a function"):
        gradtx.scale_by_adopt(clip_value_fn=1.0)


def test_adopt_with_complex_params_raises_naming_leaf():
    with pytest.raises(
        TypeError,
        match=r"^adopt: scale_by_adopt: complex parameters are not supported .*params leaf "
        r"\['z'\] has dtype complex64",
    ):
        gradtx.adopt(0.1).init({"x": jnp.ones(2), "z": jnp.ones(2, jnp.complex64)})
