"""Naming the slots of a state: leaf paths, and finding a subtree by name.

An optimizer state is a tree of named tuples (``ChainState(states=(
MomentumState(mu=...), ...))``), so every array in it has a readable path,
``states[0].mu['layer3']['w']``: the field names of the state types, the
positions in a chain, and the keys of the parameters.  ``tree_paths`` lists
these paths; ``tree_get`` finds a subtree by the end of its path, so
``tree_get(state, "mu['layer3']")`` is "the first moment of layer 3" whatever
else the chain holds.  Checkpoints (``gradtx._checkpoint``) store leaves under
the same paths.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import jax
from jax.tree_util import DictKey, FlattenedIndexKey, GetAttrKey, SequenceKey

from ._typing import PyTree

_MISSING = object()


def path_str(path) -> str:
    """``(GetAttrKey('states'), SequenceKey(0))`` -> ``"states[0]"``."""
    return jax.tree_util.keystr(tuple(path)).lstrip(".")


def tree_paths(tree: PyTree) -> list[str]:
    """The path of every leaf of ``tree``, in ``jax.tree.leaves`` order.

    Named-tuple fields read as attributes, sequence positions as ``[i]`` and
    dict keys as ``['key']``.  ``None`` leaves, as in ``jax.tree.leaves``,
    are not listed.

    Args:
      tree: any pytree, typically an optimizer state or a training state.

    Returns:
      A list of strings, one per leaf.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> state = gradtx.adam(0.1).init({"w": jnp.zeros(2)})
      >>> gradtx.tree_paths(state)  # doctest: +NORMALIZE_WHITESPACE
      ["states[0].direction.states[0].mu['w']", 'states[0].direction.states[1].count',
       'states[0].preconditioner.count', "states[0].preconditioner.nu['w']"]
    """
    return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _children(node):
    """The (key, child) pairs one level below ``node``; None for a leaf."""
    flat = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)[0]
    if len(flat) == 1 and flat[0][0] == ():
        return None
    return [(path[0], child) for path, child in flat]


def _walk(node, path=()):
    """Every subtree of ``node`` (itself included) with its key path, depth first."""
    yield path, node
    children = _children(node)
    for key, child in children or ():
        yield from _walk(child, path + (key,))


_TOKEN = re.compile(
    r"""\.?(?P<name>[A-Za-z_][A-Za-z0-9_]*)          # a field name or string key
      | \[(?P<index>-?\d+)\]                         # [3]
      | \[(?P<quoted>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\]   # ['layer3']
    """,
    re.VERBOSE,
)


def _parse(owner: str, query: str) -> list:
    parts, pos = [], 0
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None or match.end() == pos:
            raise ValueError(
                f"{owner}: cannot read the path {query!r} at character {pos}; write field "
                f"names and keys as in gradtx.tree_paths, e.g. \"states[0].mu['layer3']\""
            )
        if match.group("name") is not None:
            parts.append(match.group("name"))
        elif match.group("index") is not None:
            parts.append(int(match.group("index")))
        else:
            parts.append(ast.literal_eval(match.group("quoted")))
        pos = match.end()
    if not parts:
        raise ValueError(f'{owner}: the path is empty; name a subtree, e.g. "mu"')
    return parts


def _key_value(key):
    if isinstance(key, GetAttrKey):
        return key.name
    if isinstance(key, DictKey):
        return key.key
    if isinstance(key, SequenceKey):
        return key.idx
    if isinstance(key, FlattenedIndexKey):
        return key.key
    return str(key)


def _same(a, b) -> bool:
    # True == 1 in Python; keep names, indices and booleans apart.
    return type(a) is type(b) and a == b


def _ends_with(path, parts) -> bool:
    if len(path) < len(parts):
        return False
    tail = path[len(path) - len(parts) :]
    return all(_same(_key_value(k), q) for k, q in zip(tail, parts))


def tree_get(tree: PyTree, path: str, default: Any = _MISSING) -> PyTree:
    """The subtree of ``tree`` whose path ends with ``path``.

    ``path`` is written as ``tree_paths`` prints it, from any depth:
    ``"mu"``, ``"mu['layer3']"`` or ``"states[0].mu['layer3']['w']"``.  Field
    names and string keys match each other (``mu.layer3`` finds
    ``mu['layer3']``).  A path that is the whole path of a subtree always
    wins; otherwise exactly one subtree may end with it.

    Args:
      tree: any pytree, typically an optimizer state.
      path: the end of the path of the wanted subtree.
      default: returned when nothing matches; without it that is a KeyError.

    Returns:
      The subtree (a leaf, or a dict / named tuple / ... of them).

    Raises:
      KeyError: nothing matches (and no default), or several subtrees do.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> params = {"layer3": {"w": jnp.ones(2)}}
      >>> opt = gradtx.adam(0.1)
      >>> _, state = opt.update(params, opt.init(params), params)
      >>> gradtx.tree_get(state, "mu['layer3']")
      {'w': Array([0.1, 0.1], dtype=float32)}
    """
    owner = "tree_get"
    if not isinstance(path, str):
        raise TypeError(
            f"{owner}: path must be a string such as \"mu['layer3']\", got {type(path).__name__}"
        )
    parts = _parse(owner, path)
    matches = [(p, node) for p, node in _walk(tree) if p and _ends_with(p, parts)]
    whole = [(p, node) for p, node in matches if len(p) == len(parts)]
    if whole:
        return whole[0][1]
    if len(matches) == 1:
        return matches[0][1]
    if len(matches) > 1:
        found = ", ".join(path_str(p) for p, _ in matches[:6])
        more = f" and {len(matches) - 6} more" if len(matches) > 6 else ""
        raise KeyError(
            f"{owner}: {path!r} matches {len(matches)} subtrees: {found}{more}; "
            f"write more of the path, e.g. {path_str(matches[0][0])!r}"
        )
    if default is not _MISSING:
        return default
    known = tree_paths(tree)
    listing = ", ".join(known[:6]) + (f", ... ({len(known)} leaves)" if len(known) > 6 else "")
    raise KeyError(
        f"{owner}: no subtree's path ends with {path!r}; the tree's leaf paths "
        f"are: {listing or '(none: the tree has no leaves)'}"
    )


@jax.tree_util.register_pytree_node_class
class _ParamsPlaceholder:
    """An empty pytree passed to ``init`` in place of the params: it marks where a state copies them."""

    def tree_flatten(self):
        return (), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls()


def tree_map_params(
    initable,
    f,
    state: PyTree,
    /,
    *rest: Any,
    transform_non_params=None,
    is_leaf=None,
) -> PyTree:
    """Map ``f`` over every copy of the parameter tree inside an optimizer state.

    ``init`` is called with a placeholder in place of the params; each
    subtree of ``state`` where the placeholder lands (a moment ``mu``, a sum
    ``nu``, ...) is shaped like the params and becomes
    ``jax.tree.map(f, subtree, *rest)``; every other leaf (counts, scalars)
    becomes ``transform_non_params(leaf)``, or stays.  optax's
    ``tree_map_params``: for example, the sharding of a state from the
    sharding of the params (``gradtx.state_shardings`` does that directly).

    Args:
      initable: the optimizer, or its ``init`` function.
      f: ``(leaf, *rest_leaves) -> value``, applied to the params-shaped subtrees.
      state: the optimizer state.
      *rest: trees shaped like the params, passed to f beside each leaf.
      transform_non_params: applied to the leaves that are not parameters.
      is_leaf: passed to ``jax.tree.map`` over the params-shaped subtrees.

    Returns:
      A tree shaped like ``state``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adam(0.1)
      >>> params = {"w": jnp.ones(3)}
      >>> shapes = gradtx.tree_map_params(opt, lambda x: x.shape, opt.init(params),
      ...                                 transform_non_params=lambda _: None)
      >>> gradtx.tree_get(shapes, "mu")
      {'w': (3,)}
    """
    init = initable.init if hasattr(initable, "init") else initable
    marked = init(_ParamsPlaceholder())

    def map_params(mark, value):
        if isinstance(mark, _ParamsPlaceholder):
            return jax.tree.map(f, value, *rest, is_leaf=is_leaf)
        if transform_non_params is not None:
            return transform_non_params(value)
        return value

    return jax.tree.map(
        map_params, marked, state, is_leaf=lambda v: isinstance(v, _ParamsPlaceholder)
    )
