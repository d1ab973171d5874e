"""Every optimizer and transform, number for number, against independent references.

References: the closed-form float64 NumPy loops of ``tests/reference.py``
(written from the published equations) and optax's aliases where optax
implements the same rule.  Comparisons run under ``jax.enable_x64`` so they
can be tight (rtol 1e-10); one comparison runs in float32.

Problems (each a closed loop: every implementation computes the gradient at
its own parameters): a quadratic over a nested dict with scalar, vector,
matrix and 3-d leaves; the chained Rosenbrock function; a small tanh MLP.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference as ref
from problems import (  # noqa: F401
    ATOL,
    PROBLEMS,
    RTOL,
    STEPS,
    Problem,
    assert_trajectories_close,
    random_sequence,
    relative_error,
    run_jax,
    run_reference,
)

import gradtx

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


def _decay_mask(params):
    """Decay matrices and cubes, not scalars, vectors and biases."""
    return jax.tree.map(lambda p: np.ndim(p) >= 2, params)


# ----------------------------------------------------------------------------
# The optimizer cases.  Each builds gradtx's optimizer, the NumPy reference
# (given the list of parameter leaves, for masks) and optax's alias (or None)
# from a learning rate.  eps is large in some cases so that putting it inside
# instead of outside the root would fail the comparison by far.


class Case:
    def __init__(self, name, lr, gradtx_fn, reference_fn, optax_fn=None):
        self.name, self.lr = name, lr
        self.gradtx, self.reference, self.optax = gradtx_fn, reference_fn, optax_fn


def _f64(t):
    """A schedule's step count as float64 (strict promotion refuses int32 * float)."""
    return jnp.asarray(t, jnp.float64)


def _decay_schedule(lr):
    return lambda t: lr * 0.98 ** _f64(t)


