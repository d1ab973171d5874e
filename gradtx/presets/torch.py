"""PyTorch presets: ``torch.optim`` optimizers and schedulers as gradtx recipes.

Each optimizer here takes the arguments of the ``torch.optim`` class of the
same name, with PyTorch's defaults, and returns an ordinary gradtx optimizer:
a ``chain`` of public transforms whose parameter trajectory equals
PyTorch's to round-off (tests/test_presets_torch.py runs both side by side).
This module does not import torch::

    torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    gradtx.presets.torch.adamw(lr=3e-4, weight_decay=0.1)

Conventions PyTorch applies and the recipes reproduce: ``maximize`` negates
the gradient before anything else (``scale(-1)`` first in the chain);
``weight_decay`` is L2 (added to the gradient, so the second moments see it)
except in ``adamw`` and with ``decoupled_weight_decay=True``, where it is
p <- p - lr * wd * p.  ``foreach``, ``fused``, ``capturable`` and
``differentiable`` change how PyTorch computes, not what, and have no
counterpart.  Parameter groups are not modelled here: give each group its
own preset and combine them with a partitioning combinator.

Schedulers and step counting
----------------------------
A PyTorch scheduler rewrites ``param_group["lr"]`` each time
``scheduler.step()`` is called, usually once per epoch after that epoch's
optimizer steps; the first optimizer step runs with the scheduler's value at
k = 0.  A gradtx learning rate is a function of the optimizer step
t = 0, 1, 2, ...  The scheduler functions below return
``lr(t) = f(t // steps_per_epoch)``, where f is PyTorch's closed form at
scheduler step k and ``steps_per_epoch`` is the number of
``optimizer.step()`` calls between two ``scheduler.step()`` calls (1, the
default, when the scheduler is stepped after every batch, as ``OneCycleLR``
always is).  Pass the result as ``lr``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .._base import GradientTransformation, Preconditioner
from .._checks import (
    check_learning_rate,
    check_range,
    check_state,
    moment_state,
    value_fn_keywords,
)
from .._combine import chain, precondition
from .._momentum import bias_correction, scale_by_momentum, scale_by_nadam_momentum
from .._numerics import compute_dtype, increment, is_traced, new_count
from .._orthogonal import MuonDimensionNumbers, newton_schulz, orthogonalize, scale_by_shape
from .._scaling import scale, scale_by_learning_rate, scale_by_schedule
from .._schedules import exponential_decay, linear_schedule, piecewise_constant_schedule
from .._second_moment import (
    scale_by_adadelta,
    scale_by_centered_rms,
    scale_by_max_rms,
    scale_by_rectified_rms,
    scale_by_rms,
    scale_by_rss,
)
from .._tree import zeros_like_tree
from .._update import apply_updates
from .._weight_decay import add_decayed_weights
from ._common import as_float, named, recipe, value_at

__all__ = [
    "sgd",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "adadelta",
    "nadam",
    "radam",
    "muon",
    "adamax",
    "rprop",
    "asgd",
    "asgd_averaged_params",
    "adafactor",
    "lbfgs",
    "step_lr",
    "exponential_lr",
    "cosine_annealing_lr",
    "linear_lr",
    "one_cycle_lr",
]


# ----------------------------------------------------------------------------
# Pieces shared by the recipes.


def _ascend(maximize):
    """PyTorch's ``maximize``: the gradient is negated before anything else."""
    return scale(-1.0) if maximize else None


def _decay(weight_decay):
    """p * weight_decay added to the update (or None when there is no decay)."""
    return add_decayed_weights(weight_decay) if weight_decay != 0 else None


def _check_common(owner, lr, weight_decay, eps=None):
    check_learning_rate(owner, lr, name="lr")
    check_range(owner, "weight_decay", weight_decay, 0)
    if eps is not None:
        check_range(owner, "eps", eps, 0)


def _check_betas(owner, betas):
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
    check_range(owner, "betas[0]", betas[0], 0, 1, high_open=True)
    check_range(owner, "betas[1]", betas[1], 0, 1, high_open=True)
    return betas


def _undamped_first_step(dampening):
    """1 at the first step, 1 - dampening after: PyTorch starts the buffer at b_1 = g_1."""
    return named(lambda t: jnp.where(t == 0, 1.0, 1.0 - dampening), "undamped_first_step")


# ----------------------------------------------------------------------------
# Optimizers.


def sgd(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *, maximize=False):
    """``torch.optim.SGD``: p_t = p_{t-1} - lr * b_t, with PyTorch's momentum buffer.

    g_t <- -g_t if maximize;  g_t <- g_t + weight_decay * p_{t-1};
    b_1 = g_1,  b_t = momentum * b_{t-1} + (1 - dampening) * g_t;
    the step direction is b_t, or g_t + momentum * b_t with ``nesterov``.

    The undamped first step is ``scale_by_schedule`` weighing the gradient
    1 at t = 0 and 1 - dampening after, in front of heavy-ball momentum.

    Args:
      lr: the learning rate, a number >= 0 or a schedule ``step -> lr``.
      momentum: the momentum factor, in [0, 1) (0: plain SGD).
      dampening: the dampening of the gradient in the buffer, in [0, 1].
      weight_decay: L2 coefficient, >= 0, added to the gradient.
      nesterov: Nesterov momentum (needs momentum > 0 and dampening = 0).
      maximize: ascend the objective instead of descending it.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.sgd(lr=0.1, momentum=0.9, dampening=0.5)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]  # b_1 = g_1: no dampening yet
      Array([ 0.9, -2.1], dtype=float32)
    """
    owner = "torch.sgd"
    _check_common(owner, lr, weight_decay)
    check_range(owner, "momentum", momentum, 0, 1, high_open=True)
    check_range(owner, "dampening", dampening, 0, 1)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(
            f"{owner}: nesterov=True needs momentum > 0 and dampening = 0, "
            f"got momentum={momentum!r}, dampening={dampening!r}"
        )
    hyperparams = {
        "lr": lr,
        "momentum": momentum,
        "dampening": dampening,
        "weight_decay": weight_decay,
        "nesterov": nesterov,
        "maximize": maximize,
    }
    buffer = []
    if momentum != 0:
        if dampening != 0:
            buffer.append(scale_by_schedule(_undamped_first_step(dampening)))
        buffer.append(scale_by_momentum(momentum, nesterov=nesterov))
    return recipe(
        owner,
        hyperparams,
        _ascend(maximize),
        _decay(weight_decay),
        *buffer,
        scale_by_learning_rate(lr),
    )


def adam(
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    *,
    maximize=False,
    decoupled_weight_decay=False,
):
    """``torch.optim.Adam``: p_t = p_{t-1} - lr * m_hat_t / (sqrt(v_hat_t) + eps).

    m_t, v_t are the averages of g_t and g_t^2 with betas = (b1, b2),
    corrected by 1 - b^t; eps is added after the correction (the paper's
    Algorithm 1).  ``weight_decay`` is L2, added to g_t before the moments
    (``decoupled_weight_decay=True`` makes it AdamW's).  With ``amsgrad``
    the running maximum is taken of the raw v_t and then corrected.

    Args:
      lr: the learning rate, a number >= 0 or a schedule.
      betas: (b1, b2), each in [0, 1).
      eps: added to the root, >= 0.
      weight_decay: decay coefficient, >= 0.
      amsgrad: divide by the root of the largest v_t so far.
      maximize: ascend the objective.
      decoupled_weight_decay: p <- p - lr * weight_decay * p instead of L2.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.adam(lr=0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.9], dtype=float32)
    """
    return _adam(
        "torch.adam", lr, betas, eps, weight_decay, amsgrad, maximize, bool(decoupled_weight_decay)
    )


