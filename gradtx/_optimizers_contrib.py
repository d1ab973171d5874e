"""optax.contrib's optimizers, each a recipe: a short chain of public transforms.

Every name here is optax.contrib's and takes its keywords, in its order,
with its defaults and its math.  Read each ``chain(...)`` top to bottom: one
transform per line, in the order the math applies.  Schedule-Free wraps its
base optimizer (``schedule_free(base, ...)``); SAM and reduce_on_plateau are
wrappers and transforms of their own (``gradtx.sam``,
``gradtx.reduce_on_plateau``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._ademamix import scale_by_ademamix, scale_by_simplified_ademamix
from ._adopt import scale_by_adopt
from ._checks import check_learning_rate, check_range
from ._combine import chain
from ._madgrad import scale_by_madgrad
from ._momo import scale_by_momo, scale_by_momo_adam
from ._parameter_free import (
    scale_by_cocob,
    scale_by_dadapt_adamw,
    scale_by_dog,
    scale_by_dowg,
    scale_by_prodigy,
)
from ._scaling import identity, scale_by_learning_rate
from ._schedule_free import schedule_free
from ._second_moment import scale_by_rms
from ._typing import ScalarOrSchedule
from ._weight_decay import add_decayed_weights


def _recipe(name, hyperparams, *transforms):
    return chain(*transforms, name=name, hyperparams=hyperparams)


def _check_unit(owner, **values):
    """Each value (a decay) in [0, 1); schedules pass."""
    for name, value in values.items():
        if not callable(value):
            check_range(owner, name, value, 0, 1, high_open=True)


def _check_nonnegative(owner, **values):
    for name, value in values.items():
        check_range(owner, name, value, 0)


def _check_betas(owner, betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
    _check_unit(owner, **{"betas[0]": betas[0], "betas[1]": betas[1]})


def _float_dtype():
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _warmup_constant(owner, peak, warmup_steps):
    """lr(t) = peak * min(t, W) / W: optax's linear warmup from 0, then constant."""
    if warmup_steps is None:
        return peak
    if not isinstance(warmup_steps, int) or warmup_steps < 1:
        raise ValueError(
            f"{owner}: warmup_steps must be an integer >= 1 or None, got {warmup_steps!r}"
        )

    def warmup(t):
        t = jnp.asarray(t)
        # In the default float dtype: float64 under x64 (optax's schedule rounds to float32).
        fraction = jnp.minimum(t, warmup_steps).astype(_float_dtype()) / warmup_steps
        return jnp.asarray(peak(t) if callable(peak) else peak) * fraction

    return warmup


def schedule_free_adamw(
    learning_rate: ScalarOrSchedule = 0.0025,
    warmup_steps=None,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    weight_lr_power=2.0,
    state_dtype=None,
):
    """Schedule-Free AdamW: RMSprop with AdamW's decay, its iterates averaged by Schedule-Free.

    z_{t+1} = z_t - lr_t * (g_t / (sqrt(v_hat_t) + eps) + weight_decay * y_t),
    v_hat_t Adam's bias-corrected second moment; b1 is Schedule-Free's
    interpolation (see ``schedule_free``), not a momentum.  Evaluate at
    ``schedule_free_eval_params(state, params)``.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      warmup_steps: W, a linear warmup from 0 over W steps; None: none.
      b1: the interpolation weight, in (0, 1].
      b2: the decay of the second moment, in [0, 1).
      eps: added to the root, >= 0.
      weight_decay: decoupled, multiplied by lr.
      weight_lr_power, state_dtype: as in ``schedule_free``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.schedule_free_adamw(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)   # the first step sets x = z = y
      Array([ 0.9, -1.9 ], dtype=float32)

    Reference: Defazio et al., "The Road Less Scheduled", 2024, arXiv:2405.15682.
    """
    owner = "schedule_free_adamw"
    check_learning_rate(owner, learning_rate)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    check_learning_rate(owner, weight_decay, name="weight_decay")
    lr = _warmup_constant(owner, learning_rate, warmup_steps)
    hyperparams = {
        "learning_rate": learning_rate,
        "warmup_steps": warmup_steps,
        "b1": b1,
        "b2": b2,
        "eps": eps,
        "weight_decay": weight_decay,
        "weight_lr_power": weight_lr_power,
    }
    return _recipe(
        owner,
        hyperparams,
        schedule_free(
            chain(
                scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
                add_decayed_weights(weight_decay),
                scale_by_learning_rate(lr),
            ),
            lr,
            b1,
            weight_lr_power,
            state_dtype,
        ),
    )


