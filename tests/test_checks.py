"""Concrete hyperparameters are range-checked whatever their dtype, and must be finite scalars."""

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

LOW_PRECISION = [jnp.bfloat16, jnp.float16]
FLOAT8 = [jnp.float8_e4m3fn, jnp.float8_e5m2]


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


@pytest.mark.parametrize("dtype", FLOAT8)
@pytest.mark.parametrize(
    "factory, name",
    [
        (gradtx.adam, "b1"),
        (gradtx.lion, "b1"),
        (gradtx.yogi, "b1"),
        (gradtx.adan, "b1"),
        (gradtx.sm3, "momentum"),
    ],
)
def test_float8_hyperparameter_is_refused_at_construction(factory, name, dtype):
    # float8 does not promote with float32 under strict promotion: the first update would fail.
    with pytest.raises(
        ValueError, match=rf": {name} must be a float16, bfloat16, float32 or float64"
    ):
        factory(1e-3, **{name: jnp.array(0.5, dtype)})


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda: gradtx.adam(1e39),
            r"^adam: learning_rate must be finite, got 1e\+39 \(inf in float32\)",
        ),
        (
            lambda: gradtx.sgd(3.5e38),
            r"^sgd: learning_rate must be finite, got 3.5e\+38 \(inf in float32\)",
        ),
        (
            lambda: gradtx.adamw(1e-3, weight_decay=1e39),
            r"^adamw: weight_decay must be finite, got 1e\+39 \(inf in float32\)",
        ),
        (
            lambda: gradtx.psgd_kron(1e-3, precond_lr=1e39),
            r"^psgd_kron: precond_lr must be finite, got 1e\+39 \(inf in float32\)",
        ),
        (
            lambda: gradtx.adam(1e-3, b1=1 - 1e-9),
            r"^adam: b1 must be in \[0, 1\), got 0.999999999 \(1.0 in float32\)",
        ),
        (lambda: gradtx.nadamw(1e-3, b2=1 - 1e-9), r"^nadamw: b2 must be in \[0, 1\), got 0.9999"),
    ],
)
def test_python_float_hyperparameter_is_checked_as_float32(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_python_float_hyperparameter_is_checked_as_float64_under_x64(x64):
    # Under x64 the update computes in float64, where 1 - 1e-9 is below 1 and 1e39 finite.
    gradtx.adam(1e39, b1=1 - 1e-9)


@pytest.mark.parametrize("factory", [gradtx.yogi, gradtx.adabelief, gradtx.adan])
@pytest.mark.parametrize("b1", [1.0, jnp.array(0.9999, jnp.bfloat16)])
def test_bias_corrected_b1_of_one_is_refused(factory, b1):
    # 1 - b1^t = 0 divides every step's first moment: b1 = 1 (bf16 0.9999 is 1.0) is refused.
    with pytest.raises(ValueError, match=rf"^{factory.__name__}: b1 must be in \[0, 1\)"):
        factory(1e-3, b1=b1)


@pytest.mark.parametrize("value", [np.complex64(-1.0), -1.0 + 0j, jnp.array(1e-3 + 0j)])
def test_complex_hyperparameter_is_refused(value):
    # A complex learning rate skipped every range check, and -1 + 0j made sgd ascend.
    with pytest.raises(TypeError, match=r"^sgd: learning_rate must be a real number"):
        gradtx.sgd(value)


def test_muon_nan_newton_schulz_coefficient_is_refused():
    with pytest.raises(ValueError, match=r"^muon: ns_coeffs must be in \[-inf, inf\], got nan"):
        gradtx.muon(1e-3, ns_coeffs=((float("nan"), -4.775, 2.0315),))


def test_adafactor_negative_decay_rate_is_refused():
    with pytest.raises(ValueError, match=r"^adafactor: decay_rate must be in \[0, inf\], got -1"):
        gradtx.adafactor(decay_rate=-1)
