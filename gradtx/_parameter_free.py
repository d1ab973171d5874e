"""Learning-rate-free methods: the step size is estimated from the run itself.

Prodigy and D-Adaptation keep an estimate d_t of the distance from the
initial point to the solution and grow it monotonically from a small d_0;
DoG (globally or per leaf) and DoWG divide the distance travelled by the gradients' norms; Mechanic
tunes a scale of any optimizer's steps by coin betting; COCOB bets per
coordinate.  All but COCOB weigh every coordinate of every leaf, so they are
not elementwise.  Prodigy and D-Adaptation take the learning rate (a
multiplier of the estimate, which enters the estimate itself), and they,
COCOB and Mechanic return the step, sign included, as optax's do: they end
a recipe.  DoG and DoWG keep the gradient's direction; the learning-rate
step that follows them flips it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import GradientTransformation, update_fn
from ._checks import (
    check_float_leaves,
    check_learning_rate,
    check_params,
    check_range,
    check_state,
    check_transformation,
    moment_state,
)
from ._moments import debias_denominator, moment_zeros, moving_average, store
from ._numerics import abs_sq, compute_dtype, increment, new_count, real_compute_dtype
from ._recipe import transform
from ._tree import check_same_structure, path_str, zeros_like_tree
from ._typing import ScalarOrSchedule


def _scalar_dtype(params):
    """The dtype of the scalar estimates: the narrowest leaf's compute dtype (optax's choice)."""
    dtypes = [real_compute_dtype(jnp.result_type(p)) for p in jax.tree.leaves(params)]
    return min(dtypes, key=lambda d: d.itemsize, default=jnp.dtype(jnp.float32))


def _needs_params(owner, params, updates):
    """Raise unless ``params`` are given and match ``updates`` leaf for leaf, shapes included."""
    check_params(owner, params, updates)
    flat = jax.tree_util.tree_flatten_with_path(updates)[0]
    for (path, u), p in zip(flat, jax.tree.leaves(params)):
        if jnp.shape(u) != jnp.shape(p):
            raise ValueError(
                f"{owner}: updates leaf {path_str(path)} has shape {jnp.shape(u)} but the "
                f"params leaf has shape {jnp.shape(p)}"
            )


def _tree_sum(tree, dtype):
    return sum((jnp.sum(x).astype(dtype) for x in jax.tree.leaves(tree)), jnp.zeros((), dtype))


def _grown_estimate(d, numerator, denominator):
    """max(d, numerator / denominator), or d itself where the denominator is 0.

    The denominator, ||s_t||_1, is 0 exactly while every gradient seen so far
    (weighted by its step size) is 0: there is nothing to estimate from, and
    0 / 0 would make the estimate NaN for good.  (The second ``where`` keeps
    that NaN out of the gradient, too.)
    """
    known = denominator > 0
    ratio = numerator / jnp.where(known, denominator, jnp.ones_like(denominator))
    return jnp.where(known, jnp.maximum(d, ratio), d)


def _initial(owner, params, estim_lr0):
    """The state fields Prodigy and D-Adaptation share, at the start: zero moments,
    d_0 = ``estim_lr0`` and r_0 = 0 in the params' scalar dtype, and t = 0."""
    check_float_leaves(owner, params, "params")
    dtype = _scalar_dtype(params)
    zeros = moment_zeros(params)
    return dict(
        exp_avg=zeros,
        exp_avg_sq=zeros,
        grad_sum=zeros,
        estim_lr=jnp.asarray(estim_lr0, dtype),
        numerator_weighted=jnp.zeros((), dtype),
        count=new_count(),
    )


def _adam_step_size(learning_rate, b1, b2, state, dtype):
    """``(t + 1, dlr_t)``: dlr_t = d_t * lr_t * sqrt(1 - b2^(t+1)) / (1 - b1^(t+1))."""
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    count = increment(state.count)
    c1, c2 = debias_denominator(b1, count, dtype), debias_denominator(b2, count, dtype)
    return count, state.estim_lr * jnp.asarray(lr, dtype) * jnp.sqrt(c2) / c1


def _picker(updates, new):
    """``pick(i)``: the tree of the i-th entries of ``new``, a tree of tuples shaped like
    ``updates``."""

    def pick(i):
        return jax.tree.map(lambda _, n: n[i], updates, new)

    return pick


