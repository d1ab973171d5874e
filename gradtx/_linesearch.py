"""Line searches: choose the step size along an update by evaluating the loss on the line.

``scale_by_zoom_linesearch`` finds a step size eta with the strong Wolfe
conditions (Nocedal & Wright, Algorithms 3.5 and 3.6): it first grows eta
until an interval bracketing an acceptable step is found, then shrinks that
interval by cubic, quadratic or bisection steps.  Its update needs the loss
at the current parameters (``value=``), its gradient (``grad=``) and the
loss function (``value_fn=``); keywords that ``value_fn`` takes are passed
on to it.  ``value_and_grad_from_state`` reuses the value and gradient the
search computed at the accepted step, so a solver evaluates the loss once
per iteration when the first guess is accepted.
"""

from __future__ import annotations

import math
import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._backtracking import _line_search_keywords, _real_dtype
from ._base import GradientTransformation
from ._checks import check_range
from ._numerics import compute_dtype, cond, is_traced
from ._tree import real_vdot as _vdot
from ._tree import zeros_like_tree


def _axpy(params, step, updates):
    return jax.tree.map(lambda p, u: p + step.astype(compute_dtype(p.dtype)) * u, params, updates)


def _select(condition, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), on_true, on_false)


def _cubic_minimiser(a, fa, fpa, b, fb, c, fc):
    """The minimiser of the cubic through (a, fa) with slope fpa at a, (b, fb) and (c, fc)."""
    # f(x) = cubic (x - a)^3 + square (x - a)^2 + fpa (x - a) + fa; solve the 2x2 system
    # for (cubic, square) as one matrix product, which rounds as optax's does.
    db, dc = b - a, c - a
    denominator = (db * dc) ** 2 * (db - dc)
    system = jnp.array([[dc**2, -(db**2)], [-(dc**3), db**3]])
    residual = jnp.array([fb - fa - fpa * db, fc - fa - fpa * dc])
    cubic, square = jnp.dot(system, residual, precision=jax.lax.Precision.HIGHEST) / denominator
    return a + (-square + jnp.sqrt(square * square - 3.0 * cubic * fpa)) / (3.0 * cubic)


def _quadratic_minimiser(a, fa, fpa, b, fb):
    """The minimiser of the parabola through (a, fa) with slope fpa at a, and (b, fb)."""
    db = b - a
    curvature = (fb - fa - fpa * db) / db**2
    return a - fpa / (2.0 * curvature)


def _armijo_decrease(stepsize, slope0, slope_rtol):
    """The decrease that sufficient decrease (Armijo) asks of f(eta) below f(0): c1 eta f'(0)."""
    return slope_rtol * stepsize * slope0


def _curvature_bound(slope0, curv_rtol):
    """The strong Wolfe curvature condition's bound on |f'(eta)|: c2 |f'(0)|."""
    return curv_rtol * jnp.abs(slope0)


def _zoom_ends(to_high, high_to_low, new, low, high):
    """The bracket's ends (low, high) after a zoom trial ``new`` (Nocedal & Wright, Algorithm 3.6).

    ``new`` replaces the high end where ``to_high`` (it lacks sufficient decrease, or is no lower
    than the low end); else it becomes the low end, and the old low end becomes the high end
    where ``high_to_low`` (the slope at ``new`` points towards the high end).  Each end is a
    tuple of arrays (step, value, slope, ...).
    """
    new_high = _select(high_to_low, low, _select(to_high, new, high))
    new_low = _select(~to_high, new, low)
    return new_low, new_high


class ZoomLinesearchInfo(NamedTuple):
    """num_linesearch_steps: loss evaluations made; the final decrease and curvature errors."""

    num_linesearch_steps: jax.Array
    decrease_error: jax.Array
    curvature_error: jax.Array


class ScaleByZoomLinesearchState(NamedTuple):
    """learning_rate: the accepted step size; value, grad: the loss and its gradient there;
    info: diagnostics of the search (optax's fields)."""

    learning_rate: jax.Array
    value: jax.Array
    grad: Any
    info: ZoomLinesearchInfo


