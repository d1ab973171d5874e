"""Quasi-Newton: L-BFGS with a zoom line search (optax's ``lbfgs``).

Shared pieces: ``scale_by_lbfgs`` (``_quasi_newton``) and
``scale_by_zoom_linesearch`` (``_linesearch``).
"""

from __future__ import annotations

from .._checks import (
    OptionalRate,
)
from .._linesearch import scale_by_zoom_linesearch
from .._quasi_newton import scale_by_lbfgs
from .._recipe import recipe
from .._scaling import identity, scale_by_learning_rate

_DEFAULT_LINESEARCH = scale_by_zoom_linesearch(
    max_linesearch_steps=20, initial_guess_strategy="one"
)


@recipe
def lbfgs(
    learning_rate: OptionalRate = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch=_DEFAULT_LINESEARCH,
):
    """L-BFGS: p_k+1 = p_k - eta_k H_k g_k, with H_k the two-loop inverse-Hessian estimate.

    eta_k comes from the line search (default: ``scale_by_zoom_linesearch(
    max_linesearch_steps=20, initial_guess_strategy="one")``, strong Wolfe
    steps) times ``learning_rate`` if given.  With the line search, the
    update needs ``value=``, ``grad=`` and ``value_fn=``; pair it with
    ``value_and_grad_from_state`` to reuse the search's last evaluation.

    Args:
      learning_rate: a number, a schedule or None (1).
      memory_size: the number of past steps kept, >= 1.
      scale_init_precond: scale the initial inverse Hessian by <y, s> / <y, y>.
      linesearch: a line-search transform, or None for none.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx
      >>> f = lambda x: jnp.sum((x - 1.0) ** 2) + 0.5 * jnp.sum(x ** 4)
      >>> opt, x = gradtx.lbfgs(), jnp.zeros(3)
      >>> @jax.jit
      ... def step(x, state):
      ...     value, grad = jax.value_and_grad(f)(x)
      ...     updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
      ...     return gradtx.apply_updates(x, updates), state
      >>> state = opt.init(x)
      >>> for _ in range(8):
      ...     x, state = step(x, state)
      >>> x.round(4)
      Array([0.6823, 0.6823, 0.6823], dtype=float32)

    Reference: Liu, Nocedal, "On the limited memory BFGS method for large
    scale optimization", Math. Programming 1989.
    """
    return (
        scale_by_lbfgs(memory_size, scale_init_precond),
        scale_by_learning_rate(1.0 if learning_rate is None else learning_rate),
        identity() if linesearch is None else linesearch,
    )
