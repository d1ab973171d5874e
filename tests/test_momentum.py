"""Momentum transforms: the edges of their hyperparameter ranges."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx


def test_trace_with_decay_one_is_the_running_sum_as_in_optax():
    tx, ref = gradtx.trace(1.0), optax.trace(1.0)
    grads = [jnp.array([1.0, -2.0]), jnp.array([0.5, 0.5]), jnp.array([2.0, 1.0])]
    state, ref_state = tx.init(grads[0]), ref.init(grads[0])
    for t, g in enumerate(grads, start=1):
        u, state = tx.update(g, state)
        want, ref_state = ref.update(g, ref_state)
        np.testing.assert_array_equal(u, sum(grads[:t]))
        np.testing.assert_array_equal(u, want)


def test_trace_with_decay_above_one_raises():
    with pytest.raises(ValueError, match=r"trace: decay must be in \[0, 1\], got 1.5"):
        gradtx.trace(1.5)
