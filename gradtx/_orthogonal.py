"""Orthogonalized updates: polar factors of matrix-shaped directions (Muon's core).

A *polar function* maps a stack of matrices ``X`` of shape ``(..., m, n)``
to approximations of their polar factors polar(X) = U V^T, where
X = U S V^T is the thin SVD.  Three are provided: ``newton_schulz``
(a fixed odd quintic iterated, Jordan's Muon default), ``polar_express``
(Amsel et al.'s per-iteration optimal quintics) and ``svd_polar`` (exact,
for tests).

``orthogonalize(polar)`` is the transform u = polar(g) for every matrix
leaf.  Leaves of the same (reshaped) shape and dtype are stacked and sent to
the polar function as one batch, so a model with many equal-shaped layers
costs a few batched matmuls per iteration instead of a few per layer.
``scale_by_shape`` rescales each matrix by a factor of its shape, and
``scale_by_muon`` is optax's Muon direction: momentum, then the polar factor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._base import EmptyState, GradientTransformation
from ._checks import check_float_leaves, check_range, check_state, moment_state
from ._combine import chain
from ._moments import debiaser, moving_average, moving_average_sq, square_zeros, store
from ._momentum import bias_correction, scale_by_momentum, scale_by_nadam_momentum
from ._numerics import compute_dtype, increment, new_count
from ._recipe import transform
from ._tree import path_str

# Jordan's quintic: p(x) = 3.4445 x - 4.7750 x^3 + 2.0315 x^5.
NS_COEFFS = (3.4445, -4.7750, 2.0315)
# Ahn et al.'s (Dion) five per-iteration quintics, optax's "dion" preset.
DION_NS_COEFFS = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)
_NS_PRESETS = {"standard": NS_COEFFS, "dion": DION_NS_COEFFS}
# Amsel et al. (2025), Algorithm 1: the optimal degree-5 polynomials for
# sigma_min / sigma_max >= 1e-3, before the 1.01 safety factor; the last one
# repeats for any further iteration.
_POLAR_EXPRESS = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
)
_PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")


class MuonDimensionNumbers(NamedTuple):
    """Which axes of a weight form the matrix: ``reduction_axis`` (rows, fan-in) and ``output_axis`` (columns, fan-out).

    Every other axis is a batch axis: each slice is orthogonalized on its
    own.  The default (0, 1) is a 2-D weight used as ``x @ W``.  This is
    optax's ``MuonDimensionNumbers`` (optax's own instances are accepted too).
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


def _is_dim_numbers(x) -> bool:
    return hasattr(x, "reduction_axis") and hasattr(x, "output_axis")


def _mT(x):
    return jnp.swapaxes(x, -1, -2)


# ----------------------------------------------------------------------------
# Polar functions: (..., m, n) -> (..., m, n).


def _quintic(x, a, b, c):
    """One odd quintic step: a X + (b A + c A^2) X with A = X X^H."""
    gram = x @ _mT(x).conj()
    return a * x + (b * gram + c * gram @ gram) @ x


def _gram_quintics(x, schedule):
    """The quintic steps carried out on the Gram matrix: X_k = Q_k X_0.

    With A_k = X_k X_k^H = Q_k A_0 Q_k^H and p_k(A) = a I + b A + c A^2,
    Q_{k+1} = p_k(A_k) Q_k and A_{k+1} = p_k(A_k) A_k p_k(A_k): every product
    is m x m, and X_0 (m x n) is touched twice (A_0 and Q_T X_0) instead of
    twice per step.  Equal to the plain iteration in exact arithmetic; fewer
    flops when n > 1.875 m.
    """
    gram = x @ _mT(x).conj()
    eye = jnp.eye(x.shape[-2], dtype=x.dtype)
    q = None
    for a, b, c in schedule:
        poly = a * eye + b * gram + c * gram @ gram
        q = poly if q is None else poly @ q
        gram = poly @ gram @ poly
    return x if q is None else q @ x


def _rounder(dtype):
    """Round float32 values to ``dtype``'s precision, kept in float32.

    ``lax.reduce_precision`` survives XLA's simplifications, whereas a
    float32 -> bfloat16 -> float32 round trip may be dropped under jit
    (XLA allows excess precision by default).
    """
    info = jnp.finfo(dtype)
    return lambda x: jax.lax.reduce_precision(x, exponent_bits=info.nexp, mantissa_bits=info.nmant)


def _quintic_rounded(x, a, b, c, rnd):
    """The quintic step at a low precision: each matmul accumulates in float32
    and each line (A; bA + cA^2; aX + BX) is rounded once by ``rnd``, as fused
    GEMMs (PyTorch's addmm) do.  ``x`` is float32 holding rounded values."""
    gram = rnd(x @ _mT(x))
    poly = rnd(c * (gram @ gram) + b * gram)
    return rnd(poly @ x + a * x)


