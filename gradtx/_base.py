"""The gradient-transformation interface.

A gradient transformation is a pure pair of functions::

    init(params) -> state
    update(updates, state, params=None, **extra) -> (updates, state)

``updates`` and ``params`` are pytrees of the same structure; ``state`` is a
pytree of arrays (named tuples of moments and counters).  Keywords in
``**extra`` that a transform does not use are accepted and ignored, so that
Flax's ``nnx.Optimizer`` and optimistix can pass theirs through.  This is
optax's interface, with optax's meaning: a gradtx transform can stand
wherever an ``optax.GradientTransformation`` is expected, and the reverse.

A transform is one function of its own input, state and params.  ``chain``
feeds each transform's output to the next one and nothing else, so a
transform computes the same thing wherever it stands in a recipe, and
``identity()``, ``scale(1.0)`` or a clip that never fires can be inserted
anywhere without changing a bit of the result.

Where the math needs the gradient of the step beside a running direction
(Adam divides the average gradient by the root of the average *squared
gradient*), an explicit combinator says so: ``precondition(direction,
by=scale_by_rms(...))`` sends the same input to ``direction`` and to the
preconditioner's statistics, and divides the one by the other.  The
preconditioners (``scale_by_rms``, ``scale_by_rss``, ...) are
``Preconditioner`` transforms: on their own they precondition their input by
its own statistics, which is optax's transform of the same name.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from ._numerics import is_traced
from ._sharding import place_state
from ._tree import (
    NonArrayLeafError,
    arrays_only,
    distinct_buffers,
    first_non_array_leaf,
    non_array_leaf_error,
)

PyTree = Any


def _donatable(init: Callable, owner: str) -> Callable:
    """``init`` whose state leaves are distinct buffers, so that a step can donate them,
    placed beside the params by the rule of ``_sharding.py`` (moments sharded like
    their parameters).

    Params may hold leaves that are not arrays (the functions an Equinox
    module keeps as fields): a transform that keeps no state for them
    accepts them, as in optax.  Where ``init`` fails on such a leaf, the
    error names the leaf and says to filter the params.
    """
    if getattr(init, "_gradtx_donatable", False):
        return init

    def wrapped(params):
        try:
            state = init(params)
        except NonArrayLeafError:
            raise
        except (TypeError, ValueError, AttributeError) as error:
            found = first_non_array_leaf(params)
            if found is None or not _succeeds(init, arrays_only(params)):
                raise
            raise non_array_leaf_error(owner, "params", *found) from error
        return place_state(distinct_buffers(state, params), params)

    wrapped.__name__ = getattr(init, "__name__", "init")
    wrapped.__doc__ = getattr(init, "__doc__", None)
    wrapped.__wrapped__ = init
    wrapped._gradtx_donatable = True
    return wrapped


def _succeeds(init: Callable, params) -> bool:
    """Whether ``init(params)`` runs: tells a failure caused by a non-array leaf from others."""
    try:
        init(params)
    except Exception:
        return False
    return True


class GradientTransformation:
    """An ``init``/``update`` pair; optionally named, with hyperparameters and children.

    ``GradientTransformation(init, update)`` is optax's constructor, and the
    object unpacks like optax's named tuple (``init, update = tx``).  The
    optional keywords describe how it was built, for ``repr``, logging and
    tools that walk a recipe (``reset_group``, ``all_hyperparams``):

    Args:
      init: ``params -> state``.
      update: ``(updates, state, params=None, **extra) -> (updates, state)``.
        An ``update`` without ``**extra`` is wrapped to accept and ignore it.
      name: what it is called (``"adam"``, ``"scale_by_rms"``).
      hyperparams: how it was configured (``{"learning_rate": 1e-3, ...}``);
        for logging and ``repr`` only.
      children: the transforms it is built from, in order.
      combinator: for a transform built by a combinator (``"chain"``,
        ``"precondition"``), that combinator's name: ``repr`` then writes the
        transform as the combinator applied to its children.
    """

    __slots__ = ("init", "update", "name", "hyperparams", "children", "combinator")

    # The functions that compute: the pytree children, in this order.  The
    # other slots describe the transform and travel as auxiliary data.
    _functions = ("init", "update")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _register(cls)

    def __init__(
        self,
        init: Callable,
        update: Callable,
        *,
        name: str | None = None,
        hyperparams: dict | None = None,
        children: tuple = (),
        combinator: str | None = None,
    ):
        self.name = name or getattr(update, "__name__", "transform")
        self.init = _donatable(init, self.name)
        self.update = update if accepts_extra(update) else _with_extra(update)
        self.hyperparams = dict(hyperparams or {})
        self.children = tuple(children)
        self.combinator = combinator

    def __iter__(self):
        yield self.init
        yield self.update

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return (self.init, self.update)[index]

    def __repr__(self):
        args = [repr(child) for child in self.children]
        if self.combinator == "precondition":
            args[-1] = f"by={args[-1]}"
        if self.combinator is None:
            args += [
                f"{k}={_short(v)}" for k, v in self.hyperparams.items() if not is_transformation(v)
            ]
        return f"{self.combinator or self.name}({', '.join(args)})"

    def all_hyperparams(self) -> dict:
        """Every hyperparameter of this transform and its children, for logging.

        Keys are dotted paths: ``{"adam.learning_rate": 0.001,
        "adam.0.precondition.0.chain.0.scale_by_momentum.decay": 0.9, ...}``.
        """
        flat = {
            f"{self.name}.{k}": v for k, v in self.hyperparams.items() if not is_transformation(v)
        }
        for i, child in enumerate(self.children):
            if isinstance(child, GradientTransformation):
                for k, v in child.all_hyperparams().items():
                    flat[f"{self.name}.{i}.{k}"] = v
        return flat


class _Description:
    """A transform's name, hyperparameters, children and combinator: its pytree aux data.

    They describe the transform for ``repr`` and logging; what it computes
    lives in its functions, the pytree children.  Two descriptions compare
    equal when they have the same form (type, name, combinator,
    hyperparameter names, and children of the same form), whatever the
    values: transforms that differ only in an array hyperparameter then
    differ only in the arrays their functions close over, which
    ``equinox.internal.closure_to_pytree`` exposes as leaves, as it does
    optax's closures.
    """

    __slots__ = ("tx", "_form")

    def __init__(self, tx):
        self.tx = tx
        self._form = _form(tx)

    def __eq__(self, other):
        return isinstance(other, _Description) and self._form == other._form

    def __hash__(self):
        return hash(self._form)


def _form(tx):
    if not isinstance(tx, GradientTransformation):
        return type(tx)
    return (
        type(tx),
        tx.name,
        tx.combinator,
        tuple(tx.hyperparams),
        tuple(_form(child) for child in tx.children),
    )


def _flatten_with_keys(tx):
    functions = [(jax.tree_util.GetAttrKey(f), getattr(tx, f)) for f in tx._functions]
    return functions, _Description(tx)


def _flatten(tx):
    return [getattr(tx, f) for f in tx._functions], _Description(tx)


def _unflatten(cls, description, functions):
    tx = object.__new__(cls)
    source = description.tx
    for slot in ("name", "hyperparams", "children", "combinator"):
        setattr(tx, slot, getattr(source, slot))
    for field, function in zip(cls._functions, functions):
        setattr(tx, field, function)
    return tx


def _register(cls):
    """Register ``cls`` as a pytree whose children are its functions (``init``, ``update``).

    As optax's named tuple of two closures: ``jax.tree.map`` reaches the
    functions, and ``equinox.internal.closure_to_pytree`` turns them into
    pytrees of what they close over, so an array hyperparameter becomes a
    leaf and a new value does not make a jitted step compile again.
    """
    jax.tree_util.register_pytree_with_keys(
        cls, _flatten_with_keys, functools.partial(_unflatten, cls), _flatten
    )


_register(GradientTransformation)


class Preconditioner(GradientTransformation):
    """A transform that divides a direction by statistics it measures on the gradient.

    ``precondition(direction, gradient, state, params) -> (direction / D, state)``
    updates the statistics from ``gradient`` and divides ``direction`` by
    them.  As a plain transform, ``update(g, state, params)`` is
    ``precondition(g, g, state, params)``: the input preconditioned by its own
    statistics.  The ``precondition`` combinator passes a different direction.
    """

    __slots__ = ("precondition",)
    _functions = ("init", "update", "precondition")

    def __init__(
        self, init: Callable, precondition: Callable, *, name: str, hyperparams: dict | None = None
    ):
        def update(updates, state, params=None, **extra):
            return precondition(updates, updates, state, params)

        super().__init__(init, update, name=name, hyperparams=hyperparams)
        self.precondition = precondition


def is_transformation(tx) -> bool:
    """True for anything with callable ``init`` and ``update`` (gradtx's or optax's)."""
    return callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))


def accepts_extra(fn) -> bool:
    """Whether ``fn`` takes ``**kwargs`` (builtins without a signature: no)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _with_extra(update):
    def wrapped(updates, state, params=None, **extra):
        return update(updates, state, params)

    wrapped.__name__ = getattr(update, "__name__", "update")
    return wrapped


