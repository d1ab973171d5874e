"""Quasi-Newton directions: L-BFGS's two-loop recursion over a memory of past steps."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._checks import check_float_leaves, check_params_update
from ._numerics import increment, new_count
from ._recipe import transform
from ._tree import real_vdot as _vdot
from ._tree import zeros_like_tree


class ScaleByLBFGSState(NamedTuple):
    """count: k; params, updates: x_{k-1} and g_{k-1}; diff_params_memory, diff_updates_memory:
    the last m pairs s_i = x_{i+1} - x_i, y_i = g_{i+1} - g_i (stacked on axis 0, a ring);
    weights_memory: rho_i = 1 / <y_i, s_i> (optax's fields)."""

    count: jax.Array
    params: object
    updates: object
    diff_params_memory: object
    diff_updates_memory: object
    weights_memory: jax.Array


@transform
def scale_by_lbfgs(memory_size: int = 10, scale_init_precond: bool = True):
    """L-BFGS's direction d_k = H_k g_k, by the two-loop recursion over the last m pairs.

    With s_i = x_{i+1} - x_i, y_i = g_{i+1} - g_i and rho_i = 1 / <y_i, s_i>
    (0 where <y_i, s_i> = 0), the recursion runs
    q = g_k;  for i = k-1 .. k-m: a_i = rho_i <s_i, q>, q = q - a_i y_i;
    r = gamma_k q;  for i = k-m .. k-1: b_i = rho_i <y_i, r>, r = r + (a_i - b_i) s_i;
    d_k = r, with gamma_k = <y, s> / <y, y> of the newest pair when
    ``scale_init_precond`` (min(1, 1 / ||g_0||) at the first step), else 1.
    The direction keeps the gradient's sign; a learning rate or line
    search follows.

    Args:
      memory_size: m, the number of pairs kept, >= 1.
      scale_init_precond: scale the initial inverse Hessian by gamma_k.

    Returns:
      A transform that needs params, with state ``ScaleByLBFGSState``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_lbfgs()
      >>> x = jnp.array([3.0, 4.0])
      >>> tx.update(x, tx.init(x), x)[0]   # first step: g / ||g||
      Array([0.6, 0.8], dtype=float32)

    Reference: Nocedal, Wright, "Numerical Optimization", 2nd ed., Springer
    2006, Algorithm 7.4; Liu, Nocedal, "On the limited memory BFGS method for
    large scale optimization", Math. Programming 1989.
    """
    owner = "scale_by_lbfgs"
    if isinstance(memory_size, bool) or not isinstance(memory_size, int) or memory_size < 1:
        raise ValueError(f"{owner}: memory_size must be an int >= 1, got {memory_size!r}")
    m = memory_size

    def init(params):
        check_float_leaves(owner, params, "params")
        stacked = jax.tree.map(lambda p: jnp.zeros((m,) + jnp.shape(p), jnp.result_type(p)), params)
        real = max(
            (jnp.finfo(jnp.result_type(p)).dtype for p in jax.tree.leaves(params)),
            key=lambda d: d.itemsize,
            default=jnp.dtype(jnp.float32),
        )
        return ScaleByLBFGSState(
            count=new_count(),
            params=zeros_like_tree(params),
            updates=zeros_like_tree(params),
            diff_params_memory=stacked,
            diff_updates_memory=stacked,
            weights_memory=jnp.zeros(m, real),
        )

    def update(updates, state, params=None, **extra):
        check_params_update(owner, state, ScaleByLBFGSState, updates, params)
        started = state.count > 0
        real = state.weights_memory.dtype
        s = jax.tree.map(lambda p, q: p - q, params, state.params)
        y = jax.tree.map(lambda g, h: g - h, updates, state.updates)
        sy = _vdot(y, s).astype(real)
        rho = _pair_weight(sy, sy != 0.0)
        s, y, rho = _zero_unless(started, (s, y, rho))
        newest = (state.count - 1) % m
        memories = (state.diff_params_memory, state.diff_updates_memory, state.weights_memory)
        s_mem, y_mem, rhos = _store_pair(*memories, s, y, rho, newest)
        if scale_init_precond:
            yy = _sq_norm(y).astype(real)
            gamma = jnp.where(yy > 0.0, _vdot(y, s).astype(real) / jnp.where(yy > 0, yy, 1), 1.0)
            norm = jnp.sqrt(_sq_norm(updates)).astype(real)
            gamma = jnp.where(started, gamma, jnp.minimum(1.0, 1.0 / norm))
        else:
            gamma = jnp.ones((), real)
        order = (state.count % m + jnp.arange(m, dtype=state.count.dtype)) % m  # oldest first

        def pick(mem, i):
            return jax.tree.map(lambda x: x[i], mem)

        def backward(q, i):
            return _two_loop_backward(q, pick(s_mem, i), pick(y_mem, i), rhos[i], _vdot)

        q, alphas = jax.lax.scan(backward, updates, order, reverse=True)
        r = jax.tree.map(lambda v: (gamma * v).astype(v.dtype), q)

        def forward(r, i_alpha):
            i, alpha = i_alpha
            return _two_loop_forward(r, pick(s_mem, i), pick(y_mem, i), rhos[i], alpha, _vdot)

        direction, _ = jax.lax.scan(forward, r, (order, alphas))
        return direction, ScaleByLBFGSState(
            count=increment(state.count),
            params=params,
            updates=updates,
            diff_params_memory=s_mem,
            diff_updates_memory=y_mem,
            weights_memory=rhos,
        )

    return init, update


def _sq_norm(tree):
    """||x||^2 over every leaf: per-leaf sums of |x|^2, added in tree order."""
    parts = [
        jnp.sum(jnp.square(jnp.real(x)) + jnp.square(jnp.imag(x))) for x in jax.tree.leaves(tree)
    ]
    return sum(parts[1:], parts[0]) if parts else jnp.zeros(())


def _zero_unless(condition, tree):
    return jax.tree.map(lambda x: jnp.where(condition, x, jnp.zeros_like(x)), tree)


def _pair_weight(sy, keep):
    """rho = 1 / <y, s> where ``keep``, else 0 (a pair with rho = 0 adds nothing to the recursion)."""
    return jnp.where(keep, 1.0 / jnp.where(keep, sy, 1.0), 0.0)


def _store_pair(s_memory, y_memory, rhos, s, y, rho, row):
    """The memories (s_i, y_i stacked on axis 0 of each leaf, rho_i) with (s, y, rho) at ``row``."""

    def put(memory, x):
        return memory.at[row].set(x)

    return jax.tree.map(put, s_memory, s), jax.tree.map(put, y_memory, y), rhos.at[row].set(rho)


def _two_loop_backward(q, s, y, rho, dot):
    """A step of the two-loop recursion's first loop: a = rho dot(s, q), q - a y; returns both.

    ``dot(a, b)``: the real inner product of two pytrees shaped like q; ``rho``: 1 / <y, s>
    (0 for an unused pair with s = y = 0, which leaves q as it is).
    """
    alpha = rho * dot(s, q).astype(rho.dtype)
    return jax.tree.map(lambda v, yi: (v - alpha * yi).astype(v.dtype), q, y), alpha


def _two_loop_forward(r, s, y, rho, alpha, dot):
    """A step of the second loop, with a from the first: b = rho dot(y, r), r + (a - b) s."""
    beta = rho * dot(y, r).astype(rho.dtype)
    return jax.tree.map(lambda v, si: (v + (alpha - beta) * si).astype(v.dtype), r, s), beta
