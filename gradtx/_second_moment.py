"""Second-moment preconditioners: RMSprop, centered RMSprop, Adagrad, Adadelta, AMSGrad, RAdam.

Each is a ``Preconditioner``: it measures the gradient, updates its
statistics from it, and divides a direction by them.  On its own it
divides its input by its input's statistics (optax's transform of the same
name); inside ``precondition(direction, by=...)`` it divides the direction.

Where eps goes differs between libraries.  The optax names take optax's
``eps`` with optax's placement (``eps_in_sqrt``); ``eps_root`` adds a term
under the root on top.  Squares of complex gradients are |g|^2 = g * conj(g),
so the statistics stay real.  Arithmetic runs in at least float32;
statistics are stored in the parameter's real dtype, except that float16
parameters keep them in float32 (a float16 square overflows at |g| = 256, and a
second moment at inf freezes its parameter for good).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._base import Preconditioner
from ._checks import check_float_leaves, check_range, check_state_dtype, moment_state
from ._moments import (
    as_stored,
    debiaser,
    filled,
    moment_zeros,
    moving_average,
    moving_average_sq,
    square_zeros,
    store,
)
from ._numerics import (
    abs_sq,
    add,
    cast,
    compute_dtype,
    div,
    increment,
    new_count,
    real_compute_dtype,
    sqrt,
)
from ._recipe import transform


def _is_static(x, test):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and test(x)


def _divide(u, v, eps, eps_root, *, nonnegative=True):
    """u / (sqrt(v + eps_root) + eps); 0 where that denominator is 0.

    When ``v`` is a sum or average of squares (``nonnegative``) and ``eps`` or
    ``eps_root`` is a number > 0, the denominator is never 0 and the guard is
    left out: two compares and two selects per element fewer.  A static
    ``eps_root`` or ``eps`` of 0 is not added.
    """
    cd = compute_dtype(u.dtype)
    root = sqrt(v if _is_static(eps_root, lambda e: e == 0) else add(v, eps_root))
    denom = root if _is_static(eps, lambda e: e == 0) else add(root, eps)
    positive = lambda e: e > 0  # noqa: E731
    if nonnegative and (_is_static(eps, positive) or _is_static(eps_root, positive)):
        return cast(div(cast(u, cd), cast(denom, cd)), u.dtype)
    safe = jnp.where(denom > 0, denom, 1)
    return jnp.where(denom > 0, u.astype(cd) / safe.astype(cd), 0).astype(u.dtype)


def _check_eps(owner, eps, eps_root):
    check_range(owner, "eps", eps, 0)
    check_range(owner, "eps_root", eps_root, 0)


def _eps_terms(eps, eps_root, eps_in_sqrt):
    """(outside, inside): eps joins eps_root under the root when ``eps_in_sqrt``."""
    if not eps_in_sqrt:
        return eps, eps_root
    if _is_static(eps_root, lambda e: e == 0):
        return 0.0, eps
    return 0.0, eps + eps_root


def _rms_terms(owner, decay, eps, eps_root, initial_scale, eps_in_sqrt):
    """Check the arguments RMSprop's plain and centered forms share; ``_eps_terms``."""
    check_range(owner, "decay", decay, 0, 1, high_open=True)
    _check_eps(owner, eps, eps_root)
    check_range(owner, "initial_scale", initial_scale, 0)
    return _eps_terms(eps, eps_root, eps_in_sqrt)


class RmsState(NamedTuple):
    """count: t; nu: v_t, the moving average of |g|^2."""

    count: jax.Array
    nu: object


