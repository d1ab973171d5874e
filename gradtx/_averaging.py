"""Averages of the parameters: Lookahead, and an exponential moving average (EMA).

All wrap a whole optimizer and need ``params`` in ``update``: they follow
the parameters the optimizer produces, p_t = p_{t-1} + u_t.  ``lookahead``
is optax's: the slow weights are part of the parameters, a
``LookaheadParams(fast, slow)`` pair.  ``lookahead_in_state`` and
``ema_params`` keep their averages in the state instead, in at least float32
(a bf16 average with decay 0.999 would round every step's change away), so
the parameters stay a plain pytree.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._base import GradientTransformation, update_fn
from ._checks import (
    check_float_leaves,
    check_params,
    check_range,
    check_state,
    check_transformation,
)
from ._numerics import compute_dtype, cond, increment, new_count
from ._recipe import transform
from ._tree import check_same_structure
from ._typing import TransformLike
from ._wrappers import check_int


def _copy_wide(params):
    """The params, each leaf in at least float32."""
    return jax.tree.map(lambda p: jnp.asarray(p).astype(compute_dtype(jnp.result_type(p))), params)


def _check_step(owner, state, state_type, updates, params, average):
    """Check an averaging wrapper's update: its state, the gradient, and params
    shaped like the gradient and like ``average`` (the averaged params in the state)."""
    check_state(owner, state, state_type)
    check_float_leaves(owner, updates, "gradient")
    _check_params(owner, params, updates, average)


def _check_params(owner, params, updates, average):
    check_params(owner, params, updates)
    check_same_structure(
        owner,
        average,
        params,
        "the state's averaged params",
        "params",
        hint="was the state made by init on other params?",
    )


def _check_lookahead(owner, fast_optimizer, sync_period, slow_step_size):
    """Check lookahead's arguments; the fast optimizer's update, accepting ``**extra``."""
    check_transformation(owner, "fast_optimizer", fast_optimizer)
    check_int(owner, "sync_period", sync_period, 1)
    check_range(owner, "slow_step_size", slow_step_size, 0, 1)
    return update_fn(fast_optimizer)


def _unzip(one, first, *rest):
    """``jax.tree.map(one, first, *rest)`` of pairs, as two trees shaped like ``first``."""
    pairs = jax.tree.map(one, first, *rest)
    return jax.tree.transpose(jax.tree.structure(first), jax.tree.structure((0, 0)), pairs)


def _with_fast_optimizer(owner, init, update, fast_optimizer, **hyperparams):
    """The lookahead transform: the fast optimizer its child, recorded first as ``inner``."""
    return GradientTransformation(
        init,
        update,
        name=owner,
        children=(fast_optimizer,),
        hyperparams={"inner": fast_optimizer, **hyperparams},
    )


class LookaheadParams(NamedTuple):
    """The parameters of ``lookahead``: fast (theta, take gradients at these)
    and slow (phi, evaluate these)."""

    fast: Any
    slow: Any

    @classmethod
    def init_synced(cls, params) -> LookaheadParams:
        """The pair with fast = slow = ``params``, to start from."""
        return cls(fast=params, slow=params)


class LookaheadState(NamedTuple):
    """fast_state: the fast optimizer's state; steps_since_sync: fast steps
    since the last synchronisation (0 .. k-1)."""

    fast_state: Any
    steps_since_sync: jax.Array


def lookahead(
    fast_optimizer: TransformLike,
    sync_period: int,
    slow_step_size: float,
    reset_state: bool = False,
) -> GradientTransformation:
    """Lookahead on a ``LookaheadParams(fast, slow)`` pair: k fast steps, then a slow step.

    The slow step: phi <- phi + alpha * (theta - phi), theta <- phi.

    The fast optimizer A moves the fast weights every step with the update
    u_t = A(g_t), g_t the gradient at theta.  On every k-th step (the
    synchronisation) d = theta + u_t - phi, and the update moves
    phi by alpha * d and theta by u_t - (1 - alpha) * d, so that both end
    at the new phi; on the other steps phi does not move and theta moves by
    u_t.  This is optax's ``lookahead``, keywords and state included.

    Args:
      fast_optimizer: A, the inner optimizer (gradtx or optax).
      sync_period: k, fast steps per synchronisation, an int >= 1.
      slow_step_size: alpha, in [0, 1].
      reset_state: re-initialise A's state (on the fast weights) at each
        synchronisation.

    Returns:
      A transform with state ``LookaheadState(fast_state, steps_since_sync)``
      whose ``update(grads, state, params)`` takes the gradient at
      ``params.fast`` and ``params`` the ``LookaheadParams`` pair, and returns
      a ``LookaheadParams`` of updates.  ``init`` takes the pair (or the
      fast weights alone).  To keep the parameters a plain pytree and the
      slow weights in the state, use ``lookahead_in_state``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.lookahead(gradtx.sgd(1.0), sync_period=2, slow_step_size=0.5)
      >>> params = gradtx.LookaheadParams.init_synced({"w": jnp.array([0.0])})
      >>> state = opt.init(params)
      >>> for _ in range(2):
      ...     u, state = opt.update({"w": jnp.array([-1.0])}, state, params)
      ...     params = gradtx.apply_updates(params, u)
      >>> params.fast["w"], params.slow["w"]
      (Array([1.], dtype=float32), Array([1.], dtype=float32))

    Reference: Zhang, Lucas, Hinton, Ba, "Lookahead Optimizer: k steps
    forward, 1 step back", NeurIPS 2019, arXiv:1907.08610.
    """
    owner = "lookahead"
    inner_update = _check_lookahead(owner, fast_optimizer, sync_period, slow_step_size)

    def init(params):
        fast = params.fast if isinstance(params, LookaheadParams) else params
        return LookaheadState(fast_optimizer.init(fast), new_count())

    def update(updates, state, params=None, **extra):
        check_state(owner, state, LookaheadState)
        if not isinstance(params, LookaheadParams):
            raise TypeError(
                f"{owner}: update needs params=LookaheadParams(fast, slow) (start "
                f"from LookaheadParams.init_synced(params)), got "
                f"{type(params).__name__}; to keep plain params, use "
                f"lookahead_in_state"
            )
        check_float_leaves(owner, updates, "gradient")
        check_same_structure(owner, params.fast, updates, "params.fast", "updates")
        fast, fast_state = inner_update(updates, state.fast_state, params.fast, **extra)
        sync = state.steps_since_sync >= sync_period - 1

        def one(u, theta, phi):
            dtype = compute_dtype(jnp.result_type(u), jnp.result_type(theta))
            alpha = jnp.asarray(slow_step_size, jnp.real(jnp.zeros((), dtype)).dtype)
            d = theta.astype(dtype) + u.astype(dtype) - phi.astype(dtype)
            slow_u = jnp.where(sync, alpha * d, jnp.zeros_like(d))
            fast_u = jnp.where(sync, u.astype(dtype) - (1 - alpha) * d, u.astype(dtype))
            return fast_u.astype(u.dtype), slow_u.astype(jnp.result_type(phi))

        fast_u, slow_u = _unzip(one, fast, params.fast, params.slow)
        if reset_state:
            fresh = fast_optimizer.init(params.fast)
            fast_state = jax.tree.map(lambda now, new: jnp.where(sync, new, now), fast_state, fresh)
        steps = jnp.where(sync, jnp.zeros_like(state.steps_since_sync), state.steps_since_sync + 1)
        return LookaheadParams(fast_u, slow_u), LookaheadState(fast_state, steps)

    return _with_fast_optimizer(
        owner,
        init,
        update,
        fast_optimizer,
        sync_period=sync_period,
        slow_step_size=slow_step_size,
        reset_state=reset_state,
    )


class SlowWeightsState(NamedTuple):
    """count: fast steps since the last synchronisation (0 .. k-1); slow: the
    slow weights phi, in at least float32; inner_state: the fast optimizer's state."""

    count: jax.Array
    slow: Any
    inner_state: Any


