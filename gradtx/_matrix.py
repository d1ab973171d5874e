"""Matrix preconditioners: SOAP (Adam in Shampoo's eigenbasis), Shampoo, PSGD-Kron;
GaLore (a transform run in a low-rank subspace of each matrix gradient).

Each keeps, for every axis a of a parameter leaf G (shape d_1 x ... x d_k),
a d_a x d_a statistic built from the gradient contracted with itself over
all other axes (for a matrix: L = G G^T and R = G^T G).  Axes larger than
``max_precondition_dim`` get no statistic (identity on that axis); 1-D
leaves are preconditioned only when asked (``precondition_1d``); scalars
never are.  So a vector or a scalar falls back to the elementwise method
underneath (Adam for SOAP, the grafted direction for Shampoo), and a 3-D
leaf is preconditioned along each of its three axes.

Arithmetic runs in at least float32; eigendecompositions and QR on the
host's LAPACK (CPU) or the accelerator's solver.  GaLore's matrices are
chosen by ``GaLoreDimensionNumbers`` instead (see ``scale_by_galore``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import GradientTransformation
from ._checks import (
    check_float_leaves,
    check_range,
    check_real_leaves,
    check_state,
    check_transformation,
    moment_state,
)
from ._combine import chain, precondition
from ._moments import debias_denominator, debiaser, moment_zeros, moving_average
from ._momentum import bias_correction, scale_by_momentum
from ._numerics import compute_dtype, cond, increment, new_count
from ._orthogonal import _spec_per_leaf
from ._recipe import transform
from ._second_moment import scale_by_rms
from ._tree import check_same_structure, path_str


def _preconditioned_axes(shape, max_precondition_dim, precondition_1d):
    """The axes of a leaf that get a statistic (none for a leaf without entries)."""
    if (len(shape) == 1 and not precondition_1d) or 0 in shape:
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


def _per_leaf(leaf, n, updates, *trees):
    """``leaf(u, *entries)`` for each leaf u of ``updates`` and the matching
    entries of ``trees`` (each with updates' structure down to its leaves: an
    array or a per-leaf dict); its ``n`` results, gathered as n trees of
    updates' structure."""
    treedef = jax.tree.structure(updates)
    outs = [
        leaf(*args)
        for args in zip(jax.tree.leaves(updates), *(treedef.flatten_up_to(t) for t in trees))
    ]
    return [treedef.unflatten([o[i] for o in outs]) for i in range(n)]


def _axis_statistics(owner, updates, stats):
    """The per-leaf statistics ``{axis: (d_a, d_a)}`` of ``stats``, one per leaf of
    ``updates``; raise, naming the leaf, where they are not this update's."""
    hint = "was the state made by init on other params?"
    treedef = jax.tree.structure(updates)
    try:
        per_leaf = treedef.flatten_up_to(stats)
    except (ValueError, TypeError) as error:
        # For the message: one entry per leaf's {axis: statistic} dict, to name the leaf.
        leaves = jax.tree.map(
            lambda _: 0,
            stats,
            is_leaf=lambda x: isinstance(x, dict) and all(isinstance(k, int) for k in x),
        )
        check_same_structure(owner, leaves, updates, "the state's statistics", "updates", hint)
        raise ValueError(
            f"{owner}: updates do not match the state's statistics ({error}); {hint}"
        ) from None
    flat = jax.tree_util.tree_flatten_with_path(updates)[0]
    for (path, u), leaf_stats in zip(flat, per_leaf):
        shape = jnp.shape(u)
        for axis, h in leaf_stats.items():
            if axis >= len(shape) or jnp.shape(h) != (shape[axis],) * 2:
                raise ValueError(
                    f"{owner}: updates leaf {path_str(path)} has shape {shape} but the "
                    f"state's statistic of its axis {axis} has shape {jnp.shape(h)}; {hint}"
                )
    return per_leaf


def _check_common(owner, precondition_frequency, max_precondition_dim):
    if int(precondition_frequency) != precondition_frequency or precondition_frequency < 1:
        raise ValueError(
            f"{owner}: precondition_frequency must be an integer >= 1, got "
            f"{precondition_frequency!r}"
        )
    if int(max_precondition_dim) != max_precondition_dim or max_precondition_dim < 1:
        raise ValueError(
            f"{owner}: max_precondition_dim must be an integer >= 1, got {max_precondition_dim!r}"
        )


