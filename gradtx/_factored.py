"""Memory-saving second moments: Adafactor's factored RMS and SM3's cover of maxima.

Both keep, for a matrix, statistics of the size of its rows plus its
columns instead of its entries, and reconstruct a per-entry scale from them.
"""

from __future__ import annotations

from functools import reduce
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import (
    check_float_leaves,
    check_params_update,
    check_range,
    check_state,
    moment_structure,
)
from ._moments import moment_zeros, moving_average, store
from ._numerics import abs_sq, compute_dtype, increment, new_count, real_compute_dtype
from ._recipe import transform
from ._tree import check_same_structure


def decay_rate_pow(step, exponent=0.8):
    """Adafactor's second-moment decay: 1 - (step + 1)^(-exponent), in float64 where enabled.

    optax computes it in float32 whatever the parameters' dtype; gradtx in
    the default float dtype (float64 under ``jax.enable_x64``), which agrees
    with optax's float32 to its precision.
    """
    t = jnp.asarray(step + 1, jnp.result_type(float))
    return 1.0 - t ** (-exponent)


def _factored_dims(shape, factored, min_dim_size_to_factor):
    """(d1, d0): the second largest and the largest axis, or None when the leaf is not factored."""
    if not factored or len(shape) < 2 or 0 in shape:  # an empty leaf has nothing to factor
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


def _factored_inverse_root(sq, v_row, v_col, beta, dims):
    """One step of a factored average of ``sq`` and its inverse root, as two broadcast factors.

    With (d1, d0) = ``dims``: R_t = beta R_{t-1} + (1 - beta) mean_{d0} sq,
    C_t = beta C_{t-1} + (1 - beta) mean_{d1} sq; returns
    ((R_t / mean_{d1} R_t)^(-1/2) expanded along d0, C_t^(-1/2) expanded along d1,
    R_t, C_t), R_t and C_t in the dtypes of v_row and v_col.
    """
    d1, d0 = dims
    new_row = moving_average(v_row, jnp.mean(sq, axis=d0), beta).astype(v_row.dtype)
    new_col = moving_average(v_col, jnp.mean(sq, axis=d1), beta).astype(v_col.dtype)
    reduced_d1 = d1 - 1 if d1 > d0 else d1
    row_factor = (new_row / jnp.mean(new_row, axis=reduced_d1, keepdims=True)) ** -0.5
    col_factor = new_col**-0.5
    return jnp.expand_dims(row_factor, d0), jnp.expand_dims(col_factor, d1), new_row, new_col


def constant_decay_rate(step, decay_rate):
    """A fixed second-moment decay, ``decay_rate`` at every step (CAME's beta2)."""
    del step
    return decay_rate


class FactoredState(NamedTuple):
    """count: steps taken; v_row, v_col: the factored statistics; v: the unfactored ones (optax's fields).

    A factored leaf keeps v_row (its shape without the largest axis) and
    v_col (without the second largest) and a placeholder v of shape (1,);
    any other leaf keeps a full v and placeholders v_row, v_col.
    """

    count: jax.Array
    v_row: object
    v_col: object
    v: object


