"""PyTorch's first-order optimizers as recipes of gradtx transforms."""

from __future__ import annotations

from typing import Annotated

import jax.numpy as jnp

from ..._checks import (
    Decay,
    DecayPair,
    InRange,
    NonNegative,
    Positive,
    Rate,
    UnitInterval,
    check_range,
)
from ..._combine import chain, precondition
from ..._momentum import bias_correction, scale_by_momentum, scale_by_nadam_momentum
from ..._orthogonal import MuonDimensionNumbers, newton_schulz, orthogonalize, scale_by_shape
from ..._recipe import recipe
from ..._scaling import scale, scale_by_learning_rate, scale_by_schedule
from ..._second_moment import (
    scale_by_adadelta,
    scale_by_centered_rms,
    scale_by_max_rms,
    scale_by_rectified_rms,
    scale_by_rms,
    scale_by_rss,
)
from ..._weight_decay import add_decayed_weights
from .._common import as_float, named, value_at
from ._transforms import (
    _asgd_rate,
    _AsgdAverageState,
    _find_state,
    _torch_adafactor,
    _torch_asgd_average,
    _torch_inf_norm,
    _torch_rprop,
)

# ----------------------------------------------------------------------------
# Pieces shared by the recipes.


def _ascend(maximize):
    """PyTorch's ``maximize``: the gradient is negated before anything else."""
    return scale(-1.0) if maximize else None


def _decay(weight_decay):
    """p * weight_decay added to the update (or None when there is no decay)."""
    return add_decayed_weights(weight_decay) if weight_decay != 0 else None


def _undamped_first_step(dampening):
    """1 at the first step, 1 - dampening after: PyTorch starts the buffer at b_1 = g_1."""
    return named(lambda t: jnp.where(t == 0, 1.0, 1.0 - dampening), "undamped_first_step")


# ----------------------------------------------------------------------------
# Optimizers.


@recipe(prefix="torch.")
def sgd(
    lr: Rate = 1e-3,
    momentum: Decay = 0.0,
    dampening: UnitInterval = 0.0,
    weight_decay: NonNegative = 0.0,
    nesterov=False,
    *,
    maximize=False,
):
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
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(
            f"torch.sgd: nesterov=True needs momentum > 0 and dampening = 0, "
            f"got momentum={momentum!r}, dampening={dampening!r}"
        )
    buffer = []
    if momentum != 0:
        if dampening != 0:
            buffer.append(scale_by_schedule(_undamped_first_step(dampening)))
        buffer.append(scale_by_momentum(momentum, nesterov=nesterov))
    return (_ascend(maximize), _decay(weight_decay), *buffer, scale_by_learning_rate(lr))


