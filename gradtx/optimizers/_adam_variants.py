"""Adam variants that change one moment: AdaBelief, ACProp and Yogi (the second moment),
Adan and MARS (the gradient fed to the moments), LaProp (the order of
momentum and normalisation), Adam-mini (one second moment per block),
AdEMAMix (a second, slow first moment), ADOPT (the moment of the previous
gradient), Sophia (a clipped step over a Hessian-diagonal estimate), SPAM and
Stable-SPAM (spike clipping and moment resets around Adam) and Conda (the
second moment in the momentum's singular basis).

Shared pieces: ``adam_step``'s moments (``_momentum``, ``_second_moment``) and
each variant's own transform (``_adaptive``, ``_mars``, ``_adam_mini``,
``_ademamix``, ``_adopt``, ``_spikes``, ``_conda``).
"""

from __future__ import annotations

from .._adam_mini import scale_by_block_rms
from .._adam_step import adam_step
from .._adaptive import (
    scale_by_acprop,
    scale_by_adan,
    scale_by_belief,
    scale_by_yogi,
)
from .._ademamix import scale_by_ademamix, scale_by_simplified_ademamix
from .._adopt import scale_by_adopt
from .._checks import (
    Decay,
    NonNegative,
    Rate,
    StateDtype,
    UnitInterval,
)
from .._combine import chain, precondition
from .._conda import scale_by_conda
from .._hessian import DEFAULT_HESSIAN_DIAGONAL_FN, scale_by_sophia
from .._mars import scale_by_mars
from .._momentum import bias_correction, scale_by_momentum
from .._recipe import recipe
from .._scaling import scale_by_learning_rate
from .._second_moment import (
    scale_by_rms,
)
from .._spikes import clip_by_running_max, clip_spikes, reset_moments, scale_by_norm_moments
from .._weight_decay import add_decayed_weights


