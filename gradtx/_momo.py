"""MoMo: momentum methods whose step is capped by a Polyak step on a model of the loss.

The update needs the loss at the current parameters: pass it as
``update(grads, state, params, value=loss)`` (``jax.value_and_grad`` gives
both).  The step uses inner products over every leaf, so these transforms are
not elementwise.  Like optax's, they take the learning rate (the cap of the
step) and return the step, sign included: they end a recipe.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._checks import (
    check_float_leaves,
    check_learning_rate,
    check_params,
    check_range,
    moment_state,
)
from ._moments import debias_denominator, moment_zeros, moving_average, store
from ._numerics import compute_dtype, increment, new_count, real_compute_dtype
from ._recipe import transform
from ._typing import ScalarOrSchedule

_TINY = float(jnp.finfo(jnp.float64).eps)  # optax's threshold on ||d||^2, in every dtype


def _scalar_dtype(params):
    dtypes = [real_compute_dtype(jnp.result_type(p)) for p in jax.tree.leaves(params)]
    return min(dtypes, key=lambda d: d.itemsize, default=jnp.dtype(jnp.float32))


def _vdot(xs, ys, dtype):
    terms = jax.tree.leaves(
        jax.tree.map(
            lambda x, y: jnp.sum(
                x.astype(compute_dtype(x.dtype, y.dtype))
                * y.astype(compute_dtype(x.dtype, y.dtype))
            ).astype(dtype),
            xs,
            ys,
        )
    )
    return sum(terms, jnp.zeros((), dtype))


def _check_call(owner, params, updates, value):
    check_params(owner, params, updates)
    if value is None:
        raise ValueError(
            f"{owner}: update needs the loss at params as value= (use "
            f"jax.value_and_grad; call update(grads, state, params, value=loss))"
        )


def _check_common(owner, learning_rate, lower_bound, weight_decay):
    check_learning_rate(owner, learning_rate)
    check_range(owner, "lower_bound", lower_bound)
    check_range(owner, "weight_decay", weight_decay, 0)


def _lower_bound(adapt, cap, threshold, candidate, lb):
    return jnp.where(cap < threshold, candidate, lb) if adapt else lb


def _start(owner, params, lower_bound):
    """The state fields both MoMo forms share, at the start: f_0 = gamma_0 = 0, lb and
    t = 0, the scalars in the params' dtype."""
    check_float_leaves(owner, params, "params")
    dtype = _scalar_dtype(params)
    zero = jnp.zeros((), dtype)
    return dict(barf=zero, gamma=zero, lb=jnp.asarray(lower_bound, dtype), count=new_count())


def _rate(learning_rate, count, weight_decay, dtype):
    """``(lr_t, 1 + w)``: the learning rate at step ``count`` and w = lr_t * weight_decay."""
    lr = learning_rate(count) if callable(learning_rate) else learning_rate
    lr = jnp.asarray(lr).astype(dtype)
    return lr, 1 + lr * weight_decay


def _step(lr, weight_decay, k, tau, direction, params):
    """u = -w / k * x - tau * direction, w = lr * weight_decay, in each parameter's dtype."""
    return jax.tree.map(
        lambda m, p: (
            -(lr * weight_decay) / k * p.astype(m.dtype) - tau.astype(m.dtype) * m
        ).astype(p.dtype),
        direction,
        params,
    )


class MomoState(NamedTuple):
    """exp_avg: d_t; barf: the averaged loss; gamma: the averaged <g, x>; lb: the lower
    bound; count: t.  (optax's fields.)"""

    exp_avg: Any
    barf: jax.Array
    gamma: jax.Array
    lb: jax.Array
    count: jax.Array


