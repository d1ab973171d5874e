"""How an optimizer is declared: ``@recipe`` over a function that lists its transforms.

A recipe is a function whose arguments are the optimizer's hyperparameters
and whose body returns the transforms it chains, in the order the math
applies::

    @recipe
    def sgd(learning_rate: LearningRate, momentum: OptionalDecay = None, ...):
        return (trace(momentum), scale_by_learning_rate(learning_rate))

The decorator is the one place that turns that function into an optimizer:

- it binds the call to the signature, defaults included, and checks every
  argument whose annotation carries a ``Check`` (``LearningRate``,
  ``Decay``, ``NonNegative``, ``StateDtype``, ... from ``_checks``) with
  the function's name as the owner, so ``adam(1e-3, b1=1.2)`` fails with
  ``adam: b1 must be in [0, 1), got 1.2``;
- it runs the body with those values marked as checked, so the transforms
  it builds do not check them again (a value the body derives, ``1 - b1``,
  is checked by the transform that receives it);
- it records the arguments, as checked, as the optimizer's hyperparameters
  (for ``repr`` and logging; a state dtype by its name, left out when None);
- it chains the returned transforms (a None among them is left out: an
  optional part the arguments switched off) under the function's name, so an error
  raised by a part names the optimizer the user built.

The body sees the checked values (a ``StateDtype`` argument arrives as a
``numpy.dtype`` or None) and raises, with the owner's name, the errors that
tie several arguments together (``sgd: nesterov=True needs a momentum``).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import numpy as np

from ._base import GradientTransformation
from ._checks import Check, checked
from ._combine import chain

P = ParamSpec("P")


def _checks_of(fn) -> dict[str, tuple[Check, ...]]:
    hints = typing.get_type_hints(fn, include_extras=True)
    checks = {}
    for name, hint in hints.items():
        found = tuple(m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Check))
        if found:
            checks[name] = found
    return checks


def recipe(fn: Callable | None = None, *, prefix: str = "") -> Callable:
    """Declare an optimizer from a function that returns its transforms.

    Args:
      fn: ``(*hyperparameters) -> transform or tuple of transforms``.
      prefix: prepended to the function's name to make the owner
        (``"torch."`` for ``gradtx.presets.torch.sgd``).

    Returns:
      A factory with ``fn``'s signature and docstring that returns
      ``chain(*transforms)`` named after ``fn``, with its arguments as its
      hyperparameters.
    """
    if fn is None:
        return functools.partial(recipe, prefix=prefix)
    owner = prefix + fn.__name__
    signature = inspect.signature(fn)
    checks = _checks_of(fn)
    shown = signature.replace(
        parameters=[
            p.replace(annotation=_SHOWN.get(p.annotation, p.annotation))
            for p in signature.parameters.values()
        ]
    )

    @functools.wraps(fn)
    def build(*args, **kwargs) -> GradientTransformation:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{owner}: {error}") from None
        bound.apply_defaults()
        arguments = bound.arguments
        hyperparams = {}
        established = []
        for name, value in arguments.items():
            for check in checks.get(name, ()):
                value = check(owner, name, value)
                if value is not None:
                    established += check.checked(value)
            arguments[name] = value
            logged = _logged(checks.get(name, ()), value)
            if logged is not _OMIT:
                hyperparams[name] = logged
        with checked(established):
            transforms = fn(*bound.args, **bound.kwargs)
        if not isinstance(transforms, tuple | list):
            transforms = (transforms,)
        transforms = [t for t in transforms if t is not None]
        return chain(*transforms, name=owner, hyperparams=hyperparams)

    # The signature a reader (and introspecting code) sees: the types, not the checks
    # (learning_rate: ScalarOrSchedule, as optax's signatures read).
    setattr(build, "__signature__", shown)  # noqa: B010 (functools.wraps types no such attribute)
    return build


_SHOWN = {
    "Rate": "ScalarOrSchedule",
    "OptionalRate": "ScalarOrSchedule | None",
    "Decay": "float",
    "OptionalDecay": "float | None",
    "UnitInterval": "float",
    "NonNegative": "float",
    "OptionalNonNegative": "float | None",
    "Positive": "float",
    "StateDtype": "DTypeLike | None",
    "DecayPair": "tuple[float, float]",
    "FiniteNumbers": "Any",
    "Transformation": "GradientTransformation",
}


_OMIT = object()


def _logged(checks, value):
    for check in checks:
        value = check.logged(value)
    return _OMIT if value is None and any(c.omit_none for c in checks) else value


T = TypeVar("T", bound=GradientTransformation)


@typing.overload
def transform(fn: Callable[P, T], *, exclude: tuple[str, ...] = ()) -> Callable[P, T]: ...


@typing.overload
def transform(
    fn: Callable[P, Any], *, exclude: tuple[str, ...] = ()
) -> Callable[P, GradientTransformation]: ...


@typing.overload
def transform(fn: None = None, *, exclude: tuple[str, ...] = ()) -> Callable: ...


def transform(
    fn: Callable[P, Any] | None = None, *, exclude: tuple[str, ...] = ()
) -> Callable[P, GradientTransformation] | Callable:
    """Declare a transform from a function that returns its ``init`` and ``update``.

    The transform counterpart of ``recipe``: the function's name is the
    transform's name, and its arguments, bound to its signature with the
    defaults, are the hyperparameters it records (for ``repr`` and logging),
    so no transform writes its signature out a second time as a dict::

        @transform
        def scale_by_yogi(b1=0.9, b2=0.999, eps=1e-3, ...):
            check_range("scale_by_yogi", "eps", eps, 0)
            ...
            return init, update

    The body checks its own arguments, as before (a transform's checks are
    ``check_range`` calls with bounds of their own, not annotations), and
    returns ``(init, update)``, ``(init, update, children)``, or a
    ``GradientTransformation`` built with other keywords (a combinator); the
    hyperparameters are recorded after the body ran, so an argument it
    refused is never recorded.  An argument named ``*_dtype`` is recorded by
    its dtype's name and left out when None (``mu_dtype="bfloat16"``), as
    the recipes record a ``StateDtype``.

    Args:
      fn: ``(*hyperparameters) -> (init, update[, children])`` or a transform.
      exclude: arguments not recorded as hyperparameters (a callable that is
        not a schedule, a value the transform records differently).

    Returns:
      A factory with ``fn``'s signature and docstring, typed to return the
      ``GradientTransformation`` subclass ``fn`` returns (a ``Preconditioner``
      stays one, for ``precondition(by=...)``).
    """
    if fn is None:
        return functools.partial(transform, exclude=exclude)
    name = fn.__name__
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def build(*args, **kwargs) -> GradientTransformation:
        built = fn(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        hyperparams = {}
        for key, value in bound.arguments.items():
            if key in exclude:
                continue
            if key.endswith("_dtype"):
                if value is None:
                    continue
                value = np.dtype(value).name
            hyperparams[key] = value
        if isinstance(built, GradientTransformation):
            built.name = name
            built.hyperparams = hyperparams
            return built
        init, update, *children = built
        return GradientTransformation(
            init,
            update,
            name=name,
            hyperparams=hyperparams,
            children=tuple(children[0]) if children else (),
        )

    # The signature a reader sees says what the factory returns, not what the body does.
    if signature.return_annotation is inspect.Signature.empty:
        shown = signature.replace(return_annotation="GradientTransformation")
        setattr(build, "__signature__", shown)  # noqa: B010 (functools.wraps types no such attribute)
    return build
