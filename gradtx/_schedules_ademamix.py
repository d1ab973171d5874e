"""AdEMAMix's warm-ups of the mixing weight alpha and of the slow momentum's decay beta_3.

Both are schedules ``step -> value`` for the ``alpha`` and ``b3`` arguments
of an AdEMAMix optimizer (``optax.contrib.ademamix`` takes schedules there).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from ._checks import check_range


def _fraction(count, warmup_steps):
    """min(t / T, 1) in the default float dtype."""
    t = jnp.asarray(count).astype(jnp.result_type(float))
    return jnp.minimum(t / warmup_steps, 1)


def _pin_ends(count, value, start_value, warmup_steps, end_value):
    """``value``, but exactly ``start_value`` for t <= 0 and ``end_value`` for t >= T.

    ``t / T`` is computed as ``t * (1 / T)`` under jit, so the ramp may stop
    an ulp short of its end; the ends are decided on the step instead.
    """
    t = jnp.asarray(count)
    value = jnp.where(t <= 0, jnp.asarray(start_value, value.dtype), value)
    return jnp.where(t >= warmup_steps, jnp.asarray(end_value, value.dtype), value)


def ademamix_alpha_schedule(alpha=5.0, warmup_steps=1):
    """AdEMAMix's alpha warm-up: alpha(t) = min(t * alpha / T_alpha, alpha).

    A linear ramp from 0 at t = 0 to ``alpha`` at t = T_alpha, constant after.
    optax's ``contrib.ademamix`` evaluates a schedule at the step count
    before the update (t = 0 at the first step); the paper and
    pytorch-optimizer's ``AdEMAMix(t_alpha_beta3=T)`` evaluate it at
    t = 1 at the first step (pass ``lambda t: schedule(t + 1)`` for theirs).

    Args:
      alpha: the final mixing weight of the slow momentum, >= 0.
      warmup_steps: T_alpha, the length of the ramp, > 0.

    Returns:
      A schedule ``step -> alpha(step)``.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.ademamix_alpha_schedule(alpha=8.0, warmup_steps=100)
      >>> [float(schedule(t)) for t in (0, 25, 100, 1000)]
      [0.0, 2.0, 8.0, 8.0]

    Reference: Pagliardini, Ablin, Grangier, "The AdEMAMix Optimizer:
    Better, Faster, Older", 2024, arXiv:2409.03137, section 3.
    """
    owner = "ademamix_alpha_schedule"
    check_range(owner, "alpha", alpha, 0)
    check_range(owner, "warmup_steps", warmup_steps, 0, low_open=True)

    def schedule(count):
        return _pin_ends(count, alpha * _fraction(count, warmup_steps), 0, warmup_steps, alpha)

    return schedule


def ademamix_beta3_schedule(b3=0.9999, warmup_steps=1, b1=0.9):
    """AdEMAMix's beta_3 warm-up, linear in the half-life of the slow momentum.

    beta_3(t) = min(exp(ln(b1) ln(b3) / ((1 - t/T) ln(b3) + (t/T) ln(b1))), b3).

    The half-life of an average with decay beta is ln(1/2) / ln(beta), so
    1 / ln(beta_3(t)) moves linearly from 1 / ln(b1) at t = 0 to 1 / ln(b3)
    at t = T: the slow momentum starts as fast as the fast one and its
    memory grows linearly, instead of jumping to b3's (a linear ramp of
    beta_3 itself would spend almost all of it at short memories).  After T
    it stays at b3.  As for ``ademamix_alpha_schedule``, t = 0 at optax's
    first step and t = 1 at the paper's and pytorch-optimizer's.

    Args:
      b3: the final decay of the slow momentum, in (0, 1).
      warmup_steps: T_beta3, the length of the warm-up, > 0.
      b1: the decay at t = 0 (the fast momentum's), in (0, b3].

    Returns:
      A schedule ``step -> beta_3(step)``.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.ademamix_beta3_schedule(b3=0.999, warmup_steps=1000, b1=0.9)
      >>> [round(float(schedule(t)), 5) for t in (0, 500, 1000, 5000)]
      [0.9, 0.99802, 0.999, 0.999]

    Reference: Pagliardini, Ablin, Grangier, "The AdEMAMix Optimizer:
    Better, Faster, Older", 2024, arXiv:2409.03137, section 3.
    """
    owner = "ademamix_beta3_schedule"
    check_range(owner, "b3", b3, 0, 1, low_open=True, high_open=True)
    check_range(owner, "warmup_steps", warmup_steps, 0, low_open=True)
    check_range(owner, "b1", b1, 0, b3, low_open=True)

    # ln(b) of a number in double precision: in float32, ln(0.9999) loses 4 digits.
    log_b1, log_b3 = (math.log(b) if isinstance(b, (int, float)) else jnp.log(b) for b in (b1, b3))

    def schedule(count):
        a = _fraction(count, warmup_steps)
        value = jnp.exp(log_b1 * log_b3 / ((1 - a) * log_b3 + a * log_b1))
        value = jnp.minimum(value, jnp.asarray(b3, a.dtype))
        return _pin_ends(count, value, b1, warmup_steps, b3)

    return schedule