def schedule_free_sgd(
    learning_rate: ScalarOrSchedule = 1.0,
    warmup_steps=None,
    b1=0.9,
    weight_decay=None,
    weight_lr_power=2.0,
    state_dtype=None,
):
    """Schedule-Free SGD: z_{t+1} = z_t - lr_t * (g_t + weight_decay * y_t), averaged by Schedule-Free.

    The gradient is taken at y_t; evaluate at
    ``schedule_free_eval_params(state, params)``.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      warmup_steps: W, a linear warmup from 0 over W steps; None: none.
      b1: the interpolation weight, in (0, 1].
      weight_decay: L2 added to the gradient (then multiplied by lr); None: none.
      weight_lr_power, state_dtype: as in ``schedule_free``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.schedule_free_sgd(0.5)
      >>> params = jnp.array([1.0])
      >>> updates, state = opt.update(jnp.array([1.0]), opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)    # b1 x + (1 - b1) z with x = z = 0.5
      Array([0.5], dtype=float32)

    Reference: Defazio et al., "The Road Less Scheduled", 2024, arXiv:2405.15682.
    """
    owner = "schedule_free_sgd"
    check_learning_rate(owner, learning_rate)
    decay = []
    if weight_decay is not None:
        check_learning_rate(owner, weight_decay, name="weight_decay")
        decay = [add_decayed_weights(weight_decay)]
    lr = _warmup_constant(owner, learning_rate, warmup_steps)
    hyperparams = {
        "learning_rate": learning_rate,
        "warmup_steps": warmup_steps,
        "b1": b1,
        "weight_decay": weight_decay,
        "weight_lr_power": weight_lr_power,
    }
    return _recipe(
        owner,
        hyperparams,
        schedule_free(
            chain(*decay, scale_by_learning_rate(lr)), lr, b1, weight_lr_power, state_dtype
        ),
    )


