"""AdaMax, AdaBelief, ACProp, Yogi, Adan, NovoGrad, optimistic gradients, Rprop and Polyak's step:
each transform against optax's of the same name, and by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from problems import PROBLEMS, assert_transform_matches, random_sequence

import gradtx

TREE = PROBLEMS["nested_quadratic"].params

CASES = {
    "scale_by_adamax": lambda m: m.scale_by_adamax(0.8, 0.95, eps=1e-3),
    "scale_by_belief": lambda m: m.scale_by_belief(0.8, 0.95, eps=1e-3),
    "scale_by_belief_nesterov": lambda m: m.scale_by_belief(0.8, 0.95, 1e-3, 1e-4, nesterov=True),
    "scale_by_yogi": lambda m: m.scale_by_yogi(
        0.8, 0.95, eps=1e-3, eps_root=1e-4, initial_accumulator_value=0.1
    ),
    "scale_by_adan": lambda m: m.scale_by_adan(0.9, 0.8, 0.95, eps=1e-3, eps_root=1e-4),
    "scale_by_novograd": lambda m: m.scale_by_novograd(0.8, 0.5, 1e-3, 1e-4, weight_decay=0.1),
    "scale_by_optimistic_gradient": lambda m: m.scale_by_optimistic_gradient(0.7, 0.4),
    "scale_by_rprop": lambda m: m.scale_by_rprop(0.1, 0.4, 1.5, 0.01, 0.3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_adaptive_transform_matches_optax(name, x64):
    assert_transform_matches(CASES[name](gradtx), CASES[name](optax), TREE, name)


@pytest.mark.parametrize("variant", ["sps", "sps+"])
def test_scale_by_polyak_matches_optax(variant, x64):
    values = [{"value": np.float64(v)} for v in np.random.default_rng(4).normal(size=40)]
    ours = gradtx.scale_by_polyak(f_min=0.1, max_learning_rate=0.7, eps=0.01, variant=variant)
    theirs = optax.scale_by_polyak(f_min=0.1, max_learning_rate=0.7, eps=0.01, variant=variant)
    actual = assert_transform_matches(
        ours, theirs, TREE, f"scale_by_polyak {variant}", steps=40, extra=values
    )
    if variant == "sps+":  # a loss below f_min gives a zero step
        below = [t for t, v in enumerate(values) if v["value"] < 0.1]
        assert below and all(not np.any(actual[t][0]) for t in below)


def test_scale_by_infinity_norm_divides_by_decayed_max_by_hand():
    tx = gradtx.scale_by_infinity_norm(0.5, eps=0.0)
    state = tx.init(jnp.zeros(2))
    _, state = tx.update(jnp.array([4.0, -1.0]), state)
    u, state = tx.update(jnp.array([1.0, -3.0]), state)  # u = max(0.5 * (4, 1), |g|) = (2, 3)
    np.testing.assert_allclose(u, [0.5, -1.0])
    np.testing.assert_allclose(state.nu, [2.0, 3.0])


def test_adamax_is_adam_numerator_over_infinity_norm_inside_precondition():
    tx = gradtx.scale_by_adamax()
    assert tx.name == "scale_by_adamax"
    assert "by=scale_by_infinity_norm" in repr(tx)


def test_adaptive_states_keep_optax_field_names():
    p = jnp.zeros(2)
    assert gradtx.scale_by_belief().init(p)._fields == ("count", "mu", "nu")
    assert gradtx.scale_by_yogi().init(p)._fields == ("count", "mu", "nu")
    assert gradtx.scale_by_novograd().init(p)._fields == ("count", "mu", "nu")
    assert gradtx.scale_by_adan().init(p)._fields == ("m", "v", "n", "g", "t")
    assert gradtx.scale_by_rprop(0.1).init(p)._fields == ("step_sizes", "prev_updates")
    assert gradtx.scale_by_optimistic_gradient().init(p)._fields == (
        "is_initial_step",
        "previous_gradient",
    )


def test_rprop_first_update_is_zero_as_in_optax():
    tx = gradtx.rprop(0.1)
    p = jnp.ones(2)
    u, state = tx.update(jnp.array([1.0, -1.0]), tx.init(p), p)
    np.testing.assert_array_equal(u, [0.0, 0.0])
    u, _ = tx.update(jnp.array([1.0, 1.0]), state, p)  # the second flips sign: no step there
    np.testing.assert_allclose(u, [-0.1, 0.0])


def test_polyak_without_value_raises():
    tx = gradtx.scale_by_polyak()
    with pytest.raises(TypeError, match=r"^scale_by_polyak: update needs the loss"):
        tx.update(jnp.ones(2), tx.init(None))


def test_polyak_sgd_passes_value_through_its_chain_under_jit():
    opt = gradtx.polyak_sgd()
    p = jnp.array([2.0])
    step = jax.jit(lambda p, s: opt.update(2 * p, s, p, value=jnp.sum(p**2)))
    u, _ = step(p, opt.init(p))
    np.testing.assert_allclose(u, [-1.0])  # min(4 / 16, 1) * 4


def test_polyak_with_unknown_variant_raises():
    with pytest.raises(ValueError, match=r"^scale_by_polyak: variant must be one of"):
        gradtx.scale_by_polyak(variant="sps-")


def test_novograd_without_params_raises():
    tx = gradtx.scale_by_novograd()
    with pytest.raises(ValueError, match=r"^scale_by_novograd: update needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


def test_rprop_with_a_schedule_raises():
    with pytest.raises(
        ValueError, match=r"^scale_by_rprop: learning_rate must be a number \(the initial"
    ):
        gradtx.rprop(lambda t: 0.1)


def test_optimistic_adam_with_a_schedule_raises():
    with pytest.raises(ValueError, match=r"^optimistic_adam: learning_rate must be a number"):
        gradtx.optimistic_adam(lambda t: 0.1)


def test_yogi_second_moment_moves_by_g_squared_not_by_the_gap():
    tx = gradtx.scale_by_yogi(b2=0.5, initial_accumulator_value=0.0)
    state = tx.init(jnp.zeros(1))
    for g in random_sequence(jnp.zeros(1), 5, seed=9):
        v = state.nu
        _, state = tx.update(jnp.asarray(g, jnp.float32), state)
        np.testing.assert_allclose(state.nu, v - 0.5 * np.sign(v - g**2) * g**2, rtol=1e-6)


def test_scale_by_acprop_matches_optax_contrib(x64):
    ours = gradtx.scale_by_acprop(0.8, 0.95, 1e-3, 1e-4)
    theirs = optax.contrib.scale_by_acprop(0.8, 0.95, 1e-3, 1e-4)
    assert_transform_matches(ours, theirs, TREE, "scale_by_acprop")


def test_scale_by_acprop_matches_closed_form(x64):
    """g_t over the root of the bias-corrected s_{t-1}, s the average of (g_t - m_{t-1})^2."""
    b1, b2, eps, eps_root = 0.8, 0.95, 1e-3, 1e-4
    grads = np.random.default_rng(5).normal(size=(30, 4)) * np.exp(np.arange(30) % 3)[:, None]
    m, s, expected = np.zeros(4), np.zeros(4), []
    for t, g in enumerate(grads):
        s_hat = np.ones(4) if t == 0 else s / (1 - b2**t)
        expected.append(g / (np.sqrt(s_hat) + eps))
        s = b2 * s + (1 - b2) * (g - m) ** 2 + eps_root
        m = b1 * m + (1 - b1) * g
    tx = gradtx.scale_by_acprop(b1, b2, eps, eps_root)
    state = tx.init(jnp.zeros(4))
    for g, e in zip(grads, expected):
        u, state = tx.update(jnp.asarray(g), state)
        np.testing.assert_allclose(u, e, rtol=1e-12)
    assert state._fields == ("count", "mu", "nu")


def test_rprop_with_complex_params_raises_naming_leaf():
    with pytest.raises(
        TypeError,
        match=r"^rprop: scale_by_rprop: complex parameters are not supported .*params leaf "
        r"\['z'\] has dtype complex64",
    ):
        gradtx.rprop(0.1).init({"x": jnp.ones(2), "z": jnp.ones(2, jnp.complex64)})
