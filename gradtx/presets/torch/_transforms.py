"""The pieces PyTorch's Adamax, Rprop, ASGD and Adafactor need that no gradtx transform
computes in PyTorch's way."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..._base import GradientTransformation, Preconditioner
from ..._checks import check_state, moment_state, require_params
from ..._numerics import compute_dtype, increment, new_count
from ..._tree import zeros_like_tree
from .._common import as_float, named


class _InfNormState(NamedTuple):
    """u: the running infinity norm u_t."""

    u: Any


def _torch_inf_norm(b2, eps):
    """Adamax's denominator as PyTorch computes it: u_t = max(b2 * u_{t-1}, |g_t| + eps).

    (eps inside the maximum; optax's scale_by_adamax adds it after.)
    """
    owner = "torch.adamax"

    def init(params):
        return _InfNormState(u=zeros_like_tree(params, real=True))

    def precondition_fn(direction, gradient, state, params):
        moment_state(owner, state, _InfNormState, gradient, "u")

        def leaf(d, g, u):
            cd = compute_dtype(d.dtype, g.dtype, u.dtype)
            new = jnp.maximum(b2 * u.astype(cd), jnp.abs(g.astype(cd)) + eps)
            return (d.astype(cd) / new).astype(d.dtype), new.astype(u.dtype)

        new = jax.tree.map(leaf, direction, gradient, state.u)
        out = jax.tree.map(lambda _, n: n[0], direction, new)
        return out, _InfNormState(u=jax.tree.map(lambda _, n: n[1], direction, new))

    return Preconditioner(
        init, precondition_fn, name="torch_inf_norm", hyperparams={"b2": b2, "eps": eps}
    )


class _RpropState(NamedTuple):
    """prev: the last sign-masked gradient; step_size: the per-entry step sizes."""

    prev: Any
    step_size: Any


def _torch_rprop(lr, etas, step_sizes):
    """Rprop's step, sign(g_t) * s_t, in the gradient's direction.

    s_t = clip(s_{t-1} * f_t, step_min, step_max), s_0 = lr, with f_t = eta_plus
    where g_t g_{t-1} > 0, eta_minus where < 0 (and g_t is then taken as 0),
    1 where = 0.
    """
    owner = "torch.rprop"
    eta_minus, eta_plus = etas
    low, high = step_sizes

    def init(params):
        return _RpropState(
            prev=zeros_like_tree(params),
            step_size=jax.tree.map(lambda p: jnp.full_like(p, lr), params),
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, _RpropState, updates, "prev", "step_size")

        def leaf(g, prev, size):
            cd = compute_dtype(g.dtype, size.dtype)
            g = g.astype(cd)
            agree = jnp.sign(g * prev.astype(cd))
            factor = jnp.where(agree > 0, eta_plus, jnp.where(agree < 0, eta_minus, 1.0))
            size = jnp.clip(size.astype(cd) * factor.astype(cd), low, high)
            g = jnp.where(agree < 0, 0.0, g).astype(cd)
            return jnp.sign(g) * size, g, size

        new = jax.tree.map(leaf, updates, state.prev, state.step_size)

        def pick(i, like):
            return jax.tree.map(lambda _, n, o: n[i].astype(o.dtype), updates, new, like)

        return pick(0, updates), _RpropState(
            prev=pick(1, state.prev), step_size=pick(2, state.step_size)
        )

    return GradientTransformation(
        init,
        update,
        name="torch_rprop",
        hyperparams={"lr": lr, "etas": etas, "step_sizes": step_sizes},
    )


def _asgd_rate(lr, lambd, alpha):
    """eta_t = lr / (1 + lambd * lr * t)^alpha at step t = 0, 1, ... (eta_0 = lr)."""
    return named(lambda t: lr / (1 + lambd * lr * as_float(t)) ** alpha, "asgd_eta")


class _AsgdAverageState(NamedTuple):
    """count: the updates so far, t; ax: the average of the iterates (PyTorch's name)."""

    count: jax.Array
    ax: Any


def _torch_asgd_average(t0):
    """ASGD's average of the iterates p_t = p_{t-1} + u_t, kept in the state (see ``asgd``).

    Passes the update through unchanged; it stands last in the recipe, so that
    u_t is the final update.
    """
    owner = "torch.asgd"

    def init(params):
        return _AsgdAverageState(
            count=new_count(),
            ax=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), compute_dtype(p.dtype)), params),
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, _AsgdAverageState, updates, "ax")
        require_params(owner, params)
        count = increment(state.count)
        # mu_1 = 1 (PyTorch's initial mu); mu_t = 1 / max(1, t - 1 - t0) after.
        mu = jnp.where(count == 1, 1.0, 1.0 / jnp.maximum(1.0, as_float(count) - 1 - t0))

        def leaf(u, p, ax):
            cd = ax.dtype
            new_p = (p.astype(cd) + u.astype(cd)).astype(p.dtype).astype(cd)
            return jnp.where(mu == 1, new_p, ax + (new_p - ax) * mu.astype(cd))

        ax = jax.tree.map(leaf, updates, params, state.ax)
        return updates, _AsgdAverageState(count=count, ax=ax)

    return GradientTransformation(init, update, name="torch_asgd_average", hyperparams={"t0": t0})


