"""Adaptive transforms beyond RMS: AdaMax, AdaBelief, ACProp, Yogi, Adan, NovoGrad,
optimistic gradients, Rprop and Polyak's step size.

Each is optax's ``scale_by_*`` of the same name, keyword for keyword, with
optax's state fields (``count``, ``mu``, ``nu``, ...).  Where the rule is
Adam's numerator over a new denominator measured on the gradient alone
(AdaMax), the denominator is a ``Preconditioner`` and the transform is
``precondition(direction, by=...)``.  Where the statistic needs the running
moment beside the raw gradient (AdaBelief measures (g_t - m_t)^2, Adan the
gradient difference), the whole rule is one transform, so no piece depends
on a neighbour.  Arithmetic runs in at least float32; moments are stored in
the parameter's dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ._base import EmptyState, GradientTransformation, Preconditioner
from ._checks import (
    check_float_leaves,
    check_not_schedule,
    check_params,
    check_range,
    check_real_leaves,
    check_state_dtype,
    moment_state,
)
from ._combine import chain, precondition
from ._moments import debiaser, filled, moment_zeros, moving_average, store
from ._momentum import bias_correction, scale_by_momentum
from ._numerics import abs_sq, compute_dtype, increment, new_count, real_compute_dtype
from ._recipe import transform
from ._tree import check_same_structure, zeros_like_tree


def _cd(*xs):
    return compute_dtype(*(x.dtype for x in xs))


def _stored(new, old):
    return jax.tree.map(lambda n, o: n.astype(o.dtype), new, old)


def _as(out, like):
    return jax.tree.map(lambda o, g: o.astype(g.dtype), out, like)


def _check_b(owner, **betas):
    for name, value in betas.items():
        check_range(owner, name, value, 0, 1)


def _check_moments(owner, b1, b2, eps, eps_root):
    _check_b(owner, b1=b1, b2=b2)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "eps_root", eps_root, 0)


def _first_moment(mu, updates, b1):
    """m_t = b1 * m_{t-1} + (1 - b1) * g_t, leaf by leaf."""
    return jax.tree.map(lambda m, g: moving_average(m, g, b1, input_first=True), mu, updates)


class InfinityNormState(NamedTuple):
    """nu: u_t, the decaying maximum of |g| (optax's AdaMax field)."""

    nu: object


@transform
def scale_by_infinity_norm(decay=0.999, eps=1e-8):
    """AdaMax's denominator: u_t = max(decay * u_{t-1}, |g_t| + eps); out = d_t / u_t.

    An exponentially weighted infinity norm of the gradients: it needs no
    bias correction, and u_t >= eps > 0 for eps > 0.

    Args:
      decay: b2, the decay of the maximum, in [0, 1].
      eps: added to |g_t|, >= 0.

    Returns:
      A preconditioner with state ``InfinityNormState(nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_infinity_norm(0.5, eps=0.0)
      >>> tx.update(jnp.array([-2.0, 4.0]), tx.init(jnp.zeros(2)))[0]
      Array([-1.,  1.], dtype=float32)

    Reference: Kingma, Ba, "Adam: A Method for Stochastic Optimization",
    ICLR 2015, arXiv:1412.6980, section 7.1.
    """
    owner = "scale_by_infinity_norm"
    check_range(owner, "decay", decay, 0, 1)
    check_range(owner, "eps", eps, 0)

    def init(params):
        check_float_leaves(owner, params, "params")
        return InfinityNormState(nu=zeros_like_tree(params, real=True))

    def precondition_fn(updates, gradient, state, params=None):
        moment_state(owner, state, InfinityNormState, gradient, "nu")

        def step(v, g):
            cd = real_compute_dtype(v.dtype, g.dtype)
            return jnp.maximum(jnp.abs(g).astype(cd) + eps, decay * v.astype(cd))

        nu = jax.tree.map(step, state.nu, gradient)
        out = jax.tree.map(lambda d, v: (d.astype(_cd(d, v)) / v).astype(d.dtype), updates, nu)
        return out, InfinityNormState(nu=_stored(nu, state.nu))

    return Preconditioner(init, precondition_fn, name=owner)


def scale_by_adamax(b1=0.9, b2=0.999, eps=1e-8) -> GradientTransformation:
    """AdaMax: u_t = m_hat_t / max(b2 * u_{t-1}, |g_t| + eps), m_hat_t Adam's corrected moment.

    m_t = b1 * m_{t-1} + (1 - b1) * g_t,  m_hat_t = m_t / (1 - b1^t).  The
    recipe is ``precondition(chain(scale_by_momentum(b1, ema=True),
    bias_correction(b1)), by=scale_by_infinity_norm(b2, eps))``.

    Args:
      b1: the decay of the first moment, in [0, 1].
      b2: the decay of the infinity norm, in [0, 1].
      eps: added to |g_t|, >= 0.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_adamax()
      >>> tx.update(jnp.array([-2.0, 4.0]), tx.init(jnp.zeros(2)))[0]
      Array([-1.,  1.], dtype=float32)

    Reference: Kingma, Ba, "Adam: A Method for Stochastic Optimization",
    ICLR 2015, arXiv:1412.6980, Algorithm 2.
    """
    owner = "scale_by_adamax"
    _check_b(owner, b1=b1, b2=b2)
    check_range(owner, "eps", eps, 0)
    return chain(
        precondition(
            chain(scale_by_momentum(b1, ema=True), bias_correction(b1)),
            by=scale_by_infinity_norm(b2, eps),
        ),
        name=owner,
        hyperparams={"b1": b1, "b2": b2, "eps": eps},
    )


class ScaleByBeliefState(NamedTuple):
    """count: t; mu: m_t; nu: s_t, the average squared prediction error (optax's fields)."""

    count: jax.Array
    mu: object
    nu: object


def _belief_init(owner, b1, b2, eps, eps_root):
    """Check AdaBelief's or ACProp's arguments; their ``init``: t = 0, m_0 = 0, s_0 = 0 (real)."""
    _check_moments(owner, b1, b2, eps, eps_root)

    def init(params):
        check_float_leaves(owner, params, "params")
        return ScaleByBeliefState(
            count=new_count(), mu=moment_zeros(params), nu=moment_zeros(params, real=True)
        )

    return init


def _nesterov_hat(b1, m, g, count):
    """b1 * m_t / (1 - b1^(t+1)) + (1 - b1) * g_t / (1 - b1^t), optax's Nesterov numerator."""
    cd = _cd(m, g)
    ahead = debiaser(b1, increment(count))(m.astype(cd))
    now = debiaser(b1, count)(g.astype(cd))
    return moving_average(ahead, now, b1)


@transform
def scale_by_belief(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, *, nesterov: bool = False):
    """AdaBelief: divide Adam's m_hat by the root of the average squared *prediction error*.

    m_t = b1 * m_{t-1} + (1 - b1) * g_t,
    s_t = b2 * s_{t-1} + (1 - b2) * (g_t - m_t)^2 + eps_root,
    u_t = m_hat_t / (sqrt(s_t / (1 - b2^t)) + eps),  m_hat_t = m_t / (1 - b1^t).

    s_t needs m_t beside g_t, so the rule is one transform.  ``nesterov``
    uses optax's look-ahead m_hat_t = b1 * m_t / (1 - b1^(t+1)) +
    (1 - b1) * g_t / (1 - b1^t).  The defaults (eps = eps_root = 1e-16) are
    optax's; the paper uses eps = 1e-8, eps_root = 0.

    Args:
      b1: the decay of m_t, in [0, 1].
      b2: the decay of s_t, in [0, 1].
      eps: added to the root, >= 0.
      eps_root: added to s_t at every step, >= 0.
      nesterov: use the look-ahead numerator.

    Returns:
      A transform with state ``ScaleByBeliefState(count, mu, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_belief(eps=0.0, eps_root=0.0)
      >>> tx.update(jnp.array([1.0]), tx.init(jnp.zeros(1)))[0]   # m_hat = 1, s_hat = 0.9^2
      Array([1.1111037], dtype=float32)

    Reference: Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the
    Belief in Observed Gradients", NeurIPS 2020, arXiv:2010.07468.
    """
    owner = "scale_by_belief"
    init = _belief_init(owner, b1, b2, eps, eps_root)

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ScaleByBeliefState, updates, "mu", "nu")
        count = increment(state.count)
        mu = _first_moment(state.mu, updates, b1)

        def belief(s, g, m):
            cd = real_compute_dtype(s.dtype, g.dtype)
            return (
                moving_average(s, abs_sq(g.astype(m.dtype) - m).astype(cd), b2, input_first=True)
                + eps_root
            )

        nu = jax.tree.map(belief, state.nu, updates, mu)
        if nesterov:
            mu_hat = jax.tree.map(lambda m, g: _nesterov_hat(b1, m, g, count), mu, updates)
        else:
            mu_hat = jax.tree.map(debiaser(b1, count), mu)
        nu_hat = jax.tree.map(debiaser(b2, count), nu)
        out = jax.tree.map(lambda m, s: m / (jnp.sqrt(s) + eps), mu_hat, nu_hat)
        return _as(out, updates), ScaleByBeliefState(
            count=count, mu=store(mu, state.mu, count), nu=store(nu, state.nu, count, salt=1 << 20)
        )

    return init, update