def _next_state(pick, state, count, d_next, numerator):
    """The state fields Prodigy and D-Adaptation share, after a step: the moments m, v
    and s (``pick(0)``, ``pick(1)``, ``pick(2)``) as stored, d_{t+1}, r_t and t + 1."""
    return dict(
        exp_avg=store(pick(0), state.exp_avg, count),
        exp_avg_sq=store(pick(1), state.exp_avg_sq, count, salt=1 << 20),
        grad_sum=store(pick(2), state.grad_sum, count, salt=2 << 20),
        estim_lr=d_next,
        numerator_weighted=numerator,
        count=count,
    )


def _adaptive_step_transform(owner, init, update, learning_rate, betas, rest):
    """Prodigy's or D-Adaptation's transform, recording learning_rate, ``betas`` as a
    tuple, then the hyperparameters ``rest``."""
    return GradientTransformation(
        init,
        update,
        name=owner,
        hyperparams={"learning_rate": learning_rate, "betas": tuple(betas), **rest},
    )


def _check_betas(owner, betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
    check_range(owner, "betas[0]", betas[0], 0, 1, high_open=True)
    check_range(owner, "betas[1]", betas[1], 0, 1, high_open=True)
    return betas


class ProdigyState(NamedTuple):
    """exp_avg: m_t; exp_avg_sq: v_t; grad_sum: s_t; params0: x_0; estim_lr: d_t;
    numerator_weighted: r_t; count: t.  (optax's fields.)"""

    exp_avg: Any
    exp_avg_sq: Any
    grad_sum: Any
    params0: Any
    estim_lr: jax.Array
    numerator_weighted: jax.Array
    count: jax.Array


class DAdaptAdamWState(NamedTuple):
    """exp_avg: m_t; exp_avg_sq: v_t; grad_sum: s_t; estim_lr: d_t;
    numerator_weighted: r_t; count: t.  (optax's fields.)"""

    exp_avg: Any
    exp_avg_sq: Any
    grad_sum: Any
    estim_lr: jax.Array
    numerator_weighted: jax.Array
    count: jax.Array


def scale_by_prodigy(
    learning_rate: ScalarOrSchedule = 1.0,
    betas=(0.9, 0.999),
    beta3=None,
    eps=1e-8,
    estim_lr0=1e-6,
    estim_lr_coef=1.0,
    weight_decay=0.0,
    safeguard_warmup: bool = False,
):
    """Prodigy: Adam whose step size d_t is estimated from the distance travelled.

    With lr_t the learning rate at t = 0, 1, ... and k = t + 1:
    dlr_t = d_t * lr_t * sqrt(1 - b2^k) / (1 - b1^k),
    m_t = b1 m_{t-1} + (1 - b1) d_t g_t,        v_t = b2 v_{t-1} + (1 - b2) d_t^2 g_t^2,
    s_t = b3 s_{t-1} + (e_t / d_0) d_t g_t,     e_t = d_t (safeguard_warmup) or dlr_t,
    r_t = b3 r_{t-1} + (d_t / d_0) dlr_t <g_t, x_0 - x_t>,
    d_{t+1} = max(d_t, estim_lr_coef * r_t / ||s_t||_1),
    u_t = -dlr_t * (m_t / (sqrt(v_t) + d_{t+1} eps) + weight_decay * x_t).

    While ||s_t||_1 = 0 (every gradient so far zero) d_{t+1} = d_t: zero
    gradients give a zero step (without weight decay) and the estimate
    starts from d_0 once they are not.  optax.contrib's ``prodigy`` divides
    0 / 0 there and stays NaN for good; the authors' PyTorch code skips the
    step.

    Args:
      learning_rate: lr, a multiplier of the estimate, a number >= 0 or a
        schedule.
      betas: (b1, b2), the decays of m and v, each in [0, 1).
      beta3: b3, the decay of s and r; None: sqrt(b2).
      eps: the stabiliser, scaled by d_{t+1}, >= 0.
      estim_lr0: d_0 > 0, the initial estimate.
      estim_lr_coef: a multiplier of the estimate, >= 0.
      weight_decay: decoupled, scaled by dlr_t, >= 0.
      safeguard_warmup: weigh s by d_t instead of dlr_t (for warmup schedules).

    Returns:
      A transform with state ``ProdigyState``; it needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_prodigy()
      >>> params = jnp.array([1.0, -1.0])
      >>> tx.update(jnp.array([1.0, 2.0]), tx.init(params), params)[0]  # -d_0 lr sign(g)
      Array([-1.e-06, -1.e-06], dtype=float32)

    Reference: Mishchenko, Defazio, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner", ICML 2024, arXiv:2306.06101.
    """
    owner = "scale_by_prodigy"
    check_learning_rate(owner, learning_rate)
    b1, b2 = _check_betas(owner, betas)
    if beta3 is None:
        beta3 = b2**0.5
    check_range(owner, "beta3", beta3, 0, 1)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "estim_lr0", estim_lr0, 0, low_open=True)
    check_range(owner, "estim_lr_coef", estim_lr_coef, 0)
    check_range(owner, "weight_decay", weight_decay, 0)

    def init(params):
        start = _initial(owner, params, estim_lr0)
        return ProdigyState(params0=jax.tree.map(jnp.asarray, params), **start)

    def update(updates, state, params=None, **extra):
        moment_state(
            owner, state, ProdigyState, updates, "exp_avg", "exp_avg_sq", "grad_sum", "params0"
        )
        _needs_params(owner, params, updates)
        dtype = state.estim_lr.dtype
        d = state.estim_lr
        count, dlr = _adam_step_size(learning_rate, b1, b2, state, dtype)
        weight = d if safeguard_warmup else dlr

        def moments(g, p, p0, m, v, s):
            cd = compute_dtype(g.dtype, p.dtype)
            dg = d.astype(cd) * g.astype(cd)
            travelled = jnp.sum(g.astype(cd) * (p0.astype(cd) - p.astype(cd)))
            m = moving_average(m, dg, b1)
            v = moving_average(v, dg, b2, weight=(1 - b2) * dg)  # the published (1 - b2) * dg * dg
            s = beta3 * s.astype(cd) + weight.astype(cd) * dg / estim_lr0
            return m, v, s, travelled, jnp.sum(jnp.abs(s))

        new = jax.tree.map(
            moments, updates, params, state.params0, state.exp_avg, state.exp_avg_sq, state.grad_sum
        )
        pick = _picker(updates, new)

        travelled = _tree_sum(pick(3), dtype)
        numerator = beta3 * state.numerator_weighted + d / estim_lr0 * dlr * travelled
        d_next = _grown_estimate(d, estim_lr_coef * numerator, _tree_sum(pick(4), dtype))

        def step(g, p, m, v):
            cd = m.dtype
            descent = m / (jnp.sqrt(v) + d_next.astype(cd) * eps) + weight_decay * p.astype(cd)
            return (-dlr.astype(cd) * descent).astype(g.dtype)

        out = jax.tree.map(step, updates, params, pick(0), pick(1))

        return out, ProdigyState(
            params0=state.params0, **_next_state(pick, state, count, d_next, numerator)
        )

    rest = {"beta3": beta3, "eps": eps, "estim_lr0": estim_lr0, "estim_lr_coef": estim_lr_coef}
    rest.update(weight_decay=weight_decay, safeguard_warmup=safeguard_warmup)
    return _adaptive_step_transform(owner, init, update, learning_rate, betas, rest)


