"""Adam's variants: AdaBelief, Yogi, Adan, LaProp, MARS, Adam-mini, AdEMAMix and ADOPT.

gradtx's optimizers against float64 NumPy transcriptions of their published
rules and against optax, on the problems of ``tests/problems.py`` (the checks are
``tests/cases.py``'s).  float64 runs agree to 1e-10 relative at every step.
LaProp and MARS are also compared with pytorch-optimizer.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
import reference_adam_variants as ref_adam_variants
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
from lazy_import import lazy
from problems import PROBLEMS, assert_trajectories_close, moved, run_jax, run_torch

import gradtx

torch = lazy("torch")
pytorch_optimizer = lazy("pytorch_optimizer")
pytorch_optimizer_base = lazy("pytorch_optimizer.base.optimizer")

# Trajectories of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


def _default_float(t):
    return jnp.asarray(t).astype(jax.dtypes.canonicalize_dtype(jnp.float64))


def _ramp(start, end, steps):
    """start + (end - start) * min(t, steps) / steps, in the default float dtype."""
    return lambda t: start + (end - start) * jnp.minimum(_default_float(t), steps) / steps


CASES = [
    Case(
        "adabelief",
        0.01,
        lambda lr: gradtx.adabelief(lr, eps=1e-8),
        lambda lr, pr: ref_adam_variants.adabelief(lr, eps=1e-8),
        lambda lr: optax.adabelief(lr, eps=1e-8),
    ),
    Case(
        "adabelief_nesterov",
        0.01,
        lambda lr: gradtx.adabelief(lr, b2=0.99, eps=1e-3, eps_root=1e-6, nesterov=True),
        lambda lr, pr: ref_adam_variants.adabelief(
            lr, b2=0.99, eps=1e-3, eps_root=1e-6, nesterov=True
        ),
        lambda lr: optax.adabelief(lr, b2=0.99, eps=1e-3, eps_root=1e-6, nesterov=True),
    ),
    Case(
        "adan",
        0.01,
        lambda lr: gradtx.adan(lr, weight_decay=0.05),
        lambda lr, pr: ref_adam_variants.adan(lr, weight_decay=0.05),
        lambda lr: optax.adan(lr, weight_decay=0.05),
    ),
    Case("yogi", 0.01, gradtx.yogi, lambda lr, pr: ref_adam_variants.yogi(lr), optax.yogi),
    # No optax alias: compared with pytorch-optimizer below.
    Case(
        "laprop",
        0.01,
        lambda lr: gradtx.laprop(lr, b1=0.9, b2=0.99, eps=1e-3),
        lambda lr, pr: ref_adam_variants.laprop(lr, b1=0.9, b2=0.99, eps=1e-3),
    ),
    Case(
        "laprop_weight_decay",
        0.01,
        lambda lr: gradtx.laprop(lr, b1=0.8, weight_decay=0.1),
        lambda lr, pr: ref_adam_variants.laprop(lr, b1=0.8, weight_decay=0.1),
        variant=True,
    ),
    Case(
        "mars",
        0.01,
        lambda lr: gradtx.mars(lr, gamma=0.1, weight_decay=0.05),
        lambda lr, pr: ref_adam_variants.mars(lr, gamma=0.1, weight_decay=0.05),
    ),
    Case(
        "mars_large_gamma",
        0.01,
        lambda lr: gradtx.mars(lr, b1=0.9, b2=0.999, gamma=1.0, eps=1e-3),
        lambda lr, pr: ref_adam_variants.mars(lr, b1=0.9, b2=0.999, gamma=1.0, eps=1e-3),
        variant=True,
    ),
    Case(
        "adam_mini",
        0.01,
        lambda lr: gradtx.adam_mini(lr, b2=0.99, weight_decay=0.1),
        lambda lr, pr: ref_adam_variants.adam_mini(lr, b2=0.99, weight_decay=0.1),
    ),
    Case(
        "adam_mini_per_column",
        0.01,
        lambda lr: gradtx.adam_mini(lr, b2=0.99, block_axes=0),
        lambda lr, pr: ref_adam_variants.adam_mini(lr, b2=0.99, block_axes=0),
        variant=True,
    ),
]


# Compared with optax.contrib's implementations, through runs that record their inputs
# (``chaotic`` problems are teacher-forced).
CONTRIB_CASES = [
    Case(
        "ademamix",
        0.01,
        lambda lr: gradtx.ademamix(lr, b3=0.99, weight_decay=0.1),
        lambda lr, pr: ref_adam_variants.ademamix(lr, b3=0.99, weight_decay=0.1),
        lambda lr: optax.contrib.ademamix(lr, b3=0.99, weight_decay=0.1),
    ),
    Case(
        "ademamix_schedules",
        0.01,
        lambda lr: gradtx.ademamix(
            lr, b3=_ramp(0.9, 0.99, 50), alpha=_ramp(0.0, 3.0, 50), eps_root=1e-6
        ),
        lambda lr, pr: ref_adam_variants.ademamix(
            lr,
            b3=lambda t: 0.9 + 0.09 * min(t, 50) / 50,
            alpha=lambda t: 3.0 * min(t, 50) / 50,
            eps_root=1e-6,
        ),
        lambda lr: optax.contrib.ademamix(
            lr, b3=_ramp(0.9, 0.99, 50), alpha=_ramp(0.0, 3.0, 50), eps_root=1e-6
        ),
        variant=True,
    ),
    Case(
        "simplified_ademamix",
        0.001,
        lambda lr: gradtx.simplified_ademamix(lr, b1=0.9, alpha=2.0, weight_decay=0.1),
        lambda lr, pr: ref_adam_variants.simplified_ademamix(
            lr, b1=0.9, alpha=2.0, weight_decay=0.1
        ),
        lambda lr: optax.contrib.simplified_ademamix(lr, b1=0.9, alpha=2.0, weight_decay=0.1),
    ),
    Case(
        "adopt",
        0.01,
        lambda lr: gradtx.adopt(lr, b2=0.99),
        lambda lr, pr: ref_adam_variants.adopt(lr, b2=0.99),
        lambda lr: optax.contrib.adopt(lr, b2=0.99),
    ),
    Case(
        "adopt_nesterov_unclipped",
        0.01,
        lambda lr: gradtx.adopt(lr, b2=0.99, eps=1e-3, nesterov=True, use_clipping=False),
        lambda lr, pr: ref_adam_variants.adopt(
            lr, b2=0.99, eps=1e-3, nesterov=True, use_clipping=False
        ),
        lambda lr: optax.contrib.adopt(lr, b2=0.99, eps=1e-3, nesterov=True, use_clipping=False),
        variant=True,
    ),
]


@pytest.mark.parametrize("case, problem_name", pairs(CASES))
def test_optimizer_matches_closed_form(case, problem_name, x64):
    check_closed_form(case, problem_name)


@pytest.mark.parametrize("case, problem_name", pairs(CASES, optax=True))
def test_optimizer_matches_optax_alias(case, problem_name, x64):
    check_optax_alias(case, problem_name)


@pytest.mark.parametrize(
    "case", named(CASES, "adabelief", "adabelief_nesterov", "adan", "yogi"), ids=lambda c: c.name
)
def test_optimizer_in_float32_matches_optax(case):
    check_float32_matches_optax(case)


@pytest.mark.parametrize("case", named(CASES, "laprop", "mars", "adam_mini"), ids=lambda c: c.name)
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


# pytorch-optimizer 4.1.0, with eps = 0: both divide eps by sqrt(1 - b2^t)
# (the papers add it to sqrt(v_hat_t)).  LaProp without weight decay (it
# decays after the step, gradtx and the paper before); MARS with optimize_1d=True (every leaf gets the correction).
TORCH_CASES = {
    "laprop": (
        0.01,
        lambda lr: gradtx.laprop(lr, b1=0.9, b2=0.99, eps=0.0),
        lambda lr: (
            lambda ps: pytorch_optimizer.LaProp(
                ps, lr=lr, betas=(0.9, 0.99), eps=0.0, foreach=False
            )
        ),
    ),
    "mars": (
        0.01,
        lambda lr: gradtx.mars(lr, gamma=0.1, weight_decay=0.05, eps=0.0),
        lambda lr: (
            lambda ps: pytorch_optimizer.MARS(
                ps,
                lr=lr,
                betas=(0.95, 0.99),
                gamma=0.1,
                eps=0.0,
                optimize_1d=True,
                weight_decay=0.05,
                foreach=False,
            )
        ),
    ),
}


@pytest.fixture
def no_hidden_eps(monkeypatch):
    """pytorch-optimizer divides by sqrt(v_t + 1e-15) + eps: a fixed 1e-15 under the root,
    on top of eps, that the MLP's small bias gradients (v_t near 1e-9) feel at 1e-6.  The
    papers have no such term; set it to 0 so that the comparison is of the rules."""
    original = pytorch_optimizer_base.BaseOptimizer.apply_ams_bound
    monkeypatch.setattr(
        pytorch_optimizer_base.BaseOptimizer,
        "apply_ams_bound",
        staticmethod(functools.partial(original, exp_avg_sq_eps=0.0)),
    )


@pytest.mark.parametrize("problem_name", list(PROBLEMS))
@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_optimizer_matches_pytorch_optimizer(name, problem_name, x64, no_hidden_eps):
    lr, make, make_torch = TORCH_CASES[name]
    problem = PROBLEMS[problem_name]
    lr = lr * problem.lr_scale
    expected = run_torch(make_torch(lr), problem)
    actual = run_jax(make(lr), problem, gradtx.apply_updates)
    assert_trajectories_close(actual, expected, f"{name} on {problem_name} vs pytorch-optimizer")
    assert moved(actual, problem)


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_optimizer_in_float32_matches_pytorch_optimizer_in_float32(name, no_hidden_eps):
    lr, make, make_torch = TORCH_CASES[name]
    problem = PROBLEMS["nested_quadratic"]
    expected = run_torch(make_torch(lr * 0.1), problem, dtype=torch.float32)
    actual = run_jax(make(lr * 0.1), problem, gradtx.apply_updates, dtype=np.float32)
    assert_trajectories_close(
        actual, expected, f"{name} float32 vs pytorch-optimizer float32", rtol=1e-5, atol=1e-6
    )


def _adam_mini_torch(lr, weight_decay):
    """pytorch-optimizer's AdamMini over free parameters: names it does not single out, so
    one second moment per tensor.  It computes in float32 whatever the parameters' dtype."""

    def make(params):
        module = torch.nn.Module()
        for i, p in enumerate(params):
            module.register_parameter(f"leaf{i}", p)
        return pytorch_optimizer.AdamMini(
            module, lr=lr, betas=(0.9, 0.99), weight_decay=weight_decay, eps=1e-8
        )

    return make


