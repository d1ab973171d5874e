"""Keras 3 presets: ``keras.optimizers`` and their schedules as gradtx recipes.

Each optimizer here takes the arguments of the Keras 3 class of the same
name, with Keras's defaults, and returns an ordinary gradtx optimizer: a
``chain`` of public transforms whose parameter trajectory equals Keras's
(JAX backend) to round-off (tests/test_presets_keras.py runs both side by
side).  This module does not import keras::

    keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.004)
    gradtx.presets.keras.adamw(learning_rate=1e-3, weight_decay=0.004)

Conventions Keras applies and the recipes reproduce: Adam and AdamW add
epsilon to the root of the *uncorrected* second moment and fold
sqrt(1 - b2^t) into the step ("epsilon hat", Kingma & Ba section 2);
RMSprop and Adagrad put epsilon under the root; SGD and RMSprop accumulate
momentum *after* the learning rate (m_t = momentum * m_{t-1} - lr_t g_t);
``weight_decay`` is decoupled for every optimizer, p <- p - lr * wd * p,
applied before the step.

Not modelled: ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (put a gradtx
clipping transform in front), ``use_ema``, ``loss_scale_factor``,
``gradient_accumulation_steps`` and ``exclude_from_weight_decay``.

Schedules and step counting
---------------------------
Keras evaluates a ``LearningRateSchedule`` at ``optimizer.iterations``, the
number of updates applied so far (0 at the first, once per batch under
``model.fit``).  That is gradtx's step count, so the schedule functions
below take the same step t = 0, 1, 2, ... and can be passed as
``learning_rate`` unchanged.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from .._checks import (
    Decay,
    NonNegative,
    OptionalNonNegative,
    Positive,
    Rate,
    check_range,
)
from .._combine import chain, precondition
from .._momentum import bias_correction, scale_by_momentum, scale_by_nadam_momentum
from .._numerics import is_traced
from .._recipe import recipe
from .._scaling import scale_by_learning_rate, scale_by_schedule
from .._schedules import (
    constant_schedule,
    cosine_decay_schedule,
    join_schedules,
    linear_schedule,
    piecewise_constant_schedule,
)
from .._schedules import exponential_decay as gradtx_exponential_decay
from .._schedules import inverse_time_decay as gradtx_inverse_time_decay
from .._second_moment import (
    scale_by_adadelta,
    scale_by_centered_rms,
    scale_by_max_rms,
    scale_by_rms,
    scale_by_rss,
)
from .._weight_decay import add_decayed_weights
from ._common import as_float, named, value_at

__all__ = [
    "sgd",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "adadelta",
    "nadam",
    "exponential_decay",
    "piecewise_constant_decay",
    "cosine_decay",
    "inverse_time_decay",
]


# ----------------------------------------------------------------------------
# Pieces shared by the recipes.


def _decay(weight_decay):
    """Keras's decoupled decay, placed just before the learning rate: + wd * p."""
    return add_decayed_weights(weight_decay) if weight_decay else None


def _decay_after_learning_rate(weight_decay, learning_rate):
    """The same decay for recipes whose learning rate comes first: - lr(t) * wd * p.

    SGD and RMSprop with momentum scale by the learning rate before the
    momentum, so the decay joins the update after the sign flip and carries
    the learning rate and the sign itself.
    """
    if not weight_decay:
        return None
    return add_decayed_weights(
        named(
            lambda t: -weight_decay * value_at(learning_rate, t),
            "minus_learning_rate_times_weight_decay",
        )
    )


# ----------------------------------------------------------------------------
# Optimizers.


