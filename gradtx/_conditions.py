"""Conditions on a step: mask an optimizer on chosen steps, skip tests, and a constraint.

``conditionally_mask`` runs its inner transform only on steps a predicate
accepts (a zero update otherwise); ``conditionally_transform`` likewise,
passing the update through unchanged otherwise.  ``skip_not_finite`` and
``skip_large_updates`` are optax's predicates for ``optax.MultiSteps``'s
``should_skip_update_fn``.  ``keep_params_nonnegative`` shortens steps that
would take a parameter below zero.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import GradientTransformation, update_fn
from ._checks import check_params, check_state, check_transformation
from ._numerics import compute_dtype, cond, increment, new_count
from ._recipe import transform


def _conditional(owner, state_type, inner, should_transform_fn, forward_extra_args, rejected):
    """``(init, update, (inner,))`` of a transform that runs ``inner`` on the steps
    ``should_transform_fn`` accepts and returns ``rejected(updates)`` on the others,
    keeping ``inner``'s state; ``state_type`` has fields ``step`` and ``inner_state``."""
    check_transformation(owner, "inner", inner)
    if not callable(should_transform_fn):
        raise TypeError(
            f"{owner}: should_transform_fn must be a function (step, **extra) -> bool, "
            f"got {should_transform_fn!r}"
        )
    inner_update = update_fn(inner)

    def init(params):
        return state_type(step=new_count(), inner_state=inner.init(params))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, state_type)

        def run(_):
            out, inner_state = inner_update(updates, state.inner_state, params, **extra)
            out = jax.tree.map(lambda o, u: o.astype(u.dtype), out, updates)
            return out, jax.tree.map(lambda n, o: n.astype(o.dtype), inner_state, state.inner_state)

        def reject(_):
            return rejected(updates), state.inner_state

        keywords = extra if forward_extra_args else {}
        out, inner_state = cond(should_transform_fn(state.step, **keywords), run, reject, None)
        return out, state_type(step=increment(state.step), inner_state=inner_state)

    return init, update, (inner,)


class ConditionallyMaskState(NamedTuple):
    """step: calls so far (0 first); inner_state: the inner transform's state (optax's fields)."""

    step: jax.Array
    inner_state: Any


@transform(exclude=("inner",))
def conditionally_mask(inner, should_transform_fn, forward_extra_args: bool = False):
    """Run ``inner`` on steps the predicate accepts: u_t = T(g_t) if f(t) else 0.

    On a rejected step the update is zero and T's state is kept as it was;
    the step counter t (0 at the first call) advances either way.

    Args:
      inner: the transform T.
      should_transform_fn: f, ``(step, **extra) -> bool`` (traced under jit).
      forward_extra_args: pass ``update``'s extra keywords to f as well.

    Returns:
      A transform with state ``ConditionallyMaskState(step, inner_state)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.conditionally_mask(gradtx.sgd(1.0), lambda step: step % 2 == 1)
      >>> u, state = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
      >>> u, tx.update(jnp.array([2.0]), state)[0]
      (Array([0.], dtype=float32), Array([-2.], dtype=float32))
    """
    return _conditional(
        "conditionally_mask",
        ConditionallyMaskState,
        inner,
        should_transform_fn,
        forward_extra_args,
        rejected=lambda updates: jax.tree.map(jnp.zeros_like, updates),
    )


class ConditionallyTransformState(NamedTuple):
    """inner_state: the inner transform's state; step: calls so far, 0 first (optax's fields)."""

    inner_state: Any
    step: jax.Array


