"""Argument and state checks shared by the transforms.

Hyperparameters are checked when a transform is built, with messages that
name the owner, the argument, what was expected and what was given
(``adam: b1 must be in [0, 1), got 1.2``).  Traced values (schedules,
injected hyperparameters) cannot be checked eagerly and are let through.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
from typing import Annotated, Any

import jax
import jax.numpy as jnp
import numpy as np

from ._base import is_transformation
from ._numerics import is_traced
from ._tree import check_same_structure, is_array_leaf, path_str
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
    """Raise if any array leaf of ``tree`` is not floating point or complex.

    Leaves that are not arrays at all (the functions an Equinox module keeps
    as fields) are let through: a transform that keeps no state for them
    takes them, as optax's do, and one that needs an array there fails in
    its ``init``, whose wrapper names the leaf (see ``_base._donatable``).

    Leaf paths are computed only for the message: the check itself is one
    pass over the leaves' dtypes.
    """
    leaves = jax.tree.leaves(tree)
    if all(_is_inexact(leaf) for leaf in leaves):
        return
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not is_array_leaf(leaf):
            continue
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"{owner}: {what} leaf {path_str(path)} has dtype {dtype}; gradtx updates "
                f"floating-point or complex arrays only (cast it to a float dtype, or "
                f"keep it out of the optimizer with a mask)"
            )


def check_real_leaves(owner: str, tree, why: str) -> None:
    """Raise if any leaf of ``tree`` (the params, at init) is complex.

    For the transforms whose rule needs an order that complex numbers lack
    (``why``: a sign, a clip, a maximum).  The message names the first
    complex leaf by its path and points to ``split_real_and_imaginary``.
    """
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.iscomplexobj(leaf):
            raise TypeError(
                f"{owner}: complex parameters are not supported ({why}): params leaf "
                f"{path_str(path)} has dtype {jnp.result_type(leaf)}; wrap the optimizer in "
                f"gradtx.split_real_and_imaginary to update the real and imaginary parts "
                f"as two real parameters"
            )


def promote_integer_leaves(tree):
    """``tree`` with its integer and boolean leaves in JAX's default float dtype.

    For the stateless transforms whose arithmetic with a Python float (a scale,
    a clipping bound, a constant learning rate) turns an integer leaf into a
    float one in optax: JAX promotes such a leaf to its default float dtype
    (float32, float64 under x64).  This does the same explicitly, so it holds
    under strict dtype promotion too.  A tree of floating-point or complex
    leaves is returned as it is, with nothing traced.
    """
    if all(_is_inexact(leaf) for leaf in jax.tree.leaves(tree)):
        return tree
    default = jnp.result_type(float)
    return jax.tree.map(lambda x: x if _is_inexact(x) else jnp.asarray(x, default), tree)


_INEXACT = {}


def _is_inexact(leaf) -> bool:
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        if not is_array_leaf(leaf):
            return False
        dtype = jnp.result_type(leaf)
    known = _INEXACT.get(dtype)
    if known is None:
        known = _INEXACT[dtype] = bool(jnp.issubdtype(dtype, jnp.inexact))
    return known


def require_params(owner: str, params) -> None:
    """Raise unless the update was given the params it reads."""
    if params is None:
        raise ValueError(f"{owner}: update needs params (call update(updates, state, params))")


def check_params(owner: str, params, updates) -> None:
    """Raise unless the update was given params of the updates' structure."""
    require_params(owner, params)
    check_same_structure(owner, params, updates, "params", "updates")


def check_params_update(owner: str, state, state_type, updates, params) -> None:
    """Validate the state, the (float) updates and the params of an update that reads them."""
    check_state(owner, state, state_type)
    require_params(owner, params)
    check_float_leaves(owner, updates, "gradient")
    check_same_structure(owner, params, updates, "params", "updates")


def _check_moment_structure(owner: str, tree, updates) -> None:
    check_same_structure(
        owner,
        tree,
        updates,
        "the state's moments",
        "updates",
        hint="was the state made by init on other params?",
    )


