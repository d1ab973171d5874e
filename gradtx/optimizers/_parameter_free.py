"""Parameter-free and adaptive-step methods: the step size is estimated from the
run itself.  Prodigy, D-Adaptation AdamW, DoG, DoWG, COCOB, MoMo, MoMo-Adam
and the Polyak step.

Shared pieces: ``_parameter_free``'s and ``_momo``'s transforms,
``scale_by_polyak`` (``_adaptive``).
"""

from __future__ import annotations

from .._adaptive import (
    scale_by_polyak,
)
from .._checks import (
    Decay,
    DecayPair,
    NonNegative,
    OptionalRate,
    Positive,
    Rate,
)
from .._momo import scale_by_momo, scale_by_momo_adam
from .._parameter_free import (
    scale_by_cocob,
    scale_by_dadapt_adamw,
    scale_by_dog,
    scale_by_dowg,
    scale_by_prodigy,
)
from .._recipe import recipe
from .._scaling import identity, scale_by_learning_rate
from .._weight_decay import add_decayed_weights


@recipe
def prodigy(
    learning_rate: Rate = 1.0,
    betas: DecayPair = (0.9, 0.999),
    beta3=None,
    eps: NonNegative = 1e-8,
    estim_lr0: Positive = 1e-6,
    estim_lr_coef: NonNegative = 1.0,
    weight_decay: NonNegative = 0.0,
    safeguard_warmup: bool = False,
):
    """Prodigy: AdamW whose step size is estimated as it runs (``scale_by_prodigy``).

    The learning rate multiplies the estimate d_t (leave it at 1, or give a
    schedule's shape); the estimate itself takes the place of Adam's
    learning rate.  Zero gradients leave the estimate at d_0 and give a zero
    step (optax.contrib's ``prodigy`` turns NaN there for good).

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
    return scale_by_prodigy(
        learning_rate,
        betas,
        beta3,
        eps,
        estim_lr0,
        estim_lr_coef,
        weight_decay,
        safeguard_warmup,
    )


@recipe
def dadapt_adamw(
    learning_rate: Rate = 1.0,
    betas: DecayPair = (0.9, 0.999),
    eps: NonNegative = 1e-8,
    estim_lr0: Positive = 1e-6,
    weight_decay: NonNegative = 0.0,
):
    """D-Adaptation AdamW: AdamW whose step size is estimated as it runs (``scale_by_dadapt_adamw``).

    Zero gradients leave the estimate at d_0 and give a zero step
    (optax.contrib's ``dadapt_adamw`` turns NaN there for good).

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
    return scale_by_dadapt_adamw(learning_rate, betas, eps, estim_lr0, weight_decay)


def _l2(weight_decay, mask):
    """L2 weight decay added to the gradient; the identity where ``weight_decay`` is None."""
    return identity() if weight_decay is None else add_decayed_weights(weight_decay, mask)


@recipe
def dog(
    learning_rate: Rate = 1.0,
    init_step=("heuristic", 1e-6),
    eps: NonNegative = 1e-8,
    weight_decay: OptionalRate = None,
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
    return (
        _l2(weight_decay, mask),
        scale_by_dog(init_step, eps),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def dowg(
    learning_rate: Rate = 1.0,
    init_estim_sq_dist=None,
    eps: NonNegative = 1e-4,
    weight_decay: OptionalRate = None,
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
    return (
        _l2(weight_decay, mask),
        scale_by_dowg(init_estim_sq_dist, eps),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def cocob(
    learning_rate: Rate = 1.0,
    alpha: Positive = 100.0,
    eps: Positive = 1e-8,
    weight_decay: Rate = 0.0,
    mask=None,
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
    return (
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate, flip_sign=False),
        scale_by_cocob(alpha, eps),
    )


@recipe
def momo(
    learning_rate: Rate = 1.0,
    beta: Decay = 0.9,
    lower_bound=0.0,
    weight_decay: NonNegative = 0.0,
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
    return scale_by_momo(learning_rate, beta, lower_bound, weight_decay, adapt_lower_bound)


@recipe
def momo_adam(
    learning_rate: Rate = 1e-2,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    eps: NonNegative = 1e-8,
    lower_bound=0.0,
    weight_decay: NonNegative = 0.0,
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
    return scale_by_momo_adam(
        learning_rate, b1, b2, eps, lower_bound, weight_decay, adapt_lower_bound
    )


@recipe
def polyak_sgd(
    max_learning_rate=1.0, scaling: Rate = 1.0, f_min=0.0, eps=0.0, variant: str = "sps"
):
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
    return (
        scale_by_learning_rate(scaling),
        scale_by_polyak(f_min, max_learning_rate, eps, variant),
    )
