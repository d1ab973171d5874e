"""The Adam family: Adam, AdamW, AMSGrad, Adamax(W) and optimistic Adam.

gradtx's optimizers against float64 NumPy transcriptions of their published
rules and against optax, on the problems of ``tests/problems.py`` (the checks are
``tests/cases.py``'s).  float64 runs agree to 1e-10 relative at every step.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference as ref
import reference_adam as ref_adam
from cases import (
    Case,
    check_closed_form,
    check_float32_matches_float64_reference,
    check_float32_matches_optax,
    check_optax_alias,
    named,
    pairs,
)
from problems import PROBLEMS, random_sequence
from trees import wide_tree

import gradtx

# Trajectories of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

QUADRATIC_AND_MLP = ("nested_quadratic", "mlp")


def _decay_mask(params):
    """Decay matrices and cubes, not scalars, vectors and biases."""
    return jax.tree.map(lambda p: np.ndim(p) >= 2, params)


def _f64(t):
    """A schedule's step count as float64 (strict promotion refuses int32 * float)."""
    return jnp.asarray(t, jnp.float64)


def _decay_schedule(lr):
    return lambda t: lr * 0.98 ** _f64(t)


CASES = [
    Case(
        "adam",
        0.01,
        lambda lr: gradtx.adam(lr),
        lambda lr, pr: ref.adam(lr),
        lambda lr: optax.adam(lr),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "adam_eps_root",
        0.01,
        lambda lr: gradtx.adam(lr, b1=0.8, b2=0.99, eps=0.05, eps_root=0.01),
        lambda lr, pr: ref.adam(lr, b1=0.8, b2=0.99, eps=0.05, eps_root=0.01),
        lambda lr: optax.adam(lr, b1=0.8, b2=0.99, eps=0.05, eps_root=0.01),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "adam_schedule",
        0.01,
        lambda lr: gradtx.adam(_decay_schedule(lr)),
        lambda lr, pr: ref.adam(_decay_schedule(lr)),
        lambda lr: optax.adam(_decay_schedule(lr)),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "adamw",
        0.01,
        lambda lr: gradtx.adamw(lr, weight_decay=0.1),
        lambda lr, pr: ref.adamw(lr, weight_decay=0.1),
        lambda lr: optax.adamw(lr, weight_decay=0.1),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "adamw_masked",
        0.01,
        lambda lr: gradtx.adamw(lr, weight_decay=0.5, mask=_decay_mask),
        lambda lr, pr: [
            ref.adamw(lr, weight_decay=0.5, decay=np.ndim(p) >= 2)
            for p in jax.tree.leaves(pr.params)
        ],
        lambda lr: optax.adamw(lr, weight_decay=0.5, mask=_decay_mask),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case(
        "amsgrad",
        0.01,
        lambda lr: gradtx.amsgrad(lr, b2=0.99),
        lambda lr, pr: ref.amsgrad(lr, b2=0.99),
        lambda lr: optax.amsgrad(lr, b2=0.99),
        optax_problems=QUADRATIC_AND_MLP,
    ),
    Case("adamax", 0.01, gradtx.adamax, lambda lr, pr: ref_adam.adamax(lr), optax.adamax),
    Case(
        "adamaxw",
        0.01,
        lambda lr: gradtx.adamaxw(lr, b2=0.99, eps=0.1, weight_decay=0.1),
        lambda lr, pr: ref_adam.adamax(lr, b2=0.99, eps=0.1, weight_decay=0.1),
        lambda lr: optax.adamaxw(lr, b2=0.99, eps=0.1, weight_decay=0.1),
    ),
    Case(
        "optimistic_adam",
        0.01,
        lambda lr: gradtx.optimistic_adam(lr, optimism=0.02),
        lambda lr, pr: ref_adam.optimistic_adam(lr, optimism=0.02),
        lambda lr: optax.optimistic_adam(lr, optimism=0.02),
    ),
    Case(
        "optimistic_adam_plain",
        0.01,
        lambda lr: gradtx.optimistic_adam(lr, nesterov=False),
        lambda lr, pr: ref_adam.optimistic_adam(lr, nesterov=False),
        lambda lr: optax.optimistic_adam(lr, nesterov=False),
    ),
    Case(
        "optimistic_adam_v2",
        0.01,
        lambda lr: gradtx.optimistic_adam_v2(lr, alpha=0.7, beta=0.4),
        lambda lr, pr: ref_adam.optimistic_adam_v2(lr, alpha=0.7, beta=0.4),
        lambda lr: optax.optimistic_adam_v2(lr, alpha=0.7, beta=0.4),
    ),
    Case(
        "optimistic_adam_v2_plain",
        0.01,
        lambda lr: gradtx.optimistic_adam_v2(lr, nesterov=False),
        lambda lr, pr: ref_adam.optimistic_adam_v2(lr, nesterov=False),
        lambda lr: optax.optimistic_adam_v2(lr, nesterov=False),
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
    named(
        CASES,
        "adamax",
        "adamaxw",
        "optimistic_adam",
        "optimistic_adam_plain",
        "optimistic_adam_v2",
        "optimistic_adam_v2_plain",
    ),
    ids=lambda c: c.name,
)
def test_optimizer_in_float32_matches_optax(case):
    check_float32_matches_optax(case)


@pytest.mark.parametrize(
    "case", named(CASES, "adam", "adamw_masked", "amsgrad"), ids=lambda c: c.name
)
def test_optimizer_in_float32_matches_float64_reference(case):
    check_float32_matches_float64_reference(case)


# ----------------------------------------------------------------------------
# A one-stream serial chain cannot compute Adam: the recipe needs the raw gradient beside its
# running average.


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


# ----------------------------------------------------------------------------
# Adam on a wide tree: a per-leaf jitted step over 500 leaves, its compile time printed
# (never asserted).  All 10,000 leaves of a wider tree do not run per leaf here: on XLA:CPU
# the compile time grows faster than linearly with the leaf count and takes many minutes
# at 10,000 leaves (see benchmarks/many_leaves.py); they run packed in test_flat.py.


def test_wide_tree_jitted_adam_step_matches_closed_form():
    lr, eps = 1e-3, 1e-8
    params = wide_tree(500)
    grads = jax.tree.map(lambda p: jnp.cos(7 * p), params)
    opt = gradtx.adam(lr, eps=eps)

    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return gradtx.apply_updates(p, u), s

    state = opt.init(params)
    start = time.perf_counter()
    lowered = jax.jit(step).lower(params, state, grads)
    traced = time.perf_counter()
    compiled = lowered.compile()
    done = time.perf_counter()
    print(
        f"\njitted adam step on 500 leaves: trace {traced - start:.2f} s, "
        f"compile {done - traced:.2f} s"
    )
    new_params, new_state = compiled(params, state, grads)

    p = np.concatenate([np.asarray(x, np.float64) for x in jax.tree.leaves(params)])
    g = np.concatenate([np.asarray(x, np.float64) for x in jax.tree.leaves(grads)])
    got = np.concatenate([np.asarray(x, np.float64) for x in jax.tree.leaves(new_params)])
    # Step 1 of Adam: m_hat = g and v_hat = g^2, so p_1 = p_0 - lr * g / (|g| + eps).
    # The bias correction 1 - b2^t is formed in float32 from b2 = 0.999 rounded
    # to float32 (as optax does), off by 1.3e-5 relative at t = 1; hence 1e-5 * lr.
    np.testing.assert_allclose(got, p - lr * g / (np.abs(g) + eps), rtol=1e-6, atol=1e-5 * lr)
    assert [int(c) for c in jax.tree.leaves(new_state) if c.dtype == jnp.int32] == [1, 1]
