"""A finite gradient spike must not freeze parameters for good.

Once a second moment overflows to inf, every later update of that element is
0.  ``apply_if_finite`` therefore treats a non-finite new state as a bad step
(tested with its other skips in test_wrappers.py), and float16 parameters keep
their second moments in float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx


def _run(opt, params, grads_list, jit=False):
    state = opt.init(params)
    update = jax.jit(opt.update) if jit else opt.update
    for g in grads_list:
        updates, state = update(g, state, params)
        params = gradtx.apply_updates(params, updates)
    return params, state


def test_adam_without_guard_spike_freezes_parameter_forever():
    # What apply_if_finite protects against: the plain optimizer's v is inf
    # after the spike and the element never moves again.
    params = {"w": jnp.array([1.0, 1.0])}
    grads = [{"w": jnp.array([1e20, 1.0])}] + [{"w": jnp.array([1.0, 1.0])}] * 5
    moved, state = _run(gradtx.adam(0.1), params, grads)
    assert np.isinf(np.asarray(gradtx.tree_get(state, "nu")["w"][0]))
    assert float(moved["w"][0]) == 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: gradtx.adam(1e-3),
        lambda: gradtx.rmsprop(1e-3),
        lambda: gradtx.adagrad(1e-3),
        lambda: gradtx.amsgrad(1e-3),
        lambda: gradtx.adadelta(1.0),
    ],
    ids=["adam", "rmsprop", "adagrad", "amsgrad", "adadelta"],
)
def test_float16_params_second_moment_spike_does_not_freeze(make):
    params = {"w": jnp.ones(3, jnp.float16)}
    spike = [{"w": jnp.full(3, 8000.0, jnp.float16)}] * 4  # 8000^2 overflows float16
    normal = [{"w": jnp.ones(3, jnp.float16)}] * 3
    opt = make()
    state = opt.init(params)
    second = [
        x
        for x in jax.tree.leaves(state)
        if getattr(x, "shape", ()) == (3,) and x.dtype == jnp.float32
    ]
    assert second, "a float16 model keeps its second moment in float32"
    for g in spike + normal:
        updates, state = opt.update(g, state, params)
    assert all(
        bool(jnp.all(jnp.isfinite(x)))
        for x in jax.tree.leaves(state)
        if jnp.issubdtype(x.dtype, jnp.inexact)
    )
    assert bool(jnp.all(updates["w"] != 0))
    assert updates["w"].dtype == jnp.float16


def test_float16_params_explicit_nu_dtype_is_kept():
    params = {"w": jnp.ones(3, jnp.float16)}
    state = gradtx.adam(1e-3, nu_dtype=jnp.float16).init(params)
    assert gradtx.tree_get(state, "nu")["w"].dtype == jnp.float16
    assert gradtx.tree_get(gradtx.adam(1e-3).init(params), "nu")["w"].dtype == jnp.float32
    assert gradtx.tree_get(gradtx.adam(1e-3).init(params), "mu")["w"].dtype == jnp.float16