class _Search(NamedTuple):
    """The search's carry: the last trial, the bracket [low, high], the best safe step."""

    count: Any
    stepsize: Any
    value: Any
    grad: Any
    slope: Any
    decrease_error: Any
    curvature_error: Any
    interval_found: Any
    done: Any
    failed: Any
    low: Any
    value_low: Any
    slope_low: Any
    high: Any
    value_high: Any
    slope_high: Any
    cubic_ref: Any
    value_cubic_ref: Any
    safe_stepsize: Any
    safe_value: Any
    safe_grad: Any


def scale_by_zoom_linesearch(
    max_linesearch_steps,
    max_learning_rate=None,
    tol=0.0,
    increase_factor=2.0,
    slope_rtol=1e-4,
    curv_rtol=0.9,
    approx_dec_rtol=1e-6,
    stepsize_precision=1e-5,
    initial_guess_strategy: str = "keep",
    verbose: bool = False,
) -> GradientTransformation:
    """Scale the update u by a step size eta meeting the strong Wolfe conditions.

    With f(eta) = value_fn(p + eta u) and f'(eta) its slope along u:

    * sufficient decrease: f(eta) <= f(0) + slope_rtol * eta * f'(0), or, with
      ``approx_dec_rtol`` set, Hager and Zhang's approximate form
      f'(eta) <= (2 slope_rtol - 1) f'(0) while f(eta) <= f(0) + approx_dec_rtol |f(0)|;
    * curvature: |f'(eta)| <= curv_rtol * |f'(0)|; ``curv_rtol=jnp.inf``
      drops this condition (its error is then 0, or inf where f'(eta) is
      NaN), which leaves a backtracking search for sufficient decrease.

    Each condition's violation is an error (>= 0; inf for NaN); eta is
    accepted when both are at most ``tol``.  Trials start at 1 (``"one"``) or
    at the last accepted eta (``"keep"``), grow by ``increase_factor``
    (capped at ``max_learning_rate``) until a bracket is found, then zoom in:
    the cubic minimiser through the bracket and the last dropped point if it
    lies inside the middle 60%, else the quadratic one inside the middle 80%,
    else the midpoint.  After ``max_linesearch_steps`` evaluations (or a
    bracket narrower than ``stepsize_precision`` once some eta decreased f
    enough), the search returns the best eta with sufficient decrease seen,
    or the last one if none had it.  Follows optax's
    ``scale_by_zoom_linesearch`` decision for decision.

    Args:
      max_linesearch_steps: the most loss evaluations per update, an integer
        >= 1 (a Python, NumPy or concrete JAX integer).
      max_learning_rate: the largest eta, or None.
      tol: the accepted error.
      increase_factor: the growth of eta while bracketing, > 1.
      slope_rtol: the sufficient-decrease constant c1, in [0, 1].
      curv_rtol: the curvature constant c2, >= 0 (the strong Wolfe
        conditions take c1 < c2 < 1), or ``jnp.inf`` for no curvature
        condition.
      approx_dec_rtol: the tolerance of the approximate decrease, or None.
      stepsize_precision: the bracket width below which a safe step is taken.
      initial_guess_strategy: "one" or "keep".
      verbose: accepted for optax's signature; gradtx prints nothing.

    Returns:
      A transform whose update needs ``value=``, ``grad=`` and
      ``value_fn=``, with state ``ScaleByZoomLinesearchState(learning_rate,
      value, grad, info)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> f = lambda x: jnp.sum((x - 3.0) ** 2)
      >>> tx = gradtx.scale_by_zoom_linesearch(10)
      >>> x = jnp.zeros(2)
      >>> tx.update(-2 * (x - 3.0), tx.init(x), x, value=f(x), grad=2 * (x - 3.0), value_fn=f)[0]
      Array([3., 3.], dtype=float32)

    Reference: Nocedal, Wright, "Numerical Optimization", 2nd ed., Springer
    2006, Algorithms 3.5-3.6; Hager, Zhang, "A new conjugate gradient method
    with guaranteed descent and an efficient line search", SIAM J. Optim. 2005.
    """
    owner = "scale_by_zoom_linesearch"
    try:
        steps = (
            None if isinstance(max_linesearch_steps, bool) else operator.index(max_linesearch_steps)
        )
    except TypeError:
        steps = None
    if steps is None or steps < 1:
        raise ValueError(
            f"{owner}: max_linesearch_steps must be an int >= 1, got {max_linesearch_steps!r}"
        )
    max_linesearch_steps = steps
    if max_learning_rate is not None:
        check_range(owner, "max_learning_rate", max_learning_rate, 0, low_open=True)
    check_range(owner, "tol", tol, 0)
    check_range(owner, "increase_factor", increase_factor, 1, low_open=True)
    check_range(owner, "slope_rtol", slope_rtol, 0, 1)
    no_curvature = _is_inf(curv_rtol)
    if not no_curvature:
        check_range(owner, "curv_rtol", curv_rtol, 0)
    if initial_guess_strategy not in ("one", "keep"):
        raise ValueError(
            f"{owner}: initial_guess_strategy must be 'one' or 'keep', "
            f"got {initial_guess_strategy!r}"
        )

    def decrease_error(eta, value, slope, value0, slope0):
        err = value - value0 - _armijo_decrease(eta, slope0, slope_rtol)
        if approx_dec_rtol is not None:
            approx = jnp.maximum(
                slope - (2 * slope_rtol - 1.0) * slope0,
                value - value0 - approx_dec_rtol * jnp.abs(value0),
            )
            err = jnp.minimum(approx, err)
        err = jnp.maximum(err, 0.0)
        return jnp.where(jnp.isnan(err), jnp.inf, err)

    def curvature_error(slope, slope0):
        if no_curvature:  # inf * |f'(0)| would be NaN where f'(0) = 0
            return jnp.where(jnp.isnan(slope), jnp.inf, jnp.zeros_like(slope))
        err = jnp.maximum(jnp.abs(slope) - _curvature_bound(slope0, curv_rtol), 0.0)
        return jnp.where(jnp.isnan(err), jnp.inf, err)

    def init(params):
        real = _real_dtype(params)
        return ScaleByZoomLinesearchState(
            learning_rate=jnp.ones((), real),
            value=jnp.full((), jnp.inf, real),
            grad=zeros_like_tree(params),
            info=ZoomLinesearchInfo(
                num_linesearch_steps=jnp.zeros((), jnp.int32),
                decrease_error=jnp.full((), jnp.inf, real),
                curvature_error=jnp.full((), jnp.inf, real),
            ),
        )

    def update(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra):
        value_fn, fn_kwargs = _line_search_keywords(
            owner, state, ScaleByZoomLinesearchState, updates, params, value, grad, value_fn, extra
        )
        value_and_grad = jax.value_and_grad(value_fn)
        real = state.value.dtype

        def on_line(eta):
            value_eta, grad_eta = value_and_grad(_axpy(params, eta, updates), **fn_kwargs)
            slope_eta = _vdot(grad_eta, updates)
            return value_eta.astype(real), grad_eta, slope_eta.astype(real)

        value0 = jnp.asarray(value).astype(real)
        slope0 = _vdot(updates, grad).astype(real)
        guess = jnp.ones((), real) if initial_guess_strategy == "one" else state.learning_rate
        zero, inf = jnp.zeros((), real), jnp.full((), jnp.inf, real)
        false = jnp.asarray(False)
        start = _Search(
            count=jnp.zeros((), jnp.int32),
            stepsize=zero,
            value=value0,
            grad=grad,
            slope=slope0,
            decrease_error=inf,
            curvature_error=inf,
            interval_found=false,
            done=false,
            failed=false,
            low=zero,
            value_low=value0,
            slope_low=slope0,
            high=zero,
            value_high=value0,
            slope_high=slope0,
            cubic_ref=zero,
            value_cubic_ref=value0,
            safe_stepsize=zero,
            safe_value=value0,
            safe_grad=grad,
        )

        def measure(eta):
            """The line at eta: its value, gradient and slope, and the two errors there."""
            value_eta, grad_eta, slope_eta = on_line(eta)
            dec = decrease_error(eta, value_eta, slope_eta, value0, slope0)
            curv = curvature_error(slope_eta, slope0)
            return value_eta, grad_eta, slope_eta, dec, curv

        def advance(s, eta, line, low, high, ref, safe, **flags):
            """s moved to eta (``line``: ``measure(eta)``), with the bracket's ends
            ``low``, ``high``, the cubic's reference point ``ref`` and the safe point."""
            value_eta, grad_eta, slope_eta, dec, curv = line
            return s._replace(
                count=s.count + 1,
                stepsize=eta,
                value=value_eta,
                grad=grad_eta,
                slope=slope_eta,
                decrease_error=dec,
                curvature_error=curv,
                low=low[0],
                value_low=low[1],
                slope_low=low[2],
                high=high[0],
                value_high=high[1],
                slope_high=high[2],
                cubic_ref=ref[0],
                value_cubic_ref=ref[1],
                safe_stepsize=safe[0],
                safe_value=safe[1],
                safe_grad=safe[2],
                **flags,
            )

        def bracket(s):
            eta = jnp.where(s.count == 0, guess, increase_factor * s.stepsize)
            if max_learning_rate is not None:
                capped = eta >= max_learning_rate
                eta = jnp.minimum(eta, max_learning_rate)
            else:
                capped = false
            line = measure(eta)
            value_eta, grad_eta, slope_eta, dec, curv = line
            error = jnp.maximum(dec, curv)
            safe = _select(
                dec <= tol, (eta, value_eta, grad_eta), (s.safe_stepsize, s.safe_value, s.safe_grad)
            )
            high_is_new = (dec > 0.0) | ((value_eta >= s.value) & (s.count > 0))
            low_is_new = (slope_eta >= 0.0) & ~high_is_new
            previous, new = (s.stepsize, s.value, s.slope), (eta, value_eta, slope_eta)
            low, high = _select(low_is_new, (new, previous), (previous, new))
            found = high_is_new | low_is_new | (error <= tol)
            done = (error <= tol) | (capped & ~found)
            failed = (s.count + 1 >= max_linesearch_steps) & ~done
            return advance(
                s, eta, line, low, high, low, safe, interval_found=found, done=done, failed=failed
            )

        def zoom(s):
            width = jnp.abs(s.high - s.low)
            left, right = jnp.minimum(s.high, s.low), jnp.maximum(s.high, s.low)
            cubic = _cubic_minimiser(
                s.low,
                s.value_low,
                s.slope_low,
                s.high,
                s.value_high,
                s.cubic_ref,
                s.value_cubic_ref,
            )
            use_cubic = (cubic > left + 0.2 * width) & (cubic < right - 0.2 * width)
            quadratic = _quadratic_minimiser(s.low, s.value_low, s.slope_low, s.high, s.value_high)
            use_quadratic = (
                ~use_cubic & (quadratic > left + 0.1 * width) & (quadratic < right - 0.1 * width)
            )
            eta = jnp.where(use_cubic, cubic, s.cubic_ref)
            eta = jnp.where(use_quadratic, quadratic, eta)
            eta = jnp.where(~use_cubic & ~use_quadratic, (s.low + s.high) / 2.0, eta)
            line = measure(eta)
            value_eta, grad_eta, slope_eta, dec, curv = line
            error = jnp.maximum(dec, curv)
            safe = _select(
                (dec <= tol) & (value_eta < s.safe_value),
                (eta, value_eta, grad_eta),
                (s.safe_stepsize, s.safe_value, s.safe_grad),
            )
            done = error <= tol
            high_to_eta = (dec > 0.0) | (value_eta >= s.value_low)
            high_to_low = (slope_eta * (s.high - s.low) >= 0.0) & ~high_to_eta
            new, low, high = (
                (eta, value_eta, slope_eta),
                (s.low, s.value_low, s.slope_low),
                (s.high, s.value_high, s.slope_high),
            )
            new_low, new_high = _zoom_ends(high_to_eta, high_to_low, new, low, high)
            ref = _select(high_to_eta | high_to_low, (s.high, s.value_high), (s.low, s.value_low))
            stuck = (s.count + 1 >= max_linesearch_steps) | (
                (width <= stepsize_precision) & (safe[0] > 0.0)
            )
            return advance(
                s, eta, line, new_low, new_high, ref, safe, done=done, failed=stuck & ~done
            )

        def fall_back(s):
            """On failure: the best sufficient-decrease step seen, else (or outside the domain) the last."""
            take_safe = (s.safe_stepsize > 0.0) | jnp.isinf(s.decrease_error)
            eta, val, g = _select(
                take_safe,
                (s.safe_stepsize, s.safe_value, s.safe_grad),
                (s.stepsize, s.value, s.grad),
            )
            return s._replace(stepsize=eta, value=val, grad=g)

        def step(s):
            s = jax.lax.cond(s.interval_found, zoom, bracket, s)
            return jax.lax.cond(s.failed, fall_back, lambda x: x, s)

        def cast_like(new, old):
            return jax.tree.map(lambda n, o: jnp.asarray(n).astype(jnp.result_type(o)), new, old)

        final = jax.lax.while_loop(
            lambda s: ~(s.done | s.failed), lambda s: cast_like(step(s), s), cast_like(start, start)
        )
        eta = final.stepsize
        out = jax.tree.map(
            lambda u: (eta.astype(compute_dtype(u.dtype)) * u).astype(u.dtype), updates
        )
        info = ZoomLinesearchInfo(
            num_linesearch_steps=final.count,
            decrease_error=final.decrease_error,
            curvature_error=final.curvature_error,
        )
        grad_out = jax.tree.map(lambda n, o: n.astype(o.dtype), final.grad, state.grad)
        return out, ScaleByZoomLinesearchState(
            learning_rate=eta, value=final.value, grad=grad_out, info=info
        )

    return GradientTransformation(
        init,
        update,
        name=owner,
        hyperparams={
            "max_linesearch_steps": max_linesearch_steps,
            "max_learning_rate": max_learning_rate,
            "tol": tol,
            "increase_factor": increase_factor,
            "slope_rtol": slope_rtol,
            "curv_rtol": curv_rtol,
            "approx_dec_rtol": approx_dec_rtol,
            "stepsize_precision": stepsize_precision,
            "initial_guess_strategy": initial_guess_strategy,
        },
    )