def scale_by_dadapt_adamw(
    learning_rate: ScalarOrSchedule = 1.0,
    betas=(0.9, 0.999),
    eps=1e-8,
    estim_lr0=1e-6,
    weight_decay=0.0,
):
    """D-Adaptation for AdamW: Adam whose step size d_t is estimated from the gradients' sum.

    With lr_t the learning rate at t = 0, 1, ..., k = t + 1 and c = sqrt(b2):
    dlr_t = d_t * lr_t * sqrt(1 - b2^k) / (1 - b1^k),
    r_t = c r_{t-1} + (1 - c) dlr_t <g_t, s_{t-1} / (sqrt(v_{t-1}) + eps)>,
    m_t = b1 m_{t-1} + (1 - b1) dlr_t g_t,      v_t = b2 v_{t-1} + (1 - b2) g_t^2,
    s_t = c s_{t-1} + (1 - c) dlr_t g_t,
    d_{t+1} = max(d_t, r_t / ((1 - c) ||s_t||_1)),
    u_t = -(m_t / (sqrt(v_t) + eps) + weight_decay * dlr_t * x_t).

    While ||s_t||_1 = 0 (every gradient so far zero) d_{t+1} = d_t: zero
    gradients give a zero step (without weight decay) and the estimate
    starts from d_0 once they are not.  optax.contrib's ``dadapt_adamw``
    divides 0 / 0 there and is NaN from the next step on; the authors'
    PyTorch code skips the step.

    Args:
      learning_rate: lr, a multiplier of the estimate, a number >= 0 or a
        schedule.
      betas: (b1, b2), the decays of m and v, each in [0, 1).
      eps: added to the root, >= 0.
      estim_lr0: d_0 > 0, the initial estimate.
      weight_decay: decoupled, scaled by dlr_t, >= 0.

    Returns:
      A transform with state ``DAdaptAdamWState``; it needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_dadapt_adamw()
      >>> params = jnp.zeros(2)
      >>> tx.update(jnp.array([1.0, 2.0]), tx.init(params), params)[0]  # -d_0 lr sign(g)
      Array([-1.e-06, -1.e-06], dtype=float32)

    Reference: Defazio, Mishchenko, "Learning-Rate-Free Learning by
    D-Adaptation", ICML 2023, arXiv:2301.07733.
    """
    owner = "scale_by_dadapt_adamw"
    check_learning_rate(owner, learning_rate)
    b1, b2 = _check_betas(owner, betas)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "estim_lr0", estim_lr0, 0, low_open=True)
    check_range(owner, "weight_decay", weight_decay, 0)
    c = b2**0.5

    def init(params):
        return DAdaptAdamWState(**_initial(owner, params, estim_lr0))

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, DAdaptAdamWState, updates, "exp_avg", "exp_avg_sq", "grad_sum")
        _needs_params(owner, params, updates)
        dtype = state.estim_lr.dtype
        count, dlr = _adam_step_size(learning_rate, b1, b2, state, dtype)

        def moments(g, m, v, s):
            cd = compute_dtype(g.dtype, m.dtype)
            g, m, v, s = (x.astype(cd) for x in (g, m, v, s))
            inner = jnp.sum(g * s / (jnp.sqrt(v) + eps))
            m = moving_average(m, g, b1, weight=(1 - b1) * dlr.astype(cd))
            v = moving_average(v, g, b2, weight=(1 - b2) * g)  # the published (1 - b2) * g * g
            s = moving_average(s, g, c, weight=(1 - c) * dlr.astype(cd))
            return m, v, s, inner, jnp.sum(jnp.abs(s))

        new = jax.tree.map(moments, updates, state.exp_avg, state.exp_avg_sq, state.grad_sum)
        pick = _picker(updates, new)

        numerator = c * state.numerator_weighted + (1 - c) * dlr * _tree_sum(pick(3), dtype)
        d_next = _grown_estimate(state.estim_lr, numerator, (1 - c) * _tree_sum(pick(4), dtype))

        def step(g, p, m, v):
            cd = m.dtype
            decay = weight_decay * dlr.astype(cd) * p.astype(cd)
            return (-(m / (jnp.sqrt(v) + eps) + decay)).astype(g.dtype)

        out = jax.tree.map(step, updates, params, pick(0), pick(1))

        return out, DAdaptAdamWState(**_next_state(pick, state, count, d_next, numerator))

    rest = {"eps": eps, "estim_lr0": estim_lr0, "weight_decay": weight_decay}
    return _adaptive_step_transform(owner, init, update, learning_rate, betas, rest)


