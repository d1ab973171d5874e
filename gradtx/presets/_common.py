"""Helpers shared by the preset modules."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._typing import ScalarOrSchedule


def as_float(step):
    """The step count as JAX's default float (float64 when x64 is enabled)."""
    return jnp.asarray(step).astype(jax.dtypes.canonicalize_dtype(jnp.float64))


def named(fn, name: str):
    """Give a schedule function a readable name for the recipe's repr."""
    fn.__name__ = fn.__qualname__ = name
    return fn


def value_at(learning_rate: ScalarOrSchedule, step):
    """A number, or a schedule evaluated at ``step``."""
    return learning_rate(step) if callable(learning_rate) else learning_rate
