"""Second-moment scalings: RMSprop, Adagrad, Adadelta, Adafactor and SM3.

gradtx's optimizers against float64 NumPy transcriptions of their published
rules and against optax, on the problems of ``tests/problems.py`` (the checks are
``tests/cases.py``'s).  float64 runs agree to 1e-10 relative at every step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest
import reference as ref
import reference_rms as ref_rms
from cases import (
    Case,
    check_closed_form,
    check_float32_matches_float64_reference,
    check_float32_matches_optax,
    check_optax_alias,
    named,
    pairs,
)

import gradtx

# Trajectories of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

QUADRATIC_AND_MLP = ("nested_quadratic", "mlp")


def _widest():
    """float64 under x64, else float32 (Adafactor's momentum is stored in a fixed dtype)."""
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


CASES = [
    Case(
        "rmsprop",
        0.01,
        lambda lr: gradtx.rmsprop(lr, eps=0.1),
        lambda lr, pr: ref.rmsprop(lr, eps=0.1),
        lambda lr: optax.rmsprop(lr, eps=0.1),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "rmsprop_eps_outside",
        0.01,
        lambda lr: gradtx.rmsprop(lr, decay=0.99, eps=0.1, eps_in_sqrt=False),
        lambda lr, pr: ref.rmsprop(lr, decay=0.99, eps=0.1, eps_in_sqrt=False),
        lambda lr: optax.rmsprop(lr, decay=0.99, eps=0.1, eps_in_sqrt=False),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "rmsprop_centered",
        0.01,
        lambda lr: gradtx.rmsprop(lr, eps=0.1, centered=True),
        lambda lr, pr: ref.rmsprop(lr, eps=0.1, centered=True),
        lambda lr: optax.rmsprop(lr, eps=0.1, centered=True),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "rmsprop_centered_eps_outside",
        0.01,
        lambda lr: gradtx.rmsprop(lr, eps=0.1, centered=True, eps_in_sqrt=False),
        lambda lr, pr: ref.rmsprop(lr, eps=0.1, centered=True, eps_in_sqrt=False),
        lambda lr: optax.rmsprop(lr, eps=0.1, centered=True, eps_in_sqrt=False),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "rmsprop_momentum",
        0.002,
        lambda lr: gradtx.rmsprop(lr, decay=0.95, eps=1e-3, initial_scale=0.5, momentum=0.9),
        lambda lr, pr: ref.rmsprop(lr, decay=0.95, eps=1e-3, initial_scale=0.5, momentum=0.9),
        lambda lr: optax.rmsprop(lr, decay=0.95, eps=1e-3, initial_scale=0.5, momentum=0.9),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "rmsprop_centered_nesterov",
        0.002,
        lambda lr: gradtx.rmsprop(lr, eps=0.1, centered=True, momentum=0.8, nesterov=True),
        lambda lr, pr: ref.rmsprop(lr, eps=0.1, centered=True, momentum=0.8, nesterov=True),
        lambda lr: optax.rmsprop(lr, eps=0.1, centered=True, momentum=0.8, nesterov=True),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "adagrad",
        0.1,
        lambda lr: gradtx.adagrad(lr),
        lambda lr, pr: ref.adagrad(lr),
        lambda lr: optax.adagrad(lr),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "adagrad_eps",
        0.1,
        lambda lr: gradtx.adagrad(lr, initial_accumulator_value=0.0, eps=0.5),
        lambda lr, pr: ref.adagrad(lr, initial_accumulator_value=0.0, eps=0.5),
        lambda lr: optax.adagrad(lr, initial_accumulator_value=0.0, eps=0.5),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "adadelta",
        1.0,
        lambda lr: gradtx.adadelta(lr),
        lambda lr, pr: ref.adadelta(lr),
        lambda lr: optax.adadelta(learning_rate=lr),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "adadelta_weight_decay",
        0.5,
        lambda lr: gradtx.adadelta(lr, rho=0.95, eps=1e-3, weight_decay=0.1),
        lambda lr, pr: ref.adadelta(lr, rho=0.95, eps=1e-3, weight_decay=0.1),
        lambda lr: optax.adadelta(learning_rate=lr, rho=0.95, eps=1e-3, weight_decay=0.1),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "adafactor",
        0.01,
        lambda lr: gradtx.adafactor(lr, min_dim_size_to_factor=2),
        lambda lr, pr: ref_rms.adafactor(lr, min_dim_size_to_factor=2),
        lambda lr: optax.adafactor(lr, min_dim_size_to_factor=2),
    ),
    Case(
        "adafactor_momentum_decay",
        0.01,
        lambda lr: gradtx.adafactor(
            lr,
            min_dim_size_to_factor=3,
            momentum=0.9,
            dtype_momentum=_widest(),
            weight_decay_rate=1e-3,
            clipping_threshold=0.5,
        ),
        lambda lr, pr: ref_rms.adafactor(
            lr,
            min_dim_size_to_factor=3,
            momentum=0.9,
            weight_decay_rate=1e-3,
            clipping_threshold=0.5,
        ),
        lambda lr: optax.adafactor(
            lr,
            min_dim_size_to_factor=3,
            momentum=0.9,
            dtype_momentum=_widest(),
            weight_decay_rate=1e-3,
            clipping_threshold=0.5,
        ),
    ),
    Case(
        "sm3",
        0.05,
        gradtx.sm3,
        lambda lr, pr: ref_rms.sm3(lr),
        optax.sm3,
        problems=("rosenbrock", "mlp"),
    ),  # optax's SM3 cannot take scalar leaves
]


@pytest.mark.parametrize("case, problem_name", pairs(CASES))
def test_optimizer_matches_closed_form(case, problem_name, x64):
    check_closed_form(case, problem_name)


@pytest.mark.parametrize("case, problem_name", pairs(CASES, optax=True))
def test_optimizer_matches_optax_alias(case, problem_name, x64, monkeypatch):
    _adafactor_decay_in_float64(monkeypatch)
    check_optax_alias(case, problem_name)


@pytest.mark.parametrize(
    "case", named(CASES, "adafactor", "adafactor_momentum_decay", "sm3"), ids=lambda c: c.name
)
def test_optimizer_in_float32_matches_optax(case):
    check_float32_matches_optax(case)


@pytest.mark.parametrize(
    "case", named(CASES, "rmsprop", "rmsprop_momentum", "adagrad", "adadelta"), ids=lambda c: c.name
)
def test_optimizer_in_float32_matches_float64_reference(case):
    check_float32_matches_float64_reference(case)


def _adafactor_decay_in_float64(monkeypatch):
    """optax forms Adafactor's decay 1 - (t + 1)^-0.8 in float32 even under x64; give its alias
    gradtx's float64 decay so that the float64 comparison is of the rule, not of that rounding."""
    import optax._src.factorized as factorized

    defaults = list(factorized.scale_by_factored_rms.__defaults__)
    defaults[-1] = gradtx._factored.decay_rate_pow
    monkeypatch.setattr(factorized.scale_by_factored_rms, "__defaults__", tuple(defaults))
