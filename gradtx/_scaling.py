"""Scaling by constants and learning rates (where the sign flips)."""

from __future__ import annotations

from typing import cast

import jax
import jax.numpy as jnp

from ._base import EmptyState, GradientTransformation, ScheduleState
from ._checks import (
    check_float_leaves,
    check_learning_rate,
    check_range,
    check_state,
    promote_integer_leaves,
)
from ._numerics import binds_directly, increment, is_traced, mul, new_count
from ._recipe import transform
from ._typing import ScalarOrSchedule, Schedule


def identity() -> GradientTransformation:
    """The transform that returns its input unchanged: u_t = g_t.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.identity()
      >>> tx.update(jnp.array([1.0, -2.0]), tx.init(None))[0]
      Array([ 1., -2.], dtype=float32)
    """

    def update(updates, state, params=None, **extra):
        return updates, state

    return GradientTransformation(lambda params: EmptyState(), update, name="identity")


def _scaled(u, factor):
    """u * factor, computed in u's dtype so bf16 updates stay bf16."""
    if binds_directly(u, factor):
        return mul(u, factor)
    return u * jnp.asarray(factor, dtype=u.dtype)


@transform
def scale(step_size: float):
    """Multiply the update by a constant: u_t = step_size * g_t.

    An integer leaf is scaled in JAX's default float dtype, as optax's
    ``step_size * g`` promotes it.

    Args:
      step_size: the constant factor (any sign).

    Returns:
      A stateless transform.
    """
    check_range("scale", "step_size", step_size)

    def update(updates, state, params=None, **extra):
        updates = promote_integer_leaves(updates)
        return jax.tree.map(lambda u: _scaled(u, step_size), updates), state

    return lambda params: EmptyState(), update


@transform
def scale_by_learning_rate(learning_rate: ScalarOrSchedule, *, flip_sign: bool = True):
    """Descend: u_t = -lr(t) * g_t, with t = 0 at the first step.

    This is where a recipe's sign flips; the transforms before it keep the
    gradient's direction.  The exceptions follow optax and say so in their
    docstrings: ``adafactor`` applies its learning rate unflipped before the
    parameter scale and weight decay and flips at the end with
    ``scale(-1.0)``; the parameter-free transforms (``scale_by_prodigy``,
    ``scale_by_dog``, ...) and MoMo's return the step with its sign, since
    their learning rate enters the step-size estimate.  As in optax, a constant
    learning rate keeps no state and a schedule keeps a step count;
    ``learning_rate=None`` is the identity.  With a constant learning rate an
    integer leaf is scaled in JAX's default float dtype, as in optax; a
    schedule refuses integer leaves (optax casts the scaled update back to
    the integer dtype, which truncates it).

    Args:
      learning_rate: lr, a number >= 0, a schedule ``step -> value``
        evaluated at t = 0, 1, 2, ..., or None (no scaling).
      flip_sign: multiply by -lr (default) or by +lr.

    Returns:
      A stateless transform for a constant, one with state
      ``ScheduleState(count)`` for a schedule.
    """
    owner = "scale_by_learning_rate"
    if learning_rate is None:
        return identity()
    check_learning_rate(owner, learning_rate)
    sign = -1 if flip_sign else 1
    scheduled = callable(learning_rate)
    # A constant's signed step is made once, here: update closes over -lr,
    # which equinox.internal.closure_to_pytree exposes as a leaf, as optax's.
    step = None if scheduled else sign * cast(float, learning_rate)

    def init(params):
        if scheduled:
            check_float_leaves(owner, params, "params")
        return ScheduleState(count=new_count()) if scheduled else EmptyState()

    schedule = learning_rate if callable(learning_rate) else None

    def update(updates, state, params=None, **extra):
        check_state(owner, state, ScheduleState if scheduled else EmptyState)
        if schedule is None:
            updates = promote_integer_leaves(updates)
            return jax.tree.map(lambda u: _scaled(u, step), updates), state
        check_float_leaves(owner, updates, "updates")
        lr = schedule(state.count)
        out = jax.tree.map(lambda u: _scaled(u, sign * lr), updates)
        return out, ScheduleState(count=increment(state.count))

    return init, update


@transform
def scale_by_schedule(step_size_fn: Schedule):
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
        raise TypeError(
            f"{owner}: step_size_fn must be a function step -> factor, got {step_size_fn!r}"
        )

    def init(params):
        return ScheduleState(count=new_count())

    def update(updates, state, params=None, **extra):
        check_state(owner, state, ScheduleState)
        factor = step_size_fn(state.count)
        out = jax.tree.map(lambda u: _scaled(u, factor), updates)
        return out, ScheduleState(count=increment(state.count))

    return init, update


@jax.custom_vjp
def _scale_backward(inputs, scale):
    return inputs


def _scale_backward_fwd(inputs, scale):
    return inputs, scale


def _scale_backward_bwd(scale, cotangents):
    return jax.tree.map(lambda g: g * jnp.asarray(scale).astype(g.dtype), cotangents), None


_scale_backward.defvjp(_scale_backward_fwd, _scale_backward_bwd)


def scale_gradient(inputs, scale):
    """Scale the gradient that flows back through ``inputs``: y = x forward, dL/dx = scale * dL/dy.

    Not a transform: a function to call inside the loss, on activations or
    parameters, whose value it leaves unchanged.  optax's ``scale_gradient``:
    a scale of 1 returns ``inputs`` itself and a scale of 0 is
    ``jax.lax.stop_gradient``.

    Args:
      inputs: any pytree of arrays.
      scale: the factor applied to the gradient on the backward pass (a
        number or a traced scalar).

    Returns:
      ``inputs``, with the backward pass scaled.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx
      >>> f = lambda x: jnp.sum(gradtx.scale_gradient(x, 0.5) ** 2)
      >>> jax.grad(f)(jnp.array([1.0, 2.0]))   # 0.5 * 2x
      Array([1., 2.], dtype=float32)
    """
    if not is_traced(scale) and jnp.shape(scale) == ():
        if float(scale) == 1.0:
            return inputs
        if float(scale) == 0.0:
            return jax.lax.stop_gradient(inputs)
    return _scale_backward(inputs, scale)