def _sq_norm(tree, dtype):
    """sum over leaves of |x|^2, as a scalar of ``dtype``."""
    return _tree_sum(jax.tree.map(lambda x: abs_sq(x.astype(compute_dtype(x.dtype))), tree), dtype)


def _distance_sq(params, start, dtype):
    return _tree_sum(
        jax.tree.map(
            lambda p, p0: abs_sq(
                p0.astype(compute_dtype(p.dtype)) - p.astype(compute_dtype(p.dtype))
            ),
            params,
            start,
        ),
        dtype,
    )


def _scaled_by(tree, factor):
    def scaled(u):
        cd = compute_dtype(u.dtype)
        return (factor.astype(cd) * u.astype(cd)).astype(u.dtype)

    return jax.tree.map(scaled, tree)


class DoGState(NamedTuple):
    """is_init_step: before the first step; init_params: x_0; max_dist: r_t;
    sum_sq_norm_grads: G_t.  (optax's fields.)"""

    is_init_step: jax.Array
    init_params: Any
    max_dist: jax.Array
    sum_sq_norm_grads: jax.Array


_DOG_INIT_STEPS = ("distance", "learning_rate", "heuristic")


def scale_by_dog(init_step, eps=1e-8):
    """Distance over Gradients: u_t = r_t / sqrt(G_t + eps) * g_t.

    r_t = max(r_{t-1}, ||x_t - x_0||),   G_t = G_{t-1} + ||g_t||^2,
    norms over every leaf.  r_0 is set by ``init_step = (kind, value)``:
    ``("distance", r)``: r_0 = r; ``("heuristic", c)``: r_0 = c (1 + ||x_0||);
    ``("learning_rate", lr)``: r_0 = 0 and the first step is lr * g_0.

    Args:
      init_step: a pair (kind, value) as above.
      eps: added to G_t under the root, >= 0.

    Returns:
      A transform with state ``DoGState``; it needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_dog(("distance", 0.5), eps=0.0)
      >>> params = jnp.array([1.0, 2.0])
      >>> tx.update(jnp.array([3.0, 4.0]), tx.init(params), params)[0]   # 0.5 g / ||g||
      Array([0.3, 0.4], dtype=float32)

    Reference: Ivgi, Hinder, Carmon, "DoG is SGD's Best Friend: A
    Parameter-Free Dynamic Step Size Schedule", ICML 2023, arXiv:2302.12022.
    """
    owner = "scale_by_dog"
    if (
        not isinstance(init_step, (tuple, list))
        or len(init_step) != 2
        or init_step[0] not in _DOG_INIT_STEPS
    ):
        raise ValueError(
            f"{owner}: init_step must be a pair (kind, value) with kind one of "
            f"{', '.join(_DOG_INIT_STEPS)}, got {init_step!r}"
        )
    kind, value = init_step
    check_range(owner, "init_step value", value, 0)
    check_range(owner, "eps", eps, 0)

    def init(params):
        check_float_leaves(owner, params, "params")
        dtype = _scalar_dtype(params)
        if kind == "distance":
            r0 = jnp.asarray(value, dtype)
        elif kind == "heuristic":
            r0 = value * (1 + jnp.sqrt(_sq_norm(params, dtype)))
        else:
            r0 = jnp.zeros((), dtype)
        return DoGState(
            is_init_step=jnp.asarray(True),
            init_params=jax.tree.map(jnp.asarray, params),
            max_dist=r0,
            sum_sq_norm_grads=jnp.zeros((), dtype),
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, DoGState, updates, "init_params")
        _needs_params(owner, params, updates)
        dtype = state.max_dist.dtype
        r = jnp.maximum(state.max_dist, jnp.sqrt(_distance_sq(params, state.init_params, dtype)))
        total = state.sum_sq_norm_grads + _sq_norm(updates, dtype)
        step = r / jnp.sqrt(total + eps)
        if kind == "learning_rate":
            step = jnp.where(state.is_init_step, jnp.asarray(value, dtype), step)
        return _scaled_by(updates, step), DoGState(
            is_init_step=jnp.asarray(False),
            init_params=state.init_params,
            max_dist=r,
            sum_sq_norm_grads=total,
        )

    return GradientTransformation(
        init, update, name=owner, hyperparams={"init_step": tuple(init_step), "eps": eps}
    )


