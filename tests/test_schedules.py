"""Schedules against closed-form float64 references, optax, and PyTorch's lr_scheduler.

Every reference below is written from the formula in the docstring, step by
step in plain Python floats; it shares no code with gradtx.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

# ----------------------------------------------------------------------------
# Closed-form references, one step t at a time, in float64.


def ref_polynomial(t, init_value, end_value, power, transition_steps, transition_begin=0):
    k = min(max(t - transition_begin, 0), transition_steps)
    return (init_value - end_value) * (1 - k / transition_steps) ** power + end_value


def ref_linear(t, init_value, end_value, transition_steps, transition_begin=0):
    k = min(max(t - transition_begin, 0), transition_steps)
    return init_value + (end_value - init_value) * k / transition_steps


def ref_exponential(
    t, init_value, transition_steps, decay_rate, transition_begin=0, staircase=False, end_value=None
):
    k = max(t - transition_begin, 0)
    p = k // transition_steps if staircase else k / transition_steps
    v = init_value * decay_rate**p
    if end_value is not None:
        v = max(v, end_value) if decay_rate < 1 else min(v, end_value)
    return v


def ref_inverse_time(
    t, init_value, transition_steps, decay_rate, transition_begin=0, staircase=False
):
    k = max(t - transition_begin, 0)
    p = k // transition_steps if staircase else k / transition_steps
    return init_value / (1 + decay_rate * p)


def ref_cosine(t, init_value, decay_steps, alpha=0.0, exponent=1.0):
    c = 0.5 * (1 + math.cos(math.pi * min(t, decay_steps) / decay_steps))
    return init_value * ((1 - alpha) * c**exponent + alpha)


def ref_warmup_cosine(
    t, init_value, peak_value, warmup_steps, decay_steps, end_value=0.0, exponent=1.0
):
    if t < warmup_steps:
        return init_value + (peak_value - init_value) * t / warmup_steps
    k = min(t - warmup_steps, decay_steps - warmup_steps)
    c = 0.5 * (1 + math.cos(math.pi * k / (decay_steps - warmup_steps)))
    return end_value + (peak_value - end_value) * c**exponent


def ref_piecewise(t, init_value, boundaries_and_scales=None):
    v = init_value
    for b, s in (boundaries_and_scales or {}).items():
        if t >= b:
            v *= s
    return v


def ref_onecycle(
    t, transition_steps, peak_value, pct_start=0.3, div_factor=25.0, final_div_factor=1e4
):
    rise = int(pct_start * transition_steps)
    low = peak_value / div_factor
    final = low / final_div_factor

    def interp(a, b, x):
        return b + (a - b) * 0.5 * (1 + math.cos(math.pi * x))

    if t < rise:
        return interp(low, peak_value, t / rise)
    fall = transition_steps - rise
    return interp(peak_value, final, min(t - rise, fall) / fall) if fall else final


def ref_restarts(t, init_value, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
    start, length, i = 0.0, float(first_decay_steps), 0
    while t >= start + length:
        start, length, i = start + length, length * t_mul, i + 1
    c = 0.5 * (1 + math.cos(math.pi * (t - start) / length))
    return init_value * ((1 - alpha) * m_mul**i * c + alpha)


def ref_wsd(
    t,
    init_value,
    peak_value,
    warmup_steps,
    stable_steps,
    decay_steps,
    end_value=0.0,
    decay_type="linear",
):
    if t < warmup_steps:
        return init_value + (peak_value - init_value) * t / warmup_steps
    if t < warmup_steps + stable_steps:
        return peak_value
    x = min(t - warmup_steps - stable_steps, decay_steps) / decay_steps
    f = {"linear": 1 - x, "cosine": 0.5 * (1 + math.cos(math.pi * x)), "1-sqrt": 1 - math.sqrt(x)}[
        decay_type
    ]
    return end_value + (peak_value - end_value) * f


def ref_inverse_sqrt(t, peak_value, warmup_steps=0, init_value=0.0, timescale=None):
    if t < warmup_steps:
        return init_value + (peak_value - init_value) * t / warmup_steps
    tau = timescale if timescale is not None else max(warmup_steps, 1)
    return peak_value / math.sqrt(1 + (t - warmup_steps) / tau)


def ref_sgdr(t, cycles):
    start = 0
    for i, kwargs in enumerate(cycles):
        if t < start + kwargs["decay_steps"] or i == len(cycles) - 1:
            return ref_warmup_cosine(t - start, **kwargs)
        start += kwargs["decay_steps"]


# ----------------------------------------------------------------------------
# The table: (gradtx name, kwargs, reference, boundaries worth probing).

CASES = [
    ("constant_schedule", dict(value=0.3), lambda t, value: value, []),
    ("linear_schedule", dict(init_value=1.0, end_value=0.1, transition_steps=10), ref_linear, [10]),
    (
        "linear_schedule",
        dict(init_value=0.0, end_value=2.0, transition_steps=7, transition_begin=5),
        ref_linear,
        [5, 12],
    ),
    (
        "polynomial_schedule",
        dict(init_value=1.0, end_value=0.01, power=2, transition_steps=9, transition_begin=3),
        ref_polynomial,
        [3, 12],
    ),
    (
        "polynomial_schedule",
        dict(init_value=0.5, end_value=0.0, power=0.5, transition_steps=20),
        ref_polynomial,
        [20],
    ),
    (
        "exponential_decay",
        dict(init_value=1.0, transition_steps=4, decay_rate=0.5),
        ref_exponential,
        [4, 8],
    ),
    (
        "exponential_decay",
        dict(
            init_value=2.0, transition_steps=3, decay_rate=0.7, transition_begin=5, staircase=True
        ),
        ref_exponential,
        [5, 8, 11],
    ),
    (
        "exponential_decay",
        dict(init_value=1.0, transition_steps=2, decay_rate=0.5, end_value=0.2),
        ref_exponential,
        [4, 6],
    ),
    (
        "exponential_decay",
        dict(init_value=0.1, transition_steps=5, decay_rate=2.0, end_value=0.5, staircase=True),
        ref_exponential,
        [5, 10, 15],
    ),
    (
        "inverse_time_decay",
        dict(init_value=1.0, transition_steps=5, decay_rate=0.5),
        ref_inverse_time,
        [5],
    ),
    (
        "inverse_time_decay",
        dict(
            init_value=3.0, transition_steps=4, decay_rate=2.0, transition_begin=2, staircase=True
        ),
        ref_inverse_time,
        [2, 6, 10],
    ),
    ("cosine_decay_schedule", dict(init_value=1.0, decay_steps=16), ref_cosine, [16]),
    (
        "cosine_decay_schedule",
        dict(init_value=0.5, decay_steps=10, alpha=0.1, exponent=2.0),
        ref_cosine,
        [10],
    ),
    (
        "warmup_cosine_decay_schedule",
        dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=20, end_value=0.05),
        ref_warmup_cosine,
        [5, 20],
    ),
    (
        "warmup_cosine_decay_schedule",
        dict(init_value=0.1, peak_value=0.5, warmup_steps=0, decay_steps=8, exponent=1.5),
        ref_warmup_cosine,
        [8],
    ),
    (
        "piecewise_constant_schedule",
        dict(init_value=1.0, boundaries_and_scales={10: 0.1, 3: 0.5, 15: 2.0}),
        ref_piecewise,
        [3, 10, 15],
    ),
    ("piecewise_constant_schedule", dict(init_value=0.7), ref_piecewise, []),
    ("cosine_onecycle_schedule", dict(transition_steps=20, peak_value=1.0), ref_onecycle, [6, 20]),
    (
        "cosine_onecycle_schedule",
        dict(
            transition_steps=9,
            peak_value=0.4,
            pct_start=0.5,
            div_factor=4.0,
            final_div_factor=100.0,
        ),
        ref_onecycle,
        [4, 9],
    ),
    (
        "cosine_restarts_schedule",
        dict(init_value=1.0, first_decay_steps=3),
        ref_restarts,
        [3, 9, 21],
    ),
    (
        "cosine_restarts_schedule",
        dict(init_value=0.5, first_decay_steps=4, t_mul=1.0, m_mul=0.5, alpha=0.1),
        ref_restarts,
        [4, 8, 12],
    ),
    (
        "cosine_restarts_schedule",
        dict(init_value=1.0, first_decay_steps=2, t_mul=1.5, m_mul=0.9),
        ref_restarts,
        [2, 5, 10],
    ),
    (
        "warmup_stable_decay_schedule",
        dict(
            init_value=0.0,
            peak_value=1.0,
            warmup_steps=4,
            stable_steps=6,
            decay_steps=5,
            end_value=0.1,
        ),
        ref_wsd,
        [4, 10, 15],
    ),
    (
        "warmup_stable_decay_schedule",
        dict(
            init_value=0.2,
            peak_value=1.0,
            warmup_steps=0,
            stable_steps=3,
            decay_steps=8,
            decay_type="cosine",
        ),
        ref_wsd,
        [3, 11],
    ),
    (
        "warmup_stable_decay_schedule",
        dict(
            init_value=0.0,
            peak_value=2.0,
            warmup_steps=3,
            stable_steps=0,
            decay_steps=9,
            decay_type="1-sqrt",
        ),
        ref_wsd,
        [3, 12],
    ),
    ("inverse_sqrt_schedule", dict(peak_value=1.0, warmup_steps=8), ref_inverse_sqrt, [8]),
    ("inverse_sqrt_schedule", dict(peak_value=0.5), ref_inverse_sqrt, [0]),
    (
        "inverse_sqrt_schedule",
        dict(peak_value=1.0, warmup_steps=3, init_value=0.1, timescale=10.0),
        ref_inverse_sqrt,
        [3],
    ),
]

SGDR_CYCLES = [
    dict(init_value=0.0, peak_value=1.0, warmup_steps=2, decay_steps=6),
    dict(init_value=0.1, peak_value=0.5, warmup_steps=0, decay_steps=5, end_value=0.05),
    dict(init_value=0.0, peak_value=0.2, warmup_steps=1, decay_steps=4, exponent=2.0),
]


def _steps(boundaries, n=40):
    probe = {b + d for b in boundaries for d in (-1, 0, 1)}
    return np.array(sorted(set(range(n)) | {s for s in probe if s >= 0} | {1000}), np.int32)


def _check(schedule, reference, steps):
    got = jax.jit(jax.vmap(schedule))(jnp.asarray(steps))
    want = np.array([reference(int(t)) for t in steps])
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-6, atol=1e-7)
    return got


def _case_id(case):
    name, kwargs = case[0], case[1]
    args = [f"{k}={v}" for k, v in kwargs.items() if k != "boundaries_and_scales"]
    return "-".join([name, *args])


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_schedule_matches_closed_form_under_jit_and_vmap(case):
    name, kwargs, reference, boundaries = case
    schedule = getattr(gradtx, name)(**kwargs)
    steps = _steps(boundaries)
    got = _check(schedule, lambda t: reference(t, **kwargs), steps)
    # A Python int step, eagerly, gives the same value as the traced one.
    t = boundaries[-1] if boundaries else 5
    np.testing.assert_allclose(schedule(t), got[list(steps).index(t)], rtol=1e-6)


def test_sgdr_schedule_matches_closed_form():
    _check(
        gradtx.sgdr_schedule(SGDR_CYCLES),
        lambda t: ref_sgdr(t, SGDR_CYCLES),
        _steps([6, 11, 15], n=20),
    )


def test_join_schedules_restarts_each_count_at_its_boundary():
    parts = [
        gradtx.constant_schedule(0.1),
        gradtx.linear_schedule(0.0, 1.0, transition_steps=4),
        gradtx.exponential_decay(1.0, transition_steps=1, decay_rate=0.5),
    ]
    schedule = gradtx.join_schedules(parts, [3, 7])

    def reference(t):
        if t < 3:
            return 0.1
        if t < 7:
            return (t - 3) / 4
        return 0.5 ** (t - 7)

    _check(schedule, reference, _steps([3, 7], n=15))


def test_join_schedules_with_equal_boundaries_skips_the_empty_piece():
    parts = [
        gradtx.constant_schedule(1.0),
        gradtx.constant_schedule(2.0),
        gradtx.constant_schedule(3.0),
    ]
    _check(gradtx.join_schedules(parts, [4, 4]), lambda t: 1.0 if t < 4 else 3.0, np.arange(8))


# optax's schedule of the same name, called with the same arguments.
OPTAX_NAMES = {
    "constant_schedule",
    "linear_schedule",
    "polynomial_schedule",
    "exponential_decay",
    "cosine_decay_schedule",
    "warmup_cosine_decay_schedule",
    "piecewise_constant_schedule",
    "cosine_onecycle_schedule",
}


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c[0] in OPTAX_NAMES],
    ids=[_case_id(c) for c in CASES if c[0] in OPTAX_NAMES],
)
def test_schedule_matches_optax(case):
    name, kwargs, _, boundaries = case
    steps = jnp.asarray(_steps(boundaries))
    ours = jax.jit(jax.vmap(getattr(gradtx, name)(**kwargs)))(steps)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 steps with float32
        theirs = np.asarray(jax.jit(jax.vmap(getattr(optax, name)(**kwargs)))(steps), np.float64)
    # Under jit optax's polynomial_schedule with a fractional power is NaN from
    # step T on (XLA computes 1 - k/T as -1.5e-8); gradtx stays finite there.
    assert np.all(np.isfinite(ours))
    finite = np.isfinite(theirs)
    assert finite[:20].all()
    np.testing.assert_allclose(np.asarray(ours)[finite], theirs[finite], rtol=2e-6, atol=1e-7)


def test_sgdr_and_join_schedules_match_optax():
    steps = jnp.arange(20)
    with jax.numpy_dtype_promotion("standard"):
        theirs = jax.jit(jax.vmap(optax.sgdr_schedule(SGDR_CYCLES)))(steps)
        joined = jax.jit(
            jax.vmap(
                optax.join_schedules(
                    [optax.constant_schedule(0.1), optax.linear_schedule(0.0, 1.0, 4)], [3]
                )
            )
        )(steps)
    np.testing.assert_allclose(
        jax.jit(gradtx.sgdr_schedule(SGDR_CYCLES))(steps), theirs, rtol=2e-6, atol=1e-7
    )
    ours = jax.jit(
        gradtx.join_schedules(
            [gradtx.constant_schedule(0.1), gradtx.linear_schedule(0.0, 1.0, 4)], [3]
        )
    )(steps)
    np.testing.assert_allclose(ours, joined, rtol=2e-6, atol=1e-7)


def test_schedules_match_torch_lr_scheduler_where_documented_equal():
    import torch  # imported here so that only this test pays for it

    sched = torch.optim.lr_scheduler

    def torch_lrs(make, n=24):
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([param], lr=1.0)
        scheduler = make(opt)
        out = []
        for _ in range(n):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
        return np.array(out)

    steps = jnp.arange(24)
    pairs = [
        (
            lambda o: sched.MultiStepLR(o, [3, 10], 0.1),
            gradtx.piecewise_constant_schedule(1.0, {3: 0.1, 10: 0.1}),
        ),
        (
            lambda o: sched.StepLR(o, 4, 0.5),
            gradtx.exponential_decay(1.0, transition_steps=4, decay_rate=0.5, staircase=True),
        ),
        (
            lambda o: sched.ExponentialLR(o, 0.9),
            gradtx.exponential_decay(1.0, transition_steps=1, decay_rate=0.9),
        ),
        (
            lambda o: sched.LinearLR(o, 0.25, 1.0, total_iters=6),
            gradtx.linear_schedule(0.25, 1.0, transition_steps=6),
        ),
        (
            lambda o: sched.PolynomialLR(o, total_iters=10, power=2.0),
            gradtx.polynomial_schedule(1.0, 0.0, power=2.0, transition_steps=10),
        ),
        (
            lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.1),
            gradtx.cosine_restarts_schedule(1.0, first_decay_steps=3, t_mul=2.0, alpha=0.1),
        ),
    ]
    for make, ours in pairs:
        np.testing.assert_allclose(np.asarray(ours(steps)), torch_lrs(make), rtol=2e-6, atol=1e-7)
    # CosineAnnealingLR agrees up to T_max (then it rises again, ours holds).
    theirs = torch_lrs(lambda o: sched.CosineAnnealingLR(o, T_max=10, eta_min=0.2))
    ours = gradtx.cosine_decay_schedule(1.0, decay_steps=10, alpha=0.2)(steps)
    np.testing.assert_allclose(np.asarray(ours)[:11], theirs[:11], rtol=2e-6, atol=1e-7)


def test_schedule_as_learning_rate_drives_sgd_by_closed_form():
    schedule = gradtx.warmup_cosine_decay_schedule(0.0, 0.5, warmup_steps=2, decay_steps=6)
    opt = gradtx.sgd(schedule)
    params = jnp.array([1.0, -1.0])
    state = opt.init(params)
    grad = jnp.array([1.0, 2.0])
    for _ in range(8):
        updates, state = opt.update(grad, state, params)
        params = gradtx.apply_updates(params, updates)
    total = sum(ref_warmup_cosine(t, 0.0, 0.5, 2, 6) for t in range(8))
    np.testing.assert_allclose(
        params, np.array([1.0, -1.0]) - total * np.array([1.0, 2.0]), rtol=1e-6
    )


def test_cosine_restarts_schedule_places_restarts_exactly_at_large_steps():
    schedule = gradtx.cosine_restarts_schedule(1.0, first_decay_steps=1000, t_mul=2.0)
    starts = np.array([1000 * (2**i - 1) for i in range(1, 21)], np.int32)
    got = jax.jit(schedule)(jnp.asarray(np.stack([starts - 1, starts])))
    assert np.all(np.asarray(got[1]) == 1.0)  # the first step of each cycle is a restart
    assert np.all(np.asarray(got[0]) < 1e-5)  # the step before it is the cycle's end


# ----------------------------------------------------------------------------
# Argument checks: the message names the schedule and the argument.

BAD = [
    (
        lambda: gradtx.linear_schedule(1.0, 0.0, transition_steps=10.0),
        TypeError,
        "linear_schedule: transition_steps must be an integer number of steps",
    ),
    (
        lambda: gradtx.polynomial_schedule(1.0, 0.0, power=0, transition_steps=5),
        ValueError,
        r"polynomial_schedule: power must be in \(0, inf\]",
    ),
    (
        lambda: gradtx.polynomial_schedule(1.0, 0.0, 1, 5, transition_begin=-1),
        ValueError,
        "polynomial_schedule: transition_begin must be in",
    ),
    (
        lambda: gradtx.exponential_decay(1.0, 5, decay_rate=-0.5),
        ValueError,
        r"exponential_decay: decay_rate must be in \[0, inf\]",
    ),
    (
        lambda: gradtx.exponential_decay(1.0, 5, 0.5, end_value=2.0),
        ValueError,
        "exponential_decay: end_value must be <= init_value when decay_rate < 1",
    ),
    (
        lambda: gradtx.exponential_decay(1.0, 5, 2.0, end_value=0.5),
        ValueError,
        "exponential_decay: end_value must be >= init_value when decay_rate > 1",
    ),
    (
        lambda: gradtx.inverse_time_decay(1.0, 5, decay_rate=-1.0),
        ValueError,
        "inverse_time_decay: decay_rate must be in",
    ),
    (
        lambda: gradtx.cosine_decay_schedule(1.0, decay_steps=0),
        ValueError,
        "cosine_decay_schedule: decay_steps must be in",
    ),
    (
        lambda: gradtx.cosine_decay_schedule(1.0, 10, alpha=1.5),
        ValueError,
        r"cosine_decay_schedule: alpha must be in \[0, 1\], got 1.5",
    ),
    (
        lambda: gradtx.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=10),
        ValueError,
        "warmup_cosine_decay_schedule: decay_steps must be greater than warmup_steps",
    ),
    (
        lambda: gradtx.piecewise_constant_schedule(1.0, {5: -0.1}),
        ValueError,
        r"piecewise_constant_schedule: boundaries_and_scales\[5\] must be in \[0, inf\]",
    ),
    (
        lambda: gradtx.piecewise_constant_schedule(1.0, [5, 0.1]),
        TypeError,
        "piecewise_constant_schedule: boundaries_and_scales must be a dict",
    ),
    (
        lambda: gradtx.cosine_onecycle_schedule(100, 1.0, pct_start=1.2),
        ValueError,
        "cosine_onecycle_schedule: pct_start must be in",
    ),
    (
        lambda: gradtx.cosine_onecycle_schedule(100, 1.0, div_factor=0.0),
        ValueError,
        "cosine_onecycle_schedule: div_factor must be in",
    ),
    (
        lambda: gradtx.cosine_restarts_schedule(1.0, 10, t_mul=0.5),
        ValueError,
        r"cosine_restarts_schedule: t_mul must be in \[1, inf\]",
    ),
    (
        lambda: gradtx.cosine_restarts_schedule(1.0, 10, t_mul=1.0000001),
        ValueError,
        "cosine_restarts_schedule: t_mul=1.0000001 makes more than 65536 cycles",
    ),
    (
        lambda: gradtx.warmup_stable_decay_schedule(0.0, 1.0, 1, 1, 1, decay_type="exp"),
        ValueError,
        "warmup_stable_decay_schedule: decay_type must be one of 'linear'",
    ),
    (
        lambda: gradtx.warmup_stable_decay_schedule(0.0, 1.0, 1, 1, decay_steps=0),
        ValueError,
        "warmup_stable_decay_schedule: decay_steps must be in",
    ),
    (
        lambda: gradtx.inverse_sqrt_schedule(1.0, timescale=0.0),
        ValueError,
        "inverse_sqrt_schedule: timescale must be in",
    ),
    (
        lambda: gradtx.constant_schedule("0.1"),
        TypeError,
        "constant_schedule: value must be a number, got '0.1'",
    ),
    (
        lambda: gradtx.join_schedules([gradtx.constant_schedule(1.0)], [3]),
        ValueError,
        r"join_schedules: boundaries must hold one step fewer than schedules \(0\), got 1",
    ),
    (
        lambda: gradtx.join_schedules([lambda t: t, lambda t: t, lambda t: t], [5, 2]),
        ValueError,
        "join_schedules: boundaries must be nondecreasing",
    ),
    (
        lambda: gradtx.join_schedules([lambda t: t, 0.1], [5]),
        TypeError,
        r"join_schedules: schedules\[1\] must be a schedule",
    ),
    (
        lambda: gradtx.sgdr_schedule(
            [dict(init_value=0.0, peak_value=1.0, warmup_steps=3, decay_steps=2)]
        ),
        ValueError,
        r"sgdr_schedule: cosine_kwargs\[0\]: warmup_cosine_decay_schedule: decay_steps must be",
    ),
]


@pytest.mark.parametrize("make, error, match", BAD, ids=[b[2][:40] for b in BAD])
def test_schedule_with_invalid_argument_raises_naming_it(make, error, match):
    with pytest.raises(error, match=match):
        make()


# Arguments optax reads as the constant schedule v(t) = init_value.
OPTAX_CONSTANT = [
    ("linear_schedule", dict(init_value=0.5, end_value=1.0, transition_steps=0)),
    ("polynomial_schedule", dict(init_value=0.5, end_value=1.0, power=2, transition_steps=-1)),
    ("exponential_decay", dict(init_value=0.5, transition_steps=0, decay_rate=0.9)),
    ("exponential_decay", dict(init_value=0.5, transition_steps=2, decay_rate=0.0)),
]


@pytest.mark.parametrize(
    "name, kwargs", OPTAX_CONSTANT, ids=[f"{n}-{sorted(k.items())[-1]}" for n, k in OPTAX_CONSTANT]
)
def test_schedule_with_optax_constant_arguments_is_constant(name, kwargs):
    steps = jnp.arange(12)
    ours = jax.jit(getattr(gradtx, name)(**kwargs))(steps)
    np.testing.assert_array_equal(ours, np.full(12, 0.5, np.float32))
    np.testing.assert_array_equal(ours, [getattr(optax, name)(**kwargs)(int(t)) for t in steps])


def test_warmup_cosine_decay_schedule_with_zero_warmup_matches_optax():
    kwargs = dict(init_value=0.0, peak_value=1.0, warmup_steps=0, decay_steps=10)
    steps = jnp.arange(12)
    ours = gradtx.warmup_cosine_decay_schedule(**kwargs)(steps)
    with jax.numpy_dtype_promotion("standard"):
        theirs = jax.vmap(optax.warmup_cosine_decay_schedule(**kwargs))(steps)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def test_cosine_decay_schedule_with_decay_steps_past_int32_matches_closed_form():
    schedule = jax.jit(gradtx.cosine_decay_schedule(1000.0, decay_steps=int(1e10)))
    np.testing.assert_allclose(
        schedule(int(1e9)), 1000 * (1 + math.cos(math.pi * 0.1)) / 2, rtol=1e-6
    )


X64_CASES = [c for c in CASES if c[0] in OPTAX_NAMES]


@pytest.mark.parametrize("case", X64_CASES, ids=[_case_id(c) for c in X64_CASES])
def test_schedule_under_x64_is_float64_and_matches_optax(case):
    name, kwargs, _, boundaries = case
    with jax.enable_x64(True):
        steps = jnp.asarray(_steps(boundaries))  # int32, as gradtx's and optax's counts
        ours = jax.vmap(getattr(gradtx, name)(**kwargs))(steps)
        # optax computes in float64 from int64 steps (from int32 ones some of its
        # schedules stay float32).
        with jax.numpy_dtype_promotion("standard"):
            theirs = np.asarray(jax.vmap(getattr(optax, name)(**kwargs))(steps.astype(jnp.int64)))
    assert ours.dtype == jnp.float64
    finite = np.isfinite(theirs)
    assert finite[:20].all()
    np.testing.assert_allclose(np.asarray(ours)[finite], theirs[finite], rtol=1e-12, atol=1e-15)


def test_warmup_cosine_decay_schedule_with_zero_peak_decays_to_zero_as_optax():
    kwargs = dict(
        init_value=0.2, peak_value=0.0, end_value=-3.0, warmup_steps=50, decay_steps=100, exponent=2
    )
    steps = jnp.array([0, 10, 50, 75, 100, 120])
    ours = gradtx.warmup_cosine_decay_schedule(**kwargs)(steps)
    with jax.numpy_dtype_promotion("standard"):
        theirs = jax.vmap(optax.warmup_cosine_decay_schedule(**kwargs))(steps)
    np.testing.assert_allclose(ours, [0.2, 0.16, 0.0, 0.0, 0.0, 0.0], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------
# Exact ends: the start value at the first step, the end value at and after the last.

# (first value, second value) pairs and phase lengths n; the values are the
# learning rates of the reports (a warmup from 0 to 1.6e-3) and their reverses.
END_VALUES = [(0.0, 1.6e-3), (1.6e-3, 0.0), (0.1, 3e-4), (3e-4, 0.7), (1.0, 0.1)]
END_LENGTHS = [3, 7, 50, 99, 1000]


def _ends(name, a, b, n):
    """(schedule, start step, start value, end step or None, end value), values in float64.

    The ends are read off the docstrings' formulas, not computed by gradtx.
    """
    c = 0.5 * (a + b)  # a third value, e.g. the end of a warmup-decay
    if name == "constant":
        return gradtx.constant_schedule(a), 0, a, None, None
    if name == "polynomial":
        return gradtx.polynomial_schedule(a, b, 2.0, n, transition_begin=5), 5, a, 5 + n, b
    if name == "linear":
        return gradtx.linear_schedule(a, b, n), 0, a, n, b
    if name == "linear_delayed":
        return gradtx.linear_schedule(a, b, n, transition_begin=3), 3, a, 3 + n, b
    if name == "exponential":
        return gradtx.exponential_decay(a, n, 0.5, transition_begin=2), 2, a, None, None
    if name == "inverse_time":
        return gradtx.inverse_time_decay(a, n, 0.5, transition_begin=2), 2, a, None, None
    if name == "cosine_decay":
        return gradtx.cosine_decay_schedule(a, n, alpha=0.1), 0, a, n, a * 0.1
    if name == "warmup_cosine":
        end = c if b != 0 else 0.0  # a zero peak decays to 0 (optax's rule)
        return gradtx.warmup_cosine_decay_schedule(a, b, n, 2 * n, c), 0, a, 2 * n, end
    if name == "warmup_cosine_no_warmup":
        end = c if b != 0 else 0.0
        return gradtx.warmup_cosine_decay_schedule(a, b, 0, n, c), 0, b, n, end
    if name == "piecewise":
        sched = gradtx.piecewise_constant_schedule(a, {n: 0.3, 2 * n: 0.7})
        return sched, 0, a, 2 * n, a * 0.3 * 0.7
    if name == "onecycle":
        sched = gradtx.cosine_onecycle_schedule(n, b, pct_start=0.3, div_factor=7.0)
        rise = math.floor(0.3 * n)  # no rise (n = 3): the cycle starts at its peak
        return sched, 0, b / 7.0 if rise > 0 else b, n, b / 7.0 / 1e4
    if name == "join":
        pieces = [gradtx.linear_schedule(a, b, n), gradtx.linear_schedule(b, c, n)]
        return gradtx.join_schedules(pieces, [n]), 0, a, 2 * n, c
    if name == "sgdr":
        cycle = dict(init_value=a, peak_value=b, warmup_steps=1, decay_steps=n + 1, end_value=c)
        end = c if b != 0 else 0.0
        return gradtx.sgdr_schedule([cycle, cycle]), 0, a, 2 * (n + 1), end
    if name == "cosine_restarts":
        return gradtx.cosine_restarts_schedule(a, n, t_mul=2.0, alpha=0.1), 0, a, None, None
    if name.startswith("wsd_"):
        sched = gradtx.warmup_stable_decay_schedule(a, b, n, 3, n, c, decay_type=name[4:])
        return sched, 0, a, 2 * n + 3, c
    if name == "inverse_sqrt":
        return gradtx.inverse_sqrt_schedule(b, n, init_value=a), 0, a, None, None
    if name == "inverse_sqrt_no_warmup":
        return gradtx.inverse_sqrt_schedule(b, 0, init_value=a), 0, b, None, None
    if name == "ademamix_alpha":
        return gradtx.ademamix_alpha_schedule(8.0 * b, n), 0, 0.0, n, 8.0 * b
    if name == "ademamix_beta3":
        return gradtx.ademamix_beta3_schedule(0.999, n, b1=0.9), 0, 0.9, n, 0.999
    raise AssertionError(name)


END_SCHEDULES = [
    "constant",
    "polynomial",
    "linear",
    "linear_delayed",
    "exponential",
    "inverse_time",
    "cosine_decay",
    "warmup_cosine",
    "warmup_cosine_no_warmup",
    "piecewise",
    "onecycle",
    "join",
    "sgdr",
    "cosine_restarts",
    "wsd_linear",
    "wsd_cosine",
    "wsd_1-sqrt",
    "inverse_sqrt",
    "inverse_sqrt_no_warmup",
    "ademamix_alpha",
    "ademamix_beta3",
]


@pytest.mark.parametrize("name", END_SCHEDULES)
def test_schedule_is_exactly_its_start_and_end_values_eager_and_jitted(name):
    cases = []  # ((a, b, n), schedule, [(step, expected value)])
    for a, b in END_VALUES:
        for n in END_LENGTHS:
            sched, start, start_value, end, end_value = _ends(name, a, b, n)
            checks = [(start, start_value)]
            if end is not None:
                checks += [(end, end_value), (end + 1, end_value), (end + 10**5, end_value)]
            cases.append(((a, b, n), sched, checks))
    # Jitted: every schedule at its steps in one program (one compile, not 25), each
    # schedule mapped over an int32 vector of its steps.
    steps = [jnp.asarray([t for t, _ in checks], jnp.int32) for _, _, checks in cases]
    jitted = jax.jit(lambda steps: [jax.vmap(s)(ts) for (_, s, _), ts in zip(cases, steps)])
    wrong = []
    for ((a, b, n), sched, checks), values in zip(cases, jitted(steps)):
        for (t, expected), value_jit in zip(checks, values):
            for how, value in (("eager", sched(t)), ("jit", value_jit)):
                if np.asarray(value) != np.float32(expected):
                    wrong.append(f"{how} ({a}, {b}, n={n}) at t={t}: {value} != {expected}")
    assert not wrong, f"{len(wrong)} wrong ends, first: {wrong[:5]}"


def test_linear_warmup_from_zero_is_zero_at_step_zero_under_jit():
    # The reported case: a warmup 0 -> 1.6e-3 over 50 steps gave -3.6e-11 at
    # step 0 under jit (a tiny step uphill), and so did most (peak, steps) pairs.
    # All 105 in one program of the traced step (one compile, not 105): each schedule's
    # arithmetic is its own, as in a program of its own (with the start left unpinned,
    # one program and 105 give the same 98 nonzero values, bit for bit).
    peaks = [1e-4, 3e-4, 5e-4, 8e-4, 1e-3, 1.6e-3, 2e-3, 3e-3, 5e-3, 6e-3, 1e-2, 3e-2, 0.1, 0.3, 1]
    cases = [(peak, steps) for peak in peaks for steps in (10, 50, 100, 300, 1000, 2000, 5000)]
    schedules = [gradtx.linear_schedule(0.0, peak, steps) for peak, steps in cases]
    values = jax.jit(lambda t: jnp.stack([s(t) for s in schedules]))(0)
    nonzero = [(*case, float(v)) for case, v in zip(cases, np.asarray(values)) if v != 0.0]
    assert not nonzero, f"{len(nonzero)} of 105 warmups are nonzero at step 0: {nonzero[:3]}"


@pytest.mark.parametrize(
    "schedule, reached",
    [
        (lambda: gradtx.linear_schedule(-0.1, 0.0, 10), "-0.1"),
        (lambda: gradtx.warmup_cosine_decay_schedule(0.0, -1.0, 10, 100), "-1.0"),
        (lambda: gradtx.polynomial_schedule(1.0, -0.5, 2.0, 10), "-0.5"),
        (lambda: gradtx.cosine_onecycle_schedule(10, -1.0), "-0.04"),  # its start, -1 / 25
        (lambda: gradtx.warmup_stable_decay_schedule(0.0, 1.0, 2, 3, 4, end_value=-0.2), "-0.2"),
        (lambda: gradtx.piecewise_constant_schedule(-1.0, {5: 0.5}), "-1.0"),
        (lambda: gradtx.warmup_constant_schedule(0.0, -1.0, 10), "-1.0"),
        (lambda: gradtx.warmup_exponential_decay_schedule(0.0, -1.0, 10, 10, 0.5), "-1.0"),
        (lambda: gradtx.piecewise_interpolate_schedule("linear", -1.0, {5: 0.5}), "-1.0"),
        (lambda: gradtx.linear_onecycle_schedule(100, -1.0), "-0.04"),
        (
            lambda: gradtx.join_schedules(
                [gradtx.constant_schedule(0.1), gradtx.linear_schedule(0.1, -0.2, 5)], [3]
            ),
            "-0.2",
        ),
        (
            lambda: gradtx.sgdr_schedule(
                [dict(init_value=-1.0, peak_value=1.0, warmup_steps=2, decay_steps=10)]
            ),
            "-1.0",
        ),
    ],
)
def test_gradtx_schedule_that_goes_negative_is_refused_as_a_learning_rate(schedule, reached):
    # adam(-1e-3) is refused; a gradtx schedule knows its values, so one that
    # reaches a negative value is refused when the optimizer is built.
    with pytest.raises(
        ValueError, match=rf"^adam: learning_rate must be >= 0 .* reaches {reached}"
    ):
        gradtx.adam(schedule())
    with pytest.raises(ValueError, match=r"^adamw: weight_decay must be >= 0"):
        gradtx.adamw(1e-3, weight_decay=schedule())


def test_gradtx_schedule_within_range_and_user_functions_are_accepted_as_learning_rates():
    gradtx.adam(gradtx.warmup_cosine_decay_schedule(0.0, 1e-3, 10, 100))
    gradtx.adam(
        gradtx.sgdr_schedule(
            [dict(init_value=0.0, peak_value=1e-3, warmup_steps=2, decay_steps=10)]
        )
    )
    # A function of the user's is evaluated only in the update: the docstring says so.
    gradtx.adam(lambda step: 1e-3)
