"""AdEMAMix: Adam whose numerator adds a slow moving average of the gradient to the fast one."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._checks import check_float_leaves, check_range, check_state_dtype, moment_state
from ._moments import debiaser, moment_zeros, moving_average, moving_average_sq, store
from ._numerics import compute_dtype, increment, new_count
from ._recipe import transform


def _value(hyperparam, count):
    """A constant, or a schedule evaluated at ``count``."""
    return hyperparam(count) if callable(hyperparam) else hyperparam


class ScaleByAdemamixState(NamedTuple):
    """count, count_m2: steps taken; m1: fast average; m2: slow average; nu: second moment."""

    count: jax.Array
    count_m2: jax.Array
    m1: Any
    m2: Any
    nu: Any


@transform
def scale_by_ademamix(
    b1=0.9, b2=0.999, b3=0.9999, alpha=6.0, eps=1e-8, eps_root=0.0, mu_dtype=None
):
    """AdEMAMix's direction: (m1_hat_t + alpha * m2_t) / (sqrt(nu_hat_t + eps_root) + eps).

    m1_t = b1 * m1_{t-1} + (1 - b1) * g_t,    m1_hat_t = m1_t / (1 - b1^t),
    m2_t = b3 * m2_{t-1} + (1 - b3) * g_t,    (slow, not bias-corrected)
    nu_t = b2 * nu_{t-1} + (1 - b2) * g_t^2,  nu_hat_t = nu_t / (1 - b2^t).

    b3 and alpha may be schedules of the step t = 0, 1, ... (the paper warms
    both up).  The default alpha is optax's 6.0 here and 5.0 in ``ademamix``,
    as in optax.

    Args:
      b1: the decay of the fast average, in [0, 1).
      b2: the decay of the second moment, in [0, 1).
      b3: the decay of the slow average, in [0, 1), or a schedule.
      alpha: the weight of the slow average, or a schedule.
      eps: added to the root, >= 0.
      eps_root: added under the root, >= 0.
      mu_dtype: the dtype m1, m2 and nu are stored in; None: each parameter's.

    Returns:
      A transform with state ``ScaleByAdemamixState(count, count_m2, m1, m2, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_ademamix(alpha=0.0)
      >>> tx.update(jnp.array([2.0, -0.5]), tx.init(jnp.zeros(2)))[0]   # Adam's first step
      Array([ 1., -1.], dtype=float32)

    Reference: Pagliardini, Ablin, Grangier, "The AdEMAMix Optimizer: Better,
    Faster, Older", 2024, arXiv:2409.03137.
    """
    owner = "scale_by_ademamix"
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    if not callable(b3):
        check_range(owner, "b3", b3, 0, 1, high_open=True)
    if not callable(alpha):
        check_range(owner, "alpha", alpha)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "eps_root", eps_root, 0)
    mu_dtype = check_state_dtype(owner, "mu_dtype", mu_dtype)

    def init(params):
        check_float_leaves(owner, params, "params")
        zeros = moment_zeros(params, mu_dtype)
        return ScaleByAdemamixState(
            count=new_count(),
            count_m2=new_count(),
            m1=zeros,
            m2=zeros,
            nu=moment_zeros(params, mu_dtype, real=True),
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ScaleByAdemamixState, updates, "m1", "m2", "nu")
        b3_t, alpha_t = _value(b3, state.count_m2), _value(alpha, state.count_m2)
        count = increment(state.count)
        fast, second = debiaser(b1, count), debiaser(b2, count)

        def step(g, m1, m2, nu):
            cd = compute_dtype(g.dtype, m1.dtype)
            g = g.astype(cd)
            m1 = moving_average(m1, g, b1)
            m2 = moving_average(m2, g, b3_t)
            nu = moving_average_sq(nu, g, b2)
            out = (fast(m1) + alpha_t * m2) / (jnp.sqrt(second(nu) + eps_root) + eps)
            return out, m1, m2, nu

        new = jax.tree.map(step, updates, state.m1, state.m2, state.nu)

        def pick(i):
            return jax.tree.map(lambda _, n: n[i], updates, new)

        return store(pick(0), updates), ScaleByAdemamixState(
            count=count,
            count_m2=increment(state.count_m2),
            m1=store(pick(1), state.m1, count),
            m2=store(pick(2), state.m2, count, salt=1 << 20),
            nu=store(pick(3), state.nu, count, salt=2 << 20),
        )

    return init, update


class ScaleBySimplifiedAdEMAMixState(NamedTuple):
    """t: steps taken; m: the undamped gradient sum; n: the second moment."""

    t: jax.Array
    m: Any
    n: Any


@transform
def scale_by_simplified_ademamix(b1=0.99, b2=0.95, alpha=0.0, eps=1e-8, eps_root=0.0):
    """Simplified AdEMAMix: (m_t + alpha * g_t) / (sqrt(n_hat_t + eps_root) + eps).

    m_t = b1 * m_{t-1} + g_t                  (a heavy-ball sum, not an average),
    n_t = b2 * n_{t-1} + (1 - b2) * g_t^2,    n_hat_t = n_t / (1 - b2^t).

    With alpha = 0 and b1 = 0 it is RMSprop with bias correction; alpha may
    be a schedule of the step t = 0, 1, ...

    Args:
      b1: the momentum of the sum, in [0, 1).
      b2: the decay of the second moment, in [0, 1).
      alpha: the weight of the current gradient, or a schedule.
      eps: added to the root, >= 0.
      eps_root: added under the root, >= 0.

    Returns:
      A transform with state ``ScaleBySimplifiedAdEMAMixState(t, m, n)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_simplified_ademamix(alpha=1.0)
      >>> tx.update(jnp.array([2.0, -0.5]), tx.init(jnp.zeros(2)))[0]
      Array([ 2., -2.], dtype=float32)

    Reference: Morwani, Vyas, Ba, Kakade, "Connections between Schedule-Free
    Optimizers, AdEMAMix, and Accelerated SGD Variants", 2025, arXiv:2502.02431.
    """
    owner = "scale_by_simplified_ademamix"
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    if not callable(alpha):
        check_range(owner, "alpha", alpha)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "eps_root", eps_root, 0)

    def init(params):
        check_float_leaves(owner, params, "params")
        return ScaleBySimplifiedAdEMAMixState(
            t=new_count(), m=moment_zeros(params), n=moment_zeros(params, real=True)
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ScaleBySimplifiedAdEMAMixState, updates, "m", "n")
        alpha_t = _value(alpha, state.t)
        t = increment(state.t)
        second = debiaser(b2, t)

        def step(g, m, n):
            cd = compute_dtype(g.dtype, m.dtype)
            g = g.astype(cd)
            m = moving_average(m, g, b1, weight=1)
            n = moving_average_sq(n, g, b2)
            return (m + alpha_t * g) / (jnp.sqrt(second(n) + eps_root) + eps), m, n

        new = jax.tree.map(step, updates, state.m, state.n)

        def pick(i):
            return jax.tree.map(lambda _, n: n[i], updates, new)

        return store(pick(0), updates), ScaleBySimplifiedAdEMAMixState(
            t=t, m=store(pick(1), state.m, t), n=store(pick(2), state.n, t, salt=1 << 20)
        )

    return init, update
