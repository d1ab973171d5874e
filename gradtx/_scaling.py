"""Scaling by constants and learning rates (where the sign flips)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._base import (EmptyState, GradientTransformation, ScheduleState, check_float_leaves,
                    check_learning_rate, check_range, check_state, increment, new_count, transform)
from ._typing import Schedule, ScalarOrSchedule


def _scaled(u, factor):
    """u * factor, computed in u's dtype so bf16 updates stay bf16."""
    return u * jnp.asarray(factor, dtype=u.dtype)


def scale(step_size: float) -> GradientTransformation:
    """Multiply the update by a constant: u_t = step_size * g_t.

    Args:
      step_size: the constant factor (any sign).

    Returns:
      A stateless transform.
    """
    check_range("scale", "step_size", step_size)

    def update(updates, state, params):
        check_float_leaves("scale", updates, "updates")
        return jax.tree.map(lambda u: _scaled(u, step_size), updates), state

    return transform("scale", lambda params: EmptyState(), update,
                     hyperparams={"step_size": step_size})


def scale_by_learning_rate(learning_rate: ScalarOrSchedule, *,
                           flip_sign: bool = True) -> GradientTransformation:
    """Descend: u_t = -lr(t) * g_t, with t = 0 at the first step.

    This is the only transform in gradtx that flips the sign; every other
    transform keeps the gradient's direction.

    Args:
      learning_rate: lr, a number >= 0 or a schedule ``step -> value``
        evaluated at t = 0, 1, 2, ...
      flip_sign: multiply by -lr (default) or by +lr.

    Returns:
      A transform whose state counts steps.
    """
    check_learning_rate("scale_by_learning_rate", learning_rate)
    sign = -1 if flip_sign else 1

    def init(params):
        check_float_leaves("scale_by_learning_rate", params, "params")
        return ScheduleState(count=new_count())

    def update(updates, state, params):
        check_state("scale_by_learning_rate", state, ScheduleState)
        check_float_leaves("scale_by_learning_rate", updates, "updates")
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        out = jax.tree.map(lambda u: _scaled(u, sign * lr), updates)
        return out, ScheduleState(count=increment(state.count))

    return transform("scale_by_learning_rate", init, update,
                     hyperparams={"learning_rate": learning_rate, "flip_sign": flip_sign})


def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    """Multiply the update by a schedule: u_t = s(t) * g_t, with t = 0 at the first step.

    Use it for step-dependent factors that are not a learning rate: Keras's
    Adam correction sqrt(1 - b2^(t+1)), or PyTorch's undamped first momentum
    step.  It keeps the gradient's direction for s(t) > 0; the sign flips in
    ``scale_by_learning_rate`` only.

    Args:
      step_size_fn: s, a function ``step -> factor`` evaluated at the step
        count t = 0, 1, 2, ... (an int32 scalar).

    Returns:
      A transform whose state counts steps.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> halve_after_first = gradtx.scale_by_schedule(lambda t: jnp.where(t == 0, 1.0, 0.5))
      >>> state = halve_after_first.init(jnp.zeros(2))
      >>> u, state = halve_after_first.update(jnp.array([2.0, 4.0]), state)
      >>> u, state = halve_after_first.update(jnp.array([2.0, 4.0]), state)
      >>> u
      Array([1., 2.], dtype=float32)
    """
    owner = "scale_by_schedule"
    if not callable(step_size_fn):
        raise TypeError(f"{owner}: step_size_fn must be a function step -> factor, "
                        f"got {step_size_fn!r}")

    def init(params):
        return ScheduleState(count=new_count())

    def update(updates, state, params):
        check_state(owner, state, ScheduleState)
        factor = step_size_fn(state.count)
        out = jax.tree.map(lambda u: _scaled(u, factor), updates)
        return out, ScheduleState(count=increment(state.count))

    return transform(owner, init, update, hyperparams={"step_size_fn": step_size_fn})
