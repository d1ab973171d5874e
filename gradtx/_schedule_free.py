"""Schedule-Free learning: a wrapper that replaces momentum and learning-rate decay.

``schedule_free(base, learning_rate, b1)`` keeps the base optimizer's
iterate z_t and returns, as the parameters to differentiate at, the
interpolation y_t of z_t with x_t, the running average of the z's.
``schedule_free_eval_params`` recovers x_t, the point to evaluate at.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import update_fn
from ._checks import (
    check_float_leaves,
    check_learning_rate,
    check_range,
    check_state,
    check_state_dtype,
    check_transformation,
    require_params,
)
from ._numerics import compute_dtype, increment
from ._recipe import transform
from ._typing import ScalarOrSchedule


class ScheduleFreeState(NamedTuple):
    """b1: the interpolation weight; weight_sum: sum of the averaging weights so far;
    step_count: t, from 1; max_lr: the largest learning rate so far;
    base_optimizer_state: the base optimizer's state; z: the base iterate z_t.

    The fields are optax's, so code that reads them keeps working.
    """

    b1: Any
    weight_sum: Any
    step_count: Any
    max_lr: Any
    base_optimizer_state: Any
    z: Any


def _lowest_float_dtype(params):
    """The narrowest floating dtype among the leaves (float32 if there are none)."""
    dtypes = [jnp.dtype(jnp.result_type(p)) for p in jax.tree.leaves(params)]
    dtypes = [d for d in dtypes if jnp.issubdtype(d, jnp.floating)]
    return min(dtypes, key=lambda d: d.itemsize, default=jnp.dtype(jnp.float32))


def _find_schedule_free_state(state):
    """The ScheduleFreeState inside ``state`` (it may sit inside a chain or a wrapper)."""
    if isinstance(state, ScheduleFreeState):
        return state
    if isinstance(state, (tuple, list)):
        for part in state:
            found = _find_schedule_free_state(part)
            if found is not None:
                return found
    return None


def schedule_free_eval_params(state, params):
    """The averaged point x_t at which to evaluate: x_t = (y_t - (1 - b1) z_t) / b1.

    Args:
      state: the state of ``schedule_free`` or of an optimizer built on it
        (``schedule_free_adamw``, ``schedule_free_sgd``); the
        ``ScheduleFreeState`` is looked up inside chains and wrappers.
      params: y_t, the parameters being trained.

    Returns:
      x_t, shaped like ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.schedule_free_sgd(0.5)
      >>> params = jnp.array([1.0])
      >>> updates, state = opt.update(jnp.array([1.0]), opt.init(params), params)
      >>> gradtx.schedule_free_eval_params(state, gradtx.apply_updates(params, updates))
      Array([0.5], dtype=float32)
    """
    found = _find_schedule_free_state(state)
    if found is None:
        raise ValueError(
            "schedule_free_eval_params: state holds no ScheduleFreeState; pass the "
            "state of schedule_free, schedule_free_adamw or schedule_free_sgd"
        )
    b1 = found.b1

    def average(y, z):
        cd = compute_dtype(y.dtype, z.dtype)
        c = b1.astype(cd)
        return ((y.astype(cd) - (1 - c) * z.astype(cd)) / c).astype(y.dtype)

    return jax.tree.map(average, params, found.z)


@transform(exclude=("base_optimizer",))
def schedule_free(
    base_optimizer, learning_rate: ScalarOrSchedule, b1=0.9, weight_lr_power=2.0, state_dtype=None
):
    """Schedule-Free: average the base optimizer's iterates and differentiate at an interpolation.

    z_{t+1} = z_t + base(g_t),                 (the base optimizer's step)
    c_t = w_t / (w_1 + ... + w_t),             w_t = max_{s<=t} lr_s ^ weight_lr_power,
    x_{t+1} = (1 - c_t) x_t + c_t z_{t+1},
    y_{t+1} = b1 x_{t+1} + (1 - b1) z_{t+1},

    with z_1 = x_1 = y_1 the initial parameters.  The parameters trained are
    y (the update is y_{t+1} - y_t); x_t is read back from y_t and z_t (see
    ``schedule_free_eval_params``), so only z is stored.  The base optimizer
    should have no momentum: b1 takes its place.  The learning rate is
    evaluated at t = 1, 2, ... (optax's count), and should be the base
    optimizer's own.

    Args:
      base_optimizer: the transform whose steps move z (it includes its
        learning rate).
      learning_rate: lr, a number >= 0 or a schedule, for the weights w_t.
      b1: the interpolation weight, in (0, 1].
      weight_lr_power: the power of the learning rate in w_t.
      state_dtype: the dtype z is stored in; None: each parameter's dtype.

    Returns:
      A transform with state ``ScheduleFreeState``; it needs ``params``.

    Reference: Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky, "The Road
    Less Scheduled", NeurIPS 2024, arXiv:2405.15682.
    """
    owner = "schedule_free"
    check_transformation(owner, "base_optimizer", base_optimizer)
    check_learning_rate(owner, learning_rate)
    check_range(owner, "b1", b1, 0, 1, low_open=True)
    check_range(owner, "weight_lr_power", weight_lr_power)
    state_dtype = check_state_dtype(owner, "state_dtype", state_dtype)
    base_update = update_fn(base_optimizer)

    def init(params):
        check_float_leaves(owner, params, "params")
        dtype = _lowest_float_dtype(params)
        z = jax.tree.map(lambda p: jnp.array(p, dtype=state_dtype or jnp.result_type(p)), params)
        return ScheduleFreeState(
            b1=jnp.asarray(b1, dtype),
            weight_sum=jnp.zeros((), dtype),
            step_count=jnp.ones((), jnp.int32),
            max_lr=jnp.zeros((), dtype),
            base_optimizer_state=base_optimizer.init(params),
            z=z,
        )

    def update(updates, state, params=None, **extra):
        check_state(owner, state, ScheduleFreeState)
        check_float_leaves(owner, updates, "updates")
        require_params(owner, params)
        dtype = state.max_lr.dtype
        lr = learning_rate(state.step_count) if callable(learning_rate) else learning_rate
        max_lr = jnp.maximum(state.max_lr, jnp.asarray(lr, dtype))
        weight = max_lr ** jnp.asarray(weight_lr_power, dtype)
        weight_sum = state.weight_sum + weight
        # 0 / 0 (a zero learning rate so far) averages nothing in; a NaN stays NaN.
        c = jnp.where(
            jnp.isnan(weight) | jnp.isnan(weight_sum),
            jnp.nan,
            jnp.nan_to_num(weight / weight_sum, nan=0.0, posinf=jnp.inf),
        )
        steps, base_state = base_update(updates, state.base_optimizer_state, params, **extra)

        def move(y, z_old, step):
            cd = compute_dtype(y.dtype, z_old.dtype, step.dtype)
            k, ck = jnp.asarray(b1, cd), c.astype(cd)
            z_new = (z_old.astype(cd) + step.astype(cd)).astype(z_old.dtype)
            x_old = (y.astype(cd) - (1 - k) * z_old.astype(cd)) / k
            x_new = (1 - ck) * x_old + ck * z_new.astype(cd)
            y_new = k * x_new + (1 - k) * z_new.astype(cd)
            return (y_new - y.astype(cd)).astype(y.dtype), z_new

        moved = jax.tree.map(move, params, state.z, steps)
        out = jax.tree.map(lambda _, pair: pair[0], params, moved)
        z = jax.tree.map(lambda _, pair: pair[1], params, moved)
        return out, ScheduleFreeState(
            b1=state.b1,
            weight_sum=weight_sum,
            step_count=increment(state.step_count),
            max_lr=max_lr,
            base_optimizer_state=base_state,
            z=z,
        )

    return init, update, (base_optimizer,)
