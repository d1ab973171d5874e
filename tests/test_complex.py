"""split_real_and_imaginary: a complex parameter optimised as its pair of reals."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

RNG = np.random.default_rng(9)
GRADS = [
    {"z": RNG.normal(size=(3, 2)) + 1j * RNG.normal(size=(3, 2)), "r": RNG.normal(size=4)}
    for _ in range(25)
]


def _run(tx, grads, params):
    state = tx.init(params)
    update = jax.jit(tx.update)
    outs = []
    for g in grads:
        u, state = update(jax.tree.map(jnp.asarray, g), state, params)
        params = jax.tree.map(lambda p, d: p + d, params, u)
        outs.append([np.asarray(x) for x in jax.tree.leaves(u)])
    return outs


def test_split_real_and_imaginary_matches_optax_contrib(x64):
    params = {"z": jnp.zeros((3, 2), jnp.complex128), "r": jnp.zeros(4)}
    ours = _run(gradtx.split_real_and_imaginary(gradtx.adamw(0.1, weight_decay=0.1)), GRADS, params)
    with jax.numpy_dtype_promotion("standard"):
        theirs = _run(
            optax.contrib.split_real_and_imaginary(optax.adamw(0.1, weight_decay=0.1)),
            GRADS,
            params,
        )
    for a_step, b_step in zip(ours, theirs):
        for a, b in zip(a_step, b_step):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_split_real_and_imaginary_is_the_inner_transform_on_the_real_pair(x64):
    """Adam on z = x + iy through the split equals Adam on the real (x, y), by hand."""
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.1
    tx = gradtx.split_real_and_imaginary(gradtx.adam(lr, b1, b2, eps))
    outs = _run(tx, [{"z": g["z"]} for g in GRADS], {"z": jnp.zeros((3, 2), jnp.complex128)})
    m, v = np.zeros((2, 3, 2)), np.zeros((2, 3, 2))
    for t, (g, out) in enumerate(zip(GRADS, outs), start=1):
        pair = np.stack([g["z"].real, g["z"].imag])
        m = b1 * m + (1 - b1) * pair
        v = b2 * v + (1 - b2) * pair**2
        u = -lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        np.testing.assert_allclose(out[0], u[0] + 1j * u[1], rtol=1e-12)


def test_split_real_and_imaginary_keeps_real_leaves_and_state_fields():
    tx = gradtx.split_real_and_imaginary(gradtx.sgd(0.5))
    params = {"z": jnp.ones(2, jnp.complex64), "r": jnp.ones(2)}
    state = tx.init(params)
    assert state._fields == ("inner_state",)
    u, _ = tx.update({"z": jnp.array([1 + 2j, 3j], jnp.complex64), "r": jnp.ones(2)}, state)
    assert u["z"].dtype == jnp.complex64 and u["r"].dtype == jnp.float32
    np.testing.assert_allclose(u["z"], [-0.5 - 1j, -1.5j])


def test_split_real_and_imaginary_with_a_non_transform_raises():
    with pytest.raises(TypeError, match="split_real_and_imaginary: inner must be a gradient"):
        gradtx.split_real_and_imaginary(0.1)
