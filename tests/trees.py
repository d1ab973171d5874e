"""Tree assertions beyond chex's: equality of every bit, and of Python leaf types.

``chex.assert_trees_all_equal`` compares values (0.0 equals -0.0, NaN payloads
are not compared); a checkpoint round trip or a composition law needs the
same bits, dtypes, shapes and, for Python scalars, the same types.
"""

import jax
import jax.numpy as jnp
import numpy as np


def assert_bitwise_equal(a, b):
    """Same structure, and leaf by leaf the same type family, dtype, shape and bytes."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert type(x) is type(y) or (isinstance(x, jax.Array) and isinstance(y, jax.Array))
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes(), (x, y)


def wide_tree(n):
    """A wide tree: {"blockNNN": {"wNN": float32[2]}}, n leaves, 100 per block, distinct values."""
    values = np.arange(2 * n, dtype=np.float32).reshape(n, 2) / n - 0.5
    tree = {}
    for i in range(n):
        tree.setdefault(f"block{i // 100:03d}", {})[f"w{i % 100:02d}"] = jnp.asarray(values[i])
    return tree
