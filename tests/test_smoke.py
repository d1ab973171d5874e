import jax.numpy as jnp

import gradtx


def test_adam_first_step_moves_each_param_by_learning_rate():
    params = {"w": jnp.array([1.0, -2.0])}
    opt = gradtx.adam(0.1)
    updates, _ = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
    assert jnp.allclose(gradtx.apply_updates(params, updates)["w"], jnp.array([0.9, -1.9]))
