"""Applying updates to parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._numerics import add, cast
from ._tree import check_same_structure, path_str


def apply_updates(params, updates):
    """Return ``params + updates``, each leaf keeping its parameter's dtype.

    The sum is formed in the wider of the two dtypes and cast back, so bf16
    parameters stay bf16 and receive a correctly rounded update.  ``None``
    leaves (and ``params=None``) are passed through.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> gradtx.apply_updates({"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([0.5, -1.0])})
      {'w': Array([1.5, 1. ], dtype=float32)}
    """

    def apply_one(path, p, u):
        if p is None:
            return None
        if not isinstance(p, jax.Array):
            p = jnp.asarray(p)
        if not jnp.issubdtype(p.dtype, jnp.inexact):
            raise TypeError(
                f"apply_updates: parameter {path_str(path)} has integer dtype "
                f"{p.dtype}; only floating-point or complex parameters can be "
                f"updated (mask integer leaves out of the optimizer)"
            )
        return cast(add(p, u), p.dtype)

    if params is None:
        return None
    check_same_structure("apply_updates", params, updates, "params", "updates")
    return jax.tree_util.tree_map_with_path(apply_one, params, updates, is_leaf=lambda x: x is None)