@pytest.mark.parametrize("problem_name", ["nested_quadratic", "rosenbrock"])
def test_adam_mini_in_float32_matches_pytorch_optimizer(problem_name):
    problem = PROBLEMS[problem_name]
    lr = 0.01 * problem.lr_scale
    expected = run_torch(_adam_mini_torch(lr, 0.1), problem, dtype=torch.float32)
    with jax.enable_x64(False):
        actual = run_jax(
            gradtx.adam_mini(lr, b2=0.99, weight_decay=0.1),
            problem,
            gradtx.apply_updates,
            dtype=np.float32,
        )
    assert_trajectories_close(
        actual,
        expected,
        f"adam_mini on {problem_name} float32 vs pytorch-optimizer",
        rtol=1e-5,
        atol=1e-6,
    )
    assert moved(actual, problem)


def test_laprop_is_rms_scaling_then_momentum():
    # The recipe reads as the paper: divide by the RMS first, then average.
    parts = [child.name for child in gradtx.laprop(1e-3).children]
    assert parts == [
        "scale_by_rms",
        "scale_by_momentum",
        "bias_correction",
        "add_decayed_weights",
        "scale_by_learning_rate",
    ]


def test_laprop_step_stays_bounded_where_adam_blows_up():
    # LaProp averages g / rms(g), each at most 1 / sqrt(1 - b2) in size, so
    # |step| <= lr / sqrt(1 - b2) whatever b1.  Adam with b1^2 > b2 is not bounded:
    # after a spike its momentum outlives its second moment.
    lr, b1, b2 = 0.1, 0.99, 0.9
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=50).astype(np.float32) for _ in range(260)]
    grads[100] = grads[100] * 10
    grads[101:] = [g * 1e-3 for g in grads[101:]]
    worst = {}
    for name, opt in (
        ("laprop", gradtx.laprop(lr, b1=b1, b2=b2, eps=1e-12)),
        ("adam", gradtx.adam(lr, b1=b1, b2=b2, eps=1e-12)),
    ):
        params = np.zeros(50, np.float32)
        state = opt.init(params)
        worst[name] = 0.0
        for g in grads:
            u, state = opt.update(g, state, params)
            worst[name] = max(worst[name], float(np.max(np.abs(u))))
    bound = lr / np.sqrt(1 - b2)
    assert worst["laprop"] <= bound * (1 + 1e-5)
    assert worst["adam"] > 3 * bound


@pytest.mark.parametrize(
    "factory, kwargs, message",
    [
        (gradtx.laprop, dict(learning_rate=-1.0), "laprop: learning_rate must be in"),
        (gradtx.laprop, dict(learning_rate=1e-3, b1=1.0), r"laprop: b1 must be in \[0, 1\)"),
        (gradtx.mars, dict(learning_rate=1e-3, gamma=-0.1), r"mars: gamma must be in \[0, inf\]"),
        (gradtx.mars, dict(learning_rate=1e-3, b2=1.5), r"mars: b2 must be in \[0, 1\)"),
        (gradtx.adam_mini, dict(learning_rate=1e-3, eps=-1.0), r"adam_mini: eps must be in"),
        (
            gradtx.adam_mini,
            dict(learning_rate=1e-3, weight_decay=-1.0),
            "adam_mini: weight_decay must be in",
        ),
    ],
)
def test_optimizer_with_bad_hyperparameter_raises(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(**kwargs)
