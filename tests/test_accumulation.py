"""ema, apply_every and add_noise: against optax's transforms and by hand."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from problems import PROBLEMS, assert_transform_matches

import gradtx

TREE = PROBLEMS["nested_quadratic"].params


@pytest.mark.parametrize("debias", [True, False])
def test_ema_matches_optax(debias, x64):
    assert_transform_matches(
        gradtx.ema(0.9, debias=debias), optax.ema(0.9, debias=debias), TREE, f"ema debias={debias}"
    )


def test_ema_debiased_of_a_constant_is_that_constant():
    tx = gradtx.ema(0.99)
    state = tx.init(jnp.zeros(2))
    for _ in range(3):
        u, state = tx.update(jnp.array([2.0, -1.0]), state)
    np.testing.assert_allclose(u, [2.0, -1.0], rtol=1e-6)
    assert state._fields == ("count", "ema")


def test_apply_every_matches_optax(x64):
    assert_transform_matches(gradtx.apply_every(3), optax.apply_every(3), TREE, "apply_every")


def test_apply_every_emits_the_sum_every_k_steps():
    tx = gradtx.apply_every(2)
    state = tx.init(jnp.zeros(1))
    outs = []
    for g in [1.0, 2.0, 3.0, 4.0]:
        u, state = tx.update(jnp.array([g]), state)
        outs.append(float(u[0]))
    assert outs == [0.0, 3.0, 0.0, 7.0]


def test_apply_every_with_zero_k_raises():
    with pytest.raises(ValueError, match=r"^apply_every: k must be an int >= 1, got 0$"):
        gradtx.apply_every(0)


@pytest.mark.parametrize("key", [7, "typed", "int scalar"])
def test_add_noise_draws_optax_noise_for_the_same_key(key, x64):
    key = {"typed": jax.random.key(7), "int scalar": jnp.array(7)}.get(key, key)
    assert_transform_matches(
        gradtx.add_noise(0.3, 0.55, key),
        optax.add_noise(0.3, 0.55, key),
        TREE,
        "add_noise",
        steps=20,
    )


def test_noisy_sgd_seed_injected_as_an_integer_array_draws_optax_noise():
    # inject_hyperparams turns key=0 into a scalar integer array, as optax does.
    params = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
    ours = gradtx.inject_hyperparams(gradtx.noisy_sgd)(learning_rate=1e-3, eta=1e-2, key=0)
    theirs = optax.inject_hyperparams(optax.noisy_sgd)(learning_rate=1e-3, eta=1e-2, key=0)
    s, t = ours.init(params), theirs.init(params)
    for _ in range(3):
        u, s = ours.update(params, s, params)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes the int count and floats
            v, t = theirs.update(params, t, params)
        chex.assert_trees_all_close(u, v, rtol=1e-6)


def test_add_noise_keeps_plain_array_state_and_its_variance_decays():
    tx = gradtx.add_noise(4.0, 1.0, key=0)
    state = tx.init(jnp.zeros(20000))
    assert state.rng_key.dtype == jnp.uint32  # NumPy can save it
    spreads = []
    for _ in range(4):
        u, state = tx.update(jnp.zeros(20000), state)
        spreads.append(float(jnp.var(u)))
    # variance eta / t^gamma = 4, 2, 4/3, 1
    np.testing.assert_allclose(spreads, [4.0, 2.0, 4.0 / 3.0, 1.0], rtol=0.05)


def test_add_noise_with_key_and_seed_raises():
    with pytest.raises(ValueError, match=r"^add_noise: pass key or seed, not both$"):
        gradtx.add_noise(0.1, 0.5, key=1, seed=2)
