"""scale_by_momo and scale_by_momo_adam on their own: the Polyak cap and the loss they need."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx


def test_scale_by_momo_first_step_is_the_polyak_step_below_the_cap():
    # d = g, f = loss, gamma = <g, x>: tau = (f - lb) / ||g||^2 when below lr.
    x, g, f = jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0]), 3.0
    tx = gradtx.scale_by_momo(learning_rate=100.0, lower_bound=1.0)
    u, _ = tx.update(g, tx.init(x), x, value=f)
    np.testing.assert_allclose(u, -(f - 1.0) / 1.25 * np.asarray(g), rtol=1e-6)


def test_scale_by_momo_step_is_capped_by_the_learning_rate():
    x, g = jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    tx = gradtx.scale_by_momo(learning_rate=0.01)
    u, _ = tx.update(g, tx.init(x), x, value=3.0)
    np.testing.assert_allclose(u, -0.01 * np.asarray(g), rtol=1e-6)


@pytest.mark.parametrize("make", [gradtx.momo, gradtx.momo_adam])
def test_momo_without_value_raises(make):
    opt = make()
    with pytest.raises(
        ValueError,
        match=r"momo(_adam)?: scale_by_momo(_adam)?: update needs the "
        r"loss at params as value=",
    ):
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)), jnp.ones(2))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: gradtx.momo(beta=1.0), r"^momo: beta must be in \[0, 1\), got 1.0"),
        (lambda: gradtx.momo_adam(b2=-0.5), r"^momo_adam: b2 must be in \[0, 1\)"),
        (lambda: gradtx.momo(weight_decay=-1.0), r"^momo: weight_decay must be in \[0, inf\]"),
    ],
)
def test_momo_invalid_hyperparameter_raises(make, message):
    with pytest.raises(ValueError, match=message):
        make()
