"""The gradient-transformation interface, and how transforms compose.

A gradient transformation is a pure pair of functions::

    init(params) -> state
    update(updates, state, params=None, **extra) -> (updates, state)

``updates`` and ``params`` are pytrees of the same structure; ``state`` is a
pytree of arrays (named tuples of moments and counters).  Keywords in
``**extra`` that a transform does not use are accepted and ignored, so that
Flax's ``nnx.Optimizer`` and optimistix can pass theirs through.  This is
optax's interface: a gradtx transform can stand wherever an
``optax.GradientTransformation`` is expected, and the reverse.

Two streams, and why Adam is a chain
------------------------------------
Adam divides the bias-corrected average of the raw gradient by the square
root of the bias-corrected average of the squared *raw* gradient.  A chain
that only passes one running value along cannot say that: in
``chain(momentum, rms)`` the second moment would be taken of the momentum,
and in ``chain(rms, momentum)`` the momentum would average ``g / sqrt(v)``.

So a gradtx chain carries two values from transform to transform: the
running **update**, and the **gradient** of this step.  Transforms play one
of three roles:

* most transforms (``scale``, clipping, weight decay, ...) rewrite the
  update; their output becomes both the update and the gradient that later
  transforms see;
* an **accumulator** (``scale_by_momentum``, ``bias_correction``) builds a
  direction out of many steps; its output continues as the update, while the
  gradient of this step passes it by untouched;
* a **preconditioner** (``scale_by_rms``, ``scale_by_rss``, ...) measures the
  gradient, updates its statistics from it, and divides the update by them.

With these roles Adam reads as its definition,
``chain(scale_by_momentum(b1, ema=True), bias_correction(b1),
scale_by_rms(b2, eps, bias_correction=True), scale_by_learning_rate(lr))``,
and RMSprop is the same chain without the first two lines.  Gradient
preprocessing (clipping, L2 decay) placed before the momentum is seen by the
preconditioner too, exactly as in PyTorch's and optax's Adam.

We chose this over a parallel numerator/denominator combinator because the
recipes stay flat, one transform per line in the order the math applies,
and because the rule fits in one sentence.  A transform used outside a
gradtx chain (for instance inside ``optax.chain``) sees its input as both
streams, which is the one-stream behaviour that optax's pieces have.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any

# What a gradtx transform runs inside a chain:
#   flow(updates, gradient, state, params, extra) -> (updates, gradient, state)
FlowFn = Callable[..., tuple[PyTree, PyTree, PyTree]]

_INT32_MAX = np.iinfo(np.int32).max


class GradientTransformation:
    """An ``init``/``update`` pair that also knows its name and hyperparameters.

    It unpacks like optax's named tuple (``init, update = tx``), so optax
    combinators accept it.  ``name`` and ``hyperparams`` describe how it was
    built (``adam``, ``{"learning_rate": 1e-3, ...}``); ``parts`` holds the
    transforms a recipe is chained from, and ``repr`` shows that recipe.
    """

    __slots__ = ("init", "update", "name", "hyperparams", "parts", "flow")

    def __init__(self, init, flow: FlowFn, *, name: str,
                 hyperparams: dict | None = None, parts: tuple = ()):
        self.init = init
        self.flow = flow
        self.name = name
        self.hyperparams = dict(hyperparams or {})
        self.parts = tuple(parts)

        def update(updates, state, params=None, **extra):
            new_updates, _, new_state = flow(updates, updates, state, params, extra)
            return new_updates, new_state

        update.__doc__ = f"{name}: update(updates, state, params=None, **extra) -> (updates, state)."
        self.update = update

    def __iter__(self):
        yield self.init
        yield self.update

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return (self.init, self.update)[index]

    def __repr__(self):
        if self.parts:
            inner = ", ".join(repr(part) for part in self.parts)
            return f"chain({inner})"
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.hyperparams.items())
        return f"{self.name}({args})"

    def all_hyperparams(self) -> dict:
        """Every hyperparameter of this transform and its parts, for logging.

        Keys are dotted paths: ``{"adam.learning_rate": 0.001,
        "adam.0.scale_by_momentum.decay": 0.9, ...}``.
        """
        flat = {f"{self.name}.{k}": v for k, v in self.hyperparams.items()}
        for i, part in enumerate(self.parts):
            if isinstance(part, GradientTransformation):
                for k, v in part.all_hyperparams().items():
                    flat[f"{self.name}.{i}.{k}"] = v
        return flat


def _short(value):
    if callable(value) and not isinstance(value, GradientTransformation):
        return getattr(value, "__name__", type(value).__name__)
    if isinstance(value, jax.core.Tracer):
        return "<traced>"
    return repr(value)


def transform(name: str, init, update, *, hyperparams: dict | None = None,
              role: str = "rewrite") -> GradientTransformation:
    """Make a gradtx transform from plain functions.

    ``role`` says how it treats the gradient stream of a chain (see the module
    docstring):

    * ``"rewrite"``: ``update(updates, state, params)``; its output becomes
      both the update and the gradient.
    * ``"accumulator"``: ``update(updates, state, params)``; its output becomes
      the update and the gradient passes by.
    * ``"preconditioner"``: ``update(updates, gradient, state, params)``; it
      may measure ``gradient``; its output becomes both streams.
    """
    if role == "rewrite":
        def flow(updates, gradient, state, params, extra):
            out, state = update(updates, state, params)
            return out, out, state
    elif role == "accumulator":
        def flow(updates, gradient, state, params, extra):
            out, state = update(updates, state, params)
            return out, gradient, state
    elif role == "preconditioner":
        def flow(updates, gradient, state, params, extra):
            out, state = update(updates, gradient, state, params)
            return out, out, state
    else:
        raise ValueError(f"transform: role must be 'rewrite', 'accumulator' or "
                         f"'preconditioner', got {role!r}")
    return GradientTransformation(init, flow, name=name, hyperparams=hyperparams)


def as_flow(tx) -> FlowFn:
    """The two-stream update of any transform; a foreign (optax) one rewrites."""
    if isinstance(tx, GradientTransformation):
        return tx.flow
    try:
        parameters = inspect.signature(tx.update).parameters.values()
        takes_extra = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    except (TypeError, ValueError):  # builtins without a signature
        takes_extra = False

    def flow(updates, gradient, state, params, extra):
        out, state = tx.update(updates, state, params, **(extra if takes_extra else {}))
        return out, out, state

    return flow


class EmptyState(NamedTuple):
    """The state of a transform that keeps none."""


class ScheduleState(NamedTuple):
    """count: steps taken, the argument a schedule is evaluated at (0 first)."""

    count: jax.Array


def identity() -> GradientTransformation:
    """The transform that returns its input unchanged: u_t = g_t."""
    return transform("identity", lambda params: EmptyState(),
                     lambda updates, state, params: (updates, state))


def apply_updates(params: PyTree, updates: PyTree) -> PyTree:
    """Return ``params + updates``, each leaf keeping its parameter's dtype.

    The sum is formed in the wider of the two dtypes and cast back, so bf16
    parameters stay bf16 and receive a correctly rounded update.  ``None``
    leaves are passed through.
    """
    def add(path, p, u):
        if p is None:
            return None
        p = jnp.asarray(p)
        if not jnp.issubdtype(p.dtype, jnp.inexact):
            raise TypeError(f"apply_updates: parameter {_path_str(path)} has integer dtype "
                            f"{p.dtype}; only floating-point or complex parameters can be "
                            f"updated (mask integer leaves out of the optimizer)")
        return (p + u).astype(p.dtype)

    check_same_structure("apply_updates", params, updates, "params", "updates")
    return jax.tree_util.tree_map_with_path(add, params, updates,
                                            is_leaf=lambda x: x is None)


# ----------------------------------------------------------------------------
# Helpers shared by the transform modules.

def _path_str(path) -> str:
    return jax.tree_util.keystr(path) if path else "<root>"


def check_same_structure(owner: str, expected, got, expected_name: str, got_name: str,
                         hint: str = "") -> None:
    """Raise if two pytrees differ, naming the first differing leaf path."""
    expected_def = jax.tree.structure(expected)
    got_def = jax.tree.structure(got)
    if expected_def == got_def:
        return
    expected_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(expected)[0]]
    got_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(got)[0]]
    where = None
    for a, b in zip(expected_paths, got_paths):
        if a != b:
            where = f"first difference at {got_name} leaf {_path_str(b)} vs {expected_name} leaf {_path_str(a)}"
            break
    if where is None:
        if len(expected_paths) != len(got_paths):
            longer, name = (expected_paths, expected_name) if len(expected_paths) > len(got_paths) \
                else (got_paths, got_name)
            extra_leaf = longer[min(len(expected_paths), len(got_paths))]
            where = (f"{expected_name} has {len(expected_paths)} leaves and {got_name} has "
                     f"{len(got_paths)}; first unmatched leaf {_path_str(extra_leaf)} in {name}")
        else:
            where = f"the container types differ: {expected_name} is {expected_def}, {got_name} is {got_def}"
    message = f"{owner}: {got_name} do not match {expected_name}: {where}"
    raise ValueError(message + (f"; {hint}" if hint else ""))


def check_state(owner: str, state, state_type) -> None:
    """Raise if ``state`` is not the state this transform's ``init`` makes."""
    if not isinstance(state, state_type):
        raise TypeError(
            f"{owner}: expected a {state_type.__name__}, got {type(state).__name__}; "
            f"was this state made by another optimizer's init?")


