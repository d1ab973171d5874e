"""Weight decay added to the update."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._base import EmptyState, GradientTransformation, ScheduleState
from ._checks import (
    check_learning_rate,
    check_params,
    check_range,
    check_state,
    promote_integer_leaves,
)
from ._numerics import add, binds_directly, cast, increment, mul, new_count
from ._recipe import transform
from ._tree import check_same_structure, prune_mask, resolve_mask
from ._typing import MaskOrFn, ScalarOrSchedule


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0, mask: MaskOrFn | None = None
) -> GradientTransformation:
    """Add decayed weights: u_t = u_t + weight_decay * p_t.

    Placed after the preconditioner (as in ``adamw``) this is decoupled weight
    decay; placed before it, it is L2 regularisation of the loss.  The
    learning-rate step that follows multiplies it by the learning rate, as in
    Loshchilov & Hutter, PyTorch's AdamW and optax.

    Args:
      weight_decay: lambda, a number >= 0 or a schedule ``step -> value``.
      mask: which parameters decay: a pytree of bools shaped like the params,
        or a function ``params -> that pytree``; ``None`` decays all.
        Typical use excludes biases and norm scales.

    Returns:
      A transform that needs ``params`` in ``update``; its state is
      ``EmptyState()`` for a constant weight decay and ``ScheduleState(count)``
      for a schedule (as in optax).

    Reference: Loshchilov, Hutter, "Decoupled Weight Decay Regularization",
    ICLR 2019, arXiv:1711.05101.
    """
    owner = "add_decayed_weights"

    def decay(u, p, wd):
        factor = wd if binds_directly(u, wd) else jnp.asarray(wd, u.dtype)
        return add(u, mul(cast(p, u.dtype), factor))

    return decayed_weights(owner, weight_decay, mask, decay)


def _init_for(value):
    """``init`` of a transform with a number or schedule ``value``: a step count for a
    schedule, no state for a number (as in optax)."""
    scheduled = callable(value)

    def init(params):
        return ScheduleState(count=new_count()) if scheduled else EmptyState()

    return init


def _step_value(owner, value, updates, state, params):
    """Check the state and params of an update; ``value`` at this step and the next state."""
    scheduled = callable(value)
    check_state(owner, state, ScheduleState if scheduled else EmptyState)
    check_params(owner, params, updates)
    if scheduled:
        return value(state.count), ScheduleState(count=increment(state.count))
    return value, state


def decayed_weights(owner, weight_decay, mask, decay) -> GradientTransformation:
    """A transform adding decay(u, p, wd) leaf by leaf where ``mask`` selects, u elsewhere.

    Shared by ``add_decayed_weights`` and its cautious variant: it checks the
    arguments, counts steps for a scheduled ``weight_decay`` (no state for a
    constant, as in optax), resolves the mask and checks the trees.
    """
    check_learning_rate(owner, weight_decay, name="weight_decay")

    def update(updates, state, params=None, **extra):
        wd, state = _step_value(owner, weight_decay, updates, state, params)
        keep = prune_mask(resolve_mask(mask, params), params)
        if keep is None:
            keep = jax.tree.map(lambda _: True, params)
        check_same_structure(
            owner,
            params,
            keep,
            "params",
            "mask",
            hint="the mask must be a pytree of bools shaped like the params",
        )

        def one(u, p, k):
            if isinstance(k, bool) and not k:
                return u
            u = promote_integer_leaves(u)  # optax's g + wd * p is a float
            added = decay(u, p, wd)
            return added if isinstance(k, bool) else jnp.where(k, added, u)

        return jax.tree.map(one, updates, params, keep), state

    return GradientTransformation(
        _init_for(weight_decay),
        update,
        name=owner,
        hyperparams={"weight_decay": weight_decay, "mask": mask},
    )


@transform
def add_scaled_params(scale):
    """Add a multiple of the parameters, of either sign: u_t = u_t + scale * p_t.

    ``add_decayed_weights`` with a signed factor: Fromage ends its step with
    scale = 1 / sqrt(1 + lr^2) - 1 < 0, which makes p_t + u_t the shrunken
    point (p_t - lr * d_t) / sqrt(1 + lr^2) when the learning-rate step before
    it scales by lr / sqrt(1 + lr^2).  (optax passes that negative value to
    ``add_decayed_weights``; gradtx keeps weight decay >= 0.)

    Args:
      scale: the factor, a number or a schedule ``step -> value``.

    Returns:
      A transform that needs params; ``EmptyState()`` for a number,
      ``ScheduleState(count)`` for a schedule.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.add_scaled_params(-0.5)
      >>> p = jnp.array([2.0])
      >>> tx.update(jnp.array([1.0]), tx.init(p), p)[0]
      Array([0.], dtype=float32)
    """
    owner = "add_scaled_params"
    if not callable(scale):
        check_range(owner, "scale", scale)

    def update(updates, state, params=None, **extra):
        factor, state = _step_value(owner, scale, updates, state, params)
        return jax.tree.map(
            lambda u, p: u + jnp.asarray(factor, u.dtype) * p.astype(u.dtype), updates, params
        ), state

    return _init_for(scale), update