@transform
def scale_by_rms(
    decay=0.9,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    *,
    eps_root=0.0,
    nu_dtype=None,
):
    """RMS scaling: v_t = decay * v_{t-1} + (1 - decay) * g_t^2, u_t = d_t / sqrt(v_t + eps).

    optax's ``scale_by_rms``, keyword for keyword: eps goes under the root
    (``eps_in_sqrt=True``, the default) or is added to it
    (``eps_in_sqrt=False``: d_t / (sqrt(v_t) + eps), Adam's placement).
    With ``bias_correction`` v_t is replaced by v_t / (1 - decay^t) before
    the root, Adam's v_hat_t.  d_t is the input on its own, the direction
    inside ``precondition``.

    Args:
      decay: the decay of the moving average, in [0, 1).
      eps: the stabiliser, >= 0, placed as ``eps_in_sqrt`` says.
      initial_scale: v_0, >= 0.
      eps_in_sqrt: add eps under the root (True) or to the root (False).
      bias_correction: divide v_t by 1 - decay^t.
      eps_root: a further term under the root (Adam's ``eps_root``), >= 0.
      nu_dtype: the (real) dtype v_t is stored in; None: each parameter's
        real dtype, float32 for float16 parameters.  The arithmetic runs in at least float32 either way.
        A bfloat16 v_t (``nu_dtype=jnp.bfloat16``, or bfloat16 params) is
        stored by stochastic rounding, which keeps the average unbiased
        (rounding to nearest would stop it from decaying; optax and PyTorch
        round to nearest).  With a ``nu_dtype`` the update divides by v_t
        as stored.

    Returns:
      A preconditioner with state ``RmsState(count, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_rms(0.9, eps=0.0)
      >>> tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))[0]   # 2 / sqrt(0.1 * 4)
      Array([3.1622777], dtype=float32)

    Reference: Tieleman, Hinton, "Lecture 6.5 - RMSprop", COURSERA: Neural
    Networks for Machine Learning, 2012.
    """
    owner = "scale_by_rms"
    outside, inside = _rms_terms(owner, decay, eps, eps_root, initial_scale, eps_in_sqrt)
    nu_dtype = check_state_dtype(owner, "nu_dtype", nu_dtype)

    def init(params):
        check_float_leaves(owner, params, "params")
        return RmsState(count=new_count(), nu=filled(square_zeros(params, nu_dtype), initial_scale))

    def precondition(updates, gradient, state, params=None):
        moment_state(owner, state, RmsState, gradient, "nu")
        count = increment(state.count)
        nu = jax.tree.map(lambda v, g: moving_average_sq(v, g, decay), state.nu, gradient)
        stored = store(nu, state.nu, count)
        if nu_dtype is not None:
            nu = as_stored(stored)
        nu_hat = jax.tree.map(debiaser(decay, count), nu) if bias_correction else nu
        out = jax.tree.map(lambda u, v: _divide(u, v, outside, inside), updates, nu_hat)
        return out, RmsState(count=count, nu=stored)

    return Preconditioner(init, precondition, name=owner)


class CenteredRmsState(NamedTuple):
    """count: t; mu: the moving average of g; nu: the moving average of |g|^2."""

    count: jax.Array
    mu: object
    nu: object


@transform
def scale_by_centered_rms(
    decay=0.9,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    *,
    eps_root=0.0,
):
    """Centered RMS scaling: divide by an estimate of the gradient's standard deviation.

    mu_t = decay * mu_{t-1} + (1 - decay) * g_t,
    v_t = decay * v_{t-1} + (1 - decay) * g_t^2,
    u_t = d_t / sqrt(v_t - mu_t^2 + eps).

    optax's ``scale_by_stddev`` (``rmsprop(centered=True)``), keyword for
    keyword: eps under the root unless ``eps_in_sqrt=False``.

    Args:
      decay: the decay of both moving averages, in [0, 1).
      eps: the stabiliser, >= 0, placed as ``eps_in_sqrt`` says.
      initial_scale: v_0, >= 0.
      eps_in_sqrt: add eps under the root (True) or to the root (False).
      bias_correction: divide both averages by 1 - decay^t.
      eps_root: a further term under the root, >= 0.

    Returns:
      A preconditioner with state ``CenteredRmsState(count, mu, nu)``.

    Reference: Graves, "Generating Sequences With Recurrent Neural Networks",
    2013, arXiv:1308.0850, eq. 38-45.
    """
    owner = "scale_by_centered_rms"
    outside, inside = _rms_terms(owner, decay, eps, eps_root, initial_scale, eps_in_sqrt)

    def init(params):
        check_float_leaves(owner, params, "params")
        nu = filled(square_zeros(params), initial_scale)
        return CenteredRmsState(count=new_count(), mu=moment_zeros(params), nu=nu)

    def precondition(updates, gradient, state, params=None):
        moment_state(owner, state, CenteredRmsState, gradient, "mu", "nu")
        count = increment(state.count)
        mu = jax.tree.map(lambda m, g: moving_average(m, g, decay), state.mu, gradient)
        nu = jax.tree.map(lambda v, g: moving_average_sq(v, g, decay), state.nu, gradient)
        if bias_correction:
            correct = debiaser(decay, count)
            mu_hat = jax.tree.map(correct, mu)
            nu_hat = jax.tree.map(correct, nu)
        else:
            mu_hat, nu_hat = mu, nu
        var = jax.tree.map(lambda m, v: v - abs_sq(m), mu_hat, nu_hat)
        out = jax.tree.map(
            lambda u, s: _divide(u, s, outside, inside, nonnegative=False), updates, var
        )
        return out, CenteredRmsState(
            count=count,
            mu=store(mu, state.mu, count),
            nu=store(nu, state.nu, count, salt=1 << 20),
        )

    return Preconditioner(init, precondition, name=owner)


