"""SGD and its momentum relatives: plain, heavy-ball and Nesterov SGD, noisy SGD,
optimistic gradient descent, MADGRAD's dual-averaged momentum and DP-SGD.

Shared pieces: ``trace`` and ``scale_by_momentum`` (``_momentum``), ``add_noise``
(``_accumulation``), ``scale_by_optimistic_gradient`` (``_adaptive``),
``scale_by_madgrad`` (``_madgrad``), ``differentially_private_aggregate``
(``_privacy``), ``scale_by_learning_rate``.
"""

from __future__ import annotations

from .._accumulation import add_noise
from .._adaptive import (
    scale_by_optimistic_gradient,
)
from .._checks import (
    Decay,
    NonNegative,
    OptionalDecay,
    Rate,
    StateDtype,
)
from .._madgrad import scale_by_madgrad
from .._momentum import trace
from .._privacy import differentially_private_aggregate
from .._recipe import recipe
from .._scaling import identity, scale_by_learning_rate
from .._weight_decay import add_decayed_weights


@recipe
def sgd(
    learning_rate: Rate,
    momentum: OptionalDecay = None,
    nesterov: bool = False,
    accumulator_dtype: StateDtype = None,
):
    """Stochastic gradient descent: p_t = p_{t-1} - lr * g_t, optionally with momentum.

    With ``momentum`` the step follows m_t = momentum * m_{t-1} + g_t (heavy
    ball, as PyTorch and optax); with ``nesterov`` it follows
    momentum * m_t + g_t.

    Args:
      learning_rate: lr, a number >= 0 or a schedule ``step -> value``.
      momentum: None (plain gradient descent) or a coefficient in [0, 1).
      nesterov: use Nesterov momentum.
      accumulator_dtype: the dtype the momentum is stored in; None: each
        parameter's dtype.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.sgd(0.1, momentum=0.9)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -2.1], dtype=float32)
    """
    if momentum is None:
        if nesterov:
            raise ValueError("sgd: nesterov=True needs a momentum in [0, 1), got momentum=None")
        moment = identity()
    else:
        moment = trace(momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype)
    return (
        moment,
        scale_by_learning_rate(learning_rate),
    )


@recipe
def noisy_sgd(learning_rate: Rate, eta=0.01, gamma=0.55, key=None, *, seed=None):
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
    return (
        add_noise(eta, gamma, key, seed=seed),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def optimistic_gradient_descent(learning_rate: Rate, alpha=1.0, beta=1.0):
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
    return (
        scale_by_optimistic_gradient(alpha, beta),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def madgrad(
    learning_rate: Rate, momentum: Decay = 0.9, weight_decay: Rate = 0.0, eps: NonNegative = 1e-6
):
    """MADGRAD: L2 weight decay, then MADGRAD's dual-averaged step (``scale_by_madgrad``).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      momentum: the averaging weight of the current point, in [0, 1).
      weight_decay: L2, added to the gradient.
      eps: as in ``scale_by_madgrad``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.madgrad(1.0, momentum=0.0, eps=0.0)
      >>> params = jnp.array([1.0])
      >>> updates, state = opt.update(jnp.array([8.0]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([-1.], dtype=float32)

    Reference: Defazio, Jelassi, "Adaptivity without Compromise", JMLR 2022,
    arXiv:2101.11075.
    """
    return (
        add_decayed_weights(weight_decay),
        scale_by_madgrad(learning_rate, momentum, eps),
    )


@recipe
def dpsgd(
    learning_rate: Rate,
    l2_norm_clip: NonNegative,
    noise_multiplier: NonNegative,
    seed: int,
    momentum: OptionalDecay = None,
    nesterov: bool = False,
):
    """DP-SGD: SGD on the clipped, noised average of per-example gradients.

    u_t = (sum_i g_i min(1, C / ||g_i||) + C * sigma * z_t) / B
    (``differentially_private_aggregate``), then optional (Nesterov)
    momentum and p_t = p_{t-1} - lr * u_t.  The updates take one gradient
    per example: a leading batch axis on every leaf.  The same ``seed``
    gives the same noise as optax's ``dpsgd``.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      l2_norm_clip: C, the largest norm one example may contribute.
      noise_multiplier: sigma, the noise's standard deviation relative to C.
      seed: the int seed of the noise's key.
      momentum: None (no momentum) or a coefficient in [0, 1).
      nesterov: use Nesterov momentum.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.dpsgd(0.1, l2_norm_clip=1.0, noise_multiplier=0.0, seed=0)
      >>> params = jnp.array([1.0, -2.0])
      >>> per_example = jnp.array([[3.0, 4.0], [0.3, 0.4]])
      >>> updates, state = opt.update(per_example, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.955, -2.06 ], dtype=float32)

    Reference: Abadi et al., "Deep Learning with Differential Privacy",
    CCS 2016, arXiv:1607.00133.
    """
    if momentum is None:
        if nesterov:
            raise ValueError("dpsgd: nesterov=True needs a momentum in [0, 1), got momentum=None")
        moment = identity()
    else:
        moment = trace(momentum, nesterov=nesterov)
    return (
        differentially_private_aggregate(l2_norm_clip, noise_multiplier, seed=seed),
        moment,
        scale_by_learning_rate(learning_rate),
    )