def _wide(fn):
    """Run ``fn`` on wide matrices (m <= n): a tall stack is transposed first (smaller X X^T)."""

    def polar(x):
        if x.shape[-2] > x.shape[-1]:
            return _mT(fn(_mT(x)))
        return fn(x)

    return polar


def _frobenius(x):
    return jnp.sqrt(jnp.sum(jnp.abs(x) ** 2, axis=(-2, -1), keepdims=True))


def _check_coeffs(owner, coeffs, steps):
    """Per-iteration (a, b, c) triples from one triple or a sequence of them."""
    arr = np.asarray(coeffs, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] != 3:
        raise ValueError(f"{owner}: ns_coeffs must have shape (3,) or (n, 3), got {arr.shape}")
    if arr.ndim == 1:
        if int(steps) != steps or steps < 0:
            raise ValueError(f"{owner}: ns_steps must be an integer >= 0, got {steps!r}")
        return (tuple(float(c) for c in arr),) * int(steps)
    if arr.shape[0] > steps:
        raise ValueError(
            f"{owner}: {arr.shape[0]} per-iteration ns_coeffs need ns_steps >= "
            f"{arr.shape[0]}, got ns_steps={steps}"
        )
    return tuple(tuple(float(c) for c in row) for row in arr)


def newton_schulz(
    coeffs=NS_COEFFS,
    steps=5,
    *,
    eps=1e-8,
    preconditioning="frobenius",
    eps_clamp: bool = False,
    dtype=None,
    gram=None,
):
    """The Newton-Schulz polar function, X_{k+1} = a X_k + b (X_k X_k^H) X_k + c (X_k X_k^H)^2 X_k.

    X_0 = X / (||X|| + eps).

    With Jordan's default (a, b, c) = (3.4445, -4.7750, 2.0315) the singular
    values land in about [0.7, 1.2] after 5 steps rather than at 1: the
    iteration trades accuracy for speed.  Tall matrices are transposed first
    (the result is the same; the Gram matrix is smaller).  This is optax's
    ``orthogonalize_via_newton_schulz``, batched over leading axes.

    Args:
      coeffs: (a, b, c), one triple for every step, or one triple per step
        (then their number of steps is taken, and ``steps`` must be at least
        that), or a preset name: ``"standard"`` (Jordan's) or ``"dion"``.
      steps: the number of iterations k for a single triple.
      eps: added to the norm (clamped from below with ``eps_clamp``).
      preconditioning: how X_0 is scaled: ``"frobenius"`` (||X||_F),
        ``"spectral"`` (||X||_2, by SVD), ``"aol"`` (Boissin et al.'s row
        rescaling inside the first step) or ``"schatten"`` (the Schatten-4
        norm inside the first step), as in optax.
      eps_clamp: divide by max(||X||_F, eps) instead of ||X||_F + eps
        (PyTorch's ``Muon``).
      dtype: run the iteration in this dtype (e.g. ``jnp.bfloat16``, as
        PyTorch's and Jordan's Muon do): every matmul accumulates in float32
        and every line is rounded to ``dtype`` once; the result is cast back.
        None: the input's dtype (the norm and X_0 of ``"frobenius"`` and
        ``"spectral"`` in at least float32, then cast to it).
      gram: iterate on the m x m Gram matrix, X_k = Q_k X_0 with
        Q_{k+1} = p_k(A_k) Q_k, A_{k+1} = p_k(A_k) A_k p_k(A_k) (the same
        polynomial in exact arithmetic, 2 m^2 n + 20 m^3 flops for 5 steps
        instead of 10 m^2 n + 5 m^3); None: when it is cheaper (n > 1.875 m
        for the wide orientation), with Frobenius or spectral scaling and
        no ``dtype``.

    Returns:
      ``polar(x)`` for arrays of shape ``(..., m, n)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> polar = gradtx.newton_schulz(steps=10)
      >>> s = jnp.linalg.svd(polar(jnp.array([[3.0, 0.0], [0.0, 0.1]])), compute_uv=False)
      >>> bool(jnp.all((s > 0.6) & (s < 1.3)))
      True

    Reference: Jordan et al., "Muon: An optimizer for hidden layers in neural
    networks", 2024, kellerjordan.github.io/posts/muon.
    """
    owner = "newton_schulz"
    if isinstance(coeffs, str):
        if coeffs not in _NS_PRESETS:
            raise ValueError(
                f"{owner}: unknown coeffs preset {coeffs!r}; the presets are {sorted(_NS_PRESETS)}"
            )
        coeffs = _NS_PRESETS[coeffs]
    schedule = _check_coeffs(owner, coeffs, steps)
    check_range(owner, "eps", eps, 0)
    if preconditioning not in _PRECONDITIONINGS:
        raise ValueError(
            f"{owner}: preconditioning must be one of {list(_PRECONDITIONINGS)}, "
            f"got {preconditioning!r}"
        )
    if dtype is not None and preconditioning != "frobenius":
        raise ValueError(
            f"{owner}: a low-precision dtype supports preconditioning='frobenius' "
            f"only, got {preconditioning!r}"
        )

    def first_step(x, a, b, c):
        gram = x @ _mT(x).conj()
        if preconditioning == "aol":
            s = jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.abs(gram), axis=-1), eps))[..., None]
            x, gram = x * s, gram * s * _mT(s)
        else:  # schatten: ||X X^H||_F^(1/2) = ||X||_{S4}
            s = jax.lax.rsqrt(jnp.maximum(_frobenius(gram), eps))
            x, gram = x * s, gram * s * s
        return a * x + (b * gram + c * gram @ gram) @ x

    def iterate(x):
        if dtype is not None:
            out_dtype, rnd = x.dtype, _rounder(dtype)
            x = rnd(x.astype(jnp.float32))
            norm = rnd(jnp.sqrt(jnp.sum(jnp.square(x), axis=(-2, -1), keepdims=True)))
            x = rnd(x / rnd(jnp.maximum(norm, eps) if eps_clamp else norm + eps))
            for a, b, c in schedule:
                x = _quintic_rounded(x, a, b, c, rnd)
            return x.astype(dtype).astype(out_dtype)
        if preconditioning in ("frobenius", "spectral"):
            # The norm and the division run in at least float32: a float16
            # norm overflows at |X| = 256 and eps = 1e-8 is 0 in float16.
            wide = x.astype(compute_dtype(x.dtype))
            if preconditioning == "frobenius":
                norm = _frobenius(wide)
            else:
                norm = jnp.linalg.norm(wide, ord=2, axis=(-2, -1), keepdims=True)
            x = (wide / (jnp.maximum(norm, eps) if eps_clamp else norm + eps)).astype(x.dtype)
            use_gram = 8 * x.shape[-1] > 15 * x.shape[-2] if gram is None else gram
            if use_gram:
                return _gram_quintics(x, schedule)
            steps_ = schedule
        else:
            if not schedule:
                return x
            x = first_step(x, *schedule[0])
            steps_ = schedule[1:]
        for a, b, c in steps_:
            x = _quintic(x, a, b, c)
        return x

    polar = _wide(iterate)
    polar.__name__ = "newton_schulz"
    return polar


