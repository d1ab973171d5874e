"""Adam's step before the learning rate: a first moment divided by a second moment.

``scale_by_adam``, ``scale_by_amsgrad`` and ``scale_by_radam`` are optax's
transforms of those names, keyword for keyword: each is
``precondition(direction, by=...)`` of the first moment (``_momentum``) by a
second-moment preconditioner (``_second_moment``), the step the recipes
``adam``, ``amsgrad`` and ``radam`` scale by the learning rate.  Their state
is that ``PreconditionState(direction, preconditioner)``: the first moment
sits in ``state.direction``, the second in ``state.preconditioner`` (optax
keeps both in one ``ScaleByAdamState(count, mu, nu)``).
``gradtx.tree_get(state, "mu")`` and ``gradtx.tree_get(state, "nu")`` find
them in either.

``adam_direction``, ``adam_preconditioner`` and ``adam_step`` are the
shared pieces (also used by ``lamb``, ``soap``'s grafting and ``muon``'s
AdamW part).
"""

from __future__ import annotations

from ._checks import check_range, check_state_dtype
from ._combine import chain, precondition
from ._momentum import bias_correction, scale_by_momentum, scale_by_nadam_momentum
from ._second_moment import scale_by_max_rms, scale_by_rectified_rms, scale_by_rms


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


def _check_adam(owner, b1, b2, eps, eps_root):
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "eps_root", eps_root, 0)


def scale_by_adam(
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    *,
    nesterov: bool = False,
    nu_dtype=None,
):
    """Adam's step: u_t = m_hat_t / (sqrt(v_hat_t + eps_root) + eps).

    m_t = b1 * m_{t-1} + (1 - b1) * g_t,      m_hat_t = m_t / (1 - b1^t),
    v_t = b2 * v_{t-1} + (1 - b2) * g_t^2,    v_hat_t = v_t / (1 - b2^t).

    ``adam`` without its learning rate (optax's ``scale_by_adam``).  With
    ``nesterov`` the numerator is NAdam's look-ahead,
    b1 * m_t / (1 - b1^(t+1)) + (1 - b1) * g_t / (1 - b1^t).

    Args:
      b1: the decay of the first moment, in [0, 1).
      b2: the decay of the second moment, in [0, 1).
      eps: added to the root, >= 0.
      eps_root: added under the root, >= 0.
      mu_dtype, nu_dtype: the dtypes m and v are stored in; None: each
        parameter's dtype.
      nesterov: use NAdam's look-ahead numerator.

    Returns:
      A transform with state ``PreconditionState(direction, preconditioner)``:
      m in the direction's state, v in the preconditioner's.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_adam()
      >>> u, state = tx.update(jnp.array([3.0, -0.5]), tx.init(jnp.zeros(2)))
      >>> u   # the first step is about g / |g|
      Array([ 0.9999934, -0.9999934], dtype=float32)

    Reference: Kingma, Ba, "Adam: A Method for Stochastic Optimization",
    ICLR 2015, arXiv:1412.6980.
    """
    owner = "scale_by_adam"
    _check_adam(owner, b1, b2, eps, eps_root)
    check_state_dtype(owner, "mu_dtype", mu_dtype)
    check_state_dtype(owner, "nu_dtype", nu_dtype)
    return adam_step(b1, b2, eps, eps_root, mu_dtype, nesterov, nu_dtype)


def scale_by_amsgrad(
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
    """AMSGrad's step: u_t = m_hat_t / (sqrt(max_{s<=t} v_hat_s + eps_root) + eps).

    m_hat_t and v_hat_t as in ``scale_by_adam``; the maximum is taken of the
    bias-corrected v (optax's order).  ``amsgrad`` without its learning rate
    (optax's ``scale_by_amsgrad``).

    Args:
      b1, b2, eps, eps_root, mu_dtype, nu_dtype: as in ``scale_by_adam``
        (nu_dtype also stores the running maximum).
      bias_correction_mu: divide m_t by 1 - b1^t.
      bias_correction_nu: divide v_t by 1 - b2^t before the maximum.

    Returns:
      A transform with state ``PreconditionState(direction, preconditioner)``:
      m in the direction's state, v and its maximum in the preconditioner's.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_amsgrad()
      >>> u, state = tx.update(jnp.array([3.0, -0.5]), tx.init(jnp.zeros(2)))
      >>> u
      Array([ 0.9999934, -0.9999934], dtype=float32)

    Reference: Reddi, Kale, Kumar, "On the Convergence of Adam and Beyond",
    ICLR 2018.
    """
    owner = "scale_by_amsgrad"
    _check_adam(owner, b1, b2, eps, eps_root)
    check_state_dtype(owner, "mu_dtype", mu_dtype)
    check_state_dtype(owner, "nu_dtype", nu_dtype)
    return precondition(
        adam_direction(b1, mu_dtype, False, bias_correction_mu),
        by=scale_by_max_rms(
            b2, eps, eps_root=eps_root, bias_correction=bias_correction_nu, nu_dtype=nu_dtype
        ),
    )


def scale_by_radam(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0, *, nesterov=False):
    """RAdam's step: u_t = r_t * m_hat_t / (sqrt(v_hat_t + eps_root) + eps) once rho_t > threshold.

    rho_inf = 2 / (1 - b2) - 1,   rho_t = rho_inf - 2 t b2^t / (1 - b2^t),
    r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t));
    u_t = m_hat_t while rho_t <= threshold.  ``radam`` without its learning
    rate (optax's ``scale_by_radam``).

    Args:
      b1, b2, eps, eps_root: as in ``scale_by_adam``.
      threshold: rectify only when rho_t exceeds it, >= 4.
      nesterov: use NAdam's look-ahead numerator.

    Returns:
      A transform with state ``PreconditionState(direction, preconditioner)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_radam()
      >>> u, state = tx.update(jnp.array([3.0, -0.5]), tx.init(jnp.zeros(2)))
      >>> u   # no adaptive step yet: m_hat
      Array([ 2.9999995, -0.4999999], dtype=float32)

    Reference: Liu, Jiang, He, Chen, Liu, Gao, Han, "On the Variance of the
    Adaptive Learning Rate and Beyond", ICLR 2020, arXiv:1908.03265.
    """
    owner = "scale_by_radam"
    _check_adam(owner, b1, b2, eps, eps_root)
    check_range(owner, "threshold", threshold, 4)
    return precondition(
        adam_direction(b1, None, nesterov),
        by=scale_by_rectified_rms(
            b2, eps, threshold=threshold, eps_root=eps_root, correct_before_eps=True
        ),
    )
