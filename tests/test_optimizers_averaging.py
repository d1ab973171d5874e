"""Schedule-free AdamW and SGD.

gradtx's optimizers against float64 NumPy transcriptions of their published
rules and against optax, on the problems of ``tests/problems.py`` (the checks are
``tests/cases.py``'s).  float64 runs agree to 1e-10 relative at every step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import optax.contrib
import pytest
import reference as ref
import reference_averaging as ref_averaging
from cases import (
    Case,
    check_forced_closed_form,
    check_forced_float32,
    check_forced_optax,
    pairs,
)

import gradtx

# Trajectories of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


def _warmup(lr, steps):
    def schedule(t):
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
        return lr * jnp.minimum(t, steps).astype(dtype) / steps

    return schedule


def _l2_sgd(lr, weight_decay):
    def init(p):
        return {}

    def update(g, s, y):
        return -lr * (g + weight_decay * y), s

    return ref.tree((init, update))


# Compared with optax.contrib's implementations, through runs that record their inputs
# (``chaotic`` problems are teacher-forced).
CONTRIB_CASES = [
    Case(
        "schedule_free_adamw",
        0.01,
        lambda lr: gradtx.schedule_free_adamw(lr, weight_decay=0.1),
        lambda lr, pr: ref_averaging.schedule_free(
            ref_averaging.adamw_without_momentum(lr, weight_decay=0.1), lr
        ),
        lambda lr: optax.contrib.schedule_free_adamw(lr, weight_decay=0.1),
    ),
    Case(
        "schedule_free_adamw_warmup",
        0.02,
        lambda lr: gradtx.schedule_free_adamw(
            lr, warmup_steps=10, b1=0.95, b2=0.99, eps=1e-3, weight_lr_power=1.0
        ),
        lambda lr, pr: ref_averaging.schedule_free(
            ref_averaging.adamw_without_momentum(lambda t: lr * min(t, 10) / 10, b2=0.99, eps=1e-3),
            lambda t: lr * min(t, 10) / 10,
            b1=0.95,
            weight_lr_power=1.0,
        ),
        # optax's warmup schedule rounds to float32 even under x64: give optax the
        # same warmup in the default float dtype.
        lambda lr: optax.contrib.schedule_free_adamw(
            _warmup(lr, 10), b1=0.95, b2=0.99, eps=1e-3, weight_lr_power=1.0
        ),
        variant=True,
    ),
    Case(
        "schedule_free_sgd",
        0.05,
        lambda lr: gradtx.schedule_free_sgd(lr, weight_decay=0.01),
        lambda lr, pr: ref_averaging.schedule_free(_l2_sgd(lr, 0.01), lr),
        lambda lr: optax.contrib.schedule_free_sgd(lr, weight_decay=0.01),
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
