"""Matrix preconditioners: SOAP (Adam in Shampoo's eigenbasis), Shampoo, PSGD-Kron.

Each keeps, for every axis a of a parameter leaf G (shape d_1 x ... x d_k),
a d_a x d_a statistic built from the gradient contracted with itself over
all other axes (for a matrix: L = G G^T and R = G^T G).  Axes larger than
``max_precondition_dim`` get no statistic (identity on that axis); 1-D
leaves are preconditioned only when asked (``precondition_1d``); scalars
never are.  So a vector or a scalar falls back to the elementwise method
underneath (Adam for SOAP, the grafted direction for Shampoo), and a 3-D
leaf is preconditioned along each of its three axes.

Arithmetic runs in at least float32; eigendecompositions and QR on the
host's LAPACK (CPU) or the accelerator's solver.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import GradientTransformation
from ._checks import check_float_leaves, check_range, check_state
from ._numerics import compute_dtype, increment, new_count
from ._tree import check_same_structure


def _preconditioned_axes(shape, max_precondition_dim, precondition_1d):
    """The axes of a leaf that get a statistic."""
    if len(shape) == 1 and not precondition_1d:
        return ()
    return tuple(a for a, d in enumerate(shape) if d <= max_precondition_dim)


def _axis_gram(g, axis):
    """G contracted with itself over every axis but ``axis``: (d_a, d_a)."""
    others = tuple(a for a in range(g.ndim) if a != axis)
    return jnp.tensordot(g, g.conj(), axes=(others, others))


def _apply_on_axis(x, q, axis, transpose):
    """x with ``axis`` multiplied by Q^T (forward, ``transpose``) or Q (back)."""
    y = jnp.tensordot(x, q, axes=([axis], [0 if transpose else 1]))
    return jnp.moveaxis(y, -1, axis)


def _project(x, qs, transpose=True):
    for axis, q in qs.items():
        x = _apply_on_axis(x, q, axis, transpose)
    return x


def _check_common(owner, precondition_frequency, max_precondition_dim):
    if int(precondition_frequency) != precondition_frequency or precondition_frequency < 1:
        raise ValueError(f"{owner}: precondition_frequency must be an integer >= 1, got "
                         f"{precondition_frequency!r}")
    if int(max_precondition_dim) != max_precondition_dim or max_precondition_dim < 1:
        raise ValueError(f"{owner}: max_precondition_dim must be an integer >= 1, got "
                         f"{max_precondition_dim!r}")


# ----------------------------------------------------------------------------
# SOAP

class SoapState(NamedTuple):
    """count: steps taken (the first only sets up the bases); mu, nu: Adam's moments
    (mu in the parameter basis, nu in the eigenbasis); stats, bases: per leaf a
    dict {axis: (d, d) array} of Shampoo statistics and their eigenbases."""

    count: Any
    mu: Any
    nu: Any
    stats: Any
    bases: Any


def _eigenbasis(stat):
    """Eigenvectors of a symmetric PSD matrix, largest eigenvalue first."""
    _, vectors = jnp.linalg.eigh(stat)
    return vectors[:, ::-1]


def _refresh(stat, q, nu, axis):
    """One power-iteration step from Q, eigenvalue estimates sorted descending,
    re-orthonormalised by QR; nu's entries along ``axis`` follow the sort."""
    product = stat @ q
    estimate = jnp.sum(q * product, axis=0)
    order = jnp.argsort(-estimate, stable=True)
    nu = jnp.take(nu, order, axis=axis)
    q, _ = jnp.linalg.qr(product[:, order])
    return q, nu