@transform
def scale_by_acprop(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16):
    """ACProp: divide the gradient by the root of the *previous* average squared prediction error.

    m_t = b1 * m_{t-1} + (1 - b1) * g_t,
    s_t = b2 * s_{t-1} + (1 - b2) * (g_t - m_{t-1})^2 + eps_root,
    u_t = g_t / (sqrt(s_{t-1} / (1 - b2^(t-1))) + eps),   u_1 = g_1 / (1 + eps).

    The denominator only uses gradients up to step t - 1 (the asynchronous
    update); the numerator is the raw gradient.  The prediction error is
    measured against m_{t-1}, as optax's code computes it (optax's docstring
    writes m_t).  Keywords and defaults are optax's ``scale_by_acprop``.

    Args:
      b1: the decay of m_t, in [0, 1].
      b2: the decay of s_t, in [0, 1].
      eps: added to the root, >= 0.
      eps_root: added to s_t at every step, >= 0.

    Returns:
      A transform with state ``ScaleByBeliefState(count, mu, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_acprop(eps=0.0, eps_root=0.0)
      >>> state = tx.init(jnp.zeros(1))
      >>> u, state = tx.update(jnp.array([2.0]), state)   # the first step divides by 1
      >>> tx.update(jnp.array([1.0]), state)[0]   # s_1 = 0.001 * 2^2, s_hat_1 = 4
      Array([0.5], dtype=float32)

    Reference: Zhuang et al., "Momentum Centering and Asynchronous Update for
    Adaptive Gradient Methods", NeurIPS 2021, arXiv:2110.05454.
    """
    owner = "scale_by_acprop"
    init = _belief_init(owner, b1, b2, eps, eps_root)

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ScaleByBeliefState, updates, "mu", "nu")
        first = state.count == 0
        count = increment(state.count)
        mu = _first_moment(state.mu, updates, b1)

        def belief(s, g, m):
            cd = real_compute_dtype(s.dtype, g.dtype, m.dtype)
            error = abs_sq(g.astype(_cd(g, m)) - m.astype(_cd(g, m))).astype(cd)
            return moving_average(s, error, b2, input_first=True) + eps_root

        nu = jax.tree.map(belief, state.nu, updates, state.mu)
        debias = debiaser(b2, jnp.where(first, count, state.count))
        nu_hat = jax.tree.map(lambda s: jnp.where(first, 1, debias(s)), state.nu)
        out = jax.tree.map(lambda g, s: g.astype(_cd(g, s)) / (jnp.sqrt(s) + eps), updates, nu_hat)
        return _as(out, updates), ScaleByBeliefState(
            count=count, mu=_stored(mu, state.mu), nu=_stored(nu, state.nu)
        )

    return init, update


