"""``torch.optim.LBFGS``, with and without its strong-Wolfe line search."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..._base import GradientTransformation
from ..._checks import NonNegative, Positive, check_state, value_fn_keywords
from ..._linesearch import _armijo_decrease, _curvature_bound, _zoom_ends
from ..._numerics import compute_dtype, cond, increment, new_count
from ..._quasi_newton import _pair_weight, _store_pair, _two_loop_backward, _two_loop_forward
from ..._recipe import recipe
from ..._update import apply_updates


# PyTorch's cubic fits two values and two slopes, _linesearch._cubic_minimiser three values and one.
def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """PyTorch's ``_cubic_interpolate``: the minimiser of the cubic through (x1, f1, slope g1)
    and (x2, f2, slope g2), clamped to ``bounds`` (default [min(x1, x2), max(x1, x2)]); the
    middle of the bounds where the cubic has no minimiser."""
    if bounds is None:
        low, high = jnp.where(x1 <= x2, x1, x2), jnp.where(x1 <= x2, x2, x1)
    else:
        low, high = bounds
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    d2 = jnp.sqrt(jnp.where(d2_square >= 0, d2_square, 0.0))
    from_x2 = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    from_x1 = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    min_pos = jnp.where(x1 <= x2, from_x2, from_x1)
    return jnp.where(
        d2_square >= 0, jnp.minimum(jnp.maximum(min_pos, low), high), (low + high) / 2.0
    )


class _Bracketing(NamedTuple):
    """The first phase's carry: the last trial (t, f, g, gtd), the one before (prev_*)."""

    ls_iter: Any
    t: Any
    f: Any
    g: Any
    gtd: Any
    t_prev: Any
    f_prev: Any
    g_prev: Any
    gtd_prev: Any
    evals: Any


class _Zoom(NamedTuple):
    """The second phase's carry: the bracket's two ends (step, value, gradient, slope each),
    which end is low, and whether the Wolfe conditions hold at the low end."""

    ls_iter: Any
    bracket: Any
    bracket_f: Any
    bracket_g: Any
    bracket_gtd: Any
    low: Any
    done: Any
    insuf_progress: Any
    evals: Any


