"""apply_updates: None passes through, as in optax."""

import jax.numpy as jnp

import gradtx


def test_apply_updates_with_none_params_returns_none():
    assert gradtx.apply_updates(None, jnp.array([1.0, 2.0])) is None


def test_apply_updates_with_none_leaf_keeps_it():
    out = gradtx.apply_updates(
        {"w": jnp.array([1.0]), "b": None}, {"w": jnp.array([0.5]), "b": None}
    )
    assert out["b"] is None and float(out["w"][0]) == 1.5
