"""A check shared by the tests of optax.contrib's transforms: same outputs as optax's."""

from __future__ import annotations

import jax
import numpy as np
from problems import PROBLEMS, assert_trajectories_close, random_sequence

STEPS = 120


def outputs(tx, grads, params):
    """The transform's outputs over the sequences, as lists of leaves (jitted scan)."""

    def body(state, gp):
        u, state = tx.update(gp[0], state, gp[1])
        return state, u

    stacked = jax.tree.map(lambda *xs: np.stack(xs), *zip(grads, params))
    _, outs = jax.jit(lambda s, xs: jax.lax.scan(body, s, xs))(tx.init(params[0]), stacked)
    outs = jax.tree.leaves(outs)
    return [[np.asarray(o[t]) for o in outs] for t in range(len(grads))]


def assert_transform_matches_optax(tx, optax_tx, what, steps=STEPS):
    """Over random gradients and params of the nested tree, in float64, to 1e-10."""
    with jax.enable_x64(True):
        tree0 = PROBLEMS["nested_quadratic"].params
        grads = random_sequence(tree0, steps, seed=7)
        params = random_sequence(tree0, steps, seed=8)
        actual = outputs(tx, grads, params)
        with jax.numpy_dtype_promotion("standard"):
            expected = outputs(optax_tx, grads, params)
    assert_trajectories_close(actual, expected, what)
