"""Gradient spikes: SPAM's and Stable-SPAM's clipping, norm scaling and momentum reset.

``clip_spikes`` clips entries whose square exceeds a multiple of their own
running second moment (SPAM); ``clip_by_running_max`` clips entries above a
running average of each leaf's largest entry and ``scale_by_norm_moments``
rescales each leaf to a running average of its norm (Stable-SPAM's AdaClip
and AdaGN); ``reset_moments`` wraps a transform and zeroes its moments every
k steps, with SPAM's cosine warm-up of the output after each reset.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import update_fn
from ._checks import check_float_leaves, check_range, check_state, check_transformation
from ._moments import moving_average, square_zeros, store
from ._numerics import abs_sq, compute_dtype, increment, new_count, real_compute_dtype
from ._recipe import transform
from ._tree import check_same_structure
from ._typing import TransformLike


def _check_steps(owner, name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")


def _check_leaf_state(owner, state, state_type, field, updates):
    """Check an update's state type, its float updates, and the state's per-leaf
    tree ``field`` against the updates' structure."""
    check_state(owner, state, state_type)
    check_float_leaves(owner, updates, "gradient")
    check_same_structure(owner, getattr(state, field), updates, f"the state's {field}", "updates")


class ClipSpikesState(NamedTuple):
    """count: steps taken; nu: the running second moment of the clipped gradient."""

    count: jax.Array
    nu: Any


@transform
def clip_spikes(threshold=5000.0, b2=0.999, warmup_steps: int = 20, reset_every: int | None = None):
    """SPAM's spike clipping: u = sign(g) * sqrt(theta * v_{t-1}) where g^2 > theta * v_{t-1}, else g.

    v_t = b2 * v_{t-1} + (1 - b2) * u_t^2 is the second moment of the clipped
    gradient (Adam's v under the same b2).  The clip acts at step t (from 1)
    when t >= warmup_steps and, with ``reset_every`` = T, when
    t mod T >= warmup_steps; every T steps (t mod T = 0) v restarts from 0,
    as SPAM's momentum reset restarts Adam's.

    Args:
      threshold: theta, >= 0; 0 turns the clip off.
      b2: the decay of v, in [0, 1).
      warmup_steps: steps of statistics before the clip acts (SPAM's
        ``grad_accu_steps``), >= 0.
      reset_every: T, the period of the restart of v, or None.

    Returns:
      A transform with state ``ClipSpikesState(count, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.clip_spikes(threshold=4.0, b2=0.5, warmup_steps=2)
      >>> _, state = tx.update(jnp.array([1.0]), tx.init(jnp.zeros(1)))   # v = 0.5
      >>> tx.update(jnp.array([-10.0]), state)[0]   # -sqrt(4 * 0.5)
      Array([-1.4142135], dtype=float32)

    Reference: Huang et al., "SPAM: Spike-Aware Adam with Momentum Reset for
    Stable LLM Training", ICLR 2025, arXiv:2501.06842.
    """
    owner = "clip_spikes"
    check_range(owner, "threshold", threshold, 0)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    _check_steps(owner, "warmup_steps", warmup_steps, 0)
    if reset_every is not None:
        _check_steps(owner, "reset_every", reset_every, 1)

    def init(params):
        check_float_leaves(owner, params, "params")
        return ClipSpikesState(count=new_count(), nu=square_zeros(params))

    def clip_one(g, v, active, reset):
        cd = compute_dtype(g.dtype)
        v_prev = jnp.where(reset, jnp.zeros_like(v), v).astype(real_compute_dtype(cd))
        limit = threshold * v_prev
        g = g.astype(cd)
        spike = active & (abs_sq(g) > limit)
        u = jnp.where(spike, jnp.sign(g) * jnp.sqrt(limit).astype(cd), g)
        return u, moving_average(v_prev, abs_sq(u), b2)

    def update(updates, state, params=None, **extra):
        _check_leaf_state(owner, state, ClipSpikesState, "nu", updates)
        count = increment(state.count)
        active = (count >= warmup_steps) & (threshold > 0)
        reset = jnp.array(False)
        if reset_every is not None:
            active = active & (count % reset_every >= warmup_steps)
            reset = count % reset_every == 0
        leaves, treedef = jax.tree.flatten(updates)
        pairs = [
            clip_one(g, v, active, reset) for g, v in zip(leaves, treedef.flatten_up_to(state.nu))
        ]
        out = treedef.unflatten([u.astype(g.dtype) for (u, _), g in zip(pairs, leaves)])
        nu = store(treedef.unflatten([v for _, v in pairs]), state.nu, count, salt=1)
        return out, ClipSpikesState(count=count, nu=nu)

    return init, update


def _leaf_scalars(params):
    """One scalar per leaf, in the leaf's real dtype and at least float32 (a scalar costs
    nothing, and bfloat16 would round a running average to a standstill)."""
    return jax.tree.map(
        lambda z: jnp.zeros((), jnp.float32 if z.dtype.itemsize < 4 else z.dtype),
        square_zeros(params),
    )


