"""Block second moments: one adaptive learning rate per block of entries (Adam-mini)."""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._base import Preconditioner
from ._checks import check_float_leaves, check_range, moment_structure
from ._moments import debiaser, moving_average
from ._numerics import abs_sq, compute_dtype, increment, new_count, real_compute_dtype
from ._recipe import transform


class BlockRmsState(NamedTuple):
    """count: t; nu: v_t, one entry per block (the leaf's shape with the block axes kept as 1)."""

    count: jax.Array
    nu: object


def _normalise_axes(owner, block_axes):
    if block_axes is None:
        return None
    axes = (block_axes,) if isinstance(block_axes, numbers.Integral) else tuple(block_axes)
    if not axes or not all(
        isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes
    ):
        raise TypeError(
            f"{owner}: block_axes must be None, an int or a tuple of ints, got {block_axes!r}"
        )
    return axes


def _leaf_axes(axes, ndim):
    """The axes one block spans in a leaf of ``ndim`` dimensions."""
    if axes is None or ndim < 2:
        return tuple(range(ndim))
    return tuple(sorted({a % ndim for a in axes}))


@transform
def scale_by_block_rms(
    decay=0.999, eps=1e-8, *, block_axes=None, bias_correction: bool = True
) -> Preconditioner:
    """Block RMS scaling: v_{t,b} = decay * v_{t-1,b} + (1 - decay) * mean_{i in b} g_{t,i}^2.

    u_{t,i} = d_{t,i} / (sqrt(v_{t,b(i)} / (1 - decay^t)) + eps): every entry
    of a block b shares one second moment, the running mean of the block's
    squared gradient, so the state holds one number per block instead of
    one per entry (Adam-mini).  The blocks: with ``block_axes=None`` one
    block per leaf (Adam-mini's rule for the parameters it does not single
    out, and pytorch-optimizer's); with ``block_axes`` set, leaves of two or
    more dimensions are split into one block per index of the other axes
    (``block_axes=0`` on an ``(in, out)`` kernel: one block per output
    neuron, the paper's rule for value and MLP weights in JAX's layout),
    and leaves of fewer dimensions stay one block.

    Args:
      decay: beta_2, the decay of the block averages, in [0, 1).
      eps: added to the root, >= 0.
      block_axes: None, or the axis (int) or axes (tuple) one block spans in
        each leaf of two or more dimensions.
      bias_correction: divide v_t by 1 - decay^t before the root.

    Returns:
      A preconditioner with state ``BlockRmsState(count, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_block_rms(0.9, eps=0.0)
      >>> tx.update(jnp.array([3.0, 4.0]), tx.init(jnp.zeros(2)))[0]   # / sqrt(12.5)
      Array([0.8485, 1.1314 ], dtype=float32)

    Reference: Zhang, Chen, Li, Ding, Chen, Kingma, Ye, Luo, Sun, "Adam-mini:
    Use Fewer Learning Rates To Gain More", 2024, arXiv:2406.16793.
    """
    owner = "scale_by_block_rms"
    check_range(owner, "decay", decay, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    axes = _normalise_axes(owner, block_axes)

    def init(params):
        check_float_leaves(owner, params, "params")

        def block_zeros(p):
            shape = list(jnp.shape(p))
            for a in _leaf_axes(axes, len(shape)):
                shape[a] = 1
            return jnp.zeros(shape, jnp.finfo(jnp.result_type(p)).dtype)

        return BlockRmsState(count=new_count(), nu=jax.tree.map(block_zeros, params))

    def precondition(updates, gradient, state, params=None):
        moment_structure(owner, state, BlockRmsState, gradient, "nu")
        count = increment(state.count)

        def average(v, g):
            if g.size == 0:  # a block of no entries keeps its (zero) average
                return v
            cd = real_compute_dtype(v.dtype, g.dtype)
            sq = abs_sq(g.astype(compute_dtype(g.dtype))).astype(cd)
            block = jnp.mean(sq, axis=_leaf_axes(axes, g.ndim), keepdims=True)
            return moving_average(v, block, decay)

        nu = jax.tree.map(average, state.nu, gradient)
        nu_hat = jax.tree.map(debiaser(decay, count), nu) if bias_correction else nu

        def divide(u, v):
            cd = compute_dtype(u.dtype, v.dtype)
            return (u.astype(cd) / (jnp.sqrt(v) + eps).astype(cd)).astype(u.dtype)

        out = jax.tree.map(divide, updates, nu_hat)
        stored = jax.tree.map(lambda n, o: n.astype(o.dtype), nu, state.nu)
        return out, BlockRmsState(count=count, nu=stored)

    return Preconditioner(init, precondition, name=owner)
