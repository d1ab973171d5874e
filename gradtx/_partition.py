"""Parameter groups: a different transform for each part of the model.

``partition`` gives every parameter a label and runs one transform per
label; ``masked`` runs one transform on the parameters a mask selects and
passes the rest through; ``freeze`` stops the selected parameters.  Labels
and masks are pytrees shaped like the parameters (or a prefix of them: one
label for a whole sub-tree), or functions ``params -> that pytree``.

A group's transform sees the whole tree with every parameter of the other
groups replaced by ``None`` (an empty pytree node), so its state holds
arrays for its own parameters only, and a mask or a global norm inside it
refers to its own group.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._base import EmptyState, GradientTransformation, update_fn
from ._checks import check_state, check_transformation
from ._combine import ChainState, PreconditionState, check_parts
from ._numerics import is_traced
from ._tree import check_same_structure, is_mask_function, path_str
from ._typing import MaskOrFn, PyTree, TransformLike


class PartitionState(NamedTuple):
    """states: {label: state of that group's transform} (optax calls it ``inner_states``)."""

    states: dict

    @property
    def inner_states(self) -> dict:
        """``states``, under optax's field name."""
        return self.states


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
        return tuple(path[: len(prefix)]) == tuple(prefix)

    for path in param_paths:
        if not any(covers(prefix, path) for prefix in tree_paths):
            return f"params leaf {path_str(path)} has no entry in {what}"
    for prefix in tree_paths:
        if not any(covers(prefix, path) for path in param_paths):
            return f"{what} leaf {path_str(prefix)} matches no parameter"
    return (
        f"the container types differ: {what} is {jax.tree.structure(tree)}, "
        f"params are {jax.tree.structure(params)}"
    )


def _labels_per_leaf(owner, what, labels, params) -> list:
    """One label per leaf of ``params`` (in ``jax.tree.leaves`` order)."""
    tree = labels(params) if is_mask_function(labels) else labels
    counts = []

    def expand(label, subtree):
        counts.append((label, len(jax.tree.leaves(subtree))))

    try:
        jax.tree.map(expand, tree, params)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(
            f"{owner}: {what} do not match the params: {_prefix_mismatch(what, tree, params)}; "
            f"{what} must be shaped like the params or a prefix of them"
            + (" (the function returned them)" if is_mask_function(labels) else "")
        ) from error
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
        raise ValueError(
            f"{owner}: {group} returned {len(sub_leaves)} leaves for "
            f"{len(slots)} parameters; its transform must keep the tree's structure"
        )
    for i, leaf in zip(slots, sub_leaves):
        leaves[i] = leaf


def _run_groups(owner, groups, updaters, labels, updates, states, params, extra, mask_extra=False):
    """Run every group's transform on its part of the trees; merge the results.

    With ``mask_extra``, extra arguments shaped like the updates are split
    like them (optax's ``mask_compatible_extra_args``).
    """
    u_leaves, treedef = jax.tree.flatten(updates)
    new_states = {}
    for label in groups:
        name = f"group {label!r}"
        sub_params = None if params is None else _select(params, labels, label)
        sub_extra = extra
        if mask_extra:
            sub_extra = {
                k: (_select(v, labels, label) if jax.tree.structure(v) == treedef else v)
                for k, v in extra.items()
            }
        try:
            u, s = updaters[label](
                _select(updates, labels, label), states[label], sub_params, **sub_extra
            )
        except (ValueError, TypeError) as error:
            if type(error) not in (ValueError, TypeError):
                raise
            raise type(error)(f"{owner}: {name}: {error}") from error
        _merge(owner, name, u_leaves, labels, label, u)
        new_states[label] = s
    return treedef.unflatten(u_leaves), new_states


def _reference(owner, updates, params):
    """The tree labels are computed from: params when given, else updates.

    Integer leaves pass to the inner transforms, which take or refuse them
    as they would outside the partition.
    """
    if params is None:
        return updates
    check_same_structure(owner, params, updates, "params", "updates")
    return params


# ----------------------------------------------------------------------------
# partition


def partition(
    transforms: Mapping[Hashable, TransformLike],
    param_labels: MaskOrFn,
    *,
    mask_compatible_extra_args: bool = False,
    name: str = "partition",
) -> GradientTransformation:
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
      mask_compatible_extra_args: split extra keyword arguments shaped like
        the updates by group too (optax's keyword).
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
        raise TypeError(
            f"{name}: transforms must be a non-empty dict {{label: transform}}, got {transforms!r}"
        )
    for label, tx in transforms.items():
        check_transformation(name, f"transforms[{label!r}]", tx)
    if not callable(param_labels) and not jax.tree.leaves(param_labels):
        raise ValueError(f"{name}: param_labels has no labels, got {param_labels!r}")
    updaters = {label: update_fn(tx) for label, tx in transforms.items()}
    groups = tuple(transforms)

    def labels_for(tree):
        labels = _labels_per_leaf(name, "param_labels", param_labels, tree)
        known = set(groups)
        for (path, _), label in zip(jax.tree_util.tree_flatten_with_path(tree)[0], labels):
            if label not in known:
                raise ValueError(
                    f"{name}: params leaf {path_str(path)} has label {label!r}, "
                    f"which has no transform; the groups are {list(groups)}"
                )
        return labels

    def init(params):
        labels = labels_for(params)
        return PartitionState(
            {label: transforms[label].init(_select(params, labels, label)) for label in groups}
        )

    def update(updates, state, params=None, **extra):
        def mismatch(s):
            if set(s.states) != set(groups):
                return (
                    f"the state has groups {sorted(map(str, s.states))} but "
                    f"the transforms are for {sorted(map(str, groups))}"
                )

        check_parts(name, state, PartitionState, mismatch)
        labels = labels_for(_reference(name, updates, params))
        updates, states = _run_groups(
            name,
            groups,
            updaters,
            labels,
            updates,
            state.states,
            params,
            extra,
            mask_compatible_extra_args,
        )
        return updates, PartitionState(states)

    return GradientTransformation(
        init,
        update,
        name=name,
        children=tuple(transforms.values()),
        # The transforms are the children, in the order of their labels here.
        hyperparams={"labels": tuple(transforms), "param_labels": param_labels},
    )


def multi_transform(
    transforms: Mapping[Hashable, TransformLike],
    param_labels: MaskOrFn,
    *,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    """Parameter groups under optax's older name: u_l = T_{label(l)}(g_l).

    ``partition`` (see there), keyword for keyword.

    Args:
      transforms: ``{label: transform}``.
      param_labels: labels shaped like the params (or a prefix), or a
        function ``params -> labels``.
      mask_compatible_extra_args: split extra keyword arguments shaped like
        the updates by group too.

    Returns:
      A transform with state ``PartitionState({label: state})``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> params = {"w": jnp.array([1.0]), "b": jnp.array([0.5])}
      >>> tx = gradtx.multi_transform({"a": gradtx.sgd(1.0), "b": gradtx.sgd(0.1)},
      ...                             {"w": "a", "b": "b"})
      >>> u, state = tx.update({"w": jnp.array([1.0]), "b": jnp.array([1.0])}, tx.init(params))
      >>> u["w"], u["b"]
      (Array([-1.], dtype=float32), Array([-0.1], dtype=float32))
    """
    return partition(
        transforms,
        param_labels,
        mask_compatible_extra_args=mask_compatible_extra_args,
        name="multi_transform",
    )


# ----------------------------------------------------------------------------
# masked, set_to_zero, freeze


def _as_bool(owner, path, value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if (
        hasattr(value, "shape")
        and value.shape == ()
        and not is_traced(value)
        and np.asarray(value).dtype == np.bool_
    ):
        return bool(value)
    raise TypeError(
        f"{owner}: mask entry for params leaf {path_str(path)} must be a Python "
        f"bool, got {type(value).__name__}; a mask is static (build it from "
        f"structure or shapes, not from values)"
    )


def _masked(owner, inner, mask, hyperparams, mask_extra=False):
    check_transformation(owner, "inner", inner)
    inner_update = update_fn(inner)

    def labels_for(tree):
        raw = _labels_per_leaf(owner, "mask", mask, tree)
        paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
        return [_as_bool(owner, path, m) for path, m in zip(paths, raw)]

    def init(params):
        if not jax.tree.leaves(params):
            # Nothing to select: an empty tree, or the placeholder that
            # optax.tree.map_params passes to find the params in a state.
            return MaskedState(inner.init(params))
        return MaskedState(inner.init(_select(params, labels_for(params), True)))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, MaskedState)
        labels = labels_for(_reference(owner, updates, params))
        updates, states = _run_groups(
            owner,
            (True,),
            {True: inner_update},
            labels,
            updates,
            {True: state.inner_state},
            params,
            extra,
            mask_extra,
        )
        return updates, MaskedState(states[True])

    return GradientTransformation(
        init, update, name=owner, children=(inner,), hyperparams=hyperparams
    )


def masked(
    inner: TransformLike, mask: MaskOrFn, *, mask_compatible_extra_args: bool = False
) -> GradientTransformation:
    """Apply a transform to some parameters: u_l = T(g_l) where mask_l, else u_l = g_l.

    The unselected leaves pass through unchanged, and the inner state holds
    arrays for the selected leaves only.

    Args:
      inner: T, a gradtx or optax transform.
      mask: a pytree of Python bools shaped like the params (or a prefix of
        them), or a function ``params -> that pytree``.  A callable that is
        itself a pytree with leaves (an Equinox module) is a pytree.
      mask_compatible_extra_args: mask extra keyword arguments shaped like
        the updates too (optax's keyword).

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
    return _masked(
        "masked", inner, mask, {"inner": inner, "mask": mask}, mask_compatible_extra_args
    )


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

    return GradientTransformation(lambda params: EmptyState(), update, name="set_to_zero")


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


def selective_transform(optimizer: TransformLike, *, freeze_mask) -> GradientTransformation:
    """Train some parameters, freeze the rest: u_l = 0 where freeze_l, else u_l = T(g)_l.

    optax's ``selective_transform``: ``partition({"train": optimizer,
    "freeze": set_to_zero()}, labels)``, so the optimizer keeps state for the
    trained parameters only.

    Args:
      optimizer: T, the optimizer of the trained parameters.
      freeze_mask: a static mask, True for a frozen parameter: a pytree of
        bools shaped like the params (or a prefix of them), or one bool for
        all of them.

    Returns:
      A transform with state ``PartitionState({"train": ..., "freeze": ...})``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> params = {"a": jnp.array([1.0]), "b": jnp.array([1.0])}
      >>> tx = gradtx.selective_transform(gradtx.sgd(0.1), freeze_mask={"a": True, "b": False})
      >>> u, state = tx.update({"a": jnp.array([2.0]), "b": jnp.array([2.0])}, tx.init(params))
      >>> u["a"], u["b"]
      (Array([0.], dtype=float32), Array([-0.2], dtype=float32))
    """
    owner = "selective_transform"
    check_transformation(owner, "optimizer", optimizer)

    def labels(params):
        return jax.tree.map(lambda m: "freeze" if m else "train", freeze_mask)

    return partition({"train": optimizer, "freeze": set_to_zero()}, labels, name=owner)


# ----------------------------------------------------------------------------
# Resetting one group's state


def reset_group(
    tx: GradientTransformation, state: PyTree, params: PyTree, label: Hashable
) -> PyTree:
    """Re-initialise the state of the ``label`` group, leaving every other state as it was.

    ``tx`` is a ``partition``, or a transform that contains one: a chain, a
    ``masked`` transform, or a wrapper from gradtx whose state keeps its
    inner transform's state in ``inner_state`` (``apply_if_finite``,
    ``accumulate_gradients``, ``lookahead_in_state``, ``ema_params``).  Every group
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
      >>> state.states["a"].states[0].trace["w"], state.states["b"].states[0].trace["b"]
      (Array([0.], dtype=float32), Array([1.], dtype=float32))
    """
    found = []
    new_state = _reset(tx, state, params, label, found)
    if not found:
        raise ValueError(
            f"reset_group: no partition in {getattr(tx, 'name', type(tx).__name__)} "
            f"has a group {label!r}"
        )
    return new_state


def _reset(tx, state, params, label, found):
    """Walk ``tx``'s children alongside ``state``, re-initialising the groups named ``label``."""
    hyperparams = getattr(tx, "hyperparams", {})
    children: tuple = tuple(getattr(tx, "children", ()))
    if isinstance(state, PartitionState) and isinstance(hyperparams.get("labels"), tuple):
        transforms = dict(zip(hyperparams["labels"], children))
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
        inner = _reset(children[0], state.inner_state, _select(params, keep, True), label, found)
        return MaskedState(inner)
    if isinstance(state, ChainState) and getattr(tx, "combinator", None) == "chain":
        return ChainState(
            tuple(
                _reset(part, part_state, params, label, found)
                for part, part_state in zip(children, state.states)
            )
        )
    if isinstance(state, PreconditionState) and getattr(tx, "combinator", None) == "precondition":
        return PreconditionState(
            _reset(children[0], state.direction, params, label, found),
            _reset(children[1], state.preconditioner, params, label, found),
        )
    inner_state = getattr(state, "inner_state", None)
    if inner_state is not None and hasattr(state, "_replace") and len(children) == 1:
        return state._replace(inner_state=_reset(children[0], inner_state, params, label, found))
    return state