def _strong_wolfe(obj, t, d, f, g, gtd, c1, c2, tolerance_change, max_ls):
    """PyTorch's ``_strong_wolfe`` line search along d from f, g (slope gtd < 0), first trial t.

    ``obj(t) -> (f(x + t d), grad f(x + t d))`` on the flat vector.  Returns
    (f, g, t, evaluations) at the accepted step, decision for decision as
    torch/optim/lbfgs.py: grow t by cubic interpolation inside
    [t + 0.01 (t - t_prev), 10 t] until the Armijo condition
    f(t) <= f + c1 t gtd fails, f stops decreasing, the slope turns
    non-negative (a bracket) or |slope| <= -c2 gtd (done); then shrink the
    bracket by cubic steps kept 10% of its width from its ends, until the
    strong Wolfe conditions hold, the bracket is narrower than
    tolerance_change / max|d|, or max_ls evaluations after the first are spent.
    """
    d_norm = jnp.max(jnp.abs(d))

    # The terms c1 t gtd and c2 |gtd| are the library's; the Armijo test keeps PyTorch's
    # f(t) > f + c1 t gtd, which rounds differently from the library's f(t) - f - c1 t gtd.
    def armijo_fails(t, f_new):
        """Whether f(t) fails the sufficient-decrease (Armijo) condition."""
        return f_new > f + _armijo_decrease(t, gtd, c1)

    def curvature(slope):
        """The strong Wolfe curvature condition |slope| <= c2 |gtd| (= -c2 gtd: gtd < 0 here)."""
        return jnp.abs(slope) <= _curvature_bound(gtd, c2)

    def bracket_stop(s):
        """0: keep bracketing; 1: bracket [t_prev, t] found; 2: t meets the Wolfe conditions."""
        high = armijo_fails(s.t, s.f) | ((s.ls_iter > 1) & (s.f >= s.f_prev))
        wolfe = curvature(s.gtd)
        return jnp.where(high, 1, jnp.where(wolfe, 2, jnp.where(s.gtd >= 0, 1, 0)))

    def bracket_body(s):
        min_step = s.t + 0.01 * (s.t - s.t_prev)
        max_step = s.t * 10
        t = _cubic_interpolate(
            s.t_prev, s.f_prev, s.gtd_prev, s.t, s.f, s.gtd, bounds=(min_step, max_step)
        )
        f_new, g_new = obj(t)
        return _Bracketing(
            ls_iter=s.ls_iter + 1,
            t=t,
            f=f_new,
            g=g_new,
            gtd=jnp.dot(g_new, d),
            t_prev=s.t,
            f_prev=s.f,
            g_prev=s.g,
            gtd_prev=s.gtd,
            evals=s.evals + 1,
        )

    f_new, g_new = obj(t)
    zero = jnp.zeros_like(t)
    one = jnp.ones((), jnp.int32)
    first = _Bracketing(0 * one, t, f_new, g_new, jnp.dot(g_new, d), zero, f, g, gtd, one)
    s = jax.lax.while_loop(
        lambda s: (s.ls_iter < max_ls) & (bracket_stop(s) == 0), bracket_body, first
    )
    # Out of evaluations: the bracket is [0, t]; else what the last check found.
    exhausted = s.ls_iter >= max_ls
    stop = bracket_stop(s)
    start = jnp.stack([jnp.where(exhausted, zero, s.t_prev), s.t])
    start_f = jnp.stack([jnp.where(exhausted, f, s.f_prev), s.f])
    start_g = jnp.stack([jnp.where(exhausted, g, s.g_prev), s.g])
    start_gtd = jnp.stack([jnp.where(exhausted, gtd, s.gtd_prev), s.gtd])
    done = ~exhausted & (stop == 2)
    # Done: the bracket is the single point t (both ends).
    start, start_f, start_g, start_gtd = (
        jnp.where(done, x[1], x) for x in (start, start_f, start_g, start_gtd)
    )
    low = jnp.where(start_f[0] <= start_f[1], 0, 1)

    def zoom_continues(z):
        narrow = jnp.abs(z.bracket[1] - z.bracket[0]) * d_norm < tolerance_change
        return ~z.done & (z.ls_iter < max_ls) & ~narrow

    def zoom_body(z):
        b, bf, bg, bgtd = z.bracket, z.bracket_f, z.bracket_g, z.bracket_gtd
        t = _cubic_interpolate(b[0], bf[0], bgtd[0], b[1], bf[1], bgtd[1])
        b_max, b_min = jnp.maximum(b[0], b[1]), jnp.minimum(b[0], b[1])
        eps = 0.1 * (b_max - b_min)
        near_end = jnp.minimum(b_max - t, t - b_min) < eps
        move = near_end & (z.insuf_progress | (t >= b_max) | (t <= b_min))
        moved = jnp.where(jnp.abs(t - b_max) < jnp.abs(t - b_min), b_max - eps, b_min + eps)
        t = jnp.where(move, moved, t)
        insuf_progress = near_end & ~move
        f_new, g_new = obj(t)
        gtd_new = jnp.dot(g_new, d)
        low, high = z.low, 1 - z.low
        to_high = armijo_fails(t, f_new) | (f_new >= bf[low])
        wolfe = ~to_high & curvature(gtd_new)
        high_to_low = ~to_high & ~wolfe & (gtd_new * (b[high] - b[low]) >= 0)
        # PyTorch's tests, the library's update of the ends (high_to_low leaves out a Wolfe t).
        ends = (b, bf, bg, bgtd)
        new_low, new_high = _zoom_ends(
            to_high,
            high_to_low,
            (t, f_new, g_new, gtd_new),
            tuple(x[low] for x in ends),
            tuple(x[high] for x in ends),
        )
        b, bf, bg, bgtd = (
            x.at[low].set(lo).at[high].set(hi) for x, lo, hi in zip(ends, new_low, new_high)
        )
        low = jnp.where(to_high, jnp.where(bf[0] <= bf[1], 0, 1), z.low)
        return _Zoom(
            ls_iter=z.ls_iter + 1,
            bracket=b,
            bracket_f=bf,
            bracket_g=bg,
            bracket_gtd=bgtd,
            low=low,
            done=wolfe,
            insuf_progress=insuf_progress,
            evals=z.evals + 1,
        )

    z = jax.lax.while_loop(
        zoom_continues,
        zoom_body,
        _Zoom(
            s.ls_iter, start, start_f, start_g, start_gtd, low, done, jnp.asarray(False), s.evals
        ),
    )
    return z.bracket_f[z.low], z.bracket_g[z.low], z.bracket[z.low], z.evals