def lookahead_in_state(
    fast_optimizer: TransformLike, sync_period: int = 6, slow_step_size: float = 0.5
) -> GradientTransformation:
    """Lookahead with the slow weights in the state: k fast steps, then a slow step.

    The slow step: phi <- phi + alpha * (theta - phi) and theta <- phi.

    The fast weights theta are the parameters you pass to ``update``; the
    fast optimizer A moves them every step, theta_t = theta_{t-1} + A(g_t).
    Every k-th step the slow weights phi (``state.slow``, phi_0 = theta_0)
    move a fraction alpha of the way to theta, and the update returned sets
    the parameters to the new phi.  Right after a synchronisation the
    parameters equal the slow weights; evaluate ``state.slow`` in between.

    Unlike ``lookahead`` (optax's form), the parameters stay a plain pytree
    (no ``LookaheadParams`` pair); the numbers are the same.

    Args:
      fast_optimizer: A, the inner optimizer (gradtx or optax).
      sync_period: k, fast steps per synchronisation, an int >= 1.
      slow_step_size: alpha, in [0, 1].

    Returns:
      A transform with state ``SlowWeightsState(count, slow, inner_state)``
      that needs ``params`` in ``update``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.lookahead_in_state(gradtx.sgd(1.0), sync_period=2, slow_step_size=0.5)
      >>> params, grad = {"w": jnp.array([0.0])}, {"w": jnp.array([-1.0])}
      >>> state = opt.init(params)
      >>> for _ in range(2):   # the second step synchronises
      ...     u, state = opt.update(grad, state, params)
      ...     params = gradtx.apply_updates(params, u)
      >>> params["w"], state.slow["w"]
      (Array([1.], dtype=float32), Array([1.], dtype=float32))

    Reference: as ``lookahead`` (Zhang et al., NeurIPS 2019, arXiv:1907.08610).
    """
    owner = "lookahead_in_state"
    inner_update = _check_lookahead(owner, fast_optimizer, sync_period, slow_step_size)

    def init(params):
        return SlowWeightsState(new_count(), _copy_wide(params), fast_optimizer.init(params))

    def update(updates, state, params=None, **extra):
        _check_step(owner, state, SlowWeightsState, updates, params, state.slow)
        fast, inner_state = inner_update(updates, state.inner_state, params, **extra)
        sync = state.count >= sync_period - 1

        def one(u, p, phi):
            theta = p.astype(phi.dtype) + u.astype(phi.dtype)
            alpha = jnp.asarray(slow_step_size, jnp.real(phi).dtype).astype(phi.dtype)
            new_phi = jnp.where(sync, phi + alpha * (theta - phi), phi)
            out = jnp.where(sync, (new_phi - p.astype(phi.dtype)).astype(u.dtype), u)
            return out, new_phi

        out, slow = _unzip(one, fast, params, state.slow)
        count = jnp.where(sync, jnp.zeros_like(state.count), state.count + 1)
        return out, SlowWeightsState(count, slow, inner_state)

    return _with_fast_optimizer(
        owner, init, update, fast_optimizer, sync_period=sync_period, slow_step_size=slow_step_size
    )


