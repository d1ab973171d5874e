"""Recent optimizers built from gradtx's parts: LaProp, MARS-AdamW, Adam-mini.

Each is a recipe, a short chain of public transforms read top to bottom.
None of these names exists in optax; the keywords follow the papers and
pytorch-optimizer (``b1``/``b2`` for its ``betas``).  ``gradtx.cautious``
wraps any of them.
"""

from __future__ import annotations

from ._adam_mini import scale_by_block_rms
from ._checks import check_learning_rate, check_range
from ._combine import chain, precondition
from ._mars import scale_by_mars
from ._momentum import bias_correction, scale_by_momentum
from ._scaling import scale_by_learning_rate
from ._second_moment import scale_by_rms
from ._typing import ScalarOrSchedule
from ._weight_decay import add_decayed_weights


def _check(owner, learning_rate, b1, b2, eps, weight_decay):
    check_learning_rate(owner, learning_rate)
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    check_learning_rate(owner, weight_decay, name="weight_decay")


def laprop(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-15,
    weight_decay=0.0,
    weight_decay_mask=None,
):
    """LaProp: m_t = b1 * m_{t-1} + (1 - b1) * g_t / (sqrt(v_hat_t) + eps); p_t = p_{t-1} - lr * m_hat_t.

    v_t = b2 * v_{t-1} + (1 - b2) * g_t^2, v_hat_t = v_t / (1 - b2^t),
    m_hat_t = m_t / (1 - b1^t).  Adam averages the gradient and then divides;
    LaProp divides each gradient by its current RMS and then averages, so
    the momentum and the adaptivity are separate: |step| <= lr / sqrt(1 - b2)
    whatever b1, and b1 > b2 is safe (Adam's step is unbounded when b1^2 > b2).  A plain chain, RMS
    scaling then momentum.  ``weight_decay`` is decoupled (added before the
    learning rate, as in AdamW).  With a learning-rate schedule the
    momentum averages unscaled steps (the paper folds lr into the average);
    pytorch-optimizer adds eps to sqrt(v_t) before the bias correction and
    decays the weights after the step.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1: the momentum's decay, in [0, 1).
      b2: the second moment's decay, in [0, 1).
      eps: added to sqrt(v_hat_t), >= 0 (the paper's and pytorch-optimizer's 1e-15).
      weight_decay: decoupled weight decay, >= 0 or a schedule.
      weight_decay_mask: which parameters decay; None: all.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.laprop(0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.9 ], dtype=float32)

    Reference: Ziyin, Wang, Ueda, "LaProp: Separating Momentum and Adaptivity
    in Adam", 2020, arXiv:2002.04839, Algorithm 1.
    """
    owner = "laprop"
    _check(owner, learning_rate, b1, b2, eps, weight_decay)
    return chain(
        scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
        scale_by_momentum(b1, ema=True),
        bias_correction(b1),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
        name=owner,
        hyperparams={
            "learning_rate": learning_rate,
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "weight_decay": weight_decay,
        },
    )


def mars(
    learning_rate: ScalarOrSchedule = 3e-3,
    b1=0.95,
    b2=0.99,
    eps=1e-8,
    gamma=0.025,
    weight_decay=0.0,
    weight_decay_mask=None,
):
    """MARS-AdamW: AdamW on the corrected gradient c_t = g_t + gamma * b1 / (1 - b1) * (g_t - g_{t-1}).

    c_t is divided by its norm where that exceeds 1 (``scale_by_mars``);
    then m_t and v_t average c_t and c_t^2 and the step is
    -lr * (m_hat_t / (sqrt(v_hat_t) + eps) + weight_decay * p_{t-1}).
    Every leaf gets the correction (the paper's Algorithm 2, and
    pytorch-optimizer's ``MARS(optimize_1d=True)``; by default
    pytorch-optimizer trains vectors with plain AdamW at other settings).
    Defaults are the paper's and pytorch-optimizer's.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1: the decay of the first moment, also in the correction, in [0, 1).
      b2: the decay of the second moment, in [0, 1).
      eps: added to sqrt(v_hat_t), >= 0.
      gamma: the strength of the correction, >= 0.
      weight_decay: decoupled weight decay, >= 0 or a schedule.
      weight_decay_mask: which parameters decay; None: all.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.mars(0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([0.3, -0.1])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.9], dtype=float32)

    Reference: Yuan, Liu, Wu, Zhou, Gu, "MARS: Unleashing the Power of
    Variance Reduction for Training Large Models", 2024, arXiv:2411.10438.
    """
    owner = "mars"
    _check(owner, learning_rate, b1, b2, eps, weight_decay)
    check_range(owner, "gamma", gamma, 0)
    return chain(
        scale_by_mars(b1, gamma),
        precondition(
            chain(scale_by_momentum(b1, ema=True), bias_correction(b1)),
            by=scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
        ),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
        name=owner,
        hyperparams={
            "learning_rate": learning_rate,
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "gamma": gamma,
            "weight_decay": weight_decay,
        },
    )


def adam_mini(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    weight_decay_mask=None,
    *,
    block_axes=None,
):
    """Adam-mini: Adam with one second moment per block, v_{t,b} the average of mean_b g_t^2.

    p_t = p_{t-1} - lr * (m_hat_t / (sqrt(v_hat_{t,b}) + eps) + weight_decay * p_{t-1}),
    m_t Adam's first moment per entry and v_{t,b} = b2 * v_{t-1,b} +
    (1 - b2) * mean_{i in b} g_{t,i}^2 one number per block
    (``scale_by_block_rms``).  The partition: one block per leaf by default
    (the rule Adam-mini and pytorch-optimizer apply to every parameter they
    do not recognise by name); ``block_axes=0`` gives one block per output
    neuron of ``(in, out)`` matrices.  The paper's per-head blocks for
    queries and keys and per-token blocks for embeddings need a partition
    by name: combine ``gradtx.partition`` with several ``adam_mini``.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1: the decay of the first moment, in [0, 1).
      b2: the decay of the block second moments, in [0, 1).
      eps: added to the root, >= 0.
      weight_decay: decoupled weight decay, >= 0 or a schedule (the paper's
        code uses 0.1 and leaves norm scales out).
      weight_decay_mask: which parameters decay; None: all.
      block_axes: see ``scale_by_block_rms``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adam_mini(0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([3.0, -4.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]   # 1 - 0.1 * 3 / sqrt(12.5)
      Array([ 0.9151, -1.8869], dtype=float32)

    Reference: Zhang, Chen, Li, Ding, Chen, Kingma, Ye, Luo, Sun, "Adam-mini:
    Use Fewer Learning Rates To Gain More", 2024, arXiv:2406.16793.
    """
    owner = "adam_mini"
    _check(owner, learning_rate, b1, b2, eps, weight_decay)
    return chain(
        precondition(
            chain(scale_by_momentum(b1, ema=True), bias_correction(b1)),
            by=scale_by_block_rms(b2, eps, block_axes=block_axes),
        ),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
        name=owner,
        hyperparams={
            "learning_rate": learning_rate,
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "weight_decay": weight_decay,
            "block_axes": block_axes,
        },
    )
