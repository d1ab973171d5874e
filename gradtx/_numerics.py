"""Numeric helpers shared by the transforms: compute dtypes, squares, step counters, ``cond``.

The per-leaf arithmetic helpers (``add``, ``mul``, ``div``, ``sqrt``, ``cast``)
compute exactly what ``x + y``, ``x * y``, ``x / y``, ``jnp.sqrt(x)`` and
``x.astype(dtype)`` compute, and trace faster.  A ``jnp`` operator runs
through a jitted function that is traced again for every new leaf shape
(about a millisecond each), which dominates the tracing of a pytree of
thousands of differently shaped leaves; the helpers bind the ``lax``
primitive directly where that gives the same result: float32 or float64
operands of one dtype and shape (or a scalar beside an array), or a Python
number beside such an array.  Anything else (bfloat16, complex, mixed dtypes,
weakly typed arrays) takes the ``jnp`` operator.

``cond`` is ``lax.cond`` that, called eagerly, runs only the chosen branch:
the transforms build their branches as fresh closures on every call, and
``lax.cond`` would trace, lower and compile them into a new XLA program each
time.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.core import Tracer

try:  # jax's own test of "nothing is being traced" (private, present since before 0.4.30)
    from jax._src.core import trace_state_clean
except ImportError:  # a jax without it: ``cond`` is always ``lax.cond``

    def trace_state_clean() -> bool:
        return False


_INT32_MAX = np.iinfo(np.int32).max


@functools.lru_cache(maxsize=None, typed=True)
def _compute_dtype(*dtypes):
    with jax.numpy_dtype_promotion("standard"):
        return jnp.promote_types(jnp.result_type(*dtypes), jnp.float32)


def compute_dtype(*dtypes):
    """The dtype arithmetic runs in: the widest of ``dtypes``, at least float32.

    bf16/f16 are widened to float32; float64 and complex stay as they are.
    Decided under standard promotion, so it also works when the caller runs
    under ``jax.numpy_dtype_promotion("strict")`` (which refuses, e.g.,
    float64 with float32 or bfloat16 with float32).
    """
    try:
        return _compute_dtype(*dtypes)
    except TypeError:  # unhashable arguments (arrays): decide without the cache
        with jax.numpy_dtype_promotion("standard"):
            return jnp.promote_types(jnp.result_type(*dtypes), jnp.float32)


def real_compute_dtype(*dtypes):
    """The real dtype of ``compute_dtype(*dtypes)`` (float32 for complex64)."""
    return jnp.finfo(compute_dtype(*dtypes)).dtype


def widen_float16(tree):
    """``tree`` with its float16 leaves in float32, every other leaf as it is.

    float16 ends at 65504: a value inside a transform (a look-ahead
    momentum, a norm) can leave that range where the final update does not.
    bfloat16 has float32's range and is left alone.
    """
    return jax.tree.map(
        lambda x: cast(x, jnp.float32) if jnp.result_type(x) == jnp.float16 else x, tree
    )


def abs_sq(x):
    """|x|^2 = x * conj(x), real for complex x."""
    if jnp.iscomplexobj(x):
        return jnp.real(x * jnp.conj(x))
    return mul(x, x)


def increment(count):
    """count + 1, saturating at the int32 maximum instead of wrapping."""
    return count + (count < _INT32_MAX).astype(count.dtype)


def new_count():
    """A fresh step counter: int32 zero."""
    return jnp.zeros((), jnp.int32)


def is_traced(value) -> bool:
    """Whether ``value`` is a tracer (under jit, grad or vmap) rather than a concrete value."""
    return isinstance(value, Tracer)


def cond(pred, true_fn, false_fn, *operands):
    """``lax.cond(pred, true_fn, false_fn, *operands)``, with the branch run directly when eager.

    When nothing is being traced (no ``jit``, ``vmap``, ``grad``, ``scan``
    or other transformation is active), the chosen branch runs op by op, as
    ``lax.cond`` does under ``jax.disable_jit``, and its leaves are returned
    as arrays, as ``lax.cond`` returns them.  Inside any transformation it
    is ``lax.cond`` itself, even for a concrete ``pred``: the branches may
    close over tracers, and the traced program stays what ``lax.cond``
    makes.  Eagerly neither branch's types are checked against the other's,
    so the two must agree (shape, dtype and weak type) by construction; the
    traced path still checks them.  Run op by op, the branch may round
    differently from a compiled program in the last bits, as any eager
    computation may.
    """
    if not trace_state_clean():
        return lax.cond(pred, true_fn, false_fn, *operands)
    out = true_fn(*operands) if pred else false_fn(*operands)
    return jax.tree.map(lambda x: x if isinstance(x, jax.Array) else jnp.asarray(x), out)


_DIRECT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def binds_directly(x, y) -> bool:
    """Whether ``x op y`` may bind the lax primitive and match the jnp operator bit for bit."""
    dtype = getattr(x, "dtype", None)
    if dtype not in _DIRECT_DTYPES or getattr(x, "weak_type", True):
        return False
    if type(y) in (int, float):
        return True
    return getattr(y, "dtype", None) == dtype and (y.shape == x.shape or y.shape == ())


def _operand(x, y):
    return np.asarray(y, x.dtype) if type(y) in (int, float) else y


def add(x, y):
    """x + y (see the module docstring)."""
    return lax.add(x, _operand(x, y)) if binds_directly(x, y) else x + y


def sub(x, y):
    """x - y (see the module docstring)."""
    return lax.sub(x, _operand(x, y)) if binds_directly(x, y) else x - y


def mul(x, y):
    """x * y (see the module docstring)."""
    return lax.mul(x, _operand(x, y)) if binds_directly(x, y) else x * y


def div(x, y):
    """x / y (see the module docstring)."""
    return lax.div(x, _operand(x, y)) if binds_directly(x, y) else x / y


def sqrt(x):
    """jnp.sqrt(x) (see the module docstring)."""
    return lax.sqrt(x) if binds_directly(x, 0) else jnp.sqrt(x)


def cast(x, dtype):
    """x.astype(dtype); nothing to trace when x already has that dtype."""
    if getattr(x, "dtype", None) == dtype and not getattr(x, "weak_type", True):
        return x
    return x.astype(dtype)
