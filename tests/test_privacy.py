"""differentially_private_aggregate and dpsgd against optax and float64 NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

RNG = np.random.default_rng(3)
PER_EXAMPLE = [
    {"w": RNG.normal(size=(8, 3, 2)) * np.arange(1, 9)[:, None, None], "b": RNG.normal(size=(8, 2))}
    for _ in range(6)
]


def _outputs(tx, grads, dtype):
    state = tx.init(jax.tree.map(lambda g: jnp.zeros(g.shape[1:], dtype), grads[0]))
    update = jax.jit(tx.update)
    outs = []
    for g in grads:
        u, state = update(jax.tree.map(lambda x: jnp.asarray(x, dtype), g), state)
        outs.append([np.asarray(x) for x in jax.tree.leaves(u)])
    return outs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_differentially_private_aggregate_draws_optax_noise_with_the_same_key(dtype):
    with jax.enable_x64(dtype == np.float64):
        ours = _outputs(
            gradtx.differentially_private_aggregate(2.0, 0.7, key=5), PER_EXAMPLE, dtype
        )
        with jax.numpy_dtype_promotion("standard"):
            theirs = _outputs(
                optax.contrib.differentially_private_aggregate(2.0, 0.7, key=5), PER_EXAMPLE, dtype
            )
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    for a_step, b_step in zip(ours, theirs):
        for a, b in zip(a_step, b_step):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


def test_differentially_private_aggregate_without_noise_matches_closed_form(x64):
    c = 5.0
    ours = _outputs(gradtx.differentially_private_aggregate(c, 0.0), PER_EXAMPLE, np.float64)
    for step, g in zip(ours, PER_EXAMPLE):
        leaves = jax.tree.leaves(g)
        norms = np.sqrt(sum(np.sum(x.reshape(8, -1) ** 2, axis=1) for x in leaves))
        factors = np.minimum(1.0, c / norms)
        assert 0 < np.sum(factors < 1) < 8
        for got, x in zip(step, leaves):
            np.testing.assert_allclose(got, np.tensordot(factors, x, axes=1) / 8, rtol=1e-13)


def test_differentially_private_aggregate_noise_has_std_clip_times_multiplier_over_batch(x64):
    """On zero gradients the update is pure noise: N(0, (C sigma / B)^2) per entry, fresh each step."""
    c, sigma, batch = 2.0, 1.5, 4
    zeros = [{"w": np.zeros((batch, 50, 40))} for _ in range(5)]
    outs = np.stack(
        [
            s[0]
            for s in _outputs(
                gradtx.differentially_private_aggregate(c, sigma, key=1), zeros, np.float64
            )
        ]
    )
    z = outs * batch / (c * sigma)
    assert abs(np.mean(z)) < 4 / np.sqrt(z.size)
    assert abs(np.std(z) - 1) < 0.02
    assert abs(np.corrcoef(z[0].ravel(), z[1].ravel())[0, 1]) < 0.05


def test_differentially_private_aggregate_key_and_seed_raises():
    with pytest.raises(ValueError, match="differentially_private_aggregate: pass key or seed"):
        gradtx.differentially_private_aggregate(1.0, 1.0, key=1, seed=1)


def test_dpsgd_nesterov_without_momentum_raises():
    with pytest.raises(ValueError, match="dpsgd: nesterov=True needs a momentum"):
        gradtx.dpsgd(0.1, 1.0, 1.0, 0, nesterov=True)


def test_dpsgd_negative_clip_raises():
    with pytest.raises(ValueError, match="dpsgd: l2_norm_clip must be"):
        gradtx.dpsgd(0.1, -1.0, 1.0, 0)