class _LbfgsState(NamedTuple):
    """n_iter: iterations so far; d: the last direction; t: the last step size; dirs, stps:
    the last history_size gradient and step differences y, s (oldest first, zeros where
    unused); ro: 1 / <y, s> (0 where unused); H_diag: <y, s> / <y, y> of the newest pair;
    prev_grad: the last gradient (all flat over the leaves); func_evals: the loss evaluations
    PyTorch would have made, one per update and those of the line search."""

    n_iter: jax.Array
    d: jax.Array
    t: jax.Array
    dirs: jax.Array
    stps: jax.Array
    ro: jax.Array
    H_diag: jax.Array  # noqa: N815 (PyTorch's name)
    prev_grad: jax.Array
    func_evals: jax.Array


def _torch_lbfgs(lr, tolerance_grad, tolerance_change, history_size, max_ls=None):
    """One iteration of PyTorch's L-BFGS: the step t * d, with t from PyTorch's strong-Wolfe
    line search of at most 1 + max_ls evaluations unless max_ls is None (see ``lbfgs``)."""
    owner = "torch.lbfgs"

    def init(params):
        flat, _ = ravel_pytree(params)
        n, dtype = flat.size, compute_dtype(flat.dtype)
        zeros = jnp.zeros((history_size, n), dtype)
        return _LbfgsState(
            n_iter=new_count(),
            d=jnp.zeros(n, dtype),
            t=jnp.zeros((), dtype),
            dirs=zeros,
            stps=zeros,
            ro=jnp.zeros(history_size, dtype),
            H_diag=jnp.ones((), dtype),
            prev_grad=jnp.zeros(n, dtype),
            func_evals=new_count(),
        )

    def line_search_inputs(params, value, value_fn, extra):
        """Check the line search's keywords; (t, d) -> (f, grad f) at params + t d, flat."""
        if params is None or value is None or value_fn is None:
            raise ValueError(
                f"{owner}: line_search_fn='strong_wolfe' needs params, value= (the loss "
                f"at params) and value_fn= (params -> loss): call "
                f"update(grads, state, params, value=loss, value_fn=loss_fn)"
            )
        fn_kwargs = value_fn_keywords(owner, value_fn, extra)
        value_and_grad = jax.value_and_grad(value_fn)
        _, unravel = ravel_pytree(params)

        def on_line(t, d, real):
            step = jax.tree.map(lambda u, p: u.astype(p.dtype), unravel(t * d), params)
            f, g = value_and_grad(apply_updates(params, step), **fn_kwargs)
            return jnp.asarray(f).astype(real), ravel_pytree(g)[0].astype(real)

        return on_line

    def update(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra):
        check_state(owner, state, _LbfgsState)
        if max_ls is not None:
            # grad= (optax's convention) is the gradient given as updates.
            on_line = line_search_inputs(params, value, value_fn, extra)
        flat, unravel = ravel_pytree(updates)
        g = flat.astype(state.d.dtype)
        first = state.n_iter == 0
        # The curvature pair of the last step joins the history if <y, s> > 1e-10.
        y, s = g - state.prev_grad, state.d * state.t
        ys = jnp.dot(y, s)
        keep = (~first) & (ys > 1e-10)
        # PyTorch's history is a list, oldest first: the oldest pair drops out, the new one joins.
        history = (state.stps, state.dirs, state.ro)
        stps, dirs, ro = (jnp.roll(x, -1, axis=0) for x in history)
        pushed = _store_pair(stps, dirs, ro, s, y, _pair_weight(ys, keep), -1)
        stps, dirs, ro = (jnp.where(keep, new, old) for new, old in zip(pushed, history))
        h_diag = jnp.where(keep, ys / jnp.dot(y, y), state.H_diag)
        h_diag = jnp.where(first, 1.0, h_diag)

        # The two-loop recursion, newest pair first; unused pairs have ro = 0.  Loops over the
        # rows, not scale_by_lbfgs's scan: run eagerly, XLA rounds that form differently here.
        def newest_first(k, carry):
            q, al = carry
            i = history_size - 1 - k
            q, a = _two_loop_backward(q, stps[i], dirs[i], ro[i], jnp.dot)
            return q, al.at[i].set(a)

        def oldest_first(i, r):
            return _two_loop_forward(r, stps[i], dirs[i], ro[i], al[i], jnp.dot)[0]

        q, al = jax.lax.fori_loop(0, history_size, newest_first, (-g, jnp.zeros_like(ro)))
        r = jax.lax.fori_loop(0, history_size, oldest_first, q * h_diag)
        d = jnp.where(first, -g, r)
        t = jnp.where(first, jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))) * lr, lr)
        gtd = jnp.dot(g, d)
        moves = gtd <= -tolerance_change
        # A gradient below tolerance_grad ends PyTorch's step before anything changes.
        done = jnp.max(jnp.abs(g)) <= tolerance_grad
        evals = jnp.ones((), jnp.int32)  # the loss at params, PyTorch's closure() call
        if max_ls is not None:
            real = g.dtype
            f = jnp.asarray(value).astype(real)

            def search(t):
                _, _, t, n = _strong_wolfe(
                    lambda t: on_line(t, d, real),
                    t,
                    d,
                    f,
                    g,
                    gtd,
                    c1=1e-4,
                    c2=0.9,
                    tolerance_change=tolerance_change,
                    max_ls=max_ls,
                )
                return t.astype(real), n

            t, n = cond(done | ~moves, lambda t: (t, 0 * evals), search, t)
            evals = evals + n
        new = _LbfgsState(
            n_iter=increment(state.n_iter),
            d=d,
            t=t,
            dirs=dirs,
            stps=stps,
            ro=ro,
            H_diag=h_diag,
            prev_grad=g,
            func_evals=state.func_evals,
        )
        state = jax.tree.map(lambda old, nw: jnp.where(done, old, nw), state, new)
        state = state._replace(func_evals=state.func_evals + evals)
        step = jnp.where(done | ~moves, 0.0, t * d)
        out = unravel(step.astype(flat.dtype))
        return jax.tree.map(lambda o, u: o.astype(u.dtype), out, updates), state

    return GradientTransformation(
        init,
        update,
        name="torch_lbfgs",
        hyperparams={
            "lr": lr,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "history_size": history_size,
            "max_ls": max_ls,
        },
    )


