"""Argument and state checks shared by the transforms.

Hyperparameters are checked when a transform is built, with messages that
name the owner, the argument, what was expected and what was given
(``adam: b1 must be in [0, 1), got 1.2``).  Traced values (schedules,
injected hyperparameters) cannot be checked eagerly and are let through.
"""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._base import is_transformation
from ._numerics import is_traced
from ._tree import check_same_structure, path_str
from ._typing import ScalarOrSchedule


def check_state(owner: str, state, state_type) -> None:
    """Raise if ``state`` is not the state this transform's ``init`` makes.

    A ``None`` state is almost always a forgotten ``init``, and the message says so.
    """
    if state is None:
        raise TypeError(
            f"{owner}: expected a {state_type.__name__}, got None; call opt.init(params) "
            f"first and pass its state to update"
        )
    if not isinstance(state, state_type):
        raise TypeError(
            f"{owner}: expected a {state_type.__name__}, got {type(state).__name__}; "
            f"was this state made by another optimizer's init?"
        )


def check_float_leaves(owner: str, tree, what: str) -> None:
    """Raise if any leaf of ``tree`` is not floating point or complex.

    Leaf paths are computed only for the message: the check itself is one
    pass over the leaves' dtypes.
    """
    leaves = jax.tree.leaves(tree)
    if all(_is_inexact(leaf) for leaf in leaves):
        return
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"{owner}: {what} leaf {path_str(path)} has dtype {dtype}; gradtx updates "
                f"floating-point or complex arrays only (cast it to a float dtype, or "
                f"keep it out of the optimizer with a mask)"
            )


_INEXACT = {}


def _is_inexact(leaf) -> bool:
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        dtype = jnp.result_type(leaf)
    known = _INEXACT.get(dtype)
    if known is None:
        known = _INEXACT[dtype] = bool(jnp.issubdtype(dtype, jnp.inexact))
    return known


def moment_state(owner: str, state, state_type, updates, *fields) -> None:
    """Validate a per-leaf state against the updates of this step.

    ``fields`` name the state's per-leaf trees (``"mu"``, ``"nu"``); they are
    read only after the state's type is checked, so a foreign state gets
    ``check_state``'s message rather than an AttributeError.  (A tree may
    also be passed directly.)
    """
    check_state(owner, state, state_type)
    check_float_leaves(owner, updates, "gradient")
    for field in fields:
        tree = getattr(state, field) if isinstance(field, str) else field
        check_same_structure(
            owner,
            tree,
            updates,
            "the state's moments",
            "updates",
            hint="was the state made by init on other params?",
        )
        if all(
            jnp.shape(u) == jnp.shape(m)
            for u, m in zip(jax.tree.leaves(updates), jax.tree.leaves(tree))
        ):
            continue
        name = field if isinstance(field, str) else "moment"
        pairs = zip(jax.tree_util.tree_flatten_with_path(updates)[0], jax.tree.leaves(tree))
        for (path, u), m in pairs:
            if jnp.shape(u) != jnp.shape(m):
                raise ValueError(
                    f"{owner}: updates leaf {path_str(path)} has shape {jnp.shape(u)} but the "
                    f"state's {name} has shape {jnp.shape(m)}; was the state made by init on "
                    f"other params?"
                )


def check_state_dtype(owner: str, name: str, dtype):
    """Validate a state dtype argument (``mu_dtype``, ``nu_dtype``): None or a float/complex dtype."""
    if dtype is None:
        return None
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{owner}: {name} must be a dtype or None, got {dtype!r}") from None
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise ValueError(f"{owner}: {name} must be a floating-point dtype, got {dtype}")
    return dtype


def _as_number(value):
    """The float a concrete real hyperparameter holds, whatever its dtype (bf16 and float8
    included); None for traced values, schedules and non-numbers.  A concrete array of
    more than one element raises: a hyperparameter is one number."""
    if is_traced(value) or callable(value):
        return None
    try:
        arr = np.asarray(value)
    except Exception:  # pragma: no cover - exotic objects are let through
        return None
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        return None
    if arr.shape != ():
        raise ValueError(f"must be a scalar, got an array of shape {arr.shape}")
    return float(arr)


def check_range(
    owner: str, name: str, value, low=None, high=None, *, low_open=False, high_open=False
):
    """Check low <= value <= high (or strict where open), and that value is finite.

    Any concrete real value is checked, whatever its dtype; traced values
    (schedules, injected hyperparameters under jit) pass.  The message names
    the owner, the argument, the accepted range and the value, e.g.
    ``adam: b1 must be in [0, 1), got 1.2``.
    """
    try:
        x = _as_number(value)
    except ValueError as err:
        raise ValueError(f"{owner}: {name} {err}") from None
    if x is None:
        if not (is_traced(value) or callable(value) or hasattr(value, "shape")):
            raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
        return value
    if math.isinf(x):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    ok = not math.isnan(x)
    if low is not None:
        ok = ok and (x > low if low_open else x >= low)
    if high is not None:
        ok = ok and (x < high if high_open else x <= high)
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else _fmt(low)
        hi = "inf" if high is None else _fmt(high)
        raise ValueError(f"{owner}: {name} must be in {left}{lo}, {hi}{right}, got {value!r}")
    return value


def _fmt(x):
    return str(int(x)) if float(x).is_integer() else str(x)


def check_learning_rate(owner: str, learning_rate: ScalarOrSchedule, name: str = "learning_rate"):
    """A learning rate is a number >= 0 or a schedule ``step -> value``."""
    if callable(learning_rate):
        return learning_rate
    return check_range(owner, name, learning_rate, 0)


def check_not_schedule(owner: str, name: str, value, why: str) -> None:
    """A hyperparameter that must be a number, where a schedule has no meaning (``why``)."""
    if callable(value):
        raise ValueError(f"{owner}: {name} must be a number ({why}), got a schedule")


def check_transformation(owner: str, what: str, tx) -> None:
    """Raise unless ``tx`` is a gradient transformation (has ``init`` and ``update``)."""
    if not is_transformation(tx):
        raise TypeError(
            f"{owner}: {what} must be a gradient transformation (with init and "
            f"update), got {type(tx).__name__}"
        )


def value_fn_keywords(owner: str, value_fn, extra: dict) -> dict:
    """The extra keywords of an ``update`` call that ``value_fn`` takes.

    A keyword it does not take is refused: it would otherwise be dropped without
    a word, and the loss the line search evaluates would not be the caller's.
    """
    names = set(inspect.signature(value_fn).parameters)
    unused = sorted(k for k in extra if k not in names)
    if unused:
        raise TypeError(f"{owner}: value_fn takes none of the keywords {unused}")
    return {k: v for k, v in extra.items() if k in names}
