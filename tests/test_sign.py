"""scale_by_sign and scale_by_lion: against optax's transforms and by hand."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from problems import PROBLEMS, assert_transform_matches

import gradtx

TREE = PROBLEMS["nested_quadratic"].params


def test_scale_by_sign_matches_optax(x64):
    assert_transform_matches(gradtx.scale_by_sign(), optax.scale_by_sign(), TREE, "scale_by_sign")


@pytest.mark.parametrize("mode", ["hard", "smooth", "refined"])
def test_scale_by_lion_matches_optax(mode, x64):
    ours = gradtx.scale_by_lion(0.8, 0.95, mode=mode, smooth_beta=2.0)
    theirs = optax.scale_by_lion(0.8, 0.95, mode=mode, smooth_beta=2.0)
    actual = assert_transform_matches(ours, theirs, TREE, f"scale_by_lion {mode}")
    if mode == "hard":
        assert set(np.unique(np.concatenate([np.ravel(u) for u in actual[5]]))) <= {-1.0, 1.0}


def test_scale_by_lion_state_keeps_optax_fields_and_mu_dtype():
    tx = gradtx.scale_by_lion(mu_dtype=jnp.bfloat16)
    state = tx.init({"w": jnp.zeros(3)})
    assert state._fields == ("count", "mu")
    _, state = tx.update({"w": jnp.ones(3)}, state)
    assert state.mu["w"].dtype == jnp.bfloat16 and int(state.count) == 1


def test_scale_by_lion_step_is_sign_of_interpolation_by_hand():
    tx = gradtx.scale_by_lion(b1=0.5, b2=0.9)
    _, state = tx.update(jnp.array([1.0, -1.0]), tx.init(jnp.zeros(2)))  # m = (0.1, -0.1)
    u, _ = tx.update(jnp.array([-0.05, 0.3]), state)  # 0.5 m + 0.5 g = (0.025, 0.1)
    np.testing.assert_array_equal(u, [1.0, 1.0])


def test_scale_by_lion_with_unknown_mode_raises():
    with pytest.raises(ValueError, match=r"^scale_by_lion: mode must be one of .*got 'soft'$"):
        gradtx.scale_by_lion(mode="soft")


def test_lion_with_b1_out_of_range_names_the_recipe():
    with pytest.raises(ValueError, match=r"^lion: b1 must be in \[0, 1\], got 1.5$"):
        gradtx.lion(0.1, b1=1.5)