@recipe(prefix="torch.")
def adam(
    lr: Rate = 1e-3,
    betas: DecayPair = (0.9, 0.999),
    eps: NonNegative = 1e-8,
    weight_decay: NonNegative = 0.0,
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
    return _adam(lr, betas, eps, weight_decay, amsgrad, maximize, bool(decoupled_weight_decay))


@recipe(prefix="torch.")
def adamw(
    lr: Rate = 1e-3,
    betas: DecayPair = (0.9, 0.999),
    eps: NonNegative = 1e-8,
    weight_decay: NonNegative = 1e-2,
    amsgrad=False,
    *,
    maximize=False,
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
    return _adam(lr, betas, eps, weight_decay, amsgrad, maximize, True)


def _adam(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled):
    """Adam and AdamW: the transforms, with the decay before the moments (L2) or after them."""
    b1, b2 = betas
    if amsgrad:
        rms = scale_by_max_rms(b2, eps, bias_correction=True, max_before_correction=True)
    else:
        rms = scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True)
    momentum = chain(scale_by_momentum(b1, ema=True), bias_correction(b1))
    return _around(precondition(momentum, by=rms), lr, weight_decay, decoupled, maximize)


def _around(direction, lr, weight_decay, decoupled, maximize):
    """The sign, weight decay before ``direction`` (L2) or after it (decoupled), then lr."""
    return (
        _ascend(maximize),
        None if decoupled else _decay(weight_decay),
        direction,
        _decay(weight_decay) if decoupled else None,
        scale_by_learning_rate(lr),
    )


@recipe(prefix="torch.")
def rmsprop(
    lr: Rate = 1e-2,
    alpha: Decay = 0.99,
    eps: NonNegative = 1e-8,
    weight_decay: NonNegative = 0.0,
    momentum: Decay = 0.0,
    centered=False,
    *,
    maximize=False,
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
    rms = scale_by_centered_rms if centered else scale_by_rms
    return (
        _ascend(maximize),
        _decay(weight_decay),
        rms(alpha, eps, eps_in_sqrt=False),
        scale_by_momentum(momentum) if momentum > 0 else None,
        scale_by_learning_rate(lr),
    )


@recipe(prefix="torch.")
def adagrad(
    lr: Rate = 1e-2,
    lr_decay: NonNegative = 0.0,
    weight_decay: NonNegative = 0.0,
    initial_accumulator_value: NonNegative = 0.0,
    eps: NonNegative = 1e-10,
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
    if lr_decay != 0:
        base = lr
        lr = named(lambda t: value_at(base, t) / (1 + as_float(t) * lr_decay), "adagrad_lr_decay")
    return (
        _ascend(maximize),
        _decay(weight_decay),
        scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=False),
        scale_by_learning_rate(lr),
    )


@recipe(prefix="torch.")
def adadelta(
    lr: Rate = 1.0,
    rho: Decay = 0.9,
    eps: Positive = 1e-6,
    weight_decay: NonNegative = 0.0,
    *,
    maximize=False,
):
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
    return (
        _ascend(maximize),
        _decay(weight_decay),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(lr),
    )


@recipe(prefix="torch.")
def nadam(
    lr: Rate = 2e-3,
    betas: DecayPair = (0.9, 0.999),
    eps: NonNegative = 1e-8,
    weight_decay: NonNegative = 0.0,
    momentum_decay: NonNegative = 4e-3,
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
      lr, betas, eps, weight_decay: as in ``adam``.
      momentum_decay: psi in the momentum schedule, >= 0.
      decoupled_weight_decay, maximize: as in ``adam``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.nadam(lr=0.1, momentum_decay=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]  # mu_t = 0.45: 0.1 * (1 + 0.1 * 0.45 / (1 - 0.45^2))
      Array([ 0.89435804, -1.894358  ], dtype=float32)
    """
    b1, b2 = betas
    direction = precondition(
        scale_by_nadam_momentum(b1, momentum_decay),
        by=scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
    )
    return _around(direction, lr, weight_decay, decoupled_weight_decay, maximize)


@recipe(prefix="torch.")
def radam(
    lr: Rate = 1e-3,
    betas: DecayPair = (0.9, 0.999),
    eps: NonNegative = 1e-8,
    weight_decay: NonNegative = 0.0,
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
      lr, betas, eps, weight_decay, decoupled_weight_decay, maximize: as in ``adam``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.radam(lr=0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]  # first steps: lr * m_hat = lr * g
      Array([ 0.70000005, -1.95      ], dtype=float32)
    """
    b1, b2 = betas
    direction = precondition(
        chain(scale_by_momentum(b1, ema=True), bias_correction(b1)),
        by=scale_by_rectified_rms(b2, eps, threshold=5.0),
    )
    return _around(direction, lr, weight_decay, decoupled_weight_decay, maximize)


@recipe(prefix="torch.")
def muon(
    lr: Rate = 1e-3,
    weight_decay: NonNegative = 0.1,
    momentum: Decay = 0.95,
    nesterov=True,
    ns_coefficients=(3.4445, -4.7750, 2.0315),
    eps: NonNegative = 1e-7,
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
    if adjust_lr_fn not in (None, "original", "match_rms_adamw"):
        raise ValueError(
            f"torch.muon: adjust_lr_fn must be None, 'original' or 'match_rms_adamw', "
            f"got {adjust_lr_fn!r}"
        )
    out_in = MuonDimensionNumbers(reduction_axis=1, output_axis=0)
    return (
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


@recipe(prefix="torch.")
def adamax(
    lr: Rate = 2e-3,
    betas: DecayPair = (0.9, 0.999),
    eps: NonNegative = 1e-8,
    weight_decay: NonNegative = 0.0,
    *,
    maximize=False,
):
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
    b1, b2 = betas
    return (
        _ascend(maximize),
        _decay(weight_decay),
        precondition(
            chain(scale_by_momentum(b1, ema=True), bias_correction(b1)), by=_torch_inf_norm(b2, eps)
        ),
        scale_by_learning_rate(lr),
    )


@recipe(prefix="torch.")
def rprop(lr: Positive = 1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, maximize=False):
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
    return (
        _ascend(maximize),
        _torch_rprop(lr, tuple(etas), tuple(step_sizes)),
        scale_by_learning_rate(1.0),
    )


@recipe(prefix="torch.")
def asgd(
    lr: Rate = 1e-2,
    lambd: NonNegative = 1e-4,
    alpha: Annotated[float, InRange()] = 0.75,
    t0=1e6,
    weight_decay: NonNegative = 0.0,
    *,
    maximize=False,
):
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
    return (
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


@recipe(prefix="torch.")
def adafactor(
    lr: NonNegative = 1e-2,
    beta2_decay: Annotated[float, InRange(high=0)] = -0.8,
    eps=(None, 1e-3),
    d: Annotated[float, InRange(1)] = 1.0,
    weight_decay: NonNegative = 0.0,
    *,
    maximize=False,
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
    if not (isinstance(eps, (tuple, list)) and len(eps) == 2):
        raise ValueError(f"{owner}: eps must be a pair (eps1, eps2), got {eps!r}")
    if eps[0] is not None:
        check_range(owner, "eps[0]", eps[0], 0)
    check_range(owner, "eps[1]", eps[1], 0)
    return (
        _ascend(maximize),
        _torch_adafactor(lr, beta2_decay, tuple(eps), d),
        _decay(lr * weight_decay),
        scale_by_learning_rate(1.0),
    )
