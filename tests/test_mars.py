"""scale_by_mars on its own: the paper's correction (NumPy), composition, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import reference_adam_variants as ref_adam_variants
from problems import PROBLEMS, STEPS, assert_trajectories_close, random_sequence

import gradtx


def _transform_trajectory(tx, grads):
    def body(state, g):
        u, state = tx.update(g, state)
        return state, u

    stacked = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *grads)
    state0 = tx.init(jax.tree.map(jnp.asarray, grads[0]))
    _, outs = jax.jit(lambda s, xs: jax.lax.scan(body, s, xs))(state0, stacked)
    outs = jax.tree.leaves(outs)
    return [[np.asarray(o[t]) for o in outs] for t in range(len(grads))]


@pytest.mark.parametrize("b1, gamma, scale", [(0.95, 0.025, 0.1), (0.9, 1.0, 0.1), (0.5, 0.3, 3.0)])
def test_scale_by_mars_matches_closed_form(b1, gamma, scale, x64):
    # scale 0.1: few leaves reach norm 1; scale 3: every leaf is clipped.
    tree0 = PROBLEMS["nested_quadratic"].params
    grads = [jax.tree.map(lambda x: scale * x, g) for g in random_sequence(tree0, STEPS, seed=7)]
    init, update = ref.tree(ref_adam_variants.mars_correction(b1, gamma))
    state = init(jax.tree.leaves(grads[0]))
    expected = []
    for g in grads:
        u, state = update(jax.tree.leaves(g), state, jax.tree.leaves(g))  # params unused
        expected.append(u)
    actual = _transform_trajectory(gradtx.scale_by_mars(b1, gamma), grads)
    assert_trajectories_close(actual, expected, f"scale_by_mars({b1}, {gamma}) x{scale} vs NumPy")
    norms = [np.linalg.norm(leaf) for step in actual for leaf in step]
    assert max(norms) <= 1 + 1e-12
    clipped = np.mean(np.isclose(norms, 1.0, rtol=1e-12))
    assert clipped > 0.5 if scale > 1 else clipped < 0.9


def test_scale_by_mars_with_gamma_zero_is_the_clipped_gradient():
    g = {"a": jnp.array([0.3, 0.4]), "b": jnp.array([3.0, 4.0])}
    tx = gradtx.scale_by_mars(0.9, gamma=0.0)
    u, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(u["a"], [0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(u["b"], [0.6, 0.8], rtol=1e-6)


def test_scale_by_mars_first_in_a_chain_before_lion_sign_step():
    # Usable before any optimizer: chain(scale_by_mars, <sign step>) gives the sign of c_t.
    tx = gradtx.chain(gradtx.scale_by_mars(0.5, gamma=1.0), gradtx.scale_by_learning_rate(0.1))
    state = tx.init(jnp.zeros(2))
    _, state = tx.update(jnp.array([0.1, 0.1]), state)
    u, _ = tx.update(jnp.array([0.1, -0.05]), state)  # c = g + 1 * (g - g_prev)
    np.testing.assert_allclose(u, -0.1 * np.array([0.1, -0.2]), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(b1=1.0), r"scale_by_mars: b1 must be in \[0, 1\)"),
        (dict(gamma=-1.0), r"scale_by_mars: gamma must be in \[0, inf\]"),
    ],
)
def test_scale_by_mars_with_bad_hyperparameter_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gradtx.scale_by_mars(**kwargs)


def test_scale_by_mars_with_state_of_other_params_raises():
    tx = gradtx.scale_by_mars()
    with pytest.raises(ValueError, match="scale_by_mars: .*was the state made by init on other"):
        tx.update(jnp.ones(3), tx.init(jnp.ones(2)))
