"""KL-Shampoo and KL-SOAP (Kronecker factors fitted by Kullback-Leibler
minimisation), and one-sided Shampoo (one Kronecker factor, on a matrix's
shorter side).

KL-Shampoo and KL-SOAP keep, for every axis a of a leaf G (shape d_1 x ...
x d_k), a factor S_a = Q_a diag(D_a) Q_a^T of the gradient's second moment
E[g g^T] ~ S_1 x ... x S_k: a d_a x d_a statistic S_a with its eigenbasis
Q_a for the axes that get one (``_matrix``'s rule: axes up to
``max_precondition_dim``, vectors only with ``precondition_1d``, never
scalars), and a fixed basis Q_a = I elsewhere; eigenvalue estimates D_a for
every axis.  A scalar is a vector of one.  So a vector without a statistic
gets a diagonal (RMSprop-like) preconditioner, fitted by the same rule.

Arithmetic runs in at least float32, as in ``_matrix``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._checks import check_float_leaves, check_range, check_real_leaves, moment_state
from ._matrix import (
    _apply_on_axis,
    _axis_gram,
    _check_common,
    _check_soap,
    _eigenbasis,
    _inverse_root,
    _per_leaf,
    _preconditioned_axes,
    _project,
)
from ._moments import debias_denominator, moment_zeros, moving_average
from ._numerics import compute_dtype, cond, increment, new_count
from ._recipe import transform


def _along(v, axis, ndim):
    """A vector of length d_axis shaped to broadcast along ``axis`` of an ndim-array."""
    shape = [1] * ndim
    shape[axis] = v.shape[0]
    return v.reshape(shape)


def _eigenvalue_floor(d, clamp):
    """The smallest eigenvalue estimate kept: 1 / max(10, min(d, clamp))^2 (0 without a clamp)."""
    return 0.0 if clamp is None else 1.0 / max(10, min(d, clamp)) ** 2


def _kl_fit(g, stats, bases, eigenvalues, beta, floors):
    """One step of the KL fit of the factors to the gradient g, with the current Q_b, D_b:

    S_a <- beta S_a + (1 - beta) d_a / N G_(a) (x_{b != a} Q_b D_b^(-1) Q_b^T) G_(a)^T,
    D_a <- max(beta D_a + (1 - beta) d_a / N diag(Q_a^T [same] Q_a), floor_a),

    N the size of g: the second is the mean over the other axes of the rotated,
    whitened gradient squared (Lin et al.'s eigenvalue estimate).
    """
    n = g.size
    inv_sqrt = {a: 1 / jnp.sqrt(d) for a, d in eigenvalues.items()}

    def whiten(x, skip):
        for b, s in inv_sqrt.items():
            if b != skip:
                x = x * _along(s, b, x.ndim)
        return x

    new_stats = {}
    for a, st in stats.items():
        w = g
        for b, q in bases.items():
            if b != a:
                w = _apply_on_axis(w, q, b, True)
        new_stats[a] = moving_average(st, _axis_gram(whiten(w, a), a) * (g.shape[a] / n), beta)
    rotated = _project(g, bases)
    new_eigenvalues = {}
    for a, d in eigenvalues.items():
        w = whiten(rotated, a)
        diag = jnp.mean(w * w, axis=tuple(b for b in range(g.ndim) if b != a))
        new_eigenvalues[a] = jnp.maximum(moving_average(d, diag, beta), floors[a])
    return new_stats, new_eigenvalues


def _first_statistics(g, stats, beta):
    """The first step's statistics S_a <- beta S_a + (1 - beta) d_a / N G_(a) G_(a)^T and their eigenbases."""
    stats = {
        a: moving_average(st, _axis_gram(g, a) * (g.shape[a] / g.size), beta)
        for a, st in stats.items()
    }
    return stats, {a: _eigenbasis(st) for a, st in stats.items()}


def _power_qr(stats, bases):
    """Q_a <- qr(S_a Q_a).Q: one power-iteration step towards S_a's eigenbasis (columns unsorted)."""
    return {a: jnp.linalg.qr(stats[a] @ bases[a])[0] for a in stats}


class KLShampooState(NamedTuple):
    """count: steps taken (the first only sets up the bases); mu: the momentum;
    stats, bases: per leaf {axis: (d, d)} factors S_a and eigenbases Q_a;
    eigenvalues: per leaf {axis: (d,)} estimates D_a (every axis)."""

    count: Any
    mu: Any
    stats: Any
    bases: Any
    eigenvalues: Any


class KLSoapState(NamedTuple):
    """KLShampooState's fields and nu, Adam's second moment in the eigenbasis."""

    count: Any
    mu: Any
    nu: Any
    stats: Any
    bases: Any
    eigenvalues: Any


def _kl_transform(owner, state_type, with_nu, b1, b2, shampoo_beta, eps, frequency, options):
    """The pair (init, update) shared by KL-Shampoo and KL-SOAP; ``with_nu``: KL-SOAP's step."""
    max_dim, precondition_1d, init_factor, clamp = options
    _check_soap(owner, b1, b2, shampoo_beta, eps, frequency, max_dim)
    s = b2 if shampoo_beta is None else shampoo_beta
    check_range(owner, "init_factor", init_factor, 0, low_open=True)
    if clamp is not None:
        check_range(owner, "eigenvalue_clamp", clamp, 1)

    def init(params):
        check_float_leaves(owner, params, "params")
        check_real_leaves(owner, params, "the eigenvalue fit compares magnitudes")

        def factors(p):
            cd = compute_dtype(p.dtype)
            axes = _preconditioned_axes(jnp.shape(p), max_dim, precondition_1d)
            return {a: jnp.zeros((p.shape[a],) * 2, cd) for a in axes}

        def eigenvalues(p):
            cd = compute_dtype(p.dtype)
            shape = jnp.shape(p) or (1,)
            return {a: jnp.full((d,), init_factor, cd) for a, d in enumerate(shape)}

        zeros = jax.tree.map(lambda p: moment_zeros(p, compute_dtype(p.dtype)), params)
        moments = (zeros, zeros) if with_nu else (zeros,)
        return state_type(
            new_count(),
            *moments,
            jax.tree.map(factors, params),
            jax.tree.map(factors, params),
            jax.tree.map(eigenvalues, params),
        )

    def direction(g, mu, nu, bases, eigenvalues):
        """This step's direction from the momentum (and nu), in the current bases."""
        mu = moving_average(mu, g, b1)
        if with_nu:
            rotated = _project(g, bases)
            nu = moving_average(nu, rotated, b2, weight=(1 - b2) * rotated)
            scaled = _project(mu, bases) / (jnp.sqrt(nu) + eps)
        else:
            d = 1.0
            for a, e in eigenvalues.items():
                d = d * _along(e, a, g.ndim)
            scaled = _project(mu, bases) / (jnp.sqrt(d) + eps)
        return _project(scaled, bases, transpose=False), mu, nu

    def leaf(k, u, mu, nu, stats, bases, eigenvalues):
        if jnp.size(u) == 0:
            return jnp.zeros_like(u), mu, nu, stats, bases, eigenvalues
        shape = jnp.shape(u) or (1,)
        g = u.astype(mu.dtype).reshape(shape)
        floors = {a: _eigenvalue_floor(d, clamp) for a, d in enumerate(shape)}

        def first():
            new_stats, new_bases = _first_statistics(g, stats, s)
            return jnp.zeros_like(g), mu, nu, new_stats, new_bases, eigenvalues

        def later():
            out, new_mu, new_nu = direction(
                g, mu.reshape(shape), nu.reshape(shape), bases, eigenvalues
            )
            new_stats, new_eigenvalues = _kl_fit(g, stats, bases, eigenvalues, s, floors)
            new_bases = bases
            if new_stats:
                new_bases = cond(
                    k % frequency == 0, lambda: _power_qr(new_stats, bases), lambda: bases
                )
            return (
                out,
                new_mu.reshape(mu.shape),
                new_nu.reshape(nu.shape),
                new_stats,
                new_bases,
                new_eigenvalues,
            )

        out = cond(k == 0, first, later)
        return (out[0].reshape(jnp.shape(u)).astype(u.dtype),) + tuple(out[1:])

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, state_type, updates, "mu")
        k = state.count  # updates taken before this step's
        nu = state.nu if with_nu else state.mu
        trees = (state.mu, nu, state.stats, state.bases, state.eigenvalues)
        fields = _per_leaf(functools.partial(leaf, k), 6, updates, *trees)
        if not with_nu:
            del fields[2]
        return fields[0], state_type(increment(state.count), *fields[1:])

    return init, update


