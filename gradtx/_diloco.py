"""DiLoCo: an inner optimizer on each worker, an outer optimizer on the averaged pseudo-gradient.

Every worker runs the inner optimizer on its own data; every H steps the
workers average their pseudo-gradients, Delta = theta_outer - theta_worker
(with ``jax.lax.pmean`` over a named axis), an outer optimizer moves the
shared outer parameters by that average, and every worker restarts from
them.  With one worker (no axis) this is SNOO: Lookahead whose slow step is
an optimizer of its own (``gradtx.snoo``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._averaging import _check_params, _copy_wide
from ._base import update_fn
from ._checks import check_float_leaves, check_state, check_transformation
from ._numerics import cond, new_count
from ._recipe import transform
from ._typing import TransformLike
from ._wrappers import _like, check_int


class DilocoState(NamedTuple):
    """count: inner steps since the last synchronisation (0 .. H-1);
    outer_params: theta_outer, the parameters of the last synchronisation, in
    at least float32; outer_state: the outer optimizer's state;
    inner_state: the inner optimizer's state (this worker's own)."""

    count: jax.Array
    outer_params: Any
    outer_state: Any
    inner_state: Any


def _check_axis_bound(owner: str, axis_name) -> None:
    try:
        jax.lax.axis_size(axis_name)
    except NameError as error:
        raise NameError(
            f"{owner}: axis_name={axis_name!r} is not bound here; call update inside "
            f"jax.shard_map over a mesh with that axis, or jax.vmap/jax.pmap with "
            f"axis_name={axis_name!r} (or pass axis_name=None for one worker)"
        ) from error


@transform
def diloco(
    inner: TransformLike,
    outer: TransformLike,
    sync_period: int,
    axis_name: Any = None,
):
    """DiLoCo: H inner steps per worker, then an outer step on the averaged pseudo-gradient.

    Each worker moves its parameters theta by the inner optimizer A,
    theta <- theta + A(g).  Every H-th step (the synchronisation), after
    that step's inner update,

        Delta = mean over workers of (theta_outer - theta),
        theta_outer <- theta_outer + B(Delta),   theta <- theta_outer,

    where B is the outer optimizer, fed Delta as its gradient (so
    ``sgd(0.7, momentum=0.9, nesterov=True)``, the paper's choice, steps
    against it).  The update returned on a synchronisation step moves the
    parameters to the new theta_outer; on the other steps it is A's update.
    Each worker keeps its own inner state; the outer state is the same on
    every worker.  With ``axis_name`` the mean is ``jax.lax.pmean`` over that
    axis (run the step under ``jax.shard_map``, ``jax.pmap`` or ``jax.vmap``
    with that axis name); with None there is one worker, which is SNOO.

    Args:
      inner: A, the inner optimizer (gradtx or optax).
      outer: B, the outer optimizer over pseudo-gradients.
      sync_period: H, inner steps per synchronisation, an int >= 1.
      axis_name: the named axis the workers span, or None for one worker.

    Returns:
      A transform with state ``DilocoState(count, outer_params, outer_state,
      inner_state)`` that needs ``params`` in ``update``.  The outer
      parameters live in the state, in at least float32.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.diloco(gradtx.sgd(1.0), gradtx.sgd(0.5), sync_period=2)
      >>> params = {"w": jnp.array([0.0])}
      >>> state = opt.init(params)
      >>> for _ in range(2):
      ...     u, state = opt.update({"w": jnp.array([-1.0])}, state, params)
      ...     params = gradtx.apply_updates(params, u)
      >>> params["w"], state.outer_params["w"]
      (Array([1.], dtype=float32), Array([1.], dtype=float32))

    Reference: Douillard, Feng, Rusu, Chhaparia, Donchev, Kuncoro, Ranzato,
    Szlam, Shen, "DiLoCo: Distributed Low-Communication Training of Language
    Models", 2023, arXiv:2311.08105.
    """
    owner = "diloco"
    check_transformation(owner, "inner", inner)
    check_transformation(owner, "outer", outer)
    check_int(owner, "sync_period", sync_period, 1)
    inner_update = update_fn(inner)
    outer_update = update_fn(outer)

    def init(params):
        outer_params = _copy_wide(params)
        return DilocoState(new_count(), outer_params, outer.init(outer_params), inner.init(params))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, DilocoState)
        check_float_leaves(owner, updates, "gradient")
        _check_params(owner, params, updates, state.outer_params)
        if axis_name is not None:
            _check_axis_bound(owner, axis_name)
        step, inner_state = inner_update(updates, state.inner_state, params, **extra)

        def synchronise(operands):
            step, outer_params, outer_state = operands
            delta = jax.tree.map(
                lambda phi, p, u: phi - (p.astype(phi.dtype) + u.astype(phi.dtype)),
                outer_params,
                params,
                step,
            )
            if axis_name is not None:
                delta = jax.lax.pmean(delta, axis_name)
            move, new_state = outer_update(delta, outer_state, outer_params)
            new_outer = jax.tree.map(lambda phi, v: phi + v.astype(phi.dtype), outer_params, move)
            jump = jax.tree.map(
                lambda phi, p, u: (phi - p.astype(phi.dtype)).astype(u.dtype),
                new_outer,
                params,
                step,
            )
            return jump, new_outer, _like(new_state, outer_state)

        sync = state.count >= sync_period - 1
        out, outer_params, outer_state = cond(
            sync,
            synchronise,
            lambda operands: operands,
            (step, state.outer_params, state.outer_state),
        )
        count = jnp.where(sync, jnp.zeros_like(state.count), state.count + 1)
        return out, DilocoState(count, outer_params, outer_state, inner_state)

    return init, update, (inner, outer)