def adamw(
    lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *, maximize=False
):
    """``torch.optim.AdamW``: Adam with decoupled decay, p_t = p_{t-1} (1 - lr wd) - lr * adam_t.

    The decay is multiplied by the learning rate and applied to the
    parameters, not the gradient; PyTorch's default weight_decay is 1e-2.

    Args:
      lr, betas, eps, amsgrad, maximize: as in ``adam``.
      weight_decay: wd, >= 0.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.adamw(lr=0.1, weight_decay=0.5)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]  # 0.1 * (1 + 0.5 * p) off each
      Array([ 0.8500007, -1.8000007], dtype=float32)
    """
    return _adam("torch.adamw", lr, betas, eps, weight_decay, amsgrad, maximize, True)


def _adam(owner, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled):
    _check_common(owner, lr, weight_decay, eps)
    b1, b2 = _check_betas(owner, betas)
    hyperparams = {
        "lr": lr,
        "betas": tuple(betas),
        "eps": eps,
        "weight_decay": weight_decay,
        "amsgrad": amsgrad,
        "maximize": maximize,
    }
    if owner == "torch.adam":
        hyperparams["decoupled_weight_decay"] = decoupled
    if amsgrad:
        rms = scale_by_max_rms(b2, eps, bias_correction=True, max_before_correction=True)
    else:
        rms = scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True)
    return recipe(
        owner,
        hyperparams,
        _ascend(maximize),
        None if decoupled else _decay(weight_decay),
        precondition(chain(scale_by_momentum(b1, ema=True), bias_correction(b1)), by=rms),
        _decay(weight_decay) if decoupled else None,
        scale_by_learning_rate(lr),
    )


def rmsprop(
    lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *, maximize=False
):
    """``torch.optim.RMSprop``: p_t = p_{t-1} - lr * b_t, b_t = momentum * b_{t-1} + g_t / (sqrt(v_t) + eps).

    v_t = alpha * v_{t-1} + (1 - alpha) * g_t^2, eps outside the root; with
    ``centered`` v_t - mean(g)_t^2 under the root.  Without momentum the
    step is g_t / (sqrt(v_t) + eps).  The buffer accumulates before the
    learning rate (Keras accumulates after it).

    Args:
      lr: the learning rate, a number >= 0 or a schedule.
      alpha: the decay of the averages, in [0, 1).
      eps: added to the root, >= 0.
      weight_decay: L2 coefficient, >= 0.
      momentum: the momentum factor, in [0, 1).
      centered: divide by the estimated standard deviation of g.
      maximize: ascend the objective.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.rmsprop(lr=0.01, alpha=0.75, eps=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]  # g / sqrt(0.25 g^2) = 2 sign(g)
      Array([ 0.98, -1.98], dtype=float32)
    """
    owner = "torch.rmsprop"
    _check_common(owner, lr, weight_decay, eps)
    check_range(owner, "alpha", alpha, 0, 1, high_open=True)
    check_range(owner, "momentum", momentum, 0, 1, high_open=True)
    hyperparams = {
        "lr": lr,
        "alpha": alpha,
        "eps": eps,
        "weight_decay": weight_decay,
        "momentum": momentum,
        "centered": centered,
        "maximize": maximize,
    }
    rms = scale_by_centered_rms if centered else scale_by_rms
    return recipe(
        owner,
        hyperparams,
        _ascend(maximize),
        _decay(weight_decay),
        rms(alpha, eps, eps_in_sqrt=False),
        scale_by_momentum(momentum) if momentum > 0 else None,
        scale_by_learning_rate(lr),
    )


def adagrad(
    lr=1e-2,
    lr_decay=0.0,
    weight_decay=0.0,
    initial_accumulator_value=0.0,
    eps=1e-10,
    *,
    maximize=False,
):
    """``torch.optim.Adagrad``: p_t = p_{t-1} - lr / (1 + (t - 1) lr_decay) * g_t / (sqrt(s_t) + eps).

    s_t = s_{t-1} + g_t^2 from s_0 = initial_accumulator_value (0), eps
    (1e-10) outside the root; optax and Keras start from 0.1 and put eps
    under it.  ``lr_decay`` is a learning-rate schedule,
    t -> lr(t) / (1 + t * lr_decay) with t = 0 at the first step.

    Args:
      lr: the learning rate, a number >= 0 or a schedule.
      lr_decay: the inverse-time decay of the learning rate, >= 0.
      weight_decay: L2 coefficient, >= 0.
      initial_accumulator_value: s_0, >= 0.
      eps: added to the root, >= 0.
      maximize: ascend the objective.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.adagrad(lr=0.1, eps=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([2.0, -4.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.9], dtype=float32)
    """
    owner = "torch.adagrad"
    _check_common(owner, lr, weight_decay, eps)
    check_range(owner, "lr_decay", lr_decay, 0)
    check_range(owner, "initial_accumulator_value", initial_accumulator_value, 0)
    hyperparams = {
        "lr": lr,
        "lr_decay": lr_decay,
        "weight_decay": weight_decay,
        "initial_accumulator_value": initial_accumulator_value,
        "eps": eps,
        "maximize": maximize,
    }
    if lr_decay != 0:
        base = lr
        lr = named(lambda t: value_at(base, t) / (1 + as_float(t) * lr_decay), "adagrad_lr_decay")
    return recipe(
        owner,
        hyperparams,
        _ascend(maximize),
        _decay(weight_decay),
        scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=False),
        scale_by_learning_rate(lr),
    )


def adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, *, maximize=False):
    """``torch.optim.Adadelta``: p_t = p_{t-1} - lr * sqrt(E[x^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) * g_t.

    PyTorch's defaults are Zeiler's (lr=1.0, rho=0.9, eps=1e-6); Keras's are
    lr=0.001, rho=0.95, eps=1e-7.

    Args:
      lr: the learning rate, a number >= 0 or a schedule.
      rho: the decay of both averages, in [0, 1).
      eps: under both roots, > 0.
      weight_decay: L2 coefficient, >= 0.
      maximize: ascend the objective.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.adadelta(rho=0.0, eps=1.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([0.75, -0.75])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]  # sqrt(1) / sqrt(0.75^2 + 1) * 0.75 = 0.6
      Array([ 0.39999998, -1.4       ], dtype=float32)
    """
    owner = "torch.adadelta"
    _check_common(owner, lr, weight_decay)
    check_range(owner, "rho", rho, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0, low_open=True)
    hyperparams = {
        "lr": lr,
        "rho": rho,
        "eps": eps,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return recipe(
        owner,
        hyperparams,
        _ascend(maximize),
        _decay(weight_decay),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(lr),
    )


def nadam(
    lr=2e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    momentum_decay=4e-3,
    decoupled_weight_decay=False,
    *,
    maximize=False,
):
    """``torch.optim.NAdam``: Adam with Nesterov momentum and a warming momentum schedule.

    mu_t = b1 (1 - 0.5 * 0.96^(t * momentum_decay)), B_t = mu_1 ... mu_t,
    p_t = p_{t-1} - lr * ((1 - mu_t) / (1 - B_t) g_t + mu_{t+1} / (1 - B_{t+1}) m_t)
    / (sqrt(v_hat_t) + eps), m_t and v_t as in Adam (see
    ``gradtx.scale_by_nadam_momentum``).  ``weight_decay`` is L2 unless
    ``decoupled_weight_decay``.

    Args:
      lr: the learning rate, a number >= 0 or a schedule.
      betas: (b1, b2), each in [0, 1).
      eps: added to the root, >= 0.
      weight_decay: decay coefficient, >= 0.
      momentum_decay: psi in the momentum schedule, >= 0.
      decoupled_weight_decay: p <- p - lr * weight_decay * p instead of L2.
      maximize: ascend the objective.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.nadam(lr=0.1, momentum_decay=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]  # mu_t = 0.45: 0.1 * (1 + 0.1 * 0.45 / (1 - 0.45^2))
      Array([ 0.89435804, -1.894358  ], dtype=float32)
    """
    owner = "torch.nadam"
    _check_common(owner, lr, weight_decay, eps)
    b1, b2 = _check_betas(owner, betas)
    check_range(owner, "momentum_decay", momentum_decay, 0)
    hyperparams = {
        "lr": lr,
        "betas": tuple(betas),
        "eps": eps,
        "weight_decay": weight_decay,
        "momentum_decay": momentum_decay,
        "decoupled_weight_decay": decoupled_weight_decay,
        "maximize": maximize,
    }
    return recipe(
        owner,
        hyperparams,
        _ascend(maximize),
        None if decoupled_weight_decay else _decay(weight_decay),
        precondition(
            scale_by_nadam_momentum(b1, momentum_decay),
            by=scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
        ),
        _decay(weight_decay) if decoupled_weight_decay else None,
        scale_by_learning_rate(lr),
    )


def radam(
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    decoupled_weight_decay=False,
    *,
    maximize=False,
):
    """``torch.optim.RAdam``: Adam whose adaptive step is rectified, and skipped while rho_t <= 5.

    p_t = p_{t-1} - lr * m_hat_t * r_t sqrt(1 - b2^t) / (sqrt(v_t) + eps) once
    rho_t > 5, and p_{t-1} - lr * m_hat_t before (see
    ``gradtx.scale_by_rectified_rms``); eps is added to the root of the
    uncorrected v_t.  ``weight_decay`` is L2 unless ``decoupled_weight_decay``.

    Args:
      lr: the learning rate, a number >= 0 or a schedule.
      betas: (b1, b2), each in [0, 1).
      eps: added to the root, >= 0.
      weight_decay: decay coefficient, >= 0.
      decoupled_weight_decay: p <- p - lr * weight_decay * p instead of L2.
      maximize: ascend the objective.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.radam(lr=0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]  # first steps: lr * m_hat = lr * g
      Array([ 0.70000005, -1.95      ], dtype=float32)
    """
    owner = "torch.radam"
    _check_common(owner, lr, weight_decay, eps)
    b1, b2 = _check_betas(owner, betas)
    hyperparams = {
        "lr": lr,
        "betas": tuple(betas),
        "eps": eps,
        "weight_decay": weight_decay,
        "decoupled_weight_decay": decoupled_weight_decay,
        "maximize": maximize,
    }
    return recipe(
        owner,
        hyperparams,
        _ascend(maximize),
        None if decoupled_weight_decay else _decay(weight_decay),
        precondition(
            chain(scale_by_momentum(b1, ema=True), bias_correction(b1)),
            by=scale_by_rectified_rms(b2, eps, threshold=5.0),
        ),
        _decay(weight_decay) if decoupled_weight_decay else None,
        scale_by_learning_rate(lr),
    )


def muon(
    lr=1e-3,
    weight_decay=0.1,
    momentum=0.95,
    nesterov=True,
    ns_coefficients=(3.4445, -4.7750, 2.0315),
    eps=1e-7,
    ns_steps=5,
    adjust_lr_fn=None,
):
    """``torch.optim.Muon``: p_t = p_{t-1} - lr * (s * NS_bf16(d_t) + weight_decay * p_{t-1}).

    b_t = momentum * b_{t-1} + (1 - momentum) * g_t (PyTorch's ``lerp``),
    d_t = momentum * b_t + (1 - momentum) * g_t with ``nesterov`` (else b_t),
    NS_bf16 five Newton-Schulz steps in bfloat16 after dividing by
    max(||d_t||_F, eps) (``newton_schulz(..., eps_clamp=True,
    dtype=jnp.bfloat16)``), and s = sqrt(max(1, rows / cols)) for a weight
    of PyTorch's (out, in) layout (``adjust_lr_fn`` None or "original"), or
    0.2 * sqrt(max(rows, cols)) ("match_rms_adamw").  Weight decay is
    decoupled and not shape-scaled.  Like PyTorch's, it takes 2-D leaves
    only (``orthogonalize`` raises on others): give the other parameters
    their own optimizer (``partition``).

    The bfloat16 iteration rounds each line once, as PyTorch's CPU GEMMs do;
    an input that differs from PyTorch's in its last float32 bit can round
    to a neighbouring bfloat16, so the two agree step for step to bfloat16's
    resolution: the tests allow 2% of the largest update entry per step
    (bfloat16 carries 8 bits, 0.4% per rounding, and five Newton-Schulz
    steps compound a few roundings).

    Args:
      lr: the learning rate, a number >= 0 or a schedule.
      weight_decay: decoupled decay coefficient, >= 0.
      momentum: in [0, 1).
      nesterov: use the look-ahead d_t.
      ns_coefficients: (a, b, c) of the quintic.
      eps: the norm's lower bound.
      ns_steps: the number of Newton-Schulz steps.
      adjust_lr_fn: None, "original" or "match_rms_adamw".

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.muon(lr=0.02, weight_decay=0.0)
      >>> params = {"w": jnp.zeros((2, 2))}
      >>> u, _ = opt.update({"w": jnp.eye(2)}, opt.init(params), params)
      >>> u["w"].dtype, bool(jnp.all(jnp.abs(jnp.diag(u["w"]) + 0.02 * 0.85) < 0.02 * 0.3))
      (dtype('float32'), True)
    """
    owner = "torch.muon"
    _check_common(owner, lr, weight_decay)
    check_range(owner, "momentum", momentum, 0, 1, high_open=True)
    if adjust_lr_fn not in (None, "original", "match_rms_adamw"):
        raise ValueError(
            f"{owner}: adjust_lr_fn must be None, 'original' or 'match_rms_adamw', "
            f"got {adjust_lr_fn!r}"
        )
    out_in = MuonDimensionNumbers(reduction_axis=1, output_axis=0)
    hyperparams = {
        "lr": lr,
        "weight_decay": weight_decay,
        "momentum": momentum,
        "nesterov": nesterov,
        "ns_coefficients": tuple(ns_coefficients),
        "eps": eps,
        "ns_steps": ns_steps,
        "adjust_lr_fn": adjust_lr_fn,
    }
    return recipe(
        owner,
        hyperparams,
        scale_by_momentum(momentum, ema=True, nesterov=nesterov),
        orthogonalize(
            newton_schulz(
                tuple(ns_coefficients), ns_steps, eps=eps, eps_clamp=True, dtype=jnp.bfloat16
            )
        ),
        scale_by_shape(out_in, 0.2 if adjust_lr_fn == "match_rms_adamw" else None),
        _decay(weight_decay),
        scale_by_learning_rate(lr),
    )


# ----------------------------------------------------------------------------
# Adamax, Rprop, ASGD and Adafactor: the pieces PyTorch's math needs that no
# gradtx transform computes in PyTorch's way, then the recipes.


class _InfNormState(NamedTuple):
    """u: the running infinity norm u_t."""

    u: Any


def _torch_inf_norm(b2, eps):
    """Adamax's denominator as PyTorch computes it: u_t = max(b2 * u_{t-1}, |g_t| + eps).

    (eps inside the maximum; optax's scale_by_adamax adds it after.)
    """
    owner = "torch.adamax"

    def init(params):
        return _InfNormState(u=zeros_like_tree(params, real=True))

    def precondition_fn(direction, gradient, state, params):
        moment_state(owner, state, _InfNormState, gradient, "u")

        def leaf(d, g, u):
            cd = compute_dtype(d.dtype, g.dtype, u.dtype)
            new = jnp.maximum(b2 * u.astype(cd), jnp.abs(g.astype(cd)) + eps)
            return (d.astype(cd) / new).astype(d.dtype), new.astype(u.dtype)

        new = jax.tree.map(leaf, direction, gradient, state.u)
        out = jax.tree.map(lambda _, n: n[0], direction, new)
        return out, _InfNormState(u=jax.tree.map(lambda _, n: n[1], direction, new))

    return Preconditioner(
        init, precondition_fn, name="torch_inf_norm", hyperparams={"b2": b2, "eps": eps}
    )


class _RpropState(NamedTuple):
    """prev: the last sign-masked gradient; step_size: the per-entry step sizes."""

    prev: Any
    step_size: Any


def _torch_rprop(lr, etas, step_sizes):
    """Rprop's step, sign(g_t) * s_t, in the gradient's direction.

    s_t = clip(s_{t-1} * f_t, step_min, step_max), s_0 = lr, with f_t = eta_plus
    where g_t g_{t-1} > 0, eta_minus where < 0 (and g_t is then taken as 0),
    1 where = 0.
    """
    owner = "torch.rprop"
    eta_minus, eta_plus = etas
    low, high = step_sizes

    def init(params):
        return _RpropState(
            prev=zeros_like_tree(params),
            step_size=jax.tree.map(lambda p: jnp.full_like(p, lr), params),
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, _RpropState, updates, "prev", "step_size")

        def leaf(g, prev, size):
            cd = compute_dtype(g.dtype, size.dtype)
            g = g.astype(cd)
            agree = jnp.sign(g * prev.astype(cd))
            factor = jnp.where(agree > 0, eta_plus, jnp.where(agree < 0, eta_minus, 1.0))
            size = jnp.clip(size.astype(cd) * factor.astype(cd), low, high)
            g = jnp.where(agree < 0, 0.0, g).astype(cd)
            return jnp.sign(g) * size, g, size

        new = jax.tree.map(leaf, updates, state.prev, state.step_size)

        def pick(i, like):
            return jax.tree.map(lambda _, n, o: n[i].astype(o.dtype), updates, new, like)

        return pick(0, updates), _RpropState(
            prev=pick(1, state.prev), step_size=pick(2, state.step_size)
        )

    return GradientTransformation(
        init,
        update,
        name="torch_rprop",
        hyperparams={"lr": lr, "etas": etas, "step_sizes": step_sizes},
    )


def _asgd_rate(lr, lambd, alpha):
    """eta_t = lr / (1 + lambd * lr * t)^alpha at step t = 0, 1, ... (eta_0 = lr)."""
    return named(lambda t: lr / (1 + lambd * lr * as_float(t)) ** alpha, "asgd_eta")


class _AsgdAverageState(NamedTuple):
    """count: the updates so far, t; ax: the average of the iterates (PyTorch's name)."""

    count: jax.Array
    ax: Any


def _torch_asgd_average(t0):
    """ASGD's average of the iterates p_t = p_{t-1} + u_t, kept in the state (see ``asgd``).

    Passes the update through unchanged; it stands last in the recipe, so that
    u_t is the final update.
    """
    owner = "torch.asgd"

    def init(params):
        return _AsgdAverageState(
            count=new_count(),
            ax=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), compute_dtype(p.dtype)), params),
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, _AsgdAverageState, updates, "ax")
        if params is None:
            raise ValueError(f"{owner}: update needs params (call update(updates, state, params))")
        count = increment(state.count)
        # mu_1 = 1 (PyTorch's initial mu); mu_t = 1 / max(1, t - 1 - t0) after.
        mu = jnp.where(count == 1, 1.0, 1.0 / jnp.maximum(1.0, as_float(count) - 1 - t0))

        def leaf(u, p, ax):
            cd = ax.dtype
            new_p = (p.astype(cd) + u.astype(cd)).astype(p.dtype).astype(cd)
            return jnp.where(mu == 1, new_p, ax + (new_p - ax) * mu.astype(cd))

        ax = jax.tree.map(leaf, updates, params, state.ax)
        return updates, _AsgdAverageState(count=count, ax=ax)

    return GradientTransformation(init, update, name="torch_asgd_average", hyperparams={"t0": t0})