def scale_by_stddev(
    decay=0.9,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
):
    """Centered RMS scaling under optax's name: u_t = d_t / sqrt(v_t - mu_t^2 + eps).

    mu_t = decay * mu_{t-1} + (1 - decay) * g_t,
    v_t = decay * v_{t-1} + (1 - decay) * g_t^2.

    optax's ``scale_by_stddev``, keyword for keyword: it is
    ``scale_by_centered_rms`` (see there), whose state also counts the steps
    when ``bias_correction`` is off (optax's ``ScaleByRStdDevState`` then
    holds only ``mu`` and ``nu``).

    Args:
      decay, eps, initial_scale, eps_in_sqrt, bias_correction: as in
        ``scale_by_centered_rms``.

    Returns:
      A preconditioner with state ``CenteredRmsState(count, mu, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_stddev(0.5, eps=0.0)
      >>> tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))[0]   # 2 / sqrt(2 - 1)
      Array([2.], dtype=float32)

    Reference: Graves, "Generating Sequences With Recurrent Neural Networks",
    2013, arXiv:1308.0850, eq. 38-45.
    """
    return scale_by_centered_rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction)


class RssState(NamedTuple):
    """sum_of_squares: s_t, the running sum of |g|^2."""

    sum_of_squares: object


@transform
def scale_by_rss(initial_accumulator_value=0.1, eps=1e-7, *, eps_in_sqrt: bool = True):
    """Adagrad scaling: s_t = s_{t-1} + g_t^2, u_t = d_t / sqrt(s_t + eps) (0 where s_t = 0).

    optax's ``scale_by_rss``: the defaults (s_0 = 0.1, eps = 1e-7 under the
    root) are optax's and Keras's; PyTorch's Adagrad starts from s_0 = 0 and
    adds eps = 1e-10 to the root (``eps_in_sqrt=False``: d_t / (sqrt(s_t) + eps)).

    Args:
      initial_accumulator_value: s_0, >= 0.
      eps: the stabiliser, >= 0, placed as ``eps_in_sqrt`` says.
      eps_in_sqrt: add eps under the root (True) or to the root (False).

    Returns:
      A preconditioner with state ``RssState(sum_of_squares)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_rss(0.0, eps=0.0)
      >>> tx.update(jnp.array([2.0, 0.0]), tx.init(jnp.zeros(2)))[0]
      Array([1., 0.], dtype=float32)

    Reference: Duchi, Hazan, Singer, "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization", JMLR 2011.
    """
    owner = "scale_by_rss"
    check_range(owner, "initial_accumulator_value", initial_accumulator_value, 0)
    check_range(owner, "eps", eps, 0)
    outside, inside = (0.0, eps) if eps_in_sqrt else (eps, 0.0)

    def divide(u, t):
        out = _divide(u, t, outside, inside)
        # optax's form: a zero sum of squares gives a zero step, whatever eps is.
        return jnp.where(t > 0, out, jnp.zeros_like(out)) if eps_in_sqrt else out

    def init(params):
        check_float_leaves(owner, params, "params")
        return RssState(sum_of_squares=filled(square_zeros(params), initial_accumulator_value))

    def precondition(updates, gradient, state, params=None):
        moment_state(owner, state, RssState, gradient, "sum_of_squares")
        s = jax.tree.map(
            lambda t, g: (
                t.astype(real_compute_dtype(t.dtype)) + abs_sq(g.astype(compute_dtype(g.dtype)))
            ),
            state.sum_of_squares,
            gradient,
        )
        out = jax.tree.map(divide, updates, s)
        return out, RssState(sum_of_squares=store(s, state.sum_of_squares))

    return Preconditioner(init, precondition, name=owner)


class AdadeltaState(NamedTuple):
    """e_g: the moving average of g^2; e_x: the moving average of the squared output."""

    e_g: object
    e_x: object


