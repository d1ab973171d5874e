"""Outer optimizers over pseudo-gradients: SNOO.

An outer optimizer moves slow weights by a pseudo-gradient, the distance the
fast weights travelled in K inner steps, Delta = theta_slow - theta_fast
(``diloco`` averages it over workers first).  The recipe here is ``diloco``
on one worker with Nesterov momentum as the outer optimizer.

Shared pieces: ``diloco`` (``_diloco``), ``sgd`` (``_sgd``).
"""

from __future__ import annotations

from .._checks import Decay, Rate, Transformation
from .._diloco import diloco
from .._recipe import recipe
from .._wrappers import check_int
from ._sgd import sgd


@recipe
def snoo(
    inner: Transformation,
    sync_period: int,
    learning_rate: Rate = 0.7,
    momentum: Decay = 0.9,
):
    """SNOO, Step-K Nesterov Outer Optimizer: Nesterov momentum on the pseudo-gradient every K steps.

    The inner optimizer moves the fast weights for K steps from the slow
    weights w_t; then, with w~ the fast weights after those K steps,

        s_t = w_t - w~,   b_t = mu * b_{t-1} + s_t,
        w_{t+1} = w_t - eta * (mu * b_t + s_t),

    and the fast weights restart from w_{t+1}.  This is ``diloco`` with one
    worker and ``sgd(eta, momentum=mu, nesterov=True)`` as the outer
    optimizer; with mu = 0 it is Lookahead with slow step size eta.  The
    parameters you pass to ``update`` are the fast weights; the slow weights
    are ``state.outer_params`` of the ``DilocoState`` inside the chain.

    Args:
      inner: the inner optimizer (AdamW, Muon, ...; gradtx or optax).
      sync_period: K, inner steps per outer step, an int >= 1.
      learning_rate: eta, the outer learning rate, a number >= 0 or a
        schedule of the outer step.
      momentum: mu, the outer momentum, in [0, 1).  The defaults (0.7, 0.9)
        are DiLoCo's outer values; the SNOO paper tunes both with K.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.snoo(gradtx.sgd(0.1), sync_period=2)  # w~: 1.0, 0.9, 0.8
      >>> params = {"w": jnp.array([1.0])}
      >>> state = opt.init(params)
      >>> for _ in range(2):
      ...     u, state = opt.update({"w": jnp.array([1.0])}, state, params)
      ...     params = gradtx.apply_updates(params, u)
      >>> params["w"]  # s = 0.2, b = 0.2, w = 1 - 0.7 * (0.9 * 0.2 + 0.2)
      Array([0.73399997], dtype=float32)

    Reference: Kallusky, Rao, Nandavanam, Shi, "SNOO: Step-K Nesterov Outer
    Optimizer - The Surprising Effectiveness of Nesterov Momentum Applied to
    Pseudo-Gradients", 2025, arXiv:2510.15830.
    """
    check_int("snoo", "sync_period", sync_period, 1)
    return diloco(inner, sgd(learning_rate, momentum, nesterov=True), sync_period)
