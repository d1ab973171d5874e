"""optax's other optimizers, number for number: against NumPy's closed forms and optax's aliases.

Each case runs 120 steps on the shared problems of ``tests/trajectories.py``
(a nested dict of scalar, vector, matrix and 3-d leaves; Rosenbrock; a small
MLP).  float64 comparisons hold within 1e-10 relative at every step; the
float32 comparison against optax within 1e-5, with learning rates for which
the float32 run is not chaotic.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_optax_core as ref
from problems import PROBLEMS, STEPS, assert_trajectories_close, run_jax, run_reference

import gradtx

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


class Case:
    """gradtx's optimizer, the NumPy reference and optax's alias, each built from a learning rate."""

    def __init__(
        self,
        name,
        lr,
        gradtx_fn,
        reference_fn,
        optax_fn,
        *,
        whole_tree=False,
        with_value=False,
        problems=tuple(PROBLEMS),
    ):
        self.name, self.lr = name, lr
        self.gradtx, self.reference, self.optax = gradtx_fn, reference_fn, optax_fn
        self.whole_tree, self.with_value, self.problems = whole_tree, with_value, problems


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


def _widest():
    """float64 under x64, else float32 (Adafactor's momentum is stored in a fixed dtype)."""
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


CASES = [
    Case(
        "lion",
        0.002,
        lambda lr: gradtx.lion(lr, weight_decay=0.1),
        lambda lr, pr: ref.lion(lr, weight_decay=0.1),
        lambda lr: optax.lion(lr, weight_decay=0.1),
    ),
    Case("sign_sgd", 0.002, gradtx.sign_sgd, lambda lr, pr: ref.sign_sgd(lr), optax.sign_sgd),
    Case(
        "signum",
        0.002,
        lambda lr: gradtx.signum(lr, beta=0.8),
        lambda lr, pr: ref.signum(lr, beta=0.8),
        lambda lr: optax.signum(lr, beta=0.8),
    ),
    Case(
        "lamb",
        0.01,
        lambda lr: gradtx.lamb(lr, weight_decay=0.1, eps=1e-3),
        lambda lr, pr: ref.lamb(lr, weight_decay=0.1, eps=1e-3),
        lambda lr: optax.lamb(lr, weight_decay=0.1, eps=1e-3),
    ),
    Case(
        "lars",
        0.2,
        lambda lr: gradtx.lars(lr, weight_decay=0.01, trust_coefficient=0.02, eps=1e-3),
        lambda lr, pr: ref.lars(lr, weight_decay=0.01, trust_coefficient=0.02, eps=1e-3),
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
            ref.lars(
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
    Case(
        "adafactor",
        0.01,
        lambda lr: gradtx.adafactor(lr, min_dim_size_to_factor=2),
        lambda lr, pr: ref.adafactor(lr, min_dim_size_to_factor=2),
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
        lambda lr, pr: ref.adafactor(
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
        "adabelief",
        0.01,
        lambda lr: gradtx.adabelief(lr, eps=1e-8),
        lambda lr, pr: ref.adabelief(lr, eps=1e-8),
        lambda lr: optax.adabelief(lr, eps=1e-8),
    ),
    Case(
        "adabelief_nesterov",
        0.01,
        lambda lr: gradtx.adabelief(lr, b2=0.99, eps=1e-3, eps_root=1e-6, nesterov=True),
        lambda lr, pr: ref.adabelief(lr, b2=0.99, eps=1e-3, eps_root=1e-6, nesterov=True),
        lambda lr: optax.adabelief(lr, b2=0.99, eps=1e-3, eps_root=1e-6, nesterov=True),
    ),
    Case("adamax", 0.01, gradtx.adamax, lambda lr, pr: ref.adamax(lr), optax.adamax),
    Case(
        "adamaxw",
        0.01,
        lambda lr: gradtx.adamaxw(lr, b2=0.99, eps=0.1, weight_decay=0.1),
        lambda lr, pr: ref.adamax(lr, b2=0.99, eps=0.1, weight_decay=0.1),
        lambda lr: optax.adamaxw(lr, b2=0.99, eps=0.1, weight_decay=0.1),
    ),
    Case(
        "adan",
        0.01,
        lambda lr: gradtx.adan(lr, weight_decay=0.05),
        lambda lr, pr: ref.adan(lr, weight_decay=0.05),
        lambda lr: optax.adan(lr, weight_decay=0.05),
    ),
    Case(
        "novograd",
        0.005,
        lambda lr: gradtx.novograd(lr, weight_decay=0.01),
        lambda lr, pr: ref.novograd(lr, weight_decay=0.01),
        lambda lr: optax.novograd(lr, weight_decay=0.01),
    ),
    Case("yogi", 0.01, gradtx.yogi, lambda lr, pr: ref.yogi(lr), optax.yogi),
    Case(
        "sm3",
        0.05,
        gradtx.sm3,
        lambda lr, pr: ref.sm3(lr),
        optax.sm3,
        problems=("rosenbrock", "mlp"),
    ),  # optax's SM3 cannot take scalar leaves
    Case("fromage", 0.01, gradtx.fromage, lambda lr, pr: ref.fromage(lr), optax.fromage),
    Case("rprop", 0.001, gradtx.rprop, lambda lr, pr: ref.rprop(lr), optax.rprop),
    Case(
        "optimistic_gradient_descent",
        0.02,
        lambda lr: gradtx.optimistic_gradient_descent(lr, alpha=0.8, beta=0.5),
        lambda lr, pr: ref.optimistic_gradient_descent(lr, alpha=0.8, beta=0.5),
        lambda lr: optax.optimistic_gradient_descent(lr, alpha=0.8, beta=0.5),
    ),
    Case(
        "optimistic_adam",
        0.01,
        lambda lr: gradtx.optimistic_adam(lr, optimism=0.02),
        lambda lr, pr: ref.optimistic_adam(lr, optimism=0.02),
        lambda lr: optax.optimistic_adam(lr, optimism=0.02),
    ),
    Case(
        "optimistic_adam_plain",
        0.01,
        lambda lr: gradtx.optimistic_adam(lr, nesterov=False),
        lambda lr, pr: ref.optimistic_adam(lr, nesterov=False),
        lambda lr: optax.optimistic_adam(lr, nesterov=False),
    ),
    Case(
        "optimistic_adam_v2",
        0.01,
        lambda lr: gradtx.optimistic_adam_v2(lr, alpha=0.7, beta=0.4),
        lambda lr, pr: ref.optimistic_adam_v2(lr, alpha=0.7, beta=0.4),
        lambda lr: optax.optimistic_adam_v2(lr, alpha=0.7, beta=0.4),
    ),
    Case(
        "optimistic_adam_v2_plain",
        0.01,
        lambda lr: gradtx.optimistic_adam_v2(lr, nesterov=False),
        lambda lr, pr: ref.optimistic_adam_v2(lr, nesterov=False),
        lambda lr: optax.optimistic_adam_v2(lr, nesterov=False),
    ),
    Case(
        "polyak_sgd",
        0.2,
        lambda lr: gradtx.polyak_sgd(max_learning_rate=lr, scaling=0.5, f_min=-0.1),
        lambda lr, pr: ref.polyak_sgd(max_learning_rate=lr, scaling=0.5, f_min=-0.1),
        lambda lr: optax.polyak_sgd(max_learning_rate=lr, scaling=0.5, f_min=-0.1),
        whole_tree=True,
        with_value=True,
    ),
    Case(
        "noisy_sgd",
        0.02,
        lambda lr: gradtx.noisy_sgd(lr, eta=0.01, key=3),
        lambda lr, pr: ref.noisy_sgd(lr, 0.01, 0.55, _noise(3, pr)),
        lambda lr: optax.noisy_sgd(lr, eta=0.01, key=3),
        whole_tree=True,
    ),
]
CASE_BY_NAME = {c.name: c for c in CASES}


def _matrices(params):
    return jax.tree.map(lambda p: np.ndim(p) >= 2, params)


def _adafactor_decay_in_float64(monkeypatch):
    """optax forms Adafactor's decay 1 - (t + 1)^-0.8 in float32 even under x64; give its alias
    gradtx's float64 decay so that the float64 comparison is of the rule, not of that rounding."""
    import optax._src.factorized as factorized

    defaults = list(factorized.scale_by_factored_rms.__defaults__)
    defaults[-1] = gradtx._factored.decay_rate_pow
    monkeypatch.setattr(factorized.scale_by_factored_rms, "__defaults__", tuple(defaults))


@functools.cache
def _gradtx_trajectory(case_name, problem_name):
    case, problem = CASE_BY_NAME[case_name], PROBLEMS[problem_name]
    assert jax.config.jax_enable_x64, "call under the x64 fixture"
    return run_jax(
        case.gradtx(case.lr * problem.lr_scale),
        problem,
        gradtx.apply_updates,
        with_value=case.with_value,
    )


def _pairs():
    return [pytest.param(c, p, id=f"{c.name}-{p}") for c in CASES for p in c.problems]


@pytest.mark.parametrize("case, problem_name", _pairs())
def test_optimizer_matches_closed_form(case, problem_name, x64):
    problem = PROBLEMS[problem_name]
    lr = case.lr * problem.lr_scale
    expected = run_reference(
        case.reference(lr, problem), problem, whole_tree=case.whole_tree, with_value=case.with_value
    )
    actual = _gradtx_trajectory(case.name, problem_name)
    assert_trajectories_close(actual, expected, f"{case.name} on {problem_name} vs NumPy")
    start = jax.tree.leaves(problem.params)
    assert max(np.max(np.abs(a - b)) for a, b in zip(actual[-1], start)) > 1e-3


@pytest.mark.parametrize("case, problem_name", _pairs())
def test_optimizer_matches_optax_alias(case, problem_name, x64, monkeypatch):
    problem = PROBLEMS[problem_name]
    _adafactor_decay_in_float64(monkeypatch)
    with jax.numpy_dtype_promotion("standard"):
        expected = run_jax(
            case.optax(case.lr * problem.lr_scale),
            problem,
            optax.apply_updates,
            with_value=case.with_value,
        )
    actual = _gradtx_trajectory(case.name, problem_name)
    assert_trajectories_close(actual, expected, f"{case.name} on {problem_name} vs optax")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_optimizer_in_float32_matches_optax(case):
    # Both in float32, without x64; a tenth of the table's learning rate on
    # the first problem that case runs (SM3: Rosenbrock, whose steps are
    # also scaled by 1/20), so round-off is damped rather than amplified.
    problem = PROBLEMS[case.problems[0]]
    lr = case.lr * problem.lr_scale * 0.1
    with jax.numpy_dtype_promotion("standard"):
        expected = run_jax(
            case.optax(lr),
            problem,
            optax.apply_updates,
            dtype=np.float32,
            with_value=case.with_value,
        )
    actual = run_jax(
        case.gradtx(lr), problem, gradtx.apply_updates, dtype=np.float32, with_value=case.with_value
    )
    assert all(a.dtype == np.float32 for a in actual[-1])
    assert len(actual) == STEPS
    assert_trajectories_close(
        actual, expected, f"{case.name} float32 vs optax float32", rtol=1e-5, atol=1e-6
    )
