"""The optimizers, each a recipe: a short chain of public transforms.

Read each ``chain(...)`` top to bottom: one transform per line, in the order
the math applies.  Every optimizer checks its own arguments first, so an
error names the optimizer and the argument the user typed.

Where PyTorch, Keras and optax disagree on a convention, the docstring says
which one gradtx follows in one line.  ``gradtx.presets`` (when present)
reproduces the other frameworks exactly.
"""

from __future__ import annotations

import numbers

from ._base import check_learning_rate, check_range, check_state_dtype

from ._combine import chain
from ._momentum import bias_correction, scale_by_momentum, scale_by_nesterov_momentum
from ._scaling import scale_by_learning_rate
from ._second_moment import (scale_by_adadelta, scale_by_centered_rms, scale_by_max_rms,
                             scale_by_rms, scale_by_rss)
from ._weight_decay import add_decayed_weights


def _recipe(name, hyperparams, *transforms):
    return chain(*transforms, name=name, hyperparams=hyperparams)


def _check_betas(owner, b1, b2, eps, eps_root):
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "eps_root", eps_root, 0)


def _state_dtypes(owner, hyperparams, mu_dtype, nu_dtype):
    """Validate mu_dtype/nu_dtype as the optimizer's own arguments; log them when set."""
    for name, dtype in (("mu_dtype", mu_dtype), ("nu_dtype", nu_dtype)):
        dtype = check_state_dtype(owner, name, dtype)
        if dtype is not None:
            hyperparams[name] = dtype.name


def sgd(learning_rate, momentum=None, nesterov: bool = False):
    """Stochastic gradient descent: p_t = p_{t-1} - lr * g_t, optionally with momentum.

    With ``momentum`` the step follows m_t = momentum * m_{t-1} + g_t (heavy
    ball, as PyTorch and optax); with ``nesterov`` it follows
    momentum * m_t + g_t.

    Args:
      learning_rate: lr, a number >= 0 or a schedule ``step -> value``.
      momentum: None (plain gradient descent) or a coefficient in [0, 1).
      nesterov: use Nesterov momentum.

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
    if momentum is None:
        if nesterov:
            raise ValueError("sgd: nesterov=True needs a momentum in [0, 1), got momentum=None")
        return _recipe(owner, {"learning_rate": learning_rate, "momentum": None, "nesterov": False},
                       scale_by_learning_rate(learning_rate))
    check_range(owner, "momentum", momentum, 0, 1, high_open=True)
    moment = scale_by_nesterov_momentum if nesterov else scale_by_momentum
    return _recipe(owner, {"learning_rate": learning_rate, "momentum": momentum, "nesterov": nesterov},
                   moment(momentum),
                   scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt: bool = True,
            centered: bool = False, momentum=None, nesterov: bool = False):
    """RMSprop: p_t = p_{t-1} - lr * g_t / sqrt(v_t + eps), v_t = decay * v_{t-1} + (1 - decay) * g_t^2.

    ``centered`` divides by sqrt(v_t - mu_t^2 + eps), mu_t the average
    gradient; ``momentum`` accumulates the scaled gradient before the learning
    rate (PyTorch's order; optax applies the learning rate first, which
    differs only under a schedule).  Defaults are optax's: decay 0.9, eps
    under the root; PyTorch uses alpha=0.99 and eps outside the root
    (``eps_in_sqrt=False``), Keras rho=0.9 and eps=1e-7 under the root.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      decay: the decay of the squared-gradient average, in [0, 1).
      eps: the stabiliser, >= 0.
      initial_scale: v_0, >= 0.
      eps_in_sqrt: add eps under the root (True) or to the root (False).
      centered: subtract the squared mean gradient.
      momentum: None or a coefficient in [0, 1).
      nesterov: use Nesterov momentum (needs momentum).

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
    hyperparams = {"learning_rate": learning_rate, "decay": decay, "eps": eps,
                   "initial_scale": initial_scale, "eps_in_sqrt": eps_in_sqrt,
                   "centered": centered, "momentum": momentum, "nesterov": nesterov}
    eps_outside, eps_inside = (0.0, eps) if eps_in_sqrt else (eps, 0.0)
    rms = scale_by_centered_rms if centered else scale_by_rms
    parts = [rms(decay, eps_outside, eps_root=eps_inside, initial_scale=initial_scale)]
    if momentum is not None:
        parts.append((scale_by_nesterov_momentum if nesterov else scale_by_momentum)(momentum))
    parts.append(scale_by_learning_rate(learning_rate))
    return _recipe(owner, hyperparams, *parts)


def adagrad(learning_rate, initial_accumulator_value=0.1, eps=1e-7):
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
    return _recipe(owner, {"learning_rate": learning_rate,
                           "initial_accumulator_value": initial_accumulator_value, "eps": eps},
                   scale_by_rss(initial_accumulator_value, 0.0, eps_root=eps),
                   scale_by_learning_rate(learning_rate))