CASES = [
    Case(
        "sgd", 0.05, lambda lr: gradtx.sgd(lr), lambda lr, ps: ref.sgd(lr), lambda lr: optax.sgd(lr)
    ),
    Case(
        "sgd_momentum",
        0.02,
        lambda lr: gradtx.sgd(lr, momentum=0.9),
        lambda lr, ps: ref.sgd(lr, momentum=0.9),
        lambda lr: optax.sgd(lr, momentum=0.9),
    ),
    Case(
        "sgd_nesterov",
        0.02,
        lambda lr: gradtx.sgd(lr, momentum=0.8, nesterov=True),
        lambda lr, ps: ref.sgd(lr, momentum=0.8, nesterov=True),
        lambda lr: optax.sgd(lr, momentum=0.8, nesterov=True),
    ),
    Case(
        "sgd_schedule",
        0.05,
        lambda lr: gradtx.sgd(_decay_schedule(lr)),
        lambda lr, ps: ref.sgd(_decay_schedule(lr)),
        lambda lr: optax.sgd(_decay_schedule(lr)),
    ),
    Case(
        "rmsprop",
        0.01,
        lambda lr: gradtx.rmsprop(lr, eps=0.1),
        lambda lr, ps: ref.rmsprop(lr, eps=0.1),
        lambda lr: optax.rmsprop(lr, eps=0.1),
    ),
    Case(
        "rmsprop_eps_outside",
        0.01,
        lambda lr: gradtx.rmsprop(lr, decay=0.99, eps=0.1, eps_in_sqrt=False),
        lambda lr, ps: ref.rmsprop(lr, decay=0.99, eps=0.1, eps_in_sqrt=False),
        lambda lr: optax.rmsprop(lr, decay=0.99, eps=0.1, eps_in_sqrt=False),
    ),
    Case(
        "rmsprop_centered",
        0.01,
        lambda lr: gradtx.rmsprop(lr, eps=0.1, centered=True),
        lambda lr, ps: ref.rmsprop(lr, eps=0.1, centered=True),
        lambda lr: optax.rmsprop(lr, eps=0.1, centered=True),
    ),
    Case(
        "rmsprop_centered_eps_outside",
        0.01,
        lambda lr: gradtx.rmsprop(lr, eps=0.1, centered=True, eps_in_sqrt=False),
        lambda lr, ps: ref.rmsprop(lr, eps=0.1, centered=True, eps_in_sqrt=False),
        lambda lr: optax.rmsprop(lr, eps=0.1, centered=True, eps_in_sqrt=False),
    ),
    Case(
        "rmsprop_momentum",
        0.002,
        lambda lr: gradtx.rmsprop(lr, decay=0.95, eps=1e-3, initial_scale=0.5, momentum=0.9),
        lambda lr, ps: ref.rmsprop(lr, decay=0.95, eps=1e-3, initial_scale=0.5, momentum=0.9),
        lambda lr: optax.rmsprop(lr, decay=0.95, eps=1e-3, initial_scale=0.5, momentum=0.9),
    ),
    Case(
        "rmsprop_centered_nesterov",
        0.002,
        lambda lr: gradtx.rmsprop(lr, eps=0.1, centered=True, momentum=0.8, nesterov=True),
        lambda lr, ps: ref.rmsprop(lr, eps=0.1, centered=True, momentum=0.8, nesterov=True),
        lambda lr: optax.rmsprop(lr, eps=0.1, centered=True, momentum=0.8, nesterov=True),
    ),
    Case(
        "adagrad",
        0.1,
        lambda lr: gradtx.adagrad(lr),
        lambda lr, ps: ref.adagrad(lr),
        lambda lr: optax.adagrad(lr),
    ),
    Case(
        "adagrad_eps",
        0.1,
        lambda lr: gradtx.adagrad(lr, initial_accumulator_value=0.0, eps=0.5),
        lambda lr, ps: ref.adagrad(lr, initial_accumulator_value=0.0, eps=0.5),
        lambda lr: optax.adagrad(lr, initial_accumulator_value=0.0, eps=0.5),
    ),
    Case(
        "adadelta",
        1.0,
        lambda lr: gradtx.adadelta(lr),
        lambda lr, ps: ref.adadelta(lr),
        lambda lr: optax.adadelta(learning_rate=lr),
    ),
    Case(
        "adadelta_weight_decay",
        0.5,
        lambda lr: gradtx.adadelta(lr, rho=0.95, eps=1e-3, weight_decay=0.1),
        lambda lr, ps: ref.adadelta(lr, rho=0.95, eps=1e-3, weight_decay=0.1),
        lambda lr: optax.adadelta(learning_rate=lr, rho=0.95, eps=1e-3, weight_decay=0.1),
    ),
    Case(
        "adam",
        0.01,
        lambda lr: gradtx.adam(lr),
        lambda lr, ps: ref.adam(lr),
        lambda lr: optax.adam(lr),
    ),
    Case(
        "adam_eps_root",
        0.01,
        lambda lr: gradtx.adam(lr, b1=0.8, b2=0.99, eps=0.05, eps_root=0.01),
        lambda lr, ps: ref.adam(lr, b1=0.8, b2=0.99, eps=0.05, eps_root=0.01),
        lambda lr: optax.adam(lr, b1=0.8, b2=0.99, eps=0.05, eps_root=0.01),
    ),
    Case(
        "adam_schedule",
        0.01,
        lambda lr: gradtx.adam(_decay_schedule(lr)),
        lambda lr, ps: ref.adam(_decay_schedule(lr)),
        lambda lr: optax.adam(_decay_schedule(lr)),
    ),
    Case(
        "adamw",
        0.01,
        lambda lr: gradtx.adamw(lr, weight_decay=0.1),
        lambda lr, ps: ref.adamw(lr, weight_decay=0.1),
        lambda lr: optax.adamw(lr, weight_decay=0.1),
    ),
    Case(
        "adamw_masked",
        0.01,
        lambda lr: gradtx.adamw(lr, weight_decay=0.5, mask=_decay_mask),
        lambda lr, ps: [ref.adamw(lr, weight_decay=0.5, decay=np.ndim(p) >= 2) for p in ps],
        lambda lr: optax.adamw(lr, weight_decay=0.5, mask=_decay_mask),
    ),
    Case(
        "amsgrad",
        0.01,
        lambda lr: gradtx.amsgrad(lr, b2=0.99),
        lambda lr, ps: ref.amsgrad(lr, b2=0.99),
        lambda lr: optax.amsgrad(lr, b2=0.99),
    ),
]
CASE_BY_NAME = {c.name: c for c in CASES}


