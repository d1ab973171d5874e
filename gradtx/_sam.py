"""Sharpness-Aware Minimization: ascend to a nearby worst point, descend with its gradient."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import EmptyState, GradientTransformation, update_fn
from ._checks import check_float_leaves, check_state, check_transformation, require_params
from ._numerics import abs_sq, compute_dtype
from ._recipe import transform
from ._update import apply_updates


def normalize():
    """Divide by the global norm: u_t = g_t / ||g_t||, the norm over every leaf.

    SAM's ascent direction.  A zero gradient gives NaN, as in optax.

    Returns:
      A stateless transform.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.normalize()
      >>> tx.update({"a": jnp.array([3.0]), "b": jnp.array([4.0])}, tx.init(None))[0]["b"]
      Array([0.8], dtype=float32)
    """
    owner = "normalize"

    def update(updates, state, params=None, **extra):
        check_float_leaves(owner, updates, "updates")
        leaves = jax.tree.leaves(updates)
        dtype = compute_dtype(*[u.dtype for u in leaves]) if leaves else jnp.float32
        real = jnp.finfo(dtype).dtype
        norm = jnp.sqrt(
            sum(
                (jnp.sum(abs_sq(u.astype(dtype))).astype(real) for u in leaves), jnp.zeros((), real)
            )
        )
        return jax.tree.map(lambda u: (u.astype(dtype) / norm).astype(u.dtype), updates), state

    return GradientTransformation(lambda params: EmptyState(), update, name=owner)


class SAMState(NamedTuple):
    """steps_since_sync: the position in the cycle; opt_state, adv_state: the two optimizers'
    states; cache: the outer parameters (None in opaque mode).  (optax's fields.)"""

    steps_since_sync: jax.Array
    opt_state: Any
    adv_state: Any
    cache: Any


@transform(exclude=("optimizer", "adv_optimizer"))
def sam(
    optimizer,
    adv_optimizer,
    sync_period=2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name=None,
):
    """SAM: take sync_period - 1 ascent steps from x, then descend from x with the last gradient.

    y_0 = x,   y_{i+1} = y_i - adv_optimizer(grad f(y_i))   (an ascent: the
    adversary is a descent optimizer whose step is subtracted, typically
    ``chain(normalize(), sgd(rho))`` for the radius rho),
    x <- x + optimizer(grad f(y_{sync_period - 1})).

    In the default (transparent) mode each call of ``update`` is one of the
    sync_period steps, and the parameters it returns are the y_i in turn
    and, at the end of the cycle, the new x.  With ``opaque_mode`` one call
    does the whole cycle, computing the ascent gradients with the
    ``grad_fn(params, i)`` passed to ``update``.

    Args:
      optimizer: the outer (descent) optimizer.
      adv_optimizer: the adversarial (ascent) optimizer; its update is
        subtracted.
      sync_period: steps per cycle, >= 1.
      reset_state: start the adversarial state afresh each cycle.
      opaque_mode: do the whole cycle in one call (needs ``grad_fn``).
      batch_axis_name: average the ascent gradients over this mapped axis
        (opaque mode).

    Returns:
      A transform with state ``SAMState``; it needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.sam(gradtx.sgd(0.1), gradtx.sgd(0.05))
      >>> params = jnp.array([1.0])
      >>> updates, state = opt.update(jnp.array([2.0]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)   # the ascent point
      Array([1.1], dtype=float32)

    Reference: Foret, Kleiner, Mobahi, Neyshabur, "Sharpness-Aware
    Minimization for Efficiently Improving Generalization", ICLR 2021,
    arXiv:2010.01412.
    """
    owner = "sam"
    check_transformation(owner, "optimizer", optimizer)
    check_transformation(owner, "adv_optimizer", adv_optimizer)
    if not isinstance(sync_period, int) or sync_period < 1:
        raise ValueError(f"{owner}: sync_period must be an integer >= 1, got {sync_period!r}")
    outer_update, adv_update = update_fn(optimizer), update_fn(adv_optimizer)

    def init(params):
        check_float_leaves(owner, params, "params")
        return SAMState(
            steps_since_sync=jnp.zeros((), jnp.int32),
            opt_state=optimizer.init(params),
            adv_state=adv_optimizer.init(params),
            cache=None if opaque_mode else jax.tree.map(jnp.asarray, params),
        )

    def pick(cond, if_true, if_false):
        return jax.tree.map(lambda a, b: jnp.where(cond, a, b), if_true, if_false)

    def negate(tree):
        return jax.tree.map(lambda x: -x, tree)

    def transparent(updates, state, params=None, **extra):
        check_state(owner, state, SAMState)
        check_float_leaves(owner, updates, "updates")
        require_params(owner, params)
        first = state.steps_since_sync == 0
        last = state.steps_since_sync == sync_period - 1
        adv_updates, adv_state = adv_update(updates, state.adv_state, params)
        adv_updates = negate(adv_updates)
        opt_updates, opt_state = outer_update(updates, state.opt_state, state.cache)
        # The outer step starts from the cached x, not from the ascent point y.
        opt_updates = jax.tree.map(
            lambda c, p, u: (c - p + u).astype(p.dtype), state.cache, params, opt_updates
        )
        cache = pick(first, params, state.cache)
        out = pick(last, opt_updates, adv_updates)
        adv_state = pick(
            last, adv_optimizer.init(params) if reset_state else state.adv_state, adv_state
        )
        opt_state = pick(last, opt_state, state.opt_state)
        return out, SAMState(
            steps_since_sync=(state.steps_since_sync + 1) % sync_period,
            opt_state=opt_state,
            adv_state=adv_state,
            cache=cache,
        )

    def opaque(updates, state, params=None, *, grad_fn=None, **extra):
        check_state(owner, state, SAMState)
        check_float_leaves(owner, updates, "updates")
        if grad_fn is None:
            raise ValueError(
                f"{owner}: opaque_mode=True needs grad_fn(params, i) passed to "
                f"update (update(updates, state, params, grad_fn=...))"
            )
        adv_params, adv_grads, adv_state = params, updates, state.adv_state
        for i in range(sync_period - 1):
            adv_steps, adv_state = adv_update(adv_grads, adv_state, adv_params)
            adv_params = apply_updates(adv_params, negate(adv_steps))
            adv_grads = grad_fn(adv_params, i)
            if batch_axis_name is not None:
                adv_grads = jax.lax.pmean(adv_grads, axis_name=batch_axis_name)
        if reset_state:
            adv_state = adv_optimizer.init(params)
        out, opt_state = outer_update(adv_grads, state.opt_state, params)
        return out, SAMState(
            steps_since_sync=jnp.zeros((), jnp.int32),
            opt_state=opt_state,
            adv_state=adv_state,
            cache=None,
        )

    return init, (opaque if opaque_mode else transparent), (optimizer, adv_optimizer)
