"""Backtracking line search: shrink the step until the loss decreases enough (Armijo).

``scale_by_backtracking_linesearch`` tries eta = min(increase_factor *
eta_{t-1}, max_learning_rate) and multiplies it by ``decrease_factor`` until

    f(w + eta u) <= (1 + rtol) f(w) + eta * slope_rtol * <u, grad f(w)> + atol,

evaluating the loss ``value_fn`` at each trial.  Its update needs the loss
at the current parameters (``value=``), its gradient (``grad=``) and
``value_fn=``; keywords that ``value_fn`` takes are passed on to it.  With
``store_grad`` the state keeps the value and gradient at the accepted point,
which ``value_and_grad_from_state`` reuses at the next step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._checks import check_float_leaves, check_range, check_state, value_fn_keywords
from ._numerics import compute_dtype, cond
from ._recipe import transform
from ._tree import zeros_like_tree


def _real_dtype(params):
    """The real dtype of the first leaf of ``params``; without leaves, JAX's default float dtype."""
    leaves = jax.tree.leaves(params)
    return jnp.finfo(leaves[0].dtype if leaves else jnp.result_type(float)).dtype


def _line_search_keywords(
    owner, state, state_type, updates, params, value, grad, value_fn, extra
) -> tuple[Callable[..., Any], dict]:
    """Check a line search's update call (its state, params and the keywords value=,
    grad=, value_fn=); return ``value_fn`` and the keywords of ``extra`` it takes."""
    check_state(owner, state, state_type)
    if params is None or value is None or grad is None or value_fn is None:
        raise ValueError(
            f"{owner}: update needs params and the keywords value= (the loss "
            f"at params), grad= (its gradient) and value_fn= (the loss "
            f"function)"
        )
    check_float_leaves(owner, updates, "updates")
    return value_fn, value_fn_keywords(owner, value_fn, extra)


class BacktrackingLinesearchInfo(NamedTuple):
    """num_linesearch_steps: loss evaluations made; decrease_error: how far the accepted
    step is from sufficient decrease (0 when it was found).  (optax's fields.)"""

    num_linesearch_steps: jax.Array
    decrease_error: jax.Array


class ScaleByBacktrackingLinesearchState(NamedTuple):
    """learning_rate: the accepted step size; value: the loss there; grad: its gradient
    with ``store_grad`` (else None); info: diagnostics.  (optax's fields.)"""

    learning_rate: jax.Array
    value: jax.Array
    grad: Any
    info: BacktrackingLinesearchInfo


def _slope(updates, grad):
    """The derivative of eta -> f(w + eta u) at 0: Re sum(u * g), g being JAX's gradient
    (the conjugate of the Wirtinger one for complex w), at HIGHEST matmul precision."""
    parts = [
        jnp.real(jnp.tensordot(u, g, jnp.ndim(u), precision=jax.lax.Precision.HIGHEST))
        for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(grad))
    ]
    return sum(parts[1:], parts[0]) if parts else jnp.zeros(())


