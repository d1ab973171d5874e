"""The optimizers, each a recipe: a short chain of public transforms.

Read each ``chain(...)`` top to bottom: one transform per line, in the order
the math applies.  Adaptive optimizers put their first moment and their
second moment side by side in ``precondition(direction, by=...)``, so both
see the same gradient.  Every optimizer checks its own arguments first, so
an error names the optimizer and the argument the user typed.

Every name here is optax's and takes optax's keywords and defaults, with
optax's math; gradtx adds keywords (``nu_dtype``) and, where optax's default
is unsafe, says so (``adadelta``'s learning rate).  ``gradtx.presets``
reproduces PyTorch's and Keras's conventions.
"""

from __future__ import annotations

from ._base import GradientTransformation
from ._checks import check_learning_rate, check_range, check_state_dtype
from ._combine import chain, precondition
from ._momentum import bias_correction, scale_by_momentum, scale_by_nadam_momentum, trace
from ._scaling import identity, scale_by_learning_rate
from ._second_moment import (
    scale_by_adadelta,
    scale_by_centered_rms,
    scale_by_max_rms,
    scale_by_rectified_rms,
    scale_by_rms,
    scale_by_rss,
)
from ._typing import ScalarOrSchedule
from ._weight_decay import add_decayed_weights


def _recipe(name, hyperparams, *transforms) -> GradientTransformation:
    return chain(*transforms, name=name, hyperparams=hyperparams)


def _check_betas(owner, b1, b2, eps, eps_root):
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "eps_root", eps_root, 0)


def _state_dtypes(owner, hyperparams, **dtypes):
    """Validate state dtype arguments as the optimizer's own; log those that are set."""
    for name, dtype in dtypes.items():
        dtype = check_state_dtype(owner, name, dtype)
        if dtype is not None:
            hyperparams[name] = dtype.name


def adam_direction(b1, mu_dtype=None, nesterov=False, bias_correction_mu=True):
    """Adam's numerator: m_hat_t, or NAdam's look-ahead with ``nesterov``."""
    if nesterov:
        return scale_by_nadam_momentum(b1, momentum_decay=None, mu_dtype=mu_dtype)
    momentum = scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype)
    if not bias_correction_mu:
        return momentum
    return chain(momentum, bias_correction(b1))


def adam_preconditioner(b2, eps, eps_root, nu_dtype=None):
    """Adam's denominator: sqrt(v_hat_t + eps_root) + eps."""
    return scale_by_rms(
        b2, eps, eps_in_sqrt=False, bias_correction=True, eps_root=eps_root, nu_dtype=nu_dtype
    )


def adam_step(b1, b2, eps, eps_root, mu_dtype=None, nesterov=False, nu_dtype=None):
    """Adam's step m_hat_t / (sqrt(v_hat_t + eps_root) + eps), before the learning rate."""
    return precondition(
        adam_direction(b1, mu_dtype, nesterov),
        by=adam_preconditioner(b2, eps, eps_root, nu_dtype),
    )


def sgd(
    learning_rate: ScalarOrSchedule, momentum=None, nesterov: bool = False, accumulator_dtype=None
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
    owner = "sgd"
    check_learning_rate(owner, learning_rate)
    hyperparams = {"learning_rate": learning_rate, "momentum": momentum, "nesterov": nesterov}
    _state_dtypes(owner, hyperparams, accumulator_dtype=accumulator_dtype)
    if momentum is None:
        if nesterov:
            raise ValueError("sgd: nesterov=True needs a momentum in [0, 1), got momentum=None")
        moment = identity()
    else:
        check_range(owner, "momentum", momentum, 0, 1, high_open=True)
        moment = trace(momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype)
    return _recipe(owner, hyperparams, moment, scale_by_learning_rate(learning_rate))


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay=0.9,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum=None,
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
    owner = "rmsprop"
    check_learning_rate(owner, learning_rate)
    check_range(owner, "decay", decay, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "initial_scale", initial_scale, 0)
    if momentum is not None:
        check_range(owner, "momentum", momentum, 0, 1, high_open=True)
    elif nesterov:
        raise ValueError("rmsprop: nesterov=True needs a momentum in [0, 1), got momentum=None")
    hyperparams = {
        "learning_rate": learning_rate,
        "decay": decay,
        "eps": eps,
        "initial_scale": initial_scale,
        "eps_in_sqrt": eps_in_sqrt,
        "centered": centered,
        "momentum": momentum,
        "nesterov": nesterov,
        "bias_correction": bias_correction,
    }
    rms = scale_by_centered_rms if centered else scale_by_rms
    return _recipe(
        owner,
        hyperparams,
        rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov=nesterov) if momentum is not None else identity(),
    )


