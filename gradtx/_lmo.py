"""Linear minimization oracles: the steepest direction of a leaf under a chosen norm.

For a norm ||.|| and its unit ball, lmo(d) = argmax_{||x|| <= 1} <d, x> is
the direction a norm-constrained method moves against (Pethick et al.):
the polar factor for the spectral norm, the sign for the max-norm, each
row or column normalised for the mixed norms.  ``scale_by_lmo`` applies one
oracle per leaf, chosen by name, and multiplies it by the
leaf's radius.  Matrices follow the layout of ``x @ W``, (fan_in, fan_out);
``MuonDimensionNumbers`` name the axes of any other layout (PyTorch's
(out, in) is ``MuonDimensionNumbers(1, 0)``).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from ._base import EmptyState
from ._checks import check_float_leaves, check_range, check_state
from ._numerics import compute_dtype
from ._orthogonal import _fans, _to_batch, leaf_dimension_numbers, orthogonalize, polar_function
from ._recipe import transform
from ._tree import is_mask_function, path_str

LMO_NORMS = ("spectral", "sign", "col", "row", "bias")


def _per_leaf(owner, what, spec, tree, check) -> list[Any]:
    """One entry of ``spec`` per leaf of ``tree``: ``spec`` is one value, a pytree of
    values (None: the default) shaped like ``tree`` or a prefix of it, or a
    function ``tree -> that pytree``."""
    if is_mask_function(spec):
        spec = spec(tree)
    n = len(jax.tree.leaves(tree))
    if spec is None or isinstance(spec, (str, int, float)):
        return [check(spec)] * n
    out = []
    try:
        jax.tree.map(
            lambda s, sub: out.extend([check(s)] * len(jax.tree.leaves(sub))),
            spec,
            tree,
            is_leaf=lambda x: x is None,
        )
    except (ValueError, TypeError, KeyError) as error:
        if "must be" in str(error):
            raise
        raise ValueError(
            f"{owner}: {what} must be shaped like the params or a prefix of them, "
            f"got {jax.tree.structure(spec)} for {jax.tree.structure(tree)}"
        ) from error
    return out


def _lmo_one(name, x, d, eps, owner, path):
    """The oracle ``name`` of one non-spectral leaf, in its compute dtype."""
    if name == "bias":
        rms = jnp.sqrt(jnp.mean(jnp.square(x), axis=0, keepdims=True)) if x.ndim else jnp.abs(x)
        return x / (rms + eps)
    fan_in, fan_out = _fans(owner, path, x, d)
    view, inverse = _to_batch(x, d)
    if name == "sign":
        out = jnp.sign(view) / fan_in
    elif name == "col":  # one row of x @ W per input feature: norm sqrt(fan_out)
        norm = jnp.sqrt(jnp.sum(jnp.square(view), axis=2, keepdims=True))
        out = view / (norm / math.sqrt(fan_out) + eps)
    else:  # "row": one column per output neuron: norm 1 / sqrt(fan_in)
        norm = jnp.sqrt(jnp.sum(jnp.square(view), axis=1, keepdims=True))
        out = view / (norm * math.sqrt(fan_in) + eps)
    return inverse(out)


@transform(exclude=("polar", "weight_dimension_numbers"))
def scale_by_lmo(norms=None, radius=1.0, *, eps=1e-8, polar=None, weight_dimension_numbers=None):
    """A norm's linear minimization oracle per leaf: u = radius * lmo(g).

    For a matrix G of shape (fan_in, fan_out) (the layout of ``x @ W``):

    * ``"spectral"``: sqrt(fan_out / fan_in) polar(G), polar(G) = U V^T
      (the spectral-norm ball of radius sqrt(fan_out / fan_in));
    * ``"sign"``: sign(G) / fan_in (the max-norm ball, for output heads);
    * ``"col"``: each row G_i (one input feature: an embedding row, or a
      column of PyTorch's (out, in) weight) scaled to norm sqrt(fan_out):
      G_i / (||G_i|| / sqrt(fan_out) + eps) (for input layers);
    * ``"row"``: each column G_j (one output neuron) scaled to norm
      1 / sqrt(fan_in): G_j / (sqrt(fan_in) ||G_j|| + eps);
    * ``"bias"``: g / (sqrt(mean_0 g^2) + eps), the RMS over the first axis
      (a vector to RMS 1; a scalar to its sign).

    These are pytorch-optimizer's ``Spectral``, ``Sign``, ``Col``, ``Row``
    and ``BiasRMS`` oracles (their default ``normalize`` options), whose
    "column" and "row" name the axes of PyTorch's (out, in) layout.

    Args:
      norms: the oracle of each leaf: None (2-D leaves and leaves with
        dimension numbers ``"spectral"``, the others ``"bias"``), one of these names
        for every leaf, a pytree of names (None entries: the
        default) shaped like the params or a prefix of them, or a function
        ``params -> that pytree``.
      radius: the radius rho, a number > 0 or a pytree or function of them
        as ``norms``.
      eps: the stabiliser of ``"col"``, ``"row"`` and ``"bias"``.
      polar: the polar function of ``"spectral"``, a function or a name as in
        ``polar_function``; None: ``newton_schulz(eps=1e-7,
        eps_clamp=True)`` (pytorch-optimizer's, which runs it in bfloat16).
      weight_dimension_numbers: as in ``orthogonalize``.

    Returns:
      A stateless transform.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_lmo({"w": "sign", "b": "bias"}, radius=2.0)
      >>> u, _ = tx.update({"w": jnp.array([[3.0, -1.0]]), "b": jnp.array([3.0, -4.0])}, tx.init(None))
      >>> u["w"]   # sign(g) / fan_in * 2
      Array([[ 2., -2.]], dtype=float32)
      >>> [round(float(x), 4) for x in u["b"]]   # g / RMS(g) * 2
      [1.6971, -2.2627]

    Reference: Pethick, Xie, Erdogan, Antonakopoulos, Silveti-Falls, Cevher,
    "Training Deep Learning Models with Norm-Constrained LMOs", 2025,
    arXiv:2502.07529.
    """
    owner = "scale_by_lmo"
    check_range(owner, "eps", eps, 0)
    if polar is None:
        polar_fn = polar_function(owner, "newton_schulz", eps=1e-7, eps_clamp=True)
    else:
        polar_fn = polar_function(owner, polar)
    spectral = orthogonalize(polar_fn, weight_dimension_numbers=weight_dimension_numbers)

    def check_norm(name):
        if name is not None and name not in LMO_NORMS:
            raise ValueError(f"{owner}: norms must be names in {list(LMO_NORMS)}, got {name!r}")
        return name

    def check_radius(r):
        return check_range(owner, "radius", r, 0, low_open=True)

    if not is_mask_function(radius) and isinstance(radius, (int, float)):
        check_radius(radius)

    def update(updates, state, params=None, **extra):
        check_state(owner, state, EmptyState)
        check_float_leaves(owner, updates, "gradient")
        flat, treedef = jax.tree_util.tree_flatten_with_path(updates)
        names = _per_leaf(owner, "norms", norms, updates, check_norm)
        radii = _per_leaf(owner, "radius", radius, updates, check_radius)
        dims = leaf_dimension_numbers(weight_dimension_numbers, updates)
        names = [
            n if n is not None else ("spectral" if x.ndim == 2 or d is not None else "bias")
            for n, (_, x), d in zip(names, flat, dims)
        ]
        leaves = [x for _, x in flat]
        spec = treedef.unflatten([x if n == "spectral" else None for n, x in zip(names, leaves)])
        ortho = jax.tree.leaves(spectral.update(spec, EmptyState())[0])
        out = []
        for (path, x), name, r, d in zip(flat, names, radii, dims):
            if name == "spectral":
                fan_in, fan_out = _fans(owner, path_str(path), x, d)
                factor = math.sqrt(fan_out / fan_in) if fan_in else 1.0
                o = ortho.pop(0) * jnp.asarray(factor * r, x.dtype)
            else:
                # eps and the norms in at least float32 (eps = 1e-8 is 0 in float16).
                wide = x.astype(compute_dtype(x.dtype))
                o = _lmo_one(name, wide, d, eps, owner, path_str(path)) * jnp.asarray(r, wide.dtype)
            out.append(o.astype(x.dtype))
        return treedef.unflatten(out), state

    return lambda params: EmptyState(), update
