"""Step wrappers: decide, step by step, whether the inner optimizer runs.

``accumulate_gradients`` runs it once every k calls, on the mean gradient;
``apply_if_finite`` runs it only when the gradient is finite.  Both decide
with ``lax.cond`` on traced values, so they work under ``jit``, ``vmap``
(where the condition becomes a select) and ``scan``; on a call that does not
run the inner transform they return a zero update and leave its state as it
was.  ``zero_nans`` is a plain transform that replaces NaN entries by 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ._base import GradientTransformation, update_fn
from ._checks import check_float_leaves, check_state, check_state_dtype, check_transformation
from ._numerics import compute_dtype, increment, is_traced, new_count
from ._recipe import transform
from ._tree import check_same_structure
from ._typing import TransformLike


def check_int(owner, name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")


def _like(new, old):
    """``new`` cast leaf by leaf to the dtypes of ``old`` (the branches of a cond must agree)."""
    return jax.tree.map(lambda n, o: jnp.asarray(n).astype(jnp.result_type(o)), new, old)


def _run_or_skip(run, step, updates, inner_state, on_skip=None):
    """``step()`` where ``run``, else (zero update, unchanged inner state).

    ``step() -> (updates, inner_state)`` runs the inner transform; its
    outputs are cast to the dtypes of the inputs.  ``on_skip`` is called
    (for its side effects) in the skipping branch only.
    """

    def go():
        out, state = step()
        return _like(out, updates), _like(state, inner_state)

    def skip():
        if on_skip is not None:
            on_skip()
        return jax.tree.map(jnp.zeros_like, updates), inner_state

    if not is_traced(run):
        return go() if bool(run) else skip()
    return lax.cond(run, go, skip)


# ----------------------------------------------------------------------------
# Gradient accumulation


def _check_accumulator(owner, state, state_type, field, updates):
    """Check an accumulating wrapper's state, and the gradient against the accumulator
    ``state.<field>``."""
    check_state(owner, state, state_type)
    check_float_leaves(owner, updates, "gradient")
    check_same_structure(
        owner,
        getattr(state, field),
        updates,
        "the accumulator",
        "updates",
        hint="was the state made by init on other params?",
    )


class AccumulationState(NamedTuple):
    """mini_step: micro-batches summed since the last step (0 .. k-1);
    grad_sum: their sum, one buffer in at least float32; inner_state."""

    mini_step: jax.Array
    grad_sum: Any
    inner_state: Any


@transform
def accumulate_gradients(inner: TransformLike, every_k: int):
    """Gradient accumulation: one step of T on g_bar = (1/k) * sum_{j=1..k} g_j every k calls.

    Calls 1 .. k-1 of every cycle add their gradient to a single buffer and
    return a zero update, leaving T's state as it was; call k returns
    T(g_bar), the update of one step of T on the mean gradient of the k
    micro-batches, and empties the buffer.  This is optax's ``MultiSteps``
    (with ``use_grad_mean=True``) and the ``loss / k`` + ``backward`` loop of
    PyTorch.  The buffer is kept in at least float32, so bf16 gradients
    accumulate without loss.

    ``accumulate_gradients`` averages its input and hands the mean to T:
    wrap a whole optimizer with it.  ``state.mini_step == 0`` after a call that stepped.
    ``apply_if_finite(accumulate_gradients(T, k))`` drops a non-finite
    micro-batch without counting it towards the k.

    Args:
      inner: T, the optimizer to run on the mean gradient (gradtx or optax).
      every_k: k, the number of micro-batches per step, an int >= 1.

    Returns:
      A transform with state ``AccumulationState(mini_step, grad_sum, inner_state)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.accumulate_gradients(gradtx.sgd(1.0), every_k=2)
      >>> params = {"w": jnp.array([0.0])}
      >>> state = opt.init(params)
      >>> u1, state = opt.update({"w": jnp.array([1.0])}, state, params)
      >>> u2, state = opt.update({"w": jnp.array([3.0])}, state, params)
      >>> u1["w"], u2["w"]
      (Array([0.], dtype=float32), Array([-2.], dtype=float32))
    """
    owner = "accumulate_gradients"
    check_transformation(owner, "inner", inner)
    check_int(owner, "every_k", every_k, 1)
    inner_update = update_fn(inner)

    def init(params):
        grad_sum = jax.tree.map(
            lambda p: jnp.zeros(jnp.shape(p), compute_dtype(jnp.result_type(p))), params
        )
        return AccumulationState(new_count(), grad_sum, inner.init(params))

    def update(updates, state, params=None, **extra):
        _check_accumulator(owner, state, AccumulationState, "grad_sum", updates)
        total = jax.tree.map(lambda s, u: s + u.astype(s.dtype), state.grad_sum, updates)
        last = state.mini_step >= every_k - 1

        def step():
            mean = jax.tree.map(lambda t, u: (t / every_k).astype(u.dtype), total, updates)
            return inner_update(mean, state.inner_state, params, **extra)

        out, inner_state = _run_or_skip(last, step, updates, state.inner_state)
        grad_sum = jax.tree.map(lambda t: jnp.where(last, jnp.zeros_like(t), t), total)
        mini_step = jnp.where(last, jnp.zeros_like(state.mini_step), state.mini_step + 1)
        return out, AccumulationState(mini_step, grad_sum, inner_state)

    return init, update, (inner,)


class MultiStepsState(NamedTuple):
    """mini_step: micro-batches accumulated since the last step (0 .. k-1);
    gradient_step: steps of the inner optimizer so far; inner_opt_state;
    acc_grads: the running mean (or sum) of the micro-batches' gradients;
    skip_state: what ``should_skip_update_fn`` last reported (optax's fields)."""

    mini_step: jax.Array
    gradient_step: jax.Array
    inner_opt_state: Any
    acc_grads: Any
    skip_state: Any = ()


def _never_skip(updates, gradient_step, params):
    return jnp.array(False), ()


class MultiSteps:
    """optax's gradient accumulator: one step of T on the mean of k_s micro-batch gradients.

    a_j = a_{j-1} + (g_j - a_{j-1}) / j  (Welford's running mean; a_j = a_{j-1} + g_j
    with ``use_grad_mean=False``), stored in ``accumulator_dtype``; at
    micro-batch k_s the update is T(a_k) and a restarts from 0, before that
    it is 0 and T's state is unchanged.  k_s = ``every_k_schedule(s)`` may
    vary with the gradient step s.  A micro-batch that
    ``should_skip_update_fn`` rejects changes nothing but ``skip_state``.
    ``accumulate_gradients`` is the plain transform for a constant k.

    Args:
      opt: T, the optimizer to run on the accumulated gradient.
      every_k_schedule: k, an int >= 1, or a function of the gradient step.
      use_grad_mean: average the micro-batch gradients (True) or sum them.
      should_skip_update_fn: ``(updates, gradient_step, params) -> (bool
        scalar, skip_state)``, e.g. ``skip_not_finite``; None: never skip.
      accumulator_dtype: the dtype of the accumulator (float32); None: each
        parameter's dtype.

    Use ``.init``/``.update`` directly or ``.gradient_transformation()``;
    ``has_updated(state)`` says whether the last call stepped T.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.MultiSteps(gradtx.sgd(1.0), every_k_schedule=2)
      >>> state = opt.init(jnp.zeros(1))
      >>> u1, state = opt.update(jnp.array([1.0]), state)
      >>> u2, state = opt.update(jnp.array([3.0]), state)
      >>> u1, u2, bool(opt.has_updated(state))
      (Array([0.], dtype=float32), Array([-2.], dtype=float32), True)
    """

    def __init__(
        self,
        opt: TransformLike,
        every_k_schedule: int | Callable,
        use_grad_mean: bool = True,
        should_skip_update_fn: Callable | None = None,
        accumulator_dtype=jnp.float32,
    ):
        owner = "MultiSteps"
        check_transformation(owner, "opt", opt)
        if callable(every_k_schedule):
            self._every_k_schedule = every_k_schedule
        else:
            check_int(owner, "every_k_schedule", every_k_schedule, 1)
            k = every_k_schedule
            self._every_k_schedule = lambda step: k
        self._opt = opt
        self._opt_update = update_fn(opt)
        self._use_grad_mean = use_grad_mean
        self._should_skip_update_fn = should_skip_update_fn or _never_skip
        self._accumulator_dtype = (
            None
            if accumulator_dtype is None
            else check_state_dtype(owner, "accumulator_dtype", accumulator_dtype)
        )

    @property
    def inner_opt(self):
        """T, the wrapped optimizer."""
        return self._opt

    def _acc_dtype(self, p):
        return jnp.result_type(p) if self._accumulator_dtype is None else self._accumulator_dtype

    def init(self, params) -> MultiStepsState:
        """The state before the first micro-batch: a zero accumulator and T's initial state."""
        gradient_step = jnp.zeros([], jnp.int32)
        zeros = jax.tree.map(jnp.zeros_like, params)
        _, skip_state = self._should_skip_update_fn(zeros, gradient_step, params)
        return MultiStepsState(
            mini_step=jnp.zeros([], jnp.int32),
            gradient_step=gradient_step,
            inner_opt_state=self._opt.init(params),
            acc_grads=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), self._acc_dtype(p)), params),
            skip_state=skip_state,
        )

    def update(self, updates, state, params=None, **extra):
        """Accumulate one micro-batch; step T on the k-th (a zero update before)."""
        owner = "MultiSteps"
        _check_accumulator(owner, state, MultiStepsState, "acc_grads", updates)
        k = self._every_k_schedule(state.gradient_step)
        skip, skip_state = self._should_skip_update_fn(updates, state.gradient_step, params)
        skip = jnp.asarray(skip)
        if (skip.dtype, skip.shape) != (jnp.bool_, ()):
            raise ValueError(
                f"{owner}: should_skip_update_fn must return a boolean scalar, got an "
                f"array of dtype {skip.dtype} and shape {skip.shape}"
            )

        def accumulate(g, a):
            with jax.numpy_dtype_promotion("standard"):
                cd = jnp.promote_types(g.dtype, a.dtype)  # optax's: the wider of the two
            g, a = g.astype(cd), a.astype(cd)
            if self._use_grad_mean:
                return a + (g - a) / (state.mini_step + 1).astype(cd)
            return a + g

        acc = jax.tree.map(accumulate, updates, state.acc_grads)
        emit = state.mini_step == k - 1
        run = jnp.logical_and(jnp.logical_not(skip), emit)

        def step():
            total = jax.tree.map(lambda a, u: a.astype(u.dtype), acc, updates)
            return self._opt_update(total, state.inner_opt_state, params, **extra)

        out, inner_state = _run_or_skip(run, step, updates, state.inner_opt_state)
        acc_grads = jax.tree.map(
            lambda a, old: jnp.where(skip, old, jnp.where(emit, 0, a).astype(old.dtype)),
            acc,
            state.acc_grads,
        )
        mini_step = jnp.where(skip, state.mini_step, increment(state.mini_step) % k)
        gradient_step = jnp.where(run, increment(state.gradient_step), state.gradient_step)
        new_state = MultiStepsState(
            mini_step=mini_step.astype(state.mini_step.dtype),
            gradient_step=gradient_step,
            inner_opt_state=inner_state,
            acc_grads=acc_grads,
            skip_state=skip_state,
        )
        return out, new_state

    def has_updated(self, state) -> jax.Array:
        """Whether the call that returned ``state`` stepped T."""
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    def gradient_transformation(self) -> GradientTransformation:
        """This accumulator as a ``GradientTransformation``."""
        return GradientTransformation(
            self.init,
            self.update,
            name="MultiSteps",
            children=(self._opt,),
            hyperparams={
                "every_k_schedule": self._every_k_schedule,
                "use_grad_mean": self._use_grad_mean,
            },
        )


