"""Accumulating transforms: a moving average of the updates, and sums applied every k steps."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._checks import check_float_leaves, check_range, check_state, check_state_dtype, moment_state
from ._moments import debiaser
from ._numerics import compute_dtype, increment, new_count
from ._recipe import transform
from ._tree import zeros_like_tree


class EmaState(NamedTuple):
    """count: t; ema: the moving average e_t (optax's fields)."""

    count: jax.Array
    ema: object


@transform
def ema(decay, debias: bool = True, accumulator_dtype=None):
    """Exponential moving average: e_t = decay * e_{t-1} + (1 - decay) * g_t; u_t = e_t.

    With ``debias`` the update is e_t / (1 - decay^t), which removes the
    zero start (as ``scale_by_momentum(decay, ema=True)`` followed by
    ``bias_correction(decay)``).  Signum and Adafactor's momentum use it
    without debiasing.

    Args:
      decay: the decay of the average, in [0, 1].
      debias: divide by 1 - decay^t.
      accumulator_dtype: the dtype e_t is stored in; None: each parameter's.

    Returns:
      A transform with state ``EmaState(count, ema)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.ema(0.5, debias=False)
      >>> tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))[0]
      Array([1.], dtype=float32)
    """
    owner = "ema"
    check_range(owner, "decay", decay, 0, 1)
    accumulator_dtype = check_state_dtype(owner, "accumulator_dtype", accumulator_dtype)

    def average(e, g):
        cd = compute_dtype(e.dtype, g.dtype)
        return (1 - decay) * g.astype(cd) + decay * e.astype(cd)

    def init(params):
        check_float_leaves(owner, params, "params")
        return EmaState(count=new_count(), ema=zeros_like_tree(params, dtype=accumulator_dtype))

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, EmaState, updates, "ema")
        count = increment(state.count)
        new = jax.tree.map(average, state.ema, updates)
        out = jax.tree.map(debiaser(decay, count), new) if debias else new
        out = jax.tree.map(lambda o, u: o.astype(u.dtype), out, updates)
        stored = jax.tree.map(lambda n, e: n.astype(e.dtype), new, state.ema)
        return out, EmaState(count=count, ema=stored)

    return init, update


class ApplyEvery(NamedTuple):
    """count: steps taken modulo k; grad_acc: the sum of the updates since the last emission."""

    count: jax.Array
    grad_acc: object


@transform
def apply_every(k: int = 1):
    """Sum the updates over k steps and emit the sum on every k-th step, zeros otherwise.

    a_t = g_t + [t mod k != 0] * a_{t-1} (t counted from 0);  u_t = [t mod k = k - 1] * a_t.

    The sum is emitted, not the mean (optax's ``apply_every``);
    ``accumulate_gradients`` wraps an optimizer and feeds it the mean.

    Args:
      k: the number of steps to sum, an int >= 1.

    Returns:
      A transform with state ``ApplyEvery(count, grad_acc)``, which emits zeros between sums.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.apply_every(2)
      >>> state = tx.init(jnp.zeros(1))
      >>> for g in (1.0, 2.0):   # zero, then the sum of both
      ...     u, state = tx.update(jnp.array([g]), state)
      >>> u
      Array([3.], dtype=float32)
    """
    owner = "apply_every"
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{owner}: k must be an int >= 1, got {k!r}")

    def init(params):
        check_float_leaves(owner, params, "params")
        return ApplyEvery(count=new_count(), grad_acc=zeros_like_tree(params))

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, ApplyEvery, updates, "grad_acc")
        phase = state.count % k
        keep, emit = phase != 0, phase == k - 1

        def accumulate(g, a):
            return (jnp.where(keep, a, jnp.zeros_like(a)) + g.astype(a.dtype)).astype(a.dtype)

        acc = jax.tree.map(accumulate, updates, state.grad_acc)
        out = jax.tree.map(
            lambda a, g: jnp.where(emit, a, jnp.zeros_like(a)).astype(g.dtype), acc, updates
        )
        return out, ApplyEvery(count=increment(state.count) % k, grad_acc=acc)

    return init, update


def raw_key(key):
    """The uint32 data of ``key``: a ``jax.random.key``, a raw ``jax.random.PRNGKey`` or an int seed."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    if isinstance(key, int) or (
        jnp.ndim(key) == 0 and jnp.issubdtype(jnp.result_type(key), jnp.integer)
    ):  # an int seed, or one inject_hyperparams turned into an integer scalar
        return jax.random.key_data(jax.random.key(key))
    return jnp.asarray(key, jnp.uint32)  # a raw key, as jax.random.PRNGKey makes


def key_or_seed(owner, key, seed):
    """The key a transform draws from: ``key``, or ``seed`` (optax's older spelling); 0 if neither."""
    if seed is not None:
        if key is not None:
            raise ValueError(f"{owner}: pass key or seed, not both")
        return seed
    return 0 if key is None else key


class AddNoiseState(NamedTuple):
    """count: t; rng_key: the key the next step's noise is drawn from (optax's fields).

    The key is stored as its raw uint32 data (``jax.random.key_data``), so
    the state is plain arrays that NumPy checkpoints save; optax stores a
    typed key.  Both draw the same numbers.
    """

    count: jax.Array
    rng_key: jax.Array


@transform(exclude=("key", "seed"))
def add_noise(eta, gamma, key=None, *, seed=None):
    """Add annealed Gaussian noise: u_t = g_t + sqrt(eta / t^gamma) * z_t, z_t ~ N(0, I).

    The noise is drawn as optax draws it (the state's key split into the
    next key and a sample key; the sample key split into one key per leaf),
    so the same ``key`` gives the same noise in gradtx and optax.

    Args:
      eta: the initial variance, >= 0.
      gamma: the decay exponent of the variance, >= 0.
      key: a ``jax.random.key``, a raw ``jax.random.PRNGKey`` or an int seed;
        None: 0 (optax's default).
      seed: an int seed, optax's older spelling of ``key``.

    Returns:
      A transform with state ``AddNoiseState(count, rng_key)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.add_noise(0.0, 0.55, key=0)
      >>> tx.update(jnp.array([1.0]), tx.init(jnp.zeros(1)))[0]
      Array([1.], dtype=float32)

    Reference: Neelakantan et al., "Adding Gradient Noise Improves Learning
    for Very Deep Networks", 2015, arXiv:1511.06807.
    """
    owner = "add_noise"
    check_range(owner, "eta", eta, 0)
    check_range(owner, "gamma", gamma, 0)
    key = key_or_seed(owner, key, seed)

    def init(params):
        check_float_leaves(owner, params, "params")
        return AddNoiseState(count=new_count(), rng_key=raw_key(key))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, AddNoiseState)
        check_float_leaves(owner, updates, "updates")
        count = increment(state.count)
        rng_key, sample_key = jax.random.split(state.rng_key)
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(sample_key, len(leaves))
        noisy = []
        for k, g in zip(keys, leaves):
            cd = compute_dtype(g.dtype)
            std = jnp.sqrt(eta / count.astype(cd) ** gamma)
            z = jax.random.normal(k, g.shape, g.dtype)
            noisy.append((g.astype(cd) + std * z.astype(cd)).astype(g.dtype))
        return treedef.unflatten(noisy), AddNoiseState(count=count, rng_key=rng_key)

    return init, update