def scale_by_soap(b1=0.95, b2=0.95, shampoo_beta=None, eps=1e-8, precondition_frequency=10, *,
                  max_precondition_dim=10000, precondition_1d: bool = False):
    """SOAP's direction: Adam run in the eigenbasis of Shampoo's statistics.

    For a matrix G_t with statistics L_t = s L_{t-1} + (1 - s) G_t G_t^T and
    R_t = s R_{t-1} + (1 - s) G_t^T G_t (s = ``shampoo_beta``) and their
    eigenbases Q_L, Q_R:

        G'_t = Q_L^T G_t Q_R,   m_t = b1 m_{t-1} + (1 - b1) G_t,
        v_t = b2 v_{t-1} + (1 - b2) G'_t^2,
        u_t = sqrt(1 - b2^k) / (1 - b1^k) * Q_L [(Q_L^T m_t Q_R) / (sqrt(v_t) + eps)] Q_R^T,

    with k = t - 1: the first step only accumulates L, R from G_1 and takes
    their eigenvectors (eigh); it returns a zero update.  After every step
    the statistics take G_t; every ``precondition_frequency`` steps the
    bases are refreshed by one power-iteration step and a QR (the columns
    sorted by estimated eigenvalue, v's entries following them), as in the
    authors' code.  Leaves of any rank: one statistic per axis (see the
    module docstring); with none, this is Adam.

    Args:
      b1: the decay of m, in [0, 1).
      b2: the decay of v, in [0, 1).
      shampoo_beta: s, the decay of the statistics, in [0, 1); None: b2.
      eps: added to sqrt(v), >= 0.
      precondition_frequency: steps between basis refreshes, >= 1.
      max_precondition_dim: axes longer than this are not rotated.
      precondition_1d: rotate vectors too (a d x d statistic).

    Returns:
      A transform with state ``SoapState``.

    Reference: Vyas, Morwani, Zhao, Kwun, Shapira, Brandfonbrener, Janson,
    Kakade, "SOAP: Improving and Stabilizing Shampoo using Adam", 2024,
    arXiv:2409.11321.
    """
    owner = "scale_by_soap"
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    if shampoo_beta is not None:
        check_range(owner, "shampoo_beta", shampoo_beta, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    _check_common(owner, precondition_frequency, max_precondition_dim)
    s = b2 if shampoo_beta is None else shampoo_beta

    def axes_of(p):
        return _preconditioned_axes(jnp.shape(p), max_precondition_dim, precondition_1d)

    def init(params):
        check_float_leaves(owner, params, "params")

        def stats(p):
            cd = compute_dtype(p.dtype)
            return {a: jnp.zeros((p.shape[a], p.shape[a]), cd) for a in axes_of(p)}

        zeros = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), compute_dtype(p.dtype)), params)
        return SoapState(new_count(), zeros, zeros, jax.tree.map(stats, params),
                         jax.tree.map(stats, params))

    def accumulate(g, stats):
        return {a: s * st + (1 - s) * _axis_gram(g, a) for a, st in stats.items()}

    def first(g, mu, nu, stats, bases):
        stats = accumulate(g, stats)
        bases = {a: _eigenbasis(st) for a, st in stats.items()}
        return jnp.zeros_like(g), mu, nu, stats, bases

    def later(k, g, mu, nu, stats, bases):
        rotated = _project(g, bases)
        mu = b1 * mu + (1 - b1) * g
        nu = b2 * nu + (1 - b2) * rotated * rotated
        kf = k.astype(g.dtype)
        step = jnp.sqrt(1 - b2 ** kf) / (1 - b1 ** kf)
        direction = _project(_project(mu, bases) / (jnp.sqrt(nu) + eps), bases, transpose=False)
        stats = accumulate(g, stats)

        def refresh(nu):
            new = {}
            for a in stats:
                new[a], nu = _refresh(stats[a], bases[a], nu, a)
            return new, nu

        if stats:
            bases, nu = jax.lax.cond(k % precondition_frequency == 0, refresh,
                                     lambda nu: (bases, nu), nu)
        return step * direction, mu, nu, stats, bases

    def update(updates, state, params=None, **extra):
        check_state(owner, state, SoapState)
        check_float_leaves(owner, updates, "gradient")
        check_same_structure(owner, state.mu, updates, "the state's moments", "updates",
                             hint="was the state made by init on other params?")
        k = state.count  # updates taken before this step's

        def leaf(u, mu, nu, stats, bases):
            g = u.astype(mu.dtype)
            out = jax.lax.cond(k == 0, lambda: first(g, mu, nu, stats, bases),
                               lambda: later(k, g, mu, nu, stats, bases))
            return (out[0].astype(u.dtype),) + tuple(out[1:])

        treedef = jax.tree.structure(updates)
        outs = [leaf(*args) for args in zip(
            jax.tree.leaves(updates), jax.tree.leaves(state.mu), jax.tree.leaves(state.nu),
            treedef.flatten_up_to(state.stats), treedef.flatten_up_to(state.bases))]
        fields = [treedef.unflatten([o[i] for o in outs]) for i in range(5)]
        return fields[0], SoapState(increment(state.count), *fields[1:])

    return GradientTransformation(init, update, name=owner, hyperparams={
        "b1": b1, "b2": b2, "shampoo_beta": shampoo_beta, "eps": eps,
        "precondition_frequency": precondition_frequency,
        "max_precondition_dim": max_precondition_dim, "precondition_1d": precondition_1d})


# ----------------------------------------------------------------------------
# Shampoo

