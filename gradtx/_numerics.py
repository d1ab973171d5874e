"""Numeric helpers shared by the transforms: compute dtypes, squares, step counters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

_INT32_MAX = np.iinfo(np.int32).max


def compute_dtype(*dtypes):
    """The dtype arithmetic runs in: the widest of ``dtypes``, at least float32.

    bf16/f16 are widened to float32; float64 and complex stay as they are.
    Decided under standard promotion, so it also works when the caller runs
    under ``jax.numpy_dtype_promotion("strict")`` (which refuses, e.g.,
    float64 with float32 or bfloat16 with float32).
    """
    with jax.numpy_dtype_promotion("standard"):
        return jnp.promote_types(jnp.result_type(*dtypes), jnp.float32)


def real_compute_dtype(*dtypes):
    """The real dtype of ``compute_dtype(*dtypes)`` (float32 for complex64)."""
    return jnp.finfo(compute_dtype(*dtypes)).dtype


def abs_sq(x):
    """|x|^2 = x * conj(x), real for complex x."""
    if jnp.iscomplexobj(x):
        return jnp.real(x * jnp.conj(x))
    return x * x


def increment(count):
    """count + 1, saturating at the int32 maximum instead of wrapping."""
    return count + (count < _INT32_MAX).astype(count.dtype)


def new_count():
    """A fresh step counter: int32 zero."""
    return jnp.zeros((), jnp.int32)


def is_traced(value) -> bool:
    """Whether ``value`` is a tracer (under jit, grad or vmap) rather than a concrete value."""
    return isinstance(value, Tracer)