class ScaleByYogiState(NamedTuple):
    """count: t; mu: m_t; nu: v_t (optax's fields)."""

    count: jax.Array
    mu: object
    nu: object


@transform
def scale_by_yogi(b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0, initial_accumulator_value=1e-6):
    """Yogi: Adam with an additive second moment, v_t = v_{t-1} - (1 - b2) sign(v_{t-1} - g_t^2) g_t^2.

    m_t = b1 * m_{t-1} + (1 - b1) * g_t,
    u_t = m_hat_t / (sqrt(v_hat_t + eps_root) + eps), both hats corrected by
    1 - b^t.  v_t moves towards g_t^2 by a step proportional to g_t^2, not to
    the gap, so it cannot grow as fast as Adam's.  As in optax, both m_0 and
    v_0 start at ``initial_accumulator_value``; v_t needs only g_t, but the
    shared start of m_t is Yogi's own, so the rule is one transform.

    Args:
      b1: the decay of m_t, in [0, 1].
      b2: the rate of v_t, in [0, 1].
      eps: added to the root, >= 0.
      eps_root: added under the root, >= 0.
      initial_accumulator_value: m_0 and v_0.

    Returns:
      A transform with state ``ScaleByYogiState(count, mu, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_yogi(eps=0.0, initial_accumulator_value=0.0)
      >>> tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))[0]
      Array([1.], dtype=float32)

    Reference: Zaheer et al., "Adaptive Methods for Nonconvex Optimization",
    NeurIPS 2018.
    """
    owner = "scale_by_yogi"
    _check_moments(owner, b1, b2, eps, eps_root)
    check_range(owner, "initial_accumulator_value", initial_accumulator_value, 0)

    def init(params):
        check_float_leaves(owner, params, "params")
        full = filled(zeros_like_tree(params), initial_accumulator_value)
        return ScaleByYogiState(count=new_count(), mu=full, nu=full)

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ScaleByYogiState, updates, "mu", "nu")
        count = increment(state.count)
        mu = _first_moment(state.mu, updates, b1)

        def second(v, g):
            cd = _cd(v, g)
            g2 = abs_sq(g.astype(cd))
            v = v.astype(cd)
            return v - (1 - b2) * jnp.sign(v - g2) * g2

        nu = jax.tree.map(second, state.nu, updates)
        mu_hat = jax.tree.map(debiaser(b1, count), mu)
        nu_hat = jax.tree.map(debiaser(b2, count), nu)
        out = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        return _as(out, updates), ScaleByYogiState(
            count=count, mu=store(mu, state.mu, count), nu=store(nu, state.nu, count, salt=1 << 20)
        )

    return init, update


