"""The transforms added for the porting presets, against independent references.

scale_by_nadam_momentum and scale_by_rectified_rms are also compared with
torch.optim.NAdam / RAdam and keras.optimizers.Nadam through the presets
(test_presets_torch.py, test_presets_keras.py); here they meet a float64
NumPy loop of the published equations and optax.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

GRADS = np.random.default_rng(7).normal(size=(12, 5))


def _run(tx, grads):
    """Feed the rows of ``grads`` to ``tx`` one step at a time, in float64."""
    state = tx.init(jnp.zeros(grads.shape[1], jnp.float64))
    outs = []
    for g in grads:
        u, state = tx.update(jnp.asarray(g), state)
        outs.append(np.asarray(u))
    return np.stack(outs)


@pytest.mark.parametrize("momentum_decay", [4e-3, 1.0, 0.0])
def test_scale_by_nadam_momentum_matches_closed_form(momentum_decay):
    b1 = 0.8
    m, product, expected = np.zeros(5), 1.0, []
    for t, g in enumerate(GRADS, start=1):
        mu_t = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        product *= mu_t
        m = b1 * m + (1 - b1) * g
        expected.append((1 - mu_t) / (1 - product) * g + mu_next / (1 - product * mu_next) * m)
    with jax.enable_x64(True):
        ours = _run(gradtx.scale_by_nadam_momentum(b1, momentum_decay), GRADS)
    np.testing.assert_allclose(ours, np.stack(expected), rtol=1e-13)


def test_scale_by_rectified_rms_with_zero_eps_matches_optax_radam():
    b1, b2 = 0.9, 0.9  # rho_inf = 19: the rectification switches on at t = 6
    with jax.enable_x64(True):
        ours = _run(
            gradtx.precondition(
                gradtx.chain(gradtx.scale_by_momentum(b1, ema=True), gradtx.bias_correction(b1)),
                by=gradtx.scale_by_rectified_rms(b2, eps=0.0),
            ),
            GRADS,
        )
        with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int32
            theirs = _run(optax.scale_by_radam(b1, b2, eps=0.0), GRADS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_scale_by_schedule_scales_by_its_value_at_the_step_count():
    with jax.enable_x64(True):
        ours = _run(gradtx.scale_by_schedule(lambda t: 0.5 ** t.astype(jnp.float64)), GRADS)
    np.testing.assert_allclose(ours, GRADS * 0.5 ** np.arange(len(GRADS))[:, None], rtol=1e-15)


def test_scale_by_schedule_with_a_number_raises():
    with pytest.raises(TypeError, match="scale_by_schedule: step_size_fn must be a function"):
        gradtx.scale_by_schedule(0.5)


def test_scale_by_rectified_rms_with_threshold_below_4_raises():
    with pytest.raises(
        ValueError, match=r"scale_by_rectified_rms: threshold must be in \[4, inf\]"
    ):
        gradtx.scale_by_rectified_rms(threshold=3.0)


def test_scale_by_nadam_momentum_with_negative_momentum_decay_raises():
    with pytest.raises(
        ValueError,
        match=r"scale_by_nadam_momentum: momentum_decay must be in "
        r"\[0, inf\]",
    ):
        gradtx.scale_by_nadam_momentum(momentum_decay=-1.0)
