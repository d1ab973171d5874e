"""Pytree helpers shared by the transforms: leaf paths, structure checks, zeros, masks."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def path_str(path) -> str:
    """A leaf path as ``['layer']['w']``; ``<root>`` for the root."""
    return jax.tree_util.keystr(path) if path else "<root>"


def leaf_paths(tree) -> list:
    return [p for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def check_same_structure(
    owner: str, expected, got, expected_name: str, got_name: str, hint: str = ""
) -> None:
    """Raise if two pytrees differ, saying which leaf is missing or extra.

    The message names ``owner``, the first leaf ``got`` lacks or has in
    excess (by path), and ends with ``hint``.
    """
    expected_def = jax.tree.structure(expected)
    got_def = jax.tree.structure(got)
    if expected_def == got_def:
        return
    expected_paths = leaf_paths(expected)
    got_paths = leaf_paths(got)
    expected_keys = {path_str(p) for p in expected_paths}
    got_keys = {path_str(p) for p in got_paths}
    missing = [path_str(p) for p in expected_paths if path_str(p) not in got_keys]
    extra = [path_str(p) for p in got_paths if path_str(p) not in expected_keys]
    reasons = []
    if missing:
        reasons.append(
            f"{got_name} lack leaf {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + f", which {expected_name} have"
        )
    if extra:
        reasons.append(
            f"{got_name} have leaf {extra[0]}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
            + f", which {expected_name} do not"
        )
    if not reasons:
        reasons.append(
            f"the container types differ: {expected_name} is {expected_def}, "
            f"{got_name} is {got_def}"
        )
    message = f"{owner}: {got_name} do not match {expected_name}: {'; '.join(reasons)}"
    raise ValueError(message + (f"; {hint}" if hint else ""))


def zeros_like_tree(params, real: bool = False, dtype=None):
    """Zeros shaped like ``params``; ``real`` drops complex to its real dtype.

    Each leaf is made with ``jnp.zeros_like``, so it is placed and sharded
    like its parameter (a ``jax.ShapeDtypeStruct`` with a sharding included)
    instead of landing whole on the default device.
    """

    def zeros(p):
        p = jnp.asarray(p) if not hasattr(p, "dtype") else p
        d = dtype or p.dtype
        if real:
            d = jnp.real(jnp.zeros((), d)).dtype
        return jnp.zeros_like(p, dtype=d)

    return jax.tree.map(zeros, params)


def resolve_mask(mask, params):
    """The pytree of bools a ``mask`` argument stands for, for these ``params``.

    ``mask`` is None, a pytree of bools, or a function ``params -> pytree``.
    A callable that is itself a pytree with leaves (an Equinox module used as
    a mask) is a pytree, as in optax.  Params packed by ``gradtx.flatten``
    pack the mask the same way (they provide ``pack_mask``).
    """
    pack = getattr(params, "pack_mask", None)
    if pack is not None:
        return pack(mask)
    return mask(params) if is_mask_function(mask) else mask


def prune_mask(mask, params):
    """``mask`` without its entries at the params' None leaves, when that makes it fit.

    A group of ``partition`` sees the params with the other groups' leaves
    replaced by None; a mask written for the whole model (as optax's muon
    takes its ``weight_decay_mask``) has a bool there.  Those entries are
    dropped; any other mismatch is left for the caller's structure check.
    """
    if mask is None or jax.tree.structure(mask) == jax.tree.structure(params):
        return mask
    is_none = lambda x: x is None  # noqa: E731
    whole = jax.tree.structure(params, is_leaf=is_none)
    if jax.tree.structure(mask) != whole:
        return mask
    kept = [
        k
        for k, p in zip(jax.tree.leaves(mask), jax.tree.leaves(params, is_leaf=is_none))
        if p is not None
    ]
    return jax.tree.structure(params).unflatten(kept)


def is_mask_function(mask) -> bool:
    """A mask given as a function of the params: callable, and a pytree leaf itself.

    An Equinox module is callable too, but flattens into its fields: it is a
    pytree mask, as optax treats it.
    """
    return callable(mask) and jax.tree_util.treedef_is_leaf(jax.tree.structure(mask))


def distinct_buffers(state, params):
    """``state`` with every array leaf its own buffer, apart from each other and from params.

    An ``init`` that puts one array in two places (two moments started from
    the same zeros, or a copy of the params kept by reference) would make a
    step that donates params and state fail ("donate the same buffer
    twice"); each repeated leaf is replaced by a copy.
    """
    seen = {id(x) for x in jax.tree.leaves(params) if isinstance(x, jax.Array)}
    leaves, treedef = jax.tree.flatten(state)
    out = []
    for leaf in leaves:
        if isinstance(leaf, jax.Array):
            if id(leaf) in seen:
                leaf = jnp.copy(leaf)
            seen.add(id(leaf))
        out.append(leaf)
    return jax.tree.unflatten(treedef, out)


class NonArrayLeafError(TypeError):
    """A transform needs an array where the params hold something else (a function, a string)."""


def is_array_leaf(leaf) -> bool:
    """Whether ``leaf`` is an array or a number: anything with a dtype, or a Python scalar.

    A ``jax.ShapeDtypeStruct`` counts (it describes an array); a function, a
    string or an arbitrary object, as an Equinox module keeps in its static
    fields, does not.
    """
    return hasattr(leaf, "dtype") or isinstance(leaf, bool | int | float | complex)


def first_non_array_leaf(tree):
    """``(path, leaf)`` of the first leaf of ``tree`` that is not an array, or None."""
    if all(is_array_leaf(leaf) for leaf in jax.tree.leaves(tree)):
        return None
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not is_array_leaf(leaf):
            return path, leaf
    return None


def arrays_only(tree):
    """``tree`` with None in place of each leaf that is not an array (see ``is_array_leaf``)."""
    return jax.tree.map(lambda leaf: leaf if is_array_leaf(leaf) else None, tree)


def non_array_leaf_error(owner: str, what: str, path, leaf) -> NonArrayLeafError:
    """The error for a leaf that is not an array where ``owner`` needs one.

    It names the leaf by its path and says how to keep such leaves out:
    pass only the arrays, as ``eqx.filter(model, eqx.is_inexact_array)``
    does (it puts None in place of the rest, a pytree with no leaf there).
    """
    kind = getattr(leaf, "__name__", None)
    got = type(leaf).__name__ + (f" {kind!r}" if isinstance(kind, str) else "")
    return NonArrayLeafError(
        f"{owner}: {what} leaf {path_str(path)} is not an array (got {got}); {owner} "
        f"needs every leaf of the {what} to be an array: pass only the arrays to init and "
        f"update (with Equinox: eqx.filter(model, eqx.is_inexact_array))"
    )


def real_vdot(a, b):
    """Re <a, b> over every leaf (a conjugated), contracted without flattening, at HIGHEST
    matmul precision, leaf sums added in tree order."""
    parts = [
        jnp.real(jnp.tensordot(jnp.conj(x), y, jnp.ndim(x), precision=jax.lax.Precision.HIGHEST))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    ]
    return sum(parts[1:], parts[0]) if parts else jnp.zeros(())