class ScaleByAdanState(NamedTuple):
    """m, v, n: Adan's three moments; g: the previous gradient; t: the count (optax's fields)."""

    m: object
    v: object
    n: object
    g: object
    t: jax.Array


@transform
def scale_by_adan(b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=0.0):
    """Adan: Nesterov-style momentum from the gradient and its change.

    d_t = g_t - g_{t-1} (0 at the first step),
    m_t = b1 m_{t-1} + (1 - b1) g_t,   v_t = b2 v_{t-1} + (1 - b2) d_t,
    n_t = b3 n_{t-1} + (1 - b3) (g_t + (1 - b2) d_t)^2,
    u_t = (m_hat_t + (1 - b2) v_hat_t) / (sqrt(n_hat_t + eps_root) + eps),

    each hat corrected by 1 - b^t.  optax's convention: the paper's betas are
    1 - b here (paper beta_1 = 0.02 is b1 = 0.98).

    Args:
      b1, b2, b3: the decays of m, v and n, in [0, 1].
      eps: added to the root, >= 0.
      eps_root: added under the root, >= 0.

    Returns:
      A transform with state ``ScaleByAdanState(m, v, n, g, t)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_adan(eps=0.0)
      >>> tx.update(jnp.array([-3.0]), tx.init(jnp.zeros(1)))[0]
      Array([-1.], dtype=float32)

    Reference: Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for
    Faster Optimizing Deep Models", 2022, arXiv:2208.06677.
    """
    owner = "scale_by_adan"
    _check_b(owner, b1=b1, b2=b2, b3=b3)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "eps_root", eps_root, 0)

    def init(params):
        check_float_leaves(owner, params, "params")
        z = moment_zeros(params)
        return ScaleByAdanState(m=z, v=z, n=moment_zeros(params, real=True), g=z, t=new_count())

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ScaleByAdanState, updates, "m", "v", "n", "g")
        first = state.t == 0
        diff = jax.tree.map(
            lambda g, p: jnp.where(first, 0, g.astype(_cd(g, p)) - p.astype(_cd(g, p))),
            updates,
            state.g,
        )
        m = _first_moment(state.m, updates, b1)
        v = jax.tree.map(lambda v, d: moving_average(v, d, b2, input_first=True), state.v, diff)
        n = jax.tree.map(
            lambda n, g, d: moving_average(
                n, abs_sq(g.astype(d.dtype) + (1 - b2) * d), b3, input_first=True
            ),
            state.n,
            updates,
            diff,
        )
        t = increment(state.t)
        m_hat = jax.tree.map(debiaser(b1, t), m)
        v_hat = jax.tree.map(debiaser(b2, t), v)
        n_hat = jax.tree.map(debiaser(b3, t), n)
        out = jax.tree.map(
            lambda a, b, c: (a + (1 - b2) * b) / (jnp.sqrt(c + eps_root) + eps), m_hat, v_hat, n_hat
        )
        return _as(out, updates), ScaleByAdanState(
            m=store(m, state.m, t),
            v=store(v, state.v, t, salt=1 << 20),
            n=store(n, state.n, t, salt=2 << 20),
            g=_stored(updates, state.g),
            t=t,
        )

    return init, update


