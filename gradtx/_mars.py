"""MARS: a variance-reduced gradient, to feed any optimizer."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._checks import check_float_leaves, check_range, moment_state
from ._numerics import abs_sq, compute_dtype
from ._recipe import transform
from ._tree import zeros_like_tree


class MarsState(NamedTuple):
    """previous: g_{t-1}, the input of the previous step (zeros before the first)."""

    previous: object


def _correct(g, previous, coefficient):
    """c = g + coefficient * (g - previous), divided by ||c||_2 where that exceeds 1."""
    cd = compute_dtype(g.dtype, previous.dtype)
    g32 = g.astype(cd)
    c = g32 + coefficient * (g32 - previous.astype(cd))
    norm = jnp.sqrt(jnp.sum(abs_sq(c)))
    return (c / jnp.maximum(norm, 1).astype(cd)).astype(g.dtype)


@transform
def scale_by_mars(b1=0.95, gamma=0.025):
    """MARS gradient correction: c_t = g_t + gamma * b1 / (1 - b1) * (g_t - g_{t-1}).

    Then c_t is divided by ||c_t||_2 wherever that norm exceeds 1 (per leaf,
    as the paper's code and pytorch-optimizer do).  g_0 = 0, so the first
    step is (1 + gamma * b1 / (1 - b1)) * g_1, clipped.  The correction is a
    cheap stand-in for a variance-reduced gradient (STORM with the gradient
    of the previous step at the previous point); place it first in a chain,
    before Adam (``gradtx.mars``), Lion or Muon, with ``b1`` the momentum
    of the optimizer that follows.

    Args:
      b1: beta_1 of the optimizer that follows, in [0, 1).
      gamma: the strength of the correction, >= 0; 0 gives g_t, clipped.

    Returns:
      A transform with state ``MarsState(previous)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_mars(b1=0.5, gamma=1.0)
      >>> u, state = tx.update(jnp.array([0.1, 0.2]), tx.init(jnp.zeros(2)))
      >>> u          # 2 * g_1
      Array([0.2, 0.4], dtype=float32)

    Reference: Yuan, Liu, Wu, Zhou, Gu, "MARS: Unleashing the Power of
    Variance Reduction for Training Large Models", 2024, arXiv:2411.10438,
    Algorithm 2.
    """
    owner = "scale_by_mars"
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "gamma", gamma, 0)

    def init(params):
        check_float_leaves(owner, params, "params")
        return MarsState(previous=zeros_like_tree(params))

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, MarsState, updates, "previous")
        coefficient = gamma * b1 / (1 - b1)
        out = jax.tree.map(lambda g, p: _correct(g, p, coefficient), updates, state.previous)
        previous = jax.tree.map(lambda g, p: g.astype(p.dtype), updates, state.previous)
        return out, MarsState(previous=previous)

    return init, update
