"""AdEMAMix's alpha and beta_3 schedules against the paper (NumPy) and pytorch-optimizer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_adam_variants as ref_adam_variants
from lazy_import import lazy

import gradtx

pytorch_optimizer = lazy("pytorch_optimizer")

STEPS = np.arange(0, 1300, 7)


@pytest.mark.parametrize("alpha, warmup", [(5.0, 1000), (8.0, 37)])
def test_ademamix_alpha_schedule_matches_paper_and_pytorch_optimizer(alpha, warmup):
    schedule = jax.jit(gradtx.ademamix_alpha_schedule(alpha, warmup))
    actual = np.array([float(schedule(jnp.int32(t))) for t in STEPS])
    paper = np.array([ref_adam_variants.ademamix_alpha(alpha, warmup, t) for t in STEPS])
    torch_ = np.array(
        [pytorch_optimizer.AdEMAMix.schedule_alpha(warmup, int(t), alpha) for t in STEPS]
    )
    np.testing.assert_allclose(actual, paper, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(actual, torch_, rtol=1e-6, atol=1e-7)
    assert actual[0] == 0 and actual[-1] == alpha


@pytest.mark.parametrize("b3, warmup, b1", [(0.9999, 1000, 0.9), (0.999, 37, 0.95)])
def test_ademamix_beta3_schedule_matches_paper_and_pytorch_optimizer(b3, warmup, b1):
    schedule = jax.jit(gradtx.ademamix_beta3_schedule(b3, warmup, b1=b1))
    actual = np.array([float(schedule(jnp.int32(t))) for t in STEPS])
    paper = np.array([ref_adam_variants.ademamix_beta3(b3, warmup, b1, t) for t in STEPS])
    torch_ = np.array(
        [pytorch_optimizer.AdEMAMix.schedule_beta3(warmup, int(t), b1, b3) for t in STEPS]
    )
    np.testing.assert_allclose(actual, paper, rtol=1e-6)
    np.testing.assert_allclose(actual, torch_, rtol=1e-6)
    assert actual[0] == pytest.approx(b1) and actual[-1] == pytest.approx(b3)
    assert np.all(np.diff(actual) >= -1e-7)  # rises monotonically


def test_ademamix_beta3_schedule_half_life_grows_linearly(x64_on):
    # The half-life ln(1/2) / ln(beta_3(t)) is linear in t during the warm-up.
    schedule = gradtx.ademamix_beta3_schedule(0.9999, 1000, b1=0.9)
    t = np.arange(0, 1001, 50)
    half_life = np.log(0.5) / np.log(np.array([float(schedule(jnp.asarray(s))) for s in t]))
    np.testing.assert_allclose(np.diff(half_life, 2), 0, atol=1e-6 * half_life.max())


@pytest.fixture
def x64_on():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: gradtx.ademamix_alpha_schedule(-1.0, 10),
            r"ademamix_alpha_schedule: alpha must be in \[0, inf\]",
        ),
        (
            lambda: gradtx.ademamix_alpha_schedule(5.0, 0),
            r"ademamix_alpha_schedule: warmup_steps must be in \(0, inf\]",
        ),
        (
            lambda: gradtx.ademamix_beta3_schedule(1.0, 10),
            r"ademamix_beta3_schedule: b3 must be in \(0, 1\)",
        ),
        (
            lambda: gradtx.ademamix_beta3_schedule(0.99, 10, b1=0.999),
            r"ademamix_beta3_schedule: b1 must be in \(0, 0.99\]",
        ),
    ],
)
def test_ademamix_schedule_with_bad_argument_raises(make, message):
    with pytest.raises(ValueError, match=message):
        make()