def _check_soap(owner, b1, b2, shampoo_beta, eps, precondition_frequency, max_precondition_dim):
    """The checks of SOAP's hyperparameters, which KL-Shampoo and KL-SOAP share."""
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    if shampoo_beta is not None:
        check_range(owner, "shampoo_beta", shampoo_beta, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    _check_common(owner, precondition_frequency, max_precondition_dim)


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


@transform
def scale_by_soap(
    b1=0.95,
    b2=0.95,
    shampoo_beta=None,
    eps=1e-8,
    precondition_frequency=10,
    *,
    max_precondition_dim=10000,
    precondition_1d: bool = False,
):
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
    _check_soap(owner, b1, b2, shampoo_beta, eps, precondition_frequency, max_precondition_dim)
    s = b2 if shampoo_beta is None else shampoo_beta

    def axes_of(p):
        return _preconditioned_axes(jnp.shape(p), max_precondition_dim, precondition_1d)

    def init(params):
        check_float_leaves(owner, params, "params")

        def stats(p):
            cd = compute_dtype(p.dtype)
            return {a: jnp.zeros((p.shape[a], p.shape[a]), cd) for a in axes_of(p)}

        zeros = jax.tree.map(lambda p: moment_zeros(p, compute_dtype(p.dtype)), params)
        return SoapState(
            new_count(), zeros, zeros, jax.tree.map(stats, params), jax.tree.map(stats, params)
        )

    def accumulate(g, stats):
        return {a: moving_average(st, _axis_gram(g, a), s) for a, st in stats.items()}

    def first(g, mu, nu, stats, bases):
        stats = accumulate(g, stats)
        bases = {a: _eigenbasis(st) for a, st in stats.items()}
        return jnp.zeros_like(g), mu, nu, stats, bases

    def later(k, g, mu, nu, stats, bases):
        rotated = _project(g, bases)
        mu = moving_average(mu, g, b1)
        nu = moving_average(nu, rotated, b2, weight=(1 - b2) * rotated)  # (1 - b2) * G' * G'
        step = jnp.sqrt(debias_denominator(b2, k, g.dtype)) / debias_denominator(b1, k, g.dtype)
        direction = _project(_project(mu, bases) / (jnp.sqrt(nu) + eps), bases, transpose=False)
        stats = accumulate(g, stats)

        def refresh(nu):
            new = {}
            for a in stats:
                new[a], nu = _refresh(stats[a], bases[a], nu, a)
            return new, nu

        if stats:
            bases, nu = cond(k % precondition_frequency == 0, refresh, lambda nu: (bases, nu), nu)
        return step * direction, mu, nu, stats, bases

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, SoapState, updates, "mu")
        k = state.count  # updates taken before this step's

        def leaf(u, mu, nu, stats, bases):
            g = u.astype(mu.dtype)
            out = cond(
                k == 0,
                lambda: first(g, mu, nu, stats, bases),
                lambda: later(k, g, mu, nu, stats, bases),
            )
            return (out[0].astype(u.dtype),) + tuple(out[1:])

        fields = _per_leaf(leaf, 5, updates, state.mu, state.nu, state.stats, state.bases)
        return fields[0], SoapState(increment(state.count), *fields[1:])

    return init, update


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