@transform
def scale_by_kl_shampoo(
    b1=0.9,
    b2=0.98,
    eps=1e-8,
    precondition_frequency=10,
    *,
    shampoo_beta=None,
    init_factor=0.1,
    eigenvalue_clamp=4000,
    max_precondition_dim=10000,
    precondition_1d: bool = False,
):
    """KL-Shampoo's direction: u_t = Q_L [(Q_L^T m_t Q_R) / (sqrt(D_L D_R^T) + eps)] Q_R^T.

    For a d_L x d_R matrix G_t, with m_t = b1 m_{t-1} + (1 - b1) G_t, the
    factors S_L ~ Q_L diag(D_L) Q_L^T, S_R ~ Q_R diag(D_R) Q_R^T are fitted
    by KL minimisation (s = ``shampoo_beta``), after the step, with the
    current Q, D:

        S_L <- s S_L + (1 - s) / d_R G_t S_R^(-1) G_t^T,
        S_R <- s S_R + (1 - s) / d_L G_t^T S_L^(-1) G_t,
        D_L <- s D_L + (1 - s) / d_R diag(Q_L^T G_t S_R^(-1) G_t^T Q_L),  (D_R alike)

    S^(-1) = Q diag(D)^(-1) Q^T: each factor is fitted to the gradient
    whitened by the other, where Shampoo takes G G^T.  The first step only
    sets S_a = (1 - s) d_a / N G_(a) G_(a)^T (N = G's size), Q_a its
    eigenvectors (eigh, largest first) and D_a = ``init_factor``; it returns
    a zero update.  Every ``precondition_frequency`` steps after it, Q_a <-
    qr(S_a Q_a).Q (one power-iteration step; columns not re-sorted).  Each
    D_a is floored at 1 / max(10, min(d_a, eigenvalue_clamp))^2.  A leaf of
    any rank has one factor per axis; axes without a statistic (see the
    module docstring) keep Q_a = I and fit D_a alone, so a vector gets
    m_t / (sqrt(D) + eps), D an average of g^2 started at ``init_factor``.
    There is no bias correction.  This follows the authors' code (KLOpt in
    github.com/yorkerlin/KL-Methods, ``using_klsoap=False``, the damping of
    the factor fit off): exponent -1/2 per factor, eps added to the
    square root of the product of eigenvalues.

    Args:
      b1: the momentum's decay, in [0, 1).
      b2: s's default, in [0, 1).
      eps: added to sqrt(D_L D_R), >= 0.
      precondition_frequency: steps between QR refreshes, >= 1.
      shampoo_beta: s, the decay of S and D; None: b2.
      init_factor: D's initial value, > 0.
      eigenvalue_clamp: the clamp above (None: no floor).
      max_precondition_dim, precondition_1d: which axes get a full factor.

    Returns:
      A transform with state ``KLShampooState``.

    Reference: Lin, Lowe, Dangel, Eschenhagen, Xu, Grosse, "Understanding and
    Improving Shampoo and SOAP via Kullback-Leibler Minimization", 2025,
    arXiv:2509.03378.
    """
    options = (max_precondition_dim, precondition_1d, init_factor, eigenvalue_clamp)
    return _kl_transform(
        "scale_by_kl_shampoo",
        KLShampooState,
        False,
        b1,
        b2,
        shampoo_beta,
        eps,
        precondition_frequency,
        options,
    )