def _find_state(state, state_type):
    """The first ``state_type`` inside ``state`` (chains and wrappers hold tuples of states)."""
    if isinstance(state, state_type):
        return state
    if isinstance(state, (tuple, list)):
        for part in state:
            found = _find_state(part, state_type)
            if found is not None:
                return found
    return None


class _AdafactorState(NamedTuple):
    """count: t; row, col: the factored second moments of leaves with ndim >= 2 (zeros of
    shape () otherwise); variance: the second moment of leaves with ndim < 2 (zeros of
    shape () otherwise)."""

    count: jax.Array
    row: Any
    col: Any
    variance: Any


def _torch_adafactor(lr, beta2_decay, eps, d):
    """PyTorch's Adafactor step, in the gradient's direction (see ``adafactor``)."""
    owner = "torch.adafactor"
    eps1, eps2 = eps

    def factored(p):
        return jnp.ndim(p) >= 2

    def init(params):
        def row(p):
            shape = jnp.shape(p)[:-1] + (1,)
            return jnp.zeros(shape, jnp.result_type(p)) if factored(p) else jnp.zeros((), p.dtype)

        def col(p):
            shape = jnp.shape(p)[:-2] + (1, jnp.shape(p)[-1]) if factored(p) else ()
            return jnp.zeros(shape, jnp.result_type(p))

        def variance(p):
            return jnp.zeros((), p.dtype) if factored(p) else jnp.zeros_like(p)

        return _AdafactorState(
            count=new_count(),
            row=jax.tree.map(row, params),
            col=jax.tree.map(col, params),
            variance=jax.tree.map(variance, params),
        )

    def update(updates, state, params=None, **extra):
        check_state(owner, state, _AdafactorState)
        require_params(owner, params)
        count = increment(state.count)

        def leaf(g, p, row, col, v):
            cd = compute_dtype(g.dtype, p.dtype)
            g, p = g.astype(cd), p.astype(cd)
            tiny = jnp.finfo(p.dtype).eps if eps1 is None else eps1
            t = count.astype(cd)
            weight = t**beta2_decay
            rho = jnp.minimum(lr, 1 / jnp.sqrt(t))
            size = max(p.size, 1) ** 0.5
            alpha = jnp.maximum(eps2, jnp.sqrt(jnp.sum(p * p)) / size) * rho
            if factored(p):
                row = row.astype(cd) + weight * (
                    jnp.mean(g * g, axis=-1, keepdims=True) - row.astype(cd)
                )
                col = col.astype(cd) + weight * (
                    jnp.mean(g * g, axis=-2, keepdims=True) - col.astype(cd)
                )
                var = row * col / jnp.maximum(jnp.mean(row, axis=-2, keepdims=True), tiny)
            else:
                v = v.astype(cd) + weight * (g * g - v.astype(cd))
                var = v
            u = g / jnp.sqrt(jnp.maximum(var, tiny * tiny))
            denom = jnp.maximum(1.0, jnp.sqrt(jnp.sum(u * u)) / (size * d))
            return alpha / denom * u, row, col, v

        new = jax.tree.map(leaf, updates, params, state.row, state.col, state.variance)

        def pick(i, like):
            return jax.tree.map(lambda _, n, o: n[i].astype(o.dtype), updates, new, like)

        return pick(0, updates), _AdafactorState(
            count=count,
            row=pick(1, state.row),
            col=pick(2, state.col),
            variance=pick(3, state.variance),
        )

    return GradientTransformation(
        init,
        update,
        name="torch_adafactor",
        hyperparams={"lr": lr, "beta2_decay": beta2_decay, "eps": eps, "d": d},
    )
