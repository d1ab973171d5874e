"""Layer-wise methods: LAMB, LARS, Fromage and NovoGrad.

gradtx's optimizers against float64 NumPy transcriptions of their published
rules and against optax, on the problems of ``tests/problems.py`` (the checks are
``tests/cases.py``'s).  float64 runs agree to 1e-10 relative at every step.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
import reference_layerwise as ref_layerwise
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


def _matrices(params):
    return jax.tree.map(lambda p: np.ndim(p) >= 2, params)


CASES = [
    Case(
        "lamb",
        0.01,
        lambda lr: gradtx.lamb(lr, weight_decay=0.1, eps=1e-3),
        lambda lr, pr: ref_layerwise.lamb(lr, weight_decay=0.1, eps=1e-3),
        lambda lr: optax.lamb(lr, weight_decay=0.1, eps=1e-3),
    ),
    Case(
        "lars",
        0.2,
        lambda lr: gradtx.lars(lr, weight_decay=0.01, trust_coefficient=0.02, eps=1e-3),
        lambda lr, pr: ref_layerwise.lars(lr, weight_decay=0.01, trust_coefficient=0.02, eps=1e-3),
        lambda lr: optax.lars(lr, weight_decay=0.01, trust_coefficient=0.02, eps=1e-3),
    ),
    Case(
        "lars_nesterov_masked",
        0.2,
        lambda lr: gradtx.lars(
            lr,
            weight_decay=0.05,
            weight_decay_mask=_matrices,
            trust_ratio_mask=_matrices,
            nesterov=True,
            momentum=0.8,
        ),
        lambda lr, pr: [
            ref_layerwise.lars(
                lr,
                weight_decay=0.05,
                momentum=0.8,
                nesterov=True,
                decay=np.ndim(p) >= 2,
                trusted=np.ndim(p) >= 2,
            )
            for p in jax.tree.leaves(pr.params)
        ],
        lambda lr: optax.lars(
            lr,
            weight_decay=0.05,
            weight_decay_mask=_matrices,
            trust_ratio_mask=_matrices,
            nesterov=True,
            momentum=0.8,
        ),
        problems=("nested_quadratic", "mlp"),
    ),
    Case("fromage", 0.01, gradtx.fromage, lambda lr, pr: ref_layerwise.fromage(lr), optax.fromage),
    Case(
        "novograd",
        0.005,
        lambda lr: gradtx.novograd(lr, weight_decay=0.01),
        lambda lr, pr: ref_layerwise.novograd(lr, weight_decay=0.01),
        lambda lr: optax.novograd(lr, weight_decay=0.01),
    ),
]


@pytest.mark.parametrize("case, problem_name", pairs(CASES))
def test_optimizer_matches_closed_form(case, problem_name, x64):
    check_closed_form(case, problem_name)


@pytest.mark.parametrize("case, problem_name", pairs(CASES, optax=True))
def test_optimizer_matches_optax_alias(case, problem_name, x64):
    check_optax_alias(case, problem_name)


@pytest.mark.parametrize(
    "case",
    named(CASES, "lamb", "lars", "lars_nesterov_masked", "fromage", "novograd"),
    ids=lambda c: c.name,
)
def test_optimizer_in_float32_matches_optax(case):
    check_float32_matches_optax(case)
