"""Second-moment transforms: the rectified RMS against optax's RAdam, and second
moments stored in bfloat16 that stochastic rounding keeps unbiased.

scale_by_rectified_rms is also compared with torch.optim.RAdam through the
presets (test_presets_torch.py).  The other second moments (scale_by_rms,
scale_by_rss, ...) meet their closed forms in test_references.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from problems import GRAD_ROWS, run_rows
from test_state_dtype import BF16

import gradtx
from gradtx._moments import round_bf16_stochastic


def test_scale_by_rectified_rms_with_zero_eps_matches_optax_radam():
    b1, b2 = 0.9, 0.9  # rho_inf = 19: the rectification switches on at t = 6
    with jax.enable_x64(True):
        ours = run_rows(
            gradtx.precondition(
                gradtx.chain(gradtx.scale_by_momentum(b1, ema=True), gradtx.bias_correction(b1)),
                by=gradtx.scale_by_rectified_rms(b2, eps=0.0),
            ),
            GRAD_ROWS,
        )
        with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int32
            theirs = run_rows(optax.scale_by_radam(b1, b2, eps=0.0), GRAD_ROWS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_scale_by_rectified_rms_with_threshold_below_4_raises():
    with pytest.raises(
        ValueError, match=r"scale_by_rectified_rms: threshold must be in \[4, inf\]"
    ):
        gradtx.scale_by_rectified_rms(threshold=3.0)


def test_bf16_second_moment_of_noise_stays_unbiased_over_long_runs():
    """0.999 * v rounds back to v in bf16; stochastic rounding keeps the EMA unbiased."""
    n, steps = 1024, 3000
    opt = gradtx.scale_by_rms(0.999, bias_correction=True, nu_dtype=BF16)
    params = jnp.zeros(n)

    def body(i, state):
        g = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(2), i), (n,))
        return opt.update(g, state, params)[1]

    state = jax.jit(lambda s: jax.lax.fori_loop(0, steps, body, s))(opt.init(params))
    v_hat = jnp.mean(state.nu.astype(jnp.float32)) / (1 - 0.999**steps)
    # unit-variance gradients: E[v_hat] = 1; the sampling error over 1024 x ~1000 steps is ~0.2%
    assert abs(float(v_hat) - 1.0) < 0.02


def test_stochastic_rounding_picks_a_neighbour_with_the_right_probability():
    x = jnp.full((1 << 16,), 1.0 + 2.0**-10, jnp.float32)  # 1/8 of the way from 1 to 1 + 2^-7
    rounded = round_bf16_stochastic(x, jnp.asarray(7, jnp.int32), 0).astype(jnp.float32)
    up = np.asarray(rounded) == 1.0 + 2.0**-7
    assert np.all(up | (np.asarray(rounded) == 1.0))
    assert abs(up.mean() - 0.125) < 0.01
    negative = round_bf16_stochastic(-x, jnp.asarray(7, jnp.int32), 0).astype(jnp.float32)
    np.testing.assert_array_equal(negative, -rounded)


def test_stochastic_rounding_draws_afresh_at_every_step():
    """One element over 65536 steps rounds up 1/8 of the time too."""
    x = jnp.asarray([1.0 + 2.0**-10], jnp.float32)
    counts = jnp.arange(1 << 16, dtype=jnp.int32)
    rounded = np.asarray(jax.vmap(lambda c: round_bf16_stochastic(x, c, 3))(counts), np.float32)
    assert abs((rounded == 1.0 + 2.0**-7).mean() - 0.125) < 0.01


def test_bf16_params_get_an_unbiased_second_moment_without_nu_dtype():
    """bf16 params, nu_dtype left at None: v is stored in bf16 and still decays (optax's would not)."""
    n, steps = 1024, 3000
    opt = gradtx.scale_by_rms(0.999, bias_correction=True)
    params = jnp.zeros(n, BF16)

    def body(i, state):
        g = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(3), i), (n,)).astype(BF16)
        return opt.update(g, state, params)[1]

    state = jax.jit(lambda s: jax.lax.fori_loop(0, steps, body, s))(opt.init(params))
    assert state.nu.dtype == BF16
    v_hat = jnp.mean(state.nu.astype(jnp.float32)) / (1 - 0.999**steps)
    # E[v_hat] = E[bf16(g)^2] = 1 up to the bf16 rounding of g; round to nearest gives ~1.3
    assert abs(float(v_hat) - 1.0) < 0.02
