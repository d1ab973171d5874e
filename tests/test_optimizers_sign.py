"""Sign methods: Lion, signSGD, Signum and Rprop.

gradtx's optimizers against float64 NumPy transcriptions of their published
rules and against optax, on the problems of ``tests/problems.py`` (the checks are
``tests/cases.py``'s).  float64 runs agree to 1e-10 relative at every step.
"""

from __future__ import annotations

import optax
import pytest
import reference_sign as ref_sign
from cases import (
    Case,
    check_closed_form,
    check_float32_matches_optax,
    check_optax_alias,
    named,
    pairs,
)

import gradtx

# Trajectories of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

CASES = [
    Case(
        "lion",
        0.002,
        lambda lr: gradtx.lion(lr, weight_decay=0.1),
        lambda lr, pr: ref_sign.lion(lr, weight_decay=0.1),
        lambda lr: optax.lion(lr, weight_decay=0.1),
    ),
    Case("sign_sgd", 0.002, gradtx.sign_sgd, lambda lr, pr: ref_sign.sign_sgd(lr), optax.sign_sgd),
    Case(
        "signum",
        0.002,
        lambda lr: gradtx.signum(lr, beta=0.8),
        lambda lr, pr: ref_sign.signum(lr, beta=0.8),
        lambda lr: optax.signum(lr, beta=0.8),
    ),
    Case("rprop", 0.001, gradtx.rprop, lambda lr, pr: ref_sign.rprop(lr), optax.rprop),
]


@pytest.mark.parametrize("case, problem_name", pairs(CASES))
def test_optimizer_matches_closed_form(case, problem_name, x64):
    check_closed_form(case, problem_name)


@pytest.mark.parametrize("case, problem_name", pairs(CASES, optax=True))
def test_optimizer_matches_optax_alias(case, problem_name, x64):
    check_optax_alias(case, problem_name)


@pytest.mark.parametrize(
    "case", named(CASES, "lion", "sign_sgd", "signum", "rprop"), ids=lambda c: c.name
)
def test_optimizer_in_float32_matches_optax(case):
    check_float32_matches_optax(case)
