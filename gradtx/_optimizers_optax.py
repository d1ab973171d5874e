"""More of optax's optimizers, each a recipe: a short chain of public transforms.

Every name, keyword (in order) and default here is optax's, and the recipe
computes optax's math: a transform per line, in the order it applies.  The
transforms live in ``_sign`` (Lion, signSGD), ``_adaptive`` (AdaMax,
AdaBelief, Yogi, Adan, NovoGrad, optimistic gradients, Rprop, Polyak),
``_layerwise`` (trust ratios), ``_factored`` (Adafactor, SM3) and
``_accumulation`` (ema, noise), ``_quasi_newton`` (L-BFGS) and ``_linesearch``.
"""

from __future__ import annotations

from jax.typing import ArrayLike

from ._accumulation import add_noise, ema
from ._adaptive import (
    scale_by_adan,
    scale_by_belief,
    scale_by_infinity_norm,
    scale_by_novograd,
    scale_by_optimistic_gradient,
    scale_by_polyak,
    scale_by_rprop,
    scale_by_yogi,
)
from ._base import GradientTransformation
from ._checks import check_learning_rate, check_not_schedule, check_range, check_state_dtype
from ._clipping import clip_by_block_rms
from ._combine import chain, precondition
from ._factored import scale_by_factored_rms, scale_by_sm3
from ._layerwise import scale_by_param_block_rms, scale_by_trust_ratio
from ._linesearch import scale_by_zoom_linesearch
from ._momentum import trace
from ._optimizers import adam_direction, adam_step
from ._partition import masked
from ._quasi_newton import scale_by_lbfgs
from ._scaling import identity, scale, scale_by_learning_rate
from ._sign import scale_by_lion, scale_by_sign
from ._typing import ScalarOrSchedule
from ._weight_decay import add_decayed_weights, add_scaled_params

_DEFAULT_LINESEARCH = scale_by_zoom_linesearch(
    max_linesearch_steps=20, initial_guess_strategy="one"
)


def _recipe(name, hyperparams, *transforms) -> GradientTransformation:
    return chain(*transforms, name=name, hyperparams=hyperparams)


def _decay_mask(mask):
    """optax's ``mask=True`` (decay every leaf) is gradtx's ``mask=None``."""
    return None if mask is True else mask


