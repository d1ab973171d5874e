"""Averaging and schedule-free methods: Schedule-Free AdamW and SGD, which
interpolate between an averaged sequence and the gradient's.

Shared pieces: ``schedule_free`` (``_schedule_free``), ``scale_by_rms``,
``add_decayed_weights``; ``ema`` and the iterate averages live in
``_accumulation`` and ``_averaging``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._checks import (
    Decay,
    NonNegative,
    OptionalRate,
    Rate,
)
from .._combine import chain
from .._recipe import recipe
from .._scaling import scale_by_learning_rate
from .._schedule_free import schedule_free
from .._second_moment import (
    scale_by_rms,
)
from .._weight_decay import add_decayed_weights


def _float_dtype():
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _warmup_constant(owner, peak, warmup_steps):
    """lr(t) = peak * min(t, W) / W: optax's linear warmup from 0, then constant."""
    if warmup_steps is None:
        return peak
    if not isinstance(warmup_steps, int) or warmup_steps < 1:
        raise ValueError(
            f"{owner}: warmup_steps must be an integer >= 1 or None, got {warmup_steps!r}"
        )

    def warmup(t):
        t = jnp.asarray(t)
        # In the default float dtype: float64 under x64 (optax's schedule rounds to float32).
        fraction = jnp.minimum(t, warmup_steps).astype(_float_dtype()) / warmup_steps
        return jnp.asarray(peak(t) if callable(peak) else peak) * fraction

    return warmup


@recipe
def schedule_free_adamw(
    learning_rate: Rate = 0.0025,
    warmup_steps=None,
    b1=0.9,
    b2: Decay = 0.999,
    eps: NonNegative = 1e-8,
    weight_decay: Rate = 0.0,
    weight_lr_power=2.0,
    state_dtype=None,
):
    """Schedule-Free AdamW: RMSprop with AdamW's decay, its iterates averaged by Schedule-Free.

    z_{t+1} = z_t - lr_t * (g_t / (sqrt(v_hat_t) + eps) + weight_decay * y_t),
    v_hat_t Adam's bias-corrected second moment; b1 is Schedule-Free's
    interpolation (see ``schedule_free``), not a momentum.  Evaluate at
    ``schedule_free_eval_params(state, params)``.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      warmup_steps: W, a linear warmup from 0 over W steps; None: none.
      b1: the interpolation weight, in (0, 1].
      b2: the decay of the second moment, in [0, 1).
      eps: added to the root, >= 0.
      weight_decay: decoupled, multiplied by lr.
      weight_lr_power, state_dtype: as in ``schedule_free``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.schedule_free_adamw(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)   # the first step sets x = z = y
      Array([ 0.9, -1.9 ], dtype=float32)

    Reference: Defazio et al., "The Road Less Scheduled", 2024, arXiv:2405.15682.
    """
    owner = "schedule_free_adamw"
    lr = _warmup_constant(owner, learning_rate, warmup_steps)
    return schedule_free(
        chain(
            scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
            add_decayed_weights(weight_decay),
            scale_by_learning_rate(lr),
        ),
        lr,
        b1,
        weight_lr_power,
        state_dtype,
    )


@recipe
def schedule_free_sgd(
    learning_rate: Rate = 1.0,
    warmup_steps=None,
    b1=0.9,
    weight_decay: OptionalRate = None,
    weight_lr_power=2.0,
    state_dtype=None,
):
    """Schedule-Free SGD: z_{t+1} = z_t - lr_t * (g_t + weight_decay * y_t), averaged by Schedule-Free.

    The gradient is taken at y_t; evaluate at
    ``schedule_free_eval_params(state, params)``.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      warmup_steps: W, a linear warmup from 0 over W steps; None: none.
      b1: the interpolation weight, in (0, 1].
      weight_decay: L2 added to the gradient (then multiplied by lr); None: none.
      weight_lr_power, state_dtype: as in ``schedule_free``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.schedule_free_sgd(0.5)
      >>> params = jnp.array([1.0])
      >>> updates, state = opt.update(jnp.array([1.0]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)    # b1 x + (1 - b1) z with x = z = 0.5
      Array([0.5], dtype=float32)

    Reference: Defazio et al., "The Road Less Scheduled", 2024, arXiv:2405.15682.
    """
    owner = "schedule_free_sgd"
    decay = []
    if weight_decay is not None:
        decay = [add_decayed_weights(weight_decay)]
    lr = _warmup_constant(owner, learning_rate, warmup_steps)
    return schedule_free(
        chain(*decay, scale_by_learning_rate(lr)), lr, b1, weight_lr_power, state_dtype
    )