def polar_express(steps=5, *, safety=1.01, eps=1e-7, dtype=None):
    """The Polar Express polar function: X_0 = X / (1.01 ||X||_F + eps), X_{k+1} = p_k(X_k).

    p_k(x) = a_k x + b_k x^3 + c_k x^5 is, for each k, the degree-5 odd
    polynomial that makes the composition p_k o ... o p_1 the best uniform
    approximation of sign(x) on [1e-3, 1] (Algorithm 1 of the paper): the
    first steps are aggressive, the later ones converge to polar(X).  The
    coefficients of all but the last polynomial are divided by
    (safety, safety^3, safety^5), and the last repeats beyond 8 steps.

    Args:
      steps: the number of iterations.
      safety: the safety factor, >= 1 (1.01 in the paper).
      eps: added to the scaled norm.
      dtype: run the iteration in this dtype (matmuls accumulate in float32,
        as in ``newton_schulz``); None: the input's dtype.

    Returns:
      ``polar(x)`` for arrays of shape ``(..., m, n)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> polar = gradtx.polar_express(steps=8)
      >>> s = jnp.linalg.svd(polar(jnp.array([[3.0, 0.0], [0.0, 0.1]])), compute_uv=False)
      >>> bool(jnp.all(jnp.abs(s - 1) < 1e-2))
      True

    Reference: Amsel, Persson, Musco, Gower, "The Polar Express: Optimal
    Matrix Sign Methods and Their Application to the Muon Algorithm", 2025,
    arXiv:2505.16932.
    """
    owner = "polar_express"
    if int(steps) != steps or steps < 0:
        raise ValueError(f"{owner}: steps must be an integer >= 0, got {steps!r}")
    check_range(owner, "safety", safety, 1)
    check_range(owner, "eps", eps, 0)
    table = [(a / safety, b / safety**3, c / safety**5) for a, b, c in _POLAR_EXPRESS[:-1]]
    table.append(_POLAR_EXPRESS[-1])
    schedule = [table[min(k, len(table) - 1)] for k in range(int(steps))]

    def iterate(x):
        out_dtype = x.dtype
        if dtype is None:
            wide = x.astype(compute_dtype(x.dtype))
            x = (wide / (_frobenius(wide) * 1.01 + eps)).astype(x.dtype)
            for a, b, c in schedule:
                x = _quintic(x, a, b, c)
            return x
        rnd = _rounder(dtype)
        x = rnd(x.astype(jnp.float32))
        x = rnd(x / rnd(_frobenius(x) * 1.01 + eps))
        for a, b, c in schedule:
            x = _quintic_rounded(x, a, b, c, rnd)
        return x.astype(dtype).astype(out_dtype)

    polar = _wide(iterate)
    polar.__name__ = "polar_express"
    return polar