def _find_state(state, state_type):
    """The first ``state_type`` inside ``state`` (chains and wrappers hold tuples of states)."""
    if isinstance(state, state_type):
        return state
    if isinstance(state, (tuple, list)):
        for part in state:
            found = _find_state(part, state_type)
            if found is not None:
                return found
    return None


class _AdafactorState(NamedTuple):
    """count: t; row, col: the factored second moments of leaves with ndim >= 2 (zeros of
    shape () otherwise); variance: the second moment of leaves with ndim < 2 (zeros of
    shape () otherwise)."""

    count: jax.Array
    row: Any
    col: Any
    variance: Any


def _torch_adafactor(lr, beta2_decay, eps, d):
    """PyTorch's Adafactor step, in the gradient's direction (see ``adafactor``)."""
    owner = "torch.adafactor"
    eps1, eps2 = eps

    def factored(p):
        return jnp.ndim(p) >= 2

    def init(params):
        def row(p):
            shape = jnp.shape(p)[:-1] + (1,)
            return jnp.zeros(shape, jnp.result_type(p)) if factored(p) else jnp.zeros((), p.dtype)

        def col(p):
            shape = jnp.shape(p)[:-2] + (1, jnp.shape(p)[-1]) if factored(p) else ()
            return jnp.zeros(shape, jnp.result_type(p))

        def variance(p):
            return jnp.zeros((), p.dtype) if factored(p) else jnp.zeros_like(p)

        return _AdafactorState(
            count=new_count(),
            row=jax.tree.map(row, params),
            col=jax.tree.map(col, params),
            variance=jax.tree.map(variance, params),
        )

    def update(updates, state, params=None, **extra):
        check_state(owner, state, _AdafactorState)
        if params is None:
            raise ValueError(f"{owner}: update needs params (call update(updates, state, params))")
        count = increment(state.count)

        def leaf(g, p, row, col, v):
            cd = compute_dtype(g.dtype, p.dtype)
            g, p = g.astype(cd), p.astype(cd)
            tiny = jnp.finfo(p.dtype).eps if eps1 is None else eps1
            t = count.astype(cd)
            weight = t**beta2_decay
            rho = jnp.minimum(lr, 1 / jnp.sqrt(t))
            size = max(p.size, 1) ** 0.5
            alpha = jnp.maximum(eps2, jnp.sqrt(jnp.sum(p * p)) / size) * rho
            if factored(p):
                row = row.astype(cd) + weight * (
                    jnp.mean(g * g, axis=-1, keepdims=True) - row.astype(cd)
                )
                col = col.astype(cd) + weight * (
                    jnp.mean(g * g, axis=-2, keepdims=True) - col.astype(cd)
                )
                var = row * col / jnp.maximum(jnp.mean(row, axis=-2, keepdims=True), tiny)
            else:
                v = v.astype(cd) + weight * (g * g - v.astype(cd))
                var = v
            u = g / jnp.sqrt(jnp.maximum(var, tiny * tiny))
            denom = jnp.maximum(1.0, jnp.sqrt(jnp.sum(u * u)) / (size * d))
            return alpha / denom * u, row, col, v

        new = jax.tree.map(leaf, updates, params, state.row, state.col, state.variance)

        def pick(i, like):
            return jax.tree.map(lambda _, n, o: n[i].astype(o.dtype), updates, new, like)

        return pick(0, updates), _AdafactorState(
            count=count,
            row=pick(1, state.row),
            col=pick(2, state.col),
            variance=pick(3, state.variance),
        )

    return GradientTransformation(
        init,
        update,
        name="torch_adafactor",
        hyperparams={"lr": lr, "beta2_decay": beta2_decay, "eps": eps, "d": d},
    )


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """PyTorch's ``_cubic_interpolate``: the minimiser of the cubic through (x1, f1, slope g1)
    and (x2, f2, slope g2), clamped to ``bounds`` (default [min(x1, x2), max(x1, x2)]); the
    middle of the bounds where the cubic has no minimiser."""
    if bounds is None:
        low, high = jnp.where(x1 <= x2, x1, x2), jnp.where(x1 <= x2, x2, x1)
    else:
        low, high = bounds
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    d2 = jnp.sqrt(jnp.where(d2_square >= 0, d2_square, 0.0))
    from_x2 = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    from_x1 = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    min_pos = jnp.where(x1 <= x2, from_x2, from_x1)
    return jnp.where(
        d2_square >= 0, jnp.minimum(jnp.maximum(min_pos, low), high), (low + high) / 2.0
    )


