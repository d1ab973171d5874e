"""SGD and its relatives: plain, momentum, Nesterov, optimistic, noisy SGD and MADGRAD.

gradtx's optimizers against float64 NumPy transcriptions of their published
rules and against optax, on the problems of ``tests/problems.py`` (the checks are
``tests/cases.py``'s).  float64 runs agree to 1e-10 relative at every step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
import reference as ref
import reference_sgd as ref_sgd
from cases import (
    Case,
    check_closed_form,
    check_float32_matches_float64_reference,
    check_float32_matches_optax,
    check_forced_closed_form,
    check_forced_float32,
    check_forced_optax,
    check_optax_alias,
    named,
    pairs,
)

import gradtx

# Trajectories of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

QUADRATIC_AND_MLP = ("nested_quadratic", "mlp")


def _f64(t):
    """A schedule's step count as float64 (strict promotion refuses int32 * float)."""
    return jnp.asarray(t, jnp.float64)


def _decay_schedule(lr):
    return lambda t: lr * 0.98 ** _f64(t)


def _noise(seed, problem):
    """optax's noise: per step, split the key into (next, sample), the sample key per leaf."""
    key = [jax.random.key(seed)]
    leaves = jax.tree.leaves(problem.params)

    def draw(t):
        key[0], sample = jax.random.split(key[0])
        keys = jax.random.split(sample, len(leaves))
        return [
            np.asarray(jax.random.normal(k, np.shape(p), jnp.float64)) for k, p in zip(keys, leaves)
        ]

    return draw


CASES = [
    Case(
        "sgd",
        0.05,
        lambda lr: gradtx.sgd(lr),
        lambda lr, pr: ref.sgd(lr),
        lambda lr: optax.sgd(lr),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "sgd_momentum",
        0.02,
        lambda lr: gradtx.sgd(lr, momentum=0.9),
        lambda lr, pr: ref.sgd(lr, momentum=0.9),
        lambda lr: optax.sgd(lr, momentum=0.9),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "sgd_nesterov",
        0.02,
        lambda lr: gradtx.sgd(lr, momentum=0.8, nesterov=True),
        lambda lr, pr: ref.sgd(lr, momentum=0.8, nesterov=True),
        lambda lr: optax.sgd(lr, momentum=0.8, nesterov=True),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "sgd_schedule",
        0.05,
        lambda lr: gradtx.sgd(_decay_schedule(lr)),
        lambda lr, pr: ref.sgd(_decay_schedule(lr)),
        lambda lr: optax.sgd(_decay_schedule(lr)),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "optimistic_gradient_descent",
        0.02,
        lambda lr: gradtx.optimistic_gradient_descent(lr, alpha=0.8, beta=0.5),
        lambda lr, pr: ref_sgd.optimistic_gradient_descent(lr, alpha=0.8, beta=0.5),
        lambda lr: optax.optimistic_gradient_descent(lr, alpha=0.8, beta=0.5),
    ),
    Case(
        "noisy_sgd",
        0.02,
        lambda lr: gradtx.noisy_sgd(lr, eta=0.01, key=3),
        lambda lr, pr: ref_sgd.noisy_sgd(lr, 0.01, 0.55, _noise(3, pr)),
        lambda lr: optax.noisy_sgd(lr, eta=0.01, key=3),
        whole_tree=True,
    ),
]


# Compared with optax.contrib's implementations, through runs that record their inputs
# (``chaotic`` problems are teacher-forced).
CONTRIB_CASES = [
    Case(
        "madgrad",
        0.01,
        lambda lr: gradtx.madgrad(lr, weight_decay=0.01),
        lambda lr, pr: ref_sgd.madgrad(lr, weight_decay=0.01),
        lambda lr: optax.contrib.madgrad(lr, weight_decay=0.01),
        # optax forms lambda_k = (lr + eps) sqrt(k + 1) from jnp.sqrt of the int32
        # count, which is float32 even under x64; gradtx keeps float64 (and
        # matches NumPy to 1e-10): optax drifts from both by up to ~2e-5.
        optax_rtol=5e-5,
    ),
]


@pytest.mark.parametrize("case, problem_name", pairs(CASES))
def test_optimizer_matches_closed_form(case, problem_name, x64):
    check_closed_form(case, problem_name)


@pytest.mark.parametrize("case, problem_name", pairs(CASES, optax=True))
def test_optimizer_matches_optax_alias(case, problem_name, x64):
    check_optax_alias(case, problem_name)


@pytest.mark.parametrize(
    "case", named(CASES, "optimistic_gradient_descent", "noisy_sgd"), ids=lambda c: c.name
)
def test_optimizer_in_float32_matches_optax(case):
    check_float32_matches_optax(case)


@pytest.mark.parametrize("case", named(CASES, "sgd_nesterov"), ids=lambda c: c.name)
def test_optimizer_in_float32_matches_float64_reference(case):
    check_float32_matches_float64_reference(case)


@pytest.mark.parametrize("case, problem_name", pairs(CONTRIB_CASES))
def test_contrib_optimizer_matches_closed_form(case, problem_name, x64):
    check_forced_closed_form(case, problem_name)


@pytest.mark.parametrize("case, problem_name", pairs(CONTRIB_CASES))
def test_contrib_optimizer_matches_optax(case, problem_name, x64):
    check_forced_optax(case, problem_name)


@pytest.mark.parametrize("case", [c for c in CONTRIB_CASES if not c.variant], ids=lambda c: c.name)
def test_contrib_optimizer_in_float32_matches_references(case):
    check_forced_float32(case)