def update_fn(tx) -> Callable:
    """``tx.update`` as a function that accepts ``**extra`` (optax's older transforms do not)."""
    return tx.update if accepts_extra(tx.update) else _with_extra(tx.update)


def _short(value):
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    if is_traced(value):
        return "<traced>"
    return repr(value)


class EmptyState(NamedTuple):
    """The state of a transform that keeps none."""


class ScheduleState(NamedTuple):
    """count: steps taken, the argument a schedule is evaluated at (0 first)."""

    count: Any


def stateless(f: Callable) -> GradientTransformation:
    """A transform without state from a function of the whole trees: u_t = f(g_t, params).

    optax's ``stateless``: the state is ``EmptyState()``.

    Args:
      f: ``(updates, params) -> updates``; params may be None.

    Returns:
      A transform with state ``EmptyState()``.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx
      >>> tx = gradtx.stateless(lambda g, p: jax.tree.map(lambda x: 2 * x, g))
      >>> tx.update({"w": jnp.array([1.0, -2.0])}, tx.init(None))[0]["w"]
      Array([ 2., -4.], dtype=float32)
    """

    def update(updates, state, params=None, **extra):
        return f(updates, params), EmptyState()

    return GradientTransformation(lambda params: EmptyState(), update, name="stateless")


def stateless_with_tree_map(f: Callable) -> GradientTransformation:
    """A transform without state from a function of one leaf: u_l = f(g_l, p_l).

    optax's ``stateless_with_tree_map``: f is mapped over the leaves of the
    updates and params (p_l = None when ``update`` gets no params).

    Args:
      f: ``(update_leaf, param_leaf or None) -> update_leaf``.

    Returns:
      A transform with state ``EmptyState()``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.stateless_with_tree_map(lambda g, p: g + 0.1 * p)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> tx.update({"w": jnp.array([1.0, 1.0])}, tx.init(params), params)[0]["w"]
      Array([1.1, 0.8], dtype=float32)
    """

    def update(updates, state, params=None, **extra):
        if params is None:
            return jax.tree.map(lambda u: f(u, None), updates), EmptyState()
        return jax.tree.map(f, updates, params), EmptyState()

    return GradientTransformation(
        lambda params: EmptyState(), update, name="stateless_with_tree_map"
    )