class _Bracketing(NamedTuple):
    """The first phase's carry: the last trial (t, f, g, gtd), the one before (prev_*)."""

    ls_iter: Any
    t: Any
    f: Any
    g: Any
    gtd: Any
    t_prev: Any
    f_prev: Any
    g_prev: Any
    gtd_prev: Any
    evals: Any


class _Zoom(NamedTuple):
    """The second phase's carry: the bracket's two ends (step, value, gradient, slope each),
    which end is low, and whether the Wolfe conditions hold at the low end."""

    ls_iter: Any
    bracket: Any
    bracket_f: Any
    bracket_g: Any
    bracket_gtd: Any
    low: Any
    done: Any
    insuf_progress: Any
    evals: Any


def _strong_wolfe(obj, t, d, f, g, gtd, c1, c2, tolerance_change, max_ls):
    """PyTorch's ``_strong_wolfe`` line search along d from f, g (slope gtd < 0), first trial t.

    ``obj(t) -> (f(x + t d), grad f(x + t d))`` on the flat vector.  Returns
    (f, g, t, evaluations) at the accepted step, decision for decision as
    torch/optim/lbfgs.py: grow t by cubic interpolation inside
    [t + 0.01 (t - t_prev), 10 t] until the Armijo condition
    f(t) <= f + c1 t gtd fails, f stops decreasing, the slope turns
    non-negative (a bracket) or |slope| <= -c2 gtd (done); then shrink the
    bracket by cubic steps kept 10% of its width from its ends, until the
    strong Wolfe conditions hold, the bracket is narrower than
    tolerance_change / max|d|, or max_ls evaluations after the first are spent.
    """
    d_norm = jnp.max(jnp.abs(d))

    def sufficient(t, f_new):
        return f_new > f + c1 * t * gtd

    def bracket_stop(s):
        """0: keep bracketing; 1: bracket [t_prev, t] found; 2: t meets the Wolfe conditions."""
        high = sufficient(s.t, s.f) | ((s.ls_iter > 1) & (s.f >= s.f_prev))
        wolfe = jnp.abs(s.gtd) <= -c2 * gtd
        return jnp.where(high, 1, jnp.where(wolfe, 2, jnp.where(s.gtd >= 0, 1, 0)))

    def bracket_body(s):
        min_step = s.t + 0.01 * (s.t - s.t_prev)
        max_step = s.t * 10
        t = _cubic_interpolate(
            s.t_prev, s.f_prev, s.gtd_prev, s.t, s.f, s.gtd, bounds=(min_step, max_step)
        )
        f_new, g_new = obj(t)
        return _Bracketing(
            ls_iter=s.ls_iter + 1,
            t=t,
            f=f_new,
            g=g_new,
            gtd=jnp.dot(g_new, d),
            t_prev=s.t,
            f_prev=s.f,
            g_prev=s.g,
            gtd_prev=s.gtd,
            evals=s.evals + 1,
        )

    f_new, g_new = obj(t)
    zero = jnp.zeros_like(t)
    one = jnp.ones((), jnp.int32)
    first = _Bracketing(0 * one, t, f_new, g_new, jnp.dot(g_new, d), zero, f, g, gtd, one)
    s = jax.lax.while_loop(
        lambda s: (s.ls_iter < max_ls) & (bracket_stop(s) == 0), bracket_body, first
    )
    # Out of evaluations: the bracket is [0, t]; else what the last check found.
    exhausted = s.ls_iter >= max_ls
    stop = bracket_stop(s)
    start = jnp.stack([jnp.where(exhausted, zero, s.t_prev), s.t])
    start_f = jnp.stack([jnp.where(exhausted, f, s.f_prev), s.f])
    start_g = jnp.stack([jnp.where(exhausted, g, s.g_prev), s.g])
    start_gtd = jnp.stack([jnp.where(exhausted, gtd, s.gtd_prev), s.gtd])
    done = ~exhausted & (stop == 2)
    # Done: the bracket is the single point t (both ends).
    start, start_f, start_g, start_gtd = (
        jnp.where(done, x[1], x) for x in (start, start_f, start_g, start_gtd)
    )
    low = jnp.where(start_f[0] <= start_f[1], 0, 1)

    def zoom_continues(z):
        narrow = jnp.abs(z.bracket[1] - z.bracket[0]) * d_norm < tolerance_change
        return ~z.done & (z.ls_iter < max_ls) & ~narrow

    def zoom_body(z):
        b, bf, bg, bgtd = z.bracket, z.bracket_f, z.bracket_g, z.bracket_gtd
        t = _cubic_interpolate(b[0], bf[0], bgtd[0], b[1], bf[1], bgtd[1])
        b_max, b_min = jnp.maximum(b[0], b[1]), jnp.minimum(b[0], b[1])
        eps = 0.1 * (b_max - b_min)
        near_end = jnp.minimum(b_max - t, t - b_min) < eps
        move = near_end & (z.insuf_progress | (t >= b_max) | (t <= b_min))
        moved = jnp.where(jnp.abs(t - b_max) < jnp.abs(t - b_min), b_max - eps, b_min + eps)
        t = jnp.where(move, moved, t)
        insuf_progress = near_end & ~move
        f_new, g_new = obj(t)
        gtd_new = jnp.dot(g_new, d)
        low, high = z.low, 1 - z.low
        to_high = sufficient(t, f_new) | (f_new >= bf[low])
        wolfe = ~to_high & (jnp.abs(gtd_new) <= -c2 * gtd)
        high_to_low = ~to_high & ~wolfe & (gtd_new * (b[high] - b[low]) >= 0)
        # Armijo fails, or no lower than the low end: t replaces the high end.
        # Else t becomes the low end (the old low the high end, if the slope says so).
        new = (t, f_new, g_new, gtd_new)
        ends = []
        for arr, value in zip((b, bf, bg, bgtd), new):
            old_high = jnp.where(high_to_low, arr[low], arr[high])
            ends.append(
                jnp.where(
                    to_high,
                    arr.at[high].set(value),
                    arr.at[high].set(old_high).at[low].set(value),
                )
            )
        b, bf, bg, bgtd = ends
        low = jnp.where(to_high, jnp.where(bf[0] <= bf[1], 0, 1), z.low)
        return _Zoom(
            ls_iter=z.ls_iter + 1,
            bracket=b,
            bracket_f=bf,
            bracket_g=bg,
            bracket_gtd=bgtd,
            low=low,
            done=wolfe,
            insuf_progress=insuf_progress,
            evals=z.evals + 1,
        )

    z = jax.lax.while_loop(
        zoom_continues,
        zoom_body,
        _Zoom(
            s.ls_iter, start, start_f, start_g, start_gtd, low, done, jnp.asarray(False), s.evals
        ),
    )
    return z.bracket_f[z.low], z.bracket_g[z.low], z.bracket[z.low], z.evals