class EmaParamsState(NamedTuple):
    """count: steps averaged; ema: the averaged parameters, in at least float32;
    inner_state: the optimizer's state."""

    count: jax.Array
    ema: Any
    inner_state: Any


@transform
def ema_params(inner: TransformLike, decay: float = 0.999, *, debias: bool = False):
    """EMA of the parameters: ema_t = ema_{t-1} + w_t * (p_t - ema_{t-1}), p_t = p_{t-1} + u_t.

    The optimizer T runs unchanged (its update is returned as it is); the
    state keeps an average of the parameters it produces, ``state.ema``, to
    evaluate with.  The weight is w_1 = 1 (the first step copies p_1) and

    * ``debias=False``: w_t = 1 - decay for t >= 2, i.e.
      ema_t = decay * ema_{t-1} + (1 - decay) * p_t.  This is Keras's
      ``use_ema=True`` (``ema_momentum``) and PyTorch's
      ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))``.
    * ``debias=True``: w_t = (1 - decay) / (1 - decay^t), which makes ema_t
      the average of p_1 .. p_t with weights decay^(t-s) normalised to sum to
      one: Adam's bias correction applied to a zero-started average.  Early
      averages then forget the first steps faster.

    The average is stored already corrected, so ``state.ema`` is always the
    one to use.  Wrap the whole optimizer, and put ``ema_params`` inside
    ``accumulate_gradients`` or ``apply_if_finite`` (so only real steps are
    averaged): its state is then ``state.inner_state.ema``.

    Args:
      inner: T, the optimizer (gradtx or optax).
      decay: the decay of the average, in [0, 1).
      debias: use the normalised weights above.

    Returns:
      A transform with state ``EmaParamsState(count, ema, inner_state)``
      that needs ``params`` in ``update``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.ema_params(gradtx.sgd(1.0), decay=0.5)
      >>> params, grad = {"w": jnp.array([0.0])}, {"w": jnp.array([-2.0])}
      >>> state = opt.init(params)
      >>> for _ in range(2):
      ...     u, state = opt.update(grad, state, params)
      ...     params = gradtx.apply_updates(params, u)
      >>> params["w"], state.ema["w"]
      (Array([4.], dtype=float32), Array([3.], dtype=float32))

    Reference: Polyak, Juditsky, "Acceleration of Stochastic Approximation
    by Averaging", SIAM J. Control Optim. 30(4), 1992.
    """
    owner = "ema_params"
    check_transformation(owner, "inner", inner)
    check_range(owner, "decay", decay, 0, 1, high_open=True)
    inner_update = update_fn(inner)

    def init(params):
        return EmaParamsState(new_count(), _copy_wide(params), inner.init(params))

    def update(updates, state, params=None, **extra):
        _check_step(owner, state, EmaParamsState, updates, params, state.ema)
        out, inner_state = inner_update(updates, state.inner_state, params, **extra)
        count = increment(state.count)

        def one(u, p, e):
            real = jnp.real(e).dtype
            d = jnp.asarray(decay, real)
            if debias:
                w = (1 - d) / (1 - d ** count.astype(real))
            else:
                w = jnp.where(count == 1, jnp.ones((), real), 1 - d)
            new_p = p.astype(e.dtype) + u.astype(e.dtype)
            return e + w.astype(e.dtype) * (new_p - e)

        ema = jax.tree.map(one, out, params, state.ema)
        return out, EmaParamsState(count, ema, inner_state)

    return init, update, (inner,)