# ----------------------------------------------------------------------------
# NaN safety


class ApplyIfFiniteState(NamedTuple):
    """notfinite_count: consecutive non-finite steps (0 after a finite one);
    last_finite: whether the last gradient was finite; total_notfinite: all
    non-finite steps so far; inner_state."""

    notfinite_count: jax.Array
    last_finite: jax.Array
    total_notfinite: jax.Array
    inner_state: Any


def _all_finite(tree):
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    if not leaves:
        return jnp.array(True)
    return jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]).all()


def _too_many_message(count, limit):
    return (
        f"apply_if_finite: {count} consecutive steps had a non-finite (NaN or inf) gradient, "
        f"update or optimizer state, "
        f"more than max_consecutive_errors={limit}; stopping. The parameters and optimizer "
        f"state are those of the last finite step: lower the learning rate, look for an "
        f"overflow in the loss, or restore a checkpoint"
    )


@transform
def apply_if_finite(inner: TransformLike, max_consecutive_errors: int | None = None):
    """Skip non-finite steps: u_t, s_t = T(g_t, s_{t-1}) if g_t, u_t and s_t are all finite,
    else u_t = 0 and s_t = s_{t-1}.

    A step whose gradient, update or new inner state holds a NaN or an inf
    returns a zero update and leaves T's state as it was (a finite gradient
    spike can overflow a second moment to inf, after which every update of
    that element would be 0 for good), so parameters and optimizer state stay those
    of the last finite step; it is counted in the state
    (``notfinite_count``: consecutive, ``total_notfinite``: all) and training
    goes on.

    When more than ``max_consecutive_errors`` steps in a row are non-finite,
    training is stuck (skipping cannot change the parameters that produce the
    bad gradients), so ``update`` raises ``FloatingPointError`` instead of
    skipping again; under ``jit`` it is raised from a host callback and
    reaches the caller as a ``JaxRuntimeError`` carrying the same message.
    Parameters are never given a non-finite update.  optax differs here: its
    ``apply_if_finite`` then applies the bad update, which writes NaN into
    the parameters (and into any checkpoint saved afterwards).  With
    ``max_consecutive_errors=None`` bad steps are skipped forever.

    Args:
      inner: T, the optimizer to protect (gradtx or optax).
      max_consecutive_errors: the number of consecutive non-finite steps
        skipped before raising, an int >= 0, or None to never raise.

    Returns:
      A transform with state ``ApplyIfFiniteState(notfinite_count,
      last_finite, total_notfinite, inner_state)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.apply_if_finite(gradtx.sgd(0.1), max_consecutive_errors=3)
      >>> params = {"w": jnp.array([1.0])}
      >>> u, state = opt.update({"w": jnp.array([jnp.nan])}, opt.init(params), params)
      >>> u["w"], state.notfinite_count
      (Array([0.], dtype=float32), Array(1, dtype=int32))
    """
    owner = "apply_if_finite"
    check_transformation(owner, "inner", inner)
    if max_consecutive_errors is not None:
        check_int(owner, "max_consecutive_errors", max_consecutive_errors, 0)
    inner_update = update_fn(inner)
    limit = max_consecutive_errors

    def init(params):
        return ApplyIfFiniteState(new_count(), jnp.array(True), new_count(), inner.init(params))

    def raise_if_over(count):
        count = int(jnp.max(count))
        if limit is not None and count > limit:
            raise FloatingPointError(_too_many_message(count, limit))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, ApplyIfFiniteState)
        out, inner_state = inner_update(updates, state.inner_state, params, **extra)
        out, inner_state = _like(out, updates), _like(inner_state, state.inner_state)
        # A finite gradient can still overflow the state (a second moment of
        # |g| = 1e20 is inf, and every later update of that element is 0):
        # such a step is as bad as a NaN gradient, and is skipped the same way.
        finite = _all_finite(updates) & _all_finite(out) & _all_finite(inner_state)
        count = jnp.where(
            finite, jnp.zeros_like(state.notfinite_count), increment(state.notfinite_count)
        )
        on_skip: Callable[[], None] | None = None
        if limit is not None:
            if is_traced(count):

                def report_if_over():
                    jax.debug.callback(raise_if_over, count)

                on_skip = report_if_over
            elif int(count) > limit:
                raise FloatingPointError(_too_many_message(int(count), limit))

        def step():
            return out, inner_state

        out, inner_state = _run_or_skip(finite, step, updates, state.inner_state, on_skip)
        total = jnp.where(finite, state.total_notfinite, increment(state.total_notfinite))
        return out, ApplyIfFiniteState(count, finite, total, inner_state)

    return init, update, (inner,)