def lion(
    learning_rate: ScalarOrSchedule, b1=0.9, b2=0.99, mu_dtype=None, weight_decay=1e-3, mask=None
):
    """Lion: p_t = p_{t-1} - lr * (sign(b1 m_{t-1} + (1 - b1) g_t) + wd * p_{t-1}).

    m_t = b2 * m_{t-1} + (1 - b2) * g_t.  Every entry moves by lr (plus the
    decay), so Lion's learning rate is typically 3-10x smaller than AdamW's
    and its weight decay 3-10x larger.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1: the interpolation weight of the moment in the step, in [0, 1].
      b2: the decay of the moment, in [0, 1].
      mu_dtype: the dtype m_t is stored in; None: each parameter's.
      weight_decay: wd, decoupled (multiplied by lr), >= 0 or a schedule.
      mask: which parameters decay (a pytree of bools or a function of params).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.lion(0.1, weight_decay=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.9], dtype=float32)

    Reference: Chen et al., "Symbolic Discovery of Optimization Algorithms",
    NeurIPS 2023, arXiv:2302.06675.
    """
    owner = "lion"
    check_learning_rate(owner, learning_rate)
    check_learning_rate(owner, weight_decay, name="weight_decay")
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "b1": b1,
            "b2": b2,
            "weight_decay": weight_decay,
            "mask": mask,
        },
        scale_by_lion(b1, b2, mu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def sign_sgd(learning_rate: ScalarOrSchedule):
    """signSGD: p_t = p_{t-1} - lr * sign(g_t).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.sign_sgd(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.9, -1.9], dtype=float32)

    Reference: Bernstein et al., "signSGD: Compressed Optimisation for
    Non-Convex Problems", ICML 2018, arXiv:1802.04434.
    """
    owner = "sign_sgd"
    check_learning_rate(owner, learning_rate)
    return _recipe(
        owner,
        {"learning_rate": learning_rate},
        scale_by_sign(),
        scale_by_learning_rate(learning_rate),
    )


def signum(learning_rate: ScalarOrSchedule, beta=0.9, accumulator_dtype=None):
    """Signum: p_t = p_{t-1} - lr * sign(m_t), m_t = beta * m_{t-1} + (1 - beta) * g_t.

    The average needs no bias correction: its sign does not change.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      beta: the decay of the average, in [0, 1].
      accumulator_dtype: the dtype m_t is stored in; None: each parameter's.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.signum(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.9, -1.9], dtype=float32)

    Reference: Bernstein et al., "signSGD: Compressed Optimisation for
    Non-Convex Problems", ICML 2018, arXiv:1802.04434, Algorithm 3.
    """
    owner = "signum"
    check_learning_rate(owner, learning_rate)
    return _recipe(
        owner,
        {"learning_rate": learning_rate, "beta": beta},
        ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
        scale_by_sign(),
        scale_by_learning_rate(learning_rate),
    )


def lamb(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-6,
    eps_root=0.0,
    weight_decay=0.0,
    mask=None,
):
    """LAMB: Adam's step plus decoupled decay, rescaled per leaf by the trust ratio ||p|| / ||step||.

    r_t = m_hat_t / (sqrt(v_hat_t + eps_root) + eps) + wd * p_{t-1},
    p_t = p_{t-1} - lr * ||p_{t-1}|| / ||r_t|| * r_t  (per leaf; ratio 1 where a norm is 0).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2: the decays of the first and second moments, in [0, 1).
      eps: added to the root, >= 0.
      eps_root: added under the root, >= 0.
      weight_decay: wd, >= 0 or a schedule.
      mask: which parameters decay.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.lamb(0.1)
      >>> params = jnp.array([3.0, 4.0])
      >>> updates, state = opt.update(jnp.array([1.0, 0.0]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([2.5, 4. ], dtype=float32)

    Reference: You et al., "Large Batch Optimization for Deep Learning:
    Training BERT in 76 minutes", ICLR 2020, arXiv:1904.00962.
    """
    owner = "lamb"
    check_learning_rate(owner, learning_rate)
    check_learning_rate(owner, weight_decay, name="weight_decay")
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "eps_root": eps_root,
            "weight_decay": weight_decay,
            "mask": mask,
        },
        adam_step(b1, b2, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )


def lars(
    learning_rate: ScalarOrSchedule,
    weight_decay=0.0,
    weight_decay_mask=True,
    trust_coefficient=0.001,
    eps=0.0,
    trust_ratio_mask=True,
    momentum=0.9,
    nesterov: bool = False,
):
    """LARS: SGD with momentum on a step rescaled per leaf by c * ||p|| / (||r|| + eps).

    r_t = g_t + wd * p_{t-1},  s_t = c * ||p_{t-1}|| / (||r_t|| + eps) * r_t (per leaf),
    m_t = momentum * m_{t-1} + lr * s_t,  p_t = p_{t-1} - m_t (optax's order:
    the learning rate before the momentum).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      weight_decay: wd, >= 0 or a schedule.
      weight_decay_mask: which parameters decay (True: all).
      trust_coefficient: c.
      eps: added to ||r_t||, >= 0.
      trust_ratio_mask: which parameters are rescaled (True: all).
      momentum: the momentum coefficient, in [0, 1).
      nesterov: use Nesterov momentum.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.lars(1.0, trust_coefficient=0.1)
      >>> params = jnp.array([3.0, 4.0])
      >>> updates, state = opt.update(jnp.array([1.0, 0.0]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([2.5, 4. ], dtype=float32)

    Reference: You, Gitman, Ginsburg, "Large Batch Training of Convolutional
    Networks", 2017, arXiv:1708.03888.
    """
    owner = "lars"
    check_learning_rate(owner, learning_rate)
    check_learning_rate(owner, weight_decay, name="weight_decay")
    check_range(owner, "momentum", momentum, 0, 1, high_open=True)
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "weight_decay": weight_decay,
            "weight_decay_mask": weight_decay_mask,
            "trust_coefficient": trust_coefficient,
            "eps": eps,
            "trust_ratio_mask": trust_ratio_mask,
            "momentum": momentum,
            "nesterov": nesterov,
        },
        add_decayed_weights(weight_decay, _decay_mask(weight_decay_mask)),
        masked(
            scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps), trust_ratio_mask
        ),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov=nesterov),
    )


