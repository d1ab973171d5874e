"""First-moment transforms: momentum (heavy ball, EMA, Nesterov), bias correction, NAdam's moment.

Each maps its input to a direction built from many steps.  In an adaptive
optimizer they form the ``direction`` of ``precondition``, so the second
moment is still measured on the gradient.  Arithmetic runs in at least
float32; the moment is stored in its parameter's dtype unless a state dtype
is given.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._base import GradientTransformation
from ._checks import check_float_leaves, check_range, check_state, check_state_dtype, moment_state
from ._moments import debiaser, moment_zeros, moving_average, store
from ._numerics import cast, compute_dtype, increment, new_count, real_compute_dtype
from ._recipe import transform
from ._tree import path_str


class MomentumState(NamedTuple):
    """mu: the first moment m_t, one leaf per parameter."""

    mu: object


class TraceState(NamedTuple):
    """trace: the heavy-ball momentum buffer m_t, one leaf per parameter (optax's name)."""

    trace: object


def _moment(decay, average):
    """m_t = decay * m_{t-1} + c * g_t, with c = 1 - decay (an average) or 1 (heavy ball)."""
    weight = None if average else 1
    return lambda m, g: moving_average(m, g, decay, weight=weight)


def _momentum_transform(
    name,
    decay,
    ema,
    nesterov,
    dtype,
    *,
    state_type: type[MomentumState] | type[TraceState] = MomentumState,
    dtype_name="mu_dtype",
    allow_sum=False,
):
    # allow_sum: decay = 1 (the running sum of the gradients) is allowed.
    check_range(name, "decay", decay, 0, 1, high_open=not allow_sum)
    dtype = check_state_dtype(name, dtype_name, dtype)
    field = state_type._fields[0]

    def init(params):
        check_float_leaves(name, params, "params")
        if dtype is not None and not jnp.issubdtype(dtype, jnp.complexfloating):
            for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
                if jnp.iscomplexobj(p):
                    raise ValueError(
                        f"{name}: {dtype_name} {dtype} is real but parameter leaf "
                        f"{path_str(path)} is complex"
                    )
        return state_type(moment_zeros(params, dtype))

    def update(updates, state, params=None, **extra):
        moment_state(name, state, state_type, updates, field)
        step = _moment(decay, ema)
        old = getattr(state, field)
        new_mu = jax.tree.map(step, old, updates)
        stored = store(new_mu, old)
        if nesterov:
            out = jax.tree.map(step, new_mu, updates)
        else:
            out = new_mu
        out = jax.tree.map(lambda o, u: cast(o, u.dtype), out, updates)
        return out, state_type(stored)

    hyperparams = {"decay": decay, "ema": ema, "nesterov": nesterov}
    if dtype is not None:
        hyperparams[dtype_name] = dtype.name
    return GradientTransformation(init, update, name=name, hyperparams=hyperparams)


def scale_by_momentum(decay=0.9, *, ema: bool = False, nesterov: bool = False, mu_dtype=None):
    """Momentum: m_t = decay * m_{t-1} + g_t; the update is m_t (heavy ball).

    With ``ema=True`` the moment is an exponential moving average,
    m_t = decay * m_{t-1} + (1 - decay) * g_t, as Adam's first moment.
    With ``nesterov=True`` the update is the look-ahead decay * m_t + g_t
    (with ``ema``: decay * m_t + (1 - decay) * g_t), PyTorch's
    ``nesterov=True``.  m_0 = 0.  Heavy ball is PyTorch's
    ``SGD(momentum=decay)``; PyTorch's ``dampening`` is not modelled here.
    optax's ``trace`` is the same rule with its state named ``trace``.

    Args:
      decay: the momentum coefficient, in [0, 1).
      ema: average (Adam's m_t) instead of summing (SGD's momentum buffer).
      nesterov: return the Nesterov look-ahead instead of m_t.
      mu_dtype: the dtype m_t is stored in (e.g. ``jnp.bfloat16`` to halve its
        memory); None stores it in each parameter's dtype.  The arithmetic
        runs in at least float32 either way; with a ``mu_dtype`` the update
        uses m_t as stored, so a donated step needs no float32 copy of it.

    Returns:
      A transform with state ``MomentumState(mu)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.scale_by_momentum(0.9)
      >>> u, state = tx.update(jnp.array([1.0]), tx.init(jnp.zeros(1)))
      >>> tx.update(jnp.array([1.0]), state)[0]
      Array([1.9], dtype=float32)

    References: Polyak, "Some methods of speeding up the convergence of
    iteration methods", 1964; Sutskever, Martens, Dahl, Hinton, "On the
    importance of initialization and momentum in deep learning", ICML 2013.
    """
    return _momentum_transform("scale_by_momentum", decay, ema, nesterov, mu_dtype)


def trace(decay, nesterov: bool = False, accumulator_dtype=None):
    """optax's heavy-ball momentum: m_t = decay * m_{t-1} + g_t; the update is m_t.

    With ``nesterov`` the update is decay * m_t + g_t.  The same rule as
    ``scale_by_momentum(decay, nesterov=nesterov)``, under optax's name,
    keywords and state (``TraceState(trace)``), so optax code that reads
    ``state.trace`` keeps working.  ``sgd(momentum=...)`` uses it.

    Args:
      decay: the momentum coefficient, in [0, 1] (1: the running sum of
        the gradients, which optax accepts too).
      nesterov: return the Nesterov look-ahead.
      accumulator_dtype: the dtype m_t is stored in; None: each parameter's.

    Returns:
      A transform with state ``TraceState(trace)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.trace(0.5, nesterov=True)
      >>> tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))[0]
      Array([3.], dtype=float32)
    """
    return _momentum_transform(
        "trace",
        decay,
        False,
        nesterov,
        accumulator_dtype,
        state_type=TraceState,
        dtype_name="accumulator_dtype",
        allow_sum=True,
    )


class BiasCorrectionState(NamedTuple):
    """count: t, the number of steps taken."""

    count: jax.Array


@transform
def bias_correction(decay=0.9):
    """Undo the zero start of an average: u_t = u_t / (1 - decay^t).

    Placed after ``scale_by_momentum(decay, ema=True)`` it turns m_t into
    Adam's m_hat_t.  t counts from 1 at the first step.

    Args:
      decay: the decay of the moving average being corrected, in [0, 1).

    Returns:
      A transform with state ``BiasCorrectionState(count)``.

    Reference: Kingma, Ba, "Adam: A Method for Stochastic Optimization",
    2014, arXiv:1412.6980, section 3.
    """
    check_range("bias_correction", "decay", decay, 0, 1, high_open=True)

    def init(params):
        return BiasCorrectionState(count=new_count())

    def update(updates, state, params=None, **extra):
        check_state("bias_correction", state, BiasCorrectionState)
        count = increment(state.count)
        correct = debiaser(decay, count)
        out = jax.tree.map(lambda u: cast(correct(u), u.dtype), updates)
        return out, BiasCorrectionState(count=count)

    return init, update


class NadamMomentumState(NamedTuple):
    """count: t; mu: the first moment m_t; b1_product: B_t = b1_1 * ... * b1_t."""

    count: jax.Array
    mu: object
    b1_product: jax.Array


def _widest_real_dtype(params):
    """The widest real compute dtype among the leaves (float32 if there are none)."""
    dtypes = [real_compute_dtype(jnp.result_type(p)) for p in jax.tree.leaves(params)]
    return max(dtypes, key=lambda d: d.itemsize, default=jnp.dtype(jnp.float32))


@transform
def scale_by_nadam_momentum(b1=0.9, momentum_decay: float | None = 4e-3, *, mu_dtype=None):
    """NAdam's first moment, with Dozat's warming momentum schedule.

    b1_t = b1 * (1 - 0.5 * 0.96^(t * momentum_decay)),   B_t = b1_1 * b1_2 * ... * b1_t,
    m_t = b1 * m_{t-1} + (1 - b1) * g_t,
    u_t = (1 - b1_t) / (1 - B_t) * g_t + b1_{t+1} / (1 - B_{t+1}) * m_t,

    with t = 1 at the first step and m_0 = 0.  The moment itself averages
    with the constant b1; the schedule only weighs the Nesterov look-ahead.
    Follow it with ``scale_by_rms(b2, eps, bias_correction=True)`` for NAdam.
    PyTorch's ``NAdam`` uses momentum_decay = 4e-3 (its default); Keras's
    ``Nadam`` uses 0.96^t, that is momentum_decay = 1; optax's ``nadam``
    (``adam(nesterov=True)``) keeps b1 constant: ``momentum_decay=None``,
    where b1_t = b1 and B_t = b1^t.

    Args:
      b1: the decay of the first moment, in [0, 1).
      momentum_decay: psi, how fast b1_t rises from about b1 / 2 towards b1,
        >= 0; None keeps b1_t = b1.
      mu_dtype: the dtype m_t is stored in; None: each parameter's dtype.

    Returns:
      A transform with state ``NadamMomentumState(count, mu, b1_product)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.precondition(gradtx.scale_by_nadam_momentum(0.9),
      ...                           by=gradtx.scale_by_rms(0.999, 1e-8, eps_in_sqrt=False,
      ...                                                  bias_correction=True))
      >>> updates, state = opt.update(jnp.array([1.0, -2.0]), opt.init(jnp.zeros(2)))
      >>> updates
      Array([ 1.056445, -1.056445], dtype=float32)

    Reference: Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016
    workshop.
    """
    owner = "scale_by_nadam_momentum"
    check_range(owner, "b1", b1, 0, 1, high_open=True)
    if momentum_decay is not None:
        check_range(owner, "momentum_decay", momentum_decay, 0)
    mu_dtype = check_state_dtype(owner, "mu_dtype", mu_dtype)

    def schedule(t):
        return b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))

    def init(params):
        return NadamMomentumState(
            count=new_count(),
            mu=moment_zeros(params, mu_dtype),
            b1_product=jnp.ones((), _widest_real_dtype(params)),
        )

    def update(updates, state, params=None, **extra):
        moment_state(owner, state, NadamMomentumState, updates, state.mu)
        count = increment(state.count)
        t = count.astype(state.b1_product.dtype)
        if momentum_decay is None:
            b1_t = b1_next = b1
            product = jnp.asarray(b1, t.dtype) ** t
            product_next = jnp.asarray(b1, t.dtype) ** (t + 1)
        else:
            b1_t, b1_next = schedule(t), schedule(t + 1)
            product = state.b1_product * b1_t
            product_next = product * b1_next
        new_mu = jax.tree.map(lambda m, g: moving_average(m, g, b1), state.mu, updates)

        def nesterov(m, g):
            cd = compute_dtype(m.dtype, g.dtype)
            real = real_compute_dtype(cd)
            c_g = ((1 - b1_t) / (1 - product)).astype(real)
            c_m = (b1_next / (1 - product_next)).astype(real)
            return (c_g * g.astype(cd) + c_m * m).astype(g.dtype)

        out = jax.tree.map(nesterov, new_mu, updates)
        stored = store(new_mu, state.mu, count)
        return out, NadamMomentumState(count=count, mu=stored, b1_product=product)

    return init, update
