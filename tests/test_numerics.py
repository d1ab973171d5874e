"""The numerics shared by the transforms: a step counter that saturates instead of wrapping."""

import jax
import jax.numpy as jnp
from test_reliability_precision import INT32_MAX

from gradtx._numerics import increment


def test_increment_saturates_at_int32_max():
    for start, want in [(0, 1), (INT32_MAX - 1, INT32_MAX), (INT32_MAX, INT32_MAX)]:
        count = jnp.asarray(start, jnp.int32)
        for got in (increment(count), jax.jit(increment)(count)):
            assert got.dtype == jnp.int32 and int(got) == want