def moment_structure(owner: str, state, state_type, updates, field: str) -> None:
    """Validate a state whose ``field`` holds one statistic per leaf of the updates,
    of a shape of its own (a block or factored statistic): ``moment_state`` without
    the shape check."""
    check_state(owner, state, state_type)
    check_float_leaves(owner, updates, "gradient")
    _check_moment_structure(owner, getattr(state, field), updates)


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
        _check_moment_structure(owner, tree, updates)
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
    """``(x, x_run, run_dtype)`` for a concrete real hyperparameter: its value as given and
    as the update computes with it; None for traced values, schedules and non-numbers.

    A Python number runs in JAX's default float dtype (float32, float64 under x64), an
    array or NumPy scalar in its own float dtype.  A concrete array of more than one
    element, a complex value and a float8 value raise: a hyperparameter is one real
    number the update can compute with (float8 does not promote with float32 under
    strict promotion)."""
    if is_traced(value) or callable(value):
        return None
    try:
        arr = np.asarray(value)
    except Exception:  # pragma: no cover - exotic objects are let through
        return None
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"must be a real number, got {value!r}")
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        return None
    if arr.shape != ():
        raise ValueError(f"must be a scalar, got an array of shape {arr.shape}")
    if jnp.issubdtype(arr.dtype, jnp.floating) and arr.dtype.itemsize == 1:
        raise ValueError(
            f"must be a float16, bfloat16, float32 or float64 number (or a Python float), "
            f"got {value!r} in {arr.dtype}"
        )
    x = float(arr)
    if isinstance(value, float | int) and not isinstance(value, bool):
        run = np.dtype(jax.dtypes.canonicalize_dtype(np.float64))
    elif jnp.issubdtype(arr.dtype, jnp.floating):
        run = arr.dtype
    else:
        return x, x, None
    with np.errstate(over="ignore"):
        return x, float(np.asarray(x, dtype=run)), run


def check_range(
    owner: str, name: str, value, low=None, high=None, *, low_open=False, high_open=False
):
    """Check low <= value <= high (or strict where open), and that value is finite, in the
    dtype the update computes with.

    Any concrete real value is checked, whatever its dtype; traced values
    (schedules, injected hyperparameters under jit) pass.  A Python float is
    checked as the update sees it, rounded to JAX's default float dtype:
    ``adam(1e39)`` is inf in float32 and ``b1=1 - 1e-9`` is 1.0.  The message
    names the owner, the argument, the accepted range and the value, e.g.
    ``adam: b1 must be in [0, 1), got 1.2``.
    """
    if _already_checked(value, (low, high, low_open, high_open)):
        return value
    try:
        number = _as_number(value)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{owner}: {name} {err}") from None
    if number is None:
        if not (is_traced(value) or callable(value) or hasattr(value, "shape")):
            raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
        return value
    given, x, run = number

    def in_range(v):
        ok = not math.isnan(v)
        if low is not None:
            ok = ok and (v > low if low_open else v >= low)
        if high is not None:
            ok = ok and (v < high if high_open else v <= high)
        return ok

    # The value as the update computes with it is shown where rounding decides the verdict.
    rounded = (math.isinf(x) and not math.isinf(given)) or (in_range(given) and not in_range(x))
    shown = f"{value!r} ({x!r} in {run})" if rounded else repr(value)
    if math.isinf(x):
        raise ValueError(f"{owner}: {name} must be finite, got {shown}")
    if not in_range(x):
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else _fmt(low)
        hi = "inf" if high is None else _fmt(high)
        raise ValueError(f"{owner}: {name} must be in {left}{lo}, {hi}{right}, got {shown}")
    return value


# Values a recipe has checked, by id, with the interval they were checked against: the
# transforms the recipe builds need not check them again (see ``checked``).
_CHECKED: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "gradtx_checked", default=None
)


@contextlib.contextmanager
def checked(entries):
    """Within this block, ``check_range`` passes each value of ``entries`` (``(value, (low,
    high, low_open, high_open))`` pairs, already checked by a recipe) without checking it
    again wherever the interval asked for contains the one it was checked against.

    ``@recipe`` runs a recipe's body in this block, so that each hyperparameter is checked
    once, by the recipe, with the recipe's name; a value the body derives (``1 - b1``) is a
    new object and is checked by the transform that receives it.
    """
    known = dict(_CHECKED.get() or {})
    known.update({id(value): (value, bounds) for value, bounds in entries})
    token = _CHECKED.set(known)
    try:
        yield
    finally:
        _CHECKED.reset(token)


def _already_checked(value, bounds) -> bool:
    entry = (_CHECKED.get() or {}).get(id(value))
    return entry is not None and entry[0] is value and _within(entry[1], bounds)


def _within(inner, outer) -> bool:
    """Whether the interval ``inner`` lies in ``outer`` (each ``(low, high, low_open, high_open)``)."""
    low, high, low_open, high_open = inner
    out_low, out_high, out_low_open, out_high_open = outer
    if out_low is not None:
        if low is None or low < out_low or (low == out_low and out_low_open and not low_open):
            return False
    if out_high is not None:
        if high is None or high > out_high:
            return False
        if high == out_high and out_high_open and not high_open:
            return False
    return True


def _fmt(x):
    return str(int(x)) if float(x).is_integer() else str(x)


