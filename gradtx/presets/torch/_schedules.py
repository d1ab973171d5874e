"""PyTorch's learning-rate schedulers as functions of the optimizer step."""

from __future__ import annotations

import math

import jax.numpy as jnp

from ..._checks import check_range
from ..._numerics import is_traced
from ..._schedules import exponential_decay, linear_schedule, piecewise_constant_schedule
from .._common import as_float, named

# ----------------------------------------------------------------------------
# Schedulers: functions of the optimizer step t, PyTorch's closed forms at k
# (gradtx's schedules evaluated at k where one computes the same rule).


def _check_steps_per_epoch(owner, steps_per_epoch):
    if not (isinstance(steps_per_epoch, int) and steps_per_epoch >= 1):
        raise ValueError(
            f"{owner}: steps_per_epoch must be an int >= 1 (optimizer steps per "
            f"scheduler.step() call), got {steps_per_epoch!r}"
        )


def _per_epoch(schedule, steps_per_epoch, name):
    """lr(t) = schedule(k) at the scheduler step k = t // steps_per_epoch."""

    def per_epoch(t):
        return schedule(jnp.asarray(t) // steps_per_epoch)

    return named(per_epoch, name)


def _decay_by(lr, step_size, gamma):
    """lr * gamma^(k // step_size): ``exponential_decay`` in a staircase of step_size."""
    if not is_traced(gamma) and gamma == 0:
        # exponential_decay reads decay_rate = 0 as a constant (optax); PyTorch drops to 0.
        return piecewise_constant_schedule(lr, {step_size: 0.0})
    return exponential_decay(lr, step_size, gamma, staircase=True)


def step_lr(lr, step_size, gamma=0.1, *, steps_per_epoch=1):
    """``torch.optim.lr_scheduler.StepLR``: lr_k = lr * gamma^(k // step_size), k = t // steps_per_epoch.

    Args:
      lr: the optimizer's initial learning rate.
      step_size: scheduler steps between decays, an int >= 1.
      gamma: the decay factor.
      steps_per_epoch: optimizer steps per ``scheduler.step()`` call.

    Returns:
      A schedule ``t -> lr`` of the optimizer step t = 0, 1, 2, ...

    Example:
      >>> import gradtx
      >>> schedule = gradtx.presets.torch.step_lr(1.0, step_size=2, gamma=0.5, steps_per_epoch=3)
      >>> [float(schedule(t)) for t in (0, 5, 6, 12)]
      [1.0, 1.0, 0.5, 0.25]
    """
    owner = "torch.step_lr"
    check_range(owner, "lr", lr, 0)
    if not (isinstance(step_size, int) and step_size >= 1):
        raise ValueError(f"{owner}: step_size must be an int >= 1, got {step_size!r}")
    check_range(owner, "gamma", gamma, 0)
    _check_steps_per_epoch(owner, steps_per_epoch)
    return _per_epoch(_decay_by(lr, step_size, gamma), steps_per_epoch, "step_lr")


def exponential_lr(lr, gamma, *, steps_per_epoch=1):
    """``torch.optim.lr_scheduler.ExponentialLR``: lr_k = lr * gamma^k, k = t // steps_per_epoch.

    Args:
      lr: the optimizer's initial learning rate.
      gamma: the decay factor per scheduler step.
      steps_per_epoch: optimizer steps per ``scheduler.step()`` call.

    Returns:
      A schedule ``t -> lr`` of the optimizer step t = 0, 1, 2, ...

    Example:
      >>> import gradtx
      >>> schedule = gradtx.presets.torch.exponential_lr(1.0, gamma=0.5)
      >>> [float(schedule(t)) for t in (0, 1, 3)]
      [1.0, 0.5, 0.125]
    """
    owner = "torch.exponential_lr"
    check_range(owner, "lr", lr, 0)
    check_range(owner, "gamma", gamma, 0)
    _check_steps_per_epoch(owner, steps_per_epoch)
    return _per_epoch(_decay_by(lr, 1, gamma), steps_per_epoch, "exponential_lr")


def cosine_annealing_lr(lr, T_max, eta_min=0.0, *, steps_per_epoch=1):  # noqa: N803 (torch's name)
    """``torch.optim.lr_scheduler.CosineAnnealingLR``: lr_k = eta_min + (lr - eta_min) (1 + cos(pi k / T_max)) / 2.

    k = t // steps_per_epoch.  Like PyTorch's, the curve is not clamped: past
    T_max it rises again.

    Args:
      lr: the optimizer's initial learning rate.
      T_max: scheduler steps of the half period, > 0.
      eta_min: the smallest learning rate.
      steps_per_epoch: optimizer steps per ``scheduler.step()`` call.

    Returns:
      A schedule ``t -> lr`` of the optimizer step t = 0, 1, 2, ...

    Example:
      >>> import gradtx
      >>> schedule = gradtx.presets.torch.cosine_annealing_lr(lr=1.0, T_max=4, eta_min=0.2)
      >>> [round(float(schedule(t)), 6) for t in (0, 2, 4, 6)]  # rises again past T_max
      [1.0, 0.6, 0.2, 0.6]
    """
    owner = "torch.cosine_annealing_lr"
    check_range(owner, "lr", lr, 0)
    check_range(owner, "T_max", T_max, 0, low_open=True)
    _check_steps_per_epoch(owner, steps_per_epoch)

    # Own formula: PyTorch's curve rises again past T_max; cosine_decay_schedule holds its floor.
    def schedule(t):
        k = as_float(jnp.asarray(t) // steps_per_epoch)
        return eta_min + (lr - eta_min) * (1 + jnp.cos(math.pi * k / T_max)) / 2

    return named(schedule, "cosine_annealing_lr")


def linear_lr(lr, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, *, steps_per_epoch=1):
    """``torch.optim.lr_scheduler.LinearLR`` (warmup): lr_k = lr * (s + (e - s) min(k, total_iters) / total_iters).

    s = start_factor, e = end_factor, k = t // steps_per_epoch.

    Args:
      lr: the optimizer's initial learning rate.
      start_factor: s, in (0, 1].
      end_factor: e, in [0, 1].
      total_iters: scheduler steps of the ramp, an int >= 1.
      steps_per_epoch: optimizer steps per ``scheduler.step()`` call.

    Returns:
      A schedule ``t -> lr`` of the optimizer step t = 0, 1, 2, ...

    Example:
      >>> import gradtx
      >>> schedule = gradtx.presets.torch.linear_lr(1.0, start_factor=0.5, total_iters=2)
      >>> [float(schedule(t)) for t in (0, 1, 2, 9)]
      [0.5, 0.75, 1.0, 1.0]
    """
    owner = "torch.linear_lr"
    check_range(owner, "lr", lr, 0)
    check_range(owner, "start_factor", start_factor, 0, 1, low_open=True)
    check_range(owner, "end_factor", end_factor, 0, 1)
    if not (isinstance(total_iters, int) and total_iters >= 1):
        raise ValueError(f"{owner}: total_iters must be an int >= 1, got {total_iters!r}")
    _check_steps_per_epoch(owner, steps_per_epoch)

    ramp = linear_schedule(lr * start_factor, lr * end_factor, total_iters)
    return _per_epoch(ramp, steps_per_epoch, "linear_lr")


def one_cycle_lr(
    max_lr,
    total_steps=None,
    epochs=None,
    steps_per_epoch=None,
    pct_start=0.3,
    anneal_strategy="cos",
    cycle_momentum=True,
    base_momentum=0.85,
    max_momentum=0.95,
    div_factor=25.0,
    final_div_factor=1e4,
    three_phase=False,
):
    """``torch.optim.lr_scheduler.OneCycleLR``: warm up to max_lr, then anneal far below the start.

    From initial = max_lr / div_factor up to max_lr until step
    pct_start * total_steps - 1, then down to initial / final_div_factor at
    total_steps - 1 (with ``three_phase``, back to initial by
    2 pct_start total_steps - 2 first); each phase interpolates by cosine
    (``anneal_strategy="cos"``) or linearly.  OneCycleLR is stepped after every
    batch, so k = t; PyTorch raises past total_steps, this schedule holds its
    last value.

    PyTorch's default ``cycle_momentum=True`` also rewrites the optimizer's
    momentum (or beta1) every step, which these presets do not model: pass
    ``cycle_momentum=False`` here and to PyTorch.

    Args:
      max_lr: the peak learning rate.
      total_steps: the length of the cycle, or give ``epochs`` and
        ``steps_per_epoch`` (total_steps = epochs * steps_per_epoch).
      pct_start: the fraction of the cycle spent warming up, in [0, 1].
      anneal_strategy: "cos" or "linear".
      cycle_momentum: must be False (see above).
      base_momentum, max_momentum: accepted for signature compatibility.
      div_factor: initial = max_lr / div_factor.
      final_div_factor: the final lr is initial / final_div_factor.
      three_phase: use PyTorch's three-phase cycle.

    Returns:
      A schedule ``t -> lr`` of the optimizer step t = 0, 1, 2, ...

    Example:
      >>> import gradtx
      >>> schedule = gradtx.presets.torch.one_cycle_lr(1.0, total_steps=11, pct_start=0.5,
      ...                                              anneal_strategy="linear", div_factor=10.0,
      ...                                              final_div_factor=1.0, cycle_momentum=False)
      >>> [round(float(schedule(t)), 6) for t in (0, 4, 10)]
      [0.1, 0.9, 0.1]
    """
    owner = "torch.one_cycle_lr"
    if cycle_momentum:
        raise ValueError(
            f"{owner}: cycle_momentum=True (PyTorch's default) also schedules the "
            f"optimizer's momentum, which gradtx's presets keep constant; pass "
            f"cycle_momentum=False here and to torch's OneCycleLR"
        )
    if total_steps is None:
        if epochs is None or steps_per_epoch is None:
            raise ValueError(f"{owner}: give total_steps, or epochs and steps_per_epoch")
        total_steps = epochs * steps_per_epoch
    if not (isinstance(total_steps, int) and total_steps >= 1):
        raise ValueError(f"{owner}: total_steps must be an int >= 1, got {total_steps!r}")
    check_range(owner, "max_lr", max_lr, 0)
    check_range(owner, "pct_start", pct_start, 0, 1)
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(
            f"{owner}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}"
        )
    initial = max_lr / div_factor
    final = initial / final_div_factor
    if three_phase:
        phases = [
            (pct_start * total_steps - 1, initial, max_lr),
            (2 * pct_start * total_steps - 2, max_lr, initial),
            (total_steps - 1, initial, final),
        ]
    else:
        phases = [(pct_start * total_steps - 1, initial, max_lr), (total_steps - 1, max_lr, final)]

    # Own formula: PyTorch's phases end at the fractional steps pct_start * total_steps - 1 and
    # total_steps - 1; cosine_onecycle_schedule ends them one step later, on whole steps.
    def anneal(start, end, pct):
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (jnp.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def schedule(t):
        k = as_float(jnp.minimum(jnp.asarray(t), total_steps))
        starts = [0.0] + [end for end, _, _ in phases[:-1]]
        value = None
        for (end, lo, hi), start in reversed(list(zip(phases, starts))):
            here = anneal(lo, hi, (k - start) / (end - start))
            value = here if value is None else jnp.where(k <= end, here, value)
        return value

    return named(schedule, "one_cycle_lr")
