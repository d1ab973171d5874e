"""Learning-rate schedules: pure functions ``step -> value``.

A schedule maps the step t (the number of updates already taken, so the
first update uses t = 0) to a float32 value, or a float64 value when
``jax_enable_x64`` is on (optax's schedules compute in Python floats, so
under x64 they are float64 too).  Wherever gradtx accepts "a
number or a schedule" (``learning_rate``, ``weight_decay``; any numeric
hyperparameter of ``inject_hyperparams``) it calls the schedule at
t = 0, 1, 2, ...

Schedules are jit-safe: they never branch in Python on the step, so t may be
traced (inside ``jax.jit``, ``jax.vmap``, ``jax.lax.scan``) or an array of
steps.  Phase boundaries are decided on the integer step, exactly; the value
inside a phase is computed in that float dtype.  A schedule returns exactly
its start value at (and before) its first step and exactly its end value at
and after its last: the formulas reach them only up to rounding (under jit,
XLA computes t / T as t * (1 / T)), so the ends are set, not computed.
Arguments are checked when the schedule is made, and errors name the
schedule and the argument.

Step counting: optax counts like gradtx.  PyTorch's ``lr_scheduler`` and
Keras count from 0 too when stepped once per update; where one of them puts
a boundary elsewhere, the schedule's docstring says so in one line.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._checks import check_range
from ._numerics import is_traced
from ._typing import Schedule

_INT32_MAX = int(np.iinfo(np.int32).max)
_DECAY_SHAPES = ("linear", "cosine", "1-sqrt")


# ----------------------------------------------------------------------------
# Argument checks and small helpers.


def _steps(owner: str, name: str, value, low: int = 0, high: int | None = _INT32_MAX) -> int:
    """A step count: an integer in [low, 2**31 - 1] (the range of gradtx's counters)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an integer number of steps, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bounds = f"[{low}, 2**31 - 1]" if high is not None else f"[{low}, inf)"
        raise ValueError(f"{owner}: {name} must be in {bounds}, got {value!r}")
    return int(value)


def _number(owner: str, name: str, value, low=None, high=None, *, low_open=False, high_open=False):
    """A scalar value: a Python float when concrete, left as is when traced."""
    if callable(value) or isinstance(value, (bool, str)) or value is None:
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
    check_range(owner, name, value, low, high, low_open=low_open, high_open=high_open)
    if is_traced(value):
        if jnp.shape(value) != ():
            raise ValueError(f"{owner}: {name} must be a scalar, got shape {jnp.shape(value)}")
        return value
    array = np.asarray(value)
    if array.shape != ():
        raise ValueError(f"{owner}: {name} must be a scalar, got shape {array.shape}")
    return float(array)


def _named(schedule, owner: str, *values):
    """Name a schedule after its factory and record the values it moves between.

    Every gradtx schedule stays within the hull of the numbers it was built
    from (``init_value``, ``peak_value``, ``end_value``, ...), passed here as
    ``values``; ``check_learning_rate`` reads them (``schedule_values``) to
    refuse a schedule that takes a negative value when it is built, as it
    refuses a negative number.  No values, or None among them (an unknown
    bound), make the record None: nothing is checked.
    """
    schedule.__name__ = schedule.__qualname__ = owner
    known = tuple(values) if values and all(v is not None for v in values) else None
    schedule._gradtx_values = known
    return schedule


def schedule_values(schedule) -> tuple | None:
    """The values a gradtx schedule moves between (see ``_named``); None when not known."""
    return getattr(schedule, "_gradtx_values", None)


def value_dtype():
    """The dtype schedules compute and return: float64 under x64, else float32."""
    return jnp.result_type(float)


def _out(value):
    return jnp.asarray(value, value_dtype())


def _float(x):
    return jnp.asarray(x).astype(value_dtype())


def _constant(value):
    """The schedule v(t) = value, for the arguments optax reads as a constant schedule."""

    def schedule(step):
        return jnp.full(jnp.shape(step), value, value_dtype())

    return schedule


def _fraction(step, begin: int, length: int):
    """x = min(max(t - begin, 0), length) / length, in [0, 1], as a float.

    A length past the int32 range is compared in floating point, so that
    t and T never overflow an int32.
    """
    t = jnp.asarray(step)
    if length > _INT32_MAX:
        return jnp.minimum(jnp.maximum(_float(t) - float(begin), 0) / float(length), 1.0)
    return jnp.minimum(_float(jnp.clip(t - begin, 0, length)) / length, 1.0)


def _remaining(step, begin: int, length: int):
    """1 - x, from the integer steps left, so that it is exactly 0 at the end.

    (Under jit, XLA turns ``1 - k / n`` into ``1 - k * (1 / n)``, which can
    come out at -1.5e-8, and a fractional power of that is NaN.)
    """
    t = jnp.asarray(step)
    return _float(length - jnp.clip(t - begin, 0, length)) / length


def _pin_ends(step, value, start: int, start_value, end: int | None = None, end_value=None):
    """``value``, but exactly ``start_value`` for t <= start and ``end_value`` for t >= end.

    The phase formulas give these values only up to rounding (under jit
    ``1 - k / T`` can come out a few ulps off, which turns a zero learning
    rate into a tiny step the wrong way); the ends are decided on the step.
    """
    t = jnp.asarray(step)
    out = jnp.where(t <= start, _out(start_value), _out(value))
    if end is not None:
        reached = _float(t) >= float(end) if end > _INT32_MAX else t >= end
        out = jnp.where(reached, _out(end_value), out)
    return out


def _cosine(x):
    """(1 + cos(pi x)) / 2: 1 at x = 0, 0 at x = 1."""
    return 0.5 * (1 + jnp.cos(jnp.pi * x))


# ----------------------------------------------------------------------------
# The schedules.


def constant_schedule(value: float) -> Schedule:
    """The same value at every step: v(t) = value.

    Args:
      value: the value, a number.

    Returns:
      A schedule ``step -> float32``.

    Example:
      >>> import gradtx
      >>> gradtx.constant_schedule(0.5)(10)
      Array(0.5, dtype=float32)
    """
    owner = "constant_schedule"
    value = _number(owner, "value", value)

    return _named(_constant(value), owner, value)


def _polynomial(owner, init_value, end_value, power, transition_steps, transition_begin):
    init_value = _number(owner, "init_value", init_value)
    end_value = _number(owner, "end_value", end_value)
    power = _number(owner, "power", power, 0, low_open=True)
    transition_steps = _steps(owner, "transition_steps", transition_steps, -_INT32_MAX)
    transition_begin = _steps(owner, "transition_begin", transition_begin)
    if transition_steps <= 0:
        return _named(_constant(init_value), owner, init_value)

    def schedule(step):
        frac = _remaining(step, transition_begin, transition_steps)
        value = (init_value - end_value) * frac**power + end_value
        end = transition_begin + transition_steps
        return _pin_ends(step, value, transition_begin, init_value, end, end_value)

    return _named(schedule, owner, init_value, end_value)


def polynomial_schedule(
    init_value: float,
    end_value: float,
    power: float,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    """Polynomial decay: v(t) = (I - E) * (1 - k / T)^p + E, k = clip(t - B, 0, T).

    The value holds at I until step B, moves over T steps, and holds at E from
    step B + T on.  Keras's ``PolynomialDecay(cycle=False)`` and PyTorch's
    ``PolynomialLR`` (with E = 0) count the same way.

    Args:
      init_value: I, the value before and at step B.
      end_value: E, the value from step B + T on.
      power: p > 0.
      transition_steps: T, the length of the transition; T <= 0 gives the
        constant schedule v(t) = I, as in optax.
      transition_begin: B >= 0, the step the transition starts at.

    Returns:
      A schedule ``step -> float32``.

    Example:
      >>> import gradtx
      >>> sched = gradtx.polynomial_schedule(1.0, 0.0, power=2, transition_steps=4)
      >>> [float(sched(t)) for t in range(6)]
      [1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0]
    """
    return _polynomial(
        "polynomial_schedule", init_value, end_value, power, transition_steps, transition_begin
    )


def linear_schedule(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """Linear interpolation: v(t) = I + (E - I) * k / T, k = clip(t - B, 0, T).

    PyTorch's ``LinearLR(start_factor, end_factor, total_iters=T)`` is this
    schedule times the base learning rate, counted the same way.

    Args:
      init_value: I, the value before and at step B.
      end_value: E, the value from step B + T on.
      transition_steps: T, the length of the transition; T <= 0 gives the
        constant schedule v(t) = I, as in optax (a zero warmup).
      transition_begin: B >= 0, the step the transition starts at.

    Returns:
      A schedule ``step -> float32``.

    Example:
      >>> import gradtx
      >>> sched = gradtx.linear_schedule(1.0, 0.0, transition_steps=4)
      >>> [float(sched(t)) for t in range(6)]
      [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """
    return _polynomial(
        "linear_schedule", init_value, end_value, 1.0, transition_steps, transition_begin
    )


def _decay_exponent(step, transition_steps, transition_begin, staircase):
    """p = max(t - B, 0) / T, floored on the integer step when ``staircase``."""
    t = jnp.asarray(step)
    k = jnp.maximum(t - transition_begin, 0)
    if not staircase:
        return _float(k) / transition_steps
    if jnp.issubdtype(k.dtype, jnp.integer):
        return _float(k // transition_steps)
    return jnp.floor(_float(k) / transition_steps)


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """Exponential decay: v(t) = I * r^p, p = max(t - B, 0) / T (floored if ``staircase``).

    With ``end_value`` E the value is clipped at E: from below when r < 1,
    from above when r > 1.  Keras's ``ExponentialDecay`` counts the same way;
    PyTorch's ``ExponentialLR(gamma)`` is T = 1, and ``StepLR(step_size,
    gamma)`` is ``staircase=True`` with T = step_size.

    Args:
      init_value: I, the value up to step B.
      transition_steps: T, the steps over which the value is multiplied by r;
        T <= 0 gives the constant schedule v(t) = I, as in optax.
      decay_rate: r >= 0; r = 0 gives the constant schedule v(t) = I, as in optax.
      transition_begin: B >= 0, the step the decay starts at.
      staircase: decay in steps of T instead of continuously.
      end_value: E, an optional bound (<= I when r < 1, >= I when r > 1).

    Returns:
      A schedule ``step -> float32``.

    Example:
      >>> import gradtx
      >>> sched = gradtx.exponential_decay(1.0, transition_steps=2, decay_rate=0.5, staircase=True)
      >>> [float(sched(t)) for t in range(6)]
      [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    """
    owner = "exponential_decay"
    init_value = _number(owner, "init_value", init_value)
    transition_steps = _steps(owner, "transition_steps", transition_steps, -_INT32_MAX)
    decay_rate = _number(owner, "decay_rate", decay_rate, 0)
    transition_begin = _steps(owner, "transition_begin", transition_begin)
    if transition_steps <= 0 or (not is_traced(decay_rate) and decay_rate == 0):
        return _named(_constant(init_value), owner, init_value)
    has_bound = False
    if end_value is not None:
        end_value = _number(owner, "end_value", end_value)
        if not (is_traced(decay_rate) or is_traced(init_value) or is_traced(end_value)):
            if decay_rate < 1 and end_value > init_value:
                raise ValueError(
                    f"{owner}: end_value must be <= init_value when decay_rate < 1 "
                    f"(it is a lower bound), got end_value={end_value!r} > "
                    f"init_value={init_value!r}"
                )
            if decay_rate > 1 and end_value < init_value:
                raise ValueError(
                    f"{owner}: end_value must be >= init_value when decay_rate > 1 "
                    f"(it is an upper bound), got end_value={end_value!r} < "
                    f"init_value={init_value!r}"
                )
        has_bound = True

    def schedule(step):
        p = _decay_exponent(step, transition_steps, transition_begin, staircase)
        value = init_value * jnp.power(jnp.asarray(decay_rate, value_dtype()), p)
        start = jnp.asarray(init_value, value.dtype)
        if has_bound:
            # The bound clips the start too (decay_rate = 1 with end_value < init_value
            # is end_value throughout, as in optax).
            bound = jnp.asarray(end_value, value.dtype)
            lower = decay_rate < 1
            value = jnp.where(lower, jnp.maximum(value, bound), jnp.minimum(value, bound))
            start = jnp.where(lower, jnp.maximum(start, bound), jnp.minimum(start, bound))
        return _pin_ends(step, value, transition_begin, start)

    return _named(schedule, owner, init_value, *([] if end_value is None else [end_value]))


def inverse_time_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
) -> Schedule:
    """Inverse-time decay: v(t) = I / (1 + r * p), p = max(t - B, 0) / T (floored if ``staircase``).

    Keras's ``InverseTimeDecay(initial_learning_rate, decay_steps, decay_rate)``
    is this schedule with T = decay_steps and B = 0, counted the same way.
    optax has no such schedule.

    Args:
      init_value: I, the value up to step B.
      transition_steps: T >= 1 (Keras's ``decay_steps``).
      decay_rate: r >= 0.
      transition_begin: B >= 0, the step the decay starts at.
      staircase: decay in steps of T instead of continuously.

    Returns:
      A schedule ``step -> float32``.

    Example:
      >>> import gradtx
      >>> sched = gradtx.inverse_time_decay(1.0, transition_steps=1, decay_rate=1.0)
      >>> [float(sched(t)) for t in range(4)]
      [1.0, 0.5, 0.333, 0.25]
    """
    owner = "inverse_time_decay"
    init_value = _number(owner, "init_value", init_value)
    transition_steps = _steps(owner, "transition_steps", transition_steps, 1)
    decay_rate = _number(owner, "decay_rate", decay_rate, 0)
    transition_begin = _steps(owner, "transition_begin", transition_begin)

    def schedule(step):
        p = _decay_exponent(step, transition_steps, transition_begin, staircase)
        return _pin_ends(step, init_value / (1 + decay_rate * p), transition_begin, init_value)

    return _named(schedule, owner, init_value)


def cosine_decay_schedule(
    init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0
) -> Schedule:
    """Cosine decay: v(t) = I * ((1 - alpha) * c^e + alpha), c = (1 + cos(pi * min(t, T) / T)) / 2.

    The value falls from I to alpha * I over T steps and stays there.
    PyTorch's ``CosineAnnealingLR(T_max=T, eta_min=alpha * I)`` agrees up to
    step T but then rises again (it is periodic); Keras's ``CosineDecay``
    agrees when it has no warmup.

    Args:
      init_value: I, the value at step 0.
      decay_steps: T >= 1, the length of the decay (it may exceed the int32
        range).
      alpha: the final value as a fraction of I, in [0, 1].
      exponent: e > 0, the power of the cosine factor.

    Returns:
      A schedule ``step -> float32``.

    Reference: Loshchilov, Hutter, "SGDR: Stochastic Gradient Descent with
    Warm Restarts", ICLR 2017, arXiv:1608.03983.

    Example:
      >>> import gradtx
      >>> sched = gradtx.cosine_decay_schedule(1.0, decay_steps=4, alpha=0.1)
      >>> [round(float(sched(t)), 4) for t in range(6)]
      [1.0, 0.8682, 0.55, 0.2318, 0.1, 0.1]
    """
    owner = "cosine_decay_schedule"
    init_value = _number(owner, "init_value", init_value)
    decay_steps = _steps(owner, "decay_steps", decay_steps, 1, high=None)
    alpha = _number(owner, "alpha", alpha, 0, 1)
    exponent = _number(owner, "exponent", exponent, 0, low_open=True)

    def schedule(step):
        c = _cosine(_fraction(step, 0, decay_steps))
        value = init_value * ((1 - alpha) * c**exponent + alpha)
        return _pin_ends(step, value, 0, init_value, decay_steps, init_value * alpha)

    return _named(schedule, owner, init_value, init_value * alpha)


def warmup_cosine_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Linear warmup, then cosine decay.

    v(t) = I + (P - I) * t / W                          for t < W,
    v(t) = E + (P - E) * c^e, c = (1 + cos(pi * k / (T - W))) / 2,
           k = min(t - W, T - W)                        for t >= W.

    ``decay_steps`` T counts the warmup too, as in optax; Keras's
    ``CosineDecay(warmup_steps=W, decay_steps=D)`` decays over D steps after
    the warmup, so its D is T - W here.

    Args:
      init_value: I, the value at step 0.
      peak_value: P, the value at step W.
      warmup_steps: W >= 0, the length of the warmup.
      decay_steps: T > W, the step at which the value reaches E.
      end_value: E, the value from step T on.  With P = 0 the decay phase
        is 0 whatever E is, as in optax (which decays P * ((1 - E/P) c^e + E/P)
        and takes E/P = 0 when P = 0).
      exponent: e > 0, the power of the cosine factor.

    Returns:
      A schedule ``step -> float32``.

    Example:
      >>> import gradtx
      >>> sched = gradtx.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=2, decay_steps=6)
      >>> [round(float(sched(t)), 4) for t in range(8)]
      [0.0, 0.5, 1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
    """
    owner = "warmup_cosine_decay_schedule"
    init_value = _number(owner, "init_value", init_value)
    peak_value = _number(owner, "peak_value", peak_value)
    warmup_steps = _steps(owner, "warmup_steps", warmup_steps)
    decay_steps = _steps(owner, "decay_steps", decay_steps, 1)
    end_value = _number(owner, "end_value", end_value)
    exponent = _number(owner, "exponent", exponent, 0, low_open=True)
    if decay_steps <= warmup_steps:
        raise ValueError(
            f"{owner}: decay_steps must be greater than warmup_steps (decay_steps "
            f"counts the warmup too), got decay_steps={decay_steps}, "
            f"warmup_steps={warmup_steps}"
        )
    cosine_steps = decay_steps - warmup_steps
    if not is_traced(peak_value) and peak_value == 0:
        end_value = 0.0

    def schedule(step):
        t = jnp.asarray(step)
        warm = init_value + (peak_value - init_value) * _fraction(t, 0, max(warmup_steps, 1))
        c = _cosine(_fraction(t, warmup_steps, cosine_steps))
        decay = end_value + (peak_value - end_value) * c**exponent
        value = jnp.where(t < warmup_steps, warm, decay)
        start_value = init_value if warmup_steps > 0 else peak_value
        return _pin_ends(t, value, 0, start_value, decay_steps, end_value)

    return _named(schedule, owner, init_value, peak_value, end_value)


def piecewise_constant_schedule(
    init_value: float, boundaries_and_scales: dict[int, float] | None = None
) -> Schedule:
    """Piecewise constant: v(t) = I * prod of s_b over the boundaries b <= t.

    The value is multiplied by s_b *at* step b.  PyTorch's ``MultiStepLR``
    switches at the same step; Keras's ``PiecewiseConstantDecay`` switches
    one step later (it keeps the old value while t <= b).

    Args:
      init_value: I, the value before the first boundary.
      boundaries_and_scales: a dict ``{b: s_b}`` of steps b >= 0 and scales
        s_b >= 0; None or empty for a constant.

    Returns:
      A schedule ``step -> float32``.

    Example:
      >>> import gradtx
      >>> sched = gradtx.piecewise_constant_schedule(1.0, {2: 0.5, 4: 0.5})
      >>> [float(sched(t)) for t in range(6)]
      [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    """
    owner = "piecewise_constant_schedule"
    init_value = _number(owner, "init_value", init_value)
    if boundaries_and_scales is None:
        boundaries_and_scales = {}
    if not isinstance(boundaries_and_scales, dict):
        raise TypeError(
            f"{owner}: boundaries_and_scales must be a dict {{step: scale}}, got "
            f"{type(boundaries_and_scales).__name__}"
        )
    pieces = []
    for b, s in boundaries_and_scales.items():
        b = _steps(owner, "a boundary of boundaries_and_scales", b)
        pieces.append((b, _number(owner, f"boundaries_and_scales[{b}]", s, 0)))
    pieces.sort(key=lambda piece: piece[0])
    # Each piece's value, I times the scales so far, rounded once (in Python when concrete).
    levels, level = [], init_value
    for b, s in pieces:
        level = level * s
        levels.append((b, level))

    def schedule(step):
        t = jnp.asarray(step)
        value = jnp.full(jnp.shape(t), init_value, value_dtype())
        for b, level in levels:
            value = jnp.where(t >= b, _out(level), value)
        return value

    return _named(schedule, owner, init_value, *(level for _, level in levels))


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """One-cycle: cosine up from P / d to P, then cosine down to P / (d * f).

    With W = floor(pct_start * T), I = P / d, F = I / f and
    cos_interp(a, b, x) = b + (a - b) * (1 + cos(pi x)) / 2:
    v(t) = cos_interp(I, P, t / W) for t < W,
    v(t) = cos_interp(P, F, min(t - W, T - W) / (T - W)) for t >= W.

    As optax, the peak is reached at step W and F at step T; PyTorch's
    ``OneCycleLR`` reaches them one step earlier (at pct_start * T - 1 and
    T - 1).  PyTorch's momentum cycling is not part of this schedule.

    Args:
      transition_steps: T >= 1, the length of the cycle.
      peak_value: P, the largest value.
      pct_start: the fraction of T spent rising, in [0, 1].
      div_factor: d > 0; the value starts at P / d.
      final_div_factor: f > 0; the value ends at P / (d * f).

    Returns:
      A schedule ``step -> float32``.

    Reference: Smith, Topin, "Super-Convergence: Very Fast Training of
    Neural Networks Using Large Learning Rates", 2017, arXiv:1708.07120.

    Example:
      >>> import gradtx
      >>> sched = gradtx.cosine_onecycle_schedule(4, 1.0, pct_start=0.5, div_factor=10.0,
      ...                                         final_div_factor=10.0)
      >>> [round(float(sched(t)), 4) for t in range(5)]
      [0.1, 0.55, 1.0, 0.505, 0.01]
    """
    owner = "cosine_onecycle_schedule"
    transition_steps = _steps(owner, "transition_steps", transition_steps, 1)
    peak_value = _number(owner, "peak_value", peak_value)
    pct_start = _number(owner, "pct_start", pct_start, 0, 1)
    div_factor = _number(owner, "div_factor", div_factor, 0, low_open=True)
    final_div_factor = _number(owner, "final_div_factor", final_div_factor, 0, low_open=True)
    rise = int(pct_start * transition_steps)
    fall = transition_steps - rise
    init_value = peak_value / div_factor
    final_value = init_value / final_div_factor

    def interp(a, b, x):
        return b + (a - b) * _cosine(x)

    def schedule(step):
        t = jnp.asarray(step)
        up = interp(init_value, peak_value, _fraction(t, 0, max(rise, 1)))
        down = interp(peak_value, final_value, _fraction(t, rise, max(fall, 1)))
        value = jnp.where(t < rise, up, down)
        start_value = init_value if rise > 0 else peak_value
        return _pin_ends(t, value, 0, start_value, transition_steps, final_value)

    return _named(schedule, owner, init_value, peak_value, final_value)


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run schedules one after another: v(t) = s_i(t - b_i) for b_i <= t < b_{i+1}, b_0 = 0.

    Each schedule restarts its count at its boundary, as in optax.

    Args:
      schedules: n schedules ``step -> value``.
      boundaries: n - 1 nondecreasing steps >= 0 at which the next schedule
        takes over.

    Returns:
      A schedule ``step -> float32``.

    Example:
      >>> import gradtx
      >>> warmup = gradtx.linear_schedule(0.0, 1.0, transition_steps=2)
      >>> decay = gradtx.exponential_decay(1.0, transition_steps=1, decay_rate=0.5)
      >>> sched = gradtx.join_schedules([warmup, decay], boundaries=[2])
      >>> [float(sched(t)) for t in range(5)]
      [0.0, 0.5, 1.0, 0.5, 0.25]
    """
    owner = "join_schedules"
    schedules = list(schedules)
    boundaries = list(boundaries)
    if not schedules:
        raise ValueError(f"{owner}: schedules must hold at least one schedule, got none")
    for i, s in enumerate(schedules):
        if not callable(s):
            raise TypeError(f"{owner}: schedules[{i}] must be a schedule step -> value, got {s!r}")
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"{owner}: boundaries must hold one step fewer than schedules "
            f"({len(schedules) - 1}), got {len(boundaries)}"
        )
    boundaries = [_steps(owner, f"boundaries[{i}]", b) for i, b in enumerate(boundaries)]
    if any(a > b for a, b in zip(boundaries, boundaries[1:])):
        raise ValueError(f"{owner}: boundaries must be nondecreasing, got {boundaries}")

    def schedule(step):
        t = jnp.asarray(step)
        value = _out(schedules[0](t))
        for b, s in zip(boundaries, schedules[1:]):
            value = jnp.where(t >= b, _out(s(t - b)), value)
        return value

    parts = [schedule_values(s) for s in schedules]
    return _named(schedule, owner, *(v for part in parts for v in (part or [None])))


def sgdr_schedule(cosine_kwargs: Iterable[dict[str, Any]]) -> Schedule:
    """SGD with warm restarts: warmup-cosine cycles run one after another.

    Cycle i is ``warmup_cosine_decay_schedule(**cosine_kwargs[i])`` and lasts
    its ``decay_steps``; its count restarts at 0 (optax's ``sgdr_schedule``).
    For the endless geometric restarts of Keras's ``CosineDecayRestarts`` and
    PyTorch's ``CosineAnnealingWarmRestarts`` use ``cosine_restarts_schedule``.

    Args:
      cosine_kwargs: a sequence of dicts of ``warmup_cosine_decay_schedule``
        arguments (init_value, peak_value, warmup_steps, decay_steps, ...).

    Returns:
      A schedule ``step -> float32``.

    Reference: Loshchilov, Hutter, ICLR 2017, arXiv:1608.03983 (as ``cosine_decay_schedule``).

    Example:
      >>> import gradtx
      >>> cycle = dict(init_value=1.0, peak_value=1.0, warmup_steps=0, decay_steps=2)
      >>> sched = gradtx.sgdr_schedule([cycle, cycle])
      >>> [float(sched(t)) for t in range(5)]
      [1.0, 0.5, 1.0, 0.5, 0.0]
    """
    owner = "sgdr_schedule"
    cycles = list(cosine_kwargs)
    if not cycles:
        raise ValueError(f"{owner}: cosine_kwargs must hold at least one cycle, got none")
    schedules, boundaries, start = [], [], 0
    for i, kwargs in enumerate(cycles):
        if not isinstance(kwargs, dict):
            raise TypeError(
                f"{owner}: cosine_kwargs[{i}] must be a dict of "
                f"warmup_cosine_decay_schedule arguments, got {kwargs!r}"
            )
        try:
            schedules.append(warmup_cosine_decay_schedule(**kwargs))
        except (TypeError, ValueError) as error:
            raise type(error)(f"{owner}: cosine_kwargs[{i}]: {error}") from None
        start += kwargs["decay_steps"]
        boundaries.append(start)
    joined = join_schedules(schedules, boundaries[:-1])
    return _named(joined, owner, *(schedule_values(joined) or [None]))


def cosine_restarts_schedule(
    init_value: float,
    first_decay_steps: int,
    t_mul: float = 2.0,
    m_mul: float = 1.0,
    alpha: float = 0.0,
) -> Schedule:
    """Cosine decay with warm restarts, each period t_mul times the last.

    Cycle i starts at S_i = T0 * (t_mul^i - 1) / (t_mul - 1) (i * T0 when
    t_mul = 1) and lasts T_i = T0 * t_mul^i steps; inside it
    v(t) = I * ((1 - alpha) * m_mul^i * (1 + cos(pi * (t - S_i) / T_i)) / 2 + alpha).

    Keras's ``CosineDecayRestarts`` (the same arguments) and PyTorch's
    ``CosineAnnealingWarmRestarts(T_0=T0, T_mult=t_mul, eta_min=alpha * I)``
    (with m_mul = 1) count the same way; the cycle is found exactly on the
    integer step (Keras finds it with a float32 logarithm, which can place a
    restart one step late).

    Args:
      init_value: I, the value at the start of the first cycle.
      first_decay_steps: T0 >= 1, the length of the first cycle.
      t_mul: the growth of the cycle length, >= 1.
      m_mul: the factor applied to the peak at each restart, >= 0.
      alpha: the floor, as a fraction of I, in [0, 1].

    Returns:
      A schedule ``step -> float32``.

    Reference: as ``cosine_decay_schedule`` (Loshchilov, Hutter, ICLR 2017, arXiv:1608.03983).

    Example:
      >>> import gradtx
      >>> sched = gradtx.cosine_restarts_schedule(1.0, first_decay_steps=2, t_mul=2.0)
      >>> [round(float(sched(t)), 4) for t in range(7)]
      [1.0, 0.5, 1.0, 0.8536, 0.5, 0.1464, 1.0]
    """
    owner = "cosine_restarts_schedule"
    init_value = _number(owner, "init_value", init_value)
    first_decay_steps = _steps(owner, "first_decay_steps", first_decay_steps, 1)
    t_mul = _number(owner, "t_mul", t_mul, 1)
    m_mul = _number(owner, "m_mul", m_mul, 0)
    alpha = _number(owner, "alpha", alpha, 0, 1)
    if is_traced(t_mul):
        raise TypeError(
            f"{owner}: t_mul must be a concrete number (it fixes the cycle "
            f"boundaries), got a traced value"
        )

    if t_mul == 1:

        def equal_cycles(t):
            i = t // first_decay_steps
            return i, _float(t - i * first_decay_steps) / first_decay_steps

        cycle = equal_cycles
    else:
        # Exact first steps of every cycle that starts within the int32 range.
        starts, lengths, start, length = [], [], 0.0, float(first_decay_steps)
        while math.ceil(start) <= _INT32_MAX:
            if len(starts) >= 1 << 16:
                raise ValueError(
                    f"{owner}: t_mul={t_mul!r} makes more than 65536 cycles before "
                    f"step 2**31; use t_mul=1 or a larger t_mul"
                )
            starts.append(start)
            lengths.append(length)
            start, length = start + length, length * t_mul
        first_steps = np.array([math.ceil(s) for s in starts], np.int64)
        starts_table = np.array(starts, np.float64)
        lengths_table = np.array(lengths, np.float64)

        def growing_cycles(t):
            table = jnp.asarray(first_steps.astype(np.dtype(t.dtype)))
            i = jnp.maximum(jnp.searchsorted(table, t, side="right") - 1, 0)
            starts_t = jnp.asarray(starts_table, value_dtype())
            lengths_t = jnp.asarray(lengths_table, value_dtype())
            return i, (_float(t) - starts_t[i]) / lengths_t[i]

        cycle = growing_cycles

    def schedule(step):
        t = jnp.asarray(step)
        if not jnp.issubdtype(t.dtype, jnp.integer):
            t = jnp.floor(t).astype(jnp.int32)
        i, x = cycle(t)
        peak = jnp.power(jnp.asarray(m_mul, value_dtype()), _float(i))
        return _pin_ends(t, init_value * ((1 - alpha) * peak * _cosine(x) + alpha), 0, init_value)

    return _named(schedule, owner, init_value, init_value * alpha)
