"""Kahan-compensated updates for bfloat16 and float16 parameters.

``compensated(tx)`` keeps, per entry of a low-precision parameter, what
rounding the parameter has lost so far, and adds it to the next update
(``quantized_state`` can store that compensation in 8 bits).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import GradientTransformation, update_fn
from ._checks import check_state, check_transformation
from ._numerics import add, cast
from ._typing import TransformLike


class CompensatedState(NamedTuple):
    """compensation: per parameter, c, the part of the updates that rounding to the
    parameter's dtype has lost so far (a 0-d zero for float32 and wider
    parameters, which need none); inner_state: the wrapped transform's state."""

    compensation: Any
    inner_state: Any


def _needs_compensation(dtype) -> bool:
    return jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32


def compensated(tx: TransformLike, compensation_dtype=None) -> GradientTransformation:
    """Kahan-compensated updates for bfloat16 (and float16) parameters.

    Adding a small update u to a bf16 parameter p rounds p + u to 8
    significant bits, and an update below half a unit in the last place of p
    is lost entirely: a bf16 model trained with plain updates stalls where
    one with float32 master weights keeps moving.  Kahan summation keeps, for
    each entry, what rounding has lost so far, c, and adds it to the next
    update.  Per entry of a low-precision parameter, with u the update of
    ``tx`` and all arithmetic in float32:

        y = u + c
        t = round(p + y)                 (the parameter Kahan's sum gives)
        d = round(t - p)                 (the update returned)
        p' = round(p + d)                (what ``apply_updates`` makes of it)
        c' = y - (p' - p)

    where round() rounds to nearest in the parameter's dtype.  The update
    returned, d, is in the parameter's dtype; d = t - p exactly whenever t
    is within a factor 2 of p (Sterbenz's lemma), that is whenever
    |y| <= |p| / 2 or so, and then ``apply_updates(p, d)`` gives exactly t.
    Otherwise p' is the nearest parameter ``apply_updates`` reaches, and c'
    keeps what it missed, so nothing is lost either way.  float32 and wider
    parameters get ``tx``'s update unchanged.

    The compensation is stored in ``compensation_dtype`` (default: the
    parameter's dtype; it holds a residual below half an ulp of p, so bf16's
    8 bits keep it to 0.4%).  ``quantized_state(compensated(tx),
    keys=("compensation",))`` stores it in 8-bit codes instead.

    Args:
      tx: the transform whose updates to apply with compensation.
      compensation_dtype: dtype of c (None: each parameter's dtype).

    Returns:
      A transform with state ``CompensatedState(compensation, inner_state)``;
      its ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.compensated(gradtx.sgd(1.0))
      >>> params = {"w": jnp.array([1.0], jnp.bfloat16)}
      >>> state = opt.init(params)
      >>> for _ in range(4):  # 4 steps of 1e-3: each alone is below half an ulp of 1.0
      ...     updates, state = opt.update({"w": jnp.array([-1e-3], jnp.bfloat16)}, state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> params["w"]
      Array([1.00781], dtype=bfloat16)
    """
    owner = "compensated"
    check_transformation(owner, "tx", tx)
    if compensation_dtype is not None and not jnp.issubdtype(compensation_dtype, jnp.floating):
        raise ValueError(
            f"{owner}: compensation_dtype must be a floating-point dtype, got {compensation_dtype!r}"
        )
    inner_update = update_fn(tx)

    def zeros(p):
        dtype = jnp.result_type(p)
        if not _needs_compensation(dtype):
            return jnp.zeros((), dtype)
        return jnp.zeros(jnp.shape(p), compensation_dtype or dtype)

    def init(params):
        return CompensatedState(jax.tree.map(zeros, params), tx.init(params))

    def one(u, c, p):
        if not _needs_compensation(p.dtype):
            return u, c
        p32 = p.astype(jnp.float32)
        y = u.astype(jnp.float32) + c.astype(jnp.float32)
        target = (p32 + y).astype(p.dtype)
        step = (target.astype(jnp.float32) - p32).astype(p.dtype)
        applied = cast(add(p, step), p.dtype).astype(jnp.float32) - p32  # as apply_updates
        return step, (y - applied).astype(c.dtype)

    def update(updates, state, params=None, **extra):
        check_state(owner, state, CompensatedState)
        if params is None:
            raise ValueError(
                f"{owner}: update needs params (the compensation depends on how the "
                f"parameters round); call update(updates, state, params)"
            )
        updates, inner_state = inner_update(updates, state.inner_state, params, **extra)
        pairs = jax.tree.map(one, updates, state.compensation, params)
        outer = jax.tree.structure(updates)
        updates, compensation = jax.tree.transpose(outer, jax.tree.structure((0, 0)), pairs)
        return updates, CompensatedState(compensation, inner_state)

    return GradientTransformation(
        init,
        update,
        name=owner,
        children=(tx,),
        hyperparams={"tx": tx, "compensation_dtype": compensation_dtype},
    )