def svd_polar():
    """The exact polar factor by SVD: polar(X) = U V^T for X = U S V^T (thin SVD).

    Slow on accelerators and exact: the reference the iterative polar
    functions approximate, for tests and small models.  Singular directions
    with S = 0 are arbitrary.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> gradtx.svd_polar()(jnp.array([[2.0, 0.0], [0.0, -0.5]]))
      Array([[ 1.,  0.],
             [ 0., -1.]], dtype=float32)
    """

    def polar(x):
        u, _, vh = jnp.linalg.svd(x, full_matrices=False)
        return u @ vh

    polar.__name__ = "svd_polar"
    return polar


POLAR_NAMES = ("newton_schulz", "polar_express", "svd")


def polar_function(
    owner,
    polar,
    *,
    ns_coeffs=NS_COEFFS,
    ns_steps=5,
    eps=1e-8,
    preconditioning="frobenius",
    eps_clamp=False,
):
    """The polar function ``polar`` names, or ``polar`` itself when it is a function.

    ``"newton_schulz"``: ``newton_schulz(ns_coeffs, ns_steps, eps=eps,
    preconditioning=preconditioning, eps_clamp=eps_clamp)``;
    ``"polar_express"``: ``polar_express(ns_steps)``; ``"svd"``:
    ``svd_polar()``.  Any other name raises a ValueError naming ``owner``
    and listing the names.
    """
    if isinstance(polar, str):
        if polar == "newton_schulz":
            return newton_schulz(
                ns_coeffs, ns_steps, eps=eps, preconditioning=preconditioning, eps_clamp=eps_clamp
            )
        if polar == "polar_express":
            return polar_express(ns_steps)
        if polar == "svd":
            return svd_polar()
        raise ValueError(
            f"{owner}: unknown polar {polar!r}; give a function or one of {list(POLAR_NAMES)}"
        )
    if not callable(polar):
        raise TypeError(
            f"{owner}: polar must be a function (..., m, n) -> (..., m, n) or one of "
            f"{list(POLAR_NAMES)}, got {polar!r}"
        )
    return polar


# ----------------------------------------------------------------------------
# Matrices out of leaves: reshape by dimension numbers, group by shape.


def _axes(x, dim_numbers):
    def norm(axes):
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        return tuple(a % x.ndim for a in axes)

    return norm(dim_numbers.reduction_axis), norm(dim_numbers.output_axis)


def _fans(owner, path, x, dim_numbers):
    """(fan_in, fan_out): the products of the reduction and output axes."""
    if dim_numbers is None:
        if x.ndim != 2:
            raise ValueError(
                f"{owner}: leaf {path} has shape {tuple(x.shape)}, not a matrix; give "
                f"weight_dimension_numbers for it, or route non-matrix leaves to another "
                f"transform (gradtx.muon sends them to AdamW)"
            )
        return x.shape[0], x.shape[1]
    red, out = _axes(x, dim_numbers)
    if set(red) & set(out) or not red or not out:
        raise ValueError(
            f"{owner}: leaf {path}: reduction axes {red} and output axes {out} "
            f"must be non-empty and disjoint"
        )
    return math.prod(x.shape[a] for a in red), math.prod(x.shape[a] for a in out)


def _to_batch(x, dim_numbers):
    """x as (batch, fan_in, fan_out), and the function that undoes it."""
    if dim_numbers is None:
        return x[None], lambda y: y[0]
    red, out = _axes(x, dim_numbers)
    batch = tuple(a for a in range(x.ndim) if a not in red + out)
    order = batch + red + out
    moved = jnp.transpose(x, order)
    shape = moved.shape
    flat = moved.reshape(
        math.prod(shape[: len(batch)]),
        math.prod(x.shape[a] for a in red),
        math.prod(x.shape[a] for a in out),
    )
    inverse = tuple(np.argsort(order))
    return flat, lambda y: jnp.transpose(y.reshape(shape), inverse)