@recipe(prefix="keras.")
def sgd(
    learning_rate: Rate = 0.01,
    momentum: Decay = 0.0,
    nesterov=False,
    weight_decay: OptionalNonNegative = None,
):
    """``keras.optimizers.SGD``: m_t = momentum * m_{t-1} - lr_t * g_t, p_t = p_{t-1} + m_t.

    With ``nesterov`` p_t = p_{t-1} + momentum * m_t - lr_t * g_t.  The
    learning rate is inside the momentum (PyTorch multiplies the buffer by
    it), which matters when it follows a schedule.  Without momentum,
    p_t = p_{t-1} - lr_t * g_t.

    Args:
      learning_rate: lr, a number >= 0 or a schedule ``step -> lr``.
      momentum: the momentum factor, in [0, 1).
      nesterov: Nesterov momentum (ignored without momentum, as in Keras).
      weight_decay: None or a decoupled decay coefficient, >= 0.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.keras.sgd(learning_rate=0.1, momentum=0.9)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -2.1], dtype=float32)
    """
    if momentum == 0:
        return (_decay(weight_decay), scale_by_learning_rate(learning_rate))
    return (
        scale_by_learning_rate(learning_rate),
        scale_by_momentum(momentum, nesterov=nesterov),
        _decay_after_learning_rate(weight_decay, learning_rate),
    )


@recipe(prefix="keras.")
def adam(
    learning_rate: Rate = 0.001,
    beta_1: Decay = 0.9,
    beta_2: Decay = 0.999,
    epsilon: NonNegative = 1e-7,
    amsgrad=False,
    weight_decay: OptionalNonNegative = None,
):
    """``keras.optimizers.Adam``: p_t = p_{t-1} - lr sqrt(1 - b2^t) / (1 - b1^t) * m_t / (sqrt(v_t) + epsilon).

    epsilon is added to the root of the uncorrected v_t ("epsilon hat"),
    equivalent to Adam with eps_t = epsilon / sqrt(1 - b2^t); PyTorch and
    optax add eps after the correction.  With ``amsgrad`` v_t is replaced by
    its running maximum.  The recipe is Adam's with an uncorrected
    ``scale_by_rms`` and a ``scale_by_schedule`` of sqrt(1 - b2^t).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      beta_1, beta_2: the decays of the moments, in [0, 1).
      epsilon: added to the root, >= 0.
      amsgrad: divide by the root of the largest v_t so far.
      weight_decay: None or a decoupled decay coefficient, >= 0.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.keras.adam(learning_rate=0.1, epsilon=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9000007, -1.9000007], dtype=float32)
    """
    return _adam(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay)


@recipe(prefix="keras.")
def adamw(
    learning_rate: Rate = 0.001,
    weight_decay: OptionalNonNegative = 0.004,
    beta_1: Decay = 0.9,
    beta_2: Decay = 0.999,
    epsilon: NonNegative = 1e-7,
    amsgrad=False,
):
    """``keras.optimizers.AdamW``: Keras's Adam with decoupled decay, p <- p - lr * wd * p.

    Keras's default weight_decay is 0.004 (PyTorch's 0.01, optax's 1e-4).

    Args:
      learning_rate, beta_1, beta_2, epsilon, amsgrad: as in ``adam``.
      weight_decay: wd, >= 0 (required, as in Keras).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.keras.adamw(learning_rate=0.1, weight_decay=0.5, epsilon=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]  # 0.1 * (1 + 0.5 * p) off each
      Array([ 0.8500007, -1.8000007], dtype=float32)
    """
    if weight_decay is None:
        raise ValueError("keras.adamw: weight_decay must be a number >= 0, got None")
    return _adam(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay)