@transform
def scale_by_adadelta(rho=0.9, eps=1e-6):
    """Adadelta scaling (Zeiler 2012, Algorithm 1).

    E[g^2]_t = rho * E[g^2]_{t-1} + (1 - rho) * g_t^2,
    x_t = sqrt(E[x^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) * u_t,
    E[x^2]_t = rho * E[x^2]_{t-1} + (1 - rho) * x_t^2; the update is x_t.

    Args:
      rho: the decay of both averages, in [0, 1).
      eps: added under both roots, > 0 (it also sets the first step's size).

    Returns:
      A preconditioner with state ``AdadeltaState(e_g, e_x)``.

    Reference: Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012,
    arXiv:1212.5701.
    """
    owner = "scale_by_adadelta"
    check_range(owner, "rho", rho, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0, low_open=True)

    def init(params):
        check_float_leaves(owner, params, "params")
        return AdadeltaState(e_g=square_zeros(params), e_x=square_zeros(params))

    def precondition(updates, gradient, state, params=None):
        moment_state(owner, state, AdadeltaState, gradient, "e_g", "e_x")
        e_g = jax.tree.map(lambda v, g: moving_average_sq(v, g, rho), state.e_g, gradient)
        out = jax.tree.map(
            # One root of the ratio: XLA:CPU runs sqrt(a) / sqrt(b) as two extra passes
            # (4.5x slower on a 2048^2 leaf); the two forms differ by rounding only.
            lambda u, eg, ex: (
                jnp.sqrt((ex.astype(eg.dtype) + eps) / (eg + eps)).astype(compute_dtype(u.dtype))
                * u.astype(compute_dtype(u.dtype))
            ),
            updates,
            e_g,
            state.e_x,
        )
        e_x = jax.tree.map(lambda v, x: moving_average_sq(v, x, rho), state.e_x, out)
        out = jax.tree.map(lambda o, u: o.astype(u.dtype), out, updates)
        return out, AdadeltaState(e_g=store(e_g, state.e_g), e_x=store(e_x, state.e_x))

    return Preconditioner(init, precondition, name=owner)


class MaxRmsState(NamedTuple):
    """count: t; nu: v_t; nu_max: the running maximum of the (corrected) v."""

    count: jax.Array
    nu: object
    nu_max: object


@transform
def scale_by_max_rms(
    decay=0.999,
    eps=1e-8,
    *,
    eps_root=0.0,
    bias_correction: bool = True,
    max_before_correction: bool = False,
    nu_dtype=None,
):
    """AMSGrad scaling: divide by the root of the largest second moment seen so far.

    v_t = decay * v_{t-1} + (1 - decay) * g_t^2, v_hat_t = v_t / (1 - decay^t),
    vmax_t = max(vmax_{t-1}, v_hat_t), u_t = u_t / (sqrt(vmax_t + eps_root) + eps).

    optax takes the maximum of the corrected v (the default here); PyTorch
    takes it of the raw v and corrects the maximum
    (``max_before_correction=True``).

    Args:
      decay: the decay of the second moment (Adam's b2), in [0, 1).
      eps: added to the root, >= 0.
      eps_root: added under the root, >= 0.
      bias_correction: divide by 1 - decay^t.
      max_before_correction: take the maximum of the raw v_t, then correct it.
      nu_dtype: the (real) dtype v_t and its maximum are stored in; None:
        each parameter's real dtype, float32 for float16 parameters.  A bfloat16 v_t is stored by
        stochastic rounding (see ``scale_by_rms``).

    Returns:
      A preconditioner with state ``MaxRmsState(count, nu, nu_max)``.

    Reference: Reddi, Kale, Kumar, "On the Convergence of Adam and Beyond",
    ICLR 2018.
    """
    owner = "scale_by_max_rms"
    check_range(owner, "decay", decay, 0, 1, high_open=True)
    _check_eps(owner, eps, eps_root)
    nu_dtype = check_state_dtype(owner, "nu_dtype", nu_dtype)

    def init(params):
        check_float_leaves(owner, params, "params")
        zeros = square_zeros(params, nu_dtype)
        return MaxRmsState(count=new_count(), nu=zeros, nu_max=zeros)

    def precondition(updates, gradient, state, params=None):
        moment_state(owner, state, MaxRmsState, gradient, "nu", "nu_max")
        count = increment(state.count)
        correct = debiaser(decay, count) if bias_correction else (lambda v: v)
        nu = jax.tree.map(lambda v, g: moving_average_sq(v, g, decay), state.nu, gradient)
        stored = store(nu, state.nu, count)
        if nu_dtype is not None:
            nu = as_stored(stored)
        if max_before_correction:
            nu_max = jax.tree.map(lambda m, v: jnp.maximum(m.astype(v.dtype), v), state.nu_max, nu)
            denom_v = jax.tree.map(correct, nu_max)
        else:
            nu_max = jax.tree.map(
                lambda m, v: jnp.maximum(m.astype(v.dtype), correct(v)), state.nu_max, nu
            )
            denom_v = nu_max
        out = jax.tree.map(lambda u, v: _divide(u, v, eps, eps_root), updates, denom_v)
        return out, MaxRmsState(count=count, nu=stored, nu_max=store(nu_max, state.nu_max))

    return Preconditioner(init, precondition, name=owner)


