"""SPlus's pieces: the sign of the momentum in Shampoo's eigenbasis, and its shape-aware scale.

``scale_by_splus`` keeps, for every 2-D leaf, the two Shampoo statistics
L = E[G G^T] and R = E[G^T G] and their eigenbases (``_matrix``'s helpers);
``scale_by_splus_shape`` multiplies each leaf by the factor that makes
SPlus's learning rate transfer across widths.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import EmptyState
from ._checks import check_float_leaves, check_range, check_real_leaves, check_state, moment_state
from ._matrix import _axis_gram, _eigenbasis, _per_leaf, _project
from ._moments import moment_zeros, moving_average
from ._numerics import compute_dtype, cond, increment, new_count
from ._recipe import transform


class SPlusState(NamedTuple):
    """count: steps taken; mu: the momentum m; stats, bases: per leaf a dict
    {axis: (d, d) array} of the statistics (L for axis 0, R for axis 1) and
    their eigenvectors Q_L, Q_R (empty for leaves that are not rotated)."""

    count: Any
    mu: Any
    stats: Any
    bases: Any


def _check_int(owner, name, value):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")


def _splus_axes(shape, max_dim):
    """The axes a leaf is rotated along: those shorter than max_dim, of 2-D leaves only."""
    if len(shape) != 2 or 0 in shape:
        return ()
    return tuple(a for a, d in enumerate(shape) if d < max_dim)


@transform
def scale_by_splus(b1=0.9, b2=0.999, eps=1e-30, inverse_steps=100, max_dim=10000):
    """SPlus's direction: u_t = Q_L sign(Q_L^T m_t Q_R) Q_R^T, the sign of the momentum in Shampoo's eigenbasis.

    For a matrix G_t: m_t = b1 m_{t-1} + (1 - b1) G_t,
    L_t = b2 L_{t-1} + (1 - b2) G_t G_t^T, R_t = b2 R_{t-1} + (1 - b2) G_t^T G_t,
    and Q_L, Q_R the eigenvectors of L + eps I and R + eps I, computed
    (eigh) after the statistics take G_t at step t = 1 and at every step
    that is a multiple of ``inverse_steps``, and used from the next step on
    (Q = I at step 1, so u_1 = sign(G_1)).  The sign is taken entry by entry
    ("instant sign": no second moment), so every entry of the rotated update
    is +-1 and its scale is set by ``scale_by_splus_shape`` and the learning
    rate.  Neither the order nor the signs of the eigenvectors change u.
    An axis of length >= ``max_dim`` keeps no statistic and is not rotated.
    Leaves that are not matrices get u_t = sign(m_t) (signum).

    Args:
      b1: the decay of m, in [0, 1).
      b2: the decay of the statistics L, R, in [0, 1).
      eps: added to the statistics' diagonal before eigh, >= 0.
      inverse_steps: steps between eigendecompositions, an integer >= 1.
      max_dim: axes at least this long are not rotated, an integer >= 1.

    Returns:
      A transform with state ``SPlusState(count, mu, stats, bases)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_splus()
      >>> g = {"w": jnp.array([[3.0, -1.0], [0.5, 2.0]])}
      >>> tx.update(g, tx.init(g))[0]["w"]  # Q = I at the first step
      Array([[ 1., -1.],
             [ 1.,  1.]], dtype=float32)

    Reference: Frans, Levine, Abbeel, "A Stable Whitening Optimizer for
    Efficient Neural Network Training", 2025, arXiv:2506.07254.
    """
    owner = "scale_by_splus"
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    _check_int(owner, "inverse_steps", inverse_steps)
    _check_int(owner, "max_dim", max_dim)

    def init(params):
        check_float_leaves(owner, params, "params")
        check_real_leaves(owner, params, "the update is a sign")

        def square(p, make):
            cd = compute_dtype(p.dtype)
            return {a: make(p.shape[a], cd) for a in _splus_axes(jnp.shape(p), max_dim)}

        mu = jax.tree.map(lambda p: moment_zeros(p, compute_dtype(p.dtype)), params)
        stats = jax.tree.map(lambda p: square(p, lambda d, cd: jnp.zeros((d, d), cd)), params)
        bases = jax.tree.map(lambda p: square(p, lambda d, cd: jnp.eye(d, dtype=cd)), params)
        return SPlusState(new_count(), mu, stats, bases)

    def eigenbases(stats):
        return {
            a: _eigenbasis(s + jnp.asarray(eps, s.dtype) * jnp.eye(s.shape[0], dtype=s.dtype))
            for a, s in stats.items()
        }

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, SPlusState, updates, "mu")
        t = increment(state.count)
        refresh = (t == 1) | (t % inverse_steps == 0)

        def leaf(u, mu, stats, bases):
            g = u.astype(mu.dtype)
            mu = moving_average(mu, g, b1)
            direction = _project(jnp.sign(_project(mu, bases)), bases, transpose=False)
            stats = {a: moving_average(s, _axis_gram(g, a), b2) for a, s in stats.items()}
            if stats:
                bases = cond(refresh, eigenbases, lambda _: bases, stats)
            return direction.astype(u.dtype), mu, stats, bases

        fields = _per_leaf(leaf, 4, updates, state.mu, state.stats, state.bases)
        return fields[0], SPlusState(t, *fields[1:])

    return init, update


@transform
def scale_by_splus_shape(nonstandard_constant=1e-3, max_dim=10000):
    """SPlus's shape-aware scale: u = 2 / (m + n) * g for an m x n matrix, u = c * g for other leaves.

    The factor 2 / (m + n) (one over the mean width) keeps the size of a
    +-1 update's effect on a layer's output constant across widths, so
    one learning rate serves all widths; leaves that are not matrices, and
    matrices with a side longer than ``max_dim``, take the constant
    c = ``nonstandard_constant`` instead.  (The authors' optax code divides
    by the first side, m, and decides by the leaf's name; pytorch-optimizer's
    ``SPlus`` uses 2 / (m + n), as here.)

    Args:
      nonstandard_constant: c, the factor of the leaves that are not matrices, >= 0.
      max_dim: matrices with a side longer than this take c, an integer >= 1.

    Returns:
      A stateless transform.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_splus_shape(nonstandard_constant=0.5)
      >>> u, _ = tx.update({"w": jnp.ones((3, 5)), "b": jnp.ones(5)}, tx.init(None))
      >>> float(u["w"][0, 0]), float(u["b"][0])
      (0.25, 0.5)

    Reference: Frans, Levine, Abbeel, "A Stable Whitening Optimizer for
    Efficient Neural Network Training", 2025, arXiv:2506.07254.
    """
    owner = "scale_by_splus_shape"
    check_range(owner, "nonstandard_constant", nonstandard_constant, 0)
    _check_int(owner, "max_dim", max_dim)

    def factor(shape):
        if len(shape) == 2 and max(shape) <= max_dim and sum(shape) > 0:
            return 2.0 / sum(shape)
        return nonstandard_constant

    def update(updates, state, params=None, **extra):
        check_state(owner, state, EmptyState)
        check_float_leaves(owner, updates, "gradient")
        return jax.tree.map(
            lambda u: u * jnp.asarray(factor(jnp.shape(u)), u.dtype), updates
        ), state

    return lambda params: EmptyState(), update