@transform
def scale_by_kl_soap(
    b1=0.9,
    b2=0.98,
    eps=1e-8,
    precondition_frequency=10,
    *,
    shampoo_beta=None,
    init_factor=0.1,
    eigenvalue_clamp=4000,
    max_precondition_dim=10000,
    precondition_1d: bool = False,
):
    """KL-SOAP's direction: Adam without bias correction in the eigenbasis of KL-Shampoo's factors.

    With G'_t = Q_L^T G_t Q_R:

        m_t = b1 m_{t-1} + (1 - b1) G_t,   v_t = b2 v_{t-1} + (1 - b2) G'_t^2,
        u_t = Q_L [(Q_L^T m_t Q_R) / (sqrt(v_t) + eps)] Q_R^T,

    Q_L, Q_R (and the eigenvalue estimates D that the fit needs) maintained
    exactly as in ``scale_by_kl_shampoo``: the first step only sets up the
    bases (a zero update), the factors are fitted by KL minimisation after
    every step, and Q <- qr(S Q).Q every ``precondition_frequency`` steps;
    v is kept in the eigenbasis and not re-sorted at a refresh.  The authors'
    code keeps m in the eigenbasis and rotates it at each refresh, the same
    in exact arithmetic (Q is orthogonal).  Axes without a statistic keep Q
    = I: a vector gets Adam without bias correction.  This follows KLOpt in
    github.com/yorkerlin/KL-Methods with ``using_klsoap=True``.

    Args:
      b1: the decay of m, in [0, 1).
      b2: the decay of v (and s's default), in [0, 1).
      eps: added to sqrt(v), >= 0.
      precondition_frequency, shampoo_beta, init_factor: as in ``scale_by_kl_shampoo``.
      eigenvalue_clamp, max_precondition_dim, precondition_1d: as there too.

    Returns:
      A transform with state ``KLSoapState``.

    Reference: Lin, Lowe, Dangel, Eschenhagen, Xu, Grosse, "Understanding and
    Improving Shampoo and SOAP via Kullback-Leibler Minimization", 2025,
    arXiv:2509.03378.
    """
    options = (max_precondition_dim, precondition_1d, init_factor, eigenvalue_clamp)
    return _kl_transform(
        "scale_by_kl_soap",
        KLSoapState,
        True,
        b1,
        b2,
        shampoo_beta,
        eps,
        precondition_frequency,
        options,
    )