def check_float_leaves(owner: str, tree, what: str) -> None:
    """Raise if any leaf of ``tree`` is not floating point or complex."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"{owner}: {what} leaf {_path_str(path)} has dtype {dtype}; gradtx updates "
                f"floating-point or complex arrays only (cast it to a float dtype, or "
                f"keep it out of the optimizer with a mask)")


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
        check_same_structure(owner, tree, updates, "the state's moments", "updates",
                             hint="was the state made by init on other params?")
        name = field if isinstance(field, str) else "moment"
        pairs = zip(jax.tree_util.tree_flatten_with_path(updates)[0], jax.tree.leaves(tree))
        for (path, u), m in pairs:
            if jnp.shape(u) != jnp.shape(m):
                raise ValueError(
                    f"{owner}: updates leaf {_path_str(path)} has shape {jnp.shape(u)} but the "
                    f"state's {name} has shape {jnp.shape(m)}; was the state made by init on "
                    f"other params?")


def resolve_mask(mask, params):
    """The pytree of bools a ``mask`` argument stands for, for these ``params``.

    ``mask`` is None, a pytree of bools, or a function ``params -> pytree``.
    Params packed by ``gradtx.flatten`` pack the mask the same way (they
    provide ``pack_mask``), so masks keep working inside it.
    """
    pack = getattr(params, "pack_mask", None)
    if pack is not None:
        return pack(mask)
    return mask(params) if callable(mask) else mask


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


def compute_dtype(*dtypes):
    """The dtype arithmetic runs in: the widest of ``dtypes``, at least float32.

    bf16/f16 are widened to float32; float64 and complex stay as they are.
    Decided under standard promotion, so it also works when the caller runs
    under ``jax.numpy_dtype_promotion("strict")`` (which refuses, e.g.,
    float64 with float32 or bfloat16 with float32).
    """
    with jax.numpy_dtype_promotion("standard"):
        return jnp.promote_types(jnp.result_type(*dtypes), jnp.float32)


def abs_sq(x):
    """|x|^2 = x * conj(x), real for complex x."""
    if jnp.iscomplexobj(x):
        return jnp.real(x * jnp.conj(x))
    return x * x


def increment(count):
    """count + 1, saturating at the int32 maximum instead of wrapping."""
    return count + (count < _INT32_MAX).astype(count.dtype)


def new_count():
    return jnp.zeros((), jnp.int32)


def is_traced(value) -> bool:
    return isinstance(value, jax.core.Tracer)


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


def check_range(owner: str, name: str, value, low=None, high=None, *,
                low_open=False, high_open=False):
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


def check_learning_rate(owner: str, learning_rate, name: str = "learning_rate"):
    """A learning rate is a number >= 0 or a schedule ``step -> value``."""
    if callable(learning_rate):
        return learning_rate
    return check_range(owner, name, learning_rate, 0)
