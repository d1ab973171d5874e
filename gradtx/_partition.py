"""Parameter groups: a different transform for each part of the model.

``partition`` gives every parameter a label and runs one transform per
label; ``masked`` runs one transform on the parameters a mask selects and
passes the rest through; ``freeze`` stops the selected parameters.  Labels
and masks are pytrees shaped like the parameters (or a prefix of them: one
label for a whole sub-tree), or functions ``params -> that pytree``.

A group's transform sees the whole tree with every parameter of the other
groups replaced by ``None`` (an empty pytree node), so its state holds
arrays for its own parameters only, and a mask or a global norm inside it
refers to its own group.  Both streams of a chain (see ``gradtx._base``) are
split and merged the same way, so a preconditioner inside a group still
measures the gradient.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._base import (EmptyState, GradientTransformation, _path_str, as_flow, check_float_leaves,
                    check_same_structure, check_state, is_traced, transform)
from ._combine import ChainState
from ._typing import MaskOrFn, PyTree, TransformLike


class PartitionState(NamedTuple):
    """states: {label: state of that group's transform}."""

    states: dict


class MaskedState(NamedTuple):
    """inner_state: the state of the masked transform, on the selected parameters."""

    inner_state: Any


# ----------------------------------------------------------------------------
# Labels: expand a prefix tree to one label per parameter leaf, and split and
# merge pytrees by label.

def _prefix_mismatch(what, tree, params) -> str:
    """Say where ``tree`` fails to be ``params``' structure or a prefix of it."""
    tree_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    param_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]

    def covers(prefix, path):
        return tuple(path[:len(prefix)]) == tuple(prefix)

    for path in param_paths:
        if not any(covers(prefix, path) for prefix in tree_paths):
            return f"params leaf {_path_str(path)} has no entry in {what}"
    for prefix in tree_paths:
        if not any(covers(prefix, path) for path in param_paths):
            return f"{what} leaf {_path_str(prefix)} matches no parameter"
    return (f"the container types differ: {what} is {jax.tree.structure(tree)}, "
            f"params are {jax.tree.structure(params)}")


def _labels_per_leaf(owner, what, labels, params) -> list:
    """One label per leaf of ``params`` (in ``jax.tree.leaves`` order)."""
    tree = labels(params) if callable(labels) else labels
    counts = []

    def expand(label, subtree):
        counts.append((label, len(jax.tree.leaves(subtree))))

    try:
        jax.tree.map(expand, tree, params)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(
            f"{owner}: {what} do not match the params: {_prefix_mismatch(what, tree, params)}; "
            f"{what} must be shaped like the params or a prefix of them"
            + (" (the function returned them)" if callable(labels) else "")) from error
    return [label for label, n in counts for _ in range(n)]


def _select(tree, labels, label):
    """``tree`` with every leaf whose label is not ``label`` replaced by None."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten([leaf if lab == label else None for leaf, lab in zip(leaves, labels)])


def _merge(owner, group, leaves, labels, label, sub):
    """Write the leaves of a group's output ``sub`` back into ``leaves``."""
    sub_leaves = jax.tree.leaves(sub)
    slots = [i for i, lab in enumerate(labels) if lab == label]
    if len(sub_leaves) != len(slots):
        raise ValueError(f"{owner}: {group} returned {len(sub_leaves)} leaves for "
                         f"{len(slots)} parameters; its transform must keep the tree's structure")
    for i, leaf in zip(slots, sub_leaves):
        leaves[i] = leaf


def _run_groups(owner, groups, flows, labels, updates, gradient, states, params, extra):
    """Run every group's flow on its part of the trees; merge the results."""
    u_leaves, treedef = jax.tree.flatten(updates)
    g_leaves = jax.tree.leaves(gradient)
    new_states = {}
    for label in groups:
        name = f"group {label!r}"
        sub_params = None if params is None else _select(params, labels, label)
        try:
            u, g, s = flows[label](_select(updates, labels, label), _select(gradient, labels, label),
                                   states[label], sub_params, extra)
        except (ValueError, TypeError) as error:
            if type(error) not in (ValueError, TypeError):
                raise
            raise type(error)(f"{owner}: {name}: {error}") from error
        _merge(owner, name, u_leaves, labels, label, u)
        _merge(owner, name, g_leaves, labels, label, g)
        new_states[label] = s
    return treedef.unflatten(u_leaves), treedef.unflatten(g_leaves), new_states