def adagrad(learning_rate: ScalarOrSchedule, initial_accumulator_value=0.1, eps=1e-7):
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
    owner = "adagrad"
    check_learning_rate(owner, learning_rate)
    check_range(owner, "initial_accumulator_value", initial_accumulator_value, 0)
    check_range(owner, "eps", eps, 0)
    return _recipe(
        owner,
        {
            "learning_rate": learning_rate,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
        },
        scale_by_rss(initial_accumulator_value, eps),
        scale_by_learning_rate(learning_rate),
    )


def adadelta(
    learning_rate: ScalarOrSchedule = 1.0,
    rho=0.9,
    eps=1e-6,
    weight_decay=0.0,
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
    owner = "adadelta"
    if learning_rate is not None:
        check_learning_rate(owner, learning_rate)
    check_range(owner, "rho", rho, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0, low_open=True)
    check_learning_rate(owner, weight_decay, name="weight_decay")
    hyperparams = {
        "learning_rate": learning_rate,
        "rho": rho,
        "eps": eps,
        "weight_decay": weight_decay,
        "weight_decay_mask": weight_decay_mask,
    }
    # The L2 step stays for weight_decay = 0 too, as in optax: the state's
    # structure is optax's and never depends on an (injected) value.
    return _recipe(
        owner,
        hyperparams,
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(learning_rate),
    )


def adam(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    *,
    nesterov: bool = False,
    nu_dtype=None,
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
    return _adam_family("adam", learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov)


def _adam_family(
    owner,
    learning_rate,
    b1,
    b2,
    eps,
    eps_root,
    mu_dtype,
    nu_dtype,
    nesterov,
    weight_decay=None,
    mask=None,
):
    """adam, nadam, adamw and nadamw: one recipe, with the decay where AdamW puts it."""
    check_learning_rate(owner, learning_rate)
    _check_betas(owner, b1, b2, eps, eps_root)
    hyperparams = {
        "learning_rate": learning_rate,
        "b1": b1,
        "b2": b2,
        "eps": eps,
        "eps_root": eps_root,
    }
    if weight_decay is not None:
        check_learning_rate(owner, weight_decay, name="weight_decay")
        hyperparams.update(weight_decay=weight_decay, mask=mask)
    if owner in ("adam", "adamw"):
        hyperparams["nesterov"] = nesterov
    _state_dtypes(owner, hyperparams, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    decay = [] if weight_decay is None else [add_decayed_weights(weight_decay, mask)]
    return _recipe(
        owner,
        hyperparams,
        adam_step(b1, b2, eps, eps_root, mu_dtype, nesterov, nu_dtype),
        *decay,
        scale_by_learning_rate(learning_rate),
    )


def nadam(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    *,
    nu_dtype=None,
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
    return _adam_family("nadam", learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype, True)


def adamw(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    weight_decay=1e-4,
    mask=None,
    *,
    nesterov: bool = False,
    nu_dtype=None,
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
    return _adam_family(
        "adamw",
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        nu_dtype,
        nesterov,
        weight_decay,
        mask,
    )


def nadamw(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    weight_decay=1e-4,
    mask=None,
    *,
    nu_dtype=None,
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
    return _adam_family(
        "nadamw", learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype, True, weight_decay, mask
    )


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype=None,
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
    owner = "amsgrad"
    check_learning_rate(owner, learning_rate)
    _check_betas(owner, b1, b2, eps, eps_root)
    hyperparams = {
        "learning_rate": learning_rate,
        "b1": b1,
        "b2": b2,
        "eps": eps,
        "eps_root": eps_root,
        "bias_correction_mu": bias_correction_mu,
        "bias_correction_nu": bias_correction_nu,
    }
    _state_dtypes(owner, hyperparams, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    return _recipe(
        owner,
        hyperparams,
        precondition(
            adam_direction(b1, mu_dtype, False, bias_correction_mu),
            by=scale_by_max_rms(
                b2, eps, eps_root=eps_root, bias_correction=bias_correction_nu, nu_dtype=nu_dtype
            ),
        ),
        scale_by_learning_rate(learning_rate),
    )


def radam(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
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
    owner = "radam"
    check_learning_rate(owner, learning_rate)
    _check_betas(owner, b1, b2, eps, eps_root)
    hyperparams = {
        "learning_rate": learning_rate,
        "b1": b1,
        "b2": b2,
        "eps": eps,
        "eps_root": eps_root,
        "threshold": threshold,
        "nesterov": nesterov,
    }
    return _recipe(
        owner,
        hyperparams,
        precondition(
            adam_direction(b1, None, nesterov),
            by=scale_by_rectified_rms(
                b2, eps, threshold=threshold, eps_root=eps_root, correct_before_eps=True
            ),
        ),
        scale_by_learning_rate(learning_rate),
    )