def _is_inf(value) -> bool:
    """Whether a concrete hyperparameter is +inf (traced values and schedules are not)."""
    if is_traced(value) or callable(value):
        return False
    try:
        return bool(np.shape(value) == () and math.isinf(float(value)) and float(value) > 0)
    except (TypeError, ValueError):
        return False


def _find_field(tree, name):
    """The first field called ``name`` in a state made of named tuples, tuples, lists, dicts."""
    if hasattr(tree, "_fields"):
        if name in tree._fields:
            return getattr(tree, name)
        children = tuple(tree)
    elif isinstance(tree, (tuple, list)):
        children = tree
    elif isinstance(tree, dict):
        children = tuple(tree.values())
    else:
        return None
    for child in children:
        found = _find_field(child, name)
        if found is not None:
            return found
    return None


def value_and_grad_from_state(value_fn):
    """``jax.value_and_grad(value_fn)`` that reuses the value and gradient a line search stored.

    The returned function takes ``(params, *args, state=opt_state, **kwargs)``.
    When the optimizer's state holds a finite ``value`` (with its ``grad``),
    as ``scale_by_zoom_linesearch`` leaves after accepting a step, those are
    returned without evaluating ``value_fn``; otherwise (the first step, where
    the value is inf) it evaluates.  optax's ``value_and_grad_from_state``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> f = lambda x: jnp.sum(x ** 2)
      >>> opt = gradtx.lbfgs()
      >>> value_and_grad = gradtx.value_and_grad_from_state(f)
      >>> x = jnp.array([1.0, 2.0])
      >>> state = opt.init(x)
      >>> value, grad = value_and_grad(x, state=state)
      >>> updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
      >>> gradtx.apply_updates(x, updates)   # a first step of length 1 along -g / ||g||
      Array([0.5527864, 1.1055728], dtype=float32)
    """

    def value_and_grad(params, *args, state, **kwargs):
        value, grad = _find_field(state, "value"), _find_field(state, "grad")
        if value is None or grad is None:
            raise ValueError(
                "value_and_grad_from_state: the optimizer's state holds no value "
                "and grad; use an optimizer with a line search that stores them "
                "(lbfgs, scale_by_zoom_linesearch)"
            )
        return cond(
            jnp.isfinite(value),
            lambda p, a, k: (value, grad),
            lambda p, a, k: jax.value_and_grad(value_fn)(p, *a, **k),
            params,
            args,
            kwargs,
        )

    return value_and_grad
