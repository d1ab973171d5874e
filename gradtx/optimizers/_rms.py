"""Second-moment methods without a first moment: RMSprop, Adagrad, Adadelta, and
the factored ones, Adafactor, SM3 and CAME (Adafactor with a confidence-weighted
momentum).

Shared pieces: ``scale_by_rms``, ``scale_by_centered_rms``, ``scale_by_rss``,
``scale_by_adadelta`` (``_second_moment``), ``scale_by_factored_rms``,
``scale_by_confidence`` and ``scale_by_sm3`` (``_factored``).
"""

from __future__ import annotations

from .._accumulation import ema
from .._checks import (
    Decay,
    NonNegative,
    OptionalDecay,
    OptionalRate,
    Positive,
    Rate,
    StateDtype,
    UnitInterval,
)
from .._clipping import clip_by_block_rms
from .._factored import (
    constant_decay_rate,
    scale_by_confidence,
    scale_by_factored_rms,
    scale_by_sm3,
)
from .._layerwise import scale_by_param_block_rms
from .._momentum import trace
from .._recipe import recipe
from .._scaling import identity, scale, scale_by_learning_rate
from .._second_moment import (
    scale_by_adadelta,
    scale_by_centered_rms,
    scale_by_rms,
    scale_by_rss,
)
from .._weight_decay import add_decayed_weights


@recipe
def rmsprop(
    learning_rate: Rate,
    decay: Decay = 0.9,
    eps: NonNegative = 1e-8,
    initial_scale: NonNegative = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: OptionalDecay = None,
    nesterov: bool = False,
    bias_correction: bool = False,
):
    """RMSprop: p_t = p_{t-1} - lr * g_t / sqrt(v_t + eps), v_t = decay * v_{t-1} + (1 - decay) * g_t^2.

    ``centered`` divides by sqrt(v_t - mu_t^2 + eps), mu_t the average
    gradient.  ``momentum`` accumulates the step after the learning rate,
    m_t = momentum * m_{t-1} + lr_t * g_t / sqrt(v_t + eps), optax's order
    (PyTorch accumulates before the learning rate, which differs under a
    schedule: ``gradtx.presets.torch.rmsprop``).  Defaults are optax's:
    decay 0.9, eps under the root; PyTorch uses alpha=0.99 and eps outside
    the root, Keras rho=0.9 and eps=1e-7 under the root.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      decay: the decay of the squared-gradient average, in [0, 1).
      eps: the stabiliser, >= 0.
      initial_scale: v_0, >= 0.
      eps_in_sqrt: add eps under the root (True) or to the root (False).
      centered: subtract the squared mean gradient.
      momentum: None or a coefficient in [0, 1).
      nesterov: use Nesterov momentum (needs momentum).
      bias_correction: divide the averages by 1 - decay^t.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.rmsprop(0.01)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.96837723, -2.031623  ], dtype=float32)
    """
    if momentum is None and nesterov:
        raise ValueError("rmsprop: nesterov=True needs a momentum in [0, 1), got momentum=None")
    rms = scale_by_centered_rms if centered else scale_by_rms
    return (
        rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov=nesterov) if momentum is not None else identity(),
    )