def _adam(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay):
    """Keras's Adam and AdamW: the transforms, with the decay where both put it."""
    if amsgrad:
        rms = scale_by_max_rms(beta_2, epsilon, bias_correction=False)
    else:
        rms = scale_by_rms(beta_2, epsilon, eps_in_sqrt=False)
    epsilon_hat = named(
        lambda t: jnp.sqrt(1 - beta_2 ** (as_float(t) + 1)), "sqrt_one_minus_beta_2_power"
    )
    return (
        precondition(chain(scale_by_momentum(beta_1, ema=True), bias_correction(beta_1)), by=rms),
        scale_by_schedule(epsilon_hat),
        _decay(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


@recipe(prefix="keras.")
def rmsprop(
    learning_rate: Rate = 0.001,
    rho: Decay = 0.9,
    momentum: Decay = 0.0,
    epsilon: NonNegative = 1e-7,
    centered=False,
    weight_decay: OptionalNonNegative = None,
):
    """``keras.optimizers.RMSprop``: p_t = p_{t-1} - m_t, m_t = momentum * m_{t-1} + lr_t g_t / sqrt(v_t + epsilon).

    v_t = rho * v_{t-1} + (1 - rho) * g_t^2 with epsilon under the root
    (PyTorch: alpha=0.99 and eps outside); ``centered`` uses
    v_t - mean(g)_t^2 + epsilon.  The momentum accumulates after the
    learning rate; without momentum the step is lr_t g_t / sqrt(v_t + epsilon).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      rho: the decay of the averages, in [0, 1).
      momentum: the momentum factor, in [0, 1).
      epsilon: under the root, >= 0.
      centered: divide by the estimated standard deviation of g.
      weight_decay: None or a decoupled decay coefficient, >= 0.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.keras.rmsprop(learning_rate=0.01, rho=0.75, epsilon=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]  # g / sqrt(0.25 g^2) = 2 sign(g)
      Array([ 0.98, -1.98], dtype=float32)
    """
    rms = (scale_by_centered_rms if centered else scale_by_rms)(rho, epsilon)
    if momentum == 0:
        return (rms, _decay(weight_decay), scale_by_learning_rate(learning_rate))
    return (
        rms,
        scale_by_learning_rate(learning_rate),
        scale_by_momentum(momentum),
        _decay_after_learning_rate(weight_decay, learning_rate),
    )


@recipe(prefix="keras.")
def adagrad(
    learning_rate: Rate = 0.001,
    initial_accumulator_value: NonNegative = 0.1,
    epsilon: NonNegative = 1e-7,
    weight_decay: OptionalNonNegative = None,
):
    """``keras.optimizers.Adagrad``: p_t = p_{t-1} - lr_t g_t / sqrt(s_t + epsilon), s_t = s_{t-1} + g_t^2.

    s_0 = initial_accumulator_value (0.1) and epsilon under the root, as
    optax; PyTorch starts from 0 with eps outside the root.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      initial_accumulator_value: s_0, >= 0.
      epsilon: under the root, >= 0.
      weight_decay: None or a decoupled decay coefficient, >= 0.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.keras.adagrad(learning_rate=0.1, initial_accumulator_value=0.0,
      ...                                    epsilon=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([2.0, -4.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.9], dtype=float32)
    """
    return (
        scale_by_rss(initial_accumulator_value, epsilon),
        _decay(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


@recipe(prefix="keras.")
def adadelta(
    learning_rate: Rate = 0.001,
    rho: Decay = 0.95,
    epsilon: Positive = 1e-7,
    weight_decay: OptionalNonNegative = None,
):
    """``keras.optimizers.Adadelta``: p_t = p_{t-1} - lr_t sqrt(E[x^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) g_t.

    Keras's defaults are lr=0.001, rho=0.95, epsilon=1e-7; Zeiler's and
    PyTorch's are lr=1.0, rho=0.9, eps=1e-6.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      rho: the decay of both averages, in [0, 1).
      epsilon: under both roots, > 0.
      weight_decay: None or a decoupled decay coefficient, >= 0.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.keras.adadelta(learning_rate=1.0, rho=0.0, epsilon=1.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([0.75, -0.75])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]  # sqrt(1) / sqrt(0.75^2 + 1) * 0.75 = 0.6
      Array([ 0.39999998, -1.4       ], dtype=float32)
    """
    return (
        scale_by_adadelta(rho, epsilon),
        _decay(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


@recipe(prefix="keras.")
def nadam(
    learning_rate: Rate = 0.001,
    beta_1: Decay = 0.9,
    beta_2: Decay = 0.999,
    epsilon: NonNegative = 1e-7,
    weight_decay: OptionalNonNegative = None,
):
    """``keras.optimizers.Nadam``: NAdam with the momentum schedule b1 (1 - 0.5 * 0.96^t).

    The recipe is PyTorch's NAdam with momentum_decay = 1 (PyTorch's 0.004
    warms up far more slowly): see ``gradtx.scale_by_nadam_momentum``.
    epsilon is added to the root of the bias-corrected v_t.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      beta_1, beta_2: the decays of the moments, in [0, 1).
      epsilon: added to the root, >= 0.
      weight_decay: None or a decoupled decay coefficient, >= 0.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.keras.nadam(learning_rate=0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> updates["w"]  # the first step is larger than lr: the look-ahead adds b1_2 m_1
      Array([-0.1062781 ,  0.10627806], dtype=float32)
    """
    return (
        precondition(
            scale_by_nadam_momentum(beta_1, momentum_decay=1.0),
            by=scale_by_rms(beta_2, epsilon, eps_in_sqrt=False, bias_correction=True),
        ),
        _decay(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


# ----------------------------------------------------------------------------
# Schedules: gradtx's schedules with Keras's arguments, functions of the optimizer
# step t = optimizer.iterations.


def _whole_steps(owner, name, steps, *, positive):
    """A step count Keras takes as an int (a whole float too), as an int."""
    check_range(owner, name, steps, 0, low_open=positive)
    if is_traced(steps) or not float(steps).is_integer():
        raise ValueError(f"{owner}: {name} must be a whole number of steps, got {steps!r}")
    return int(steps)


def _check_decay_steps(owner, decay_steps):
    return _whole_steps(owner, "decay_steps", decay_steps, positive=True)


def exponential_decay(
    initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"
):
    """``keras.optimizers.schedules.ExponentialDecay``: lr_t = lr_0 * decay_rate^(t / decay_steps).

    With ``staircase`` the exponent is floor(t / decay_steps).

    Args:
      initial_learning_rate: lr_0.
      decay_steps: steps per decay by decay_rate, > 0.
      decay_rate: the decay factor.
      staircase: decay in discrete intervals.
      name: Keras's name for the op; ignored.

    Returns:
      A schedule ``t -> lr`` of the optimizer step t = 0, 1, 2, ...

    Example:
      >>> import gradtx
      >>> schedule = gradtx.presets.keras.exponential_decay(1.0, 2, 0.25, staircase=True)
      >>> [float(schedule(t)) for t in (0, 1, 2, 5)]
      [1.0, 1.0, 0.25, 0.0625]
    """
    owner = "keras.exponential_decay"
    decay_steps = _check_decay_steps(owner, decay_steps)
    check_range(owner, "decay_rate", decay_rate, 0)
    if not is_traced(decay_rate) and decay_rate == 0:
        # gradtx's exponential_decay reads decay_rate = 0 as a constant (optax); Keras drops to 0.
        first_zero = decay_steps if staircase else 1
        schedule = piecewise_constant_schedule(initial_learning_rate, {first_zero: 0.0})
    else:
        schedule = gradtx_exponential_decay(
            initial_learning_rate, decay_steps, decay_rate, staircase=staircase
        )
    return named(schedule, "exponential_decay")


def piecewise_constant_decay(boundaries, values, name="PiecewiseConstant"):
    """``keras.optimizers.schedules.PiecewiseConstantDecay``: values[i] while boundaries[i-1] < t <= boundaries[i].

    values[0] for t <= boundaries[0], values[-1] for t > boundaries[-1].

    Args:
      boundaries: increasing step numbers.
      values: one more value than boundaries.
      name: Keras's name for the op; ignored.

    Returns:
      A schedule ``t -> lr`` of the optimizer step t = 0, 1, 2, ...

    Example:
      >>> import gradtx
      >>> schedule = gradtx.presets.keras.piecewise_constant_decay([2, 4], [1.0, 0.5, 0.25])
      >>> [float(schedule(t)) for t in (0, 2, 3, 4, 5)]
      [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    owner = "keras.piecewise_constant_decay"
    boundaries, values = list(boundaries), list(values)
    if len(boundaries) != len(values) - 1:
        raise ValueError(
            f"{owner}: values must have one more entry than boundaries, got "
            f"{len(boundaries)} boundaries and {len(values)} values"
        )
    if sorted(boundaries) != boundaries or len(set(boundaries)) != len(boundaries):
        raise ValueError(f"{owner}: boundaries must be strictly increasing, got {boundaries}")
    # values[i + 1] from the first whole step past boundaries[i].
    starts = [max(math.floor(b) + 1, 0) for b in boundaries]
    schedule = join_schedules([constant_schedule(v) for v in values], starts)
    return named(schedule, "piecewise_constant_decay")


def cosine_decay(
    initial_learning_rate,
    decay_steps,
    alpha=0.0,
    name="CosineDecay",
    warmup_target=None,
    warmup_steps=0,
):
    """``keras.optimizers.schedules.CosineDecay``: linear warmup, then cosine decay to alpha * peak.

    Without warmup, lr_t = lr_0 ((1 - alpha) c(min(t, decay_steps)) + alpha),
    c(s) = (1 + cos(pi s / decay_steps)) / 2.  With ``warmup_target`` the rate
    first rises linearly from lr_0 to warmup_target over warmup_steps, then
    decays from warmup_target the same way over the next decay_steps.

    Args:
      initial_learning_rate: lr_0.
      decay_steps: steps of the cosine decay, > 0.
      alpha: the final rate as a fraction of the peak.
      name: Keras's name for the op; ignored.
      warmup_target: None (no warmup) or the rate reached after the warmup.
      warmup_steps: steps of the warmup.

    Returns:
      A schedule ``t -> lr`` of the optimizer step t = 0, 1, 2, ...

    Example:
      >>> import gradtx
      >>> schedule = gradtx.presets.keras.cosine_decay(0.0, 2, warmup_target=1.0, warmup_steps=2)
      >>> [round(float(schedule(t)), 6) for t in (0, 1, 2, 3, 4, 9)]
      [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    """
    owner = "keras.cosine_decay"
    decay_steps = _check_decay_steps(owner, decay_steps)
    check_range(owner, "alpha", alpha, 0, 1)
    if warmup_target is None:
        schedule = cosine_decay_schedule(initial_learning_rate, decay_steps, alpha)
    else:
        warmup_steps = _whole_steps(owner, "warmup_steps", warmup_steps, positive=False)
        warmup = linear_schedule(initial_learning_rate, warmup_target, warmup_steps)
        decay = cosine_decay_schedule(warmup_target, decay_steps, alpha)
        schedule = join_schedules([warmup, decay], [warmup_steps])
    return named(schedule, "cosine_decay")


def inverse_time_decay(
    initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"
):
    """``keras.optimizers.schedules.InverseTimeDecay``: lr_t = lr_0 / (1 + decay_rate * t / decay_steps).

    With ``staircase`` t / decay_steps is floored.

    Args:
      initial_learning_rate: lr_0.
      decay_steps: the time scale of the decay, > 0.
      decay_rate: the decay rate.
      staircase: decay in discrete intervals.
      name: Keras's name for the op; ignored.

    Returns:
      A schedule ``t -> lr`` of the optimizer step t = 0, 1, 2, ...

    Example:
      >>> import gradtx
      >>> schedule = gradtx.presets.keras.inverse_time_decay(1.0, 2, 1.0)
      >>> [float(schedule(t)) for t in (0, 2, 6)]
      [1.0, 0.5, 0.25]
    """
    owner = "keras.inverse_time_decay"
    decay_steps = _check_decay_steps(owner, decay_steps)
    check_range(owner, "decay_rate", decay_rate, 0)
    schedule = gradtx_inverse_time_decay(
        initial_learning_rate, decay_steps, decay_rate, staircase=staircase
    )
    return named(schedule, "inverse_time_decay")
