"""sam and normalize: the opaque cycle equals the transparent one and optax's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from problems import PROBLEMS, assert_trajectories_close

import gradtx

CYCLES = 40


def _adversary(rho, lib=gradtx):
    contrib = lib if lib is gradtx else optax.contrib
    return lib.chain(contrib.normalize(), lib.sgd(rho))


def _opaque_run(tx, problem, apply):
    grad = jax.grad(problem.loss)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(grad(params), state, params, grad_fn=lambda p, i: grad(p))
        return apply(params, updates), state

    params = jax.tree.map(jnp.asarray, problem.params)
    state, out = tx.init(params), []
    for _ in range(CYCLES):
        params, state = step(params, state)
        out.append([np.asarray(p) for p in jax.tree.leaves(params)])
    return out


def _transparent_run(tx, problem, sync_period):
    grad = jax.grad(problem.loss)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(grad(params), state, params)
        return gradtx.apply_updates(params, updates), state

    params = jax.tree.map(jnp.asarray, problem.params)
    state, out = tx.init(params), []
    for t in range(CYCLES * sync_period):
        params, state = step(params, state)
        if (t + 1) % sync_period == 0:
            out.append([np.asarray(p) for p in jax.tree.leaves(params)])
    return out


@pytest.mark.parametrize("sync_period", [2, 3])
def test_sam_opaque_mode_matches_transparent_cycles_and_optax(sync_period):
    problem = PROBLEMS["mlp"]
    with jax.enable_x64(True):
        opaque = _opaque_run(
            gradtx.sam(gradtx.adam(0.01), _adversary(0.05), sync_period, opaque_mode=True),
            problem,
            gradtx.apply_updates,
        )
        transparent = _transparent_run(
            gradtx.sam(gradtx.adam(0.01), _adversary(0.05), sync_period), problem, sync_period
        )
        with jax.numpy_dtype_promotion("standard"):
            from_optax = _opaque_run(
                optax.contrib.sam(
                    optax.adam(0.01), _adversary(0.05, optax), sync_period, opaque_mode=True
                ),
                problem,
                optax.apply_updates,
            )
    assert_trajectories_close(opaque, transparent, "opaque vs transparent")
    assert_trajectories_close(opaque, from_optax, "opaque vs optax")


def test_normalize_divides_by_the_global_norm():
    tx = gradtx.normalize()
    g = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[4.0]])}
    u, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(u["a"], [0.6, 0.0], rtol=1e-7)
    np.testing.assert_allclose(u["b"], [[0.8]], rtol=1e-7)


def test_sam_with_sync_period_zero_raises():
    with pytest.raises(ValueError, match="sam: sync_period must be an integer >= 1, got 0"):
        gradtx.sam(gradtx.sgd(0.1), gradtx.sgd(0.1), sync_period=0)


def test_sam_opaque_mode_without_grad_fn_raises():
    opt = gradtx.sam(gradtx.sgd(0.1), gradtx.sgd(0.1), opaque_mode=True)
    with pytest.raises(ValueError, match="sam: opaque_mode=True needs grad_fn"):
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)), jnp.ones(2))


def test_sam_with_a_non_transform_adversary_raises():
    with pytest.raises(TypeError, match="sam: adv_optimizer must be a gradient transformation"):
        gradtx.sam(gradtx.sgd(0.1), 0.05)