def adafactor(
    learning_rate: ScalarOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate=0.8,
    decay_offset=0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold=1.0,
    momentum=None,
    dtype_momentum="float32",
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
    owner = "adafactor"
    if learning_rate is not None:
        check_learning_rate(owner, learning_rate)
    dtype_momentum = check_state_dtype(owner, "dtype_momentum", dtype_momentum)
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
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "min_dim_size_to_factor": min_dim_size_to_factor,
            "decay_rate": decay_rate,
            "decay_offset": decay_offset,
            "multiply_by_parameter_scale": multiply_by_parameter_scale,
            "clipping_threshold": clipping_threshold,
            "momentum": momentum,
            "weight_decay_rate": weight_decay_rate,
            "eps": eps,
            "factored": factored,
        },
        scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps),
        *optional,
        scale(-1.0),
    )


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-16,
    eps_root=1e-16,
    *,
    nesterov: bool = False,
):
    """AdaBelief: p_t = p_{t-1} - lr * m_hat_t / (sqrt(s_hat_t) + eps), s the average of (g - m)^2.

    s_t = b2 * s_{t-1} + (1 - b2) * (g_t - m_t)^2 + eps_root (``scale_by_belief``).
    The defaults are optax's; the paper uses eps = 1e-8 and eps_root = 0.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2: the decays of m and s, in [0, 1].
      eps: added to the root; eps_root: added to s_t.
      nesterov: use optax's look-ahead numerator.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adabelief(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.8888896, -1.8888897], dtype=float32)

    Reference: Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the
    Belief in Observed Gradients", NeurIPS 2020, arXiv:2010.07468.
    """
    owner = "adabelief"
    check_learning_rate(owner, learning_rate)
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "eps_root": eps_root,
            "nesterov": nesterov,
        },
        scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


def adamax(learning_rate: ScalarOrSchedule, b1=0.9, b2=0.999, eps=1e-8):
    """AdaMax: p_t = p_{t-1} - lr * m_hat_t / u_t, u_t = max(b2 * u_{t-1}, |g_t| + eps).

    Adam's numerator over an exponentially weighted infinity norm.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1: the decay of the first moment, in [0, 1].
      b2: the decay of the infinity norm, in [0, 1].
      eps: added to |g_t|, >= 0.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adamax(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.90000004, -1.9       ], dtype=float32)

    Reference: Kingma, Ba, "Adam: A Method for Stochastic Optimization",
    ICLR 2015, arXiv:1412.6980, Algorithm 2.
    """
    owner = "adamax"
    check_learning_rate(owner, learning_rate)
    return _recipe(
        owner,
        {"learning_rate": learning_rate, "b1": b1, "b2": b2, "eps": eps},
        precondition(adam_direction(b1), by=scale_by_infinity_norm(b2, eps)),
        scale_by_learning_rate(learning_rate),
    )


