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

import jax.numpy as jnp

from .._checks import check_learning_rate, check_range
from .._combine import chain, precondition
from .._momentum import bias_correction, scale_by_momentum, scale_by_nadam_momentum
from .._orthogonal import MuonDimensionNumbers, newton_schulz, orthogonalize, scale_by_shape
from .._scaling import scale, scale_by_learning_rate, scale_by_schedule
from .._second_moment import (scale_by_adadelta, scale_by_centered_rms, scale_by_max_rms,
                              scale_by_rectified_rms, scale_by_rms, scale_by_rss)
from .._weight_decay import add_decayed_weights
from ._common import as_float, named, recipe, value_at

__all__ = ["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "nadam", "radam", "muon",
           "step_lr", "exponential_lr", "cosine_annealing_lr", "linear_lr", "one_cycle_lr"]


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

def sgd(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
        maximize=False):
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
        raise ValueError(f"{owner}: nesterov=True needs momentum > 0 and dampening = 0, "
                         f"got momentum={momentum!r}, dampening={dampening!r}")
    hyperparams = {"lr": lr, "momentum": momentum, "dampening": dampening,
                   "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}
    buffer = []
    if momentum != 0:
        if dampening != 0:
            buffer.append(scale_by_schedule(_undamped_first_step(dampening)))
        buffer.append(scale_by_momentum(momentum, nesterov=nesterov))
    return recipe(owner, hyperparams,
                  _ascend(maximize),
                  _decay(weight_decay),
                  *buffer,
                  scale_by_learning_rate(lr))


def adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
         maximize=False, decoupled_weight_decay=False):
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
    return _adam("torch.adam", lr, betas, eps, weight_decay, amsgrad, maximize,
                 bool(decoupled_weight_decay))


def adamw(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
          maximize=False):
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
    hyperparams = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                   "amsgrad": amsgrad, "maximize": maximize}
    if owner == "torch.adam":
        hyperparams["decoupled_weight_decay"] = decoupled
    if amsgrad:
        rms = scale_by_max_rms(b2, eps, bias_correction=True, max_before_correction=True)
    else:
        rms = scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True)
    return recipe(owner, hyperparams,
                  _ascend(maximize),
                  None if decoupled else _decay(weight_decay),
                  precondition(chain(scale_by_momentum(b1, ema=True), bias_correction(b1)),
                               by=rms),
                  _decay(weight_decay) if decoupled else None,
                  scale_by_learning_rate(lr))


def rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
            maximize=False):
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
    hyperparams = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                   "momentum": momentum, "centered": centered, "maximize": maximize}
    rms = scale_by_centered_rms if centered else scale_by_rms
    return recipe(owner, hyperparams,
                  _ascend(maximize),
                  _decay(weight_decay),
                  rms(alpha, eps, eps_in_sqrt=False),
                  scale_by_momentum(momentum) if momentum > 0 else None,
                  scale_by_learning_rate(lr))


def adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, *,
            maximize=False):
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
    hyperparams = {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                   "initial_accumulator_value": initial_accumulator_value, "eps": eps,
                   "maximize": maximize}
    if lr_decay != 0:
        base = lr
        lr = named(lambda t: value_at(base, t) / (1 + as_float(t) * lr_decay), "adagrad_lr_decay")
    return recipe(owner, hyperparams,
                  _ascend(maximize),
                  _decay(weight_decay),
                  scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=False),
                  scale_by_learning_rate(lr))


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
    hyperparams = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay,
                   "maximize": maximize}
    return recipe(owner, hyperparams,
                  _ascend(maximize),
                  _decay(weight_decay),
                  scale_by_adadelta(rho, eps),
                  scale_by_learning_rate(lr))


def nadam(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
          decoupled_weight_decay=False, *, maximize=False):
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
    hyperparams = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                   "momentum_decay": momentum_decay,
                   "decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize}
    return recipe(owner, hyperparams,
                  _ascend(maximize),
                  None if decoupled_weight_decay else _decay(weight_decay),
                  precondition(scale_by_nadam_momentum(b1, momentum_decay),
                               by=scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True)),
                  _decay(weight_decay) if decoupled_weight_decay else None,
                  scale_by_learning_rate(lr))