class ZeroNansState(NamedTuple):
    """found_nan: one bool per leaf, whether this step's update had a NaN there."""

    found_nan: Any


def zero_nans() -> GradientTransformation:
    """Replace NaNs by zeros: u_i = 0 if g_i is NaN, else u_i = g_i.

    A complex entry is NaN when its real or imaginary part is.  Infinities
    pass through; use ``apply_if_finite`` to skip steps that have them.

    Returns:
      A transform with state ``ZeroNansState(found_nan)``, a bool per leaf.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.zero_nans()
      >>> g = {"w": jnp.array([1.0, jnp.nan])}
      >>> u, state = tx.update(g, tx.init(g))
      >>> u["w"], state.found_nan["w"]
      (Array([1., 0.], dtype=float32), Array(True, dtype=bool))
    """
    owner = "zero_nans"

    def init(params):
        return ZeroNansState(jax.tree.map(lambda _: jnp.array(False), params))

    def update(updates, state, params):
        check_state(owner, state, ZeroNansState)
        check_same_structure(
            owner,
            state.found_nan,
            updates,
            "the state",
            "updates",
            hint="was the state made by init on other params?",
        )
        nan = jax.tree.map(jnp.isnan, updates)
        out = jax.tree.map(lambda u, n: jnp.where(n, jnp.zeros_like(u), u), updates, nan)
        return out, ZeroNansState(jax.tree.map(jnp.any, nan))

    return GradientTransformation(init, update, name=owner)
