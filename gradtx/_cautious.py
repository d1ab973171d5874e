"""Cautious updates: keep only the coordinates where a step agrees with a sign.

``cautious(inner)`` masks an optimizer's step where it would climb the
loss; ``add_cautious_decayed_weights`` decays a weight only where the
update already pulls it towards zero.  Both rescale nothing else and keep
the inner optimizer's state as it is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._base import GradientTransformation, update_fn
from ._checks import check_transformation
from ._numerics import compute_dtype
from ._tree import check_same_structure
from ._weight_decay import decayed_weights


def _real_product(a, b):
    """Re(a * conj(b)): the sign of the agreement of two entries, real or complex."""
    return jnp.real(a * jnp.conj(b)) if jnp.iscomplexobj(a) or jnp.iscomplexobj(b) else a * b


def _cautious_leaf(u, g):
    """u * phi * d / (sum(phi) + 1), phi = [u * (-g) > 0], d the size of the leaf."""
    cd = compute_dtype(u.dtype, g.dtype)
    keep = _real_product(u.astype(cd), -g.astype(cd)) > 0
    real = jnp.finfo(cd).dtype
    factor = jnp.asarray(u.size, real) / (jnp.sum(keep, dtype=real) + 1)
    return jnp.where(keep, u.astype(cd) * factor.astype(cd), 0).astype(u.dtype)


def cautious(inner) -> GradientTransformation:
    """Cautious step: u_t = s_t * phi_t * d / (sum(phi_t) + 1), phi_t = [s_t * (-g_t) > 0].

    Writing s_t = inner(g_t) for the inner optimizer's step (what is added to
    the parameters), the mask phi_t keeps the entries where s_t points downhill,
    along the descent direction -g_t, and zeroes the others; the kept
    entries of each leaf are scaled by d / (sum(phi_t) + 1), d the leaf's
    number of entries, so the step keeps about its size.  g_t is the
    gradient that enters ``cautious``.  ``inner`` must therefore end with
    the learning-rate step (``cautious(adamw(1e-3))``, the step that gradtx
    recipes return, negated); a transform that keeps the gradient's sign,
    such as Adam before its learning rate, would be masked the wrong way
    round.  The rescale counts per leaf, as the paper's code and
    pytorch-optimizer do (a strict inequality: zero entries are dropped).
    Decoupled weight decay inside ``inner`` is masked with the rest of the
    step; pytorch-optimizer decays outside the mask.

    Args:
      inner: any gradient transformation that returns the step to add to
        the parameters (a gradtx or optax optimizer).

    Returns:
      A transform with ``inner``'s state, unchanged.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.cautious(gradtx.sgd(0.1, momentum=0.9))
      >>> state = opt.init(jnp.zeros(3))
      >>> _, state = opt.update(jnp.array([1.0, 1.0, 1.0]), state)
      >>> opt.update(jnp.array([1.0, -0.5, -0.5]), state)[0]   # momentum 1.9, 0.4, 0.4
      Array([-0.285,  0.   ,  0.   ], dtype=float32)

    Reference: Liang, Chen, Liu, Liu, "Cautious Optimizers: Improving
    Training with One Line of Code", 2024, arXiv:2411.16085.
    """
    owner = "cautious"
    check_transformation(owner, "inner", inner)
    inner_update = update_fn(inner)

    def update(updates, state, params=None, **extra):
        steps, state = inner_update(updates, state, params, **extra)
        check_same_structure(owner, updates, steps, "the gradient", "the inner updates")
        return jax.tree.map(_cautious_leaf, steps, updates), state

    return GradientTransformation(
        inner.init, update, name=owner, children=(inner,), combinator=owner
    )


def add_cautious_decayed_weights(weight_decay=0.0, mask=None) -> GradientTransformation:
    """Cautious weight decay: u_t = u_t + weight_decay * [u_t * p_t >= 0] * p_t.

    Decoupled weight decay applied only to the entries where the update u_t
    (gradient-signed, as it stands before the learning-rate step) and the
    parameter p_t have the same sign: there the step already pulls the
    weight towards zero, and the decay joins it; elsewhere the decay would
    fight the step and is left out.  Place it where ``add_decayed_weights``
    stands in a recipe, after the direction and before
    ``scale_by_learning_rate``, so the step is -lr * (u_t + lambda * mask * p_t).

    Args:
      weight_decay: lambda, a number >= 0 or a schedule ``step -> value``.
      mask: which parameters decay at all: a pytree of bools shaped like the
        params, or a function ``params -> that pytree``; None: all.

    Returns:
      A transform that needs ``params``; its state is ``EmptyState()`` for a
      constant weight decay and ``ScheduleState(count)`` for a schedule.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.add_cautious_decayed_weights(0.5)
      >>> params = jnp.array([2.0, 2.0, -2.0])
      >>> tx.update(jnp.array([1.0, -1.0, -1.0]), tx.init(params), params)[0]
      Array([ 2., -1., -2.], dtype=float32)

    Reference: Chen, Li, Liang, Su, Xie, Pierse, Liang, Lao, Liu, "Cautious
    Weight Decay", 2025, arXiv:2510.12402.
    """

    def decay(u, p, wd):
        p = p.astype(u.dtype)
        agree = _real_product(u, p) >= 0
        return jnp.where(agree, u + jnp.asarray(wd, u.dtype) * p, u)

    return decayed_weights("add_cautious_decayed_weights", weight_decay, mask, decay)