@recipe(prefix="torch.")
def lbfgs(
    lr: Positive = 1,
    max_iter=20,
    max_eval=None,
    tolerance_grad: NonNegative = 1e-7,
    tolerance_change: NonNegative = 1e-9,
    history_size=100,
    line_search_fn=None,
):
    """``torch.optim.LBFGS``, one iteration per update: x_{k+1} = x_k + t_k d_k.

    d_k = -H_k g_k from the two-loop recursion over the last ``history_size``
    pairs (s, y) with <y, s> > 1e-10, H_0 = <y, s> / <y, y> of the newest
    pair.  The first trial step is t_0 = min(1, 1 / ||g_0||_1) * lr, then
    t_k = lr.  No step is taken where <g_k, d_k> > -tolerance_change, and
    nothing changes where max |g_k| <= tolerance_grad, as in PyTorch.

    With ``line_search_fn=None`` the step is the trial step.  With
    ``"strong_wolfe"`` it is PyTorch's strong-Wolfe line search from the
    trial step (c1 = 1e-4, c2 = 0.9, cubic interpolation; see
    torch/optim/lbfgs.py), which evaluates the loss along the line: the
    update then needs ``value=`` (the loss at params) and ``value_fn=``
    (params -> loss), ``update(grads, state, params, value=loss,
    value_fn=loss_fn)``; other keywords ``value_fn`` takes are passed on to
    it, and ``grad=`` (optax's convention) is accepted and not used.  One
    update is then one ``step(closure)`` of ``torch.optim.LBFGS`` with
    ``max_iter=1`` and the same ``max_eval``: the search makes at most
    ``max_eval - 1`` evaluations (PyTorch counts the closure call at the
    start of the step as the first).  ``max_eval`` defaults to
    ``max_iter * 5 // 4`` as in PyTorch, so ``max_iter=1`` leaves the search
    one trial, kept only if it lowers the loss.

    PyTorch's ``step(closure)`` with ``max_iter`` k runs up to k iterations;
    here each ``update`` is one, with the gradient the caller computed, so
    without a line search k PyTorch iterations are k updates.  With a line
    search PyTorch's k iterations share one budget of ``max_eval``
    evaluations, which an update does not model.  The parameters are
    flattened into one vector for the history, which holds
    2 * history_size copies of them; ``state.func_evals`` counts the loss
    evaluations PyTorch would have made (its ``state["func_evals"]``).

    Args:
      lr: the step size, > 0 (a number, as in PyTorch).
      max_iter: PyTorch's iterations per step (the caller's loop here); sets
        the default of ``max_eval``.
      max_eval: the loss evaluations per update with a line search, the
        first included, an int >= 1 (default ``max_iter * 5 // 4``).
      tolerance_grad: no change once max |g| is at most this.
      tolerance_change: no step unless <g, d> < -tolerance_change; the line
        search stops once its bracket is narrower than this over max |d|.
      history_size: the number of pairs kept, >= 1.
      line_search_fn: None or "strong_wolfe".

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.presets.torch.lbfgs()
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = opt.update({"w": jnp.array([0.2, -0.05])}, opt.init(params), params)
      >>> updates["w"]          # the first step is -min(1, 1 / ||g||_1) * lr * g = -g
      Array([-0.2 ,  0.05], dtype=float32)
      >>> import jax
      >>> f = lambda p: jnp.sum((p["w"] - 3.0) ** 2)
      >>> opt = gradtx.presets.torch.lbfgs(line_search_fn="strong_wolfe")
      >>> params = {"w": jnp.array([1.0, 2.0])}
      >>> value, grads = jax.value_and_grad(f)(params)
      >>> updates, state = opt.update(grads, opt.init(params), params, value=value, value_fn=f)
      >>> gradtx.apply_updates(params, updates)["w"]  # t_0 = 1 / ||g||_1 = 1/6 is Wolfe: kept
      Array([1.6666667, 2.3333333], dtype=float32)

    Reference: Nocedal, "Updating Quasi-Newton Matrices with Limited
    Storage", Mathematics of Computation 1980; Liu, Nocedal, "On the Limited
    Memory BFGS Method for Large Scale Optimization", 1989; Nocedal, Wright,
    "Numerical Optimization", 2nd ed., Springer 2006, section 3.5.
    """
    owner = "torch.lbfgs"
    if not isinstance(history_size, int) or history_size < 1:
        raise ValueError(f"{owner}: history_size must be an integer >= 1, got {history_size!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"{owner}: max_iter must be an integer >= 1, got {max_iter!r}")
    if max_eval is not None and (
        isinstance(max_eval, bool) or not isinstance(max_eval, int) or max_eval < 1
    ):
        raise ValueError(f"{owner}: max_eval must be None or an integer >= 1, got {max_eval!r}")
    if line_search_fn not in (None, "strong_wolfe"):
        raise ValueError(
            f"{owner}: line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}"
        )
    evals = max_iter * 5 // 4 if max_eval is None else max_eval
    max_ls = None if line_search_fn is None else evals - 1
    return _torch_lbfgs(lr, tolerance_grad, tolerance_change, history_size, max_ls)