def check_learning_rate(owner: str, learning_rate: ScalarOrSchedule, name: str = "learning_rate"):
    """A learning rate is a number >= 0 or a schedule ``step -> value``.

    A gradtx schedule records the values it moves between, so one that would
    go negative is refused here, like a negative number; any other function
    is the caller's to keep >= 0 (it is evaluated only inside the update).
    """
    if callable(learning_rate):
        for value in getattr(learning_rate, "_gradtx_values", None) or ():
            if is_traced(value):
                continue
            x = float(value)
            if not (x >= 0 and math.isfinite(x)):
                what = getattr(learning_rate, "__name__", "schedule")
                raise ValueError(
                    f"{owner}: {name} must be >= 0 and finite at every step, but the {what} "
                    f"given reaches {x!r}"
                )
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


class Check:
    """A hyperparameter's declared constraint: ``Annotated[type, check]`` in a recipe's signature.

    ``@recipe`` calls ``check(owner, name, value)`` on the argument and uses
    what it returns; ``logged(value)`` is how the value is recorded among the
    optimizer's hyperparameters (``omit_none``: not recorded when None).
    """

    omit_none = False

    def __call__(self, owner: str, name: str, value):
        return value

    def logged(self, value):
        return value

    def checked(self, value) -> list:
        """``(value, interval)`` pairs this check has established (see ``checked``)."""
        return []


class InRange(Check):
    """low <= value <= high (strict where open), finite; ``optional``: None passes."""

    def __init__(self, low=None, high=None, *, low_open=False, high_open=False, optional=False):
        self.bounds = (low, high, low_open, high_open)
        self.optional = optional

    def __call__(self, owner, name, value: Any):
        if value is None and self.optional:
            return None
        low, high, low_open, high_open = self.bounds
        return check_range(owner, name, value, low, high, low_open=low_open, high_open=high_open)

    def checked(self, value):
        return [(value, self.bounds)]


class IsRate(Check):
    """A number >= 0 or a schedule ``step -> value``; ``optional``: None passes."""

    def __init__(self, *, optional=False):
        self.optional = optional

    def __call__(self, owner, name, value: Any):
        if value is None:
            if self.optional:
                return None
            raise TypeError(f"{owner}: {name} must be a number or a schedule, got None")
        return check_learning_rate(owner, value, name=name)

    def checked(self, value):
        return [(value, (0, None, False, False))]


class IsStateDtype(Check):
    """None (each parameter's dtype) or a floating-point dtype, recorded by its name."""

    omit_none = True

    def __call__(self, owner, name, value):
        return check_state_dtype(owner, name, value)

    def logged(self, value):
        return None if value is None else value.name


class IsDecayPair(Check):
    """A pair of decays (``betas=(beta1, beta2)``), each in [0, 1) or a schedule."""

    def __call__(self, owner, name, value):
        if not isinstance(value, tuple | list) or len(value) != 2:
            raise ValueError(f"{owner}: {name} must be a pair (beta1, beta2), got {value!r}")
        for i, beta in enumerate(value):
            check_range(owner, f"{name}[{i}]", beta, 0, 1, high_open=True)
        return value

    def checked(self, value):
        return [(beta, (0, 1, False, True)) for beta in value]


class IsFinite(Check):
    """Every number of a pytree (coefficients) is finite."""

    def __call__(self, owner, name, value):
        if isinstance(value, str):  # a named set (muon's ns_coeffs="dion"): checked where used
            return value
        for leaf in jax.tree.leaves(value):
            check_range(owner, name, leaf)
        return value


class IsTransformation(Check):
    """A gradient transformation (gradtx's or optax's)."""

    def __call__(self, owner, name, value):
        check_transformation(owner, name, value)
        return value


Rate = Annotated[ScalarOrSchedule, IsRate()]
"""A learning rate or weight decay: a number >= 0 or a schedule."""
OptionalRate = Annotated[Any, IsRate(optional=True)]
"""A ``Rate`` or None."""
Decay = Annotated[float, InRange(0, 1, high_open=True)]
"""An average's decay, in [0, 1)."""
OptionalDecay = Annotated[Any, InRange(0, 1, high_open=True, optional=True)]
"""A ``Decay`` or None (no average)."""
UnitInterval = Annotated[float, InRange(0, 1)]
"""A weight in [0, 1]."""
NonNegative = Annotated[float, InRange(0)]
"""A number >= 0."""
OptionalNonNegative = Annotated[Any, InRange(0, optional=True)]
"""A ``NonNegative`` or None."""
Positive = Annotated[float, InRange(0, low_open=True)]
"""A number > 0."""
DecayPair = Annotated[Any, IsDecayPair()]
"""Two decays, ``(beta1, beta2)``."""
StateDtype = Annotated[Any, IsStateDtype()]
"""The dtype a moment is stored in, or None for each parameter's."""
FiniteNumbers = Annotated[Any, IsFinite()]
"""Finite numbers, in any pytree (``ns_coeffs``)."""
Transformation = Annotated[Any, IsTransformation()]
"""A gradient transformation."""