class ShampooState(NamedTuple):
    """count: steps taken; stats: per leaf {axis: H_a}; roots: per leaf {axis: H_a^(-1/p)}."""

    count: Any
    stats: Any
    roots: Any


def _inverse_root(h, p):
    """H^(-1/p) of a symmetric positive definite H, by its eigendecomposition.

    Eigenvalues are floored at the largest times the dtype's epsilon: round-off
    can push H's smallest ones (as small as matrix_eps) below zero in float32.
    """
    values, vectors = jnp.linalg.eigh(h)
    floor = jnp.maximum(values[-1] * jnp.finfo(values.dtype).eps, jnp.finfo(values.dtype).tiny)
    return (vectors * jnp.maximum(values, floor) ** (-1.0 / p)) @ vectors.T


def scale_by_shampoo(beta2=1.0, matrix_eps=1e-6, precondition_frequency=1, *,
                     exponent_override=None, max_precondition_dim=10000,
                     precondition_1d: bool = True):
    """Shampoo's preconditioning: u = G x_1 H_1^(-1/p) x_2 ... x_k H_k^(-1/p), for a matrix L^(-1/4) G R^(-1/4).

    H_a,t = beta2 H_a,t-1 + G_(a) G_(a)^T (the mode-a unfolding of G_t, so
    L = sum G G^T and R = sum G^T G for a matrix), H_a,0 = matrix_eps I, and
    p = 2k for a leaf with k axes (Gupta et al.'s Algorithm 2; beta2 = 1
    sums, beta2 < 1 forgets).  The roots H^(-1/p) are recomputed from the
    statistics including G_t at steps 1, 1 + f, 1 + 2f, ... (f =
    ``precondition_frequency``) by an eigendecomposition, and reused in
    between.  Scalars, vectors unless ``precondition_1d``, and axes longer
    than ``max_precondition_dim`` are not preconditioned (identity).

    Args:
      beta2: the decay of the statistics, in (0, 1] (1: sums).
      matrix_eps: H_0 = matrix_eps I, > 0.
      precondition_frequency: f, steps between root computations, >= 1.
      exponent_override: p instead of 2k.
      max_precondition_dim: longer axes are not preconditioned.
      precondition_1d: precondition vectors with a full d x d statistic.

    Returns:
      A transform with state ``ShampooState(count, stats, roots)``.

    Reference: Gupta, Koren, Singer, "Shampoo: Preconditioned Stochastic
    Tensor Optimization", ICML 2018, arXiv:1802.09568.
    """
    owner = "scale_by_shampoo"
    check_range(owner, "beta2", beta2, 0, 1, low_open=True)
    check_range(owner, "matrix_eps", matrix_eps, 0, low_open=True)
    _check_common(owner, precondition_frequency, max_precondition_dim)
    if exponent_override is not None:
        check_range(owner, "exponent_override", exponent_override, 0, low_open=True)

    def init(params):
        check_float_leaves(owner, params, "params")

        def stats(p):
            cd = compute_dtype(p.dtype)
            axes = _preconditioned_axes(jnp.shape(p), max_precondition_dim, precondition_1d)
            return {a: matrix_eps * jnp.eye(p.shape[a], dtype=cd) for a in axes}

        return ShampooState(new_count(), jax.tree.map(stats, params),
                            jax.tree.map(stats, params))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, ShampooState)
        check_float_leaves(owner, updates, "gradient")
        treedef = jax.tree.structure(updates)
        refresh = state.count % precondition_frequency == 0

        def leaf(u, stats, roots):
            if not stats:
                return u, stats, roots
            g = u.astype(next(iter(stats.values())).dtype)
            p = exponent_override or 2 * g.ndim
            stats = {a: beta2 * h + _axis_gram(g, a) for a, h in stats.items()}
            roots = jax.lax.cond(refresh,
                                 lambda: {a: _inverse_root(h, p) for a, h in stats.items()},
                                 lambda: roots)
            return _project(g, roots).astype(u.dtype), stats, roots

        outs = [leaf(*args) for args in zip(jax.tree.leaves(updates),
                                            treedef.flatten_up_to(state.stats),
                                            treedef.flatten_up_to(state.roots))]
        fields = [treedef.unflatten([o[i] for o in outs]) for i in range(3)]
        return fields[0], ShampooState(increment(state.count), fields[1], fields[2])

    return GradientTransformation(init, update, name=owner, hyperparams={
        "beta2": beta2, "matrix_eps": matrix_eps,
        "precondition_frequency": precondition_frequency,
        "exponent_override": exponent_override, "max_precondition_dim": max_precondition_dim,
        "precondition_1d": precondition_1d})