class ScaleByDistanceOverGradientsState(NamedTuple):
    """max_dist: r_t per leaf; grad_sum_of_squares: G_t per leaf (shape (1,));
    init_params: x_0 in ``param_dtype``.  (optax's fields.)"""

    max_dist: Any
    grad_sum_of_squares: Any
    init_params: Any


def scale_by_distance_over_gradients(
    reps_rel=1e-6, eps=1e-8, param_dtype=jnp.float32, global_scale=1.0
) -> GradientTransformation:
    """Layer-wise DoG: u_t = global_scale * r_t / sqrt(G_t + eps) * g_t, per leaf.

    r_t = max(r_{t-1}, ||x_t - x_0||),   G_t = G_{t-1} + ||g_t||^2,
    r_0 = reps_rel * (1 + ||x_0||), each norm over one leaf: every leaf gets
    its own step (LDoG in the paper; ``scale_by_dog`` is the global rule).
    x_0 is stored in ``param_dtype`` (float32 by default, as in optax, even
    for float64 parameters).  optax's ``scale_by_distance_over_gradients``.

    Args:
      reps_rel: sets r_0; the paper suggests 1e-4 with batch norm, 1e-6 otherwise.
      eps: added to G_t under the root, >= 0.
      param_dtype: the dtype x_0 is stored in.
      global_scale: a factor on every step (1.0, or -1.0 to flip the sign).

    Returns:
      A transform with state ``ScaleByDistanceOverGradientsState``; it needs
      ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_distance_over_gradients(reps_rel=0.1, eps=0.0)
      >>> params = jnp.array([3.0, 4.0])   # r_0 = 0.1 * (1 + 5)
      >>> tx.update(jnp.array([0.0, 2.0]), tx.init(params), params)[0]   # 0.6 g / ||g||
      Array([0. , 0.6], dtype=float32)

    Reference: Ivgi, Hinder, Carmon, "DoG is SGD's Best Friend: A
    Parameter-Free Dynamic Step Size Schedule", ICML 2023, arXiv:2302.12022.
    """
    owner = "scale_by_distance_over_gradients"
    check_range(owner, "reps_rel", reps_rel, 0)
    check_range(owner, "eps", eps, 0)
    param_dtype = jnp.dtype(param_dtype)

    def norm(x):
        return jnp.sqrt(jnp.sum(abs_sq(x.astype(compute_dtype(x.dtype)))))

    def init(params):
        check_float_leaves(owner, params, "params")
        return ScaleByDistanceOverGradientsState(
            max_dist=jax.tree.map(lambda p: reps_rel * (1 + norm(p)), params),
            grad_sum_of_squares=jax.tree.map(
                lambda p: jnp.zeros(1, real_compute_dtype(p.dtype)), params
            ),
            init_params=jax.tree.map(lambda p: jnp.asarray(p).astype(param_dtype), params),
        )

    def update(updates, state, params=None, **extra):
        check_state(owner, state, ScaleByDistanceOverGradientsState)
        check_float_leaves(owner, updates, "gradient")
        _needs_params(owner, params, updates)
        check_same_structure(owner, state.max_dist, updates, "the state", "updates")

        def distance(d, p, p0):
            cd = compute_dtype(p.dtype, p0.dtype)
            return jnp.maximum(d, norm(p.astype(cd) - p0.astype(cd)).astype(d.dtype))

        max_dist = jax.tree.map(distance, state.max_dist, params, state.init_params)
        g_sos = jax.tree.map(
            lambda s, g: s + jnp.sum(abs_sq(g.astype(compute_dtype(g.dtype)))).astype(s.dtype),
            state.grad_sum_of_squares,
            updates,
        )

        def step(g, d, s):
            cd = compute_dtype(g.dtype, d.dtype, s.dtype)
            eta = global_scale * (d.astype(cd) / jnp.sqrt(s[0].astype(cd) + eps))
            return (eta * g.astype(cd)).astype(g.dtype)

        out = jax.tree.map(step, updates, max_dist, g_sos)
        return out, ScaleByDistanceOverGradientsState(max_dist, g_sos, state.init_params)

    return GradientTransformation(
        init,
        update,
        name=owner,
        hyperparams={
            "reps_rel": reps_rel,
            "eps": eps,
            "param_dtype": param_dtype.name,
            "global_scale": global_scale,
        },
    )