@recipe
def adabelief(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
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
    return (
        scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def yogi(learning_rate: Rate, b1: Decay = 0.9, b2: Decay = 0.999, eps=1e-3):
    """Yogi: Adam with v_t = v_{t-1} - (1 - b2) * sign(v_{t-1} - g_t^2) * g_t^2 (``scale_by_yogi``).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2: the rates of m and v, in [0, 1) (each is bias-corrected).
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
    return (
        scale_by_yogi(b1, b2, eps),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def adan(
    learning_rate: Rate,
    b1: Decay = 0.98,
    b2: Decay = 0.92,
    b3: Decay = 0.99,
    eps=1e-8,
    eps_root=1e-8,
    weight_decay: Rate = 0.0,
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
    return (
        scale_by_adan(b1, b2, b3, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def laprop(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    eps: NonNegative = 1e-15,
    weight_decay: Rate = 0.0,
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
    return (
        scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
        scale_by_momentum(b1, ema=True),
        bias_correction(b1),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def mars(
    learning_rate: Rate = 3e-3,
    b1: Decay = 0.95,
    b2: Decay = 0.99,
    eps: NonNegative = 1e-8,
    gamma: NonNegative = 0.025,
    weight_decay: Rate = 0.0,
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
    return (
        scale_by_mars(b1, gamma),
        precondition(
            chain(scale_by_momentum(b1, ema=True), bias_correction(b1)),
            by=scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
        ),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def adam_mini(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    eps: NonNegative = 1e-8,
    weight_decay: Rate = 0.0,
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
    return (
        precondition(
            chain(scale_by_momentum(b1, ema=True), bias_correction(b1)),
            by=scale_by_block_rms(b2, eps, block_axes=block_axes),
        ),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def ademamix(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    b3: Decay = 0.9999,
    alpha=5.0,
    eps: NonNegative = 1e-8,
    eps_root: NonNegative = 0.0,
    mu_dtype: StateDtype = None,
    weight_decay: Rate = 0.0,
    mask=None,
):
    """AdEMAMix: p_t = p_{t-1} - lr * ((m1_hat_t + alpha * m2_t) / (sqrt(nu_hat_t + eps_root) + eps) + wd * p).

    m1 a fast bias-corrected average (b1), m2 a slow one (b3, not
    corrected), nu Adam's second moment (see ``scale_by_ademamix``).  b3 and
    alpha may be schedules (the paper warms both up over the run).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, b3, alpha, eps, eps_root, mu_dtype: as in ``scale_by_ademamix``.
      weight_decay: wd, decoupled (multiplied by lr).
      mask: which parameters decay (a pytree of bools or a function of params).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.ademamix(0.1, alpha=0.0)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.9, -1.9], dtype=float32)

    Reference: Pagliardini, Ablin, Grangier, "The AdEMAMix Optimizer: Better,
    Faster, Older", 2024, arXiv:2409.03137.
    """
    return (
        scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def simplified_ademamix(
    learning_rate: Rate,
    b1: Decay = 0.99,
    b2: Decay = 0.95,
    alpha=0.0,
    eps: NonNegative = 1e-8,
    eps_root: NonNegative = 0.0,
    weight_decay: Rate = 0.0,
    mask=None,
):
    """Simplified AdEMAMix: p_t = p_{t-1} - lr * ((m_t + alpha * g_t) / (sqrt(n_hat_t + eps_root) + eps) + wd * p).

    m_t = b1 * m_{t-1} + g_t, n_hat_t Adam's bias-corrected second moment
    (see ``scale_by_simplified_ademamix``).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, alpha, eps, eps_root: as in ``scale_by_simplified_ademamix``.
      weight_decay: wd, decoupled (multiplied by lr).
      mask: which parameters decay (a pytree of bools or a function of params).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.simplified_ademamix(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)
      Array([ 0.9, -1.9], dtype=float32)

    Reference: Morwani, Vyas, Ba, Kakade, "Connections between Schedule-Free
    Optimizers, AdEMAMix, and Accelerated SGD Variants", 2025, arXiv:2502.02431.
    """
    return (
        scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def adopt(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.9999,
    eps: NonNegative = 1e-6,
    mu_dtype: StateDtype = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn=lambda x: x**0.25,
):
    """ADOPT: p_t = p_{t-1} - lr * mu_t, mu_t the average of g_t / max(sqrt(nu_{t-1}), eps), clipped.

    The second moment that normalises g_t is the one before g_t (see
    ``scale_by_adopt``); the first step only records nu, so it moves nothing.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, eps, mu_dtype, nesterov, use_clipping, clip_value_fn: as in
        ``scale_by_adopt``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adopt(0.1)
      >>> params = jnp.array([1.0])
      >>> updates, state = opt.update(jnp.array([2.0]), opt.init(params), params)
      >>> opt.update(jnp.array([4.0]), state, params)[0]
      Array([-0.01], dtype=float32)

    Reference: Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any
    b2 with the Optimal Rate", NeurIPS 2024, arXiv:2411.02853.
    """
    return (
        scale_by_adopt(
            b1,
            b2,
            eps,
            mu_dtype,
            nesterov=nesterov,
            use_clipping=use_clipping,
            clip_value_fn=clip_value_fn,
        ),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def acprop(
    learning_rate: Rate,
    b1: UnitInterval = 0.9,
    b2: UnitInterval = 0.999,
    eps=1e-16,
    eps_root=1e-16,
    weight_decay: Rate = 0.0,
    mask=None,
):
    """ACProp: p_t = p_{t-1} - lr * (g_t / (sqrt(s_hat_{t-1}) + eps) + wd * p).

    AdaBelief's second moment of the prediction error, used one step late
    (the asynchronous update of ``scale_by_acprop``): the denominator of step
    t only knows the gradients before g_t.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2: the decays of m and s, in [0, 1].
      eps: added to the root; eps_root: added to s_t.
      weight_decay: wd, >= 0 or a schedule.
      mask: which parameters decay.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.acprop(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)   # the first step is -lr * g
      Array([ 0.7 , -1.95], dtype=float32)

    Reference: Zhuang et al., "Momentum Centering and Asynchronous Update for
    Adaptive Gradient Methods", NeurIPS 2021, arXiv:2110.05454.
    """
    return (
        scale_by_acprop(b1, b2, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def sophia(
    learning_rate: Rate,
    b1: Decay = 0.965,
    b2: UnitInterval = 0.99,
    eps: NonNegative = 1e-8,
    weight_decay: Rate = 1e-4,
    weight_decay_mask=None,
    gamma: NonNegative = 0.01,
    clip_threshold=1.0,
    update_interval=10,
    hessian_diagonal_fn=DEFAULT_HESSIAN_DIAGONAL_FN,
    mu_dtype: StateDtype = None,
    verbose: bool = False,
    print_win_rate_every_n_steps=0,
):
    """Sophia: p_t = p_{t-1} - lr * (clip(m_hat_t / max(gamma h_{t-1}, eps), -rho, rho) + wd * p).

    h averages a Hessian-diagonal estimate taken every ``update_interval``
    steps (``scale_by_sophia``); the default estimator is Hutchinson's, whose
    update needs the loss: pass ``obj_fn=`` (a function of the params alone)
    to ``update``.  The same seed draws the same estimate as optax.contrib's.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, eps, gamma, clip_threshold, update_interval: as in ``scale_by_sophia``.
      hessian_diagonal_fn, mu_dtype, verbose, print_win_rate_every_n_steps: as there.
      weight_decay: wd, >= 0 or a schedule.
      weight_decay_mask: which parameters decay.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = gradtx.sophia(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jax.grad(f)(params), opt.init(params), params, obj_fn=f)
      >>> gradtx.apply_updates(params, updates)   # the first step is clipped to lr
      Array([ 0.89999, -1.89998], dtype=float32)

    Reference: Liu et al., "Sophia: A Scalable Stochastic Second-order
    Optimizer for Language Model Pre-training", ICLR 2024, arXiv:2305.14342.
    """
    return (
        scale_by_sophia(
            b1,
            b2,
            eps,
            gamma,
            clip_threshold,
            update_interval,
            hessian_diagonal_fn,
            mu_dtype,
            verbose,
            print_win_rate_every_n_steps,
        ),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def spam(
    learning_rate: Rate = 1e-3,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    weight_decay: Rate = 0.0,
    warmup_epoch: int = 50,
    threshold: NonNegative = 5000.0,
    grad_accu_steps: int = 20,
    update_proj_gap: int = 500,
    eps: NonNegative = 1e-6,
):
    """SPAM: Adam on spike-clipped gradients whose moments restart every T steps.

    g_t is clipped to sign(g) * sqrt(theta * v_{t-1}) where g^2 > theta * v_{t-1}
    (``clip_spikes``, active from step ``grad_accu_steps`` and that many steps
    after each reset); every T = ``update_proj_gap`` steps Adam's m and v
    restart from 0 (its bias-correction count runs on) and the next
    ``warmup_epoch`` steps are scaled by a cosine ramp from 0.01 to 1
    (``reset_moments``); p_t = p_{t-1} - lr * (s_t * adam_t + wd * p_{t-1}).
    Keywords and defaults are pytorch-optimizer's (``betas`` = (b1, b2));
    every entry is updated (its ``density`` = 1).  eps is added to
    sqrt(v_hat) as in ``adam``; pytorch-optimizer and the paper's code add it
    to sqrt(v) and decay p after the step, a difference of order lr^2 * wd.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2: the decays of Adam's m and v (and the clip's v), in [0, 1).
      weight_decay: wd, >= 0 or a schedule.
      warmup_epoch: the steps of the warm-up after a reset, >= 0.
      threshold: theta, the clip's bound on g^2 / v, >= 0; 0 turns it off.
      grad_accu_steps: steps of statistics before the clip acts.
      update_proj_gap: T, the period of the momentum reset.
      eps: added to sqrt(v_hat).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.spam(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)   # the first step is about lr * sign(g)
      Array([ 0.9000007, -1.9000008], dtype=float32)

    Reference: Huang et al., "SPAM: Spike-Aware Adam with Momentum Reset for
    Stable LLM Training", ICLR 2025, arXiv:2501.06842.
    """
    return (
        clip_spikes(threshold, b2, grad_accu_steps, update_proj_gap),
        reset_moments(adam_step(b1, b2, eps, 0.0), update_proj_gap, warmup_epoch),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def stable_spam(
    learning_rate: Rate = 1e-3,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    gamma1: float = 0.7,
    gamma2: Decay = 0.9,
    theta: Decay = 0.999,
    weight_decay: Rate = 0.0,
    update_proj_gap: int = 1000,
    eps: NonNegative = 1e-8,
):
    """Stable-SPAM: Adam on gradients clipped by AdaClip and rescaled by AdaGN, with resets.

    Per leaf, entries above the running average of max |g| are scaled down
    (``clip_by_running_max(theta)``), then the leaf is rescaled to the running
    ratio of its norm's moments (``scale_by_norm_moments(gamma1, gamma2, eps)``);
    Adam runs on the result and restarts, bias correction included, every
    T = ``update_proj_gap`` steps (``reset_moments``);
    p_t = p_{t-1} - lr * (adam_t + wd * p_{t-1}).  Keywords and defaults are
    pytorch-optimizer's (``betas`` = (b1, b2); gamma1 = -1 means b1); its
    cosine decay of b1 (``t_max``) is not modelled, and where a whole leaf's
    gradient is 0 it skips that leaf's Adam step, which here decays m and v.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2: the decays of Adam's m and v, in [0, 1).
      gamma1, gamma2: the decays of the norm's first and second moments.
      theta: the decay of the running max |g|, in [0, 1).
      weight_decay: wd, >= 0 or a schedule.
      update_proj_gap: T, the period of the momentum reset.
      eps: added to the roots of AdaGN and Adam.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.stable_spam(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)   # the first step is about lr * sign(g)
      Array([ 0.9000007, -1.9000007], dtype=float32)

    Reference: Huang et al., "Stable-SPAM: How to Train in 4-Bit More Stably
    than 16-Bit Adam", 2025, arXiv:2502.17055.
    """
    if gamma1 == -1:
        gamma1 = b1
    return (
        clip_by_running_max(theta),
        scale_by_norm_moments(gamma1, gamma2, eps),
        reset_moments(adam_step(b1, b2, eps, 0.0), update_proj_gap, reset_count=True),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def conda(
    learning_rate: Rate = 1e-3,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    weight_decay: NonNegative = 0.0,
    update_proj_gap=2000,
    scale=1.0,
    eps: NonNegative = 1e-8,
    *,
    weight_decay_mask=None,
):
    """Conda: p_t = p_{t-1} - lr * (c_t * scale * back(P(m_t) / (sqrt(v_t) + eps)) + weight_decay * p_{t-1}).

    Adam whose second moment v is kept in the singular basis of the
    momentum, refreshed by an SVD every ``update_proj_gap`` steps
    (``scale_by_conda``: P rotates a matrix's shorter side, so v normalises
    the columns of the projected gradient); c_t = sqrt(1 - b2^t) / (1 - b1^t).
    Leaves that are not matrices take Adam's step.  Keywords and defaults
    are pytorch-optimizer's ``Conda`` (its default projection_type "std";
    betas split into b1, b2).  That code decays the already-updated
    parameter, p (1 - lr wd) after the step, which differs from this
    decoupled decay by lr^2 wd times the step.

    Verified in float64 over 40 steps against a NumPy transcription of the
    equations (1e-10) and against pytorch-optimizer 4.1.0's ``Conda`` at
    float32 (weight_decay=0).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, eps, update_proj_gap, scale: as in ``scale_by_conda``.
      weight_decay: decoupled weight decay, >= 0.
      weight_decay_mask: which parameters decay (as ``add_decayed_weights``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.conda(0.1)
      >>> params = {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
      >>> u, state = opt.update({"w": jnp.eye(2), "b": jnp.ones(2)}, opt.init(params), params)
      >>> [round(float(x), 4) for x in gradtx.apply_updates(params, u)["b"]]
      [-0.1, -0.1]

    Reference: Wang, Zhou, Dong, Li, Li, Zhou, Lao, Fang, Lin, "Conda:
    Column-Normalized Adam for Training Large Language Models Faster", 2025,
    arXiv:2509.24218.
    """
    return (
        scale_by_conda(b1, b2, eps, update_proj_gap, scale),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )
