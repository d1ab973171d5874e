"""Sign-based transforms: the update keeps only the sign of a direction.

``scale_by_sign`` is signSGD's step; ``scale_by_lion`` takes the sign of an
interpolation between the gradient and a slow moving average (Lion).
Signum is ``ema`` followed by ``scale_by_sign``.  Every entry of the update
is -1, 0 or +1 before the learning rate, so these optimizers take steps of
the learning rate's size whatever the gradient's scale.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._base import EmptyState, GradientTransformation
from ._checks import check_float_leaves, check_range, check_state_dtype, moment_state
from ._moments import moment_zeros, moving_average, store
from ._numerics import increment, new_count


def scale_by_sign() -> GradientTransformation:
    """The sign of each entry: u_t = sign(g_t), with sign(0) = 0.

    Returns:
      A stateless transform (optax's ``scale_by_sign``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_sign()
      >>> tx.update(jnp.array([3.0, 0.0, -0.2]), tx.init(None))[0]
      Array([ 1.,  0., -1.], dtype=float32)

    Reference: Bernstein, Wang, Azizzadenesheli, Anandkumar, "signSGD:
    Compressed Optimisation for Non-Convex Problems", ICML 2018,
    arXiv:1802.04434.
    """
    owner = "scale_by_sign"

    def update(updates, state, params=None, **extra):
        return jax.tree.map(jnp.sign, updates), state

    return GradientTransformation(lambda params: EmptyState(), update, name=owner)


class ScaleByLionState(NamedTuple):
    """count: t; mu: the moving average m_t of the gradients (optax's fields)."""

    count: jax.Array
    mu: object


_LION_MODES = ("hard", "smooth", "refined")


def scale_by_lion(
    b1=0.9, b2=0.99, mu_dtype=None, *, mode: str = "hard", smooth_beta=1.0
) -> GradientTransformation:
    """Lion's direction: u_t = sign(b1 * m_{t-1} + (1 - b1) * g_t), m_t = b2 * m_{t-1} + (1 - b2) * g_t.

    The step interpolates with b1 and the moment averages with b2, so the
    update reacts faster to the gradient than the moment does.  ``mode``
    replaces sign(x) by tanh(smooth_beta * x) ("smooth") or by x where
    |x| < 1 and sign(x) elsewhere ("refined"), as optax does.

    Args:
      b1: the interpolation weight of the moment in the step, in [0, 1].
      b2: the decay of the moment m_t, in [0, 1].
      mu_dtype: the dtype m_t is stored in; None: each parameter's dtype.
      mode: "hard" (sign), "smooth" or "refined".
      smooth_beta: the slope of the "smooth" mode.

    Returns:
      A transform with state ``ScaleByLionState(count, mu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_lion()
      >>> tx.update(jnp.array([0.3, -2.0]), tx.init(jnp.zeros(2)))[0]
      Array([ 1., -1.], dtype=float32)

    Reference: Chen et al., "Symbolic Discovery of Optimization Algorithms",
    NeurIPS 2023, arXiv:2302.06675.
    """
    owner = "scale_by_lion"
    check_range(owner, "b1", b1, 0, 1)
    check_range(owner, "b2", b2, 0, 1)
    mu_dtype = check_state_dtype(owner, "mu_dtype", mu_dtype)
    if mode not in _LION_MODES:
        raise ValueError(f"{owner}: mode must be one of {_LION_MODES}, got {mode!r}")

    def sign_like(x):
        if mode == "smooth":
            return jnp.tanh(jnp.asarray(smooth_beta, x.dtype) * x)
        if mode == "refined":
            return jnp.where(jnp.abs(x) < 1, x, jnp.sign(x))
        return jnp.sign(x)

    def step(g, m):
        return sign_like(moving_average(m, g, b1, input_first=True)).astype(g.dtype)

    def init(params):
        check_float_leaves(owner, params, "params")
        return ScaleByLionState(count=new_count(), mu=moment_zeros(params, mu_dtype))

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ScaleByLionState, updates, "mu")
        out = jax.tree.map(step, updates, state.mu)
        count = increment(state.count)
        mu = jax.tree.map(lambda g, m: moving_average(m, g, b2), updates, state.mu)
        return out, ScaleByLionState(count=count, mu=store(mu, state.mu, count))

    hyperparams = {"b1": b1, "b2": b2, "mode": mode, "smooth_beta": smooth_beta}
    if mu_dtype is not None:
        hyperparams["mu_dtype"] = mu_dtype.name
    return GradientTransformation(init, update, name=owner, hyperparams=hyperparams)
