"""scale_by_ademamix and scale_by_simplified_ademamix on their own."""

from __future__ import annotations

import jax.numpy as jnp
import optax.contrib
import pytest
from problems import assert_transform_matches_optax

import gradtx


def test_scale_by_ademamix_with_defaults_matches_optax():
    assert_transform_matches_optax(
        gradtx.scale_by_ademamix(), optax.contrib.scale_by_ademamix(), "scale_by_ademamix"
    )


def test_scale_by_simplified_ademamix_matches_optax():
    assert_transform_matches_optax(
        gradtx.scale_by_simplified_ademamix(b1=0.9, alpha=3.0, eps_root=1e-4),
        optax.contrib.scale_by_simplified_ademamix(b1=0.9, alpha=3.0, eps_root=1e-4),
        "scale_by_simplified_ademamix",
    )


def test_scale_by_ademamix_with_bf16_mu_dtype_stores_all_moments_in_bf16():
    tx = gradtx.scale_by_ademamix(mu_dtype=jnp.bfloat16)
    _, state = tx.update(jnp.ones(3), tx.init(jnp.zeros(3)))
    assert {state.m1.dtype, state.m2.dtype, state.nu.dtype} == {jnp.dtype(jnp.bfloat16)}


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: gradtx.scale_by_ademamix(b3=1.0), r"scale_by_ademamix: b3 must be in \[0, 1\)"),
        (lambda: gradtx.ademamix(0.1, b1=-0.1), r"^ademamix: b1 must be in \[0, 1\), got -0.1"),
        (
            lambda: gradtx.simplified_ademamix(0.1, b2=1.0),
            r"^simplified_ademamix: b2 must be in \[0, 1\)",
        ),
        (lambda: gradtx.ademamix(-1.0), r"ademamix: learning_rate must be in \[0, inf\]"),
    ],
)
def test_ademamix_invalid_hyperparameter_raises(make, message):
    with pytest.raises(ValueError, match=message):
        make()