@transform(exclude=("decay_rate_fn",))
def scale_by_factored_rms(
    factored: bool = True,
    decay_rate=0.8,
    step_offset=0,
    min_dim_size_to_factor: int = 128,
    epsilon=1e-30,
    decay_rate_fn=decay_rate_pow,
):
    """Adafactor's scaling: divide by the root of a factored second moment.

    With beta_t = decay_rate_fn(t - step_offset, decay_rate) (t = 0 first),
    default 1 - (t + 1)^(-decay_rate), and G = |g|^2 + epsilon:

    * a matrix-like leaf with axes d0 (largest) and d1 (second largest), both
      at least ``min_dim_size_to_factor``:
      R_t = beta_t R_{t-1} + (1 - beta_t) mean_{d0} G,
      C_t = beta_t C_{t-1} + (1 - beta_t) mean_{d1} G,
      u = g / sqrt(R_t / mean_{d1}(R_t)) / sqrt(C_t)  (R along d1, C along d0);
    * any other leaf: v_t = beta_t v_{t-1} + (1 - beta_t) G, u = g / sqrt(v_t).

    Args:
      factored: factor matrix-like leaves.
      decay_rate: the exponent of the decay schedule.
      step_offset: subtracted from the step before the schedule.
      min_dim_size_to_factor: leaves whose second largest axis is smaller are
        not factored.
      epsilon: added to |g|^2.
      decay_rate_fn: ``(step, decay_rate) -> beta``.

    Returns:
      A transform with state ``FactoredState(count, v_row, v_col, v)``, in
      each parameter's real dtype (float32 for float16 parameters, whose
      range holds neither |g|^2 of a large g nor the default epsilon).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_factored_rms()
      >>> p = jnp.zeros(2)
      >>> tx.update(jnp.array([2.0, -0.5]), tx.init(p), p)[0]
      Array([ 1., -1.], dtype=float32)

    Reference: Shazeer, Stern, "Adafactor: Adaptive Learning Rates with
    Sublinear Memory Cost", ICML 2018, arXiv:1804.04235.
    """
    owner = "scale_by_factored_rms"
    check_range(owner, "epsilon", epsilon, 0)
    if isinstance(min_dim_size_to_factor, bool) or not isinstance(min_dim_size_to_factor, int):
        raise TypeError(
            f"{owner}: min_dim_size_to_factor must be an int, got {min_dim_size_to_factor!r}"
        )

    def init_leaf(p):
        dims = _factored_dims(p.shape, factored, min_dim_size_to_factor)
        dtype = jnp.finfo(p.dtype).dtype
        if dtype == jnp.float16:  # as square_zeros: |g|^2 + epsilon overflows or is 0 in float16
            dtype = jnp.dtype(jnp.float32)
        one = jnp.zeros((1,), dtype)
        if dims is None:
            return one, one, jnp.zeros(p.shape, dtype)
        d1, d0 = dims
        return (
            jnp.zeros(np.delete(p.shape, d0), dtype),
            jnp.zeros(np.delete(p.shape, d1), dtype),
            one,
        )

    def init(params):
        check_float_leaves(owner, params, "params")
        leaves, treedef = jax.tree.flatten(params)
        rows, cols, vs = zip(*[init_leaf(p) for p in leaves]) if leaves else ((), (), ())
        return FactoredState(
            count=new_count(),
            v_row=treedef.unflatten(rows),
            v_col=treedef.unflatten(cols),
            v=treedef.unflatten(vs),
        )

    def update_leaf(g, v_row, v_col, v, p, count):
        cd = compute_dtype(g.dtype)
        real = real_compute_dtype(cd)
        beta = jnp.asarray(decay_rate_fn(count - step_offset, decay_rate)).astype(real)
        sq = abs_sq(g.astype(cd)) + epsilon
        dims = _factored_dims(p.shape, factored, min_dim_size_to_factor)
        if dims is None:
            new_v = moving_average(v, sq, beta)
            return g.astype(cd) / jnp.sqrt(new_v), v_row, v_col, new_v.astype(v.dtype)
        row_factor, col_factor, new_row, new_col = _factored_inverse_root(
            sq, v_row, v_col, beta, dims
        )
        u = g.astype(cd) * row_factor.astype(cd) * col_factor.astype(cd)
        return u, new_row, new_col, v

    def update(updates, state, params=None, **extra):
        check_params_update(owner, state, FactoredState, updates, params)
        leaves, treedef = jax.tree.flatten(updates)
        rows, cols, vs = (treedef.flatten_up_to(t) for t in (state.v_row, state.v_col, state.v))
        outs = [
            update_leaf(g, r, c, v, p, state.count)
            for g, r, c, v, p in zip(leaves, rows, cols, vs, treedef.flatten_up_to(params))
        ]
        u, new_rows, new_cols, new_vs = zip(*outs) if outs else ((), (), (), ())
        u = [x.astype(g.dtype) for x, g in zip(u, leaves)]
        return treedef.unflatten(u), FactoredState(
            count=increment(state.count),
            v_row=treedef.unflatten(new_rows),
            v_col=treedef.unflatten(new_cols),
            v=treedef.unflatten(new_vs),
        )

    return init, update


class ScaleBySM3State(NamedTuple):
    """mu: per leaf, one accumulator per axis; nu: the momentum of the scaled gradient (optax's)."""

    mu: object
    nu: object