class ClipByRunningMaxState(NamedTuple):
    """count: steps taken; m_max: per leaf, the running average of max |g|."""

    count: jax.Array
    m_max: Any


@transform
def clip_by_running_max(theta=0.999):
    """Stable-SPAM's AdaClip: u = g * M_hat_t / max|g| where |g| > M_hat_t, else g.

    Per leaf, M_t = theta * M_{t-1} + (1 - theta) * max_i |g_i| and
    M_hat_t = M_t / (1 - theta^t): entries larger than the running average
    of the leaf's largest entry are scaled down by the same factor.

    Args:
      theta: the decay of M, in [0, 1).

    Returns:
      A transform with state ``ClipByRunningMaxState(count, m_max)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.clip_by_running_max(theta=0.5)
      >>> _, state = tx.update(jnp.array([1.0, 0.5]), tx.init(jnp.zeros(2)))  # M = 0.5
      >>> tx.update(jnp.array([4.0, 0.5]), state)[0]   # M_hat = 2.25 / 0.75 = 3
      Array([3. , 0.5], dtype=float32)

    Reference: Huang et al., "Stable-SPAM: How to Train in 4-Bit More Stably
    than 16-Bit Adam", 2025, arXiv:2502.17055.
    """
    owner = "clip_by_running_max"
    check_range(owner, "theta", theta, 0, 1, high_open=True)

    def init(params):
        check_float_leaves(owner, params, "params")
        return ClipByRunningMaxState(count=new_count(), m_max=_leaf_scalars(params))

    def clip_one(g, m, count):
        cd = compute_dtype(g.dtype)
        real = real_compute_dtype(cd)
        g = g.astype(cd)
        size = jnp.abs(g).astype(real)
        largest = jnp.max(size) if g.size else jnp.zeros((), real)
        new_m = moving_average(m.astype(real), largest, theta)
        m_hat = new_m / (1 - jnp.asarray(theta, real) ** count.astype(real))
        ratio = m_hat / jnp.where(largest > 0, largest, 1)
        return jnp.where(size > m_hat, g * ratio.astype(cd), g), new_m.astype(m.dtype)

    def update(updates, state, params=None, **extra):
        _check_leaf_state(owner, state, ClipByRunningMaxState, "m_max", updates)
        count = increment(state.count)
        leaves, treedef = jax.tree.flatten(updates)
        pairs = [clip_one(g, m, count) for g, m in zip(leaves, treedef.flatten_up_to(state.m_max))]
        out = treedef.unflatten([u.astype(g.dtype) for (u, _), g in zip(pairs, leaves)])
        return out, ClipByRunningMaxState(count, treedef.unflatten([m for _, m in pairs]))

    return init, update


class ScaleByNormMomentsState(NamedTuple):
    """count: steps taken; m_norm, v_norm: per leaf, the running averages of ||g|| and ||g||^2."""

    count: jax.Array
    m_norm: Any
    v_norm: Any


@transform
def scale_by_norm_moments(gamma1=0.7, gamma2=0.9, eps=1e-8):
    """Stable-SPAM's AdaGN: u = g / ||g|| * m_hat_t / (sqrt(v_hat_t) + eps), per leaf.

    m_t = gamma1 * m_{t-1} + (1 - gamma1) * ||g||, m_hat_t = m_t / (1 - gamma1^t),
    v_t = gamma2 * v_{t-1} + (1 - gamma2) * ||g||^2, v_hat_t = v_t / (1 - gamma2^t),
    ||.|| the leaf's Euclidean norm: the leaf keeps its direction and takes the
    running (debiased) ratio of its norm's first and second moments as its
    norm.  A leaf whose gradient is all zero leaves m and v as they were.

    Args:
      gamma1: the decay of m, in [0, 1).
      gamma2: the decay of v, in [0, 1).
      eps: added to sqrt(v_hat_t), >= 0.

    Returns:
      A transform with state ``ScaleByNormMomentsState(count, m_norm, v_norm)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_norm_moments(gamma1=0.0, gamma2=0.0, eps=0.0)
      >>> tx.update(jnp.array([3.0, 4.0]), tx.init(jnp.zeros(2)))[0]   # norm 5 -> 1
      Array([0.6, 0.8], dtype=float32)

    Reference: Huang et al., "Stable-SPAM: How to Train in 4-Bit More Stably
    than 16-Bit Adam", 2025, arXiv:2502.17055.
    """
    owner = "scale_by_norm_moments"
    check_range(owner, "gamma1", gamma1, 0, 1, high_open=True)
    check_range(owner, "gamma2", gamma2, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)

    def init(params):
        check_float_leaves(owner, params, "params")
        zeros = _leaf_scalars(params)
        return ScaleByNormMomentsState(count=new_count(), m_norm=zeros, v_norm=zeros)

    def scale_one(g, m, v, count):
        cd = compute_dtype(g.dtype)
        real = real_compute_dtype(cd)
        g = g.astype(cd)
        norm = jnp.sqrt(jnp.sum(abs_sq(g)).astype(real))
        active = norm > 0
        new_m = jnp.where(active, moving_average(m.astype(real), norm, gamma1), m.astype(real))
        new_v = jnp.where(
            active, moving_average(v.astype(real), norm * norm, gamma2), v.astype(real)
        )
        t = count.astype(real)
        m_hat = new_m / (1 - jnp.asarray(gamma1, real) ** t)
        v_hat = new_v / (1 - jnp.asarray(gamma2, real) ** t)
        target = m_hat / (jnp.sqrt(v_hat) + eps)
        u = jnp.where(active, g / jnp.where(active, norm, 1).astype(cd) * target.astype(cd), g)
        return u, new_m.astype(m.dtype), new_v.astype(v.dtype)

    def update(updates, state, params=None, **extra):
        _check_leaf_state(owner, state, ScaleByNormMomentsState, "m_norm", updates)
        count = increment(state.count)
        leaves, treedef = jax.tree.flatten(updates)
        outs = [
            scale_one(g, m, v, count)
            for g, m, v in zip(
                leaves, treedef.flatten_up_to(state.m_norm), treedef.flatten_up_to(state.v_norm)
            )
        ]
        out = treedef.unflatten([u.astype(g.dtype) for (u, _, _), g in zip(outs, leaves)])
        m_norm = treedef.unflatten([m for _, m, _ in outs])
        v_norm = treedef.unflatten([v for _, _, v in outs])
        return out, ScaleByNormMomentsState(count, m_norm, v_norm)

    return init, update


