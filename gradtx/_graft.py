"""Grafting: one transform's direction with another's step length, leaf by leaf."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import GradientTransformation, update_fn
from ._checks import check_state, check_transformation
from ._numerics import abs_sq, compute_dtype


class GraftState(NamedTuple):
    """direction, magnitude: the states of the two grafted transforms."""

    direction: Any
    magnitude: Any


def _norm(x):
    return jnp.sqrt(jnp.sum(abs_sq(x.astype(compute_dtype(x.dtype)))))


def graft(direction, magnitude) -> GradientTransformation:
    """Grafting: u = D(g) / ||D(g)|| * ||M(g)||, per leaf (Frobenius norms).

    Both transforms see the same input g and keep their own state; the
    result points where ``direction`` points and is as long as
    ``magnitude``'s update, leaf by leaf.  A leaf whose direction is zero
    gets a zero update.  Shampoo grafted onto Adagrad (Anil et al.) is
    ``graft(scale_by_shampoo(), scale_by_rss(0.0))``.

    Args:
      direction: D, any transform (gradtx's or optax's).
      magnitude: M, any transform.

    Returns:
      A transform with state ``GraftState(direction, magnitude)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.graft(gradtx.identity(), gradtx.scale(2.0))
      >>> tx.update(jnp.array([3.0, 4.0]), tx.init(jnp.zeros(2)))[0]
      Array([6., 8.], dtype=float32)

    Reference: Agarwal, Anil, Hazan, Koren, Zhang, "Disentangling Adaptive
    Gradient Methods from Learning Rates", 2020, arXiv:2002.11803.
    """
    owner = "graft"
    check_transformation(owner, "direction", direction)
    check_transformation(owner, "magnitude", magnitude)
    direction_update, magnitude_update = update_fn(direction), update_fn(magnitude)

    def init(params):
        return GraftState(direction.init(params), magnitude.init(params))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, GraftState)
        d, d_state = direction_update(updates, state.direction, params, **extra)
        m, m_state = magnitude_update(updates, state.magnitude, params, **extra)

        def leaf(d, m):
            nd, nm = _norm(d), _norm(m)
            ratio = jnp.where(nd > 0, nm / jnp.where(nd > 0, nd, 1), 0)
            return (d.astype(ratio.dtype) * ratio).astype(d.dtype)

        return jax.tree.map(leaf, d, m), GraftState(d_state, m_state)

    return GradientTransformation(
        init, update, name=owner, children=(direction, magnitude), combinator="graft"
    )