@transform
def scale_by_sm3(b1=0.9, b2=1.0, eps=1e-8):
    """SM3: Adagrad whose accumulator is covered by one vector per axis.

    For a leaf with axes i = 1..k and accumulators a^(i) (one entry per index
    of axis i), each step forms
    A_t = c * g_t^2 + b2 * min_i a^(i)_{t-1} (broadcast), c = 1 - b2 (1 if b2 = 1),
    a^(i)_t = max of A_t over all axes but i,
    m_t = b1 * m_{t-1} + (1 - b1) * g_t / sqrt(A_t + eps) (0 where A_t = 0);
    u_t = m_t.  A vector keeps A_t itself; a scalar leaf keeps one number
    (optax cannot take scalar leaves).

    Args:
      b1: the momentum decay, in [0, 1].
      b2: the accumulator decay, in [0, 1]; 1 sums as Adagrad.
      eps: added under the root, >= 0.

    Returns:
      A transform with state ``ScaleBySM3State(mu, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_sm3(b1=0.0, eps=0.0)
      >>> tx.update(jnp.array([[3.0, -4.0]]), tx.init(jnp.zeros((1, 2))))[0]
      Array([[ 1., -1.]], dtype=float32)

    Reference: Anil, Gupta, Koren, Singer, "Memory-Efficient Adaptive
    Optimization", NeurIPS 2019, arXiv:1901.11150.
    """
    owner = "scale_by_sm3"
    check_range(owner, "b1", b1, 0, 1)
    check_range(owner, "b2", b2, 0, 1)
    check_range(owner, "eps", eps, 0)

    def init_leaf(p):
        if p.ndim == 0:
            return [jnp.zeros((), p.dtype)]
        return [jnp.zeros((p.shape[i],), p.dtype) for i in range(p.ndim)]

    def init(params):
        check_float_leaves(owner, params, "params")
        for p in jax.tree.leaves(params):
            if jnp.iscomplexobj(p):
                raise TypeError(f"{owner}: complex parameters are not supported")
        return ScaleBySM3State(
            mu=jax.tree.map(init_leaf, params), nu=jax.tree.map(jnp.zeros_like, params)
        )

    def one(g, accumulators, m):
        if g.size == 0:  # no entries: an empty update, the accumulators unchanged
            return m, accumulators
        cd = compute_dtype(g.dtype, m.dtype)
        if g.ndim == 0:
            covered = accumulators[0].astype(cd)
        else:
            shaped = [
                a.astype(cd).reshape([-1 if j == i else 1 for j in range(g.ndim)])
                for i, a in enumerate(accumulators)
            ]
            covered = reduce(jnp.minimum, shaped)
        c = 1.0 if b2 == 1.0 else 1 - b2
        acc = moving_average(covered, g.astype(cd) ** 2, b2, weight=c, input_first=True)
        scaled = g.astype(cd) * jnp.where(acc > 0, jax.lax.rsqrt(acc + eps), 0)
        new_m = moving_average(m, scaled, b1, input_first=True).astype(m.dtype)
        if g.ndim == 0:
            new_acc = [acc.astype(g.dtype)]
        else:
            new_acc = [
                jnp.max(acc, axis=tuple(j for j in range(g.ndim) if j != i)).astype(g.dtype)
                for i in range(g.ndim)
            ]
        return new_m, new_acc

    def update(updates, state, params=None, **extra):
        moment_structure(owner, state, ScaleBySM3State, updates, "nu")
        leaves, treedef = jax.tree.flatten(updates)
        mus = treedef.flatten_up_to(state.mu)
        pairs = [one(g, a, m) for g, a, m in zip(leaves, mus, treedef.flatten_up_to(state.nu))]
        nu = treedef.unflatten([m for m, _ in pairs])
        mu = treedef.unflatten([a for _, a in pairs])
        out = jax.tree.map(lambda m, g: m.astype(g.dtype), nu, updates)
        return out, ScaleBySM3State(mu=mu, nu=nu)

    return init, update


class ConfidenceState(NamedTuple):
    """mu: the moving average of the updates; r_row, r_col: the factored statistics of
    the residuals (placeholders of shape (1,) for a leaf that is not factored)."""

    mu: object
    r_row: object
    r_col: object


