"""MADGRAD: dual averaging with a cube-root AdaGrad scaling and momentum by iterate averaging."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._checks import (
    check_float_leaves,
    check_learning_rate,
    check_params,
    check_range,
    moment_state,
)
from ._numerics import compute_dtype, increment, new_count, real_compute_dtype
from ._recipe import transform
from ._tree import zeros_like_tree
from ._typing import ScalarOrSchedule


class MadgradState(NamedTuple):
    """count: t; grad_sum_sq: the weighted sum of squares; s: the weighted sum; x0: the start."""

    count: jax.Array
    grad_sum_sq: Any
    s: Any
    x0: Any


@transform
def scale_by_madgrad(learning_rate: ScalarOrSchedule, momentum=0.9, eps=1e-6):
    """MADGRAD's step: dual averaging from x_0, then averaging with the current point.

    With t = 0, 1, ... and lambda_t = (lr_t + eps) sqrt(t + 1):
    S_t = S_{t-1} + lambda_t g_t^2,    s_t = s_{t-1} + lambda_t g_t,
    z_t = x_0 - s_t / (cbrt(S_t) + eps),
    x_{t+1} = (1 - momentum) z_t + momentum x_t,   u_t = x_{t+1} - x_t.

    Like optax's, it includes the learning rate and returns the step (it
    flips the sign): it ends a recipe.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      momentum: the averaging weight of the current point, in [0, 1).
      eps: added to lr in lambda and to the cube root, >= 0.

    Returns:
      A transform with state ``MadgradState(count, grad_sum_sq, s, x0)``; it
      needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_madgrad(1.0, momentum=0.0, eps=0.0)
      >>> params = jnp.array([1.0])
      >>> tx.update(jnp.array([8.0]), tx.init(params), params)[0]   # z = 1 - 8 / cbrt(64)
      Array([-2.], dtype=float32)

    Reference: Defazio, Jelassi, "Adaptivity without Compromise: A
    Momentumized, Adaptive, Dual Averaged Gradient Method for Stochastic
    Optimization", JMLR 2022, arXiv:2101.11075.
    """
    owner = "scale_by_madgrad"
    check_learning_rate(owner, learning_rate)
    check_range(owner, "momentum", momentum, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)

    def init(params):
        check_float_leaves(owner, params, "params")
        zeros = zeros_like_tree(params)
        return MadgradState(
            count=new_count(), grad_sum_sq=zeros, s=zeros, x0=jax.tree.map(jnp.asarray, params)
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, MadgradState, updates, "grad_sum_sq", "s", "x0")
        check_params(owner, params, updates)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate

        def step(g, p, x0, sq, s):
            cd = compute_dtype(g.dtype, p.dtype)
            real = real_compute_dtype(cd)
            lam = (jnp.asarray(lr, real) + eps) * jnp.sqrt(state.count.astype(real) + 1)
            g = g.astype(cd)
            sq = sq.astype(cd) + lam * g * g
            s = s.astype(cd) + lam * g
            z = x0.astype(cd) - s / (jnp.cbrt(sq) + eps)
            x = (1 - momentum) * z + momentum * p.astype(cd)
            return x - p.astype(cd), sq, s

        new = jax.tree.map(step, updates, params, state.x0, state.grad_sum_sq, state.s)

        def pick(i, like):
            return jax.tree.map(lambda _, n, o: n[i].astype(o.dtype), updates, new, like)

        return pick(0, updates), MadgradState(
            count=increment(state.count),
            grad_sum_sq=pick(1, state.grad_sum_sq),
            s=pick(2, state.s),
            x0=state.x0,
        )

    return init, update
