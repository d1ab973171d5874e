"""The Adam family: Adam, NAdam, AdamW, NAdamW, AMSGrad, RAdam, AdaMax(W) and the
optimistic Adams.

Each divides a first moment by a second moment side by side in
``precondition(direction, by=...)``: ``adam_step``, ``scale_by_amsgrad`` and
``scale_by_radam`` (``gradtx._adam_step``), then scales by the learning rate.  Every name is optax's, with optax's
keywords, defaults and math.
"""

from __future__ import annotations

from .._adam_step import adam_direction, adam_step, scale_by_amsgrad, scale_by_radam
from .._adaptive import (
    scale_by_infinity_norm,
    scale_by_optimistic_gradient,
)
from .._checks import (
    Decay,
    NonNegative,
    Rate,
    StateDtype,
    check_not_schedule,
)
from .._combine import precondition
from .._recipe import recipe
from .._scaling import scale_by_learning_rate
from .._weight_decay import add_decayed_weights


@recipe
def adam(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    eps: NonNegative = 1e-8,
    eps_root: NonNegative = 0.0,
    mu_dtype: StateDtype = None,
    *,
    nesterov: bool = False,
    nu_dtype: StateDtype = None,
):
    """Adam: momentum and bias correction, preconditioned by RMSprop's second moment.

    m_t = b1 * m_{t-1} + (1 - b1) * g_t,      m_hat_t = m_t / (1 - b1^t),
    v_t = b2 * v_{t-1} + (1 - b2) * g_t^2,    v_hat_t = v_t / (1 - b2^t),
    p_t = p_{t-1} - lr * m_hat_t / (sqrt(v_hat_t + eps_root) + eps).

    This is Algorithm 1 of the paper, eps outside the root (as PyTorch and
    optax); Keras adds its eps to the root of the *uncorrected* v ("eps hat").
    With ``nesterov`` the numerator is NAdam's look-ahead,
    b1 * m_t / (1 - b1^(t+1)) + (1 - b1) * g_t / (1 - b1^t), as optax's
    ``adam(nesterov=True)`` and ``nadam``.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1: the decay of the first moment, in [0, 1).
      b2: the decay of the second moment, in [0, 1).
      eps: added to the root, >= 0.
      eps_root: added under the root, >= 0.
      mu_dtype, nu_dtype: the dtypes m and v are stored in (e.g.
        ``jnp.bfloat16`` halves that moment's memory); None: each parameter's
        dtype.  The arithmetic runs in at least float32 either way.
      nesterov: use NAdam's look-ahead numerator.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adam(0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.9], dtype=float32)

    Reference: Kingma, Ba, "Adam: A Method for Stochastic Optimization",
    ICLR 2015, arXiv:1412.6980.
    """
    return (
        adam_step(b1, b2, eps, eps_root, mu_dtype, nesterov, nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def nadam(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    eps: NonNegative = 1e-8,
    eps_root: NonNegative = 0.0,
    mu_dtype: StateDtype = None,
    *,
    nu_dtype: StateDtype = None,
):
    """NAdam as optax defines it: ``adam(..., nesterov=True)``.

    p_t = p_{t-1} - lr * (b1 * m_t / (1 - b1^(t+1)) + (1 - b1) * g_t / (1 - b1^t))
    / (sqrt(v_hat_t + eps_root) + eps), with a constant b1.  PyTorch's and
    Keras's NAdam warm b1 up with Dozat's momentum schedule
    (``gradtx.presets.torch.nadam``, ``gradtx.presets.keras.nadam``).

    Args:
      learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype: as in ``adam``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.nadam(0.1)
      >>> params = {"w": jnp.array([1.0])}
      >>> updates, state = opt.update({"w": jnp.array([2.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([0.8526326], dtype=float32)

    Reference: Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016
    workshop.
    """
    return (
        adam_step(b1, b2, eps, eps_root, mu_dtype, True, nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def adamw(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    eps: NonNegative = 1e-8,
    eps_root: NonNegative = 0.0,
    mu_dtype: StateDtype = None,
    weight_decay: Rate = 1e-4,
    mask=None,
    *,
    nesterov: bool = False,
    nu_dtype: StateDtype = None,
):
    """AdamW: Adam with decoupled weight decay, p_t = p_{t-1} - lr * (adam_t + wd * p_{t-1}).

    The decay is multiplied by the learning rate, as in PyTorch and optax.
    The default weight_decay is optax's 1e-4; PyTorch's is 1e-2 and Keras's
    4e-3.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov: as in ``adam``.
      weight_decay: wd, >= 0 or a schedule.
      mask: which parameters decay (a pytree of bools or a function of params).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adamw(0.1, weight_decay=0.5)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.8500007, -1.8000007], dtype=float32)

    Reference: Loshchilov, Hutter, "Decoupled Weight Decay Regularization",
    ICLR 2019, arXiv:1711.05101.
    """
    return (
        adam_step(b1, b2, eps, eps_root, mu_dtype, nesterov, nu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def nadamw(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    eps: NonNegative = 1e-8,
    eps_root: NonNegative = 0.0,
    mu_dtype: StateDtype = None,
    weight_decay: Rate = 1e-4,
    mask=None,
    *,
    nu_dtype: StateDtype = None,
):
    """NAdamW as optax defines it: ``adamw(..., nesterov=True)``.

    NAdam's look-ahead numerator (see ``nadam``) with AdamW's decoupled
    weight decay.

    Args:
      learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype: as in ``adamw``.
      weight_decay, mask: as in ``adamw``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.nadamw(0.1, weight_decay=0.0)
      >>> params = {"w": jnp.array([1.0])}
      >>> updates, state = opt.update({"w": jnp.array([2.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([0.8526326], dtype=float32)

    Reference: Dozat, "Incorporating Nesterov Momentum into Adam", 2016;
    Loshchilov, Hutter, "Decoupled Weight Decay Regularization", 2019.
    """
    return (
        adam_step(b1, b2, eps, eps_root, mu_dtype, True, nu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def amsgrad(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    eps: NonNegative = 1e-8,
    eps_root: NonNegative = 0.0,
    mu_dtype: StateDtype = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: StateDtype = None,
):
    """AMSGrad: Adam dividing by the root of the largest corrected second moment so far.

    p_t = p_{t-1} - lr * m_hat_t / (sqrt(max_{s<=t} v_hat_s + eps_root) + eps).
    The maximum is taken of the bias-corrected v (optax's order); PyTorch
    takes it of the raw v (``scale_by_max_rms(max_before_correction=True)``).
    With both corrections off this is the paper's original rule.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, eps, eps_root, mu_dtype, nu_dtype: as in ``adam`` (nu_dtype also
        stores the running maximum).
      bias_correction_mu: divide m_t by 1 - b1^t.
      bias_correction_nu: divide v_t by 1 - b2^t before the maximum.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.amsgrad(0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.9], dtype=float32)

    Reference: Reddi, Kale, Kumar, "On the Convergence of Adam and Beyond",
    ICLR 2018.
    """
    return (
        scale_by_amsgrad(
            b1,
            b2,
            eps,
            eps_root,
            mu_dtype,
            bias_correction_mu,
            bias_correction_nu,
            nu_dtype=nu_dtype,
        ),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def radam(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    eps: NonNegative = 1e-8,
    eps_root: NonNegative = 0.0,
    threshold=5.0,
    *,
    nesterov: bool = False,
):
    """RAdam: Adam whose adaptive step is switched on, and rectified, once its variance is finite.

    rho_inf = 2 / (1 - b2) - 1,   rho_t = rho_inf - 2 t b2^t / (1 - b2^t),
    r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)),
    p_t = p_{t-1} - lr * r_t * m_hat_t / (sqrt(v_hat_t + eps_root) + eps)  where rho_t > threshold,
    p_t = p_{t-1} - lr * m_hat_t                                            otherwise.

    optax's placement of eps (after the bias correction of v);
    ``gradtx.presets.torch.radam`` has PyTorch's.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, eps, eps_root: as in ``adam``.
      threshold: rectify only when rho_t exceeds it, >= 4.
      nesterov: use NAdam's look-ahead numerator.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.radam(0.1)
      >>> params = {"w": jnp.array([1.0])}
      >>> updates, state = opt.update({"w": jnp.array([2.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]   # no adaptive step yet: p - lr * m_hat
      Array([0.8], dtype=float32)

    Reference: Liu, Jiang, He, Chen, Liu, Gao, Han, "On the Variance of the
    Adaptive Learning Rate and Beyond", ICLR 2020, arXiv:1908.03265.
    """
    return (
        scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def adamax(learning_rate: Rate, b1=0.9, b2=0.999, eps=1e-8):
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
    return (
        precondition(adam_direction(b1), by=scale_by_infinity_norm(b2, eps)),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def adamaxw(learning_rate: Rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay: Rate = 1e-4, mask=None):
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
    return (
        precondition(adam_direction(b1), by=scale_by_infinity_norm(b2, eps)),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def optimistic_adam(
    learning_rate: NonNegative,
    optimism=None,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: StateDtype = None,
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
    optimism = learning_rate if optimism is None else optimism
    return (
        adam_step(b1, b2, eps, eps_root, mu_dtype, nesterov),
        scale_by_optimistic_gradient(alpha=learning_rate, beta=optimism),
        scale_by_learning_rate(1.0),
    )


@recipe
def optimistic_adam_v2(
    learning_rate: Rate,
    *,
    alpha=1.0,
    beta=1.0,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: StateDtype = None,
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
    return (
        adam_step(b1, b2, eps, eps_root, mu_dtype, nesterov),
        scale_by_optimistic_gradient(alpha=alpha, beta=beta),
        scale_by_learning_rate(learning_rate),
    )
