"""Every transform on its own, number for number, against the closed-form float64 NumPy
loops of ``tests/reference.py`` (written from the published equations), under
``jax.enable_x64`` so that the comparison can be tight (rtol 1e-10).

The optimizers built from these transforms are compared in
``tests/test_optimizers_<family>.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from problems import PROBLEMS, STEPS, assert_trajectories_close, random_sequence

import gradtx

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


def _decay_mask(params):
    """Decay matrices and cubes, not scalars, vectors and biases."""
    return jax.tree.map(lambda p: np.ndim(p) >= 2, params)


def _f64(t):
    """A schedule's step count as float64 (strict promotion refuses int32 * float)."""
    return jnp.asarray(t, jnp.float64)


# ----------------------------------------------------------------------------
# Transforms, each on its own, over 120 random gradients (and random params,
# for the weight decay) of the nested-dict tree.

TRANSFORM_CASES = {
    "identity": (lambda: gradtx.identity(), lambda ps: ref.scale(1.0)),
    "scale": (lambda: gradtx.scale(-0.7), lambda ps: ref.scale(-0.7)),
    "scale_by_learning_rate_schedule": (
        lambda: gradtx.scale_by_learning_rate(lambda t: 0.1 / (1.0 + _f64(t))),
        lambda ps: ref.scale_by_learning_rate(lambda t: 0.1 / (1.0 + _f64(t))),
    ),
    "scale_by_learning_rate_no_flip": (
        lambda: gradtx.scale_by_learning_rate(0.3, flip_sign=False),
        lambda ps: ref.scale_by_learning_rate(0.3, flip_sign=False),
    ),
    "scale_by_momentum_heavy": (
        lambda: gradtx.scale_by_momentum(0.9),
        lambda ps: ref.momentum(0.9),
    ),
    "scale_by_momentum_ema": (
        lambda: gradtx.scale_by_momentum(0.8, ema=True),
        lambda ps: ref.momentum(0.8, ema=True),
    ),
    "scale_by_momentum_nesterov": (
        lambda: gradtx.scale_by_momentum(0.9, nesterov=True),
        lambda ps: ref.momentum(0.9, nesterov=True),
    ),
    "trace_nesterov": (
        lambda: gradtx.trace(0.9, nesterov=True),
        lambda ps: ref.momentum(0.9, nesterov=True),
    ),
    "scale_by_momentum_nesterov_ema": (
        lambda: gradtx.scale_by_momentum(0.7, ema=True, nesterov=True),
        lambda ps: ref.momentum(0.7, ema=True, nesterov=True),
    ),
    "bias_correction": (lambda: gradtx.bias_correction(0.95), lambda ps: ref.bias_correction(0.95)),
    # eps_in_sqrt (optax's default) puts eps under the root beside eps_root.
    "scale_by_rms": (
        lambda: gradtx.scale_by_rms(0.9, eps=0.1, eps_root=0.01, initial_scale=0.5),
        lambda ps: ref.scale_by_rms(0.9, eps=0.0, eps_root=0.11, initial_scale=0.5),
    ),
    "scale_by_rms_eps_outside": (
        lambda: gradtx.scale_by_rms(0.9, eps=0.1, eps_in_sqrt=False, eps_root=0.01),
        lambda ps: ref.scale_by_rms(0.9, eps=0.1, eps_root=0.01),
    ),
    "scale_by_rms_bias_correction": (
        lambda: gradtx.scale_by_rms(0.99, eps=1e-3, bias_correction=True),
        lambda ps: ref.scale_by_rms(0.99, eps=0.0, eps_root=1e-3, bias_correction=True),
    ),
    "scale_by_centered_rms": (
        lambda: gradtx.scale_by_centered_rms(
            0.9, eps=0.1, eps_in_sqrt=False, eps_root=0.01, initial_scale=0.2
        ),
        lambda ps: ref.scale_by_centered_rms(0.9, eps=0.1, eps_root=0.01, initial_scale=0.2),
    ),
    "scale_by_centered_rms_bias_correction": (
        # At t = 1 the corrected variance g^2 - g^2 is zero: eps keeps
        # round-off from deciding between 0 and g / eps.
        lambda: gradtx.scale_by_centered_rms(0.95, eps=1e-2, bias_correction=True),
        lambda ps: ref.scale_by_centered_rms(0.95, eps=0.0, eps_root=1e-2, bias_correction=True),
    ),
    "scale_by_rss": (
        lambda: gradtx.scale_by_rss(),
        lambda ps: ref.scale_by_rss(0.1, eps=0.0, eps_root=1e-7),
    ),
    "scale_by_rss_eps_outside": (
        lambda: gradtx.scale_by_rss(0.0, eps=0.3, eps_in_sqrt=False),
        lambda ps: ref.scale_by_rss(0.0, eps=0.3, eps_root=0.0),
    ),
    "scale_by_adadelta": (
        lambda: gradtx.scale_by_adadelta(0.9, 1e-4),
        lambda ps: ref.scale_by_adadelta(0.9, 1e-4),
    ),
    "scale_by_max_rms": (
        lambda: gradtx.scale_by_max_rms(0.9, eps=1e-3),
        lambda ps: ref.scale_by_max_rms(0.9, eps=1e-3),
    ),
    "scale_by_max_rms_before_correction": (
        lambda: gradtx.scale_by_max_rms(0.9, eps=1e-3, eps_root=1e-4, max_before_correction=True),
        lambda ps: ref.scale_by_max_rms(0.9, eps=1e-3, eps_root=1e-4, max_before_correction=True),
    ),
    "scale_by_max_rms_no_correction": (
        lambda: gradtx.scale_by_max_rms(0.9, eps=1e-3, bias_correction=False),
        lambda ps: ref.scale_by_max_rms(0.9, eps=1e-3, bias_correction=False),
    ),
    "add_decayed_weights": (
        lambda: gradtx.add_decayed_weights(0.3),
        lambda ps: ref.add_decayed_weights(0.3),
    ),
    "add_decayed_weights_mask_tree": (
        lambda: gradtx.add_decayed_weights(
            0.3, mask=_decay_mask(PROBLEMS["nested_quadratic"].params)
        ),
        lambda ps: [ref.add_decayed_weights(0.3, decay=np.ndim(p) >= 2) for p in ps],
    ),
    "add_decayed_weights_schedule_mask_fn": (
        lambda: gradtx.add_decayed_weights(lambda t: 0.1 * (_f64(t) + 1.0), mask=_decay_mask),
        lambda ps: [
            ref.add_decayed_weights(lambda t: 0.1 * (_f64(t) + 1.0), decay=np.ndim(p) >= 2)
            for p in ps
        ],
    ),
}


@pytest.mark.parametrize("name", list(TRANSFORM_CASES))
def test_transform_matches_closed_form(name, x64):
    make_tx, make_reference = TRANSFORM_CASES[name]
    tree0 = PROBLEMS["nested_quadratic"].params
    grads = random_sequence(tree0, STEPS, seed=2)
    params = random_sequence(tree0, STEPS, seed=3)

    init, update = ref.tree(make_reference(jax.tree.leaves(tree0)))
    state = init(jax.tree.leaves(params[0]))
    expected = []
    for g, p in zip(grads, params):
        u, state = update(jax.tree.leaves(g), state, jax.tree.leaves(p))
        expected.append(u)

    tx = make_tx()

    def body(state, gp):
        u, state = tx.update(gp[0], state, gp[1])
        return state, u

    stacked = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *zip(grads, params))
    state0 = tx.init(jax.tree.map(jnp.asarray, params[0]))
    _, outs = jax.jit(lambda s, xs: jax.lax.scan(body, s, xs))(state0, stacked)
    outs = jax.tree.leaves(outs)
    actual = [[np.asarray(o[t]) for o in outs] for t in range(STEPS)]
    assert_trajectories_close(actual, expected, f"{name} vs NumPy")