def adamaxw(
    learning_rate: ScalarOrSchedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4, mask=None
):
    """AdaMaxW: AdaMax with decoupled weight decay, p_t = p_{t-1} - lr * (adamax_t + wd * p_{t-1}).

    Args:
      learning_rate, b1, b2, eps: as in ``adamax``.
      weight_decay: wd, >= 0 or a schedule.
      mask: which parameters decay.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adamaxw(0.1, weight_decay=0.5)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.85     , -1.8000001], dtype=float32)

    Reference: Loshchilov, Hutter, "Decoupled Weight Decay Regularization",
    ICLR 2019, arXiv:1711.05101.
    """
    owner = "adamaxw"
    check_learning_rate(owner, learning_rate)
    check_learning_rate(owner, weight_decay, name="weight_decay")
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "weight_decay": weight_decay,
            "mask": mask,
        },
        precondition(adam_direction(b1), by=scale_by_infinity_norm(b2, eps)),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def adan(
    learning_rate: ScalarOrSchedule,
    b1=0.98,
    b2=0.92,
    b3=0.99,
    eps=1e-8,
    eps_root=1e-8,
    weight_decay=0.0,
    mask=None,
):
    """Adan: p_t = p_{t-1} - lr * ((m_hat_t + (1 - b2) v_hat_t) / (sqrt(n_hat_t + eps_root) + eps) + wd * p).

    m averages the gradient, v its change, n the square of
    g_t + (1 - b2)(g_t - g_{t-1}) (``scale_by_adan``).  The alias's
    eps_root default is 1e-8, the transform's 0, as in optax.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, b3: the decays of m, v and n, in [0, 1].
      eps, eps_root: added to and under the root.
      weight_decay: wd, >= 0 or a schedule.
      mask: which parameters decay.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adan(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.9, -1.9], dtype=float32)

    Reference: Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for
    Faster Optimizing Deep Models", 2022, arXiv:2208.06677.
    """
    owner = "adan"
    check_learning_rate(owner, learning_rate)
    check_learning_rate(owner, weight_decay, name="weight_decay")
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "b1": b1,
            "b2": b2,
            "b3": b3,
            "eps": eps,
            "eps_root": eps_root,
            "weight_decay": weight_decay,
            "mask": mask,
        },
        scale_by_adan(b1, b2, b3, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def novograd(
    learning_rate: ScalarOrSchedule, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0, weight_decay=0.0
):
    """NovoGrad: layer-wise normalised gradients with momentum (``scale_by_novograd``).

    v_t = b2 v_{t-1} + (1 - b2) ||g_t||^2 per leaf (v_1 = ||g_1||^2),
    m_t = b1 m_{t-1} + g_t / (sqrt(v_t + eps_root) + eps) + wd * p_{t-1},
    p_t = p_{t-1} - lr * m_t.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2: the decays of m and v, in [0, 1].
      eps, eps_root: added to and under the root.
      weight_decay: wd, inside the moment.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.novograd(0.1, eps=0.0)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -4.0]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.94, -1.92], dtype=float32)

    Reference: Ginsburg et al., "Stochastic Gradient Methods with Layer-wise
    Adaptive Moments for Training of Deep Networks", 2019, arXiv:1905.11286.
    """
    owner = "novograd"
    check_learning_rate(owner, learning_rate)
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "eps_root": eps_root,
            "weight_decay": weight_decay,
        },
        scale_by_novograd(b1, b2, eps, eps_root, weight_decay),
        scale_by_learning_rate(learning_rate),
    )


def yogi(learning_rate: ScalarOrSchedule, b1=0.9, b2=0.999, eps=1e-3):
    """Yogi: Adam with v_t = v_{t-1} - (1 - b2) * sign(v_{t-1} - g_t^2) * g_t^2 (``scale_by_yogi``).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2: the rates of m and v, in [0, 1].
      eps: added to the root (optax's and the paper's 1e-3).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.yogi(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.90003926, -1.9004006 ], dtype=float32)

    Reference: Zaheer et al., "Adaptive Methods for Nonconvex Optimization",
    NeurIPS 2018.
    """
    owner = "yogi"
    check_learning_rate(owner, learning_rate)
    return _recipe(
        owner,
        {"learning_rate": learning_rate, "b1": b1, "b2": b2, "eps": eps},
        scale_by_yogi(b1, b2, eps),
        scale_by_learning_rate(learning_rate),
    )


def sm3(learning_rate: ScalarOrSchedule, momentum=0.9):
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
    owner = "sm3"
    check_learning_rate(owner, learning_rate)
    return _recipe(
        owner,
        {"learning_rate": learning_rate, "momentum": momentum},
        scale_by_sm3(momentum),
        scale_by_learning_rate(learning_rate),
    )


