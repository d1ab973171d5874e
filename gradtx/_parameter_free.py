"""Learning-rate-free methods: the step size D is estimated from the run itself.

Prodigy and D-Adaptation keep an estimate d_t of the distance from the
initial point to the solution and grow it monotonically from a small d_0.
The estimate weighs every coordinate of every leaf, so these transforms are
not elementwise.  Like optax's, they take the learning rate (a multiplier of
the estimate, 1 by default, which enters the estimate itself) and return the
step, sign included: they end a recipe.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import GradientTransformation
from ._checks import check_float_leaves, check_learning_rate, check_range, moment_state
from ._numerics import compute_dtype, increment, new_count, real_compute_dtype
from ._tree import check_same_structure, zeros_like_tree


def _scalar_dtype(params):
    """The dtype of the scalar estimates: the narrowest leaf's compute dtype (optax's choice)."""
    dtypes = [real_compute_dtype(jnp.result_type(p)) for p in jax.tree.leaves(params)]
    return min(dtypes, key=lambda d: d.itemsize, default=jnp.dtype(jnp.float32))


def _needs_params(owner, params, updates):
    if params is None:
        raise ValueError(f"{owner}: update needs params (call update(updates, state, params))")
    check_same_structure(owner, params, updates, "params", "updates")


def _tree_sum(tree, dtype):
    return sum((jnp.sum(x).astype(dtype) for x in jax.tree.leaves(tree)), jnp.zeros((), dtype))


def _check_betas(owner, betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
    check_range(owner, "betas[0]", betas[0], 0, 1, high_open=True)
    check_range(owner, "betas[1]", betas[1], 0, 1, high_open=True)
    return betas


class ProdigyState(NamedTuple):
    """exp_avg: m_t; exp_avg_sq: v_t; grad_sum: s_t; params0: x_0; estim_lr: d_t;
    numerator_weighted: r_t; count: t.  (optax's fields.)"""

    exp_avg: Any
    exp_avg_sq: Any
    grad_sum: Any
    params0: Any
    estim_lr: jax.Array
    numerator_weighted: jax.Array
    count: jax.Array


def scale_by_prodigy(learning_rate=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-8,
                     estim_lr0=1e-6, estim_lr_coef=1.0, weight_decay=0.0,
                     safeguard_warmup: bool = False):
    """Prodigy: Adam whose step size d_t is estimated from the distance travelled.

    With lr_t the learning rate at t = 0, 1, ... and k = t + 1:
    dlr_t = d_t * lr_t * sqrt(1 - b2^k) / (1 - b1^k),
    m_t = b1 m_{t-1} + (1 - b1) d_t g_t,        v_t = b2 v_{t-1} + (1 - b2) d_t^2 g_t^2,
    s_t = b3 s_{t-1} + (e_t / d_0) d_t g_t,     e_t = d_t (safeguard_warmup) or dlr_t,
    r_t = b3 r_{t-1} + (d_t / d_0) dlr_t <g_t, x_0 - x_t>,
    d_{t+1} = max(d_t, estim_lr_coef * r_t / ||s_t||_1),
    u_t = -dlr_t * (m_t / (sqrt(v_t) + d_{t+1} eps) + weight_decay * x_t).

    Args:
      learning_rate: lr, a multiplier of the estimate, a number >= 0 or a
        schedule.
      betas: (b1, b2), the decays of m and v, each in [0, 1).
      beta3: b3, the decay of s and r; None: sqrt(b2).
      eps: the stabiliser, scaled by d_{t+1}, >= 0.
      estim_lr0: d_0 > 0, the initial estimate.
      estim_lr_coef: a multiplier of the estimate, >= 0.
      weight_decay: decoupled, scaled by dlr_t, >= 0.
      safeguard_warmup: weigh s by d_t instead of dlr_t (for warmup schedules).

    Returns:
      A transform with state ``ProdigyState``; it needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_prodigy()
      >>> params = jnp.array([1.0, -1.0])
      >>> tx.update(jnp.array([1.0, 2.0]), tx.init(params), params)[0]  # -d_0 lr sign(g)
      Array([-1.e-06, -1.e-06], dtype=float32)

    Reference: Mishchenko, Defazio, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner", ICML 2024, arXiv:2306.06101.
    """
    owner = "scale_by_prodigy"
    check_learning_rate(owner, learning_rate)
    b1, b2 = _check_betas(owner, betas)
    if beta3 is None:
        beta3 = b2 ** 0.5
    check_range(owner, "beta3", beta3, 0, 1)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "estim_lr0", estim_lr0, 0, low_open=True)
    check_range(owner, "estim_lr_coef", estim_lr_coef, 0)
    check_range(owner, "weight_decay", weight_decay, 0)

    def init(params):
        check_float_leaves(owner, params, "params")
        dtype = _scalar_dtype(params)
        zeros = zeros_like_tree(params)
        return ProdigyState(exp_avg=zeros, exp_avg_sq=zeros, grad_sum=zeros,
                            params0=jax.tree.map(jnp.asarray, params),
                            estim_lr=jnp.asarray(estim_lr0, dtype),
                            numerator_weighted=jnp.zeros((), dtype), count=new_count())

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ProdigyState, updates, "exp_avg", "exp_avg_sq", "grad_sum",
                     "params0")
        _needs_params(owner, params, updates)
        dtype = state.estim_lr.dtype
        d = state.estim_lr
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        k = increment(state.count).astype(dtype)
        dlr = d * jnp.asarray(lr, dtype) * jnp.sqrt(1 - b2 ** k) / (1 - b1 ** k)
        weight = d if safeguard_warmup else dlr

        def moments(g, p, p0, m, v, s):
            cd = compute_dtype(g.dtype, p.dtype)
            dg = d.astype(cd) * g.astype(cd)
            travelled = jnp.sum(g.astype(cd) * (p0.astype(cd) - p.astype(cd)))
            m = b1 * m.astype(cd) + (1 - b1) * dg
            v = b2 * v.astype(cd) + (1 - b2) * dg * dg
            s = beta3 * s.astype(cd) + weight.astype(cd) * dg / estim_lr0
            return m, v, s, travelled, jnp.sum(jnp.abs(s))

        new = jax.tree.map(moments, updates, params, state.params0, state.exp_avg,
                           state.exp_avg_sq, state.grad_sum)
        pick = lambda i: jax.tree.map(lambda _, n: n[i], updates, new)
        numerator = beta3 * state.numerator_weighted + d / estim_lr0 * dlr * _tree_sum(pick(3), dtype)
        d_next = jnp.maximum(d, estim_lr_coef * numerator / _tree_sum(pick(4), dtype))

        def step(g, p, m, v):
            cd = m.dtype
            descent = m / (jnp.sqrt(v) + d_next.astype(cd) * eps) + weight_decay * p.astype(cd)
            return (-dlr.astype(cd) * descent).astype(g.dtype)

        out = jax.tree.map(step, updates, params, pick(0), pick(1))
        cast = lambda tree, like: jax.tree.map(lambda x, o: x.astype(o.dtype), tree, like)
        return out, ProdigyState(exp_avg=cast(pick(0), state.exp_avg),
                                 exp_avg_sq=cast(pick(1), state.exp_avg_sq),
                                 grad_sum=cast(pick(2), state.grad_sum), params0=state.params0,
                                 estim_lr=d_next, numerator_weighted=numerator,
                                 count=increment(state.count))

    return GradientTransformation(init, update, name=owner, hyperparams={
        "learning_rate": learning_rate, "betas": tuple(betas), "beta3": beta3, "eps": eps,
        "estim_lr0": estim_lr0, "estim_lr_coef": estim_lr_coef, "weight_decay": weight_decay,
        "safeguard_warmup": safeguard_warmup})