@transform
def scale_by_momo(
    learning_rate: ScalarOrSchedule = 1.0,
    beta=0.9,
    lower_bound=0.0,
    weight_decay=0.0,
    adapt_lower_bound: bool = False,
):
    """MoMo's step: momentum d_t, its length capped by the Polyak step of the averaged model.

    With b = beta (0 at the first step), lr_t the learning rate, w = lr_t * weight_decay:
    f_t = b f_{t-1} + (1 - b) loss_t,   d_t = b d_{t-1} + (1 - b) g_t,
    gamma_t = b gamma_{t-1} + (1 - b) <g_t, x_t>,
    tau_t = min(lr_t, max((1 + w)(f_t - lb - gamma_t) + <d_t, x_t>, 0) / ||d_t||^2),
    u_t = -w / (1 + w) x_t - tau_t d_t.

    ``adapt_lower_bound`` estimates lb online (starting at ``lower_bound``,
    never below it) instead of keeping it fixed.

    Args:
      learning_rate: lr, the cap of the step, a number >= 0 or a schedule.
      beta: the momentum, in [0, 1).
      lower_bound: lb, a lower bound of the loss.
      weight_decay: >= 0.
      adapt_lower_bound: estimate lb online.

    Returns:
      A transform with state ``MomoState``; it needs ``params`` and ``value``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_momo(learning_rate=10.0)
      >>> x = jnp.array([2.0])                         # loss x^2 = 4, gradient 4
      >>> tx.update(jnp.array([4.0]), tx.init(x), x, value=4.0)[0]   # Polyak: 4 / 16 * 4
      Array([-1.], dtype=float32)

    Reference: Schaipp, Ohana, Eickenberg, Defazio, Gower, "MoMo: Momentum
    Models for Adaptive Learning Rates", ICML 2024, arXiv:2305.07583.
    """
    owner = "scale_by_momo"
    _check_common(owner, learning_rate, lower_bound, weight_decay)
    check_range(owner, "beta", beta, 0, 1, high_open=True)

    def init(params):
        start = _start(owner, params, lower_bound)
        return MomoState(exp_avg=moment_zeros(params), **start)

    def update(updates, state, params=None, *, value=None, **extra):
        moment_state(owner, state, MomoState, updates, "exp_avg")
        _check_call(owner, params, updates, value)
        dtype = state.barf.dtype
        b = jnp.where(state.count == 0, 0.0, beta).astype(dtype)
        barf = moving_average(state.barf, jnp.asarray(value).astype(dtype), b)
        d = jax.tree.map(lambda m, g: moving_average(m, g, b), state.exp_avg, updates)
        gamma = moving_average(state.gamma, _vdot(updates, params, dtype), b)
        norm = _vdot(d, d, dtype)
        inner = _vdot(d, params, dtype)
        lr, k = _rate(learning_rate, state.count, weight_decay, dtype)
        cap = k * (barf - gamma) + inner
        lb = _lower_bound(
            adapt_lower_bound, cap, k * state.lb, jnp.maximum(cap / (2 * k), lower_bound), state.lb
        )
        polyak = jnp.maximum(k * (barf - lb - gamma) + inner, 0) / norm
        tau = jnp.minimum(lr, jnp.where(norm <= _TINY, 0.0, polyak))
        out = _step(lr, weight_decay, k, tau, d, params)
        if adapt_lower_bound:
            lb = jnp.maximum(barf + inner - gamma - tau * norm / 2, lower_bound)
        count = increment(state.count)
        return out, MomoState(
            exp_avg=store(d, state.exp_avg, count),
            barf=barf,
            gamma=gamma,
            lb=lb.astype(dtype),
            count=count,
        )

    return init, update


class MomoAdamState(NamedTuple):
    """exp_avg: m_t; exp_avg_sq: v_t; barf, gamma, lb, count: as in ``MomoState``."""

    exp_avg: Any
    exp_avg_sq: Any
    barf: jax.Array
    gamma: jax.Array
    lb: jax.Array
    count: jax.Array


