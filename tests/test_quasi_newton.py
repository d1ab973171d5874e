"""scale_by_lbfgs: the two-loop recursion against NumPy's and optax's, without a line search."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx


def test_scale_by_lbfgs_state_keeps_optax_fields_and_a_ring_of_pairs():
    tx = gradtx.scale_by_lbfgs(memory_size=3)
    x = {"w": jnp.ones((2, 2))}
    state = tx.init(x)
    assert state._fields == (
        "count",
        "params",
        "updates",
        "diff_params_memory",
        "diff_updates_memory",
        "weights_memory",
    )
    assert state.diff_params_memory["w"].shape == (3, 2, 2)
    for k in range(5):
        x2 = {"w": x["w"] * (1.0 + 0.1 * k)}
        _, state = tx.update(jax.tree.map(lambda p: 2 * p, x2), state, x2)
    assert int(state.count) == 5 and bool(jnp.all(state.weights_memory != 0))


def test_scale_by_lbfgs_first_step_is_normalised_gradient():
    tx = gradtx.scale_by_lbfgs()
    x = jnp.array([0.3, 0.4])
    u, _ = tx.update(x, tx.init(x), x)  # ||g|| = 0.5 < 1: gamma = 1
    np.testing.assert_allclose(u, [0.3, 0.4], rtol=1e-6)


def test_scale_by_lbfgs_with_zero_memory_raises():
    with pytest.raises(ValueError, match=r"^scale_by_lbfgs: memory_size must be an int >= 1"):
        gradtx.scale_by_lbfgs(0)


def test_scale_by_lbfgs_without_params_raises():
    tx = gradtx.scale_by_lbfgs()
    with pytest.raises(ValueError, match=r"^scale_by_lbfgs: update needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


@pytest.mark.parametrize("linesearch", ["default", None])
def test_lbfgs_with_empty_params_is_a_no_op(linesearch):
    opt = gradtx.lbfgs() if linesearch == "default" else gradtx.lbfgs(0.5, linesearch=None)
    state = opt.init({})
    for _ in range(2):
        updates, state = opt.update(
            {}, state, {}, value=jnp.asarray(1.0), grad={}, value_fn=lambda p: jnp.asarray(1.0)
        )
    assert updates == {}
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))
