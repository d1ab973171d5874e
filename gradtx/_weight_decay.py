"""Weight decay added to the update."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._base import (GradientTransformation, ScheduleState, check_learning_rate,
                    check_same_structure, check_state, increment, new_count, resolve_mask,
                    transform)
from ._typing import MaskOrFn, ScalarOrSchedule


def add_decayed_weights(weight_decay: ScalarOrSchedule = 0.0,
                        mask: MaskOrFn | None = None) -> GradientTransformation:
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
      A transform with state ``ScheduleState(count)`` that needs ``params``
      in ``update``.

    Reference: Loshchilov, Hutter, "Decoupled Weight Decay Regularization",
    ICLR 2019, arXiv:1711.05101.
    """
    owner = "add_decayed_weights"
    check_learning_rate(owner, weight_decay, name="weight_decay")

    def init(params):
        return ScheduleState(count=new_count())

    def update(updates, state, params):
        check_state(owner, state, ScheduleState)
        if params is None:
            raise ValueError(f"{owner}: update needs params (call update(updates, state, params))")
        check_same_structure(owner, params, updates, "params", "updates")
        wd = weight_decay(state.count) if callable(weight_decay) else weight_decay
        state = ScheduleState(count=increment(state.count))
        keep = resolve_mask(mask, params)
        if keep is None:
            keep = jax.tree.map(lambda _: True, params)
        check_same_structure(owner, params, keep, "params", "mask",
                             hint="the mask must be a pytree of bools shaped like the params")

        def decay(u, p, k):
            if isinstance(k, bool) and not k:
                return u
            added = (u + jnp.asarray(wd, u.dtype) * p.astype(u.dtype))
            return added if isinstance(k, bool) else jnp.where(k, added, u)

        return jax.tree.map(decay, updates, params, keep), state

    return transform(owner, init, update,
                     hyperparams={"weight_decay": weight_decay, "mask": mask})
