"""Tree assertions beyond chex's: equality of every bit, and of Python leaf types.

``chex.assert_trees_all_equal`` compares values (0.0 equals -0.0, NaN payloads
are not compared); a checkpoint round trip or a composition law needs the
same bits, dtypes, shapes and, for Python scalars, the same types.
"""

import jax
import numpy as np


def assert_bitwise_equal(a, b):
    """Same structure, and leaf by leaf the same type family, dtype, shape and bytes."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert type(x) is type(y) or (isinstance(x, jax.Array) and isinstance(y, jax.Array))
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes(), (x, y)
