"""Type aliases for the annotations of gradtx's public functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, Union

import jax
from jax.typing import ArrayLike

PyTree = Any
"""A pytree of arrays: params, gradients, updates or an optimizer state."""

Schedule = Callable[[ArrayLike], jax.Array]
"""A schedule: the step count (0 first) to a value."""

ScalarOrSchedule = Union[float, jax.Array, Schedule]
"""A hyperparameter given as a number or as a schedule ``step -> value``."""

MaskOrFn = Union[PyTree, Callable[[PyTree], PyTree]]
"""A pytree of labels or bools shaped like the params, or a function ``params -> that pytree``."""


class TransformLike(Protocol):
    """Anything with optax's ``init`` and ``update``: a gradtx or an optax transform."""

    @property
    def init(self) -> Callable[..., Any]: ...

    @property
    def update(self) -> Callable[..., Any]: ...