@transform
def scale_by_momo_adam(
    learning_rate: ScalarOrSchedule = 1e-2,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    lower_bound=0.0,
    weight_decay=0.0,
    adapt_lower_bound: bool = False,
):
    """MoMo-Adam's step: Adam's direction, its length capped by the Polyak step of the model.

    With t = 1, 2, ..., c1 = 1 - b1^t, D_t = eps + sqrt(v_t / (1 - b2^t)), w = lr_t * weight_decay:
    f_t = b1 f_{t-1} + (1 - b1) loss_t,   m_t = b1 m_{t-1} + (1 - b1) g_t,
    v_t = b2 v_{t-1} + (1 - b2) g_t^2,    gamma_t = b1 gamma_{t-1} + (1 - b1) <g_t, x_t>,
    tau_t = min(lr_t / c1, max((1 + w)(f_t - c1 lb - gamma_t) + <m_t, x_t>, 0) / <m_t, m_t / D_t>),
    u_t = -w / (1 + w) x_t - tau_t m_t / D_t.

    Args:
      learning_rate: lr, the cap of the step, a number >= 0 or a schedule.
      b1: the decay of m, f and gamma, in [0, 1).
      b2: the decay of v, in [0, 1).
      eps: added to the root, >= 0.
      lower_bound, weight_decay, adapt_lower_bound: as in ``scale_by_momo``.

    Returns:
      A transform with state ``MomoAdamState``; it needs ``params`` and ``value``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_momo_adam(learning_rate=0.1)
      >>> x = jnp.array([2.0])
      >>> tx.update(jnp.array([4.0]), tx.init(x), x, value=4.0)[0]   # Adam's first step
      Array([-0.1], dtype=float32)

    Reference: as ``scale_by_momo`` (Schaipp et al., ICML 2024, arXiv:2305.07583).
    """
    owner = "scale_by_momo_adam"
    _check_common(owner, learning_rate, lower_bound, weight_decay)
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)

    def init(params):
        start = _start(owner, params, lower_bound)
        return MomoAdamState(exp_avg=moment_zeros(params), exp_avg_sq=moment_zeros(params), **start)

    def update(updates, state, params=None, *, value=None, **extra):
        moment_state(owner, state, MomoAdamState, updates, "exp_avg", "exp_avg_sq")
        _check_call(owner, params, updates, value)
        dtype = state.barf.dtype
        count = increment(state.count)
        c1, c2 = debias_denominator(b1, count, dtype), debias_denominator(b2, count, dtype)
        barf = moving_average(state.barf, jnp.asarray(value).astype(dtype), b1)

        def moments(g, m, v):
            cd = compute_dtype(g.dtype, m.dtype)
            g = g.astype(cd)
            m = moving_average(m, g, b1)
            v = moving_average(v, g, b2, weight=(1 - b2) * g)  # the published (1 - b2) * g * g
            return m, v, eps + jnp.sqrt(v / c2.astype(cd))

        new = jax.tree.map(moments, updates, state.exp_avg, state.exp_avg_sq)

        def pick(i):
            return jax.tree.map(lambda _, n: n[i], updates, new)

        m, v, denom = pick(0), pick(1), pick(2)
        weighted = jax.tree.map(lambda a, b: a / b, m, denom)
        norm = _vdot(m, weighted, dtype)
        gamma = moving_average(state.gamma, _vdot(updates, params, dtype), b1)
        inner = _vdot(m, params, dtype)
        lr, k = _rate(learning_rate, state.count, weight_decay, dtype)
        cap = k * (barf - gamma) + inner
        lb = _lower_bound(
            adapt_lower_bound,
            cap,
            k * c1 * state.lb,
            jnp.maximum(cap / (2 * c1 * k), lower_bound),
            state.lb,
        )
        polyak = jnp.maximum(k * (barf - c1 * lb - gamma) + inner, 0) / norm
        tau = jnp.minimum(lr / c1, jnp.where(norm <= _TINY, 0.0, polyak))
        out = _step(lr, weight_decay, k, tau, weighted, params)
        if adapt_lower_bound:
            lb = jnp.maximum((barf + inner - gamma - tau * norm / 2) / c1, lower_bound)

        return out, MomoAdamState(
            exp_avg=store(m, state.exp_avg, count),
            exp_avg_sq=store(v, state.exp_avg_sq, count, salt=1 << 20),
            barf=barf,
            gamma=gamma,
            lb=lb.astype(dtype),
            count=count,
        )

    return init, update