@transform
def scale_by_rectified_rms(
    decay=0.999, eps=1e-8, *, threshold=5.0, eps_root=0.0, correct_before_eps: bool = False
):
    """RAdam's rectified RMS scaling: precondition once the adaptive step's variance is finite.

    v_t = decay * v_{t-1} + (1 - decay) * g_t^2,
    rho_inf = 2 / (1 - decay) - 1,   rho_t = rho_inf - 2 t decay^t / (1 - decay^t),
    r_t = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t)),
    u_t = r_t * sqrt(1 - decay^t) / (sqrt(v_t) + eps) * u_t   where rho_t > threshold,
    u_t = u_t (no preconditioning)                            otherwise,

    with t = 1 at the first step.  As ``precondition``'s ``by``, with the
    direction ``chain(scale_by_momentum(b1, ema=True), bias_correction(b1))``,
    this is RAdam.  eps is added to the root of the uncorrected v_t, as
    PyTorch's ``RAdam`` does; with ``correct_before_eps`` the preconditioned
    branch is r_t * u_t / (sqrt(v_t / (1 - decay^t) + eps_root) + eps), as in
    optax's ``radam``.

    Args:
      decay: the decay of the second moment (Adam's b2), in [0, 1).
      eps: added to the root, >= 0.
      threshold: precondition only when rho_t exceeds it, >= 4 (the
        rectification is undefined below 4); the paper and PyTorch use 5.
      eps_root: added under the root, >= 0.
      correct_before_eps: bias-correct v_t before adding eps (optax's order).

    Returns:
      A preconditioner with state ``RmsState(count, nu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> radam = gradtx.scale_by_rectified_rms(0.999)
      >>> u, state = radam.update(jnp.array([3.0, -0.5]), radam.init(jnp.zeros(2)))
      >>> u  # rho_1 = 1: the first steps are not preconditioned
      Array([ 3. , -0.5], dtype=float32)

    Reference: Liu, Jiang, He, Chen, Liu, Gao, Han, "On the Variance of the
    Adaptive Learning Rate and Beyond", ICLR 2020, arXiv:1908.03265.
    """
    owner = "scale_by_rectified_rms"
    check_range(owner, "decay", decay, 0, 1, high_open=True)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "threshold", threshold, 4)
    check_range(owner, "eps_root", eps_root, 0)
    rho_inf = 2 / (1 - decay) - 1

    def init(params):
        return RmsState(count=new_count(), nu=square_zeros(params))

    def rectify(u, v, count):
        cd = compute_dtype(u.dtype)
        real = real_compute_dtype(u.dtype)
        t = count.astype(real)
        decay_t = jnp.asarray(decay, real) ** t
        correction = 1 - decay_t
        rho_t = rho_inf - 2 * t * decay_t / correction
        on = rho_t > threshold
        ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        r_t = jnp.sqrt(jnp.where(on, ratio, 1))
        if correct_before_eps:
            denom = jnp.sqrt(v.astype(real) / correction + eps_root) + eps
            scaled = u.astype(cd) * (r_t / denom)
        else:
            denom = jnp.sqrt(v.astype(real) + eps_root) + eps
            scaled = u.astype(cd) * (r_t * jnp.sqrt(correction) / denom)
        return jnp.where(on, scaled, u.astype(cd)).astype(u.dtype)

    def precondition(updates, gradient, state, params=None):
        moment_state(owner, state, RmsState, gradient, state.nu)
        count = increment(state.count)
        nu = jax.tree.map(lambda v, g: moving_average_sq(v, g, decay), state.nu, gradient)
        out = jax.tree.map(lambda u, v: rectify(u, v, count), updates, nu)
        return out, RmsState(count=count, nu=store(nu, state.nu, count))

    return Preconditioner(init, precondition, name=owner)