def _reference(owner, updates, params):
    """The tree labels are computed from: params when given, else updates."""
    check_float_leaves(owner, updates, "gradient")
    if params is None:
        return updates
    check_same_structure(owner, params, updates, "params", "updates")
    return params


def _check_transform(owner, what, tx):
    if not (hasattr(tx, "init") and hasattr(tx, "update")):
        raise TypeError(f"{owner}: {what} is not a gradient transformation (no init/update), "
                        f"got {type(tx).__name__}")


# ----------------------------------------------------------------------------
# partition

def partition(transforms: Mapping[Hashable, TransformLike], param_labels: MaskOrFn, *,
              name: str = "partition") -> GradientTransformation:
    """Parameter groups: u_l = T_{label(l)}(g_l), one transform per label.

    Every parameter leaf l carries a label; the leaves labelled k are updated
    by ``transforms[k]`` alone, with its own state.  This is optax's
    ``partition`` (which optax also exports as ``multi_transform``) and
    PyTorch's parameter groups.  Use ``set_to_zero()`` as a group's transform to freeze it
    without keeping any optimizer state for it, and ``reset_group`` to
    re-initialise one group's state.

    Args:
      transforms: ``{label: transform}``, gradtx or optax transforms.
      param_labels: a pytree of labels shaped like the params, or a prefix
        of them (one label for a whole sub-tree), or a function
        ``params -> that pytree``.  Labels are strings or other hashable,
        non-container values.  The function is called with the params (or,
        when ``update`` gets no params, the updates), so it must depend on
        structure, shapes and dtypes only.
      name: how the result describes itself.

    Returns:
      A transform with state ``PartitionState({label: state})``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> params = {"w": jnp.array([1.0, 2.0]), "b": jnp.array([0.5])}
      >>> tx = gradtx.partition({"fast": gradtx.sgd(1.0), "slow": gradtx.sgd(0.1)},
      ...                       {"w": "fast", "b": "slow"})
      >>> g = {"w": jnp.array([1.0, 1.0]), "b": jnp.array([1.0])}
      >>> u, state = tx.update(g, tx.init(params), params)
      >>> u["w"], u["b"]
      (Array([-1., -1.], dtype=float32), Array([-0.1], dtype=float32))
    """
    if not isinstance(transforms, dict) or not transforms:
        raise TypeError(f"{name}: transforms must be a non-empty dict {{label: transform}}, "
                        f"got {transforms!r}")
    for label, tx in transforms.items():
        _check_transform(name, f"transforms[{label!r}]", tx)
    if not callable(param_labels) and not jax.tree.leaves(param_labels):
        raise ValueError(f"{name}: param_labels has no labels, got {param_labels!r}")
    flows = {label: as_flow(tx) for label, tx in transforms.items()}
    groups = tuple(transforms)

    def labels_for(tree):
        labels = _labels_per_leaf(name, "param_labels", param_labels, tree)
        known = set(groups)
        for (path, _), label in zip(jax.tree_util.tree_flatten_with_path(tree)[0], labels):
            if label not in known:
                raise ValueError(f"{name}: params leaf {_path_str(path)} has label {label!r}, "
                                 f"which has no transform; the groups are {list(groups)}")
        return labels

    def init(params):
        labels = labels_for(params)
        return PartitionState({label: transforms[label].init(_select(params, labels, label))
                               for label in groups})

    def flow(updates, gradient, state, params, extra):
        check_state(name, state, PartitionState)
        if set(state.states) != set(groups):
            raise ValueError(f"{name}: the state has groups {sorted(map(str, state.states))} but "
                             f"the transforms are for {sorted(map(str, groups))}; was this state "
                             f"made by another optimizer's init?")
        labels = labels_for(_reference(name, updates, params))
        updates, gradient, states = _run_groups(name, groups, flows, labels, updates, gradient,
                                                state.states, params, extra)
        return updates, gradient, PartitionState(states)

    return GradientTransformation(init, flow, name=name,
                                  hyperparams={"transforms": dict(transforms),
                                               "param_labels": param_labels})


