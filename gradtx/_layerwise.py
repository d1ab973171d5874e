"""Layer-wise scalings: each leaf (a layer's weight, a bias) scaled by a norm of its own.

LARS and LAMB scale each layer's step by a trust ratio ||p|| / ||u||;
Adafactor scales by the parameter's RMS; gradient centralisation removes
each output unit's mean; ``normalize_by_update_norm`` divides by the norm
over all leaves.  Norms are formed in at least float32 and have a zero
derivative at zero, so ``jax.grad`` through these transforms is safe.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._base import EmptyState
from ._checks import check_float_leaves, check_params, check_range, promote_integer_leaves
from ._numerics import abs_sq, compute_dtype, real_compute_dtype
from ._recipe import transform


def _floor(value, minimum):
    """max(value, minimum), with a zero derivative where the floor holds."""
    return jnp.where(value <= minimum, minimum, value)


def _norm(x):
    """||x||_2 over every entry, in at least float32; derivative 0 at x = 0."""
    sq = jnp.sum(abs_sq(x.astype(compute_dtype(x.dtype))))
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1)), 0)


def _rms(x):
    return _norm(x) / jnp.sqrt(jnp.asarray(max(x.size, 1), real_compute_dtype(x.dtype)))


def _times(u, factor):
    cd = compute_dtype(u.dtype)
    return (u.astype(cd) * factor.astype(cd)).astype(u.dtype)


@transform
def scale_by_trust_ratio(min_norm=0.0, trust_coefficient=1.0, eps=0.0):
    """Trust ratio: u_l = u_l * c * max(||p_l||, m) / (max(||u_l||, m) + eps), per leaf l.

    c is ``trust_coefficient`` and m ``min_norm``.  Where either norm is 0
    the ratio is 1, so a zero-initialised layer still moves.  LARS uses it
    on SGD's step, LAMB on Adam's.

    Args:
      min_norm: m, the floor of both norms, >= 0.
      trust_coefficient: c.
      eps: added to the update's norm, >= 0.

    Returns:
      A stateless transform that needs params (optax's ``scale_by_trust_ratio``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_trust_ratio()
      >>> p = jnp.array([3.0, 4.0])
      >>> tx.update(jnp.array([0.0, 0.5]), tx.init(p), p)[0]   # ||p|| = 5, ||u|| = 0.5
      Array([0., 5.], dtype=float32)

    Reference: You, Gitman, Ginsburg, "Large Batch Training of Convolutional
    Networks", 2017, arXiv:1708.03888.
    """
    owner = "scale_by_trust_ratio"
    check_range(owner, "min_norm", min_norm, 0)
    check_range(owner, "trust_coefficient", trust_coefficient)
    check_range(owner, "eps", eps, 0)

    def one(u, p):
        p_norm = _floor(_norm(p), min_norm)
        u_norm = _floor(_norm(u), min_norm)
        zero = jnp.logical_or(p_norm == 0, u_norm == 0)
        ratio = trust_coefficient * p_norm / jnp.where(zero, 1, u_norm + eps)
        return _times(u, jnp.where(zero, 1, ratio))

    def update(updates, state, params=None, **extra):
        check_params(owner, params, updates)
        check_float_leaves(owner, updates, "updates")
        return jax.tree.map(one, updates, params), state

    return lambda params: EmptyState(), update


@transform
def scale_by_param_block_norm(min_scale=1e-3):
    """Scale each leaf by its parameter's norm: u_l = u_l * max(||p_l||, min_scale).

    Args:
      min_scale: the floor of the norm, >= 0.

    Returns:
      A stateless transform that needs params.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_param_block_norm()
      >>> p = jnp.array([3.0, 4.0])
      >>> tx.update(jnp.array([1.0, 1.0]), tx.init(p), p)[0]
      Array([5., 5.], dtype=float32)
    """
    return _scale_by_param_block("scale_by_param_block_norm", _norm, min_scale)


@transform
def scale_by_param_block_rms(min_scale=1e-3):
    """Scale each leaf by its parameter's RMS: u_l = u_l * max(sqrt(mean |p_l|^2), min_scale).

    Adafactor's ``multiply_by_parameter_scale``: steps relative to the
    parameter's size.

    Args:
      min_scale: the floor of the RMS, >= 0.

    Returns:
      A stateless transform; its update needs params.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_param_block_rms()
      >>> p = jnp.full(2, -1.0)
      >>> tx.update(jnp.array([2.0, 2.0]), tx.init(p), p)[0]
      Array([2., 2.], dtype=float32)

    Reference: Shazeer, Stern, "Adafactor: Adaptive Learning Rates with
    Sublinear Memory Cost", ICML 2018, arXiv:1804.04235, section 8.
    """
    return _scale_by_param_block("scale_by_param_block_rms", _rms, min_scale)


def _scale_by_param_block(owner, statistic, min_scale):
    """u_l = u_l * max(statistic(p_l), min_scale), leaf by leaf."""
    check_range(owner, "min_scale", min_scale, 0)

    def update(updates, state, params=None, **extra):
        check_params(owner, params, updates)
        return jax.tree.map(
            lambda u, p: _times(u, _floor(statistic(p), min_scale)), updates, params
        ), state

    return lambda params: EmptyState(), update


@transform
def centralize():
    """Gradient centralisation: subtract from each leaf of rank >= 2 its mean over all axes but the first.

    u_l[i, ...] = g_l[i, ...] - mean(g_l[i, ...]); vectors and scalars pass
    unchanged (optax's convention: the first axis indexes the units).

    Returns:
      A stateless transform.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.centralize()
      >>> tx.update(jnp.array([[1.0, 3.0], [0.0, 4.0]]), tx.init(None))[0]
      Array([[-1.,  1.],
             [-2.,  2.]], dtype=float32)

    Reference: Yong et al., "Gradient Centralization: A New Optimization
    Technique for Deep Neural Networks", ECCV 2020, arXiv:2004.01461.
    """
    owner = "centralize"

    def one(g):
        if g.ndim < 2:
            return g
        cd = compute_dtype(g.dtype)
        x = g.astype(cd)
        return (x - jnp.mean(x, axis=tuple(range(1, g.ndim)), keepdims=True)).astype(g.dtype)

    def update(updates, state, params=None, **extra):
        check_float_leaves(owner, updates, "updates")
        return jax.tree.map(one, updates), state

    return lambda params: EmptyState(), update


@transform
def normalize_by_update_norm(scale_factor=1.0, eps=1e-6):
    """Normalise by the global norm: u_t = scale_factor * g_t / (||g_t|| + eps).

    ||g_t|| is the norm over every leaf.

    Args:
      scale_factor: the length of the result (for eps = 0).
      eps: added to the norm, >= 0.

    Returns:
      A stateless transform.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.normalize_by_update_norm(eps=0.0)
      >>> tx.update(jnp.array([3.0, 4.0]), tx.init(None))[0]
      Array([0.6, 0.8], dtype=float32)
    """
    owner = "normalize_by_update_norm"
    check_range(owner, "scale_factor", scale_factor)
    check_range(owner, "eps", eps, 0)

    def update(updates, state, params=None, **extra):
        updates = promote_integer_leaves(updates)
        leaves = jax.tree.leaves(updates)
        if not leaves:
            return updates, state
        cd = real_compute_dtype(*(g.dtype for g in leaves))
        sq = sum(jnp.sum(abs_sq(g.astype(compute_dtype(g.dtype)))).astype(cd) for g in leaves)
        denominator = (jnp.sqrt(sq) + eps) / scale_factor
        out = jax.tree.map(
            lambda g: (
                g.astype(compute_dtype(g.dtype)) / denominator.astype(compute_dtype(g.dtype))
            ).astype(g.dtype),
            updates,
        )
        return out, state

    return lambda params: EmptyState(), update