def ademamix(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    b3=0.9999,
    alpha=5.0,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    weight_decay=0.0,
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
    owner = "ademamix"
    check_learning_rate(owner, learning_rate)
    _check_unit(owner, b1=b1, b2=b2, b3=b3)
    _check_nonnegative(owner, eps=eps, eps_root=eps_root)
    check_learning_rate(owner, weight_decay, name="weight_decay")
    hyperparams = {
        "learning_rate": learning_rate,
        "b1": b1,
        "b2": b2,
        "b3": b3,
        "alpha": alpha,
        "eps": eps,
        "eps_root": eps_root,
        "weight_decay": weight_decay,
        "mask": mask,
    }
    return _recipe(
        owner,
        hyperparams,
        scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def simplified_ademamix(
    learning_rate: ScalarOrSchedule,
    b1=0.99,
    b2=0.95,
    alpha=0.0,
    eps=1e-8,
    eps_root=0.0,
    weight_decay=0.0,
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
    owner = "simplified_ademamix"
    check_learning_rate(owner, learning_rate)
    _check_unit(owner, b1=b1, b2=b2)
    _check_nonnegative(owner, eps=eps, eps_root=eps_root)
    check_learning_rate(owner, weight_decay, name="weight_decay")
    hyperparams = {
        "learning_rate": learning_rate,
        "b1": b1,
        "b2": b2,
        "alpha": alpha,
        "eps": eps,
        "eps_root": eps_root,
        "weight_decay": weight_decay,
        "mask": mask,
    }
    return _recipe(
        owner,
        hyperparams,
        scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def adopt(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.9999,
    eps=1e-6,
    mu_dtype=None,
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
    owner = "adopt"
    check_learning_rate(owner, learning_rate)
    _check_unit(owner, b1=b1, b2=b2)
    _check_nonnegative(owner, eps=eps)
    hyperparams = {
        "learning_rate": learning_rate,
        "b1": b1,
        "b2": b2,
        "eps": eps,
        "nesterov": nesterov,
        "use_clipping": use_clipping,
    }
    return _recipe(
        owner,
        hyperparams,
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


def prodigy(
    learning_rate: ScalarOrSchedule = 1.0,
    betas=(0.9, 0.999),
    beta3=None,
    eps=1e-8,
    estim_lr0=1e-6,
    estim_lr_coef=1.0,
    weight_decay=0.0,
    safeguard_warmup: bool = False,
):
    """Prodigy: AdamW whose step size is estimated as it runs (``scale_by_prodigy``).

    The learning rate multiplies the estimate d_t (leave it at 1, or give a
    schedule's shape); the estimate itself takes the place of Adam's
    learning rate.

    Args:
      learning_rate, betas, beta3, eps: as in ``scale_by_prodigy``.
      estim_lr0, estim_lr_coef, weight_decay: as in ``scale_by_prodigy``.
      safeguard_warmup: as in ``scale_by_prodigy``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.prodigy()
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> updates
      Array([-1.e-06,  1.e-06], dtype=float32)

    Reference: Mishchenko, Defazio, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner", ICML 2024, arXiv:2306.06101.
    """
    owner = "prodigy"
    check_learning_rate(owner, learning_rate)
    _check_betas(owner, betas)
    _check_nonnegative(owner, eps=eps, estim_lr_coef=estim_lr_coef, weight_decay=weight_decay)
    check_range(owner, "estim_lr0", estim_lr0, 0, low_open=True)
    hyperparams = {
        "learning_rate": learning_rate,
        "betas": betas,
        "beta3": beta3,
        "eps": eps,
        "estim_lr0": estim_lr0,
        "estim_lr_coef": estim_lr_coef,
        "weight_decay": weight_decay,
        "safeguard_warmup": safeguard_warmup,
    }
    return _recipe(
        owner,
        hyperparams,
        scale_by_prodigy(
            learning_rate,
            betas,
            beta3,
            eps,
            estim_lr0,
            estim_lr_coef,
            weight_decay,
            safeguard_warmup,
        ),
    )


def dadapt_adamw(
    learning_rate: ScalarOrSchedule = 1.0,
    betas=(0.9, 0.999),
    eps=1e-8,
    estim_lr0=1e-6,
    weight_decay=0.0,
):
    """D-Adaptation AdamW: AdamW whose step size is estimated as it runs (``scale_by_dadapt_adamw``).

    Args:
      learning_rate, betas, eps, estim_lr0, weight_decay: as in
        ``scale_by_dadapt_adamw``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.dadapt_adamw()
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(jnp.array([3.0, -0.5]), opt.init(params), params)
      >>> updates
      Array([-1.e-06,  1.e-06], dtype=float32)

    Reference: Defazio, Mishchenko, "Learning-Rate-Free Learning by
    D-Adaptation", ICML 2023, arXiv:2301.07733.
    """
    owner = "dadapt_adamw"
    check_learning_rate(owner, learning_rate)
    _check_betas(owner, betas)
    _check_nonnegative(owner, eps=eps, weight_decay=weight_decay)
    check_range(owner, "estim_lr0", estim_lr0, 0, low_open=True)
    hyperparams = {
        "learning_rate": learning_rate,
        "betas": betas,
        "eps": eps,
        "estim_lr0": estim_lr0,
        "weight_decay": weight_decay,
    }
    return _recipe(
        owner,
        hyperparams,
        scale_by_dadapt_adamw(learning_rate, betas, eps, estim_lr0, weight_decay),
    )


def madgrad(learning_rate: ScalarOrSchedule, momentum=0.9, weight_decay=0.0, eps=1e-6):
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
    owner = "madgrad"
    check_learning_rate(owner, learning_rate)
    check_learning_rate(owner, weight_decay, name="weight_decay")
    _check_unit(owner, momentum=momentum)
    _check_nonnegative(owner, eps=eps)
    hyperparams = {
        "learning_rate": learning_rate,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "eps": eps,
    }
    return _recipe(
        owner,
        hyperparams,
        add_decayed_weights(weight_decay),
        scale_by_madgrad(learning_rate, momentum, eps),
    )


def dog(
    learning_rate: ScalarOrSchedule = 1.0,
    init_step=("heuristic", 1e-6),
    eps=1e-8,
    weight_decay=None,
    mask=None,
):
    """DoG: p_t = p_{t-1} - lr * r_t / sqrt(G_t + eps) * (g_t + wd * p), r_t the largest distance from p_0.

    See ``scale_by_dog`` for r_t, G_t and ``init_step``.  The learning rate
    multiplies DoG's own step (1 is the paper's).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      init_step, eps: as in ``scale_by_dog``.
      weight_decay: wd, L2 added to the gradient; None: none.
      mask: which parameters decay (a pytree of bools or a function of params).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.dog(init_step=("distance", 0.5), eps=0.0)
      >>> params = jnp.array([1.0, 2.0])
      >>> updates, state = opt.update(jnp.array([3.0, 4.0]), opt.init(params), params)
      >>> updates
      Array([-0.3, -0.4], dtype=float32)

    Reference: Ivgi, Hinder, Carmon, "DoG is SGD's Best Friend", ICML 2023,
    arXiv:2302.12022.
    """
    owner = "dog"
    check_learning_rate(owner, learning_rate)
    _check_nonnegative(owner, eps=eps)
    decay = identity()
    if weight_decay is not None:
        check_learning_rate(owner, weight_decay, name="weight_decay")
        decay = add_decayed_weights(weight_decay, mask)
    hyperparams = {
        "learning_rate": learning_rate,
        "init_step": init_step,
        "eps": eps,
        "weight_decay": weight_decay,
        "mask": mask,
    }
    return _recipe(
        owner,
        hyperparams,
        decay,
        scale_by_dog(init_step, eps),
        scale_by_learning_rate(learning_rate),
    )


def dowg(
    learning_rate: ScalarOrSchedule = 1.0,
    init_estim_sq_dist=None,
    eps=1e-4,
    weight_decay=None,
    mask=None,
):
    """DoWG: p_t = p_{t-1} - lr * r_t^2 / (sqrt(V_t) + eps) * (g_t + wd * p), V_t the r^2-weighted sum of ||g||^2.

    See ``scale_by_dowg``.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      init_estim_sq_dist, eps: as in ``scale_by_dowg``.
      weight_decay: wd, L2 added to the gradient; None: none.
      mask: which parameters decay (a pytree of bools or a function of params).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.dowg(init_estim_sq_dist=0.25, eps=0.0)
      >>> params = jnp.array([1.0, 2.0])
      >>> updates, state = opt.update(jnp.array([3.0, 4.0]), opt.init(params), params)
      >>> updates
      Array([-0.3, -0.4], dtype=float32)

    Reference: Khaled, Mishchenko, Jin, "DoWG Unleashed", NeurIPS 2023,
    arXiv:2305.16284.
    """
    owner = "dowg"
    check_learning_rate(owner, learning_rate)
    _check_nonnegative(owner, eps=eps)
    decay = identity()
    if weight_decay is not None:
        check_learning_rate(owner, weight_decay, name="weight_decay")
        decay = add_decayed_weights(weight_decay, mask)
    hyperparams = {
        "learning_rate": learning_rate,
        "init_estim_sq_dist": init_estim_sq_dist,
        "eps": eps,
        "weight_decay": weight_decay,
        "mask": mask,
    }
    return _recipe(
        owner,
        hyperparams,
        decay,
        scale_by_dowg(init_estim_sq_dist, eps),
        scale_by_learning_rate(learning_rate),
    )


def cocob(
    learning_rate: ScalarOrSchedule = 1.0, alpha=100.0, eps=1e-8, weight_decay=0.0, mask=None
):
    """COCOB-Backprop: coin betting on (lr * (g_t + wd * p)), coordinate by coordinate.

    The learning rate scales the gradient the bettor sees (its sign is kept:
    the bet itself moves against it); see ``scale_by_cocob``.

    Args:
      learning_rate: lr, a number >= 0 or a schedule (1 is the paper's).
      alpha, eps: as in ``scale_by_cocob``.
      weight_decay: wd, L2 added to the gradient.
      mask: which parameters decay (a pytree of bools or a function of params).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.cocob(alpha=2.0)
      >>> params = jnp.array([0.0])
      >>> updates, state = opt.update(jnp.array([1.0]), opt.init(params), params)
      >>> updates
      Array([-0.5], dtype=float32)

    Reference: Orabona, Tommasi, "Training Deep Networks without Learning
    Rates Through Coin Betting", NeurIPS 2017, arXiv:1705.07795.
    """
    owner = "cocob"
    check_learning_rate(owner, learning_rate)
    check_learning_rate(owner, weight_decay, name="weight_decay")
    check_range(owner, "alpha", alpha, 0, low_open=True)
    check_range(owner, "eps", eps, 0, low_open=True)
    hyperparams = {
        "learning_rate": learning_rate,
        "alpha": alpha,
        "eps": eps,
        "weight_decay": weight_decay,
        "mask": mask,
    }
    return _recipe(
        owner,
        hyperparams,
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate, flip_sign=False),
        scale_by_cocob(alpha, eps),
    )


def momo(
    learning_rate: ScalarOrSchedule = 1.0,
    beta=0.9,
    lower_bound=0.0,
    weight_decay=0.0,
    adapt_lower_bound: bool = False,
):
    """MoMo: SGD with momentum whose step is capped by a Polyak step (``scale_by_momo``).

    Pass the loss: ``update(grads, state, params, value=loss)``.

    Args:
      learning_rate, beta, lower_bound, weight_decay, adapt_lower_bound: as in
        ``scale_by_momo``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.momo(learning_rate=10.0)
      >>> x = jnp.array([2.0])
      >>> updates, state = opt.update(jnp.array([4.0]), opt.init(x), x, value=4.0)
      >>> gradtx.apply_updates(x, updates)
      Array([1.], dtype=float32)

    Reference: Schaipp et al., "MoMo: Momentum Models for Adaptive Learning
    Rates", ICML 2024, arXiv:2305.07583.
    """
    owner = "momo"
    hyperparams = {
        "learning_rate": learning_rate,
        "beta": beta,
        "lower_bound": lower_bound,
        "weight_decay": weight_decay,
        "adapt_lower_bound": adapt_lower_bound,
    }
    check_learning_rate(owner, learning_rate)
    _check_unit(owner, beta=beta)
    _check_nonnegative(owner, weight_decay=weight_decay)
    return _recipe(
        owner,
        hyperparams,
        scale_by_momo(learning_rate, beta, lower_bound, weight_decay, adapt_lower_bound),
    )


def momo_adam(
    learning_rate: ScalarOrSchedule = 1e-2,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    lower_bound=0.0,
    weight_decay=0.0,
    adapt_lower_bound: bool = False,
):
    """MoMo-Adam: Adam whose step is capped by a Polyak step (``scale_by_momo_adam``).

    Pass the loss: ``update(grads, state, params, value=loss)``.

    Args:
      learning_rate, b1, b2, eps, lower_bound, weight_decay, adapt_lower_bound:
        as in ``scale_by_momo_adam``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.momo_adam(learning_rate=0.1)
      >>> x = jnp.array([2.0])
      >>> updates, state = opt.update(jnp.array([4.0]), opt.init(x), x, value=4.0)
      >>> gradtx.apply_updates(x, updates)
      Array([1.9], dtype=float32)

    Reference: Schaipp et al., "MoMo: Momentum Models for Adaptive Learning
    Rates", ICML 2024, arXiv:2305.07583.
    """
    owner = "momo_adam"
    hyperparams = {
        "learning_rate": learning_rate,
        "b1": b1,
        "b2": b2,
        "eps": eps,
        "lower_bound": lower_bound,
        "weight_decay": weight_decay,
        "adapt_lower_bound": adapt_lower_bound,
    }
    check_learning_rate(owner, learning_rate)
    _check_unit(owner, b1=b1, b2=b2)
    _check_nonnegative(owner, eps=eps, weight_decay=weight_decay)
    return _recipe(
        owner,
        hyperparams,
        scale_by_momo_adam(
            learning_rate, b1, b2, eps, lower_bound, weight_decay, adapt_lower_bound
        ),
    )
