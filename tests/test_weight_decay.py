"""Weight decay: add_scaled_params adds a multiple of the parameters, of either sign;
add_decayed_weights with a mask leaves biases and norm scales undecayed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from problems import PROBLEMS, assert_transform_matches

import gradtx

TREE = PROBLEMS["nested_quadratic"].params


@pytest.mark.parametrize("scale", [-0.3, 0.2])
def test_add_scaled_params_matches_optax_add_decayed_weights(scale, x64):
    assert_transform_matches(
        gradtx.add_scaled_params(scale),
        optax.add_decayed_weights(scale),
        TREE,
        f"add_scaled_params({scale})",
    )


def test_add_scaled_params_with_a_schedule_counts_steps():
    tx = gradtx.add_scaled_params(lambda t: -0.5 * (t + 1).astype(jnp.float32))
    p = jnp.array([2.0])
    u, state = tx.update(jnp.zeros(1), tx.init(p), p)
    u2, state = tx.update(jnp.zeros(1), state, p)
    np.testing.assert_allclose([u[0], u2[0]], [-1.0, -2.0])


def test_add_scaled_params_without_params_raises():
    tx = gradtx.add_scaled_params(0.1)
    with pytest.raises(ValueError, match=r"^add_scaled_params: update needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


# ----------------------------------------------------------------------------
# add_decayed_weights with a mask: biases and norm scales are not decayed.

PARAMS = {
    "dense": {"kernel": jnp.array([[1.0, -2.0], [3.0, 0.5]]), "bias": jnp.array([0.3, -0.4])},
    "norm": {"scale": jnp.array([1.5, 0.7]), "offset": jnp.array([0.1, 0.2])},
    "frozen_stats": None,
}
GRADS = jax.tree.map(lambda p: jnp.full_like(p, 0.25), PARAMS)
MASK = {
    "dense": {"kernel": True, "bias": False},
    "norm": {"scale": False, "offset": False},
    "frozen_stats": None,
}


def _kernels_only(params):
    return jax.tree.map(lambda p: p.ndim > 1, params)


def _want(wd):
    """Closed form: g + wd * p for kernels, g elsewhere."""
    return {
        "dense": {
            "kernel": np.full((2, 2), 0.25) + wd * np.asarray(PARAMS["dense"]["kernel"]),
            "bias": np.full(2, 0.25),
        },
        "norm": {"scale": np.full(2, 0.25), "offset": np.full(2, 0.25)},
    }


@pytest.mark.parametrize("mask", [MASK, _kernels_only], ids=["bool_pytree", "function"])
def test_add_decayed_weights_mask_excludes_biases_and_norm_scales(mask):
    tx = gradtx.add_decayed_weights(0.1, mask)
    out, _ = jax.jit(tx.update)(GRADS, tx.init(PARAMS), PARAMS)
    assert out["frozen_stats"] is None
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(np.asarray(a), b, rtol=1e-6),
        {k: out[k] for k in ("dense", "norm")},
        _want(0.1),
    )


def test_adamw_mask_matches_optax_adamw_mask():
    params = {k: v for k, v in PARAMS.items() if v is not None}
    ours = gradtx.adamw(0.1, weight_decay=0.5, mask=_kernels_only)
    theirs = optax.adamw(0.1, weight_decay=0.5, mask=_kernels_only)
    s1, s2 = ours.init(params), theirs.init(params)
    step1, step2 = jax.jit(ours.update), jax.jit(theirs.update)
    g = {k: v for k, v in GRADS.items() if v is not None}
    for _ in range(2):
        u1, s1 = step1(g, s1, params)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes dtypes internally
            u2, s2 = step2(g, s2, params)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(
                np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7
            ),
            u1,
            u2,
        )
    # the excluded leaves moved exactly as plain Adam would move them
    adam = gradtx.adam(0.1)
    s3, step3 = adam.init(params), jax.jit(adam.update)
    for _ in range(2):
        u3, s3 = step3(g, s3, params)
    np.testing.assert_allclose(np.asarray(u1["norm"]["scale"]), np.asarray(u3["norm"]["scale"]))


def test_add_decayed_weights_mask_wrong_structure_names_leaf():
    tx = gradtx.add_decayed_weights(
        0.1, {"dense": {"kernel": True}, "norm": {"scale": False, "offset": False}}
    )
    with pytest.raises(
        ValueError,
        match=r"add_decayed_weights: mask do not match params.*"
        r"\['dense'\]\['bias'\]",
    ):
        tx.update(GRADS, tx.init(PARAMS), PARAMS)