class DoWGState(NamedTuple):
    """init_params: x_0; weighted_sq_norm_grads: V_t; estim_sq_dist: r_t^2.  (optax's fields.)"""

    init_params: Any
    weighted_sq_norm_grads: jax.Array
    estim_sq_dist: jax.Array


@transform
def scale_by_dowg(init_estim_sq_dist=None, eps=1e-4):
    """Distance over Weighted Gradients: u_t = r_t^2 / (sqrt(V_t) + eps) * g_t.

    r_t^2 = max(r_{t-1}^2, ||x_t - x_0||^2),   V_t = V_{t-1} + r_t^2 ||g_t||^2.

    Args:
      init_estim_sq_dist: r_0^2; None: eps.
      eps: added to the root (and the default r_0^2), >= 0.

    Returns:
      A transform with state ``DoWGState``; it needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_dowg(0.25, eps=0.0)
      >>> params = jnp.array([1.0, 2.0])
      >>> tx.update(jnp.array([3.0, 4.0]), tx.init(params), params)[0]   # 0.25 g / (0.5 ||g||)
      Array([0.3, 0.4], dtype=float32)

    Reference: Khaled, Mishchenko, Jin, "DoWG Unleashed: An Efficient
    Universal Parameter-Free Gradient Descent Method", NeurIPS 2023,
    arXiv:2305.16284.
    """
    owner = "scale_by_dowg"
    if init_estim_sq_dist is not None:
        check_range(owner, "init_estim_sq_dist", init_estim_sq_dist, 0)
    check_range(owner, "eps", eps, 0)

    def init(params):
        check_float_leaves(owner, params, "params")
        dtype = _scalar_dtype(params)
        r0 = eps if init_estim_sq_dist is None else init_estim_sq_dist
        return DoWGState(
            init_params=jax.tree.map(jnp.asarray, params),
            weighted_sq_norm_grads=jnp.zeros((), dtype),
            estim_sq_dist=jnp.asarray(r0, dtype),
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, DoWGState, updates, "init_params")
        _needs_params(owner, params, updates)
        dtype = state.estim_sq_dist.dtype
        r_sq = jnp.maximum(state.estim_sq_dist, _distance_sq(params, state.init_params, dtype))
        weighted = r_sq * _sq_norm(updates, dtype) + state.weighted_sq_norm_grads
        step = r_sq / (jnp.sqrt(weighted) + eps)
        return _scaled_by(updates, step), DoWGState(
            init_params=state.init_params, weighted_sq_norm_grads=weighted, estim_sq_dist=r_sq
        )

    return init, update