class ResetMomentsState(NamedTuple):
    """count: steps taken; inner_state: the wrapped transform's state."""

    count: jax.Array
    inner_state: Any


def reset_warmup_factor(count, every, warmup_steps, dtype):
    """SPAM's warm-up after a reset at step t (from 1), k = t mod every:
    1 - 0.99 * (1 + cos(pi * (k + 1) / (warmup_steps + 1))) / 2 for t >= every and
    k < warmup_steps, else 1."""
    k = count % every
    angle = math.pi * (k + 1).astype(dtype) / (warmup_steps + 1)
    ramp = 1 - 0.99 * (1 + jnp.cos(angle)) / 2
    return jnp.where((count >= every) & (k < warmup_steps), ramp, jnp.ones((), dtype))


@transform
def reset_moments(
    inner: TransformLike, every: int, warmup_steps: int = 0, reset_count: bool = False
):
    """Momentum reset: every ``every`` steps, T's moments restart from zero.

    At step t (from 1) with t mod every = 0, before T's update, the
    floating-point leaves of T's state (its moments) are set to 0; its integer
    leaves (step counters, so Adam's bias correction) run on, or restart too
    with ``reset_count`` (then T starts afresh, for a T whose ``init`` is all
    zeros).  After each reset the output is scaled, for ``warmup_steps``
    steps, by SPAM's cosine warm-up, 1 - 0.99 * (1 + cos(pi (k + 1) / (W + 1))) / 2
    at k = t mod every < W steps after the reset.

    Args:
      inner: T, the transform whose moments restart.
      every: the period of the reset, an int >= 1.
      warmup_steps: W, an int >= 0; 0 leaves the output unscaled.
      reset_count: restart T's integer state (counters) as well.

    Returns:
      A transform with state ``ResetMomentsState(count, inner_state)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.reset_moments(gradtx.scale_by_momentum(0.5), every=2)
      >>> u, state = tx.update(jnp.array([1.0]), tx.init(jnp.zeros(1)))
      >>> tx.update(jnp.array([1.0]), state)[0]   # the momentum restarts: 1, not 1.5
      Array([1.], dtype=float32)

    Reference: Huang et al., "SPAM: Spike-Aware Adam with Momentum Reset for
    Stable LLM Training", ICLR 2025, arXiv:2501.06842.
    """
    owner = "reset_moments"
    check_transformation(owner, "inner", inner)
    _check_steps(owner, "every", every, 1)
    _check_steps(owner, "warmup_steps", warmup_steps, 0)
    inner_update = update_fn(inner)

    def init(params):
        return ResetMomentsState(count=new_count(), inner_state=inner.init(params))

    def zeroed(x, reset):
        if not (reset_count or jnp.issubdtype(x.dtype, jnp.inexact)):
            return x
        return jnp.where(reset, jnp.zeros_like(x), x)

    def update(updates, state, params=None, **extra):
        check_state(owner, state, ResetMomentsState)
        count = increment(state.count)
        reset = count % every == 0
        inner_state = jax.tree.map(lambda x: zeroed(x, reset), state.inner_state)
        out, inner_state = inner_update(updates, inner_state, params, **extra)
        if warmup_steps:

            def warm(u):
                cd = compute_dtype(u.dtype)
                factor = reset_warmup_factor(count, every, warmup_steps, real_compute_dtype(cd))
                return (u.astype(cd) * factor.astype(cd)).astype(u.dtype)

            out = jax.tree.map(warm, out)
        return out, ResetMomentsState(count=count, inner_state=inner_state)

    return init, update, (inner,)