def _spec_per_leaf(spec, tree, is_spec) -> list:
    """One entry per leaf of ``tree`` from ``spec``, a tree of specs (``is_spec``) or
    None shaped like ``tree`` or a prefix of it: a leaf takes the entry above it."""
    out = []
    jax.tree.map(
        lambda d, sub: out.extend([d] * len(jax.tree.leaves(sub))),
        spec,
        tree,
        is_leaf=lambda x: x is None or is_spec(x),
    )
    return out


def leaf_dimension_numbers(weight_dimension_numbers, updates) -> list:
    """One entry per leaf of ``updates``: its ``MuonDimensionNumbers`` or None (a plain matrix).

    ``weight_dimension_numbers`` is None, one ``MuonDimensionNumbers`` for
    every leaf, a tree of them (None entries: plain matrices) shaped like the
    updates or a prefix of them, or a function ``updates -> that tree``.
    Leaves that are None in ``updates`` (other parameter groups) are skipped.
    """
    n = len(jax.tree.leaves(updates))
    spec = weight_dimension_numbers
    if callable(spec) and not _is_dim_numbers(spec):
        spec = spec(updates)
    if spec is None:
        return [None] * n
    if _is_dim_numbers(spec):
        return [spec] * n
    return _spec_per_leaf(spec, updates, _is_dim_numbers)