@transform(exclude=("verbose",))
def scale_by_backtracking_linesearch(
    max_backtracking_steps,
    slope_rtol=1e-4,
    decrease_factor=0.8,
    increase_factor=1.5,
    max_learning_rate=1.0,
    atol=0.0,
    rtol=0.0,
    store_grad: bool = False,
    verbose: bool = False,
):
    """Armijo backtracking: u_t = eta_t * u, eta_t = max_lr-capped guess * decrease_factor^k.

    The guess is min(increase_factor * eta_{t-1}, max_learning_rate); k is
    the first count of shrinks (at most ``max_backtracking_steps``) for which
    f(w + eta u) <= (1 + rtol) f(w) + eta * slope_rtol * <u, grad f(w)> + atol.
    If no trial meets it, the last one is used; if every trial's loss was
    NaN or infinite, the step is 0.  ``u`` must be a descent direction
    (<u, grad f> < 0, as for ``sgd`` without momentum) for a step to exist.
    optax's ``scale_by_backtracking_linesearch``, keyword for keyword.

    Args:
      max_backtracking_steps: the most shrinks per step (an int >= 0).
      slope_rtol: the fraction of the linear decrease required, in [0, 1].
      decrease_factor: the shrink factor, in (0, 1).
      increase_factor: the growth of the first guess over the last step, >= 1
        (``math.inf`` starts each search at ``max_learning_rate``).
      max_learning_rate: the largest step size tried, > 0.
      atol, rtol: absolute and relative slack in the criterion, >= 0.
      store_grad: also compute the gradient at the accepted point and keep
        it in the state (for ``value_and_grad_from_state``).
      verbose: print the search's values when it fails to find a step.

    Returns:
      A transform with state ``ScaleByBacktrackingLinesearchState``; its
      update needs ``params`` and the keywords ``value``, ``grad`` and
      ``value_fn``.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx
      >>> f = lambda x: jnp.sum(x ** 2)
      >>> opt = gradtx.chain(gradtx.sgd(1.0), gradtx.scale_by_backtracking_linesearch(15))
      >>> x = jnp.array([1.0, 2.0]); value, grad = jax.value_and_grad(f)(x)
      >>> updates, state = opt.update(grad, opt.init(x), x, value=value, grad=grad, value_fn=f)
      >>> gradtx.apply_updates(x, updates)   # eta = 1 keeps f, eta = 0.8 decreases it
      Array([-0.6, -1.2], dtype=float32)

    References: Armijo, "Minimization of functions having Lipschitz continuous
    first partial derivatives", Pacific J. Math. 1966; Vaswani et al.,
    "Painless Stochastic Gradient", NeurIPS 2019, arXiv:1905.09997.
    """
    owner = "scale_by_backtracking_linesearch"
    if isinstance(max_backtracking_steps, bool) or not isinstance(max_backtracking_steps, int):
        raise ValueError(
            f"{owner}: max_backtracking_steps must be an int >= 0, got {max_backtracking_steps!r}"
        )
    check_range(owner, "max_backtracking_steps", max_backtracking_steps, 0)
    check_range(owner, "slope_rtol", slope_rtol, 0, 1)
    check_range(owner, "decrease_factor", decrease_factor, 0, 1, low_open=True, high_open=True)
    if increase_factor != math.inf:  # inf: every search starts at max_learning_rate
        check_range(owner, "increase_factor", increase_factor, 1)
    check_range(owner, "max_learning_rate", max_learning_rate, 0, low_open=True)
    check_range(owner, "atol", atol, 0)
    check_range(owner, "rtol", rtol, 0)

    def init(params):
        real = _real_dtype(params)
        return ScaleByBacktrackingLinesearchState(
            learning_rate=jnp.ones((), real),
            value=jnp.full((), jnp.inf, real),
            grad=zeros_like_tree(params) if store_grad else None,
            info=BacktrackingLinesearchInfo(
                num_linesearch_steps=jnp.zeros((), jnp.int32),
                decrease_error=jnp.full((), jnp.inf, real),
            ),
        )

    def update(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra):
        value_fn, fn_kwargs = _line_search_keywords(
            owner,
            state,
            ScaleByBacktrackingLinesearchState,
            updates,
            params,
            value,
            grad,
            value_fn,
            extra,
        )
        real = state.value.dtype
        value0 = jnp.asarray(value).astype(real)
        slope = _slope(updates, grad).astype(real)

        def trial_params(eta):
            return jax.tree.map(
                lambda p, u: p + eta.astype(compute_dtype(p.dtype)) * u, params, updates
            )

        def decrease_error(eta, new_value):
            err = new_value - (1.0 + rtol) * value0 - eta * slope_rtol * slope
            err = jnp.where(jnp.isnan(err), jnp.inf, err)
            return jnp.maximum(err, 0.0)

        def searching(s):
            _, _, err, k = s
            return ~(err <= atol) & (k <= max_backtracking_steps)

        def trial(s):
            eta, _, _, k = s
            eta = jnp.where(k > 0, decrease_factor * eta, eta)
            new_value = jnp.asarray(value_fn(trial_params(eta), **fn_kwargs)).astype(real)
            return eta, new_value, decrease_error(eta, new_value).astype(real), k + 1

        guess = jnp.minimum(increase_factor * state.learning_rate, max_learning_rate).astype(real)
        start = (guess, value0, jnp.full((), jnp.inf, real), jnp.zeros((), jnp.int32))
        eta, new_value, err, count = jax.lax.while_loop(searching, trial, start)
        if store_grad:
            new_grad = jax.grad(lambda p: value_fn(p, **fn_kwargs))(trial_params(eta))
            new_grad = jax.tree.map(lambda n, o: n.astype(o.dtype), new_grad, state.grad)
        else:
            new_grad = None
        if verbose:
            cond(
                err > atol,
                lambda: jax.debug.print(
                    f"{owner}: no step size with sufficient decrease found: value {{v}}, "
                    "slope {s}, step size {e}, decrease error {d} (an infinite error "
                    "makes the step 0)",
                    v=value0,
                    s=slope,
                    e=eta,
                    d=err,
                ),
                lambda: None,
            )
        learning_rate = jnp.where(jnp.isinf(err), jnp.zeros((), real), eta)
        out = jax.tree.map(
            lambda u: (learning_rate.astype(compute_dtype(u.dtype)) * u).astype(u.dtype), updates
        )
        return out, ScaleByBacktrackingLinesearchState(
            learning_rate=learning_rate,
            value=new_value,
            grad=new_grad,
            info=BacktrackingLinesearchInfo(num_linesearch_steps=count, decrease_error=err),
        )

    return init, update
