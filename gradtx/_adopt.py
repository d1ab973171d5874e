"""ADOPT: normalise the gradient by the previous second moment, then average it."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import GradientTransformation
from ._checks import (
    check_float_leaves,
    check_range,
    check_real_leaves,
    check_state_dtype,
    moment_state,
)
from ._moments import moving_average
from ._numerics import abs_sq, compute_dtype, increment, new_count, real_compute_dtype
from ._tree import zeros_like_tree


def _dtype_of(tree):
    """The widest dtype among the leaves (float32 if there are none)."""
    leaves = jax.tree.leaves(tree)
    return compute_dtype(*[jnp.result_type(x) for x in leaves]) if leaves else jnp.float32


class ScaleByAdoptState(NamedTuple):
    """count: steps taken; mu: average of the normalised gradients; nu: second moment."""

    count: jax.Array
    mu: Any
    nu: Any


def scale_by_adopt(
    b1=0.9,
    b2=0.9999,
    eps=1e-6,
    mu_dtype=None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn=lambda x: x**0.25,
):
    """ADOPT's direction: average the gradient normalised by the previous second moment.

    With t = 0 at the first step:
    nu_t = b2 * nu_{t-1} + (1 - b2) * g_t^2   (nu_0 = g_0^2),
    n_t = clip(g_t / max(sqrt(nu_{t-1}), eps), -c(t), c(t)),   c = clip_value_fn,
    mu_t = b1 * mu_{t-1} + (1 - b1) * n_t     (mu_0 = 0: the first step is zero),
    u_t = mu_t, or with ``nesterov`` b1 * mu_t + (1 - b1) * n_t (from t = 1).

    The normaliser nu_{t-1} does not contain g_t, which is the paper's fix
    of Adam's non-convergence; the clip c(t) = t^(1/4) is the paper's
    stabiliser for the first steps.

    Args:
      b1: the decay of the first moment, in [0, 1).
      b2: the decay of the second moment, in [0, 1).
      eps: the floor of the root, >= 0.
      mu_dtype: the dtype mu is stored in; None: each parameter's.
      nesterov: the look-ahead update.
      use_clipping: clip the normalised gradient to [-c(t), c(t)].
      clip_value_fn: c, a function of the step t (given as a float).

    Returns:
      A transform with state ``ScaleByAdoptState(count, mu, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_adopt()
      >>> u, state = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))    # records nu = 4
      >>> tx.update(jnp.array([4.0]), state)[0]    # 0.1 * clip(4 / 2, -1, 1)
      Array([0.1], dtype=float32)

    Reference: Taniguchi, Harada, Minegishi, Oshima, Jeong, Nagahara, Iiyama,
    Suzuki, Iwasawa, Matsuo, "ADOPT: Modified Adam Can Converge with Any b2
    with the Optimal Rate", NeurIPS 2024, arXiv:2411.02853.
    """
    owner = "scale_by_adopt"
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    mu_dtype = check_state_dtype(owner, "mu_dtype", mu_dtype)
    if use_clipping and not callable(clip_value_fn):
        raise TypeError(
            f"{owner}: clip_value_fn must be a function of the step, got {clip_value_fn!r}"
        )

    def init(params):
        check_float_leaves(owner, params, "params")
        if use_clipping:
            check_real_leaves(owner, params, "ADOPT clips the normalised gradient entry by entry")
        return ScaleByAdoptState(
            count=new_count(),
            mu=zeros_like_tree(params, dtype=mu_dtype),
            nu=zeros_like_tree(params, real=True),
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ScaleByAdoptState, updates, "mu", "nu")
        started = state.count > 0
        # The step reaches clip_value_fn as a float (optax passes the int32 count,
        # which x ** 0.25 cannot take under strict dtype promotion).
        limit = (
            clip_value_fn(state.count.astype(real_compute_dtype(_dtype_of(updates))))
            if use_clipping
            else None
        )

        def step(g, mu, nu):
            cd = compute_dtype(g.dtype, mu.dtype, nu.dtype)
            g = g.astype(cd)
            real = jnp.finfo(cd).dtype
            d1 = jnp.where(started, b1, 1.0).astype(real)
            d2 = jnp.where(started, b2, 0.0).astype(real)
            new_nu = moving_average(nu, abs_sq(g), d2)
            n = g / jnp.maximum(jnp.sqrt(nu.astype(cd)), eps)
            if use_clipping:
                c = jnp.asarray(limit).astype(real)
                n = jnp.clip(n, -c, c)
            new_mu = moving_average(mu, n, d1)
            out = d1 * new_mu + (1 - d1) * n if nesterov else new_mu
            return out.astype(g.dtype), new_mu.astype(mu.dtype), new_nu.astype(nu.dtype)

        new = jax.tree.map(step, updates, state.mu, state.nu)

        def pick(i):
            return jax.tree.map(lambda _, n: n[i], updates, new)

        out = jax.tree.map(lambda o, g: o.astype(g.dtype), pick(0), updates)
        return out, ScaleByAdoptState(count=increment(state.count), mu=pick(1), nu=pick(2))

    hyperparams = {
        "b1": b1,
        "b2": b2,
        "eps": eps,
        "nesterov": nesterov,
        "use_clipping": use_clipping,
        "clip_value_fn": clip_value_fn,
    }
    if mu_dtype is not None:
        hyperparams["mu_dtype"] = mu_dtype.name
    return GradientTransformation(init, update, name=owner, hyperparams=hyperparams)