# ----------------------------------------------------------------------------
# masked, set_to_zero, freeze

def _as_bool(owner, path, value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if hasattr(value, "shape") and value.shape == () and not is_traced(value) \
            and np.asarray(value).dtype == np.bool_:
        return bool(value)
    raise TypeError(f"{owner}: mask entry for params leaf {_path_str(path)} must be a Python "
                    f"bool, got {type(value).__name__}; a mask is static (build it from "
                    f"structure or shapes, not from values)")


def _masked(owner, inner, mask, hyperparams):
    _check_transform(owner, "inner", inner)
    inner_flow = as_flow(inner)

    def labels_for(tree):
        raw = _labels_per_leaf(owner, "mask", mask, tree)
        paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
        return [_as_bool(owner, path, m) for path, m in zip(paths, raw)]

    def init(params):
        return MaskedState(inner.init(_select(params, labels_for(params), True)))

    def flow(updates, gradient, state, params, extra):
        if not isinstance(state, MaskedState):
            raise TypeError(f"{owner}: expected a MaskedState, got {type(state).__name__}; "
                            f"was this state made by another optimizer's init?")
        labels = labels_for(_reference(owner, updates, params))
        updates, gradient, states = _run_groups(owner, (True,), {True: inner_flow}, labels,
                                                updates, gradient, {True: state.inner_state},
                                                params, extra)
        return updates, gradient, MaskedState(states[True])

    return GradientTransformation(init, flow, name=owner, hyperparams=hyperparams)


def masked(inner: TransformLike, mask: MaskOrFn) -> GradientTransformation:
    """Apply a transform to some parameters: u_l = T(g_l) where mask_l, else u_l = g_l.

    The unselected leaves pass through unchanged (both streams), and the
    inner state holds arrays for the selected leaves only.

    Args:
      inner: T, a gradtx or optax transform.
      mask: a pytree of Python bools shaped like the params (or a prefix of
        them), or a function ``params -> that pytree``.

    Returns:
      A transform with state ``MaskedState(inner_state)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> g = {"w": jnp.array([3.0, -3.0]), "b": jnp.array([3.0])}
      >>> tx = gradtx.masked(gradtx.clip(1.0), {"w": True, "b": False})
      >>> u, state = tx.update(g, tx.init(g))
      >>> u["w"], u["b"]
      (Array([ 1., -1.], dtype=float32), Array([3.], dtype=float32))
    """
    return _masked("masked", inner, mask, {"inner": inner, "mask": mask})


def set_to_zero() -> GradientTransformation:
    """The zero update: u_t = 0 for every leaf.

    As the transform of a ``partition`` group it freezes that group and keeps
    no state for it.

    Returns:
      A stateless transform.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.set_to_zero()
      >>> tx.update({"w": jnp.array([1.0, 2.0])}, tx.init(None))[0]["w"]
      Array([0., 0.], dtype=float32)
    """
    def update(updates, state, params):
        return jax.tree.map(jnp.zeros_like, updates), state

    return transform("set_to_zero", lambda params: EmptyState(), update)


def freeze(mask: MaskOrFn) -> GradientTransformation:
    """Freeze parameters: u_l = 0 where mask_l, else u_l unchanged.

    Place it LAST in a chain (after the learning rate), so that nothing
    downstream (momentum, weight decay) moves a frozen parameter again.  To
    also save the optimizer state of frozen parameters, use
    ``partition({..., "frozen": set_to_zero()}, labels)`` instead.

    Args:
      mask: which parameters are frozen: a pytree of Python bools shaped like
        the params (or a prefix), or a function ``params -> that pytree``.

    Returns:
      A transform with state ``MaskedState(EmptyState())``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> params = {"embed": jnp.array([1.0]), "head": jnp.array([1.0])}
      >>> opt = gradtx.chain(gradtx.adam(0.1), gradtx.freeze({"embed": True, "head": False}))
      >>> u, state = opt.update({"embed": jnp.array([2.0]), "head": jnp.array([2.0])},
      ...                       opt.init(params), params)
      >>> u["embed"], u["head"]
      (Array([0.], dtype=float32), Array([-0.1], dtype=float32))
    """
    return _masked("freeze", set_to_zero(), mask, {"mask": mask})


# ----------------------------------------------------------------------------
# Resetting one group's state

def reset_group(tx: GradientTransformation, state: PyTree, params: PyTree,
                label: Hashable) -> PyTree:
    """Re-initialise the state of the ``label`` group, leaving every other state as it was.

    ``tx`` is a ``partition``, or a transform that contains one: a chain, a
    ``masked`` transform, or a wrapper from gradtx whose state keeps its
    inner transform's state in ``inner_state`` (``apply_if_finite``,
    ``accumulate_gradients``, ``lookahead``, ``ema_params``).  Every group
    named ``label`` found there is reset to its transform's ``init`` on its
    own parameters.  The wrapper's own counters (for example the
    accumulator of ``accumulate_gradients``) are kept.

    Args:
      tx: the transform ``state`` belongs to.
      state: the state to reset a group of.
      params: the parameters (the same tree ``tx.init`` was given).
      label: the group to reset.

    Returns:
      The new state.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> params = {"w": jnp.array([1.0]), "b": jnp.array([1.0])}
      >>> tx = gradtx.partition({"a": gradtx.sgd(0.1, momentum=0.9),
      ...                        "b": gradtx.sgd(0.1, momentum=0.9)}, {"w": "a", "b": "b"})
      >>> _, state = tx.update({"w": jnp.array([1.0]), "b": jnp.array([1.0])},
      ...                      tx.init(params), params)
      >>> state = gradtx.reset_group(tx, state, params, "a")
      >>> state.states["a"].states[0].mu["w"], state.states["b"].states[0].mu["b"]
      (Array([0.], dtype=float32), Array([1.], dtype=float32))
    """
    found = []
    new_state = _reset(tx, state, params, label, found)
    if not found:
        raise ValueError(f"reset_group: no partition in {getattr(tx, 'name', type(tx).__name__)} "
                         f"has a group {label!r}")
    return new_state


def _inner_transforms(tx):
    hyperparams = getattr(tx, "hyperparams", {})
    return [v for v in hyperparams.values() if isinstance(v, GradientTransformation)]


def _reset(tx, state, params, label, found):
    hyperparams = getattr(tx, "hyperparams", {})
    if isinstance(state, PartitionState) and isinstance(hyperparams.get("transforms"), dict):
        transforms = hyperparams["transforms"]
        labels = _labels_per_leaf(tx.name, "param_labels", hyperparams["param_labels"], params)
        states = dict(state.states)
        for group, group_tx in transforms.items():
            group_params = _select(params, labels, group)
            if group == label:
                states[group] = group_tx.init(group_params)
                found.append(group)
            else:
                states[group] = _reset(group_tx, states[group], group_params, label, found)
        return PartitionState(states)
    if isinstance(state, MaskedState) and tx.name == "masked":
        keep = [bool(m) for m in _labels_per_leaf(tx.name, "mask", hyperparams["mask"], params)]
        inner = _reset(hyperparams["inner"], state.inner_state, _select(params, keep, True),
                       label, found)
        return MaskedState(inner)
    if isinstance(state, ChainState) and getattr(tx, "parts", ()):
        return ChainState(tuple(_reset(part, part_state, params, label, found)
                                for part, part_state in zip(tx.parts, state.states)))
    inner = _inner_transforms(tx)
    if hasattr(state, "inner_state") and hasattr(state, "_replace") and len(inner) == 1:
        return state._replace(inner_state=_reset(inner[0], state.inner_state, params, label, found))
    return state