def fromage(learning_rate: ScalarOrSchedule, min_norm=1e-6):
    """Fromage: p_t = (p_{t-1} - lr * ||p_{t-1}|| / ||g_t|| * g_t) / sqrt(1 + lr^2), per leaf.

    The trust-ratio step, then a shrink that keeps the parameters' norm from
    growing.  Norms are floored at ``min_norm``.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      min_norm: the floor of both norms, >= 0.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.fromage(0.75)
      >>> params = jnp.array([3.0, 4.0])
      >>> updates, state = opt.update(jnp.array([0.0, 1.0]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([2.4       , 0.20000005], dtype=float32)

    Reference: Bernstein, Vahdat, Yue, Liu, "On the distance between two
    neural networks and the stability of learning", NeurIPS 2020,
    arXiv:2002.03432.
    """
    owner = "fromage"
    check_learning_rate(owner, learning_rate)

    def shrink(lr):
        return 1 / (1 + lr**2) ** 0.5

    if callable(learning_rate):
        step = lambda count: shrink(learning_rate(count)) * learning_rate(count)  # noqa: E731
        rescale = lambda count: shrink(learning_rate(count)) - 1  # noqa: E731
    else:
        step, rescale = learning_rate * shrink(learning_rate), shrink(learning_rate) - 1
    return _recipe(
        owner,
        {"learning_rate": learning_rate, "min_norm": min_norm},
        scale_by_trust_ratio(min_norm),
        scale_by_learning_rate(step),
        add_scaled_params(rescale),
    )


def rprop(
    learning_rate: ArrayLike,
    eta_minus=0.5,
    eta_plus=1.2,
    min_step_size=1e-6,
    max_step_size=50.0,
):
    """Rprop, as optax computes it: sign steps with per-entry step sizes (``scale_by_rprop``).

    optax 0.2.8's step lags one gradient behind the published rule and its
    first update is zero (see ``scale_by_rprop``); gradtx follows optax
    under optax's name.

    Args:
      learning_rate: the initial step size, > 0.
      eta_minus, eta_plus: the factors on a sign flip and on agreement.
      min_step_size, max_step_size: the bounds of the step sizes.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.rprop(0.1)
      >>> params, state = jnp.array([1.0]), opt.init(jnp.array([1.0]))
      >>> _, state = opt.update(jnp.array([2.0]), state, params)
      >>> opt.update(jnp.array([2.0]), state, params)[0]
      Array([-0.1], dtype=float32)

    Reference: Riedmiller, Braun, "A Direct Adaptive Method for Faster
    Backpropagation Learning: The RPROP Algorithm", ICNN 1993.
    """
    owner = "rprop"
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "eta_minus": eta_minus,
            "eta_plus": eta_plus,
            "min_step_size": min_step_size,
            "max_step_size": max_step_size,
        },
        scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size),
        scale_by_learning_rate(1.0),
    )


def optimistic_gradient_descent(learning_rate: ScalarOrSchedule, alpha=1.0, beta=1.0):
    """Optimistic gradient descent: p_t = p_{t-1} - lr * ((alpha + beta) g_t - beta g_{t-1}).

    g_0 is taken to be g_1.  For min-max games, where plain gradient
    descent-ascent circles.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      alpha: the weight of the current gradient.
      beta: the optimism, the weight of the gradient change.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.optimistic_gradient_descent(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.7 , -1.95], dtype=float32)

    Reference: Mokhtari, Ozdaglar, Pattathil, "A Unified Analysis of
    Extra-gradient and Optimistic Gradient Methods for Saddle Point Problems",
    AISTATS 2020, arXiv:1901.08511.
    """
    owner = "optimistic_gradient_descent"
    check_learning_rate(owner, learning_rate)
    return _recipe(
        owner,
        {"learning_rate": learning_rate, "alpha": alpha, "beta": beta},
        scale_by_optimistic_gradient(alpha, beta),
        scale_by_learning_rate(learning_rate),
    )