@transform
def scale_by_confidence(
    b1=0.9, b3=0.9999, eps=1e-16, factored: bool = True, min_dim_size_to_factor: int = 0
):
    """CAME's confidence-guided momentum: u = m_t / sqrt(S_t), S_t factored from (u_t - m_t)^2.

    m_t = b1 * m_{t-1} + (1 - b1) * u_t is the momentum of the input u_t (in
    CAME the clipped Adafactor update) and U_t = (u_t - m_t)^2 + eps its
    instability.  A matrix-like leaf (axes chosen as in
    ``scale_by_factored_rms``) keeps S_t as Adafactor keeps V_t:
    R_t = b3 R_{t-1} + (1 - b3) mean_{d0} U_t, C_t = b3 C_{t-1} + (1 - b3) mean_{d1} U_t,
    u = m_t / sqrt(R_t / mean_{d1}(R_t)) / sqrt(C_t): steps where the update
    and its momentum disagree are damped.  Any other leaf returns m_t.

    Args:
      b1: the decay of m, in [0, 1).
      b3: the decay of the residual statistics, in [0, 1).
      eps: added to the squared residual, >= 0.
      factored, min_dim_size_to_factor: which leaves are factored, as in
        ``scale_by_factored_rms`` (CAME factors every leaf of rank >= 2).

    Returns:
      A transform with state ``ConfidenceState(mu, r_row, r_col)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_confidence(b1=0.5, b3=0.5)
      >>> u = jnp.array([[1.0, 2.0]])
      >>> tx.update(u, tx.init(u))[0]   # m = u / 2, residuals u / 2: rows and columns agree
      Array([[1.4142135, 1.4142135]], dtype=float32)

    Reference: Luo et al., "CAME: Confidence-guided Adaptive Memory Efficient
    Optimization", ACL 2023, arXiv:2307.02047.
    """
    owner = "scale_by_confidence"
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b3", b3, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)

    def init_leaf(p):
        dims = _factored_dims(p.shape, factored, min_dim_size_to_factor)
        dtype = jnp.finfo(p.dtype).dtype
        if dtype == jnp.float16:  # the squared residual overflows or is 0 in float16
            dtype = jnp.dtype(jnp.float32)
        one = jnp.zeros((1,), dtype)
        if dims is None:
            return one, one
        d1, d0 = dims
        return jnp.zeros(np.delete(p.shape, d0), dtype), jnp.zeros(np.delete(p.shape, d1), dtype)

    def init(params):
        check_float_leaves(owner, params, "params")
        leaves, treedef = jax.tree.flatten(params)
        rows, cols = zip(*[init_leaf(p) for p in leaves]) if leaves else ((), ())
        return ConfidenceState(
            mu=moment_zeros(params), r_row=treedef.unflatten(rows), r_col=treedef.unflatten(cols)
        )

    def update_leaf(u, m, r_row, r_col):
        cd = compute_dtype(u.dtype, m.dtype)
        new_m = moving_average(m, u, b1)
        dims = _factored_dims(u.shape, factored, min_dim_size_to_factor)
        if dims is None:
            return new_m, new_m, r_row, r_col
        real = real_compute_dtype(r_row.dtype)
        residual = abs_sq(u.astype(cd) - new_m).astype(real) + eps
        row_factor, col_factor, new_row, new_col = _factored_inverse_root(
            residual, r_row, r_col, b3, dims
        )
        return new_m * row_factor.astype(cd) * col_factor.astype(cd), new_m, new_row, new_col

    def update(updates, state, params=None, **extra):
        check_state(owner, state, ConfidenceState)
        check_float_leaves(owner, updates, "gradient")
        check_same_structure(owner, state.mu, updates, "the state's mu", "updates")
        leaves, treedef = jax.tree.flatten(updates)
        fields = (treedef.flatten_up_to(t) for t in (state.mu, state.r_row, state.r_col))
        outs = [update_leaf(u, *rest) for u, *rest in zip(leaves, *fields)]
        out, mus, rows, cols = zip(*outs) if outs else ((), (), (), ())
        return treedef.unflatten([x.astype(u.dtype) for x, u in zip(out, leaves)]), ConfidenceState(
            mu=store(treedef.unflatten(list(mus)), state.mu),
            r_row=treedef.unflatten(list(rows)),
            r_col=treedef.unflatten(list(cols)),
        )

    return init, update
