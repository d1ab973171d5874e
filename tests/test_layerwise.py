"""Trust ratios, parameter-block scalings, centralisation and global normalisation."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from problems import PROBLEMS, assert_transform_matches

import gradtx

TREE = PROBLEMS["nested_quadratic"].params

CASES = {
    "scale_by_trust_ratio": (lambda m: m.scale_by_trust_ratio(),),
    "scale_by_trust_ratio_floor_eps": (
        lambda m: m.scale_by_trust_ratio(min_norm=0.5, trust_coefficient=0.01, eps=0.1),
    ),
    "scale_by_param_block_norm": (lambda m: m.scale_by_param_block_norm(0.8),),
    "scale_by_param_block_rms": (lambda m: m.scale_by_param_block_rms(0.8),),
    "centralize": (lambda m: m.centralize(),),
    "normalize_by_update_norm": (lambda m: m.normalize_by_update_norm(2.0, eps=0.1),),
}


@pytest.mark.parametrize("name", list(CASES))
def test_layerwise_transform_matches_optax(name, x64):
    (make,) = CASES[name]
    assert_transform_matches(make(gradtx), make(optax), TREE, name)


def test_scale_by_trust_ratio_with_zero_param_leaf_leaves_update_alone():
    tx = gradtx.scale_by_trust_ratio()
    params = {"zero": jnp.zeros(3), "w": jnp.array([3.0, 4.0])}
    u, _ = tx.update({"zero": jnp.ones(3), "w": jnp.array([0.0, 0.5])}, tx.init(params), params)
    np.testing.assert_array_equal(u["zero"], np.ones(3))
    np.testing.assert_allclose(u["w"], [0.0, 5.0])


def test_centralize_leaves_vectors_and_removes_row_means():
    tx = gradtx.centralize()
    g = {"v": jnp.array([1.0, 2.0]), "m": jnp.arange(6.0).reshape(2, 3)}
    u, _ = tx.update(g, tx.init(g))
    np.testing.assert_array_equal(u["v"], g["v"])
    np.testing.assert_allclose(u["m"].mean(axis=1), [0.0, 0.0], atol=1e-6)


def test_trust_ratio_without_params_raises():
    tx = gradtx.scale_by_trust_ratio()
    with pytest.raises(ValueError, match=r"^scale_by_trust_ratio: update needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


def test_trust_ratio_with_negative_min_norm_raises():
    with pytest.raises(
        ValueError, match=r"^scale_by_trust_ratio: min_norm must be in \[0, inf\], got -1$"
    ):
        gradtx.scale_by_trust_ratio(min_norm=-1)
