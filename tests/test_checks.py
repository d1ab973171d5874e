"""Concrete hyperparameters are range-checked whatever their dtype, and must be finite scalars."""

import jax.numpy as jnp
import pytest

import gradtx

LOW_PRECISION = [jnp.bfloat16, jnp.float16, jnp.float8_e4m3fn, jnp.float8_e5m2]


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_adam_negative_learning_rate_in_low_precision_raises(dtype):
    with pytest.raises(
        ValueError,
        match=r"^adam: learning_rate must be in \[0, inf\], got "
        r"Array\(-1\.?, dtype=" + jnp.dtype(dtype).name,
    ):
        gradtx.adam(jnp.array(-1.0, dtype))


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_adam_b1_of_one_in_low_precision_raises(dtype):
    with pytest.raises(ValueError, match=r"^adam: b1 must be in \[0, 1\), got Array\(1"):
        gradtx.adam(1e-3, b1=jnp.array(1.0, dtype))


def test_adam_bf16_hyperparameters_in_range_are_accepted():
    gradtx.adam(jnp.array(1e-3, jnp.bfloat16), b1=jnp.array(0.9, jnp.bfloat16))


@pytest.mark.parametrize("value", [float("inf"), -float("inf"), jnp.array(jnp.inf, jnp.bfloat16)])
def test_adam_infinite_learning_rate_raises(value):
    with pytest.raises(ValueError, match=r"^adam: learning_rate must be finite, got"):
        gradtx.adam(value)


def test_sgd_infinite_momentum_raises():
    with pytest.raises(ValueError, match=r"^sgd: momentum must be"):
        gradtx.sgd(0.1, momentum=float("inf"))


def test_adam_array_valued_learning_rate_raises():
    with pytest.raises(
        ValueError,
        match=r"^adam: learning_rate must be a scalar, got an array "
        r"of shape \(2,\)",
    ):
        gradtx.adam(jnp.array([1e-3, 1e-3]))
