"""Layer-wise methods: the step of each parameter block is scaled by a ratio of
norms.  LAMB and LARS (trust ratios), Fromage and NovoGrad (per-layer
normalisation).

Shared pieces: ``scale_by_trust_ratio`` and ``scale_by_param_block_rms``
(``_layerwise``), ``scale_by_novograd`` (``_adaptive``), ``adam_step``.
"""

from __future__ import annotations

from .._adaptive import (
    scale_by_novograd,
)
from .._checks import (
    Decay,
    Rate,
)
from .._layerwise import scale_by_trust_ratio
from .._momentum import trace
from .._partition import masked
from .._recipe import recipe
from .._scaling import scale_by_learning_rate
from .._weight_decay import add_decayed_weights, add_scaled_params
from ._adam import adam_step


@recipe
def lamb(
    learning_rate: Rate,
    b1=0.9,
    b2=0.999,
    eps=1e-6,
    eps_root=0.0,
    weight_decay: Rate = 0.0,
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
    return (
        adam_step(b1, b2, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def lars(
    learning_rate: Rate,
    weight_decay: Rate = 0.0,
    weight_decay_mask=True,
    trust_coefficient=0.001,
    eps=0.0,
    trust_ratio_mask=True,
    momentum: Decay = 0.9,
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
    return (
        add_decayed_weights(weight_decay, _decay_mask(weight_decay_mask)),
        masked(
            scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps), trust_ratio_mask
        ),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov=nesterov),
    )


@recipe
def fromage(learning_rate: Rate, min_norm=1e-6):
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

    def shrink(lr):
        return 1 / (1 + lr**2) ** 0.5

    if callable(learning_rate):
        step = lambda count: shrink(learning_rate(count)) * learning_rate(count)  # noqa: E731
        rescale = lambda count: shrink(learning_rate(count)) - 1  # noqa: E731
    else:
        step, rescale = learning_rate * shrink(learning_rate), shrink(learning_rate) - 1
    return (
        scale_by_trust_ratio(min_norm),
        scale_by_learning_rate(step),
        add_scaled_params(rescale),
    )


@recipe
def novograd(learning_rate: Rate, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0, weight_decay=0.0):
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
    return (
        scale_by_novograd(b1, b2, eps, eps_root, weight_decay),
        scale_by_learning_rate(learning_rate),
    )


def _decay_mask(mask):
    """optax's ``mask=True`` (decay every leaf) is gradtx's ``mask=None``."""
    return None if mask is True else mask