# ----------------------------------------------------------------------------
# Runs.  Trajectories are lists (one per step) of lists of parameter leaves.


@functools.cache
def _gradtx_trajectory(case_name, problem_name):
    case, problem = CASE_BY_NAME[case_name], PROBLEMS[problem_name]
    assert jax.config.jax_enable_x64, "call under the x64 fixture"
    return run_jax(case.gradtx(case.lr * problem.lr_scale), problem, gradtx.apply_updates)


@pytest.mark.parametrize("problem_name", list(PROBLEMS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_optimizer_matches_closed_form(case, problem_name, x64):
    problem = PROBLEMS[problem_name]
    lr = case.lr * problem.lr_scale
    expected = run_reference(case.reference(lr, jax.tree.leaves(problem.params)), problem)
    actual = _gradtx_trajectory(case.name, problem_name)
    assert_trajectories_close(actual, expected, f"{case.name} on {problem_name} vs NumPy")
    # The run went somewhere: the comparison is not between two unmoved points.
    start = jax.tree.leaves(problem.params)
    assert max(np.max(np.abs(a - b)) for a, b in zip(actual[-1], start)) > 1e-3


@pytest.mark.parametrize("problem_name", ["nested_quadratic", "mlp"])
@pytest.mark.parametrize("case", [c for c in CASES if c.optax], ids=lambda c: c.name)
def test_optimizer_matches_optax_alias(case, problem_name, x64):
    problem = PROBLEMS[problem_name]
    # optax's own bias correction (float ** int32 count) needs standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        expected = run_jax(case.optax(case.lr * problem.lr_scale), problem, optax.apply_updates)
    actual = _gradtx_trajectory(case.name, problem_name)
    assert_trajectories_close(actual, expected, f"{case.name} on {problem_name} vs optax")


@pytest.mark.parametrize(
    "case_name",
    [
        "sgd_nesterov",
        "rmsprop",
        "rmsprop_momentum",
        "adagrad",
        "adadelta",
        "adam",
        "adamw_masked",
        "amsgrad",
    ],
)
def test_optimizer_in_float32_matches_float64_reference(case_name):
    # float32, without x64.  The learning rates are 10x smaller than the
    # table's and the problem is a convex quadratic, so the float32 round-off
    # of each step (about 1e-7 relative) is damped, not amplified by chaos,
    # and stays near 1e-6 of the parameters after 120 steps.  (Centered
    # RMSprop is left out: v - mu^2 cancels in float32 as the gradient's
    # mean comes to dominate its spread, a property of the formula.)
    case, problem = CASE_BY_NAME[case_name], PROBLEMS["nested_quadratic"]
    lr = case.lr * 0.1
    expected = run_reference(case.reference(lr, jax.tree.leaves(problem.params)), problem)
    actual = run_jax(case.gradtx(lr), problem, gradtx.apply_updates, dtype=np.float32)
    assert all(a.dtype == np.float32 for a in actual[-1])
    assert_trajectories_close(
        actual, expected, f"{case_name} float32 vs NumPy float64", rtol=2e-5, atol=2e-6
    )


# ----------------------------------------------------------------------------
# Transforms, each on its own, over 120 random gradients (and random params,
# for the weight decay) of the nested-dict tree.

TRANSFORM_CASES = {
    "identity": (lambda: gradtx.identity(), lambda ps: ref.scale(1.0)),
    "scale": (lambda: gradtx.scale(-0.7), lambda ps: ref.scale(-0.7)),
    "scale_by_learning_rate_schedule": (
        lambda: gradtx.scale_by_learning_rate(lambda t: 0.1 / (1.0 + _f64(t))),
        lambda ps: ref.scale_by_learning_rate(lambda t: 0.1 / (1.0 + _f64(t))),
    ),
    "scale_by_learning_rate_no_flip": (
        lambda: gradtx.scale_by_learning_rate(0.3, flip_sign=False),
        lambda ps: ref.scale_by_learning_rate(0.3, flip_sign=False),
    ),
    "scale_by_momentum_heavy": (
        lambda: gradtx.scale_by_momentum(0.9),
        lambda ps: ref.momentum(0.9),
    ),
    "scale_by_momentum_ema": (
        lambda: gradtx.scale_by_momentum(0.8, ema=True),
        lambda ps: ref.momentum(0.8, ema=True),
    ),
    "scale_by_momentum_nesterov": (
        lambda: gradtx.scale_by_momentum(0.9, nesterov=True),
        lambda ps: ref.momentum(0.9, nesterov=True),
    ),
    "trace_nesterov": (
        lambda: gradtx.trace(0.9, nesterov=True),
        lambda ps: ref.momentum(0.9, nesterov=True),
    ),
    "scale_by_momentum_nesterov_ema": (
        lambda: gradtx.scale_by_momentum(0.7, ema=True, nesterov=True),
        lambda ps: ref.momentum(0.7, ema=True, nesterov=True),
    ),
    "bias_correction": (lambda: gradtx.bias_correction(0.95), lambda ps: ref.bias_correction(0.95)),
    # eps_in_sqrt (optax's default) puts eps under the root beside eps_root.
    "scale_by_rms": (
        lambda: gradtx.scale_by_rms(0.9, eps=0.1, eps_root=0.01, initial_scale=0.5),
        lambda ps: ref.scale_by_rms(0.9, eps=0.0, eps_root=0.11, initial_scale=0.5),
    ),
    "scale_by_rms_eps_outside": (
        lambda: gradtx.scale_by_rms(0.9, eps=0.1, eps_in_sqrt=False, eps_root=0.01),
        lambda ps: ref.scale_by_rms(0.9, eps=0.1, eps_root=0.01),
    ),
    "scale_by_rms_bias_correction": (
        lambda: gradtx.scale_by_rms(0.99, eps=1e-3, bias_correction=True),
        lambda ps: ref.scale_by_rms(0.99, eps=0.0, eps_root=1e-3, bias_correction=True),
    ),
    "scale_by_centered_rms": (
        lambda: gradtx.scale_by_centered_rms(
            0.9, eps=0.1, eps_in_sqrt=False, eps_root=0.01, initial_scale=0.2
        ),
        lambda ps: ref.scale_by_centered_rms(0.9, eps=0.1, eps_root=0.01, initial_scale=0.2),
    ),
    "scale_by_centered_rms_bias_correction": (
        # At t = 1 the corrected variance g^2 - g^2 is zero: eps keeps
        # round-off from deciding between 0 and g / eps.
        lambda: gradtx.scale_by_centered_rms(0.95, eps=1e-2, bias_correction=True),
        lambda ps: ref.scale_by_centered_rms(0.95, eps=0.0, eps_root=1e-2, bias_correction=True),
    ),
    "scale_by_rss": (
        lambda: gradtx.scale_by_rss(),
        lambda ps: ref.scale_by_rss(0.1, eps=0.0, eps_root=1e-7),
    ),
    "scale_by_rss_eps_outside": (
        lambda: gradtx.scale_by_rss(0.0, eps=0.3, eps_in_sqrt=False),
        lambda ps: ref.scale_by_rss(0.0, eps=0.3, eps_root=0.0),
    ),
    "scale_by_adadelta": (
        lambda: gradtx.scale_by_adadelta(0.9, 1e-4),
        lambda ps: ref.scale_by_adadelta(0.9, 1e-4),
    ),
    "scale_by_max_rms": (
        lambda: gradtx.scale_by_max_rms(0.9, eps=1e-3),
        lambda ps: ref.scale_by_max_rms(0.9, eps=1e-3),
    ),
    "scale_by_max_rms_before_correction": (
        lambda: gradtx.scale_by_max_rms(0.9, eps=1e-3, eps_root=1e-4, max_before_correction=True),
        lambda ps: ref.scale_by_max_rms(0.9, eps=1e-3, eps_root=1e-4, max_before_correction=True),
    ),
    "scale_by_max_rms_no_correction": (
        lambda: gradtx.scale_by_max_rms(0.9, eps=1e-3, bias_correction=False),
        lambda ps: ref.scale_by_max_rms(0.9, eps=1e-3, bias_correction=False),
    ),
    "add_decayed_weights": (
        lambda: gradtx.add_decayed_weights(0.3),
        lambda ps: ref.add_decayed_weights(0.3),
    ),
    "add_decayed_weights_mask_tree": (
        lambda: gradtx.add_decayed_weights(
            0.3, mask=_decay_mask(PROBLEMS["nested_quadratic"].params)
        ),
        lambda ps: [ref.add_decayed_weights(0.3, decay=np.ndim(p) >= 2) for p in ps],
    ),
    "add_decayed_weights_schedule_mask_fn": (
        lambda: gradtx.add_decayed_weights(lambda t: 0.1 * (_f64(t) + 1.0), mask=_decay_mask),
        lambda ps: [
            ref.add_decayed_weights(lambda t: 0.1 * (_f64(t) + 1.0), decay=np.ndim(p) >= 2)
            for p in ps
        ],
    ),
}


@pytest.mark.parametrize("name", list(TRANSFORM_CASES))
def test_transform_matches_closed_form(name, x64):
    make_tx, make_reference = TRANSFORM_CASES[name]
    tree0 = PROBLEMS["nested_quadratic"].params
    grads = random_sequence(tree0, STEPS, seed=2)
    params = random_sequence(tree0, STEPS, seed=3)

    init, update = ref.tree(make_reference(jax.tree.leaves(tree0)))
    state = init(jax.tree.leaves(params[0]))
    expected = []
    for g, p in zip(grads, params):
        u, state = update(jax.tree.leaves(g), state, jax.tree.leaves(p))
        expected.append(u)

    tx = make_tx()

    def body(state, gp):
        u, state = tx.update(gp[0], state, gp[1])
        return state, u

    stacked = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *zip(grads, params))
    state0 = tx.init(jax.tree.map(jnp.asarray, params[0]))
    _, outs = jax.jit(lambda s, xs: jax.lax.scan(body, s, xs))(state0, stacked)
    outs = jax.tree.leaves(outs)
    actual = [[np.asarray(o[t]) for o in outs] for t in range(STEPS)]
    assert_trajectories_close(actual, expected, f"{name} vs NumPy")


# ----------------------------------------------------------------------------
# The demonstration: a one-stream serial chain cannot compute Adam.


def test_naive_serial_chains_differ_from_adam_while_adam_matches(x64):
    b1, b2, eps, lr, steps = 0.9, 0.999, 1e-8, 1e-3, 20
    tree0 = PROBLEMS["nested_quadratic"].params
    grads = random_sequence(tree0, steps, seed=4)

    # gradtx's pieces inside optax.chain: each sees only its input (one stream).
    def rms():
        return gradtx.scale_by_rms(b2, eps, bias_correction=True)

    def momentum():
        return [gradtx.scale_by_momentum(b1, ema=True), gradtx.bias_correction(b1)]

    chains = {
        "chain(scale_by_rms, momentum)": optax.chain(
            rms(), *momentum(), gradtx.scale_by_learning_rate(lr)
        ),
        "chain(momentum, scale_by_rms)": optax.chain(
            *momentum(), rms(), gradtx.scale_by_learning_rate(lr)
        ),
        "gradtx.adam": gradtx.adam(lr, b1, b2, eps),
    }
    init, update = ref.tree(ref.adam(lr, b1, b2, eps))
    state = init(jax.tree.leaves(tree0))
    expected = []
    for g in grads:
        u, state = update(jax.tree.leaves(g), state, jax.tree.leaves(tree0))
        expected.append(np.concatenate([np.ravel(x) for x in u]))

    # Worst over the 20 steps of |u - u_adam| / |u_adam| (norms over all leaves).
    errors = {}
    for name, tx in chains.items():
        state = tx.init(tree0)
        worst = 0.0
        for g, want in zip(grads, expected):
            u, state = tx.update(g, state, tree0)
            got = np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(u)])
            worst = max(worst, np.linalg.norm(got - want) / np.linalg.norm(want))
        errors[name] = float(worst)
    print("\nworst relative error of the update over 20 steps:", errors)
    assert errors["gradtx.adam"] < 1e-12
    assert errors["chain(scale_by_rms, momentum)"] > 0.25
    assert errors["chain(momentum, scale_by_rms)"] > 0.25
