"""cautious and add_cautious_decayed_weights against the papers (NumPy) and pytorch-optimizer."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import reference_wrappers as ref_wrappers
from lazy_import import lazy
from problems import (
    PROBLEMS,
    STEPS,
    assert_trajectories_close,
    moved,
    random_sequence,
    run_jax,
    run_reference,
    run_torch,
)

import gradtx

torch = lazy("torch")
pytorch_optimizer = lazy("pytorch_optimizer")
pytorch_optimizer_base = lazy("pytorch_optimizer.base.optimizer")

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


def _cautious_adamw(lr):
    return gradtx.cautious(gradtx.adamw(lr, b2=0.99, weight_decay=0.1))


def _cautious_adamw_reference(lr):
    return ref_wrappers.cautious(ref.adamw(lr, b2=0.99, weight_decay=0.1))


def _adamw_cwd(lr):
    # AdamW with cautious weight decay: the recipe of the paper, from public parts.
    return gradtx.chain(
        gradtx.precondition(
            gradtx.chain(gradtx.scale_by_momentum(0.9, ema=True), gradtx.bias_correction(0.9)),
            by=gradtx.scale_by_rms(0.99, 1e-8, eps_in_sqrt=False, bias_correction=True),
        ),
        gradtx.add_cautious_decayed_weights(0.5),
        gradtx.scale_by_learning_rate(lr),
    )


CASES = {
    "cautious_adamw": (0.01, _cautious_adamw, _cautious_adamw_reference),
    "cautious_sgd_momentum": (
        0.01,
        lambda lr: gradtx.cautious(gradtx.sgd(lr, momentum=0.9)),
        lambda lr: ref_wrappers.cautious(ref.sgd(lr, momentum=0.9)),
    ),
    "adamw_cautious_weight_decay": (
        0.01,
        _adamw_cwd,
        lambda lr: ref_wrappers.cautious_adamw_cwd(lr, b2=0.99, weight_decay=0.5),
    ),
}
RUNS = [(name, "nested_quadratic") for name in CASES] + [
    (name, problem)
    for name in ("cautious_adamw", "adamw_cautious_weight_decay")
    for problem in ("rosenbrock", "mlp")
]


@pytest.mark.parametrize("name, problem_name", RUNS)
def test_cautious_optimizer_matches_closed_form(name, problem_name, x64):
    lr, make, make_reference = CASES[name]
    problem = PROBLEMS[problem_name]
    lr = lr * problem.lr_scale
    expected = run_reference(make_reference(lr), problem)
    actual = run_jax(make(lr), problem, gradtx.apply_updates)
    assert_trajectories_close(actual, expected, f"{name} on {problem_name} vs NumPy")
    assert moved(actual, problem)


@pytest.mark.parametrize("name", ["cautious_adamw", "adamw_cautious_weight_decay"])
def test_cautious_optimizer_in_float32_matches_float64_reference(name):
    lr, make, make_reference = CASES[name]
    problem = PROBLEMS["nested_quadratic"]
    expected = run_reference(make_reference(lr * 0.1), problem)
    actual = run_jax(make(lr * 0.1), problem, gradtx.apply_updates, dtype=np.float32)
    assert_trajectories_close(
        actual, expected, f"{name} float32 vs NumPy float64", rtol=2e-5, atol=2e-6
    )


@pytest.fixture
def no_hidden_eps(monkeypatch):
    """pytorch-optimizer's fixed 1e-15 under the root, set to 0 (see test_optimizers_adam_variants.py)."""
    original = pytorch_optimizer_base.BaseOptimizer.apply_ams_bound
    monkeypatch.setattr(
        pytorch_optimizer_base.BaseOptimizer,
        "apply_ams_bound",
        staticmethod(functools.partial(original, exp_avg_sq_eps=0.0)),
    )


# pytorch-optimizer's cautious=True masks its step against the raw gradient,
# per tensor, with the paper's d / (count + 1): gradtx.cautious around the recipe.
TORCH_CASES = {
    "cautious_laprop": (
        0.01,
        lambda lr: gradtx.cautious(gradtx.laprop(lr, b2=0.99, eps=0.0)),
        lambda lr: (
            lambda ps: pytorch_optimizer.LaProp(
                ps, lr=lr, betas=(0.9, 0.99), eps=0.0, cautious=True, foreach=False
            )
        ),
    ),
    "cautious_mars": (
        0.01,
        lambda lr: gradtx.cautious(gradtx.mars(lr, gamma=0.1, eps=0.0)),
        lambda lr: (
            lambda ps: pytorch_optimizer.MARS(
                ps, lr=lr, gamma=0.1, eps=0.0, optimize_1d=True, cautious=True, foreach=False
            )
        ),
    ),
}