class ScaleByNovogradState(NamedTuple):
    """count: t; mu: m_t; nu: v_t, one scalar per leaf (optax's fields)."""

    count: jax.Array
    mu: object
    nu: object


@transform
def scale_by_novograd(b1=0.9, b2=0.25, eps=1e-8, eps_root=0.0, weight_decay=0.0, mu_dtype=None):
    """NovoGrad: a layer-wise second moment and a decayed, normalised first moment.

    For each leaf (layer) l, with ||g||^2 summed over the leaf,
    v_t = ||g_t||^2 at t = 1, b2 v_{t-1} + (1 - b2) ||g_t||^2 after,
    m_t = b1 m_{t-1} + g_t / (sqrt(v_t + eps_root) + eps) + weight_decay * p_t,
    with m_1 the bracket alone; u_t = m_t.  optax's form: the first moment is
    a sum (no 1 - b1 factor) and the decay sits inside it.

    Args:
      b1: the decay of m_t, in [0, 1].
      b2: the decay of v_t, in [0, 1].
      eps: added to the root, >= 0.
      eps_root: added under the root, >= 0.
      weight_decay: added to the normalised gradient, times p_t.
      mu_dtype: the dtype m_t is stored in; None: each parameter's.

    Returns:
      A transform that needs params, with state ``ScaleByNovogradState(count, mu, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_novograd(eps=0.0)
      >>> p = jnp.zeros(2)
      >>> tx.update(jnp.array([3.0, 4.0]), tx.init(p), p)[0]
      Array([0.6, 0.8], dtype=float32)

    Reference: Ginsburg et al., "Stochastic Gradient Methods with Layer-wise
    Adaptive Moments for Training of Deep Networks", 2019, arXiv:1905.11286.
    """
    owner = "scale_by_novograd"
    _check_moments(owner, b1, b2, eps, eps_root)
    check_range(owner, "weight_decay", weight_decay)
    mu_dtype = check_state_dtype(owner, "mu_dtype", mu_dtype)

    def init(params):
        check_float_leaves(owner, params, "params")
        nu = jax.tree.map(lambda p: jnp.zeros((), jnp.finfo(p.dtype).dtype), params)
        return ScaleByNovogradState(count=new_count(), mu=moment_zeros(params, mu_dtype), nu=nu)

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ScaleByNovogradState, updates, "mu")
        check_params(owner, params, updates)
        count = increment(state.count)
        first = count == 1

        def second(v, g):
            cd = real_compute_dtype(v.dtype, g.dtype)
            sq = jnp.sum(abs_sq(g.astype(compute_dtype(g.dtype)))).astype(cd)
            return jnp.where(first, sq, moving_average(v, sq, b2))

        nu = jax.tree.map(second, state.nu, updates)

        def first_moment(m, g, p, v):
            cd = _cd(m, g, p)
            step = g.astype(cd) / (jnp.sqrt(v + eps_root) + eps).astype(
                cd
            ) + weight_decay * p.astype(cd)
            return jnp.where(first, step, moving_average(m, step, b1, weight=1))

        mu = store(jax.tree.map(first_moment, state.mu, updates, params, nu), state.mu, count)
        return _as(mu, updates), ScaleByNovogradState(count=count, mu=mu, nu=_stored(nu, state.nu))

    return init, update


class ScaleByOptimisticGradientState(NamedTuple):
    """is_initial_step: True before the first update; previous_gradient: g_{t-1} (optax's)."""

    is_initial_step: jax.Array
    previous_gradient: object