# ----------------------------------------------------------------------------
# Slow copies of the parameters, as functions of the trees.


def incremental_update(new_tensors, old_tensors, step_size):
    """Polyak averaging of parameters: a_t = step_size * p_t + (1 - step_size) * a_{t-1}.

    optax's ``incremental_update``, a function of the trees (not a
    transform): the moving average of a model's parameters kept for
    evaluation, or a target network's soft update.

    Args:
      new_tensors: p_t, the latest parameters.
      old_tensors: a_{t-1}, the average so far (same structure).
      step_size: the weight of the latest parameters, in [0, 1].

    Returns:
      a_t, shaped like ``new_tensors``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> gradtx.incremental_update(jnp.array([1.0]), jnp.array([0.0]), 0.25)
      Array([0.25], dtype=float32)

    Reference: Polyak, Juditsky, "Acceleration of Stochastic Approximation
    by Averaging", SIAM J. Control Optim. 1992.
    """
    return jax.tree.map(
        lambda new, old: None if new is None else step_size * new + (1.0 - step_size) * old,
        new_tensors,
        old_tensors,
        is_leaf=lambda x: x is None,
    )


def periodic_update(new_tensors, old_tensors, steps, update_period):
    """Copy the parameters every k steps: a_t = p_t if steps % k == 0 else a_{t-1}.

    optax's ``periodic_update``, a function of the trees (not a transform):
    the hard update of a target network (DQN) or of a slow copy.

    Args:
      new_tensors: p_t, the latest parameters.
      old_tensors: a_{t-1}, the slow copy.
      steps: the number of updates of the online parameters (may be traced).
      update_period: k, copy every k steps.

    Returns:
      ``new_tensors`` when ``steps % update_period == 0``, else ``old_tensors``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> gradtx.periodic_update(jnp.array([1.0]), jnp.array([0.0]), 6, 3)
      Array([1.], dtype=float32)

    Reference: Mnih et al., "Human-level control through deep reinforcement
    learning", Nature 2015.
    """
    return cond(jnp.mod(steps, update_period) == 0, lambda: new_tensors, lambda: old_tensors)
