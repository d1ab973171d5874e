"""Clipping: bound the size of the update element-wise, per leaf, per unit or globally.

A clip placed first in a recipe clips the gradient every later transform
sees, as PyTorch's ``clip_grad_norm_`` followed by ``step``.

Sizes of complex entries are moduli: |g|^2 = g * conj(g).  A complex update
is only ever shrunk by a real factor, never rotated.  Norms are formed in at
least float32, and have a zero (not NaN) derivative at a zero gradient, so
``jax.grad`` through a clipped update is safe.
"""

from __future__ import annotations

import math
from functools import reduce

import jax
import jax.numpy as jnp
import numpy as np

from ._base import EmptyState
from ._checks import check_float_leaves, check_params, check_range, promote_integer_leaves
from ._numerics import abs_sq, compute_dtype, real_compute_dtype
from ._recipe import transform
from ._typing import PyTree


def _sum_sq(x, axis=None, keepdims=False):
    """sum |x|^2 over ``axis``, in at least float32."""
    return jnp.sum(abs_sq(x.astype(compute_dtype(x.dtype))), axis=axis, keepdims=keepdims)


def _safe_sqrt(x):
    """sqrt(x) for x >= 0 with a zero derivative at 0 (plain sqrt's is infinite)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1)), 0)


def _shrink(u, norm, max_norm):
    """u * min(1, max_norm / norm): leave u alone unless norm > max_norm.

    ``norm`` and ``max_norm`` broadcast against ``u`` (a scalar per leaf, or
    one per unit).  The division only happens where norm > max_norm >= 0, so
    a zero norm never makes 0/0.
    """
    cd = compute_dtype(u.dtype)
    max_norm = jnp.asarray(max_norm, norm.dtype)
    trigger = norm > max_norm
    factor = jnp.where(trigger, max_norm / jnp.where(trigger, norm, 1), 1)
    return (u.astype(cd) * factor.astype(cd)).astype(u.dtype)


@transform
def clip(max_delta: float):
    """Clip each entry: u_i = clip(g_i, -max_delta, max_delta).

    For a complex entry the modulus is clipped and the phase kept:
    u_i = g_i * min(1, max_delta / |g_i|).

    Args:
      max_delta: the largest |u_i| allowed, >= 0.

    Returns:
      A stateless transform (optax's ``clip``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.clip(1.0)
      >>> g = {"w": jnp.array([0.5, -3.0, 2.0])}
      >>> tx.update(g, tx.init(g))[0]["w"]
      Array([ 0.5, -1. ,  1. ], dtype=float32)
    """
    owner = "clip"
    check_range(owner, "max_delta", max_delta, 0)

    def clip_one(u):
        if jnp.iscomplexobj(u):
            return _shrink(u, _safe_sqrt(abs_sq(u.astype(compute_dtype(u.dtype)))), max_delta)
        bound = jnp.asarray(max_delta, u.dtype)
        return jnp.clip(u, -bound, bound)

    def update(updates, state, params):
        return jax.tree.map(clip_one, promote_integer_leaves(updates)), state

    return lambda params: EmptyState(), update


def global_norm(tree: PyTree) -> jax.Array:
    """||g||_2 = sqrt(sum over every leaf and entry of |g_i|^2), in at least float32.

    Zero for a tree without leaves; its derivative at g = 0 is zero, not NaN.
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    dtype = reduce(
        np.promote_types, [np.dtype(real_compute_dtype(jnp.result_type(x))) for x in leaves]
    )
    total = sum(_sum_sq(jnp.asarray(x)).astype(dtype) for x in leaves)
    return _safe_sqrt(total)


@transform
def clip_by_global_norm(max_norm: float):
    """Clip the global norm: u = g * min(1, max_norm / ||g||_2).

    ||g||_2 is taken over all leaves together (``global_norm``), so the
    direction of the whole update is kept.  A zero gradient passes unchanged,
    and so does its derivative: nothing divides by a zero norm.  This is
    PyTorch's ``clip_grad_norm_`` (without its 1e-6 in the denominator) and
    optax's ``clip_by_global_norm``.

    Args:
      max_norm: the largest ||u||_2 allowed, >= 0.

    Returns:
      A stateless transform.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.clip_by_global_norm(1.0)
      >>> g = {"a": jnp.array([3.0]), "b": jnp.array([4.0])}
      >>> u, _ = tx.update(g, tx.init(g))
      >>> u["a"], u["b"]
      (Array([0.6], dtype=float32), Array([0.8], dtype=float32))

    Reference: Pascanu, Mikolov, Bengio, "On the difficulty of training
    recurrent neural networks", ICML 2013, arXiv:1211.5063.
    """
    owner = "clip_by_global_norm"
    check_range(owner, "max_norm", max_norm, 0)

    def update(updates, state, params):
        check_float_leaves(owner, updates, "gradient")
        norm = global_norm(updates)
        return jax.tree.map(lambda u: _shrink(u, norm, max_norm), updates), state

    return lambda params: EmptyState(), update


@transform
def clip_by_leaf_norm(max_norm: float):
    """Clip each leaf's norm: u_l = g_l * min(1, max_norm / ||g_l||_2), one leaf l at a time.

    ||g_l||_2 is the Frobenius norm of the whole array.  Unlike
    ``clip_by_global_norm``, a large gradient in one layer does not shrink
    the others.

    Args:
      max_norm: the largest ||u_l||_2 allowed for every leaf, >= 0.

    Returns:
      A stateless transform.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.clip_by_leaf_norm(1.0)
      >>> g = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.5])}
      >>> u, _ = tx.update(g, tx.init(g))
      >>> u["a"], u["b"]
      (Array([0.6, 0.8], dtype=float32), Array([0.5], dtype=float32))
    """
    owner = "clip_by_leaf_norm"
    check_range(owner, "max_norm", max_norm, 0)

    def update(updates, state, params):
        check_float_leaves(owner, updates, "gradient")
        return jax.tree.map(lambda u: _shrink(u, _safe_sqrt(_sum_sq(u)), max_norm), updates), state

    return lambda params: EmptyState(), update


@transform
def clip_by_block_rms(threshold: float):
    """Clip each leaf's RMS: u_l = g_l * min(1, threshold / rms(g_l)), rms(g) = sqrt(mean |g_i|^2).

    A "block" is one leaf (a weight matrix, a bias vector).  This is
    ``clip_by_leaf_norm`` with the bound scaled by sqrt(size), so one
    threshold suits leaves of every size.  An empty leaf passes unchanged.

    Args:
      threshold: the largest rms(u_l) allowed, >= 0.

    Returns:
      A stateless transform (optax's ``clip_by_block_rms``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.clip_by_block_rms(1.0)
      >>> g = {"w": jnp.array([2.0, -2.0, 2.0, -2.0])}
      >>> tx.update(g, tx.init(g))[0]["w"]
      Array([ 1., -1.,  1., -1.], dtype=float32)
    """
    owner = "clip_by_block_rms"
    check_range(owner, "threshold", threshold, 0)

    def clip_one(u):
        if u.size == 0:
            return u
        # u / (rms / threshold), optax's order of operations, where rms > threshold.
        cd = compute_dtype(u.dtype)
        rms = _safe_sqrt(_sum_sq(u) / u.size)
        limit = jnp.asarray(threshold, rms.dtype)
        trigger = rms > limit
        denominator = jnp.where(trigger, rms / jnp.where(trigger, limit, 1), 1)
        return (u.astype(cd) / denominator.astype(cd)).astype(u.dtype)

    def update(updates, state, params):
        return jax.tree.map(clip_one, promote_integer_leaves(updates)), state

    return lambda params: EmptyState(), update


def _unitwise_norm(x, axis=None):
    """||x_unit||_2 for each unit of ``x``, broadcast back to ``x``'s shape."""
    if axis is None:
        if sum(d != 1 for d in x.shape) <= 1:
            axis = None
        elif x.ndim in (2, 3):
            axis = 0
        else:
            axis = tuple(range(x.ndim - 1))
    return jnp.broadcast_to(_safe_sqrt(_sum_sq(x, axis=axis, keepdims=True)), x.shape)


@transform
def adaptive_grad_clip(
    clipping: float, eps: float = 1e-3, *, axis: int | tuple[int, ...] | None = None
):
    """Adaptive gradient clipping, unit-wise: u_i = g_i * min(1, clipping * max(||p_i||, eps) / ||g_i||).

    For every unit i the gradient's norm ||g_i|| is bounded by ``clipping``
    times the parameter's norm ||p_i||; ``eps`` keeps zero-initialised units
    (biases) trainable.  The units follow the NFNet code of Brock et al. (and
    optax): a scalar or a vector (after dropping size-1 axes) is one unit; a
    rank-2 or rank-3 leaf (linear ``(in, out)``, multi-head linear
    ``(in, heads, dim)``) has its norms taken over axis 0; a rank-4
    convolution kernel ``HWIO`` has one unit per output channel, and in
    general rank r >= 4 reduces over the first r - 1 axes.

    Args:
      clipping: lambda, the largest ratio ||u_i|| / max(||p_i||, eps), >= 0.
      eps: the smallest parameter norm used, >= 0.
      axis: the axes every leaf's norms are taken over (an int or a tuple),
        or None for the rule above.

    Returns:
      A stateless transform that needs ``params`` in ``update``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.adaptive_grad_clip(0.1)
      >>> params = {"w": jnp.array([[3.0, 0.0], [4.0, 1.0]])}
      >>> g = {"w": jnp.array([[1.0, 0.01], [0.0, 0.0]])}
      >>> tx.update(g, tx.init(params), params)[0]["w"]
      Array([[0.5 , 0.01],
             [0.  , 0.  ]], dtype=float32)

    Reference: Brock, De, Smith, Simonyan, "High-Performance Large-Scale
    Image Recognition Without Normalization", ICML 2021, arXiv:2102.06171.
    """
    owner = "adaptive_grad_clip"
    check_range(owner, "clipping", clipping, 0)
    check_range(owner, "eps", eps, 0)

    def clip_one(g, p):
        g_norm = _unitwise_norm(g, axis)
        p_norm = _unitwise_norm(p, axis).astype(g_norm.dtype)
        return _shrink(g, g_norm, clipping * jnp.maximum(p_norm, eps))

    def update(updates, state, params):
        check_params(owner, params, updates)
        updates, params = promote_integer_leaves(updates), promote_integer_leaves(params)
        return jax.tree.map(clip_one, updates, params), state

    return lambda params: EmptyState(), update


def per_example_global_norm_clip(grads, l2_norm_clip):
    """Clip each example's gradient to a global norm, then sum: sum_i g_i * min(1, c / ||g_i||).

    ``grads`` holds one gradient per example along axis 0 of every leaf
    (from ``jax.vmap(jax.grad(loss))``); ||g_i|| is example i's norm over
    every leaf.  This is the clipping of DP-SGD.  A function, not a
    transform, as in optax.

    Args:
      grads: a pytree whose leaves share a leading batch axis.
      l2_norm_clip: c, the largest norm an example may contribute.

    Returns:
      ``(clipped_sum, num_clipped)``: the sum over examples, and how many
      examples were clipped.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> total, n = gradtx.per_example_global_norm_clip(jnp.array([[3.0, 4.0], [0.3, 0.4]]), 1.0)
      >>> total, n
      (Array([0.90000004, 1.2       ], dtype=float32), Array(1, dtype=int32))

    Reference: Abadi et al., "Deep Learning with Differential Privacy",
    CCS 2016, arXiv:1607.00133.
    """
    owner = "per_example_global_norm_clip"
    leaves = jax.tree.leaves(grads)
    sizes = {np.shape(g)[0] if np.ndim(g) else None for g in leaves}
    if not leaves or None in sizes or len(sizes) != 1:
        raise ValueError(
            f"{owner}: every leaf of grads needs the same batch axis 0 (one gradient "
            f"per example), got leading sizes {sorted(map(str, sizes))}"
        )
    grads = promote_integer_leaves(grads)  # optax's arithmetic promotes them too
    leaves = jax.tree.leaves(grads)
    cd = real_compute_dtype(*(g.dtype for g in leaves))
    sq = reduce(
        lambda a, b: a + b, [_sum_sq(g, axis=tuple(range(1, g.ndim))).astype(cd) for g in leaves]
    )
    norms = jnp.sqrt(sq)
    multipliers = jnp.nan_to_num(jnp.minimum(l2_norm_clip / norms, 1.0), nan=1.0)
    num_clipped = jnp.sum(multipliers < 1.0)
    clipped = jax.tree.map(
        lambda g: jnp.tensordot(
            multipliers.astype(compute_dtype(g.dtype)), g.astype(compute_dtype(g.dtype)), axes=1
        ).astype(g.dtype),
        grads,
    )
    return clipped, num_clipped


def per_example_layer_norm_clip(grads, global_l2_norm_clip, uniform=True):
    """Clip each example's gradient leaf by leaf, then sum: sum_i g_i^k * min(1, c_k / ||g_i^k||).

    Each leaf k (a layer) is clipped on its own to c_k: c / sqrt(K) for K
    leaves with ``uniform``, else c * sqrt(D_k / D), D_k the size of one
    example's leaf and D their total, so that the clipped example's global
    norm is at most c either way.  With one leaf this is
    ``per_example_global_norm_clip``.  A function, not a transform, as in optax.

    Args:
      grads: a pytree whose leaves share a leading batch axis.
      global_l2_norm_clip: c, the overall norm bound.
      uniform: split c evenly over the leaves (True) or by their sizes.

    Returns:
      ``(clipped_sum, num_clipped)``, each a tree shaped like ``grads``: per
      leaf, the sum over examples and how many examples were clipped.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> grads = {"a": jnp.array([[3.0, 4.0], [0.3, 0.4]]), "b": jnp.array([[1.0], [0.0]])}
      >>> total, n = gradtx.per_example_layer_norm_clip(grads, 2**0.5)   # c_k = 1
      >>> total["a"], n["a"], n["b"]
      (Array([0.90000004, 1.2       ], dtype=float32), Array(1, dtype=int32), Array(0, dtype=int32))

    Reference: McMahan et al., "Learning Differentially Private Recurrent
    Language Models", ICLR 2018, arXiv:1710.06963.
    """
    owner = "per_example_layer_norm_clip"
    leaves, treedef = jax.tree.flatten(grads)
    sizes = {np.shape(g)[0] if np.ndim(g) else None for g in leaves}
    if not leaves or None in sizes or len(sizes) != 1:
        raise ValueError(
            f"{owner}: every leaf of grads needs the same batch axis 0 (one gradient "
            f"per example), got leading sizes {sorted(map(str, sizes))}"
        )
    check_float_leaves(owner, grads, "gradient")
    if uniform:
        clips = [global_l2_norm_clip * (1.0 / len(leaves)) ** 0.5 for _ in leaves]
    else:
        total = sum(math.prod(np.shape(g)[1:]) for g in leaves)
        clips = [global_l2_norm_clip * (math.prod(np.shape(g)[1:]) / total) ** 0.5 for g in leaves]
    sums, counts = zip(*(per_example_global_norm_clip(g, c) for g, c in zip(leaves, clips)))
    return treedef.unflatten(sums), treedef.unflatten(counts)
