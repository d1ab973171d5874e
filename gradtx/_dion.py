"""Low-rank and partial orthonormalized updates: Dion and Dion2.

Both keep a momentum buffer M per matrix that the gradient is added to
(M <- M + G), orthonormalize only part of it, and take that part out of M
with *error feedback*: what was applied leaves the buffer at rate 1 - mu
(Dion) or ef_decay (Dion2), what was not stays for later steps.

* ``scale_by_dion``: a rank-r approximation M ~ P R^T by one power
  iteration from the persistent right factor Q, P orthonormal, R column
  normalised into the next Q; the update is P Q^T.
* ``scale_by_dion2``: the fraction of M's rows (or columns) with the largest
  L1 norms, orthonormalized by a polar function; the update is that
  submatrix in its place, zeros elsewhere.

Matrices are read in PyTorch's (fan_out, fan_in) orientation, the one the
papers and microsoft/dion use: for a leaf of shape (fan_in, fan_out) (a
``x @ W`` weight, gradtx's default ``MuonDimensionNumbers``) that is its
transpose.  Other layouts and batch axes: ``weight_dimension_numbers``, as
in ``orthogonalize``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._checks import check_float_leaves, check_range, check_state, check_state_dtype
from ._moments import as_stored, moment_zeros, moving_average, store
from ._numerics import compute_dtype
from ._orthogonal import _fans, _matrices, _mT, _to_batch, leaf_dimension_numbers, polar_express
from ._recipe import transform
from ._tree import path_str

_ADJUST_LR = ("spectral_norm", "rms_norm", None)


def _shape_factor(adjust_lr, fan_in, fan_out):
    """sqrt(fan_out / fan_in) ("spectral_norm"), 0.2 sqrt(max(fan_in, fan_out)) ("rms_norm") or 1."""
    if adjust_lr == "spectral_norm":
        return math.sqrt(fan_out / fan_in) if fan_in else 1.0
    if adjust_lr == "rms_norm":
        return 0.2 * math.sqrt(max(fan_in, fan_out))
    return 1.0


def _out_in(x, d):
    """x as a stack (batch, fan_out, fan_in), and the map that puts such a stack back."""
    view, inverse = _to_batch(x, d)
    return _mT(view), lambda y: inverse(_mT(y))


def _check_common(owner, adjust_lr):
    if adjust_lr not in _ADJUST_LR:
        raise ValueError(
            f"{owner}: adjust_lr must be 'spectral_norm', 'rms_norm' or None, got {adjust_lr!r}"
        )


def _rank(shape, rank_fraction, rank_multiple_of, rank) -> int:
    """Dion's r for an (m, n) matrix: rank_fraction min(m, n) rounded up to a multiple of
    ``rank_multiple_of``, at most min(m, n); min(rank, m, n) when ``rank`` is given.
    """
    m, n = shape
    if rank is not None:
        return min(int(rank), m, n)
    r = rank_multiple_of * math.ceil(rank_fraction * min(m, n) / rank_multiple_of)
    return min(r, m, n)


def _dion_leaves(owner, state, state_type, updates, weight_dimension_numbers):
    """The checked inputs of a Dion update, per leaf of ``updates``: (path, g) pairs,
    the tree's structure, the leaves' dimension numbers and stored momenta."""
    check_state(owner, state, state_type)
    check_float_leaves(owner, updates, "gradient")
    flat, treedef = jax.tree_util.tree_flatten_with_path(updates)
    dims = leaf_dimension_numbers(weight_dimension_numbers, updates)
    return flat, treedef, dims, treedef.flatten_up_to(as_stored(state.momentum))


class DionState(NamedTuple):
    """count: steps taken; momentum: M per leaf; q: Q per leaf, shape (batch, min(m, n), r)."""

    count: jax.Array
    momentum: Any
    q: Any


@transform(exclude=("mu_dtype", "weight_dimension_numbers"))
def scale_by_dion(
    rank_fraction=1.0,
    mu=0.95,
    epsilon=1e-8,
    *,
    rank=None,
    rank_multiple_of=1,
    power_iters=1,
    adjust_lr="spectral_norm",
    seed=0,
    mu_dtype=None,
    weight_dimension_numbers=None,
):
    """Dion's direction: u_t = s P_t Q_t^T, a rank-r orthonormalized update with error feedback.

    For each matrix X of shape (m, n) = (fan_out, fan_in), with B its
    momentum buffer oriented so that m >= n (transposed when m < n; the
    update is transposed back):

        B_t = M_{t-1} + G_t
        P_t = orth(B_t Q_{t-1}),  R_t = B_t^T P_t      (``power_iters`` times)
        M_t = B_t - (1 - mu) P_t R_t^T                 (error feedback)
        Q_t = R_t / (||R_t||_col + epsilon)            (column normalisation)
        u_t = s P_t Q_t^T

    orth is the Q factor of a Householder QR (microsoft/dion's default
    randomized Cholesky QR gives the same P up to the signs of its columns,
    which u_t and M_t do not depend on).  Q_0 is standard normal, drawn from
    ``jax.random.key(seed)`` folded with the leaf's index: the init is
    reproducible.  If B_t is all zero, P_t = 0 and R_t = Q_{t-1} (NaNs in
    P, R are zeroed), as in microsoft/dion.  s is sqrt(m / n) for
    ``adjust_lr="spectral_norm"`` (the paper's), 0.2 sqrt(max(m, n)) for
    "rms_norm", 1 for None.  The descent step and decoupled weight decay are
    the recipe's (``gradtx.dion``): X_t = X_{t-1} - lr (u_t + wd X_{t-1}).

    Args:
      rank_fraction: r / min(m, n), in (0, 1].
      mu: the error-feedback momentum mu, in [0, 1].
      epsilon: the column normalisation's stabiliser, >= 0.
      rank: an absolute rank r (then ``rank_fraction`` is unused), >= 1.
      rank_multiple_of: round r up to a multiple of this, >= 1.
      power_iters: power iterations per step, >= 1.
      adjust_lr: the shape factor s: "spectral_norm", "rms_norm" or None.
      seed: the integer seed of Q_0.
      mu_dtype: the dtype M and Q are stored in; None: each parameter's.
      weight_dimension_numbers: as in ``orthogonalize``: which axes are
        fan_in (reduction) and fan_out (output); other axes are batch axes.

    Returns:
      A transform with state ``DionState(count, momentum, q)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_dion(rank=1, adjust_lr=None)
      >>> g = {"w": jnp.array([[0.0, 0.0], [0.0, 2.0]])}   # rank 1
      >>> u, state = tx.update(g, tx.init(g))
      >>> jnp.round(jnp.abs(u["w"]), 4)   # its singular pair: e2 e2^T
      Array([[0., 0.],
             [0., 1.]], dtype=float32)

    Reference: Ahn, Xu, Abreu, Langford, "Dion: Distributed Orthonormalized
    Updates", 2025, arXiv:2504.05295 (Algorithm 1; microsoft/dion).
    """
    owner = "scale_by_dion"
    check_range(owner, "rank_fraction", rank_fraction, 0, 1, low_open=True)
    check_range(owner, "mu", mu, 0, 1)
    check_range(owner, "epsilon", epsilon, 0)
    if rank is not None and (int(rank) != rank or rank < 1):
        raise ValueError(f"{owner}: rank must be an integer >= 1 or None, got {rank!r}")
    if int(rank_multiple_of) != rank_multiple_of or rank_multiple_of < 1:
        raise ValueError(
            f"{owner}: rank_multiple_of must be an integer >= 1, got {rank_multiple_of!r}"
        )
    if int(power_iters) != power_iters or power_iters < 1:
        raise ValueError(f"{owner}: power_iters must be an integer >= 1, got {power_iters!r}")
    _check_common(owner, adjust_lr)
    mu_dtype = check_state_dtype(owner, "mu_dtype", mu_dtype)

    def init(params):
        check_float_leaves(owner, params, "params")
        _, leaves, dims, treedef = _matrices(owner, params, weight_dimension_numbers)
        key = jax.random.key(seed)
        qs = []
        for i, (p, d) in enumerate(zip(leaves, dims)):
            view, _ = _out_in(jnp.zeros(jnp.shape(p), p.dtype), d)
            b, m, n = view.shape
            r = _rank((m, n), rank_fraction, rank_multiple_of, rank)
            dtype = p.dtype if mu_dtype is None else mu_dtype
            q = jax.random.normal(jax.random.fold_in(key, i), (b, min(m, n), r))
            qs.append(q.astype(dtype))
        return DionState(
            jnp.zeros([], jnp.int32), moment_zeros(params, mu_dtype), treedef.unflatten(qs)
        )

    def one(g, m_old, q_old, d, path):
        cd = compute_dtype(m_old.dtype, g.dtype)
        g_view, inverse = _out_in(g, d)
        buf = moving_average(_out_in(m_old, d)[0], g_view, 1, weight=1)  # B = M + G
        _, rows, cols = buf.shape
        tall = rows >= cols
        b = buf if tall else _mT(buf)
        q0 = q_old.astype(cd)
        q = q0
        for _ in range(int(power_iters)):
            p, _ = jnp.linalg.qr(b @ q)
            q = _mT(b) @ p
        zero = jnp.all(b == 0, axis=(-2, -1), keepdims=True)
        p = jnp.where(zero, 0, jnp.nan_to_num(p))
        r = jnp.where(zero, q0, jnp.nan_to_num(q))
        b = b - (1 - jnp.asarray(mu, cd)) * (p @ _mT(r))
        q_new = r / (jnp.linalg.norm(r, axis=-2, keepdims=True) + epsilon)
        u = p @ _mT(q_new)
        fan_in, fan_out = _fans(owner, path, g, d)
        u = u * _shape_factor(adjust_lr, fan_in, fan_out)
        if not tall:
            u, b = _mT(u), _mT(b)
        return inverse(u).astype(g.dtype), inverse(b), q_new

    def update(updates, state, params=None, **extra):
        flat, treedef, dims, moms = _dion_leaves(
            owner, state, DionState, updates, weight_dimension_numbers
        )
        qs = treedef.flatten_up_to(state.q)
        out, new_m, new_q = [], [], []
        for (path, g), d, m, q in zip(flat, dims, moms, qs):
            if g.size == 0:  # no entries: nothing to approximate
                out.append(g)
                new_m.append(m)
                new_q.append(q)
                continue
            u, b, qn = one(g, m, q, d, path_str(path))
            out.append(u)
            new_m.append(b)
            new_q.append(qn)
        count = state.count + 1
        momentum = store(treedef.unflatten(new_m), state.momentum, count)
        q = store(treedef.unflatten(new_q), state.q, count, salt=len(flat))
        return treedef.unflatten(out), DionState(count, momentum, q)

    return init, update


class Dion2State(NamedTuple):
    """count: steps taken; momentum: M per leaf, shaped like the params."""

    count: jax.Array
    momentum: Any


@transform(exclude=("polar", "mu_dtype", "weight_dimension_numbers"))
def scale_by_dion2(
    fraction=0.25,
    ef_decay=0.95,
    *,
    polar=None,
    adjust_lr="spectral_norm",
    mu_dtype=None,
    weight_dimension_numbers=None,
):
    """Dion2's direction: u_t = s polar(M_t[S]) on the selected rows S (or columns), 0 elsewhere.

    For each matrix of shape (m, n) = (fan_out, fan_in), slices along its
    shorter side (rows if m <= n, else columns), k = max(1, ceil(fraction
    min(m, n))):

        B_t = M_{t-1} + G_t
        S_t = the k slices of B_t with the largest L1 norms
        O_t = polar(B_t[S_t])
        M_t = B_t with B_t[S_t] scaled by ef_decay   (error feedback)
        u_t[S_t] = s O_t,  u_t = 0 elsewhere

    s is sqrt(m / n) for ``adjust_lr="spectral_norm"`` (the default),
    0.2 sqrt(max(m, n)) for "rms_norm", 1 for None.  The descent step and
    decoupled weight decay are the recipe's (``gradtx.dion2``).  polar
    defaults to ``polar_express()`` (gradtx's five Polar Express steps in
    the input's precision; microsoft/dion runs its own Polar Express
    coefficients in bfloat16).

    Args:
      fraction: the fraction of slices orthonormalized per step, in (0, 1].
      ef_decay: the error-feedback decay of the selected slices, in [0, 1].
      polar: the polar function, ``(..., k, l) -> (..., k, l)``.
      adjust_lr: the shape factor s: "spectral_norm", "rms_norm" or None.
      mu_dtype: the dtype M is stored in; None: each parameter's.
      weight_dimension_numbers: as in ``scale_by_dion``.

    Returns:
      A transform with state ``Dion2State(count, momentum)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_dion2(0.5, polar=gradtx.svd_polar(), adjust_lr=None)
      >>> g = {"w": jnp.array([[3.0, 0.1], [4.0, 0.0]])}   # (fan_in, fan_out)
      >>> tx.update(g, tx.init(g))[0]["w"]   # the heavier output neuron, normalised
      Array([[0.6, 0. ],
             [0.8, 0. ]], dtype=float32)

    Reference: Ahn et al., "Dion2: A Simple Method to Shrink Matrix in
    Muon", 2025, arXiv:2512.16928 (microsoft/dion).
    """
    owner = "scale_by_dion2"
    check_range(owner, "fraction", fraction, 0, 1, low_open=True)
    check_range(owner, "ef_decay", ef_decay, 0, 1)
    _check_common(owner, adjust_lr)
    mu_dtype = check_state_dtype(owner, "mu_dtype", mu_dtype)
    polar = polar_express() if polar is None else polar

    def init(params):
        check_float_leaves(owner, params, "params")
        _matrices(owner, params, weight_dimension_numbers)
        return Dion2State(jnp.zeros([], jnp.int32), moment_zeros(params, mu_dtype))

    def one(g, m_old, d, path):
        g_view, inverse = _out_in(g, d)
        buf = moving_average(_out_in(m_old, d)[0], g_view, 1, weight=1)  # B = M + G
        _, rows, cols = buf.shape
        by_rows = rows <= cols
        b = buf if by_rows else _mT(buf)
        k = max(1, math.ceil(fraction * b.shape[1]))
        _, idx = jax.lax.top_k(jnp.sum(jnp.abs(b), axis=-1), k)
        batch = jnp.arange(b.shape[0])[:, None]
        o = polar(b[batch, idx])
        selected = jnp.zeros(b.shape[:2], bool).at[batch, idx].set(True)[..., None]
        b = jnp.where(selected, b * jnp.asarray(ef_decay, b.dtype), b)
        fan_in, fan_out = _fans(owner, path, g, d)
        scale = _shape_factor(adjust_lr, fan_in, fan_out)
        u = jnp.zeros_like(b).at[batch, idx].set(o.astype(b.dtype) * scale)
        if not by_rows:
            u, b = _mT(u), _mT(b)
        return inverse(u).astype(g.dtype), inverse(b)

    def update(updates, state, params=None, **extra):
        flat, treedef, dims, moms = _dion_leaves(
            owner, state, Dion2State, updates, weight_dimension_numbers
        )
        out, new_m = [], []
        for (path, g), d, m in zip(flat, dims, moms):
            if g.size == 0:  # no entries: nothing to select
                out.append(g)
                new_m.append(m)
                continue
            u, b = one(g, m, d, path_str(path))
            out.append(u)
            new_m.append(b)
        count = state.count + 1
        momentum = store(treedef.unflatten(new_m), state.momentum, count)
        return treedef.unflatten(out), Dion2State(count, momentum)

    return init, update
