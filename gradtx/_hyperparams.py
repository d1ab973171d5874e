"""Hyperparameters kept in the optimizer state: read, log and change them without recompiling.

``inject_hyperparams(factory)(**args)`` keeps every numeric argument of
``factory`` (learning rate, betas, eps, weight decay, ...) in the state as a
float32 scalar (float64 under ``jax_enable_x64``) and rebuilds ``factory(**args)`` from those values inside
each update.  Because the values are inputs of the compiled step rather than
constants baked into it, changing one between steps (``set_hyperparams``) or
vmapping over several of them does not recompile.  Schedules given for a
numeric argument are evaluated each step at the wrapper's own count.

The gradtx factories check their arguments eagerly but let traced values
through, so rebuilding them inside a traced update is cheap and safe; their
error messages still reach the user when a value is wrong, at construction
and at any update run outside ``jax.jit``.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import re
import warnings
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from ._base import EmptyState, GradientTransformation, update_fn
from ._checks import check_state
from ._numerics import increment, is_traced, new_count
from ._typing import PyTree


class InjectHyperparamsState(NamedTuple):
    """The state of ``inject_hyperparams``.

    count: steps taken; schedules are evaluated at it (0 at the first step).
    hyperparams: name -> scalar array, every injected hyperparameter: those
      given as numbers (change them with ``set_hyperparams``) and, read-only,
      the value of each scheduled one at the latest step (the value the
      latest update used; at step 0 before any), as in optax.
    hyperparams_states: name -> the state of each schedule: ``EmptyState()``
      for a function ``step -> value``, the schedule's own state for a
      stateful schedule (optax's ``StatefulSchedule``).
    inner_state: the state of the wrapped optimizer.
    """

    count: jax.Array
    hyperparams: dict
    hyperparams_states: dict
    inner_state: Any


def _is_stateful_schedule(value) -> bool:
    """optax's StatefulSchedule protocol: ``init()``, ``update(state, **extra)``, ``__call__(state, **extra)``."""
    return (
        callable(value)
        and not isinstance(value, GradientTransformation)
        and callable(getattr(value, "init", None))
        and callable(getattr(value, "update", None))
    )


def _is_integer(value) -> bool:
    if isinstance(value, numbers.Integral):
        return True
    return isinstance(value, (jax.Array, np.ndarray)) and jnp.issubdtype(value.dtype, jnp.integer)


def _is_number(value) -> bool:
    """A real scalar that is not a bool: 1e-3, 1, np.float32(0.9), jnp.array(0.9)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Real):
        return True
    if isinstance(value, (jax.Array, np.ndarray)):
        dtype = value.dtype
        return value.shape == () and (
            jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
        )
    return False


def _classify(signature, arguments, static_args):
    """Split bound arguments into numeric (injected), scheduled and static ones."""
    numeric, schedules = {}, {}
    for name, value in arguments.items():
        parameter = signature.parameters[name]
        default = parameter.default
        if name in static_args or parameter.kind in (
            parameter.VAR_POSITIONAL,
            parameter.VAR_KEYWORD,
        ):
            continue
        if callable(value) and not isinstance(value, GradientTransformation):
            # A function is a schedule where the factory expects a number (no
            # default or a numeric one); elsewhere (mask=None) it is static.
            if default is parameter.empty or _is_number(default):
                schedules[name] = value
        elif _is_number(value):
            # A Python int for an int-defaulted argument is a count (static).
            if not (
                isinstance(value, numbers.Integral)
                and isinstance(default, numbers.Integral)
                and not isinstance(default, bool)
            ):
                numeric[name] = value
    return numeric, schedules


def _keeps_integer(signature, name, value) -> bool:
    """An integer value stays an integer where the factory does not expect a float.

    ``key=0`` for a factory whose default is None stays an int32, as in optax;
    ``learning_rate=1`` (no default, or a float default) becomes a float.
    """
    default = signature.parameters[name].default
    return _is_integer(value) and (
        default is None or (isinstance(default, numbers.Integral) and not isinstance(default, bool))
    )


def _check_representable(name, dtype, build, values):
    """Refuse values that ``dtype`` rounds out of the factory's range (b2 = 0.999 -> 1 in bf16)."""
    cast = {k: jnp.asarray(v, dtype) for k, v in values.items()}
    try:
        build(cast)
    except ValueError as error:
        changed = [
            k
            for k in values
            if not is_traced(values[k])
            and float(cast[k]) != float(np.asarray(values[k], np.float64))
        ]
        refused = []
        for k in changed:
            try:
                build({**values, k: cast[k]})
            except ValueError:
                refused.append(f"{k}={values[k]!r} (it rounds to {float(cast[k])!r})")
        if not refused:
            raise
        raise ValueError(
            f"{name}: hyperparam_dtype={dtype.name} cannot hold "
            f"{', '.join(refused)}: {error}; "
            f"use hyperparam_dtype=jnp.float32"
        ) from None


def inject_hyperparams(
    factory: Callable[..., GradientTransformation],
    *,
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: DTypeLike | None = None,
) -> Callable[..., GradientTransformation]:
    """Wrap an optimizer factory so that its numeric hyperparameters live in the state.

    ``inject_hyperparams(factory)(*args, **kwargs)`` takes ``factory``'s
    arguments and returns a transform equal to ``factory(*args, **kwargs)``,
    except that

    * each numeric argument (learning_rate, b1, b2, eps, weight_decay, ...)
      is stored in ``state.hyperparams`` as a scalar of ``hyperparam_dtype``
      (float32, float64 under x64), never in the parameters' dtype:
      b2=0.999 stays 0.999 for a bfloat16 model (optax's
      ``inject_hyperparams`` casts it to bf16, 1.0); an integer given where
      the factory's default is None or an integer (a PRNG seed) stays an
      integer;
    * each schedule given for a numeric argument is evaluated at every step
      at ``state.count`` (0 first) and its value recorded in
      ``state.hyperparams`` too: after an update, the value that update
      used.  A stateful schedule (an object with ``init()``,
      ``update(state, **extra)`` and ``__call__(state, **extra)``, optax's
      ``StatefulSchedule``) is called on its own state, kept in
      ``state.hyperparams_states``, and receives the update's extra keyword
      arguments;
    * bools, None, strings, masks, pytrees, functions given where the factory
      does not expect a number, Python ints for int-defaulted arguments, and
      the names in ``static_args`` are static: fixed when the optimizer is made.

    The numeric values are inputs of the update, not constants compiled into
    it: ``set_hyperparams(state, learning_rate=...)`` between steps changes
    them without recompiling, and ``jax.vmap`` over states runs a sweep.  The
    update rebuilds ``factory`` with the state's values and runs its update,
    so the injected optimizer can stand anywhere the plain one can.

    Args:
      factory: a function returning a gradient transformation (``gradtx.adam``,
        ``gradtx.sgd``, an optax optimizer, your own recipe).  It must build the
        same structure for any values of its numeric arguments.
      static_args: names of arguments to keep static although they look numeric.
      hyperparam_dtype: the floating dtype the numeric hyperparameters are
        stored and used in; None: float32, or float64 when
        ``jax_enable_x64`` is on.

    Returns:
      A function with ``factory``'s signature that returns a transform whose
      state is ``InjectHyperparamsState(count, hyperparams,
      hyperparams_states, inner_state)``.  Arguments are checked by ``factory`` itself (a
      schedule by its value at step 0), so errors read as the factory's
      (``adam: b1 must be in [0, 1), got 1.2``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = opt.init(params)
      >>> state = gradtx.set_hyperparams(state, learning_rate=0.5)
      >>> updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, state, params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.5, -2.5], dtype=float32)
      >>> gradtx.get_hyperparams(state)
      {'learning_rate': Array(0.5, dtype=float32)}
    """
    owner = "inject_hyperparams"
    if not callable(factory):
        raise TypeError(
            f"{owner}: factory must be a function returning a gradient "
            f"transformation, got {factory!r}"
        )
    static_args = {static_args} if isinstance(static_args, str) else set(static_args)
    signature = inspect.signature(factory)
    factory_name = getattr(factory, "__name__", type(factory).__name__)
    unknown = sorted(static_args - set(signature.parameters))
    if unknown:
        raise ValueError(
            f"{owner}: static_args names {', '.join(unknown)}, which "
            f"{factory_name} does not take; it takes "
            f"{', '.join(signature.parameters)}"
        )
    if hyperparam_dtype is None:
        hyperparam_dtype = jnp.result_type(float)  # float64 under x64, else float32
    dtype = jnp.dtype(hyperparam_dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{owner}: hyperparam_dtype must be a floating dtype, got {dtype}")

    @functools.wraps(factory)
    def injected(*args, **kwargs):
        name = f"{owner}({factory_name})"
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{name}: {error}") from None
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        numeric, schedules = _classify(signature, arguments, static_args)

        def build(values):
            rebound = inspect.BoundArguments(signature, {**arguments, **values})
            return factory(*rebound.args, **rebound.kwargs)

        stateful = {k for k, s in schedules.items() if _is_stateful_schedule(s)}
        integers = {k for k, v in numeric.items() if _keeps_integer(signature, k, v)}
        floats = {k: v for k, v in numeric.items() if k not in integers}

        def cast(k, v):
            if k in integers:
                return jnp.asarray(v, jnp.int32 if isinstance(v, numbers.Integral) else None)
            return jnp.asarray(v, dtype)

        def schedule_states():
            return {k: schedules[k].init() if k in stateful else EmptyState() for k in schedules}

        def evaluate(count, states, extra):
            return {
                k: jnp.asarray(s(states[k], **extra) if k in stateful else s(count), dtype)
                for k, s in schedules.items()
            }

        # The factory's own checks, eagerly, with each schedule's first value.
        first = {
            k: float(np.asarray(v))
            for k, v in evaluate(0, schedule_states(), {}).items()
            if k not in stateful
        }
        build({**first, **{k: cast(k, v) for k, v in numeric.items() if k in integers}})
        _check_representable(name, dtype, build, {**floats, **first})

        def init(params):
            count = new_count()
            states = schedule_states()
            values = {k: cast(k, v) for k, v in numeric.items()}
            values.update(evaluate(count, states, {}))
            inner = build(values)
            return InjectHyperparamsState(
                count=count,
                hyperparams=values,
                hyperparams_states=states,
                inner_state=inner.init(params),
            )

        def update(updates, state, params=None, **extra):
            check_state(name, state, InjectHyperparamsState)
            if set(state.hyperparams) != set(numeric) | set(schedules) or set(
                state.hyperparams_states
            ) != set(schedules):
                raise ValueError(
                    f"{name}: the state injects {sorted(state.hyperparams)} and schedules "
                    f"{sorted(state.hyperparams_states)}, but this optimizer injects "
                    f"{sorted(set(numeric) | set(schedules))} and schedules {sorted(schedules)}; "
                    f"was this state made by another optimizer's init?"
                )
            values = {k: state.hyperparams[k] for k in numeric}
            values.update(evaluate(state.count, state.hyperparams_states, extra))
            states = {
                k: schedules[k].update(state.hyperparams_states[k], **extra)
                if k in stateful
                else state.hyperparams_states[k]
                for k in schedules
            }
            inner = build(values)
            updates, inner_state = update_fn(inner)(updates, state.inner_state, params, **extra)
            return updates, InjectHyperparamsState(
                count=increment(state.count),
                hyperparams=values,
                hyperparams_states=states,
                inner_state=inner_state,
            )

        return GradientTransformation(init, update, name=name, hyperparams=arguments)

    return injected


# ----------------------------------------------------------------------------
# Reading and changing the values of a state.


def inject_stateful_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: DTypeLike | None = None,
) -> Callable[..., GradientTransformation]:
    """optax's deprecated name for ``inject_hyperparams``, which takes stateful schedules too.

    Warns with a ``DeprecationWarning`` (as optax does), then returns
    ``inject_hyperparams(inner_factory, static_args=static_args,
    hyperparam_dtype=hyperparam_dtype)``.

    Args:
      inner_factory: the optimizer factory.
      static_args: the names of callable arguments that are not schedules.
      hyperparam_dtype: the dtype the hyperparameters are stored in.

    Returns:
      ``inject_hyperparams``'s factory.

    Example:
      >>> import warnings, gradtx
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore", DeprecationWarning)
      ...     opt = gradtx.inject_stateful_hyperparams(gradtx.sgd)(learning_rate=0.1)
      >>> float(opt.init({"w": 0.0}).hyperparams["learning_rate"])
      0.1
    """
    warnings.warn(
        "inject_stateful_hyperparams is deprecated, use inject_hyperparams instead",
        DeprecationWarning,
        stacklevel=2,
    )
    return inject_hyperparams(
        inner_factory, static_args=static_args, hyperparam_dtype=hyperparam_dtype
    )


def _is_injected(x) -> bool:
    return isinstance(x, InjectHyperparamsState)


def _injected_states(state) -> list:
    """Every InjectHyperparamsState in ``state``, nested ones included, outermost first."""
    found = []
    for leaf in jax.tree_util.tree_leaves(state, is_leaf=_is_injected):
        if _is_injected(leaf):
            found.append(leaf)
            found.extend(_injected_states(leaf.inner_state))
    return found


def _replace_injected(state, fn):
    def visit(x):
        if not _is_injected(x):
            return x
        return fn(x._replace(inner_state=_replace_injected(x.inner_state, fn)))

    return jax.tree.map(visit, state, is_leaf=_is_injected)


def _names(found) -> str:
    names = sorted({k for s in found for k in s.hyperparams})
    return ", ".join(names) if names else "none"


def get_hyperparams(state: PyTree) -> dict[str, Any]:
    """The hyperparameter values of an injected optimizer's state, for logging.

    Returns ``{name: scalar array}``: the values given as numbers (as last
    set) and the latest value of each schedule (the one the latest update
    used).  ``state`` may be the state of ``inject_hyperparams(...)`` or any
    state that holds one (a chain's, a wrapper's); names must then be unique.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=1e-3)
      >>> state = opt.init({"w": jnp.zeros(2)})
      >>> {k: float(v) for k, v in gradtx.get_hyperparams(state).items()}
      {'b1': 0.9, 'b2': 0.999, 'eps': 1e-08, 'eps_root': 0.0, 'learning_rate': 0.001}
    """
    owner = "get_hyperparams"
    found = _injected_states(state)
    if not found:
        raise ValueError(
            f"{owner}: the state holds no injected hyperparameters; build the "
            f"optimizer with gradtx.inject_hyperparams(factory)(...)"
        )
    values = {}
    for s in found:
        for k, v in s.hyperparams.items():
            if k in values:
                raise ValueError(
                    f"{owner}: {k} is a hyperparameter of more than one injected "
                    f"optimizer in this state; call get_hyperparams on the part "
                    f"of the state you mean"
                )
            values[k] = v
    return dict(sorted(values.items()))


_RATES = re.compile(r"(^|_)(learning_rate|lr|weight_decay|wd)$")
_DECAYS = re.compile(r"^(b\d|beta\d?|betas|decay|momentum|rho|ema_decay)$")


def _check_set_value(owner: str, key: str, value) -> None:
    """The checks ``set_hyperparams`` can make by a hyperparameter's name alone."""
    if jnp.issubdtype(value.dtype, jnp.integer) or jnp.issubdtype(value.dtype, jnp.bool_):
        return
    x = np.asarray(value, np.float64)
    if np.isnan(x).any():
        raise ValueError(f"{owner}: {key} must not be NaN, got {value!r}")
    if _RATES.search(key) and not (np.isfinite(x).all() and (x >= 0).all()):
        raise ValueError(f"{owner}: {key} must be >= 0 and finite, got {value!r}")
    if _DECAYS.match(key) and not ((x >= 0).all() and (x <= 1).all()):
        raise ValueError(f"{owner}: {key} must be in [0, 1], got {value!r}")


def set_hyperparams(state: PyTree, **values: ArrayLike) -> PyTree:
    """Return ``state`` with new values for injected hyperparameters; nothing recompiles.

    Each value is cast to the dtype the state stores it in (float32 unless
    ``hyperparam_dtype`` said otherwise) and broadcast to its shape (a
    vmapped state may hold one value per member).  The next update uses it.
    A concrete value is checked at the call, in the dtype the state stores
    it in, by its name: a rate (``learning_rate``, ``weight_decay``, ...)
    must be >= 0 and finite, a decay (``b1``, ``b2``, ``beta``, ``decay``,
    ``momentum``, ``rho``, ...) in [0, 1], and nothing may be NaN.  The
    optimizer's own, narrower ranges (Adam's b1 < 1) are checked by its
    factory when the update runs outside ``jax.jit``; under jit they are not.

    Args:
      state: the state of ``inject_hyperparams(...)``, or a state holding one.
      **values: new values by name, e.g. ``learning_rate=1e-4, b1=0.95``.

    Returns:
      A new state; ``state`` itself is unchanged.

    Raises:
      ValueError: a name is unknown, follows a schedule (recomputed each
        step), or belongs to more than one injected optimizer in ``state``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.inject_hyperparams(gradtx.adamw)(learning_rate=1e-3, weight_decay=0.1)
      >>> state = gradtx.set_hyperparams(opt.init({"w": jnp.zeros(2)}), weight_decay=0.01)
      >>> state.hyperparams["weight_decay"]
      Array(0.01, dtype=float32)
    """
    owner = "set_hyperparams"
    found = _injected_states(state)
    if not found:
        raise ValueError(
            f"{owner}: the state holds no injected hyperparameters; build the "
            f"optimizer with gradtx.inject_hyperparams(factory)(...)"
        )
    for key in values:
        if any(key in s.hyperparams_states for s in found):
            raise ValueError(
                f"{owner}: {key} follows a schedule, which the update "
                f"evaluates at every step; to set it by hand, inject it as a "
                f"number instead"
            )
        holders = [s for s in found if key in s.hyperparams]
        if not holders:
            raise ValueError(
                f"{owner}: the state has no hyperparameter {key!r}; it has {_names(found)}"
            )
        if len(holders) > 1:
            raise ValueError(
                f"{owner}: {key} is a hyperparameter of {len(holders)} injected "
                f"optimizers in this state; call set_hyperparams on the part of "
                f"the state you mean"
            )

    def cast(key, old, new):
        if not (_is_number(new) or is_traced(new) or isinstance(new, (jax.Array, np.ndarray))):
            raise TypeError(f"{owner}: {key} must be a number, got {new!r}")
        with np.errstate(over="ignore"):  # 1e39 in float32 is inf, refused below
            new = jnp.asarray(new, old.dtype)
        if not is_traced(new):
            _check_set_value(owner, key, new)
        try:
            return jnp.broadcast_to(new, old.shape)
        except ValueError:
            raise ValueError(
                f"{owner}: {key} must have shape {old.shape} (or be a scalar), "
                f"got shape {new.shape}"
            ) from None

    def replace(s):
        mine = {k: v for k, v in values.items() if k in s.hyperparams}
        if not mine:
            return s
        hyperparams = dict(s.hyperparams)
        for k, v in mine.items():
            hyperparams[k] = cast(k, s.hyperparams[k], v)
        return s._replace(hyperparams=hyperparams)

    return _replace_injected(state, replace)