@transform
def scale_by_optimistic_gradient(alpha=1.0, beta=1.0):
    """Optimistic gradient: u_t = (alpha + beta) * g_t - beta * g_{t-1}, with g_0 = g_1.

    The extrapolation from the last gradient damps the rotation of
    gradient descent-ascent in games.  At the first step the previous
    gradient is the current one, so u_1 = alpha * g_1 (optax's convention).

    Args:
      alpha: the weight of the current gradient.
      beta: the weight of the gradient change (optimism).

    Returns:
      A transform with state ``ScaleByOptimisticGradientState(is_initial_step,
      previous_gradient)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_optimistic_gradient(1.0, 1.0)
      >>> u, state = tx.update(jnp.array([1.0]), tx.init(jnp.zeros(1)))
      >>> tx.update(jnp.array([3.0]), state)[0]   # 2 * 3 - 1
      Array([5.], dtype=float32)

    Reference: Mokhtari, Ozdaglar, Pattathil, "A Unified Analysis of
    Extra-gradient and Optimistic Gradient Methods for Saddle Point Problems",
    AISTATS 2020, arXiv:1901.08511.
    """
    owner = "scale_by_optimistic_gradient"
    check_range(owner, "alpha", alpha)
    check_range(owner, "beta", beta)

    def init(params):
        check_float_leaves(owner, params, "params")
        return ScaleByOptimisticGradientState(
            is_initial_step=jnp.array(True), previous_gradient=zeros_like_tree(params)
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ScaleByOptimisticGradientState, updates, "previous_gradient")

        def step(g, prev):
            cd = _cd(g, prev)
            g = g.astype(cd)
            prev = jnp.where(state.is_initial_step, g, prev.astype(cd))
            return (alpha + beta) * g - beta * prev

        out = jax.tree.map(step, updates, state.previous_gradient)
        return _as(out, updates), ScaleByOptimisticGradientState(
            is_initial_step=jnp.array(False),
            previous_gradient=_stored(updates, state.previous_gradient),
        )

    return init, update


class ScaleByRpropState(NamedTuple):
    """step_sizes: the per-entry step sizes; prev_updates: the last sign step (optax's fields)."""

    step_sizes: object
    prev_updates: object


@transform
def scale_by_rprop(
    learning_rate: ArrayLike,
    eta_minus=0.5,
    eta_plus=1.2,
    min_step_size=1e-6,
    max_step_size=50.0,
):
    """Rprop as optax computes it: per-entry step sizes grown on agreeing signs, cut on flips.

    With s_t = g_t * q_{t-1} (q the stored sign step, q_0 = 0):
    eta_t = eta_{t-1} if s_t = 0, else clip(eta_{t-1} * (eta_plus if s_t > 0
    else eta_minus), min_step_size, max_step_size);
    q_t = 0 where s_t < 0, else eta_t * sign(g_t);
    u_t = 0 where s_t < 0, else q_{t-1}.

    optax 0.2.8 returns q_{t-1}, the sign step of the *previous* gradient,
    so its first update is zero and every step lags one gradient behind
    Riedmiller and Braun's rule (which returns q_t).  gradtx keeps optax's
    output under optax's name.  The update keeps the gradient's sign; the
    recipe ``rprop`` flips it.

    Args:
      learning_rate: eta_0, the initial step size, > 0.
      eta_minus: the factor on a sign flip, in [0, 1].
      eta_plus: the factor on agreeing signs, >= 1.
      min_step_size, max_step_size: the bounds of eta_t.

    Returns:
      A transform with state ``ScaleByRpropState(step_sizes, prev_updates)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_rprop(0.1)
      >>> state = tx.init(jnp.zeros(1))
      >>> _, state = tx.update(jnp.array([2.0]), state)   # optax's first step is zero
      >>> tx.update(jnp.array([3.0]), state)[0]
      Array([0.1], dtype=float32)

    Reference: Riedmiller, Braun, "A Direct Adaptive Method for Faster
    Backpropagation Learning: The RPROP Algorithm", ICNN 1993.
    """
    owner = "scale_by_rprop"
    check_not_schedule(
        owner, "learning_rate", learning_rate, "the initial step size; Rprop adapts each itself"
    )
    check_range(owner, "learning_rate", learning_rate, 0, low_open=True)
    check_range(owner, "eta_minus", eta_minus, 0, 1)
    check_range(owner, "eta_plus", eta_plus, 1)
    check_range(owner, "min_step_size", min_step_size, 0)
    check_range(
        owner,
        "max_step_size",
        max_step_size,
        min_step_size if isinstance(min_step_size, (int, float)) else 0,
    )

    def init(params):
        check_float_leaves(owner, params, "params")
        check_real_leaves(owner, params, "Rprop compares the signs of successive gradients")
        sizes = filled(zeros_like_tree(params), learning_rate)
        return ScaleByRpropState(step_sizes=sizes, prev_updates=zeros_like_tree(params))

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ScaleByRpropState, updates, "step_sizes", "prev_updates")

        def one(g, size, prev):
            cd = _cd(g, size, prev)
            g, size, prev = g.astype(cd), size.astype(cd), prev.astype(cd)
            s = g * prev
            grown = jnp.clip(
                size * jnp.where(s > 0, eta_plus, eta_minus), min_step_size, max_step_size
            )
            size = jnp.where(s == 0, size, grown)
            step = jnp.where(s < 0, 0, size * jnp.sign(g))
            out = jnp.where(s < 0, 0, prev)
            return out, size, step

        triples = jax.tree.map(one, updates, state.step_sizes, state.prev_updates)
        treedef = jax.tree.structure(updates)
        flat = treedef.flatten_up_to(triples)
        outs, sizes, steps = zip(*flat) if flat else ((), (), ())
        out = treedef.unflatten(outs)
        return _as(out, updates), ScaleByRpropState(
            step_sizes=_stored(treedef.unflatten(sizes), state.step_sizes),
            prev_updates=_stored(treedef.unflatten(steps), state.prev_updates),
        )

    return init, update


