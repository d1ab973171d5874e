"""graft: the direction of one transform with the norm of another."""

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

# The full suite runs these, beside Shampoo's grafting (test_matrix.py); the quick
# tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


def test_graft_takes_direction_from_one_and_norm_from_other():
    tx = gradtx.graft(gradtx.scale(-1.0), gradtx.scale(3.0))
    g = {"a": jnp.array([3.0, 4.0]), "b": jnp.zeros(2)}
    u, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(u["a"], [-9.0, -12.0], rtol=1e-6)  # unit -g times |3 g| = 15
    np.testing.assert_array_equal(u["b"], [0.0, 0.0])  # zero direction: zero step


def test_graft_with_non_transform_raises():
    with pytest.raises(TypeError, match="graft: magnitude"):
        gradtx.graft(gradtx.identity(), 3.0)
