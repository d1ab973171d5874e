"""hutchinson_estimator_diag_hessian and scale_by_sophia against float64 NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

A = np.array([1.0, 3.0, 0.5, 2.0])


def f(x):
    return jnp.sum(jnp.asarray(A) * x**4)


def test_sophia_matches_closed_form_on_a_separable_loss(x64):
    """diag(H) = 12 a x^2 exactly (z * (H z) = H_ii for a diagonal H), so Sophia is deterministic."""
    lr, b1, b2, eps, gamma, rho, k, wd = 0.05, 0.9, 0.8, 1e-6, 0.5, 0.5, 3, 0.01
    x = np.array([1.0, -0.8, 1.5, 0.3])
    m, h, expected = np.zeros(4), np.zeros(4), []
    for t in range(1, 41):
        g = 4 * A * x**3
        m = b1 * m + (1 - b1) * g
        u = np.clip(m / (1 - b1**t) / np.maximum(gamma * h, eps), -rho, rho)
        if (t - 1) % k == 0:
            h = b2 * h + (1 - b2) * 12 * A * x**2
        x = x - lr * (u + wd * x)
        expected.append(x)
    opt = gradtx.sophia(lr, b1, b2, eps, wd, None, gamma, rho, k)
    params = jnp.array([1.0, -0.8, 1.5, 0.3])
    state = opt.init(params)
    step = jax.jit(lambda p, s: opt.update(jax.grad(f)(p), s, p, obj_fn=f))
    for want in expected:
        updates, state = step(params, state)
        params = gradtx.apply_updates(params, updates)
        np.testing.assert_allclose(params, want, rtol=1e-12)
    assert state.states[0]._fields == ("count", "mu", "nu", "hessian_fn_state")


def test_hutchinson_estimate_is_unbiased_for_a_coupled_hessian(x64):
    h = np.array([[2.0, 1.0, -0.5], [1.0, 3.0, 0.2], [-0.5, 0.2, 1.0]])
    tx = gradtx.hutchinson_estimator_diag_hessian(random_seed=jax.random.key(3))
    x = jnp.zeros(3)
    state = tx.init(x)
    estimates = []
    for _ in range(400):
        d, state = tx.update(x, state, x, obj_fn=lambda p: 0.5 * p @ jnp.asarray(h) @ p)
        estimates.append(np.asarray(d))
    estimates = np.array(estimates)
    # z_i (H z)_i = H_ii + sum_{j != i} H_ij z_i z_j: each draw is H_ii plus +-off-diagonal terms.
    off = np.sum(np.abs(h), axis=1) - np.diag(h)
    assert np.all(np.abs(estimates - np.diag(h)) <= off + 1e-12)
    assert np.all(np.abs(estimates.mean(axis=0) - np.diag(h)) <= 4 * off / np.sqrt(400))


def test_hutchinson_without_obj_fn_raises():
    tx = gradtx.hutchinson_estimator_diag_hessian()
    with pytest.raises(ValueError, match="hutchinson_estimator_diag_hessian: update needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)), jnp.ones(2))


def test_sophia_invalid_update_interval_raises():
    with pytest.raises(ValueError, match=r"update_interval must be in \[1, inf\], got 0"):
        gradtx.sophia(0.1, update_interval=0)
