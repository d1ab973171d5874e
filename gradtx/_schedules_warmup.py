"""Warmup and piecewise-interpolated schedules, on the pieces of ``_schedules``.

``warmup_stable_decay_schedule`` and ``inverse_sqrt_schedule``, and optax's
``warmup_constant_schedule``, ``warmup_exponential_decay_schedule``,
``piecewise_interpolate_schedule`` and ``linear_onecycle_schedule``: each
returns exactly its first value at step 0 and its last value from its last
step on, eager and jitted, and records the values it moves between (so a
negative learning rate is refused when the optimizer is built).
"""

from __future__ import annotations

import jax.numpy as jnp

from ._schedules import (
    _DECAY_SHAPES,
    _INT32_MAX,
    _constant,
    _cosine,
    _float,
    _fraction,
    _named,
    _number,
    _out,
    _pin_ends,
    _remaining,
    _steps,
    exponential_decay,
    join_schedules,
    linear_schedule,
    schedule_values,
    value_dtype,
)
from ._typing import Schedule


def _pinned(schedule, first, last_step=None, last=None):
    """``schedule`` with v(t) = first for t <= 0 and v(t) = last for t >= last_step."""

    def pinned(step):
        t = jnp.asarray(step)
        value = jnp.where(t <= 0, jnp.asarray(first, value_dtype()), _out(schedule(t)))
        if last_step is not None:
            value = jnp.where(t >= last_step, jnp.asarray(last, value_dtype()), value)
        return value

    return pinned