@pytest.mark.parametrize("problem_name", list(PROBLEMS))
@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_cautious_matches_pytorch_optimizer(name, problem_name, x64, no_hidden_eps):
    lr, make, make_torch = TORCH_CASES[name]
    problem = PROBLEMS[problem_name]
    lr = lr * problem.lr_scale
    expected = run_torch(make_torch(lr), problem)
    actual = run_jax(make(lr), problem, gradtx.apply_updates)
    assert_trajectories_close(actual, expected, f"{name} on {problem_name} vs pytorch-optimizer")
    assert moved(actual, problem)


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_cautious_in_float32_matches_pytorch_optimizer_in_float32(name, no_hidden_eps):
    # On Rosenbrock.  The mask is a discontinuous function of the step: on the
    # quadratic, where momentum entries cross zero as they converge, float32
    # round-off flips a kept/dropped decision after 40 to 90 steps, and the
    # trajectories part by up to 1e-2 (both stay correct: float64 agrees to 1e-13).
    lr, make, make_torch = TORCH_CASES[name]
    problem = PROBLEMS["rosenbrock"]
    lr = lr * problem.lr_scale
    expected = run_torch(make_torch(lr), problem, dtype=torch.float32)
    actual = run_jax(make(lr), problem, gradtx.apply_updates, dtype=np.float32)
    assert_trajectories_close(
        actual, expected, f"{name} float32 vs pytorch-optimizer float32", rtol=1e-5, atol=1e-6
    )


def test_cautious_add_cautious_decayed_weights_matches_closed_form(x64):
    tree0 = PROBLEMS["nested_quadratic"].params
    grads = random_sequence(tree0, STEPS, seed=5)
    params = random_sequence(tree0, STEPS, seed=6)
    init, update = ref.tree(ref_wrappers.cautious_weight_decay(0.3))
    state = init(jax.tree.leaves(params[0]))
    tx = gradtx.add_cautious_decayed_weights(0.3)
    tx_state = tx.init(params[0])
    actual, expected = [], []
    step = jax.jit(tx.update)
    for g, p in zip(grads, params):
        u, state = update(jax.tree.leaves(g), state, jax.tree.leaves(p))
        expected.append(u)
        out, tx_state = step(g, tx_state, p)
        actual.append([np.asarray(x) for x in jax.tree.leaves(out)])
    assert_trajectories_close(actual, expected, "add_cautious_decayed_weights vs NumPy")


def test_cautious_keeps_descent_entries_and_rescales_by_count_plus_one():
    # The inner step s = -0.1 g agrees with -g everywhere: all d = 4 entries kept,
    # scaled by 4 / (4 + 1).
    g = jnp.array([1.0, -2.0, 3.0, -4.0])
    opt = gradtx.cautious(gradtx.sgd(0.1))
    u, _ = opt.update(g, opt.init(jnp.zeros(4)))
    np.testing.assert_allclose(u, -0.1 * g * 4 / 5, rtol=1e-6)


def test_cautious_around_a_gradient_signed_transform_zeroes_everything():
    # The documented convention: the inner transform must return the step (negated).
    g = jnp.array([1.0, -2.0, 3.0])
    opt = gradtx.cautious(gradtx.identity())
    u, _ = opt.update(g, opt.init(jnp.zeros(3)))
    np.testing.assert_array_equal(u, jnp.zeros(3))


def test_cautious_state_is_the_inner_state():
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    inner = gradtx.adamw(1e-3)
    assert jax.tree.structure(gradtx.cautious(inner).init(params)) == jax.tree.structure(
        inner.init(params)
    )
    assert repr(gradtx.cautious(gradtx.sgd(0.1))).startswith("cautious(chain(identity(), ")


def test_add_cautious_decayed_weights_respects_mask_and_schedule():
    params = {"w": jnp.array([2.0, -2.0]), "b": jnp.array([2.0])}
    u = {"w": jnp.array([1.0, 1.0]), "b": jnp.array([1.0])}
    tx = gradtx.add_cautious_decayed_weights(
        lambda t: 0.5 * (t.astype(jnp.float32) + 1), mask={"w": True, "b": False}
    )
    state = tx.init(params)
    out, state = tx.update(u, state, params)
    np.testing.assert_allclose(out["w"], [2.0, 1.0])  # 1 + 0.5 * 2; signs differ: 1
    np.testing.assert_allclose(out["b"], [1.0])
    out, state = tx.update(u, state, params)
    np.testing.assert_allclose(out["w"], [3.0, 1.0])  # weight decay 1.0 at step 1


@pytest.mark.parametrize(
    "make, error, message",
    [
        (
            lambda: gradtx.cautious(42),
            TypeError,
            "cautious: inner must be a gradient transformation",
        ),
        (
            lambda: gradtx.add_cautious_decayed_weights(-0.1),
            ValueError,
            r"add_cautious_decayed_weights: weight_decay must be in \[0, inf\]",
        ),
    ],
)
def test_cautious_with_bad_argument_raises(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_add_cautious_decayed_weights_without_params_raises():
    tx = gradtx.add_cautious_decayed_weights(0.1)
    with pytest.raises(ValueError, match="add_cautious_decayed_weights: update needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