def _matrices(owner, updates, weight_dimension_numbers):
    """The leaves, their paths, dimension numbers and (batch, rows, cols) views."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(updates)
    dims = leaf_dimension_numbers(weight_dimension_numbers, updates)
    paths = [path_str(p) for p, _ in flat]
    leaves = [x for _, x in flat]
    for path, x, d in zip(paths, leaves, dims):
        _fans(owner, path, x, d)
    return paths, leaves, dims, treedef


def _split_over(stacked, shard_matrices):
    """Pad the stack to a multiple of the mesh axis and split its matrices over it."""
    from jax.sharding import NamedSharding, PartitionSpec

    mesh, axis = shard_matrices
    size = mesh.shape[axis]
    n = stacked.shape[0]
    pad = -n % size
    if pad:
        stacked = jnp.concatenate([stacked, jnp.zeros((pad,) + stacked.shape[1:], stacked.dtype)])
    return jax.lax.with_sharding_constraint(stacked, NamedSharding(mesh, PartitionSpec(axis))), n


def _gathered(result, n, shard_matrices):
    from jax.sharding import NamedSharding, PartitionSpec

    mesh, _ = shard_matrices
    return jax.lax.with_sharding_constraint(result, NamedSharding(mesh, PartitionSpec()))[:n]


def orthogonalize(
    polar=None, *, adaptive: bool = False, weight_dimension_numbers=None, shard_matrices=None
):
    """Orthogonalize every matrix: u = polar(g), or u = <g, polar(g)> polar(g) when adaptive.

    polar(G) = U V^T for G = U S V^T is the steepest-descent direction under
    the spectral norm (Bernstein & Newhouse).  ``adaptive`` scales it by the
    dual norm <G, polar(G)> = tr(S) (Bernstein et al., arXiv:2409.20325).

    Leaves of equal (reshaped) shape and dtype are stacked and orthogonalized
    as one batch, a tall (n, m) matrix transposed to join the wide (m, n)
    ones (polar(X^T) = polar(X)^T): one call of ``polar`` per distinct shape.  Only matrices
    are accepted: 2-D leaves, or any leaf with ``weight_dimension_numbers``
    (its other axes are batch axes).  Scalars and vectors raise an error;
    route them elsewhere, as ``gradtx.muon`` does.

    Args:
      polar: the polar function, ``(..., m, n) -> (..., m, n)``; None:
        ``newton_schulz()`` (5 steps of Jordan's quintic).
      adaptive: multiply by <g, polar(g)>.
      weight_dimension_numbers: None (every leaf a 2-D ``x @ W`` weight), a
        ``MuonDimensionNumbers`` for all leaves, a tree of them (None entries:
        2-D) shaped like the params or a prefix of them, or a function
        ``params -> such a tree``.
      shard_matrices: None, or ``(mesh, axis)``: under ``jit`` on that mesh
        each stack of same-shape matrices is split over the mesh axis (padded
        with zero matrices to a multiple of its size), so each device
        orthogonalizes only the matrices it holds, and the results are
        gathered (replicated) afterwards: the ZeRO-1 layout of distributed
        Muon.  The numbers are those of the unsplit computation.

    Returns:
      A stateless transform.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.orthogonalize(gradtx.svd_polar())
      >>> u, _ = tx.update({"w": jnp.array([[2.0, 0.0], [0.0, -0.5]])}, tx.init(None))
      >>> u["w"]
      Array([[ 1.,  0.],
             [ 0., -1.]], dtype=float32)
    """
    owner = "orthogonalize"
    polar = newton_schulz() if polar is None else polar
    if not callable(polar):
        raise TypeError(
            f"{owner}: polar must be a function (..., m, n) -> (..., m, n), got {polar!r}"
        )

    def update(updates, state, params=None, **extra):
        check_state(owner, state, EmptyState)
        check_float_leaves(owner, updates, "gradient")
        paths, leaves, dims, treedef = _matrices(owner, updates, weight_dimension_numbers)
        views, inverses, tall, groups = [], [], [], {}
        for i, (x, d) in enumerate(zip(leaves, dims)):
            view, inverse = _to_batch(x, d)
            tall.append(view.shape[1] > view.shape[2])
            view = _mT(view) if tall[-1] else view  # (m, n) and (n, m) share a batch
            views.append(view)
            inverses.append(inverse)
            groups.setdefault((view.shape[1:], view.dtype), []).append(i)
        out: list = [None] * len(leaves)
        for members in groups.values():
            stacked = (
                jnp.concatenate([views[i] for i in members])
                if len(members) > 1
                else views[members[0]]
            )
            if shard_matrices is None:
                result = jnp.asarray(polar(stacked))
            else:
                stacked, n = _split_over(stacked, shard_matrices)
                result = _gathered(polar(stacked), n, shard_matrices)
            offset = 0
            for i in members:
                size = views[i].shape[0]
                out[i] = result[offset : offset + size]
                offset += size
        for i, x in enumerate(leaves):
            o = inverses[i](_mT(out[i]) if tall[i] else out[i])
            if adaptive:
                o = jnp.sum(x.conj() * o).astype(x.dtype) * o
            out[i] = o.astype(x.dtype)
        return treedef.unflatten(out), state

    return GradientTransformation(
        lambda params: EmptyState(),
        update,
        name=owner,
        hyperparams={"polar": polar, "adaptive": adaptive},
    )


@transform(exclude=("weight_dimension_numbers",))
def scale_by_shape(weight_dimension_numbers=None, consistent_rms=None):
    """Scale each matrix by a factor of its shape: u = sqrt(max(1, fan_out / fan_in)) g.

    With ``consistent_rms``: u = consistent_rms sqrt(max(fan_in, fan_out)) g.

    For a weight used as ``x @ W`` of shape (fan_in, fan_out) the first is
    Jordan's width scaling; the second (Liu et al., arXiv:2502.16982) gives
    an orthogonal update the RMS ``consistent_rms`` whatever the shape, so
    that 0.2 matches AdamW's typical update RMS and AdamW's learning rate and
    weight decay carry over.  PyTorch's layout (out, in) is
    ``MuonDimensionNumbers(reduction_axis=1, output_axis=0)``: then the first
    factor is sqrt(max(1, rows / cols)), ``torch.optim.Muon``'s "original".
    optax's ``scale_by_shape`` (in optax.contrib's Muon module).

    Args:
      weight_dimension_numbers: as in ``orthogonalize``.
      consistent_rms: None (width scaling) or the target RMS (0.2 matches AdamW).

    Returns:
      A stateless transform.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_shape(consistent_rms=0.2)
      >>> tx.update({"w": jnp.ones((4, 16))}, tx.init(None))[0]["w"][0, 0]
      Array(0.8, dtype=float32)
    """
    owner = "scale_by_shape"
    if consistent_rms is not None:
        check_range(owner, "consistent_rms", consistent_rms, 0)

    def update(updates, state, params=None, **extra):
        check_state(owner, state, EmptyState)
        paths, leaves, dims, treedef = _matrices(owner, updates, weight_dimension_numbers)
        out = []
        for path, x, d in zip(paths, leaves, dims):
            fan_in, fan_out = _fans(owner, path, x, d)
            if consistent_rms is None:
                # A matrix without rows (fan_in = 0) has no entries to scale.
                factor = math.sqrt(max(1.0, fan_out / fan_in)) if fan_in else 1.0
            else:
                factor = math.sqrt(max(fan_in, fan_out)) * consistent_rms
            out.append(x * jnp.asarray(factor, x.dtype))
        return treedef.unflatten(out), state

    return lambda params: EmptyState(), update


def scale_by_muon(
    ns_coeffs=NS_COEFFS,
    ns_steps=5,
    beta=0.95,
    eps=1e-8,
    mu_dtype=None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning="frobenius",
    weight_dimension_numbers=None,
    polar=None,
):
    """Muon's direction: u_t = polar(m_hat_t), m_t = beta m_{t-1} + (1 - beta) g_t.

    m_hat_t = m_t / (1 - beta^t), or with ``nesterov`` (the default) NAdam's
    look-ahead beta m_t / (1 - beta^(t+1)) + (1 - beta) g_t / (1 - beta^t).
    polar is ``newton_schulz(ns_coeffs, ns_steps, eps=eps,
    preconditioning=preconditioning)`` unless ``polar`` is given.  optax's
    ``optax.contrib.scale_by_muon``, with its keywords and defaults.

    Args:
      ns_coeffs: the Newton-Schulz coefficients (a triple, per-step
        triples, or a preset name), as in ``newton_schulz``.
      ns_steps: the number of Newton-Schulz steps.
      beta: the momentum decay, in [0, 1).
      eps: the Newton-Schulz norm stabiliser, >= 0.
      mu_dtype: the dtype m_t is stored in; None: each parameter's dtype.
      nesterov: use the look-ahead.
      adaptive: scale by <m_hat, polar(m_hat)> (see ``orthogonalize``).
      preconditioning: as in ``newton_schulz``.
      weight_dimension_numbers: as in ``orthogonalize``.
      polar: gradtx's addition: a polar function, or a name of
        ``polar_function`` (``"newton_schulz"``, the default, ``"polar_express"``
        with ``ns_steps`` steps, or ``"svd"``); then ``ns_coeffs``, ``eps`` and
        ``preconditioning`` serve ``"newton_schulz"`` only.

    Returns:
      ``chain(momentum, orthogonalize(polar))``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_muon(polar=gradtx.svd_polar())
      >>> g = {"w": jnp.array([[2.0, 0.0], [0.0, -0.5]])}
      >>> u, _ = tx.update(g, tx.init(g))
      >>> u["w"]
      Array([[ 1.,  0.],
             [ 0., -1.]], dtype=float32)

    Reference: Jordan et al., "Muon: An optimizer for hidden layers in neural
    networks", 2024; Liu et al., "Muon is Scalable for LLM Training", 2025,
    arXiv:2502.16982.
    """
    owner = "scale_by_muon"
    check_range(owner, "beta", beta, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    polar = polar_function(
        owner,
        "newton_schulz" if polar is None else polar,
        ns_coeffs=ns_coeffs,
        ns_steps=ns_steps,
        eps=eps,
        preconditioning=preconditioning,
    )
    if nesterov:
        momentum = scale_by_nadam_momentum(beta, momentum_decay=None, mu_dtype=mu_dtype)
    else:
        momentum = chain(
            scale_by_momentum(beta, ema=True, mu_dtype=mu_dtype), bias_correction(beta)
        )
    return chain(
        momentum,
        orthogonalize(polar, adaptive=adaptive, weight_dimension_numbers=weight_dimension_numbers),
        name=owner,
        hyperparams={
            "ns_steps": ns_steps,
            "beta": beta,
            "eps": eps,
            "nesterov": nesterov,
            "adaptive": adaptive,
            "preconditioning": preconditioning,
        },
    )


class NeuronRmsState(NamedTuple):
    """nu: per leaf, the running mean square of each output neuron, shape (batch, 1, fan_out)."""

    nu: Any


@transform(exclude=("weight_dimension_numbers",))
def scale_by_neuron_rms(decay=0.95, eps=1e-10, *, weight_dimension_numbers=None):
    """NorMuon's neuron-wise normalisation: u = O / (sqrt(v) + eps) * ||O||_F / ||O / (sqrt(v) + eps)||_F.

    For a matrix O (fan_in x fan_out, the layout of ``x @ W``), each output
    neuron j keeps v_j = decay v_j + (1 - decay) mean_i O_ij^2, the mean
    over its fan-in, and its column is divided by sqrt(v_j) + eps; the
    result is rescaled to O's Frobenius norm (``eps`` also guards that
    division), so only the neurons' relative scales change.  Placed after
    ``orthogonalize`` it evens out the per-neuron norms the polar factor
    leaves uneven.  PyTorch's (out, in) layout normalises rows:
    ``MuonDimensionNumbers(reduction_axis=1, output_axis=0)``.

    Args:
      decay: the decay of v, in [0, 1).
      eps: added to sqrt(v) and to the norm, >= 0.
      weight_dimension_numbers: as in ``orthogonalize``.

    Returns:
      A transform with state ``NeuronRmsState(nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_neuron_rms(0.0)
      >>> o = {"w": jnp.array([[3.0, 1.0], [4.0, 0.0]])}   # column norms 5 and 1
      >>> u, _ = tx.update(o, tx.init(o))
      >>> [round(float(n), 4) for n in jnp.linalg.norm(u["w"], axis=0)]  # equal, norm kept
      [3.6056, 3.6056]

    Reference: Li, Liu, Liang, Chen, Zhao, "NorMuon: Making Muon more
    efficient and scalable", 2025, arXiv:2510.05491.
    """
    owner = "scale_by_neuron_rms"
    check_range(owner, "decay", decay, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)

    def init(params):
        check_float_leaves(owner, params, "params")
        _, leaves, dims, treedef = _matrices(owner, params, weight_dimension_numbers)
        nu = []
        for p, d in zip(leaves, dims):
            view, _ = _to_batch(jnp.zeros(jnp.shape(p), compute_dtype(p.dtype)), d)
            nu.append(jnp.zeros((view.shape[0], 1, view.shape[2]), view.dtype))
        return NeuronRmsState(treedef.unflatten(nu))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, NeuronRmsState)
        check_float_leaves(owner, updates, "gradient")
        _, leaves, dims, treedef = _matrices(owner, updates, weight_dimension_numbers)
        nus = treedef.flatten_up_to(state.nu)
        out, new_nu = [], []
        for x, d, nu in zip(leaves, dims, nus):
            if x.size == 0:  # no entries: nothing to average, an empty update
                out.append(x)
                new_nu.append(nu)
                continue
            view, inverse = _to_batch(x.astype(nu.dtype), d)
            nu = store(moving_average(nu, jnp.mean(view * view, axis=1, keepdims=True), decay), nu)
            scaled = view / (jnp.sqrt(nu) + eps)
            scaled = scaled * (_frobenius(view) / (_frobenius(scaled) + eps))
            out.append(inverse(scaled).astype(x.dtype))
            new_nu.append(nu)
        return treedef.unflatten(out), NeuronRmsState(treedef.unflatten(new_nu))

    return init, update


class OrthogonalRmsState(NamedTuple):
    """count: t; nu: the moving average of O_t^2, elementwise."""

    count: Any
    nu: Any


@transform(exclude=("weight_dimension_numbers",))
def scale_by_orthogonal_rms(decay=0.95, eps=1e-10, *, weight_dimension_numbers=None):
    """AdaMuon's elementwise normalisation: u = sqrt(min(m, n)) O' / (||O'||_F + eps), O' = O / (sqrt(v_hat) + eps).

    v_t = decay v_{t-1} + (1 - decay) O_t^2 elementwise and v_hat = v_t /
    (1 - decay^t).  Each (m, n) matrix (per batch slice with dimension
    numbers) is rescaled to the Frobenius norm sqrt(min(m, n)) of an
    orthogonal matrix, so that ``scale_by_shape(consistent_rms=0.2)`` after
    it gives the update RMS 0.2.  Placed after ``orthogonalize``.

    Args:
      decay: the decay of v, in [0, 1).
      eps: added to sqrt(v_hat) and to the norm, >= 0.
      weight_dimension_numbers: as in ``orthogonalize``.

    Returns:
      A transform with state ``OrthogonalRmsState(count, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_orthogonal_rms(0.95)
      >>> o = {"w": jnp.array([[1.0, 0.0], [0.0, -1.0]])}
      >>> [round(float(x), 4) for x in tx.update(o, tx.init(o))[0]["w"].ravel()]
      [1.0, 0.0, 0.0, -1.0]

    Reference: Si, Zhang, Li, Lin, Chen, Lu, "AdaMuon: Adaptive Muon
    Optimizer", 2025, arXiv:2507.11005.
    """
    owner = "scale_by_orthogonal_rms"
    check_range(owner, "decay", decay, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)

    def init(params):
        check_float_leaves(owner, params, "params")
        return OrthogonalRmsState(count=new_count(), nu=square_zeros(params))

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, OrthogonalRmsState, updates, "nu")
        check_float_leaves(owner, updates, "gradient")
        count = increment(state.count)
        _, leaves, dims, treedef = _matrices(owner, updates, weight_dimension_numbers)
        nus = treedef.flatten_up_to(state.nu)
        correct = debiaser(decay, count)
        out, new_nu = [], []
        for x, d, nu in zip(leaves, dims, nus):
            v = moving_average_sq(nu, x, decay)
            new_nu.append(store(v, nu, count))
            cd = compute_dtype(x.dtype, v.dtype)
            scaled = x.astype(cd) / (jnp.sqrt(correct(v)).astype(cd) + eps)
            view, inverse = _to_batch(scaled, d)
            target = math.sqrt(min(view.shape[1], view.shape[2]))
            out.append(inverse(view * (target / (_frobenius(view) + eps))).astype(x.dtype))
        return treedef.unflatten(out), OrthogonalRmsState(count, treedef.unflatten(new_nu))

    return init, update