def optimistic_adam(
    learning_rate: float,
    optimism=None,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    *,
    nesterov: bool = True,
):
    """Optimistic Adam: the optimistic step on Adam's update, u_t = (lr + o) a_t - o a_{t-1}.

    a_t is Adam's m_hat_t / (sqrt(v_hat_t + eps_root) + eps), with optax's
    Nesterov numerator by default; o = ``optimism`` (default: lr);
    p_t = p_{t-1} - u_t.  This is optax's (deprecated) ``optimistic_adam``:
    the learning rate is the optimistic step's alpha, so it must be a
    number, not a schedule.

    Args:
      learning_rate: lr, a number >= 0.
      optimism: o, or None for lr.
      b1, b2, eps, eps_root, mu_dtype: as in ``adam``.
      nesterov: use the Nesterov numerator.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.optimistic_adam(0.1, nesterov=False)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.9, -1.9], dtype=float32)

    Reference: Daskalakis, Ilyas, Syrgkanis, Zeng, "Training GANs with
    Optimism", ICLR 2018, arXiv:1711.00141.
    """
    owner = "optimistic_adam"
    check_not_schedule(owner, "learning_rate", learning_rate, "it is the optimistic step's alpha")
    check_learning_rate(owner, learning_rate)
    optimism = learning_rate if optimism is None else optimism
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "optimism": optimism,
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "eps_root": eps_root,
            "nesterov": nesterov,
        },
        adam_step(b1, b2, eps, eps_root, mu_dtype, nesterov),
        scale_by_optimistic_gradient(alpha=learning_rate, beta=optimism),
        scale_by_learning_rate(1.0),
    )


def optimistic_adam_v2(
    learning_rate: ScalarOrSchedule,
    *,
    alpha=1.0,
    beta=1.0,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    nesterov: bool = True,
):
    """Optimistic Adam with a schedulable learning rate: p_t = p_{t-1} - lr_t * ((alpha + beta) a_t - beta a_{t-1}).

    a_t is Adam's m_hat_t / (sqrt(v_hat_t + eps_root) + eps), with optax's
    Nesterov numerator by default.  Unlike ``optimistic_adam``, the optimism
    (alpha, beta) is separate from the learning rate, which multiplies the
    whole optimistic step and may be a schedule.  optax's
    ``optimistic_adam_v2``, keyword for keyword.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      alpha: the weight of the current step in the optimistic step, >= 0.
      beta: the weight of the correction by the previous step, >= 0.
      b1, b2, eps, eps_root, mu_dtype: as in ``adam``.
      nesterov: use the Nesterov numerator.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.optimistic_adam_v2(0.1, alpha=1.0, beta=0.0, nesterov=False)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.9, -1.9], dtype=float32)

    Reference: Daskalakis, Ilyas, Syrgkanis, Zeng, "Training GANs with
    Optimism", ICLR 2018, arXiv:1711.00141.
    """
    owner = "optimistic_adam_v2"
    check_learning_rate(owner, learning_rate)
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "alpha": alpha,
            "beta": beta,
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "eps_root": eps_root,
            "nesterov": nesterov,
        },
        adam_step(b1, b2, eps, eps_root, mu_dtype, nesterov),
        scale_by_optimistic_gradient(alpha=alpha, beta=beta),
        scale_by_learning_rate(learning_rate),
    )


def polyak_sgd(max_learning_rate=1.0, scaling=1.0, f_min=0.0, eps=0.0, variant: str = "sps"):
    """SGD with Polyak's step size: p_t = p_{t-1} + min((f(p) - f_min) / (||d_t||^2 + eps), max_lr) d_t.

    d_t = -s_t * g_t with s_t = ``scaling`` (a number or a schedule); the
    loss is passed to ``update(..., value=loss)``.  As in optax, the step
    size is measured on the scaled d_t, so for eps = 0 a scaling s divides
    the Polyak step (f - f_min) / ||g||^2 by s while the direction keeps s.

    Args:
      max_learning_rate: the largest step size.
      scaling: s, a number >= 0 or a schedule.
      f_min: a lower bound of the loss.
      eps: added to ||g||^2.
      variant: "sps" or "sps+" (clip the gap at 0).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.polyak_sgd()
      >>> params = jnp.array([2.0])   # loss p^2 / 2 = 2, gradient 2: step 2 / 4 * 2
      >>> updates, state = opt.update(jnp.array([2.0]), opt.init(params), params, value=jnp.array(2.0))
      >>> gradtx.apply_updates(params, updates)
      Array([1.], dtype=float32)

    Reference: Loizou et al., "Stochastic Polyak Step-size for SGD: An
    Adaptive Learning Rate for Fast Convergence", AISTATS 2021, arXiv:2002.10542.
    """
    owner = "polyak_sgd"
    check_learning_rate(owner, scaling, name="scaling")
    return _recipe(
        owner,
        {
            "max_learning_rate": max_learning_rate,
            "scaling": scaling,
            "f_min": f_min,
            "eps": eps,
            "variant": variant,
        },
        scale_by_learning_rate(scaling),
        scale_by_polyak(f_min, max_learning_rate, eps, variant),
    )


