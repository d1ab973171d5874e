"""Curvature from Hessian-vector products: Hutchinson's diagonal estimate and Sophia.

``hutchinson_estimator_diag_hessian`` estimates diag(H) as z * (H z) with
z a Rademacher vector; its update takes the loss as ``obj_fn=`` (a function
of the parameters alone) and differentiates it twice (a forward-over-reverse
Hessian-vector product).  ``scale_by_sophia`` divides Adam's first moment by
an average of such estimates and clips the result; keywords its update does
not use itself (``obj_fn``) go to the estimator.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._accumulation import raw_key
from ._base import GradientTransformation
from ._checks import (
    check_float_leaves,
    check_range,
    check_state,
    check_state_dtype,
    check_transformation,
    require_params,
)
from ._momentum import debiaser
from ._numerics import compute_dtype, cond, increment, new_count
from ._tree import zeros_like_tree


class HutchinsonState(NamedTuple):
    """key: the key of the next draw, as its raw uint32 data (optax's field)."""

    key: jax.Array


def hutchinson_estimator_diag_hessian(random_seed=None) -> GradientTransformation:
    """Hutchinson's estimate of the Hessian's diagonal: u = z * (H z), z_i = +-1 with probability 1/2.

    E[z * (H z)] = diag(H).  H z is the derivative of grad f along z
    (``jax.jvp`` of ``jax.grad(obj_fn)``).  The incoming updates are ignored.
    The state's key is split into the next key and a sample key, and that
    into one key per leaf, as in optax, so the same seed draws the same z.

    Args:
      random_seed: a ``jax.random.key``, a raw ``jax.random.PRNGKey`` or an
        int seed; None: ``jax.random.PRNGKey(0)``.

    Returns:
      A transform with state ``HutchinsonState(key)``; its update needs
      ``params`` and ``obj_fn=``, the loss as a function of the params.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.hutchinson_estimator_diag_hessian()
      >>> f = lambda x: jnp.sum(jnp.array([1.0, 3.0]) * x**2)   # diag(H) = (2, 6)
      >>> x = jnp.zeros(2)
      >>> tx.update(x, tx.init(x), x, obj_fn=f)[0]   # exact for a diagonal H
      Array([2., 6.], dtype=float32)

    Reference: Hutchinson, "A stochastic estimator of the trace of the
    influence matrix for Laplacian smoothing splines", 1989.
    """
    owner = "hutchinson_estimator_diag_hessian"
    seed = 0 if random_seed is None else random_seed

    def init(params):
        return HutchinsonState(key=raw_key(seed))

    def update(updates, state, params=None, obj_fn=None, **extra):
        check_state(owner, state, HutchinsonState)
        if params is None or obj_fn is None:
            raise ValueError(
                f"{owner}: update needs params and obj_fn= (the loss as a function of the params)"
            )
        check_float_leaves(owner, params, "params")
        key, sample_key = jax.random.split(state.key)
        leaves, treedef = jax.tree.flatten(params)
        lowest = min((p.dtype for p in leaves), key=lambda d: jnp.dtype(d).itemsize)
        keys = jax.random.split(sample_key, len(leaves))
        signs = treedef.unflatten(
            [
                jax.random.rademacher(k, p.shape, jnp.float32).astype(lowest)
                for k, p in zip(keys, leaves)
            ]
        )
        hvp = jax.jvp(jax.grad(obj_fn), (params,), (signs,))[1]
        return jax.tree.map(lambda h, z: h * z.astype(h.dtype), hvp, signs), HutchinsonState(key)

    return GradientTransformation(init, update, name=owner)


# Hutchinson's estimator with key 0: Sophia's default, as optax's.
DEFAULT_HESSIAN_DIAGONAL_FN = hutchinson_estimator_diag_hessian()


class SophiaState(NamedTuple):
    """count: t; mu: m_t; nu: h_t, the average Hessian diagonal; hessian_fn_state:
    the estimator's state.  (optax's fields.)"""

    count: jax.Array
    mu: Any
    nu: Any
    hessian_fn_state: Any


def scale_by_sophia(
    b1=0.965,
    b2=0.99,
    eps=1e-8,
    gamma=0.01,
    clip_threshold=1.0,
    update_interval=10,
    hessian_diagonal_fn=DEFAULT_HESSIAN_DIAGONAL_FN,
    mu_dtype=None,
    verbose: bool = False,
    print_win_rate_every_n_steps=0,
) -> GradientTransformation:
    """Sophia: u_t = clip(m_hat_t / max(gamma * h_{t-1}, eps), -rho, rho).

    m_t = b1 * m_{t-1} + (1 - b1) * g_t,  m_hat_t = m_t / (1 - b1^t);
    every ``update_interval`` steps (from the first), after the step,
    h_t = b2 * h_{t-1} + (1 - b2) * diag_hat(H_t), the estimate coming from
    ``hessian_diagonal_fn`` (Hutchinson's by default; it takes ``obj_fn=``);
    otherwise h_t = h_{t-1}.  The first step divides by eps, so it is
    clipped to +-rho.  optax.contrib's ``scale_by_sophia``, keyword for keyword.

    Args:
      b1: the decay of m, in [0, 1).
      b2: the decay of h, in [0, 1]; updated every ``update_interval``
        steps, so its effective decay per step is about 1 - (1 - b2) / interval.
      eps: the floor of the denominator, >= 0.
      gamma: the scale of the Hessian diagonal, >= 0.
      clip_threshold: rho, or None for no clipping.
      update_interval: steps between Hessian estimates, an int >= 1.
      hessian_diagonal_fn: a transform returning the Hessian diagonal
        estimate; extra keywords of ``update`` are passed to it.
      mu_dtype: the dtype m is stored in; None: each parameter's dtype.
      verbose: print the fraction of unclipped entries (the "win rate").
      print_win_rate_every_n_steps: how often ``verbose`` prints, in steps.

    Returns:
      A transform with state ``SophiaState``; it needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_sophia(b1=0.0, b2=0.0, gamma=1.0, update_interval=1)
      >>> f = lambda x: jnp.sum(jnp.array([1.0, 3.0]) * x**2)   # diag(H) = (2, 6)
      >>> x = jnp.array([0.1, 0.1]); state = tx.init(x)
      >>> u, state = tx.update(jnp.array([0.2, 0.6]), state, x, obj_fn=f)   # clipped
      >>> tx.update(jnp.array([0.2, 0.6]), state, x, obj_fn=f)[0]   # g / diag(H)
      Array([0.1, 0.1], dtype=float32)

    Reference: Liu et al., "Sophia: A Scalable Stochastic Second-order
    Optimizer for Language Model Pre-training", ICLR 2024, arXiv:2305.14342.
    """
    owner = "scale_by_sophia"
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    check_range(owner, "b2", b2, 0, 1)
    check_range(owner, "eps", eps, 0)
    check_range(owner, "gamma", gamma, 0)
    if clip_threshold is not None:
        check_range(owner, "clip_threshold", clip_threshold, 0)
    if isinstance(update_interval, bool) or not isinstance(update_interval, int):
        raise ValueError(f"{owner}: update_interval must be an int >= 1, got {update_interval!r}")
    check_range(owner, "update_interval", update_interval, 1)
    check_transformation(owner, "hessian_diagonal_fn", hessian_diagonal_fn)
    mu_dtype = check_state_dtype(owner, "mu_dtype", mu_dtype)

    def init(params):
        check_float_leaves(owner, params, "params")
        return SophiaState(
            count=new_count(),
            mu=zeros_like_tree(params, dtype=mu_dtype),
            nu=zeros_like_tree(params),
            hessian_fn_state=hessian_diagonal_fn.init(params),
        )

    def update(updates, state, params=None, **extra):
        check_state(owner, state, SophiaState)
        check_float_leaves(owner, updates, "gradient")
        require_params(owner, params)
        count = increment(state.count)

        def average(decay, m, x):
            cd = compute_dtype(m.dtype, x.dtype)
            return (1 - decay) * x.astype(cd) + decay * m.astype(cd)

        mu = jax.tree.map(lambda m, g: average(b1, m, g), state.mu, updates)
        mu_hat = jax.tree.map(debiaser(b1, count), mu)

        def step(m, h):
            cd = compute_dtype(m.dtype, h.dtype)
            u = m.astype(cd) / jnp.maximum(gamma * h.astype(cd), eps)
            return u if clip_threshold is None else jnp.clip(u, -clip_threshold, clip_threshold)

        out = jax.tree.map(step, mu_hat, state.nu)
        if verbose and clip_threshold is not None and print_win_rate_every_n_steps:
            unclipped = sum(jnp.sum(jnp.abs(u) < clip_threshold) for u in jax.tree.leaves(out))
            size = sum(u.size for u in jax.tree.leaves(out))
            cond(
                count % print_win_rate_every_n_steps == 0,
                lambda: jax.debug.print(f"{owner}: win rate {{r}}", r=unclipped / size),
                lambda: None,
            )

        def refresh(hessian_state, nu):
            diag, hessian_state = hessian_diagonal_fn.update(
                updates, hessian_state, params, **extra
            )
            nu = jax.tree.map(lambda h, d: average(b2, h, d).astype(h.dtype), nu, diag)
            return hessian_state, nu

        hessian_state, nu = cond(
            state.count % update_interval == 0,
            refresh,
            lambda h, n: (h, n),
            state.hessian_fn_state,
            state.nu,
        )
        out = jax.tree.map(lambda u, g: u.astype(g.dtype), out, updates)
        return out, SophiaState(
            count=count,
            mu=jax.tree.map(lambda n, o: n.astype(o.dtype), mu, state.mu),
            nu=nu,
            hessian_fn_state=hessian_state,
        )

    return GradientTransformation(
        init,
        update,
        name=owner,
        hyperparams={
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "gamma": gamma,
            "clip_threshold": clip_threshold,
            "update_interval": update_interval,
            "hessian_diagonal_fn": hessian_diagonal_fn,
            "mu_dtype": None if mu_dtype is None else mu_dtype.name,
            "verbose": verbose,
        },
    )
