"""reduce_on_plateau: the scale follows the monitored values as NumPy and optax say."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
import reference_wrappers as ref_wrappers

import gradtx

SETTINGS = dict(
    factor=0.5, patience=2, rtol=0.05, atol=0.01, cooldown=1, accumulation_size=2, min_scale=0.05
)


def _values():
    """Falling, then flat, then briefly improving, then flat again: plateaus and recoveries."""
    rng = np.random.default_rng(0)
    trend = np.concatenate(
        [np.linspace(10, 5, 10), np.full(20, 5.0), np.linspace(5, 3, 6), np.full(30, 3.0)]
    )
    return trend + 0.01 * rng.normal(size=trend.size)


def _scales(tx, values):
    step = jax.jit(lambda s, v: tx.update({"w": jnp.ones(2)}, s, value=v))
    state, scales = tx.init({"w": jnp.ones(2)}), []
    for v in values:
        u, state = step(state, v)
        scales.append(float(u["w"][0]))
    return scales


def test_reduce_on_plateau_scales_match_numpy_and_optax():
    values = _values()
    identity = (lambda ps: None, lambda gs, s, ps: (gs, s))
    init, update = ref_wrappers.reduce_on_plateau(identity, **SETTINGS)
    state, expected = init([np.ones(2)]), []
    for v in values:
        u, state = update([np.ones(2)], state, [np.ones(2)], v)
        expected.append(float(u[0][0]))
    actual = _scales(gradtx.reduce_on_plateau(**SETTINGS), values)
    with jax.numpy_dtype_promotion("standard"):
        from_optax = _scales(optax.contrib.reduce_on_plateau(**SETTINGS), values)
    assert len(set(expected)) >= 4  # the run saw several reductions and the floor
    assert min(expected) == SETTINGS["min_scale"]
    np.testing.assert_allclose(actual, expected, rtol=1e-6)
    np.testing.assert_allclose(actual, from_optax, rtol=1e-6)


def test_reduce_on_plateau_without_value_raises():
    tx = gradtx.reduce_on_plateau()
    with pytest.raises(ValueError, match="reduce_on_plateau: update needs the monitored value"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(factor=1.0), r"reduce_on_plateau: factor must be in \(0, 1\), got 1.0"),
        (
            dict(rtol=0.0, atol=0.0),
            "reduce_on_plateau: at least one of rtol and atol must be positive",
        ),
        (dict(rtol=1.5), r"reduce_on_plateau: rtol must be in \[0, 1\], got 1.5"),
        (dict(accumulation_size=0), r"reduce_on_plateau: accumulation_size must be in \[1, inf\]"),
    ],
)
def test_reduce_on_plateau_invalid_hyperparameter_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gradtx.reduce_on_plateau(**kwargs)