class _LbfgsState(NamedTuple):
    """n_iter: iterations so far; d: the last direction; t: the last step size; dirs, stps:
    the last history_size gradient and step differences y, s (oldest first, zeros where
    unused); ro: 1 / <y, s> (0 where unused); H_diag: <y, s> / <y, y> of the newest pair;
    prev_grad: the last gradient (all flat over the leaves); func_evals: the loss evaluations
    PyTorch would have made, one per update and those of the line search."""

    n_iter: jax.Array
    d: jax.Array
    t: jax.Array
    dirs: jax.Array
    stps: jax.Array
    ro: jax.Array
    H_diag: jax.Array  # noqa: N815 (PyTorch's name)
    prev_grad: jax.Array
    func_evals: jax.Array


def _torch_lbfgs(lr, tolerance_grad, tolerance_change, history_size, max_ls=None):
    """One iteration of PyTorch's L-BFGS: the step t * d, with t from PyTorch's strong-Wolfe
    line search of at most 1 + max_ls evaluations unless max_ls is None (see ``lbfgs``)."""
    owner = "torch.lbfgs"

    def init(params):
        flat, _ = ravel_pytree(params)
        n, dtype = flat.size, compute_dtype(flat.dtype)
        zeros = jnp.zeros((history_size, n), dtype)
        return _LbfgsState(
            n_iter=new_count(),
            d=jnp.zeros(n, dtype),
            t=jnp.zeros((), dtype),
            dirs=zeros,
            stps=zeros,
            ro=jnp.zeros(history_size, dtype),
            H_diag=jnp.ones((), dtype),
            prev_grad=jnp.zeros(n, dtype),
            func_evals=new_count(),
        )

    def line_search_inputs(params, value, value_fn, extra):
        """Check the line search's keywords; (t, d) -> (f, grad f) at params + t d, flat."""
        if params is None or value is None or value_fn is None:
            raise ValueError(
                f"{owner}: line_search_fn='strong_wolfe' needs params, value= (the loss "
                f"at params) and value_fn= (params -> loss): call "
                f"update(grads, state, params, value=loss, value_fn=loss_fn)"
            )
        fn_kwargs = value_fn_keywords(owner, value_fn, extra)
        value_and_grad = jax.value_and_grad(value_fn)
        _, unravel = ravel_pytree(params)

        def on_line(t, d, real):
            step = jax.tree.map(lambda u, p: u.astype(p.dtype), unravel(t * d), params)
            f, g = value_and_grad(apply_updates(params, step), **fn_kwargs)
            return jnp.asarray(f).astype(real), ravel_pytree(g)[0].astype(real)

        return on_line

    def update(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra):
        check_state(owner, state, _LbfgsState)
        if max_ls is not None:
            # grad= (optax's convention) is the gradient given as updates.
            on_line = line_search_inputs(params, value, value_fn, extra)
        flat, unravel = ravel_pytree(updates)
        g = flat.astype(state.d.dtype)
        first = state.n_iter == 0
        # The curvature pair of the last step joins the history if <y, s> > 1e-10.
        y, s = g - state.prev_grad, state.d * state.t
        ys = jnp.dot(y, s)
        keep = (~first) & (ys > 1e-10)
        dirs = jnp.where(keep, jnp.roll(state.dirs, -1, axis=0).at[-1].set(y), state.dirs)
        stps = jnp.where(keep, jnp.roll(state.stps, -1, axis=0).at[-1].set(s), state.stps)
        ro = jnp.where(
            keep, jnp.roll(state.ro, -1).at[-1].set(1 / jnp.where(keep, ys, 1.0)), state.ro
        )
        h_diag = jnp.where(keep, ys / jnp.dot(y, y), state.H_diag)
        h_diag = jnp.where(first, 1.0, h_diag)

        # The two-loop recursion, newest pair first; unused pairs have ro = 0.
        def newest_first(k, carry):
            q, al = carry
            i = history_size - 1 - k
            a = jnp.dot(stps[i], q) * ro[i]
            return q - a * dirs[i], al.at[i].set(a)

        def oldest_first(i, r):
            be = jnp.dot(dirs[i], r) * ro[i]
            return r + (al[i] - be) * stps[i]

        q, al = jax.lax.fori_loop(0, history_size, newest_first, (-g, jnp.zeros_like(ro)))
        r = jax.lax.fori_loop(0, history_size, oldest_first, q * h_diag)
        d = jnp.where(first, -g, r)
        t = jnp.where(first, jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))) * lr, lr)
        gtd = jnp.dot(g, d)
        moves = gtd <= -tolerance_change
        # A gradient below tolerance_grad ends PyTorch's step before anything changes.
        done = jnp.max(jnp.abs(g)) <= tolerance_grad
        evals = jnp.ones((), jnp.int32)  # the loss at params, PyTorch's closure() call
        if max_ls is not None:
            real = g.dtype
            f = jnp.asarray(value).astype(real)

            def search(t):
                _, _, t, n = _strong_wolfe(
                    lambda t: on_line(t, d, real),
                    t,
                    d,
                    f,
                    g,
                    gtd,
                    c1=1e-4,
                    c2=0.9,
                    tolerance_change=tolerance_change,
                    max_ls=max_ls,
                )
                return t.astype(real), n

            t, n = jax.lax.cond(done | ~moves, lambda t: (t, 0 * evals), search, t)
            evals = evals + n
        new = _LbfgsState(
            n_iter=increment(state.n_iter),
            d=d,
            t=t,
            dirs=dirs,
            stps=stps,
            ro=ro,
            H_diag=h_diag,
            prev_grad=g,
            func_evals=state.func_evals,
        )
        state = jax.tree.map(lambda old, nw: jnp.where(done, old, nw), state, new)
        state = state._replace(func_evals=state.func_evals + evals)
        step = jnp.where(done | ~moves, 0.0, t * d)
        out = unravel(step.astype(flat.dtype))
        return jax.tree.map(lambda o, u: o.astype(u.dtype), out, updates), state

    return GradientTransformation(
        init,
        update,
        name="torch_lbfgs",
        hyperparams={
            "lr": lr,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "history_size": history_size,
            "max_ls": max_ls,
        },
    )


