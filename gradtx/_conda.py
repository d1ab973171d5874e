"""Conda's direction: Adam with the second moment kept in the singular basis of the momentum.

For each matrix, the shorter side is rotated by an orthogonal basis taken
from the momentum's SVD (``_matrix``'s ``_project`` applies it), so Adam's
per-entry normalisation acts on the columns of the projected gradient.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._checks import check_float_leaves, check_range, check_real_leaves, moment_state
from ._matrix import _per_leaf, _project
from ._moments import debias_denominator, moment_zeros, moving_average, moving_average_sq
from ._numerics import compute_dtype, cond, increment, new_count
from ._recipe import transform


class CondaState(NamedTuple):
    """count: steps taken; mu: the momentum m (in the parameter basis); nu: the
    second moment v (in the projected basis); bases: per leaf {axis: P} for the
    rotated (shorter) side of a matrix, empty for other leaves."""

    count: Any
    mu: Any
    nu: Any
    bases: Any


def _conda_axis(shape):
    """The rotated axis of a matrix: its columns (1) when m >= n, else its rows (0)."""
    if len(shape) != 2 or 0 in shape:
        return None
    return 1 if shape[0] >= shape[1] else 0


def _singular_basis(m, axis):
    """The singular vectors of M on ``axis``'s side: V (n x n) for axis 1, U (m x m) for axis 0."""
    u, _, vh = jnp.linalg.svd(m, full_matrices=False)
    return vh.T if axis == 1 else u


@transform
def scale_by_conda(b1=0.9, b2=0.999, eps=1e-8, update_proj_gap=2000, scale=1.0):
    """Conda's direction: u_t = c_t * scale * back(P(m_t) / (sqrt(v_t) + eps)), Adam in the momentum's singular basis.

    For an m x n matrix G_t with m >= n: m_t = b1 m_{t-1} + (1 - b1) G_t,
    V the n x n right singular vectors of m_t (an SVD at step 1 and at every
    multiple of ``update_proj_gap``, kept in between), the projections
    P(X) = X V, v_t = b2 v_{t-1} + (1 - b2) P(G_t)^2 (entrywise, m x n), and
    back(Y) = Y V^T.  For m < n the rows are rotated instead: P(X) = U^T X,
    back(Y) = U Y with U the m x m left singular vectors.  The step factor
    is Adam's c_t = sqrt(1 - b2^t) / (1 - b1^t).  The basis is square, so the
    projection loses nothing; v, kept across refreshes, normalises each
    column of the projected gradient.  Leaves that are not matrices take
    Adam's step (no rotation, no ``scale``).  The singular vectors' signs do
    not change u.  pytorch-optimizer's ``Conda`` offers other
    ``projection_type`` choices; this is its default, "std".

    Args:
      b1: the decay of m, in [0, 1).
      b2: the decay of v, in [0, 1).
      eps: added to sqrt(v), >= 0.
      update_proj_gap: steps between SVDs, an integer >= 1.
      scale: the factor of the matrices' updates.

    Returns:
      A transform with state ``CondaState(count, mu, nu, bases)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_conda()
      >>> g = {"w": jnp.array([[2.0, 0.0], [0.0, -3.0]])}
      >>> jnp.round(tx.update(g, tx.init(g))[0]["w"], 4)
      Array([[ 1.,  0.],
             [ 0., -1.]], dtype=float32)

    Reference: Wang, Zhou, Dong, Li, Li, Zhou, Lao, Fang, Lin, "Conda:
    Column-Normalized Adam for Training Large Language Models Faster", 2025,
    arXiv:2509.24218.
    """
    owner = "scale_by_conda"
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "scale", scale)
    if (
        isinstance(update_proj_gap, bool)
        or int(update_proj_gap) != update_proj_gap
        or update_proj_gap < 1
    ):
        raise ValueError(
            f"{owner}: update_proj_gap must be an integer >= 1, got {update_proj_gap!r}"
        )

    def init(params):
        check_float_leaves(owner, params, "params")
        check_real_leaves(owner, params, "the projection is a real SVD")

        def basis(p):
            axis = _conda_axis(jnp.shape(p))
            if axis is None:
                return {}
            return {axis: jnp.eye(p.shape[axis], dtype=compute_dtype(p.dtype))}

        zeros = jax.tree.map(lambda p: moment_zeros(p, compute_dtype(p.dtype)), params)
        return CondaState(new_count(), zeros, zeros, jax.tree.map(basis, params))

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, CondaState, updates, "mu", "nu")
        t = increment(state.count)
        refresh = (t == 1) | (t % update_proj_gap == 0)

        def leaf(u, mu, nu, bases):
            g = u.astype(mu.dtype)
            mu = moving_average(mu, g, b1)
            factor = jnp.sqrt(debias_denominator(b2, t, g.dtype)) / debias_denominator(
                b1, t, g.dtype
            )
            if bases:
                bases = cond(
                    refresh, lambda: {a: _singular_basis(mu, a) for a in bases}, lambda: bases
                )
                factor = factor * jnp.asarray(scale, g.dtype)
            nu = moving_average_sq(nu, _project(g, bases), b2)
            direction = _project(_project(mu, bases) / (jnp.sqrt(nu) + eps), bases, transpose=False)
            return (factor * direction).astype(u.dtype), mu, nu, bases

        fields = _per_leaf(leaf, 4, updates, state.mu, state.nu, state.bases)
        return fields[0], CondaState(t, *fields[1:])

    return init, update