def radam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False,
          *, maximize=False):
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
    hyperparams = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                   "decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize}
    return recipe(owner, hyperparams,
                  _ascend(maximize),
                  None if decoupled_weight_decay else _decay(weight_decay),
                  precondition(chain(scale_by_momentum(b1, ema=True), bias_correction(b1)),
                               by=scale_by_rectified_rms(b2, eps, threshold=5.0)),
                  _decay(weight_decay) if decoupled_weight_decay else None,
                  scale_by_learning_rate(lr))


def muon(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
         ns_coefficients=(3.4445, -4.7750, 2.0315), eps=1e-7, ns_steps=5, adjust_lr_fn=None):
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
        raise ValueError(f"{owner}: adjust_lr_fn must be None, 'original' or 'match_rms_adamw', "
                         f"got {adjust_lr_fn!r}")
    out_in = MuonDimensionNumbers(reduction_axis=1, output_axis=0)
    hyperparams = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum,
                   "nesterov": nesterov, "ns_coefficients": tuple(ns_coefficients), "eps": eps,
                   "ns_steps": ns_steps, "adjust_lr_fn": adjust_lr_fn}
    return recipe(owner, hyperparams,
                  scale_by_momentum(momentum, ema=True, nesterov=nesterov),
                  orthogonalize(newton_schulz(tuple(ns_coefficients), ns_steps, eps=eps,
                                              eps_clamp=True, dtype=jnp.bfloat16)),
                  scale_by_shape(out_in, 0.2 if adjust_lr_fn == "match_rms_adamw" else None),
                  _decay(weight_decay),
                  scale_by_learning_rate(lr))


# ----------------------------------------------------------------------------
# Schedulers: functions of the optimizer step t, PyTorch's closed forms at k.

def _check_steps_per_epoch(owner, steps_per_epoch):
    if not (isinstance(steps_per_epoch, int) and steps_per_epoch >= 1):
        raise ValueError(f"{owner}: steps_per_epoch must be an int >= 1 (optimizer steps per "
                         f"scheduler.step() call), got {steps_per_epoch!r}")


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
    _check_steps_per_epoch(owner, steps_per_epoch)

    def schedule(t):
        k = jnp.asarray(t) // steps_per_epoch
        return lr * gamma ** as_float(k // step_size)

    return named(schedule, "step_lr")


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
    _check_steps_per_epoch(owner, steps_per_epoch)

    def schedule(t):
        return lr * gamma ** as_float(jnp.asarray(t) // steps_per_epoch)

    return named(schedule, "exponential_lr")


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

    def schedule(t):
        k = as_float(jnp.minimum(jnp.asarray(t) // steps_per_epoch, total_iters))
        return lr * (start_factor + (end_factor - start_factor) * k / total_iters)

    return named(schedule, "linear_lr")


def one_cycle_lr(max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False):
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
        raise ValueError(f"{owner}: cycle_momentum=True (PyTorch's default) also schedules the "
                         f"optimizer's momentum, which gradtx's presets keep constant; pass "
                         f"cycle_momentum=False here and to torch's OneCycleLR")
    if total_steps is None:
        if epochs is None or steps_per_epoch is None:
            raise ValueError(f"{owner}: give total_steps, or epochs and steps_per_epoch")
        total_steps = epochs * steps_per_epoch
    if not (isinstance(total_steps, int) and total_steps >= 1):
        raise ValueError(f"{owner}: total_steps must be an int >= 1, got {total_steps!r}")
    check_range(owner, "max_lr", max_lr, 0)
    check_range(owner, "pct_start", pct_start, 0, 1)
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"{owner}: anneal_strategy must be 'cos' or 'linear', "
                         f"got {anneal_strategy!r}")
    initial = max_lr / div_factor
    final = initial / final_div_factor
    if three_phase:
        phases = [(pct_start * total_steps - 1, initial, max_lr),
                  (2 * pct_start * total_steps - 2, max_lr, initial),
                  (total_steps - 1, initial, final)]
    else:
        phases = [(pct_start * total_steps - 1, initial, max_lr),
                  (total_steps - 1, max_lr, final)]

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