@transform(exclude=("inner",))
def conditionally_transform(inner, should_transform_fn, forward_extra_args: bool = False):
    """Run ``inner`` on steps the predicate accepts: u_t = T(g_t) if f(t) else g_t.

    On a rejected step the update passes through unchanged and T's state is
    kept as it was; the step counter t (0 at the first call) advances either
    way.  ``conditionally_mask`` returns a zero update instead.

    Args:
      inner: the transform T.
      should_transform_fn: f, ``(step, **extra) -> bool`` (traced under jit).
      forward_extra_args: pass ``update``'s extra keywords to f as well.

    Returns:
      A transform whose state is ``ConditionallyTransformState(inner_state, step)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.conditionally_transform(gradtx.scale(0.5), lambda step: step % 2 == 1)
      >>> state = tx.init(jnp.zeros(1))
      >>> u, state = tx.update(jnp.array([2.0]), state)   # step 0: passed through
      >>> u, tx.update(jnp.array([2.0]), state)[0]   # step 1: scaled
      (Array([2.], dtype=float32), Array([1.], dtype=float32))
    """
    return _conditional(
        "conditionally_transform",
        ConditionallyTransformState,
        inner,
        should_transform_fn,
        forward_extra_args,
        rejected=lambda updates: updates,
    )


def skip_not_finite(updates, gradient_step, params):
    """Whether to skip a step: True iff some entry of ``updates`` is NaN or infinite.

    optax's predicate for ``optax.MultiSteps(should_skip_update_fn=...)``.

    Returns:
      ``(should_skip, {"should_skip": ..., "num_not_finite": ...})``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> gradtx.skip_not_finite({"w": jnp.array([1.0, jnp.nan])}, 0, None)[0]
      Array(True, dtype=bool)
    """
    del gradient_step, params
    leaves = jax.tree.leaves(updates)
    counts = [jnp.sum(jnp.logical_not(jnp.isfinite(x))) for x in leaves]
    num = jnp.sum(jnp.stack(counts)) if counts else jnp.zeros((), jnp.int32)
    should_skip = num > 0
    return should_skip, {"should_skip": should_skip, "num_not_finite": num}


def skip_large_updates(updates, gradient_step, params, max_squared_norm):
    """Whether to skip a step: True iff ||updates||^2 (over every leaf) exceeds ``max_squared_norm``.

    A NaN norm also skips.  optax's predicate for ``optax.MultiSteps``; bind
    ``max_squared_norm`` with ``functools.partial``.

    Returns:
      ``(should_skip, {"should_skip": ..., "norm_squared": ...})``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> gradtx.skip_large_updates(jnp.array([3.0, 4.0]), 0, None, max_squared_norm=20.0)[0]
      Array(True, dtype=bool)
    """
    del gradient_step, params
    leaves = jax.tree.leaves(updates)
    sums = [jnp.sum(x.astype(compute_dtype(x.dtype)) ** 2) for x in leaves]
    with jax.numpy_dtype_promotion("standard"):
        norm_sq = jnp.sum(jnp.stack(sums)) if sums else jnp.zeros(())
    should_skip = jnp.logical_not(norm_sq < max_squared_norm)
    return should_skip, {"should_skip": should_skip, "norm_squared": norm_sq}


class NonNegativeParamsState(NamedTuple):
    """keep_params_nonnegative keeps no state (optax's name)."""


def keep_params_nonnegative() -> GradientTransformation:
    """Stop at zero: u_t = -p_t where p_t + u_t < 0, else u_t.

    Placed last in a recipe (after the learning rate), it keeps parameters
    that start non-negative non-negative.

    Returns:
      A stateless transform that needs params.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.keep_params_nonnegative()
      >>> p = jnp.ones(2)
      >>> tx.update(jnp.array([-2.0, -0.5]), tx.init(p), p)[0]
      Array([-1. , -0.5], dtype=float32)
    """
    owner = "keep_params_nonnegative"

    def update(updates, state, params=None, **extra):
        check_params(owner, params, updates)
        out = jax.tree.map(
            lambda p, u: jnp.where(p.astype(u.dtype) + u < 0, -p.astype(u.dtype), u),
            params,
            updates,
        )
        return out, state

    return GradientTransformation(lambda params: NonNegativeParamsState(), update, name=owner)
