"""scale_by_madgrad on its own."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx


def test_scale_by_madgrad_first_step_is_the_dual_average():
    # lambda_0 = lr + eps; z = x0 - lambda g / (cbrt(lambda g^2) + eps); x_1 = 0.1 z + 0.9 x0.
    lr, eps, g, x0 = 0.5, 1e-3, np.array([2.0, -1.0]), np.array([1.0, 3.0])
    tx = gradtx.scale_by_madgrad(lr, momentum=0.9, eps=eps)
    with jax.enable_x64(True):
        u, _ = tx.update(jnp.asarray(g), tx.init(jnp.asarray(x0)), jnp.asarray(x0))
    lam = lr + eps
    z = x0 - lam * g / (np.cbrt(lam * g**2) + eps)
    np.testing.assert_allclose(u, 0.1 * z + 0.9 * x0 - x0, rtol=1e-12)


def test_scale_by_madgrad_without_params_raises():
    tx = gradtx.scale_by_madgrad(0.1)
    with pytest.raises(ValueError, match="scale_by_madgrad: update needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


def test_madgrad_invalid_momentum_raises():
    with pytest.raises(ValueError, match=r"^madgrad: momentum must be in \[0, 1\), got 1.0"):
        gradtx.madgrad(0.1, momentum=1.0)
