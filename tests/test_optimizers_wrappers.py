"""Wrapped optimizers: SAM, Mechanic and reduce-on-plateau around SGD and Adam.

gradtx's optimizers against float64 NumPy transcriptions of their published
rules and against optax, on the problems of ``tests/problems.py`` (the checks are
``tests/cases.py``'s).  float64 runs agree to 1e-10 relative at every step.
"""

from __future__ import annotations

import optax
import optax.contrib
import pytest
import reference as ref
import reference_parameter_free as ref_parameter_free
import reference_wrappers as ref_wrappers
from cases import (
    Case,
    check_forced_closed_form,
    check_forced_float32,
    check_forced_optax,
    pairs,
)
from problems import PROBLEMS

import gradtx

# Trajectories of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


def _sgd_ref(lr, momentum=None):
    return ref.tree(ref.sgd(lr, momentum=momentum))


def _sam_adversary(rho):
    return gradtx.chain(gradtx.normalize(), gradtx.sgd(rho))


# Compared with optax.contrib's implementations, through runs that record their inputs
# (``chaotic`` problems are teacher-forced).
CONTRIB_CASES = [
    Case(
        "sam",
        0.02,
        lambda lr: gradtx.sam(gradtx.sgd(lr, momentum=0.9), _sam_adversary(0.05)),
        lambda lr, pr: ref_wrappers.sam(_sgd_ref(lr, momentum=0.9), 0.05),
        lambda lr: optax.contrib.sam(
            optax.sgd(lr, momentum=0.9), optax.chain(optax.contrib.normalize(), optax.sgd(0.05))
        ),
    ),
    Case(
        "sam_three_steps",
        0.02,
        lambda lr: gradtx.sam(gradtx.adam(lr), _sam_adversary(0.02), sync_period=3),
        lambda lr, pr: ref_wrappers.sam(ref.tree(ref.adam(lr)), 0.02, sync_period=3),
        lambda lr: optax.contrib.sam(
            optax.adam(lr), optax.chain(optax.contrib.normalize(), optax.sgd(0.02)), sync_period=3
        ),
        variant=True,
    ),
    # Mechanic reads Delta_t back from the parameters, (x_t - x_0) / (S + eps)
    # with S about 1e-6 at first, which cancels most digits, and its learned
    # scale S_t then amplifies the round-off: the runs are teacher-forced.
    Case(
        "mechanize_adam",
        0.01,
        lambda lr: gradtx.mechanize(gradtx.adam(lr)),
        lambda lr, pr: ref_parameter_free.mechanize(ref.tree(ref.adam(lr))),
        lambda lr: optax.contrib.mechanize(optax.adam(lr)),
        chaotic=tuple(PROBLEMS),
    ),
    Case(
        "mechanize_sgd",
        0.01,
        lambda lr: gradtx.mechanize(
            gradtx.sgd(lr, momentum=0.9), weight_decay=0.1, num_betas=3, s_init=1e-2
        ),
        lambda lr, pr: ref_parameter_free.mechanize(
            _sgd_ref(lr, momentum=0.9), weight_decay=0.1, num_betas=3, s_init=1e-2
        ),
        lambda lr: optax.contrib.mechanize(
            optax.sgd(lr, momentum=0.9), weight_decay=0.1, num_betas=3, s_init=1e-2
        ),
        chaotic=tuple(PROBLEMS),
        # In float32 each step's x_t, rounded, is read back as Delta = (x_t - x_0) / S:
        # float32 holds the step to about 1e-4 (optax's float32 agrees with gradtx's).
        f32_rtol=1e-4,
        variant=True,
    ),
    Case(
        "reduce_on_plateau",
        0.05,
        lambda lr: gradtx.chain(
            gradtx.sgd(lr),
            gradtx.reduce_on_plateau(
                factor=0.5, patience=3, rtol=1e-2, cooldown=2, accumulation_size=2, min_scale=0.1
            ),
        ),
        lambda lr, pr: ref_wrappers.reduce_on_plateau(
            _sgd_ref(lr),
            factor=0.5,
            patience=3,
            rtol=1e-2,
            cooldown=2,
            accumulation_size=2,
            min_scale=0.1,
        ),
        lambda lr: optax.chain(
            optax.sgd(lr),
            optax.contrib.reduce_on_plateau(
                factor=0.5, patience=3, rtol=1e-2, cooldown=2, accumulation_size=2, min_scale=0.1
            ),
        ),
        value=True,
    ),
]


@pytest.mark.parametrize("case, problem_name", pairs(CONTRIB_CASES))
def test_contrib_optimizer_matches_closed_form(case, problem_name, x64):
    check_forced_closed_form(case, problem_name)


@pytest.mark.parametrize("case, problem_name", pairs(CONTRIB_CASES))
def test_contrib_optimizer_matches_optax(case, problem_name, x64):
    check_forced_optax(case, problem_name)


@pytest.mark.parametrize("case", [c for c in CONTRIB_CASES if not c.variant], ids=lambda c: c.name)
def test_contrib_optimizer_in_float32_matches_references(case):
    check_forced_float32(case)