def lbfgs(
    lr=1,
    max_iter=20,
    max_eval=None,
    tolerance_grad=1e-7,
    tolerance_change=1e-9,
    history_size=100,
    line_search_fn=None,
):
    """``torch.optim.LBFGS``, one iteration per update: x_{k+1} = x_k + t_k d_k.

    d_k = -H_k g_k from the two-loop recursion over the last ``history_size``
    pairs (s, y) with <y, s> > 1e-10, H_0 = <y, s> / <y, y> of the newest
    pair.  The first trial step is t_0 = min(1, 1 / ||g_0||_1) * lr, then
    t_k = lr.  No step is taken where <g_k, d_k> > -tolerance_change, and
    nothing changes where max |g_k| <= tolerance_grad, as in PyTorch.

    With ``line_search_fn=None`` the step is the trial step.  With
    ``"strong_wolfe"`` it is PyTorch's strong-Wolfe line search from the
    trial step (c1 = 1e-4, c2 = 0.9, cubic interpolation; see
    torch/optim/lbfgs.py), which evaluates the loss along the line: the
    update then needs ``value=`` (the loss at params) and ``value_fn=``
    (params -> loss), ``update(grads, state, params, value=loss,
    value_fn=loss_fn)``; other keywords ``value_fn`` takes are passed on to
    it, and ``grad=`` (optax's convention) is accepted and not used.  One
    update is then one ``step(closure)`` of ``torch.optim.LBFGS`` with
    ``max_iter=1`` and the same ``max_eval``: the search makes at most
    ``max_eval - 1`` evaluations (PyTorch counts the closure call at the
    start of the step as the first).  ``max_eval`` defaults to
    ``max_iter * 5 // 4`` as in PyTorch, so ``max_iter=1`` leaves the search
    one trial, kept only if it lowers the loss.

    PyTorch's ``step(closure)`` with ``max_iter`` k runs up to k iterations;
    here each ``update`` is one, with the gradient the caller computed, so
    without a line search k PyTorch iterations are k updates.  With a line
    search PyTorch's k iterations share one budget of ``max_eval``
    evaluations, which an update does not model.  The parameters are
    flattened into one vector for the history, which holds
    2 * history_size copies of them; ``state.func_evals`` counts the loss
    evaluations PyTorch would have made (its ``state["func_evals"]``).

    Args:
      lr: the step size, > 0 (a number, as in PyTorch).
      max_iter: PyTorch's iterations per step (the caller's loop here); sets
        the default of ``max_eval``.
      max_eval: the loss evaluations per update with a line search, the
        first included, an int >= 1 (default ``max_iter * 5 // 4``).
      tolerance_grad: no change once max |g| is at most this.
      tolerance_change: no step unless <g, d> < -tolerance_change; the line
        search stops once its bracket is narrower than this over max |d|.
      history_size: the number of pairs kept, >= 1.
      line_search_fn: None or "strong_wolfe".

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.lbfgs()
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([0.2, -0.05])}, opt.init(params), params)
      >>> updates["w"]          # the first step is -min(1, 1 / ||g||_1) * lr * g = -g
      Array([-0.2 ,  0.05], dtype=float32)
      >>> import jax
      >>> f = lambda p: jnp.sum((p["w"] - 3.0) ** 2)
      >>> opt = gradtx.presets.torch.lbfgs(line_search_fn="strong_wolfe")
      >>> params = {"w": jnp.array([1.0, 2.0])}
      >>> value, grads = jax.value_and_grad(f)(params)
      >>> updates, state = opt.update(grads, opt.init(params), params, value=value, value_fn=f)
      >>> gradtx.apply_updates(params, updates)["w"]  # t_0 = 1 / ||g||_1 = 1/6 is Wolfe: kept
      Array([1.6666667, 2.3333333], dtype=float32)

    Reference: Nocedal, "Updating Quasi-Newton Matrices with Limited
    Storage", Mathematics of Computation 1980; Liu, Nocedal, "On the Limited
    Memory BFGS Method for Large Scale Optimization", 1989; Nocedal, Wright,
    "Numerical Optimization", 2nd ed., Springer 2006, section 3.5.
    """
    owner = "torch.lbfgs"
    check_range(owner, "lr", lr, 0, low_open=True)
    check_range(owner, "tolerance_grad", tolerance_grad, 0)
    check_range(owner, "tolerance_change", tolerance_change, 0)
    if not isinstance(history_size, int) or history_size < 1:
        raise ValueError(f"{owner}: history_size must be an integer >= 1, got {history_size!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"{owner}: max_iter must be an integer >= 1, got {max_iter!r}")
    if max_eval is not None and (
        isinstance(max_eval, bool) or not isinstance(max_eval, int) or max_eval < 1
    ):
        raise ValueError(f"{owner}: max_eval must be None or an integer >= 1, got {max_eval!r}")
    if line_search_fn not in (None, "strong_wolfe"):
        raise ValueError(
            f"{owner}: line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}"
        )
    evals = max_iter * 5 // 4 if max_eval is None else max_eval
    hyperparams = {
        "lr": lr,
        "max_iter": max_iter,
        "max_eval": max_eval,
        "tolerance_grad": tolerance_grad,
        "tolerance_change": tolerance_change,
        "history_size": history_size,
        "line_search_fn": line_search_fn,
    }
    max_ls = None if line_search_fn is None else evals - 1
    return recipe(
        owner,
        hyperparams,
        _torch_lbfgs(lr, tolerance_grad, tolerance_change, history_size, max_ls),
    )


def adamax(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, maximize=False):
    """``torch.optim.Adamax``: p_t = p_{t-1} - lr * m_hat_t / u_t, u_t = max(b2 u_{t-1}, |g_t| + eps).

    m_hat_t is Adam's bias-corrected first moment.  PyTorch adds eps inside
    the maximum; optax's ``adamax`` adds it to u_t.

    Args:
      lr: the learning rate, a number >= 0 or a schedule.
      betas: (b1, b2), the decays of m and u, each in [0, 1).
      eps: added to |g| inside the maximum, >= 0.
      weight_decay: L2 coefficient, >= 0.
      maximize: ascend the objective.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.adamax(lr=0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.9       ], dtype=float32)

    Reference: Kingma, Ba, "Adam: A Method for Stochastic Optimization",
    ICLR 2015, arXiv:1412.6980, section 7.1.
    """
    owner = "torch.adamax"
    _check_common(owner, lr, weight_decay, eps)
    b1, b2 = _check_betas(owner, betas)
    hyperparams = {
        "lr": lr,
        "betas": betas,
        "eps": eps,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return recipe(
        owner,
        hyperparams,
        _ascend(maximize),
        _decay(weight_decay),
        precondition(
            chain(scale_by_momentum(b1, ema=True), bias_correction(b1)), by=_torch_inf_norm(b2, eps)
        ),
        scale_by_learning_rate(lr),
    )


def rprop(lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, maximize=False):
    """``torch.optim.Rprop``: p_t = p_{t-1} - sign(g_t) * s_t, per-entry step sizes from sign agreement.

    s_t = clip(s_{t-1} * f_t, step_sizes), s_0 = lr, where f_t = etas[1] if
    g_t g_{t-1} > 0, etas[0] if < 0 (and that entry does not move, and counts
    as 0 next step), 1 otherwise.  lr is only the initial step size, as in
    PyTorch (a number, not a schedule).

    Args:
      lr: the initial step size, > 0.
      etas: (eta_minus, eta_plus), 0 < eta_minus < 1 < eta_plus.
      step_sizes: (step_min, step_max), the bounds of the step sizes.
      maximize: ascend the objective.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.rprop(lr=0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.9], dtype=float32)

    Reference: Riedmiller, Braun, "A Direct Adaptive Method for Faster
    Backpropagation Learning: The RPROP Algorithm", ICNN 1993.
    """
    owner = "torch.rprop"
    check_range(owner, "lr", lr, 0, low_open=True)
    if not (isinstance(etas, (tuple, list)) and len(etas) == 2 and 0 < etas[0] < 1 < etas[1]):
        raise ValueError(
            f"{owner}: etas must be a pair with 0 < eta_minus < 1 < eta_plus, got {etas!r}"
        )
    if not (
        isinstance(step_sizes, (tuple, list))
        and len(step_sizes) == 2
        and 0 <= step_sizes[0] <= step_sizes[1]
    ):
        raise ValueError(
            f"{owner}: step_sizes must be a pair 0 <= step_min <= step_max, got {step_sizes!r}"
        )
    hyperparams = {
        "lr": lr,
        "etas": tuple(etas),
        "step_sizes": tuple(step_sizes),
        "maximize": maximize,
    }
    return recipe(
        owner,
        hyperparams,
        _ascend(maximize),
        _torch_rprop(lr, tuple(etas), tuple(step_sizes)),
        scale_by_learning_rate(1.0),
    )


def asgd(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, *, maximize=False):
    """``torch.optim.ASGD``: p_t = p_{t-1} - eta_t * (g_t + lambd * p_{t-1}), and the average ax_t.

    eta_t = lr / (1 + lambd * lr * (t - 1))^alpha for t = 1, 2, ...;
    ax_t = ax_{t-1} + mu_t * (p_t - ax_{t-1}) with mu_1 = 1 and
    mu_t = 1 / max(1, t - 1 - t0) for t >= 2, so ax_t = p_t up to step
    t0 + 2 and the running mean of the iterates from there on (where
    mu_t = 1, ax_t is p_t itself, as PyTorch copies it).  The average does
    not move the parameters; it lives in the state, where PyTorch keeps
    ``optimizer.state[p]["ax"]``: read it with ``asgd_averaged_params(state)``.
    ``weight_decay`` is L2, added to g_t.

    Args:
      lr: the initial rate, >= 0 (a number, as in PyTorch).
      lambd: the decay term, >= 0.
      alpha: the power of the rate's decay.
      t0: the step from which the iterates are averaged.
      weight_decay: L2 coefficient, >= 0.
      maximize: ascend the objective.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.asgd(lr=0.1, lambd=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.7 , -1.95], dtype=float32)
      >>> gradtx.presets.torch.asgd_averaged_params(state)["w"]  # ax_1 = p_1
      Array([ 0.7 , -1.95], dtype=float32)

    Reference: Polyak, Juditsky, "Acceleration of Stochastic Approximation by
    Averaging", SIAM J. Control Optim. 1992.
    """
    owner = "torch.asgd"
    _check_common(owner, lr, weight_decay)
    check_range(owner, "lr", lr, 0)
    check_range(owner, "lambd", lambd, 0)
    check_range(owner, "alpha", alpha)
    hyperparams = {
        "lr": lr,
        "lambd": lambd,
        "alpha": alpha,
        "t0": t0,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return recipe(
        owner,
        hyperparams,
        _ascend(maximize),
        _decay(weight_decay),
        _decay(lambd),
        scale_by_learning_rate(_asgd_rate(lr, lambd, alpha)),
        _torch_asgd_average(t0),
    )


def asgd_averaged_params(state):
    """The average ax_t that ``asgd`` keeps of its iterates: PyTorch's ``state[p]["ax"]``.

    ax_t = ax_{t-1} + mu_t * (p_t - ax_{t-1}), mu_t = 1 / max(1, t - 1 - t0)
    (mu_1 = 1), and ax_0 = 0 before the first update, as in PyTorch.

    Args:
      state: the state of ``asgd``, or of a chain or wrapper holding it (the
        first ASGD average found is returned).

    Returns:
      ax_t, shaped like the parameters, in their dtype (at least float32).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.asgd(lr=1.0, lambd=0.0, t0=0)
      >>> params, state = jnp.array([0.0]), opt.init(jnp.array([0.0]))
      >>> for g in (-1.0, -2.0, -3.0):  # p_t = 1, 3, 6; mu_t = 1, 1, 1/2
      ...     updates, state = opt.update(jnp.array([g]), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> gradtx.presets.torch.asgd_averaged_params(state)
      Array([4.5], dtype=float32)

    Reference: Polyak, Juditsky, "Acceleration of Stochastic Approximation by
    Averaging", SIAM J. Control Optim. 1992.
    """
    found = _find_state(state, _AsgdAverageState)
    if found is None:
        raise ValueError(
            "torch.asgd_averaged_params: state holds no ASGD average; pass the state "
            "of gradtx.presets.torch.asgd (or of a chain or wrapper around it)"
        )
    return found.ax


def adafactor(
    lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, *, maximize=False
):
    """``torch.optim.Adafactor``: a factored second moment and a relative step size.

    With t = 1, 2, ..., w_t = t^beta2_decay and, for a matrix (or the last two
    axes of a higher-rank leaf), R_t = (1 - w_t) R_{t-1} + w_t mean_cols(g^2),
    C_t = (1 - w_t) C_{t-1} + w_t mean_rows(g^2), V_t = R_t C_t / max(mean(R_t), eps1)
    (a vector or scalar keeps V_t = (1 - w_t) V_{t-1} + w_t g^2 whole);
    u_t = g_t / sqrt(max(V_t, eps1^2)),
    a_t = max(eps2, RMS(p_{t-1})) * min(lr, 1 / sqrt(t)),
    p_t = p_{t-1} (1 - lr * weight_decay) - a_t / max(1, RMS(u_t) / d) * u_t.

    PyTorch's Adafactor, which differs from optax's (no momentum, its own
    decay of beta2 and clipping by d).

    Args:
      lr: the cap of the relative step, a number >= 0.
      beta2_decay: the power of t in w_t, <= 0.
      eps: (eps1, eps2): the floor of V (None: the dtype's machine epsilon)
        and of the parameters' RMS.
      d: the clipping threshold of RMS(u), >= 1.
      weight_decay: decoupled, multiplied by lr.
      maximize: ascend the objective.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.adafactor(lr=0.1)
      >>> params = {"w": jnp.array([3.0, -4.0])}                  # RMS 3.54
      >>> updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, opt.init(params), params)
      >>> updates["w"]                                              # -0.1 * 3.54 * sign(g)
      Array([-0.35355338, -0.35355338], dtype=float32)

    Reference: Shazeer, Stern, "Adafactor: Adaptive Learning Rates with
    Sublinear Memory Cost", ICML 2018, arXiv:1804.04235.
    """
    owner = "torch.adafactor"
    _check_common(owner, lr, weight_decay)
    check_range(owner, "lr", lr, 0)
    check_range(owner, "beta2_decay", beta2_decay, None, 0)
    if not (isinstance(eps, (tuple, list)) and len(eps) == 2):
        raise ValueError(f"{owner}: eps must be a pair (eps1, eps2), got {eps!r}")
    if eps[0] is not None:
        check_range(owner, "eps[0]", eps[0], 0)
    check_range(owner, "eps[1]", eps[1], 0)
    check_range(owner, "d", d, 1)
    hyperparams = {
        "lr": lr,
        "beta2_decay": beta2_decay,
        "eps": tuple(eps),
        "d": d,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return recipe(
        owner,
        hyperparams,
        _ascend(maximize),
        _torch_adafactor(lr, beta2_decay, tuple(eps), d),
        _decay(lr * weight_decay),
        scale_by_learning_rate(1.0),
    )


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
      >>> schedule = gradtx.presets.torch.cosine_annealing_lr(1.0, T_max=4)
      >>> [round(float(schedule(t)), 6) for t in (0, 2, 4)]
      [1.0, 0.5, 0.0]
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