class COCOBState(NamedTuple):
    """init_particles: x_0; cumulative_gradients: -sum g; scale: L_t = max |g|;
    subgradients: G_t = sum |g|; reward: R_t.  (optax's fields.)"""

    init_particles: Any
    cumulative_gradients: Any
    scale: Any
    subgradients: Any
    reward: Any


@transform
def scale_by_cocob(alpha=100.0, eps=1e-8):
    """COCOB-Backprop: coordinate-wise coin betting; the update is the move to the bet.

    Per coordinate, with L_0 = eps and sums from the first step:
    L_t = max(L_{t-1}, |g_t|),   G_t = G_{t-1} + |g_t|,   C_t = C_{t-1} - g_t,
    R_t = max(R_{t-1} - g_t (x_t - x_0), 0),
    x_{t+1} = x_0 + C_t (L_t + R_t) / (L_t max(G_t + L_t, alpha L_t)),
    u_t = x_{t+1} - x_t.

    It returns the step, sign included (the bet is placed against the
    gradient): it ends a recipe.

    Args:
      alpha: the bound on the first bets, > 0.
      eps: L_0, > 0.

    Returns:
      A transform with state ``COCOBState``; it needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_cocob(alpha=2.0)
      >>> params = jnp.array([0.0])
      >>> tx.update(jnp.array([1.0]), tx.init(params), params)[0]   # -1 * 1 / (1 * 2)
      Array([-0.5], dtype=float32)

    Reference: Orabona, Tommasi, "Training Deep Networks without Learning
    Rates Through Coin Betting", NeurIPS 2017, arXiv:1705.07795.
    """
    owner = "scale_by_cocob"
    check_range(owner, "alpha", alpha, 0, low_open=True)
    check_range(owner, "eps", eps, 0, low_open=True)

    def init(params):
        check_float_leaves(owner, params, "params")
        zeros = zeros_like_tree(params)
        return COCOBState(
            init_particles=jax.tree.map(jnp.asarray, params),
            cumulative_gradients=zeros,
            scale=jax.tree.map(lambda z: jnp.full_like(z, eps), zeros),
            subgradients=zeros,
            reward=zeros,
        )

    def update(updates, state, params=None, **extra):
        moment_state(
            owner,
            state,
            COCOBState,
            updates,
            "cumulative_gradients",
            "scale",
            "subgradients",
            "reward",
        )
        _needs_params(owner, params, updates)

        def bet(g, x, x0, c, big_l, big_g, r):
            cd = compute_dtype(g.dtype, x.dtype)
            g, x, x0, c, big_l, big_g, r = (v.astype(cd) for v in (g, x, x0, c, big_l, big_g, r))
            big_l = jnp.maximum(big_l, jnp.abs(g))
            big_g = big_g + jnp.abs(g)
            r = jnp.maximum(r - g * (x - x0), 0)
            c = c - g
            target = x0 + c / (big_l * jnp.maximum(big_g + big_l, alpha * big_l)) * (big_l + r)
            return target - x, c, big_l, big_g, r

        new = jax.tree.map(
            bet,
            updates,
            params,
            state.init_particles,
            state.cumulative_gradients,
            state.scale,
            state.subgradients,
            state.reward,
        )

        def pick(i, like):
            return jax.tree.map(lambda _, n, o: n[i].astype(o.dtype), updates, new, like)

        return pick(0, updates), COCOBState(
            init_particles=state.init_particles,
            cumulative_gradients=pick(1, state.cumulative_gradients),
            scale=pick(2, state.scale),
            subgradients=pick(3, state.subgradients),
            reward=pick(4, state.reward),
        )

    return init, update


class MechanicState(NamedTuple):
    """base_optimizer_state; count: t; r, m, v, s: the per-beta wealth statistics;
    x0: the start.  (optax's fields.)"""

    base_optimizer_state: Any
    count: jax.Array
    r: jax.Array
    m: jax.Array
    v: jax.Array
    s: jax.Array
    x0: Any


