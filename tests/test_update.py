"""apply_updates: None passes through, as in optax; a mismatched tree or an integer
parameter raises naming the leaf."""

import jax
import jax.numpy as jnp
import pytest
from test_errors import INT_LEAF, INT_PARAMS, PARAMS

import gradtx


def test_apply_updates_with_none_params_returns_none():
    assert gradtx.apply_updates(None, jnp.array([1.0, 2.0])) is None


def test_apply_updates_with_none_leaf_keeps_it():
    out = gradtx.apply_updates(
        {"w": jnp.array([1.0]), "b": None}, {"w": jnp.array([0.5]), "b": None}
    )
    assert out["b"] is None and float(out["w"][0]) == 1.5


def test_apply_updates_with_other_structure_raises_naming_leaf():
    updates = {"layer": {"b": jnp.zeros(2), "u": jnp.ones((2, 2))}}
    with pytest.raises(ValueError, match=r"^apply_updates: .*\['layer'\]\['u'\]"):
        gradtx.apply_updates(PARAMS, updates)


def test_apply_updates_to_integer_params_raises_naming_leaf():
    updates = jax.tree.map(lambda x: jnp.ones(x.shape, jnp.float32), INT_PARAMS)
    with pytest.raises(
        TypeError, match=rf"^apply_updates: parameter {INT_LEAF} has integer dtype int32"
    ):
        gradtx.apply_updates(INT_PARAMS, updates)
