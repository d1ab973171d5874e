"""Parameter-free methods: Prodigy, D-Adaptation, DoG, DoWG, COCOB, MoMo and Polyak's step size.

gradtx's optimizers against float64 NumPy transcriptions of their published
rules and against optax, on the problems of ``tests/problems.py`` (the checks are
``tests/cases.py``'s).  float64 runs agree to 1e-10 relative at every step.
"""

from __future__ import annotations

import optax
import optax.contrib
import pytest
import reference_parameter_free as ref_parameter_free
from cases import (
    Case,
    check_closed_form,
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

CASES = [
    Case(
        "polyak_sgd",
        0.2,
        lambda lr: gradtx.polyak_sgd(max_learning_rate=lr, scaling=0.5, f_min=-0.1),
        lambda lr, pr: ref_parameter_free.polyak_sgd(max_learning_rate=lr, scaling=0.5, f_min=-0.1),
        lambda lr: optax.polyak_sgd(max_learning_rate=lr, scaling=0.5, f_min=-0.1),
        whole_tree=True,
        value=True,
    ),
]


# Compared with optax.contrib's implementations, through runs that record their inputs
# (``chaotic`` problems are teacher-forced).
CONTRIB_CASES = [
    Case(
        "prodigy",
        1.0,
        lambda lr: gradtx.prodigy(lr, estim_lr0=1e-3, weight_decay=0.01),
        lambda lr, pr: ref_parameter_free.prodigy(lr, d0=1e-3, weight_decay=0.01),
        lambda lr: optax.contrib.prodigy(lr, estim_lr0=1e-3, weight_decay=0.01),
        # d_t is a ratio of sums that cancel: float32 holds it to ~1e-5 at lr 0.03.
        f32_scale=0.03,
    ),
    Case(
        "prodigy_safeguard",
        0.5,
        lambda lr: gradtx.prodigy(
            lr,
            betas=(0.8, 0.99),
            beta3=0.9,
            estim_lr0=1e-3,
            estim_lr_coef=0.5,
            safeguard_warmup=True,
        ),
        lambda lr, pr: ref_parameter_free.prodigy(
            lr, betas=(0.8, 0.99), beta3=0.9, d0=1e-3, d_coef=0.5, safeguard_warmup=True
        ),
        lambda lr: optax.contrib.prodigy(
            lr,
            betas=(0.8, 0.99),
            beta3=0.9,
            estim_lr0=1e-3,
            estim_lr_coef=0.5,
            safeguard_warmup=True,
        ),
        variant=True,
    ),
    Case(
        "dadapt_adamw",
        1.0,
        lambda lr: gradtx.dadapt_adamw(lr, estim_lr0=1e-3, weight_decay=0.01),
        lambda lr, pr: ref_parameter_free.dadapt_adamw(lr, d0=1e-3, weight_decay=0.01),
        lambda lr: optax.contrib.dadapt_adamw(lr, estim_lr0=1e-3, weight_decay=0.01),
    ),
    Case(
        "dog",
        1.0,
        lambda lr: gradtx.dog(lr, weight_decay=0.01),
        lambda lr, pr: ref_parameter_free.dog(lr, weight_decay=0.01),
        lambda lr: optax.contrib.dog(lr, weight_decay=0.01),
        scale_lr=False,
    ),
    Case(
        "dog_distance",
        0.5,
        lambda lr: gradtx.dog(lr, init_step=("distance", 1e-3), eps=1e-6),
        lambda lr, pr: ref_parameter_free.dog(lr, init_step=("distance", 1e-3), eps=1e-6),
        lambda lr: optax.contrib.dog(lr, init_step=("distance", 1e-3), eps=1e-6),
        scale_lr=False,
        variant=True,
    ),
    # On the MLP, DoG after a fixed first step, DoWG from a given distance and
    # COCOB amplify round-off (gradtx and optax agree bit for bit there, in
    # closed loop, but NumPy's different summation order drifts): teacher-forced.
    Case(
        "dog_learning_rate",
        1.0,
        lambda lr: gradtx.dog(lr, init_step=("learning_rate", 1e-3)),
        lambda lr, pr: ref_parameter_free.dog(lr, init_step=("learning_rate", 1e-3)),
        lambda lr: optax.contrib.dog(lr, init_step=("learning_rate", 1e-3)),
        scale_lr=False,
        chaotic=("mlp",),
        variant=True,
    ),
    Case(
        "dowg",
        1.0,
        lambda lr: gradtx.dowg(lr, weight_decay=0.01),
        lambda lr, pr: ref_parameter_free.dowg(lr, weight_decay=0.01),
        lambda lr: optax.contrib.dowg(lr, weight_decay=0.01),
        scale_lr=False,
    ),
    Case(
        "dowg_init",
        0.5,
        lambda lr: gradtx.dowg(lr, init_estim_sq_dist=1e-3, eps=1e-6),
        lambda lr, pr: ref_parameter_free.dowg(lr, init_estim_sq_dist=1e-3, eps=1e-6),
        lambda lr: optax.contrib.dowg(lr, init_estim_sq_dist=1e-3, eps=1e-6),
        scale_lr=False,
        chaotic=("mlp",),
        variant=True,
    ),
    Case(
        "cocob",
        1.0,
        lambda lr: gradtx.cocob(lr, weight_decay=0.01),
        lambda lr, pr: ref_parameter_free.cocob(lr, weight_decay=0.01),
        lambda lr: optax.contrib.cocob(lr, weight_decay=0.01),
        chaotic=("mlp",),
    ),
    Case(
        "momo",
        0.1,
        lambda lr: gradtx.momo(lr, weight_decay=0.01),
        lambda lr, pr: ref_parameter_free.momo(lr, weight_decay=0.01),
        lambda lr: optax.contrib.momo(lr, weight_decay=0.01),
        value=True,
    ),
    Case(
        "momo_adapt",
        0.1,
        lambda lr: gradtx.momo(lr, beta=0.8, lower_bound=-1.0, adapt_lower_bound=True),
        lambda lr, pr: ref_parameter_free.momo(
            lr, beta=0.8, lower_bound=-1.0, adapt_lower_bound=True
        ),
        lambda lr: optax.contrib.momo(lr, beta=0.8, lower_bound=-1.0, adapt_lower_bound=True),
        value=True,
        variant=True,
    ),
    Case(
        "momo_adam",
        0.01,
        lambda lr: gradtx.momo_adam(lr, weight_decay=0.01),
        lambda lr, pr: ref_parameter_free.momo_adam(lr, weight_decay=0.01),
        lambda lr: optax.contrib.momo_adam(lr, weight_decay=0.01),
        value=True,
    ),
    Case(
        "momo_adam_adapt",
        0.01,
        lambda lr: gradtx.momo_adam(lr, b2=0.99, lower_bound=-1.0, adapt_lower_bound=True),
        lambda lr, pr: ref_parameter_free.momo_adam(
            lr, b2=0.99, lower_bound=-1.0, adapt_lower_bound=True
        ),
        lambda lr: optax.contrib.momo_adam(lr, b2=0.99, lower_bound=-1.0, adapt_lower_bound=True),
        value=True,
        variant=True,
    ),
]


@pytest.mark.parametrize("case, problem_name", pairs(CASES))
def test_optimizer_matches_closed_form(case, problem_name, x64):
    check_closed_form(case, problem_name)


@pytest.mark.parametrize("case, problem_name", pairs(CASES, optax=True))
def test_optimizer_matches_optax_alias(case, problem_name, x64):
    check_optax_alias(case, problem_name)


@pytest.mark.parametrize("case", named(CASES, "polyak_sgd"), ids=lambda c: c.name)
def test_optimizer_in_float32_matches_optax(case):
    check_float32_matches_optax(case)


@pytest.mark.parametrize("case, problem_name", pairs(CONTRIB_CASES))
def test_contrib_optimizer_matches_closed_form(case, problem_name, x64):
    check_forced_closed_form(case, problem_name)


@pytest.mark.parametrize("case, problem_name", pairs(CONTRIB_CASES))
def test_contrib_optimizer_matches_optax(case, problem_name, x64):
    check_forced_optax(case, problem_name)


@pytest.mark.parametrize("case", [c for c in CONTRIB_CASES if not c.variant], ids=lambda c: c.name)
def test_contrib_optimizer_in_float32_matches_references(case):
    check_forced_float32(case)