def noisy_sgd(learning_rate: ScalarOrSchedule, eta=0.01, gamma=0.55, key=None, *, seed=None):
    """Noisy SGD: p_t = p_{t-1} - lr * (g_t + sqrt(eta / t^gamma) * z_t), z_t ~ N(0, I).

    The same ``key`` gives the same noise as optax's ``noisy_sgd``.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      eta: the initial variance, >= 0.
      gamma: the decay exponent of the variance, >= 0.
      key: a ``jax.random.key`` or an int seed (None: 0).
      seed: optax's older spelling of ``key``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.noisy_sgd(0.1, eta=0.0, key=0)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.7 , -1.95], dtype=float32)

    Reference: Neelakantan et al., "Adding Gradient Noise Improves Learning
    for Very Deep Networks", 2015, arXiv:1511.06807.
    """
    owner = "noisy_sgd"
    check_learning_rate(owner, learning_rate)
    return _recipe(
        owner,
        {"learning_rate": learning_rate, "eta": eta, "gamma": gamma},
        add_noise(eta, gamma, key, seed=seed),
        scale_by_learning_rate(learning_rate),
    )


def lbfgs(
    learning_rate: ScalarOrSchedule | None = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch=_DEFAULT_LINESEARCH,
):
    """L-BFGS: p_k+1 = p_k - eta_k H_k g_k, with H_k the two-loop inverse-Hessian estimate.

    eta_k comes from the line search (default: ``scale_by_zoom_linesearch(
    max_linesearch_steps=20, initial_guess_strategy="one")``, strong Wolfe
    steps) times ``learning_rate`` if given.  With the line search, the
    update needs ``value=``, ``grad=`` and ``value_fn=``; pair it with
    ``value_and_grad_from_state`` to reuse the search's last evaluation.

    Args:
      learning_rate: a number, a schedule or None (1).
      memory_size: the number of past steps kept, >= 1.
      scale_init_precond: scale the initial inverse Hessian by <y, s> / <y, y>.
      linesearch: a line-search transform, or None for none.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx
      >>> f = lambda x: jnp.sum((x - 1.0) ** 2) + 0.5 * jnp.sum(x ** 4)
      >>> opt, x = gradtx.lbfgs(), jnp.zeros(3)
      >>> @jax.jit
      ... def step(x, state):
      ...     value, grad = jax.value_and_grad(f)(x)
      ...     updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
      ...     return gradtx.apply_updates(x, updates), state
      >>> state = opt.init(x)
      >>> for _ in range(8):
      ...     x, state = step(x, state)
      >>> x.round(4)
      Array([0.6823, 0.6823, 0.6823], dtype=float32)

    Reference: Liu, Nocedal, "On the limited memory BFGS method for large
    scale optimization", Math. Programming 1989.
    """
    owner = "lbfgs"
    if learning_rate is not None:
        check_learning_rate(owner, learning_rate)
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "memory_size": memory_size,
            "scale_init_precond": scale_init_precond,
        },
        scale_by_lbfgs(memory_size, scale_init_precond),
        scale_by_learning_rate(1.0 if learning_rate is None else learning_rate),
        identity() if linesearch is None else linesearch,
    )
