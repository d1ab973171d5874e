"""Reduce the step when a monitored value stops improving."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._checks import check_range, check_state
from ._numerics import increment
from ._recipe import transform


class ReduceLROnPlateauState(NamedTuple):
    """scale: the current factor; best_value: the best average so far; plateau_count: averages
    since the last improvement; cooldown_count: averages left to wait; count: values in the
    current average; avg_value: their mean.  (optax's fields.)"""

    scale: jax.Array
    best_value: jax.Array
    plateau_count: jax.Array
    cooldown_count: jax.Array
    count: jax.Array
    avg_value: jax.Array


def _float_dtypes(params):
    dtypes = [jnp.dtype(jnp.result_type(p)) for p in jax.tree.leaves(params)]
    dtypes = [d for d in dtypes if jnp.issubdtype(d, jnp.floating)] or [jnp.dtype(jnp.float32)]
    return (min(dtypes, key=lambda d: d.itemsize), max(dtypes, key=lambda d: d.itemsize))


@transform
def reduce_on_plateau(
    factor=0.1, patience=10, rtol=1e-4, atol=0.0, cooldown=0, accumulation_size=1, min_scale=0.0
):
    """Multiply the update by a scale that drops by ``factor`` when the value plateaus.

    u_t = scale_t * g_t.  The values passed as ``update(..., value=loss)``
    are averaged over ``accumulation_size`` calls; each average a counts as
    an improvement when a < (1 - rtol) * best - atol.  After ``patience``
    averages without one, scale <- max(factor * scale, min_scale), and the
    next ``cooldown`` averages are not counted.

    Args:
      factor: the reduction, in (0, 1).
      patience: averages without improvement before a reduction.
      rtol: the relative improvement needed, in [0, 1].
      atol: the absolute improvement needed, >= 0 (rtol and atol not both 0).
      cooldown: averages ignored after a reduction.
      accumulation_size: values per average.
      min_scale: the floor of the scale.

    Returns:
      A transform with state ``ReduceLROnPlateauState``; its ``update`` needs
      the keyword ``value``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.reduce_on_plateau(factor=0.5, patience=1)
      >>> state = tx.init(jnp.zeros(1))
      >>> u, state = tx.update(jnp.array([1.0]), state, value=1.0)
      >>> tx.update(jnp.array([1.0]), state, value=1.0)[0]   # no improvement: halved
      Array([0.5], dtype=float32)
    """
    owner = "reduce_on_plateau"
    check_range(owner, "factor", factor, 0, 1, low_open=True, high_open=True)
    check_range(owner, "rtol", rtol, 0, 1)
    check_range(owner, "atol", atol, 0)
    if rtol == 0 and atol == 0:
        raise ValueError(
            f"{owner}: at least one of rtol and atol must be positive, got "
            f"rtol={rtol!r}, atol={atol!r}"
        )
    check_range(owner, "patience", patience, 0)
    check_range(owner, "cooldown", cooldown, 0)
    check_range(owner, "accumulation_size", accumulation_size, 1)
    check_range(owner, "min_scale", min_scale, 0)

    def init(params):
        lowest, highest = _float_dtypes(params)
        return ReduceLROnPlateauState(
            scale=jnp.ones((), lowest),
            best_value=jnp.asarray(jnp.inf, highest),
            plateau_count=jnp.zeros((), jnp.int32),
            cooldown_count=jnp.zeros((), jnp.int32),
            count=jnp.zeros((), jnp.int32),
            avg_value=jnp.zeros((), highest),
        )

    def judge(s):
        """The state after an average is complete."""
        improved = s.avg_value < (1 - rtol) * s.best_value - atol
        best = jnp.where(improved, s.avg_value, s.best_value)
        plateau = jnp.where(improved, 0, increment(s.plateau_count))
        cooling = s.cooldown_count > 0
        reduce = (plateau == patience) & ~cooling
        scale = jnp.where(
            cooling,
            s.scale,
            jnp.maximum(
                jnp.where(reduce, s.scale * factor, s.scale), jnp.asarray(min_scale, s.scale.dtype)
            ),
        )
        plateau = jnp.where(cooling | reduce, 0, plateau).astype(jnp.int32)
        cooldown_count = jnp.where(
            cooling, s.cooldown_count - 1, jnp.where(reduce, cooldown, 0)
        ).astype(jnp.int32)
        return ReduceLROnPlateauState(
            scale=scale,
            best_value=best,
            plateau_count=plateau,
            cooldown_count=cooldown_count,
            count=jnp.zeros((), jnp.int32),
            avg_value=jnp.zeros((), s.avg_value.dtype),
        )

    def update(updates, state, params=None, *, value=None, **extra):
        check_state(owner, state, ReduceLROnPlateauState)
        if value is None:
            raise ValueError(
                f"{owner}: update needs the monitored value "
                f"(call update(updates, state, params, value=loss))"
            )
        dtype = state.avg_value.dtype
        count = increment(state.count)
        avg = (
            state.count.astype(dtype) * state.avg_value + jnp.asarray(value).astype(dtype)
        ) / count.astype(dtype)
        state = state._replace(avg_value=avg, count=count)
        complete = count == accumulation_size
        state = jax.tree.map(lambda a, b: jnp.where(complete, a, b), judge(state), state)
        out = jax.tree.map(lambda g: state.scale.astype(g.dtype) * g, updates)
        return out, state

    return init, update