class DAdaptAdamWState(NamedTuple):
    """exp_avg: m_t; exp_avg_sq: v_t; grad_sum: s_t; estim_lr: d_t;
    numerator_weighted: r_t; count: t.  (optax's fields.)"""

    exp_avg: Any
    exp_avg_sq: Any
    grad_sum: Any
    estim_lr: jax.Array
    numerator_weighted: jax.Array
    count: jax.Array


def scale_by_dadapt_adamw(learning_rate=1.0, betas=(0.9, 0.999), eps=1e-8, estim_lr0=1e-6,
                          weight_decay=0.0):
    """D-Adaptation for AdamW: Adam whose step size d_t is estimated from the gradients' sum.

    With lr_t the learning rate at t = 0, 1, ..., k = t + 1 and c = sqrt(b2):
    dlr_t = d_t * lr_t * sqrt(1 - b2^k) / (1 - b1^k),
    r_t = c r_{t-1} + (1 - c) dlr_t <g_t, s_{t-1} / (sqrt(v_{t-1}) + eps)>,
    m_t = b1 m_{t-1} + (1 - b1) dlr_t g_t,      v_t = b2 v_{t-1} + (1 - b2) g_t^2,
    s_t = c s_{t-1} + (1 - c) dlr_t g_t,
    d_{t+1} = max(d_t, r_t / ((1 - c) ||s_t||_1)),
    u_t = -(m_t / (sqrt(v_t) + eps) + weight_decay * dlr_t * x_t).

    Args:
      learning_rate: lr, a multiplier of the estimate, a number >= 0 or a
        schedule.
      betas: (b1, b2), the decays of m and v, each in [0, 1).
      eps: added to the root, >= 0.
      estim_lr0: d_0 > 0, the initial estimate.
      weight_decay: decoupled, scaled by dlr_t, >= 0.

    Returns:
      A transform with state ``DAdaptAdamWState``; it needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_dadapt_adamw()
      >>> params = jnp.array([1.0, -1.0])
      >>> tx.update(jnp.array([1.0, 2.0]), tx.init(params), params)[0]  # -d_0 lr sign(g)
      Array([-1.e-06, -1.e-06], dtype=float32)

    Reference: Defazio, Mishchenko, "Learning-Rate-Free Learning by
    D-Adaptation", ICML 2023, arXiv:2301.07733.
    """
    owner = "scale_by_dadapt_adamw"
    check_learning_rate(owner, learning_rate)
    b1, b2 = _check_betas(owner, betas)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "estim_lr0", estim_lr0, 0, low_open=True)
    check_range(owner, "weight_decay", weight_decay, 0)
    c = b2 ** 0.5

    def init(params):
        check_float_leaves(owner, params, "params")
        dtype = _scalar_dtype(params)
        zeros = zeros_like_tree(params)
        return DAdaptAdamWState(exp_avg=zeros, exp_avg_sq=zeros, grad_sum=zeros,
                                estim_lr=jnp.asarray(estim_lr0, dtype),
                                numerator_weighted=jnp.zeros((), dtype), count=new_count())

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, DAdaptAdamWState, updates, "exp_avg", "exp_avg_sq",
                     "grad_sum")
        _needs_params(owner, params, updates)
        dtype = state.estim_lr.dtype
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        k = increment(state.count).astype(dtype)
        dlr = state.estim_lr * jnp.asarray(lr, dtype) * jnp.sqrt(1 - b2 ** k) / (1 - b1 ** k)

        def moments(g, m, v, s):
            cd = compute_dtype(g.dtype, m.dtype)
            g, m, v, s = (x.astype(cd) for x in (g, m, v, s))
            inner = jnp.sum(g * s / (jnp.sqrt(v) + eps))
            m = b1 * m + (1 - b1) * dlr.astype(cd) * g
            v = b2 * v + (1 - b2) * g * g
            s = c * s + (1 - c) * dlr.astype(cd) * g
            return m, v, s, inner, jnp.sum(jnp.abs(s))

        new = jax.tree.map(moments, updates, state.exp_avg, state.exp_avg_sq, state.grad_sum)
        pick = lambda i: jax.tree.map(lambda _, n: n[i], updates, new)
        numerator = c * state.numerator_weighted + (1 - c) * dlr * _tree_sum(pick(3), dtype)
        d_next = jnp.maximum(state.estim_lr, numerator / ((1 - c) * _tree_sum(pick(4), dtype)))

        def step(g, p, m, v):
            cd = m.dtype
            decay = weight_decay * dlr.astype(cd) * p.astype(cd)
            return (-(m / (jnp.sqrt(v) + eps) + decay)).astype(g.dtype)

        out = jax.tree.map(step, updates, params, pick(0), pick(1))
        cast = lambda tree, like: jax.tree.map(lambda x, o: x.astype(o.dtype), tree, like)
        return out, DAdaptAdamWState(exp_avg=cast(pick(0), state.exp_avg),
                                     exp_avg_sq=cast(pick(1), state.exp_avg_sq),
                                     grad_sum=cast(pick(2), state.grad_sum), estim_lr=d_next,
                                     numerator_weighted=numerator, count=increment(state.count))

    return GradientTransformation(init, update, name=owner, hyperparams={
        "learning_rate": learning_rate, "betas": tuple(betas), "eps": eps,
        "estim_lr0": estim_lr0, "weight_decay": weight_decay})
