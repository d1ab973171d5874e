"""Sign methods: every entry moves by the learning rate, in the direction of a sign.
Lion, signSGD, Signum, and Rprop (a step size per entry, adapted from sign
agreement).

Shared pieces: ``scale_by_sign``, ``scale_by_lion`` (``_sign``),
``scale_by_rprop`` (``_adaptive``).
"""

from __future__ import annotations

from jax.typing import ArrayLike

from .._accumulation import ema
from .._adaptive import (
    scale_by_rprop,
)
from .._checks import (
    Rate,
    StateDtype,
    UnitInterval,
)
from .._recipe import recipe
from .._scaling import scale_by_learning_rate
from .._sign import scale_by_lion, scale_by_sign
from .._weight_decay import add_decayed_weights


@recipe
def lion(
    learning_rate: Rate,
    b1: UnitInterval = 0.9,
    b2: UnitInterval = 0.99,
    mu_dtype: StateDtype = None,
    weight_decay: Rate = 1e-3,
    mask=None,
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
    return (
        scale_by_lion(b1, b2, mu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def sign_sgd(learning_rate: Rate):
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
    return (
        scale_by_sign(),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def signum(learning_rate: Rate, beta=0.9, accumulator_dtype: StateDtype = None):
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
    return (
        ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
        scale_by_sign(),
        scale_by_learning_rate(learning_rate),
    )


@recipe
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
    return (
        scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size),
        scale_by_learning_rate(1.0),
    )