def adadelta(learning_rate=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    """Adadelta: p_t = p_{t-1} - lr * sqrt(E[x^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) * g_t.

    The default learning rate is 1.0, Zeiler's and PyTorch's; Keras uses
    0.001 and rho=0.95, and optax's ``learning_rate=None`` never flips the
    sign (its default ascends).  ``weight_decay`` is L2: added to the gradient
    before the rule, as PyTorch does.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      rho: the decay of both averages, in [0, 1).
      eps: the stabiliser under both roots, > 0.
      weight_decay: L2 coefficient, >= 0.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adadelta()
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.99683774, -2.0031621 ], dtype=float32)
    """
    owner = "adadelta"
    check_learning_rate(owner, learning_rate)
    check_range(owner, "rho", rho, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0, low_open=True)
    check_range(owner, "weight_decay", weight_decay, 0)
    hyperparams = {"learning_rate": learning_rate, "rho": rho, "eps": eps,
                   "weight_decay": weight_decay}
    # Only a plain number 0 drops the L2 step: an array (an injected, maybe traced
    # hyperparameter) keeps it, so the chain's structure never depends on its value.
    no_l2 = isinstance(weight_decay, numbers.Real) and weight_decay == 0
    l2 = [] if no_l2 else [add_decayed_weights(weight_decay)]
    return _recipe(owner, hyperparams,
                   *l2,
                   scale_by_adadelta(rho, eps),
                   scale_by_learning_rate(learning_rate))


def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, *, mu_dtype=None,
         nu_dtype=None):
    """Adam: RMSprop + momentum + bias correction.

    m_t = b1 * m_{t-1} + (1 - b1) * g_t,      m_hat_t = m_t / (1 - b1^t),
    v_t = b2 * v_{t-1} + (1 - b2) * g_t^2,    v_hat_t = v_t / (1 - b2^t),
    p_t = p_{t-1} - lr * m_hat_t / (sqrt(v_hat_t + eps_root) + eps).

    This is Algorithm 1 of the paper, eps outside the root (as PyTorch and
    optax); Keras adds its eps to the root of the *uncorrected* v ("eps hat").

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1: the decay of the first moment, in [0, 1).
      b2: the decay of the second moment, in [0, 1).
      eps: added to the root, >= 0.
      eps_root: added under the root, >= 0.
      mu_dtype, nu_dtype: the dtypes m and v are stored in (e.g.
        ``jnp.bfloat16`` halves that moment's memory); None: each parameter's
        dtype.  The arithmetic runs in at least float32 either way.

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
    owner = "adam"
    check_learning_rate(owner, learning_rate)
    _check_betas(owner, b1, b2, eps, eps_root)
    hyperparams = {"learning_rate": learning_rate, "b1": b1, "b2": b2, "eps": eps,
                   "eps_root": eps_root}
    _state_dtypes(owner, hyperparams, mu_dtype, nu_dtype)
    return _recipe(owner, hyperparams,
                   scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),
                   bias_correction(b1),
                   scale_by_rms(b2, eps, eps_root=eps_root, bias_correction=True,
                                nu_dtype=nu_dtype),
                   scale_by_learning_rate(learning_rate))


def adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=1e-4, mask=None,
          *, mu_dtype=None, nu_dtype=None):
    """AdamW: Adam with decoupled weight decay, p_t = p_{t-1} - lr * (adam_t + wd * p_{t-1}).

    The decay is multiplied by the learning rate, as in PyTorch and optax.
    The default weight_decay is optax's 1e-4; PyTorch's is 1e-2 and Keras's
    4e-3.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, eps, eps_root, mu_dtype, nu_dtype: as in ``adam``.
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
    owner = "adamw"
    check_learning_rate(owner, learning_rate)
    _check_betas(owner, b1, b2, eps, eps_root)
    check_learning_rate(owner, weight_decay, name="weight_decay")
    hyperparams = {"learning_rate": learning_rate, "b1": b1, "b2": b2, "eps": eps,
                   "eps_root": eps_root, "weight_decay": weight_decay, "mask": mask}
    _state_dtypes(owner, hyperparams, mu_dtype, nu_dtype)
    return _recipe(owner, hyperparams,
                   scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),
                   bias_correction(b1),
                   scale_by_rms(b2, eps, eps_root=eps_root, bias_correction=True,
                                nu_dtype=nu_dtype),
                   add_decayed_weights(weight_decay, mask),
                   scale_by_learning_rate(learning_rate))


def amsgrad(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, *, mu_dtype=None,
            nu_dtype=None):
    """AMSGrad: Adam dividing by the root of the largest corrected second moment so far.

    p_t = p_{t-1} - lr * m_hat_t / (sqrt(max_{s<=t} v_hat_s + eps_root) + eps).
    The maximum is taken of the bias-corrected v (optax's order); PyTorch
    takes it of the raw v (``scale_by_max_rms(max_before_correction=True)``).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, eps, eps_root, mu_dtype, nu_dtype: as in ``adam`` (nu_dtype also
        stores the running maximum).

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
    hyperparams = {"learning_rate": learning_rate, "b1": b1, "b2": b2, "eps": eps,
                   "eps_root": eps_root}
    _state_dtypes(owner, hyperparams, mu_dtype, nu_dtype)
    return _recipe(owner, hyperparams,
                   scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),
                   bias_correction(b1),
                   scale_by_max_rms(b2, eps, eps_root=eps_root, nu_dtype=nu_dtype),
                   scale_by_learning_rate(learning_rate))