@transform(exclude=("base_optimizer",))
def mechanize(base_optimizer, weight_decay=0.01, eps=1e-8, s_init=1e-6, num_betas=6):
    """Mechanic: scale the base optimizer's accumulated steps by a learned factor S_t.

    The parameters are x_t = x_0 + S_t Delta_t, where Delta_t sums the base
    optimizer's steps and S_t = s_1 + ... + s_n is tuned online by n coin
    bettors with betas b_i = 1 - 0.1^i:
    h_t = <g_t + lambda S ||g_t|| / (||x_t|| + eps) x_t, Delta_{t-1}>,
    m_i = max(b_i m_i, |h_t| + eps),    v_i = b_i^2 v_i + h_t^2,
    r_i = b_i r_i + clip(h_t, -m_i^old, m_i^old) s_i,
    s_i = (s_init / n * m_i + max(r_i, 0)) / (sqrt(v_i) + eps),
    with Delta_{t-1} = (x_0 - x_t) / (S_{t-1} + eps) (as optax reads it back).

    Args:
      base_optimizer: the transform whose steps are scaled (it includes its
        learning rate).
      weight_decay: lambda, >= 0.
      eps: the stabiliser, >= 0.
      s_init: the initial s_i, > 0.
      num_betas: n, the number of bettors, >= 1.

    Returns:
      A transform with state ``MechanicState``; it needs ``params``.

    Reference: Cutkosky, Defazio, Mehta, "Mechanic: A Learning Rate Tuner",
    NeurIPS 2023, arXiv:2306.00144.
    """
    owner = "mechanize"
    check_transformation(owner, "base_optimizer", base_optimizer)
    check_range(owner, "weight_decay", weight_decay, 0)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "s_init", s_init, 0, low_open=True)
    if not isinstance(num_betas, int) or num_betas < 1:
        raise ValueError(f"{owner}: num_betas must be an integer >= 1, got {num_betas!r}")
    base_update = update_fn(base_optimizer)

    def init(params):
        check_float_leaves(owner, params, "params")
        dtype = _scalar_dtype(params)
        zeros = jnp.zeros((num_betas,), dtype)
        return MechanicState(
            base_optimizer_state=base_optimizer.init(params),
            count=new_count(),
            r=zeros,
            m=zeros,
            v=zeros,
            s=jnp.full((num_betas,), s_init, dtype),
            x0=jax.tree.map(jnp.asarray, params),
        )

    def update(updates, state, params=None, **extra):
        check_state(owner, state, MechanicState)
        check_float_leaves(owner, updates, "gradient")
        _needs_params(owner, params, updates)
        dtype = state.s.dtype
        steps, base_state = base_update(updates, state.base_optimizer_state, params, **extra)
        x0 = jax.tree.map(lambda p, x: jnp.where(state.count == 0, p, x), params, state.x0)
        total = jnp.sum(state.s)
        decay = (
            weight_decay
            * total
            * jnp.sqrt(_sq_norm(updates, dtype))
            / (jnp.sqrt(_sq_norm(params, dtype)) + eps)
        )

        def leaf(g, p, p0, u):
            cd = compute_dtype(g.dtype, p.dtype)
            g, p, p0, u = (v.astype(cd) for v in (g, p, p0, u))
            delta_prev = (p0 - p) / (total.astype(cd) + eps)
            h = jnp.sum((g + decay.astype(cd) * p) * delta_prev)
            return delta_prev - u, h

        new = jax.tree.map(leaf, updates, params, x0, steps)
        delta = jax.tree.map(lambda _, n: n[0], updates, new)
        h = _tree_sum(jax.tree.map(lambda _, n: n[1], updates, new), dtype)
        betas = jnp.asarray([1 - 0.1**i for i in range(1, num_betas + 1)], dtype)
        clipped = jnp.clip(h, -state.m, state.m)
        m = jnp.maximum(betas * state.m, jnp.abs(h) + eps)
        v = betas**2 * state.v + h**2
        r = betas * state.r + clipped * state.s
        s = (s_init / num_betas * m + jnp.maximum(r, 0)) / (jnp.sqrt(v) + eps)
        scale_sum = jnp.sum(s)
        out = jax.tree.map(
            lambda p, p0, d: (
                p0.astype(d.dtype) - scale_sum.astype(d.dtype) * d - p.astype(d.dtype)
            ).astype(p.dtype),
            params,
            x0,
            delta,
        )
        return out, MechanicState(
            base_optimizer_state=base_state, count=increment(state.count), r=r, m=m, v=v, s=s, x0=x0
        )

    return init, update, (base_optimizer,)