# ----------------------------------------------------------------------------
# One-sided Shampoo


class OneSidedShampooState(NamedTuple):
    """count: steps taken; mu: the momentum; stats, roots: per leaf {axis: H} and
    {axis: (H_hat + eps I)^(-1/2)} for its one preconditioned axis (empty if none)."""

    count: Any
    mu: Any
    stats: Any
    roots: Any


def _one_side(shape, max_precondition_dim):
    """The axis a leaf of two or more axes is preconditioned along: its shortest
    (the first of equals), if at most ``max_precondition_dim``; none for vectors and scalars."""
    if len(shape) < 2 or 0 in shape:
        return ()
    a = min(range(len(shape)), key=lambda i: shape[i])
    return (a,) if shape[a] <= max_precondition_dim else ()


@transform
def scale_by_one_sided_shampoo(
    b1=0.95,
    b2=0.95,
    eps=1e-12,
    precondition_frequency=1,
    *,
    max_precondition_dim=10000,
):
    """One-sided Shampoo: u_t = (H_hat_t + eps I)^(-1/2) m_hat_t on a matrix's shorter side.

    For a d_a x d_b matrix G_t with d_a <= d_b (else the same on the right:
    m_hat_t (H_hat_t + eps I)^(-1/2), H from G^T G):

        H_t = b2 H_{t-1} + (1 - b2) G_t G_t^T / d_b,   H_hat_t = H_t / (1 - b2^t),
        m_t = b1 m_{t-1} + (1 - b1) G_t,              m_hat_t = m_t / (1 - b1^t),

    H_0 = 0.  H / d_b is the one-sided Kronecker estimate (S_a / d_b) x I of
    E[g g^T] that minimises the KL divergence with the other factor fixed at
    I (Lin et al.'s Claim 1), so the step has Adam's scale: for gradients of
    i.i.d. entries of variance sigma^2, H_hat ~ sigma^2 I.  With b1 = b2 = 0
    and eps = 0 it is sqrt(d_b) (G G^T)^(-1/2) G, sqrt(d_b) times G's polar
    factor (Muon's direction at unit RMS).
    The root is recomputed (eigh, eigenvalues floored at the largest times
    the dtype's epsilon) at steps 1, 1 + f, ... (f =
    ``precondition_frequency``) and reused in between.  A leaf of more axes
    is preconditioned along its shortest axis (contracting the others);
    vectors, scalars and leaves whose shortest axis exceeds
    ``max_precondition_dim`` get m_hat_t unchanged (route them elsewhere,
    as ``one_sided_shampoo`` does).  This is the one-sided Shampoo of An et
    al.'s ASGO (there with a sum, H = sum G G^T, where this takes a moving
    average).

    Args:
      b1: the momentum's decay, in [0, 1).
      b2: H's decay, in [0, 1).
      eps: the damping added to H_hat, >= 0.
      precondition_frequency: f, steps between root computations, >= 1.
      max_precondition_dim: a longer shortest axis is not preconditioned.

    Returns:
      A transform with state ``OneSidedShampooState``.

    Reference: An, Liu, Pan, Chen, Zhu, Wang, "ASGO: Adaptive Structured
    Gradient Optimization", 2025, arXiv:2503.20762; Lin et al.,
    "Understanding and Improving Shampoo and SOAP via Kullback-Leibler
    Minimization", 2025, arXiv:2509.03378.
    """
    owner = "scale_by_one_sided_shampoo"
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    _check_common(owner, precondition_frequency, max_precondition_dim)

    def init(params):
        check_float_leaves(owner, params, "params")
        check_real_leaves(owner, params, "the root's eigenvalues are real")

        def stats(p):
            cd = compute_dtype(p.dtype)
            return {
                a: jnp.zeros((p.shape[a],) * 2, cd)
                for a in _one_side(jnp.shape(p), max_precondition_dim)
            }

        mu = jax.tree.map(lambda p: moment_zeros(p, compute_dtype(p.dtype)), params)
        return OneSidedShampooState(
            new_count(), mu, jax.tree.map(stats, params), jax.tree.map(stats, params)
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, OneSidedShampooState, updates, "mu")
        t = increment(state.count)
        refresh = state.count % precondition_frequency == 0

        def leaf(u, mu, stats, roots):
            g = u.astype(mu.dtype)
            mu = moving_average(mu, g, b1)
            m_hat = mu / debias_denominator(b1, t, mu.dtype)
            if not stats:
                return m_hat.astype(u.dtype), mu, stats, roots
            (a,) = stats
            h = moving_average(stats[a], _axis_gram(g, a) * (g.shape[a] / g.size), b2)
            eye = jnp.eye(h.shape[0], dtype=h.dtype)

            def root():
                return _inverse_root(h / debias_denominator(b2, t, h.dtype) + eps * eye, 2)

            r = cond(refresh, root, lambda: roots[a])
            out = _apply_on_axis(m_hat, r, a, True)
            return out.astype(u.dtype), mu, {a: h}, {a: r}

        fields = _per_leaf(leaf, 4, updates, state.mu, state.stats, state.roots)
        return fields[0], OneSidedShampooState(t, *fields[1:])

    return init, update