def warmup_constant_schedule(init_value: float, peak_value: float, warmup_steps: int) -> Schedule:
    """Linear warmup, then constant: v(t) = I + (P - I) * min(t, W) / W.

    optax's ``warmup_constant_schedule``: ``linear_schedule(I, P, W)``.

    Args:
      init_value: I, the value at step 0.
      peak_value: P, the value from step W on.
      warmup_steps: W, the length of the warmup; W <= 0 gives v(t) = I, as in optax.

    Returns:
      A schedule ``step -> float32``.

    Example:
      >>> import gradtx
      >>> sched = gradtx.warmup_constant_schedule(0.0, 1.0, warmup_steps=4)
      >>> [float(sched(t)) for t in range(6)]
      [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    owner = "warmup_constant_schedule"
    init_value = _number(owner, "init_value", init_value)
    peak_value = _number(owner, "peak_value", peak_value)
    warmup_steps = _steps(owner, "warmup_steps", warmup_steps, -_INT32_MAX)
    if warmup_steps <= 0:
        return _named(_constant(init_value), owner, init_value)
    warmup = linear_schedule(init_value, peak_value, warmup_steps)
    return _named(
        _pinned(warmup, init_value, warmup_steps, peak_value), owner, init_value, peak_value
    )


def warmup_exponential_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """Linear warmup, then exponential decay: v(t) = I + (P - I) t / W for t < W,
    v(t) = P * r^p, p = max(t - W - B, 0) / T (floored if ``staircase``), from W on.

    optax's ``warmup_exponential_decay_schedule``: ``join_schedules`` of
    ``linear_schedule(I, P, W)`` and ``exponential_decay(P, T, r, B,
    staircase, E)`` at step W.

    Args:
      init_value: I, the value at step 0.
      peak_value: P, the value at the end of the warmup.
      warmup_steps: W >= 0, the length of the warmup.
      transition_steps: T, as in ``exponential_decay``.
      decay_rate: r >= 0, as in ``exponential_decay``.
      transition_begin: B >= 0, the steps the value holds at P after the warmup.
      staircase: decay in steps of T.
      end_value: E, an optional bound of the decay.

    Returns:
      A schedule ``step -> float32``.

    Example:
      >>> import gradtx
      >>> sched = gradtx.warmup_exponential_decay_schedule(0.0, 1.0, 2, 1, 0.5)
      >>> [float(sched(t)) for t in range(6)]
      [0.0, 0.5, 1.0, 0.5, 0.25, 0.125]
    """
    owner = "warmup_exponential_decay_schedule"
    init_value = _number(owner, "init_value", init_value)
    peak_value = _number(owner, "peak_value", peak_value)
    warmup_steps = _steps(owner, "warmup_steps", warmup_steps)
    joined = join_schedules(
        [
            linear_schedule(init_value, peak_value, warmup_steps),
            exponential_decay(
                peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
            ),
        ],
        [warmup_steps],
    )
    if warmup_steps == 0:
        return _named(joined, owner, *(schedule_values(joined) or [None]))
    return _named(_pinned(joined, init_value), owner, *(schedule_values(joined) or [None]))


_INTERPOLATIONS = ("linear", "cosine")


def piecewise_interpolate_schedule(
    interpolate_type: str, init_value: float, boundaries_and_scales: dict | None = None
) -> Schedule:
    """Interpolate between values scaled at boundaries: v_0 = I, v_i = v_{i-1} * s_i at step b_i.

    Between b_{i-1} and b_i the value moves from v_{i-1} to v_i, linearly,
    v = v_{i-1} + (v_i - v_{i-1}) x, or along a half cosine,
    v = v_i + (v_{i-1} - v_i) (1 + cos(pi x)) / 2, x = (t - b_{i-1}) / (b_i - b_{i-1});
    from the last boundary on it is the last value.  optax's
    ``piecewise_interpolate_schedule``: the scales multiply (I = 1 with
    scales {4: 0.1, 8: 0.01} ends at 0.001), and a negative step gives 0.

    Args:
      interpolate_type: ``"linear"`` or ``"cosine"``.
      init_value: I, the value at step 0.
      boundaries_and_scales: ``{b_i: s_i}``, steps >= 0 and scales >= 0;
        None or empty: the constant I.

    Returns:
      A schedule ``step -> float32``.

    Example:
      >>> import gradtx
      >>> sched = gradtx.piecewise_interpolate_schedule("linear", 1.0, {4: 0.1, 8: 0.01})
      >>> [round(float(sched(t)), 6) for t in range(0, 11, 2)]
      [1.0, 0.55, 0.1, 0.0505, 0.001, 0.001]
    """
    owner = "piecewise_interpolate_schedule"
    if interpolate_type not in _INTERPOLATIONS:
        raise ValueError(
            f"{owner}: interpolate_type must be 'linear' or 'cosine', got {interpolate_type!r}"
        )
    init_value = _number(owner, "init_value", init_value)
    items = sorted((boundaries_and_scales or {}).items())
    boundaries = [_steps(owner, f"boundary {b!r}", b) for b, _ in items]
    scales = [_number(owner, f"the scale at step {b}", s, 0) for b, s in items]
    bounds = [0, *boundaries]

    def interpolate(start, end, x):
        if interpolate_type == "linear":
            return (end - start) * x + start
        # The half cosine at x = 0 is end + (start - end), which can miss start by an ulp.
        return jnp.where(x == 0, start, end + (start - end) / 2.0 * (jnp.cos(jnp.pi * x) + 1))

    def schedule(step):
        t = jnp.asarray(step)
        values = jnp.cumprod(jnp.asarray([init_value, *scales], value_dtype()))
        value = jnp.where(t >= bounds[-1], values[-1], jnp.zeros((), value_dtype()))
        for i in range(len(bounds) - 1):
            begin, end = bounds[i], bounds[i + 1]
            x = _float(t - begin) / max(end - begin, 1)
            inside = (begin <= t) & (t < end)
            value = jnp.where(inside, interpolate(values[i], values[i + 1], x), value)
        return _out(value)

    return _named(schedule, owner, init_value)  # the scales are >= 0: one sign throughout


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """The linear one-cycle policy: up from P / d to P, back down to P / d, then to P / (d f).

    The phases end at steps int(pct_start T), int(pct_final T) and T, and
    the value moves linearly in each (``piecewise_interpolate_schedule``
    with scales d, 1 / d and 1 / f); from T on it is P / (d f).  optax's
    ``linear_onecycle_schedule``.

    Args:
      transition_steps: T > 0, the length of the cycle.
      peak_value: P, the value at step int(pct_start T).
      pct_start: the fraction of T spent rising.
      pct_final: the fraction of T at which the value is back at P / d.
      div_factor: d, the start value is P / d.
      final_div_factor: f, the final value is P / (d f).

    Returns:
      A schedule ``step -> float32``.

    Example:
      >>> import gradtx
      >>> sched = gradtx.linear_onecycle_schedule(10, 1.0, pct_start=0.2, pct_final=0.6,
      ...                                         div_factor=10.0, final_div_factor=10.0)
      >>> [round(float(sched(t)), 4) for t in (0, 1, 2, 4, 6, 8, 10, 12)]
      [0.1, 0.55, 1.0, 0.55, 0.1, 0.055, 0.01, 0.01]
    """
    owner = "linear_onecycle_schedule"
    transition_steps = _steps(owner, "transition_steps", transition_steps, 1)
    peak_value = _number(owner, "peak_value", peak_value)
    div_factor = _number(owner, "div_factor", div_factor, 0, low_open=True)
    final_div_factor = _number(owner, "final_div_factor", final_div_factor, 0, low_open=True)
    pct_start = _number(owner, "pct_start", pct_start, 0, 1)
    pct_final = _number(owner, "pct_final", pct_final, 0, 1)
    schedule = piecewise_interpolate_schedule(
        "linear",
        peak_value / div_factor,
        {
            int(pct_start * transition_steps): div_factor,
            int(pct_final * transition_steps): 1.0 / div_factor,
            transition_steps: 1.0 / final_div_factor,
        },
    )
    return _named(schedule, owner, *(schedule_values(schedule) or [None]))


def warmup_stable_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    stable_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    decay_type: str = "linear",
) -> Schedule:
    """Warmup-stable-decay (WSD, "trapezoidal"): warm up, hold the peak, then cool down.

    With W, S, D the three phase lengths and x = min(t - W - S, D) / D:
    v(t) = I + (P - I) * t / W      for t < W,
    v(t) = P                        for W <= t < W + S,
    v(t) = E + (P - E) * f(x)       for t >= W + S,
    where f(x) = 1 - x ("linear"), (1 + cos(pi x)) / 2 ("cosine") or
    1 - sqrt(x) ("1-sqrt").  Each of W, S, D is the length of its own phase
    (unlike ``warmup_cosine_decay_schedule``, whose decay_steps includes the
    warmup).  optax, PyTorch and Keras have no WSD schedule.

    Args:
      init_value: I, the value at step 0.
      peak_value: P, the value held during the stable phase.
      warmup_steps: W >= 0.
      stable_steps: S >= 0.
      decay_steps: D >= 1, the length of the cool-down.
      end_value: E, the value from step W + S + D on.
      decay_type: the shape f of the cool-down: "linear", "cosine" or "1-sqrt".

    Returns:
      A schedule ``step -> float32``.

    References: Hu et al., "MiniCPM: Unveiling the Potential of Small
    Language Models with Scalable Training Strategies", 2024,
    arXiv:2404.06395; Hägele et al., "Scaling Laws and Compute-Optimal
    Training Beyond Fixed Training Durations", 2024, arXiv:2405.18392.

    Example:
      >>> import gradtx
      >>> sched = gradtx.warmup_stable_decay_schedule(0.0, 1.0, warmup_steps=2, stable_steps=2,
      ...                                             decay_steps=4)
      >>> [float(sched(t)) for t in range(10)]
      [0.0, 0.5, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """
    owner = "warmup_stable_decay_schedule"
    init_value = _number(owner, "init_value", init_value)
    peak_value = _number(owner, "peak_value", peak_value)
    warmup_steps = _steps(owner, "warmup_steps", warmup_steps)
    stable_steps = _steps(owner, "stable_steps", stable_steps)
    decay_steps = _steps(owner, "decay_steps", decay_steps, 1)
    end_value = _number(owner, "end_value", end_value)
    if decay_type not in _DECAY_SHAPES:
        shapes = ", ".join(map(repr, _DECAY_SHAPES))
        raise ValueError(f"{owner}: decay_type must be one of {shapes}, got {decay_type!r}")
    if warmup_steps + stable_steps + decay_steps > _INT32_MAX:
        raise ValueError(
            f"{owner}: warmup_steps + stable_steps + decay_steps must be at most "
            f"2**31 - 1, got {warmup_steps + stable_steps + decay_steps}"
        )
    cooldown = warmup_steps + stable_steps
    if decay_type == "linear":

        def shape(t):
            return _remaining(t, cooldown, decay_steps)
    else:

        def shape(t):
            x = _fraction(t, cooldown, decay_steps)
            return _cosine(x) if decay_type == "cosine" else 1 - jnp.sqrt(x)

    def schedule(step):
        t = jnp.asarray(step)
        warm = init_value + (peak_value - init_value) * _fraction(t, 0, max(warmup_steps, 1))
        decay = end_value + (peak_value - end_value) * shape(t)
        value = jnp.where(t < warmup_steps, warm, decay)
        start_value = init_value if warmup_steps > 0 else peak_value
        return _pin_ends(t, value, 0, start_value, cooldown + decay_steps, end_value)

    return _named(schedule, owner, init_value, peak_value, end_value)


def inverse_sqrt_schedule(
    peak_value: float,
    warmup_steps: int = 0,
    init_value: float = 0.0,
    timescale: float | None = None,
) -> Schedule:
    """Linear warmup, then inverse-square-root decay.

    v(t) = I + (P - I) * t / W                 for t < W,
    v(t) = P / sqrt(1 + (t - W) / tau)         for t >= W,
    with tau = ``timescale``, by default W (or 1 when W = 0), which makes the
    decay P * sqrt(W / t): fairseq's ``inverse_sqrt`` (t = updates taken).
    Vaswani et al. count steps from 1: their rate at update t is this
    schedule (I = 0) at t + 1, so their first update already moves.

    Args:
      peak_value: P, the value at step W.
      warmup_steps: W >= 0.
      init_value: I, the value at step 0 (used when W > 0).
      timescale: tau > 0, the number of steps over which the value falls by
        1/sqrt(2); None for the default above.

    Returns:
      A schedule ``step -> float32``.

    Reference: Vaswani et al., "Attention Is All You Need", NeurIPS 2017,
    arXiv:1706.03762, eq. (3).

    Example:
      >>> import gradtx
      >>> sched = gradtx.inverse_sqrt_schedule(1.0, warmup_steps=4)
      >>> [float(sched(t)) for t in (0, 2, 4, 16)]
      [0.0, 0.5, 1.0, 0.5]
    """
    owner = "inverse_sqrt_schedule"
    peak_value = _number(owner, "peak_value", peak_value)
    warmup_steps = _steps(owner, "warmup_steps", warmup_steps)
    init_value = _number(owner, "init_value", init_value)
    if timescale is None:
        timescale = float(max(warmup_steps, 1))
    timescale = _number(owner, "timescale", timescale, 0, low_open=True)

    def schedule(step):
        t = jnp.asarray(step)
        warm = init_value + (peak_value - init_value) * _fraction(t, 0, max(warmup_steps, 1))
        after = _float(jnp.maximum(t - warmup_steps, 0))
        decay = peak_value / jnp.sqrt(1 + after / timescale)
        value = jnp.where(t < warmup_steps, warm, decay)
        return _pin_ends(t, value, 0, init_value if warmup_steps > 0 else peak_value)

    return _named(schedule, owner, init_value, peak_value)