_POLYAK_VARIANTS = ("sps", "sps+")
_FLOAT64_EPS = float(np.finfo(np.float64).eps)


@transform
def scale_by_polyak(f_min=0.0, max_learning_rate=1.0, eps=0.0, variant: str = "sps"):
    """Polyak's step size: u_t = min((f(x_t) - f_min) / (||g_t||^2 + eps), max_learning_rate) * g_t.

    The loss f(x_t) is passed as ``update(..., value=f(x_t))``.  ||g_t|| is
    the norm over every leaf.  Where ||g_t||^2 + eps is at most 2.2e-16
    (float64's machine epsilon, in every dtype) the step is 0, optax's guard.  ``variant="sps+"``
    clips the gap f(x_t) - f_min at 0.

    Args:
      f_min: a lower bound of the loss (0 for interpolating models).
      max_learning_rate: the largest step size.
      eps: added to ||g_t||^2, >= 0.
      variant: "sps" or "sps+".

    Returns:
      A stateless transform whose update needs ``value=``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_polyak()
      >>> tx.update(jnp.array([2.0]), tx.init(None), value=jnp.array(2.0))[0]   # 2 / 4 * 2
      Array([1.], dtype=float32)

    Reference: Loizou et al., "Stochastic Polyak Step-size for SGD: An
    Adaptive Learning Rate for Fast Convergence", AISTATS 2021, arXiv:2002.10542.
    """
    owner = "scale_by_polyak"
    check_range(owner, "max_learning_rate", max_learning_rate, 0)
    check_range(owner, "eps", eps, 0)
    if variant not in _POLYAK_VARIANTS:
        raise ValueError(f"{owner}: variant must be one of {_POLYAK_VARIANTS}, got {variant!r}")

    def update(updates, state, params=None, *, value=None, **extra):
        if value is None:
            raise TypeError(
                f"{owner}: update needs the loss, update(updates, state, params, value=loss)"
            )
        check_float_leaves(owner, updates, "updates")
        if params is not None:  # unused, but params of other structure are a caller's mistake
            check_same_structure(owner, params, updates, "params", "updates")
        leaves = jax.tree.leaves(updates)
        cd = real_compute_dtype(*(g.dtype for g in leaves)) if leaves else jnp.float32
        sq = sum(
            (jnp.sum(abs_sq(g.astype(compute_dtype(g.dtype)))).astype(cd) for g in leaves),
            jnp.zeros((), cd),
        )
        gap = jnp.asarray(value).astype(cd) - f_min
        if variant == "sps+":
            gap = jnp.maximum(gap, 0)
        tiny = sq + eps <= _FLOAT64_EPS
        step = jnp.where(
            tiny, 0, jnp.minimum(gap / jnp.where(tiny, 1, sq + eps), max_learning_rate)
        )
        out = jax.tree.map(
            lambda g: (step.astype(_cd(g)) * g.astype(_cd(g))).astype(g.dtype), updates
        )
        return out, state

    return lambda params: EmptyState(), update