@transform
def scale_by_shampoo(
    beta2=1.0,
    matrix_eps=1e-6,
    precondition_frequency=1,
    *,
    exponent_override=None,
    max_precondition_dim=1024,
    precondition_1d: bool = False,
):
    """Shampoo's preconditioning: u = G x_1 H_1^(-1/p) x_2 ... x_k H_k^(-1/p), for a matrix L^(-1/4) G R^(-1/4).

    H_a,t = beta2 H_a,t-1 + G_(a) G_(a)^T (the mode-a unfolding of G_t, so
    L = sum G G^T and R = sum G^T G for a matrix), H_a,0 = matrix_eps I, and
    p = 2k for a leaf with k axes (Gupta et al.'s Algorithm 2; beta2 = 1
    sums, beta2 < 1 forgets).  The roots H^(-1/p) are recomputed from the
    statistics including G_t at steps 1, 1 + f, 1 + 2f, ... (f =
    ``precondition_frequency``) by an eigendecomposition, and reused in
    between.  Scalars, vectors unless ``precondition_1d``, and axes longer
    than ``max_precondition_dim`` are not preconditioned (identity).

    Cost: a preconditioned axis of length d keeps two d x d matrices (H and
    its root; 8 MiB in float32 at d = 1024), adds d times the leaf's size
    multiply-adds per step, and an eigendecomposition of d x d (O(d^3): for
    d = 1024 about a second on a few CPU cores) per root computation.  The
    defaults bound d by 1024 and leave vectors alone (a (2048,) bias
    preconditioned whole would take 32 MiB and a 2048 x 2048 eigendecomposition
    per step); Meta's Distributed Shampoo also caps d at 1024, splitting longer
    axes into blocks where gradtx leaves them unpreconditioned.  On a CPU, a
    ``precondition_frequency`` of 10 to 100 divides the eigendecompositions'
    cost accordingly.

    In float32 the roots resolve eigenvalues of H only down to about 1e-7 of
    the largest: with a small ``matrix_eps`` the directions without
    curvature yet carry round-off (one ulp of H can move the root there by
    percents); prefer float64 statistics or a larger ``matrix_eps`` there.

    Args:
      beta2: the decay of the statistics, in (0, 1] (1: sums).
      matrix_eps: H_0 = matrix_eps I, > 0.
      precondition_frequency: f, steps between root computations, >= 1.
      exponent_override: p instead of 2k.
      max_precondition_dim: longer axes are not preconditioned (1024).
      precondition_1d: precondition vectors with a full d x d statistic
        (False: vectors pass through).

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

        return ShampooState(new_count(), jax.tree.map(stats, params), jax.tree.map(stats, params))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, ShampooState)
        check_float_leaves(owner, updates, "gradient")
        _axis_statistics(owner, updates, state.stats)
        refresh = state.count % precondition_frequency == 0

        def leaf(u, stats, roots):
            if not stats:
                return u, stats, roots
            g = u.astype(next(iter(stats.values())).dtype)
            p = exponent_override or 2 * g.ndim
            stats = {a: beta2 * h + _axis_gram(g, a) for a, h in stats.items()}
            roots = cond(
                refresh, lambda: {a: _inverse_root(h, p) for a, h in stats.items()}, lambda: roots
            )
            return _project(g, roots).astype(u.dtype), stats, roots

        fields = _per_leaf(leaf, 3, updates, state.stats, state.roots)
        return fields[0], ShampooState(increment(state.count), fields[1], fields[2])

    return init, update


# ----------------------------------------------------------------------------
# PSGD with Kronecker-factored preconditioners


class PsgdKronState(NamedTuple):
    """count: steps taken; key: the PRNG key of the probes and update draws;
    mu: the momentum; qs: per leaf {axis: Q_a} (upper-triangular d x d, or a
    length-d vector for a diagonal factor)."""

    count: Any
    key: Any
    mu: Any
    qs: Any


def _default_update_probability(count):
    """max(0.03, min(1, exp(-0.001 (t - 500)))) at t = steps taken: always for 500 steps, then rarer."""
    t = count.astype(jnp.float32)
    return jnp.clip(jnp.exp(-0.001 * (t - 500.0)), 0.03, 1.0)


def _multiply_axis(x, q, axis, transpose=False):
    """x with Q (or Q^T) applied along ``axis``; a vector Q scales it."""
    if q.ndim == 1:
        shape = [1] * x.ndim
        shape[axis] = q.shape[0]
        return x * q.reshape(shape)
    return _apply_on_axis(x, q, axis, transpose=transpose)


def _solve_axis(x, q, axis):
    """x with Q^(-T) applied along ``axis`` (a triangular solve); a vector Q divides."""
    if q.ndim == 1:
        shape = [1] * x.ndim
        shape[axis] = q.shape[0]
        return x / q.reshape(shape)
    moved = jnp.moveaxis(x, axis, -1)
    solved = jax.scipy.linalg.solve_triangular(
        q, moved.reshape(-1, q.shape[0]).T, trans=1, lower=False
    ).T
    return jnp.moveaxis(solved.reshape(moved.shape), -1, axis)


def _axis_stat(x, axis, diagonal):
    """Sum over all other axes of x_a x_b (a matrix) or of x_a^2 (its diagonal)."""
    if diagonal:
        others = tuple(a for a in range(x.ndim) if a != axis)
        return jnp.sum(x * x, axis=others)
    return _axis_gram(x, axis)


def _norm_lower_bound(a):
    """A cheap lower bound on the spectral norm of a symmetric matrix (Li's PSGD):
    the norm of A times its largest column (or row), normalised."""
    max_abs = jnp.max(jnp.abs(a))
    a = a / jnp.where(max_abs > 0, max_abs, 1)
    sq = a * a
    col, row = jnp.sum(sq, axis=0), jnp.sum(sq, axis=1)
    tiny = jnp.finfo(a.dtype).tiny
    x0 = a[:, jnp.argmax(col)] @ a
    bound0 = jnp.linalg.norm((x0 / jnp.maximum(jnp.linalg.norm(x0), tiny)) @ a.T)
    x1 = a @ a[jnp.argmax(row), :]
    bound1 = jnp.linalg.norm(a.T @ (x1 / jnp.maximum(jnp.linalg.norm(x1), tiny)))
    return max_abs * jnp.where(jnp.max(col) > jnp.max(row), bound0, bound1)


def _kron_factors(shape, max_size_triangular, min_ndim_triangular, dtype):
    """{axis: Q_0}: identity matrices, or ones vectors for diagonal axes; none for a
    leaf without entries (its update is empty)."""
    qs = {}
    if 0 in tuple(shape):
        return qs
    shape = tuple(shape) or (1,)  # a scalar: one diagonal factor of size 1
    for a, d in enumerate(shape):
        diagonal = d == 1 or d > max_size_triangular or len(shape) < min_ndim_triangular
        qs[a] = jnp.ones(d, dtype) if diagonal else jnp.eye(d, dtype=dtype)
    return qs


@transform
def scale_by_psgd_kron(
    b1=0.9,
    precond_lr=0.1,
    update_probability=None,
    *,
    max_size_triangular=8192,
    min_ndim_triangular=2,
    seed=0,
    update_with_momentum: bool = True,
    clip_rms=1.1,
):
    """PSGD-Kron's direction: u = P m_hat, P = (Q_1^T Q_1) x ... x (Q_k^T Q_k), clipped to RMS <= clip_rms.

    m_t = b1 m_{t-1} + (1 - b1) g_t, m_hat = m_t / (1 - b1^t).  With
    probability p_t (``update_probability``) each Q_a first takes one step
    of Li's whitening fit on the pair (h, v), h = m_hat (or g_t), v a
    standard normal probe:

        A = h x_a Q_a,   B = v x_a Q_a^(-T),
        Q_a <- Q_a - precond_lr * triu(A_(a) A_(a)^T - B_(a) B_(a)^T) Q_a
                     / (||A_(a) A_(a)^T + B_(a) B_(a)^T||_lb + tiny)

    (||.||_lb a lower bound on the spectral norm; a diagonal Q_a uses the
    diagonals and the max norm), which drives P towards E[h h^T]^(-1/2).
    Q_a is upper triangular, or diagonal for axes of size 1, longer than
    ``max_size_triangular``, or leaves with fewer than
    ``min_ndim_triangular`` axes (vectors and scalars: a diagonal
    preconditioner, Adam-like; a scalar is a vector of one).  Then u = P m_hat, scaled by
    min(1, clip_rms / (RMS(u) + 1e-6)).  The probes are
    normal(fold_in(fold_in(key, t), i)) for leaf i at step t (0 first), the
    update draw uniform(fold_in(key, t)) < p_t, key = PRNGKey(seed).

    Args:
      b1: the momentum decay, in [0, 1).
      precond_lr: the step of the preconditioner fit, > 0.
      update_probability: p_t, a number in [0, 1] or a schedule ``t -> p``;
        None: 1 for 500 steps, then exp(-0.001 (t - 500)), at least 0.03.
      max_size_triangular, min_ndim_triangular: when factors are diagonal.
      seed: the seed of the probes and draws.
      update_with_momentum: fit the preconditioner to m_hat (True) or g_t.
      clip_rms: the largest RMS of the update.

    Returns:
      A transform with state ``PsgdKronState(count, key, mu, qs)``.

    Reference: Li, "Preconditioned Stochastic Gradient Descent", 2015,
    arXiv:1512.04202; Li, "Black Box Lie Group Preconditioners for SGD",
    2022, arXiv:2211.04422 (the Kronecker-factored whitening preconditioner).
    """
    owner = "scale_by_psgd_kron"
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "precond_lr", precond_lr, 0, low_open=True)
    check_range(owner, "clip_rms", clip_rms, 0, low_open=True)
    if update_probability is not None and not callable(update_probability):
        check_range(owner, "update_probability", update_probability, 0, 1)
    tiny = float(jnp.finfo(jnp.bfloat16).tiny)

    def probability(count):
        if update_probability is None:
            return _default_update_probability(count)
        if callable(update_probability):
            return update_probability(count)
        return update_probability

    def init(params):
        check_float_leaves(owner, params, "params")
        check_real_leaves(owner, params, "the preconditioner's fit compares magnitudes")
        mu = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), compute_dtype(p.dtype)), params)
        qs = jax.tree.map(
            lambda p: _kron_factors(
                jnp.shape(p), max_size_triangular, min_ndim_triangular, compute_dtype(p.dtype)
            ),
            params,
        )
        return PsgdKronState(new_count(), jax.random.PRNGKey(seed), mu, qs)

    def fit(qs, h, v):
        a, b = h, v
        for axis, q in qs.items():
            a = _multiply_axis(a, q, axis)
            b = _solve_axis(b, q, axis)
        new = {}
        for axis, q in qs.items():
            diagonal = q.ndim == 1
            t1, t2 = _axis_stat(a, axis, diagonal), _axis_stat(b, axis, diagonal)
            if diagonal:
                new[axis] = q - precond_lr * (t1 - t2) * q / (jnp.max(jnp.abs(t1 + t2)) + tiny)
            else:
                new[axis] = (
                    q - precond_lr * jnp.triu(t1 - t2) / (_norm_lower_bound(t1 + t2) + tiny) @ q
                )
        return new

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, PsgdKronState, updates, "mu")
        treedef = jax.tree.structure(updates)
        step_key = jax.random.fold_in(state.key, state.count)
        do_fit = jax.random.uniform(step_key) < jnp.asarray(probability(state.count))
        t = increment(state.count)
        outs = []
        for i, (u, mu, qs) in enumerate(
            zip(
                jax.tree.leaves(updates), jax.tree.leaves(state.mu), treedef.flatten_up_to(state.qs)
            )
        ):
            g = u.astype(mu.dtype)
            mu = moving_average(mu, g, b1)
            m_hat = debiaser(b1, t)(mu)
            shape = g.shape or (1,)
            probe = jax.random.normal(jax.random.fold_in(step_key, i), g.shape, g.dtype)
            h = (m_hat if update_with_momentum else g).reshape(shape)
            qs = cond(do_fit, lambda: fit(qs, h, probe.reshape(shape)), lambda: qs)
            direction = m_hat.reshape(shape)
            for axis, q in qs.items():
                direction = _multiply_axis(direction, q, axis)
            for axis, q in qs.items():
                direction = _multiply_axis(direction, q, axis, transpose=True)
            direction = direction.reshape(g.shape)
            rms = jnp.sqrt(jnp.mean(direction * direction))
            direction = direction * jnp.minimum(clip_rms / (rms + 1e-6), 1.0)
            outs.append((direction.astype(u.dtype), mu, qs))
        fields = [treedef.unflatten([o[i] for o in outs]) for i in range(3)]
        return fields[0], PsgdKronState(t, state.key, fields[1], fields[2])

    return init, update


# ----------------------------------------------------------------------------
# GaLore: a transform run on low-rank projections of the matrix gradients


class GaLoreDimensionNumbers(NamedTuple):
    """Which axes of a leaf form GaLore's matrix: ``reduction_axis`` (rows) and ``output_axis`` (columns).

    The leaf is transposed to (reduction axes, output axes) and reshaped to a
    (prod of reduction sizes, prod of output sizes) matrix; every axis must be
    one or the other.  The default (0, 1) is a 2-D weight.  This is optax's
    ``optax.contrib.GaLoreDimensionNumbers`` (optax's own instances are
    accepted too).
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


class GaLoreState(NamedTuple):
    """count: steps taken; base_optimizer_state: the base transform's state, over
    the low-rank gradients of the projected leaves and the full gradients of the
    others; projector: per leaf its projector P (a (0, 0) array where none)."""

    count: Any
    base_optimizer_state: Any
    projector: Any


def _is_galore_dims(x) -> bool:
    return hasattr(x, "reduction_axis") and hasattr(x, "output_axis")


def _galore_leaf_dims(spec, tree) -> list:
    """One entry per leaf of ``tree``: its dimension numbers, or None (not projected)."""
    leaves = jax.tree.leaves(tree)
    if callable(spec) and not _is_galore_dims(spec):
        spec = spec(tree)
    if spec is None:
        return [GaLoreDimensionNumbers() if jnp.ndim(x) == 2 else None for x in leaves]
    if _is_galore_dims(spec):
        return [spec if jnp.ndim(x) >= 2 else None for x in leaves]
    return _spec_per_leaf(spec, tree, _is_galore_dims)


def _galore_axes(axis, ndim):
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


def _galore_matrix(owner, path, x, dims):
    """x as GaLore's (rows, cols) matrix, and the function that undoes it."""
    if x.ndim < 2:
        raise ValueError(f"{owner}: leaf {path} has shape {x.shape}; GaLore needs rank >= 2")
    red = _galore_axes(dims.reduction_axis, x.ndim)
    out = _galore_axes(dims.output_axis, x.ndim)
    if set(red) & set(out) or len(set(red + out)) != x.ndim:
        raise ValueError(
            f"{owner}: leaf {path} of shape {x.shape}: reduction axes {red} and output "
            f"axes {out} must be disjoint and name every axis"
        )
    order = red + out
    moved = tuple(x.shape[a] for a in order)
    rows = math.prod(x.shape[a] for a in red)
    inverse = tuple(sorted(range(x.ndim), key=lambda i: order[i]))
    return (
        jnp.transpose(x, order).reshape(rows, -1),
        lambda y: jnp.transpose(y.reshape(moved), inverse),
    )


def _galore_projector(g, rank):
    """P: the leading ``rank`` left singular vectors of G (m >= n) or right ones (m < n)."""
    u, _, vh = jnp.linalg.svd(g, full_matrices=False)
    return u[:, :rank] if g.shape[0] >= g.shape[1] else vh[:rank].T


def scale_by_galore(
    rank=128,
    update_proj_gap=200,
    scale=1.0,
    base_optimizer=None,
    weight_dimension_numbers=None,
):
    """GaLore: a base transform run on R_t = P_t^T G_t (or G_t P_t), projected back: u_t = scale * P_t base(R_t).

    For a matrix G_t (m x n) with m >= n, P_t holds the first r = min(rank,
    m, n) left singular vectors of G_t, recomputed by an SVD at steps 1,
    1 + gap, 1 + 2 gap, ... (gap = ``update_proj_gap``) and kept in between;
    R_t = P_t^T G_t (r x n) and u_t = scale * P_t N_t, N_t the base
    transform's output on R_t.  For m < n, P_t holds the first r right
    singular vectors, R_t = G_t P_t (m x r) and u_t = scale * N_t P_t^T.
    The base transform's state lives in the subspace and is kept across
    refreshes.  Leaves that are not projected (by default every leaf but the
    2-D ones) go through the base transform whole, and are not scaled.  The
    singular vectors' signs are the solver's choice; flipping column i of P
    flips row i of R, and an elementwise base transform (Adam) flips row i of
    N with it, so u_t does not change while P_t is fixed.  The SVD runs in
    the leaf's compute dtype (float64 under x64; optax's in float32 always).

    Args:
      rank: the largest rank r of the projection, an integer >= 1.
      update_proj_gap: steps between SVDs, an integer >= 1.
      scale: the factor of the projected leaves' updates.
      base_optimizer: the transform run in the subspace; it gets no params
        (nor extra keywords), so it must be a gradient-only transform (Adam's
        step, Lion's, RMS scaling), not one that decays weights.  None:
        Adam's step with b1 = 0.9, b2 = 0.999, eps = 1e-8.
      weight_dimension_numbers: which leaves are projected, and as what
        matrix: None (the 2-D leaves, as they are), one
        ``GaLoreDimensionNumbers`` (every leaf of rank >= 2), a tree of them
        shaped like the params or a prefix of them (None: not projected), or
        a function ``params -> such a tree``.

    Returns:
      A transform with state ``GaLoreState(count, base_optimizer_state, projector)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_galore(rank=1, base_optimizer=gradtx.identity())
      >>> g = {"w": jnp.array([[3.0, 0.0], [0.0, 1.0]])}
      >>> u, state = tx.update(g, tx.init(g))  # keeps G's rank-1 part
      >>> jnp.abs(u["w"])
      Array([[3., 0.],
             [0., 0.]], dtype=float32)

    Reference: Zhao, Zhang, Chen, Wang, Anandkumar, Tian, "GaLore:
    Memory-Efficient LLM Training by Gradient Low-Rank Projection", ICML 2024,
    arXiv:2403.03507.
    """
    owner = "scale_by_galore"
    if isinstance(rank, bool) or int(rank) != rank or rank < 1:
        raise ValueError(f"{owner}: rank must be an integer >= 1, got {rank!r}")
    if int(update_proj_gap) != update_proj_gap or update_proj_gap < 1:
        raise ValueError(
            f"{owner}: update_proj_gap must be an integer >= 1, got {update_proj_gap!r}"
        )
    rank = int(rank)
    if base_optimizer is None:  # Adam's step (adam_step of the optimizers' Adam)
        base_optimizer = precondition(
            chain(scale_by_momentum(0.9, ema=True), bias_correction(0.9)),
            by=scale_by_rms(0.999, 1e-8, eps_in_sqrt=False, bias_correction=True),
        )
    check_transformation(owner, "base_optimizer", base_optimizer)

    def matrices(tree):
        """Per leaf: (leaf, its matrix or None, the inverse reshape or None)."""
        flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
        dims = _galore_leaf_dims(weight_dimension_numbers, tree)
        out = []
        for (path, x), d in zip(flat, dims):
            if d is None or jnp.size(x) == 0:  # a leaf without entries has no subspace
                out.append((x, None, None))
            else:
                out.append((x, *_galore_matrix(owner, path_str(path), jnp.asarray(x), d)))
        return out, treedef

    def init(params):
        check_float_leaves(owner, params, "params")
        leaves, treedef = matrices(params)
        projectors, proxies = [], []
        for x, g, _ in leaves:
            cd = compute_dtype(x.dtype)
            if g is None:
                projectors.append(jnp.zeros((0, 0), x.dtype))
                proxies.append(jnp.zeros_like(x))
                continue
            (m, n), r = g.shape, min(rank, *g.shape)
            projectors.append(jnp.zeros((m, r) if m >= n else (n, r), cd))
            proxies.append(jnp.zeros((r, n) if m >= n else (m, r), cd))
        return GaLoreState(
            new_count(),
            base_optimizer.init(treedef.unflatten(proxies)),
            treedef.unflatten(projectors),
        )

    def project(g, p, refresh):
        g = g.astype(p.dtype)
        p = cond(refresh, lambda: _galore_projector(g, p.shape[1]), lambda: p)
        return (p.T @ g if g.shape[0] >= g.shape[1] else g @ p), p

    def update(updates, state, params=None, **extra):
        check_state(owner, state, GaLoreState)
        check_float_leaves(owner, updates, "gradient")
        leaves, treedef = matrices(updates)
        projectors = treedef.flatten_up_to(state.projector)
        refresh = state.count % update_proj_gap == 0
        low, new_projectors = [], []
        for (x, g, _), p in zip(leaves, projectors):
            r, p = (x, p) if g is None else project(g, p, refresh)
            low.append(r)
            new_projectors.append(p)
        directions, base_state = base_optimizer.update(
            treedef.unflatten(low), state.base_optimizer_state, None
        )
        out = []
        for (x, g, back), p, n in zip(leaves, new_projectors, treedef.flatten_up_to(directions)):
            if g is None:
                out.append(n)
                continue
            full = p @ n if g.shape[0] >= g.shape[1] else n @ p.T
            out.append((scale * back(full)).astype(x.dtype))
        return treedef.unflatten(out), GaLoreState(
            increment(state.count), base_state, treedef.unflatten(new_projectors)
        )

    return GradientTransformation(
        init,
        update,
        name=owner,
        children=(base_optimizer,),
        hyperparams={
            "rank": rank,
            "update_proj_gap": update_proj_gap,
            "scale": scale,
            "base_optimizer": base_optimizer,
            "weight_dimension_numbers": weight_dimension_numbers,
        },
    )
