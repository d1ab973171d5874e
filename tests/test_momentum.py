"""Momentum transforms: the edges of their hyperparameter ranges, and Nesterov-Adam's
momentum against a float64 NumPy loop of its published equations.

scale_by_nadam_momentum is also compared with torch.optim.NAdam and
keras.optimizers.Nadam through the presets (test_presets_torch.py,
test_presets_keras.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from problems import GRAD_ROWS, run_rows

import gradtx


def test_trace_with_decay_one_is_the_running_sum_as_in_optax():
    tx, ref = gradtx.trace(1.0), optax.trace(1.0)
    grads = [jnp.array([1.0, -2.0]), jnp.array([0.5, 0.5]), jnp.array([2.0, 1.0])]
    state, ref_state = tx.init(grads[0]), ref.init(grads[0])
    for t, g in enumerate(grads, start=1):
        u, state = tx.update(g, state)
        want, ref_state = ref.update(g, ref_state)
        np.testing.assert_array_equal(u, sum(grads[:t]))
        np.testing.assert_array_equal(u, want)


def test_trace_with_decay_above_one_raises():
    with pytest.raises(ValueError, match=r"trace: decay must be in \[0, 1\], got 1.5"):
        gradtx.trace(1.5)


@pytest.mark.parametrize("momentum_decay", [4e-3, 1.0, 0.0])
def test_scale_by_nadam_momentum_matches_closed_form(momentum_decay):
    b1 = 0.8
    m, product, expected = np.zeros(5), 1.0, []
    for t, g in enumerate(GRAD_ROWS, start=1):
        mu_t = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        product *= mu_t
        m = b1 * m + (1 - b1) * g
        expected.append((1 - mu_t) / (1 - product) * g + mu_next / (1 - product * mu_next) * m)
    with jax.enable_x64(True):
        ours = run_rows(gradtx.scale_by_nadam_momentum(b1, momentum_decay), GRAD_ROWS)
    np.testing.assert_allclose(ours, np.stack(expected), rtol=1e-13)


def test_scale_by_nadam_momentum_with_negative_momentum_decay_raises():
    with pytest.raises(
        ValueError,
        match=r"scale_by_nadam_momentum: momentum_decay must be in "
        r"\[0, inf\]",
    ):
        gradtx.scale_by_nadam_momentum(momentum_decay=-1.0)