@recipe
def adagrad(
    learning_rate: Rate, initial_accumulator_value: NonNegative = 0.1, eps: NonNegative = 1e-7
):
    """Adagrad: p_t = p_{t-1} - lr * g_t / sqrt(s_t + eps), s_t = s_{t-1} + g_t^2.

    Defaults are optax's and Keras's (s_0 = 0.1, eps = 1e-7 under the root);
    PyTorch starts from s_0 = 0 with eps = 1e-10 outside the root.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      initial_accumulator_value: s_0, >= 0.
      eps: added under the root, >= 0.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adagrad(0.1, initial_accumulator_value=0.0, eps=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([2.0, -4.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.9], dtype=float32)
    """
    return (
        scale_by_rss(initial_accumulator_value, eps),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def adadelta(
    learning_rate: OptionalRate = 1.0,
    rho: Decay = 0.9,
    eps: Positive = 1e-6,
    weight_decay: Rate = 0.0,
    weight_decay_mask=None,
):
    """Adadelta: p_t = p_{t-1} - lr * sqrt(E[x^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) * g_t.

    The default learning rate is 1.0, Zeiler's and PyTorch's: optax's
    default ``learning_rate=None`` never flips the sign, so it ascends (an
    explicit ``None`` still means optax's no scaling).  Keras uses 0.001 and
    rho=0.95.  ``weight_decay`` is L2: added to the gradient before the
    rule, as PyTorch and optax do.

    Args:
      learning_rate: lr, a number >= 0, a schedule, or None (no scaling).
      rho: the decay of both averages, in [0, 1).
      eps: the stabiliser under both roots, > 0.
      weight_decay: L2 coefficient, >= 0 or a schedule.
      weight_decay_mask: which parameters decay (a pytree of bools or a
        function of params); None: all.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adadelta()
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.99683774, -2.0031621 ], dtype=float32)
    """
    # The L2 step stays for weight_decay = 0 too, as in optax: the state's
    # structure is optax's and never depends on an (injected) value.
    return (
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def adafactor(
    learning_rate: OptionalRate = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: NonNegative = 0.8,
    decay_offset=0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold=1.0,
    momentum=None,
    dtype_momentum: StateDtype = "float32",
    weight_decay_rate=None,
    eps=1e-30,
    factored: bool = True,
    weight_decay_mask=None,
):
    """Adafactor: a factored second moment, clipped per leaf, scaled by the parameter's RMS.

    u = g / sqrt(V_t) with V_t Adafactor's factored average of g^2 + eps
    (``scale_by_factored_rms``), then, each optional:
    u = u * min(1, clipping_threshold / rms(u))   (``clip_by_block_rms``),
    u = lr * u,  u = u * max(rms(p), 1e-3)         (``scale_by_param_block_rms``),
    u = ema(u, momentum)  (not debiased),  u = u + weight_decay_rate * p,
    p_t = p_{t-1} - u.

    As in optax, the sign flips at the end, after the weight decay, which is
    therefore not multiplied by the learning rate; ``learning_rate=None``
    leaves the step unscaled (the paper's relative step sizes).

    Args:
      learning_rate: lr, a number, a schedule or None.
      min_dim_size_to_factor: leaves whose second largest axis is smaller
        keep a full second moment.
      decay_rate: the exponent of the decay 1 - (t + 1)^(-decay_rate).
      decay_offset: subtracted from the step in that decay.
      multiply_by_parameter_scale: scale by max(rms(p), 1e-3).
      clipping_threshold: the per-leaf RMS bound, or None.
      momentum: the decay of an average of the updates, or None.
      dtype_momentum: the dtype that average is stored in.
      weight_decay_rate: added times p after the learning rate, or None.
      eps: added to g^2.
      factored: factor matrix-like leaves.
      weight_decay_mask: which parameters decay.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adafactor(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.8418861, -1.8418862], dtype=float32)

    Reference: Shazeer, Stern, "Adafactor: Adaptive Learning Rates with
    Sublinear Memory Cost", ICML 2018, arXiv:1804.04235.
    """
    optional = []
    if clipping_threshold is not None:
        optional.append(clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        optional.append(scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        optional.append(scale_by_param_block_rms())
    if momentum is not None:
        optional.append(ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        optional.append(add_decayed_weights(weight_decay_rate, weight_decay_mask))
    return (
        scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps),
        *optional,
        scale(-1.0),
    )


@recipe
def sm3(learning_rate: Rate, momentum: UnitInterval = 0.9):
    """SM3: p_t = p_{t-1} - lr * m_t, m the momentum of SM3's Adagrad-like scaled gradient.

    Args:
      learning_rate: lr, a number >= 0 (a schedule works too; optax takes a number).
      momentum: the decay of m, in [0, 1].

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.sm3(1.0, momentum=0.0)
      >>> params = jnp.zeros((1, 2))
      >>> updates, state = opt.update(jnp.array([[3.0, -4.0]]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([[-1.,  1.]], dtype=float32)

    Reference: Anil, Gupta, Koren, Singer, "Memory-Efficient Adaptive
    Optimization", NeurIPS 2019, arXiv:1901.11150.
    """
    return (
        scale_by_sm3(momentum),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def came(
    learning_rate: Rate = 2e-4,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    b3: Decay = 0.9999,
    weight_decay: Rate = 0.0,
    clip_threshold: NonNegative = 1.0,
    eps1: NonNegative = 1e-30,
    eps2: NonNegative = 1e-16,
):
    """CAME: Adafactor's clipped update, averaged, and damped by a factored confidence.

    u_t = g / sqrt(V_t), V_t the factored average (decay b2) of g^2 + eps1
    (``scale_by_factored_rms``), clipped to rms(u_t) <= clip_threshold
    (``clip_by_block_rms``); m_t = b1 m_{t-1} + (1 - b1) u_t and
    step = m_t / sqrt(S_t), S_t the factored average (decay b3) of
    (u_t - m_t)^2 + eps2 (``scale_by_confidence``; m_t alone for leaves of
    rank < 2); p_t = p_{t-1} - lr * (step + wd * p_{t-1}).  Keywords and
    defaults are pytorch-optimizer's (``betas`` = (b1, b2, b3), decoupled
    weight decay; its ``ams_bound`` is not modelled).  A leaf of rank >= 3 is
    factored over its two largest axes (Adafactor's choice); pytorch-optimizer
    uses the last two.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, b3: the decays of m, V and S, in [0, 1).
      weight_decay: wd, >= 0 or a schedule.
      clip_threshold: the largest RMS of u_t.
      eps1, eps2: added to g^2 and to the squared residual.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.came(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)   # lr * (1 - b1) * the clipped g / sqrt(g^2)
      Array([ 0.99, -1.99], dtype=float32)

    Reference: Luo et al., "CAME: Confidence-guided Adaptive Memory Efficient
    Optimization", ACL 2023, arXiv:2307.02047.
    """
    return (
        scale_by_factored_rms(True, b2, 0, 0, eps1, constant_decay_rate),
        clip_by_block_rms(clip_threshold),
        scale_by_confidence(b1, b3, eps2),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )
