"""The numerics shared by the transforms: a step counter that saturates at the int32 maximum
instead of wrapping, ``cond`` (the chosen branch alone when eager, ``lax.cond`` under any
transformation), and low precision (f16/bf16) at step 1 and step 10^6."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import gradtx
from gradtx._numerics import cond, increment

INT32_MAX = np.iinfo(np.int32).max


def test_increment_saturates_at_int32_max():
    for start, want in [(0, 1), (INT32_MAX - 1, INT32_MAX), (INT32_MAX, INT32_MAX)]:
        count = jnp.asarray(start, jnp.int32)
        for got in (increment(count), jax.jit(increment)(count)):
            assert got.dtype == jnp.int32 and int(got) == want


def _signature(tree):
    return jax.tree.structure(tree), [
        (np.shape(x), jnp.result_type(x), getattr(x, "weak_type", None), type(x))
        for x in jax.tree.leaves(tree)
    ]


def _logging_branches(ran):
    """Two branches that record their runs; outputs of every kind lax.cond turns into arrays."""

    def true_fn(x):
        ran.append(True)
        return {"x": x + 1.0, "int": 2, "float": 0.5, "numpy": np.ones(2, np.float32)}

    def false_fn(x):
        ran.append(False)
        return {"x": x - 1.0, "int": 3, "float": 1.5, "numpy": np.zeros(2, np.float32)}

    return true_fn, false_fn


@pytest.mark.parametrize("pred", [True, False])
def test_cond_eager_runs_chosen_branch_only_and_returns_what_lax_cond_returns(pred):
    ran = []
    x = jnp.arange(3.0)
    got = cond(jnp.asarray(pred), *_logging_branches(ran), x)
    assert ran == [pred]
    want = lax.cond(pred, *_logging_branches([]), x)
    assert _signature(got) == _signature(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("transform", ["jit", "vmap", "grad"])
def test_cond_with_concrete_pred_under_transformation_is_lax_cond(transform):
    # The branches close over a tracer while the predicate is concrete: lax.cond traces
    # both, and the traced program is lax.cond's.
    def program(select):
        def f(x):
            return jnp.sum(select(True, lambda: x * 2.0, lambda: x + 1.0))

        return {"jit": f, "vmap": jax.vmap(f), "grad": jax.grad(f)}[transform]

    x = jnp.arange(3.0) if transform != "vmap" else jnp.ones((2, 3))
    got = jax.make_jaxpr(program(cond))(x)
    assert str(got) == str(jax.make_jaxpr(program(lax.cond))(x))
    assert "cond[" in str(got)
    ran = []  # and outside make_jaxpr: vmap and grad alone trace both branches too
    if transform != "jit":
        wrapped = {"vmap": jax.vmap, "grad": jax.grad}[transform]
        wrapped(lambda x: jnp.sum(cond(True, *_logging_branches(ran), x)["x"]))(x)
        assert ran == [True, False]


def test_cond_branches_of_different_shapes_raise_under_jit():
    def two_shapes(x, pred):
        return cond(pred, lambda: x * jnp.zeros(2), lambda: x * jnp.zeros(3))

    for pred in (lambda x: x > 0, lambda x: True):  # traced, and concrete under jit
        with pytest.raises(TypeError, match="branches must have equal output types"):
            jax.jit(lambda x: two_shapes(x, pred(x)))(1.0)


# ----------------------------------------------------------------------------
# Low precision and long runs: f16/bf16 at step 1 and step 10^6, and optimizers'
# counters near the int32 maximum.


LR = 1e-3

OPTIMIZERS = {
    "adam": lambda: gradtx.adam(LR),
    "adamw": lambda: gradtx.adamw(LR, weight_decay=0.1),
    "amsgrad": lambda: gradtx.amsgrad(LR),
    "rmsprop": lambda: gradtx.rmsprop(LR),
    "rmsprop_centered_momentum": lambda: gradtx.rmsprop(
        LR, centered=True, momentum=0.9, eps_in_sqrt=False
    ),
    "adagrad": lambda: gradtx.adagrad(LR, initial_accumulator_value=0.0),
    "adadelta": lambda: gradtx.adadelta(),
    "sgd_nesterov": lambda: gradtx.sgd(LR, momentum=0.9, nesterov=True),
}


def _grads(dtype):
    """Gradients from zero through the smallest subnormal to 100, both signs.

    |g| stays below 256 so that g^2 fits float16 (see the report: larger
    float16 gradients overflow the stored second moment)."""
    tiny = float(jnp.finfo(dtype).smallest_subnormal)
    mags = np.array([0.0, tiny, 1e-7, 1e-5, 1e-3, 0.1, 1.0, 100.0])
    return {"w": jnp.asarray(np.concatenate([mags, -mags]), dtype), "s": jnp.asarray(3e-6, dtype)}


def _params(dtype):
    return {"w": jnp.ones(16, dtype), "s": jnp.asarray(-0.5, dtype)}


def _with_counts(state, value):
    """``state`` with every ``count`` field set to ``value``."""

    def set_count(path, leaf):
        if path and getattr(path[-1], "name", None) == "count":
            return jnp.full_like(leaf, value)
        return leaf

    return jax.tree_util.tree_map_with_path(set_count, state)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_low_precision_steps_one_and_one_million_stay_finite(name, dtype):
    opt = OPTIMIZERS[name]()
    params, grads = _params(dtype), _grads(dtype)
    updates, state = opt.update(grads, opt.init(params), params)
    chex.assert_tree_all_finite((updates, state, gradtx.apply_updates(params, updates)))
    late = _with_counts(state, 10**6 - 1)  # the next step is t = 10^6
    updates, late = opt.update(grads, late, params)
    chex.assert_tree_all_finite((updates, late, gradtx.apply_updates(params, updates)))
    for path, leaf in jax.tree_util.tree_flatten_with_path(late)[0]:
        if getattr(path[-1], "name", None) == "count":
            assert int(leaf) == 10**6


def _adam_closed_form(g, m, v, t, b1=0.9, b2=0.999, eps=1e-8):
    """Adam's step in float64 from the stored moments (Kingma & Ba, Algorithm 1)."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return -LR * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)


def _assert_adam_close(updates, want, m, dtype):
    """Exact to the dtype where the first moment m is a normal number of ``dtype``.

    Moments are stored in the parameter's dtype (as in optax and PyTorch), so
    where m itself is subnormal it keeps only a few bits; there we ask for a
    finite step in the descent direction."""
    got = np.asarray(updates, np.float64)
    normal = np.abs(m) >= float(jnp.finfo(dtype).tiny)
    tol = 2 * float(jnp.finfo(dtype).eps)
    np.testing.assert_allclose(got[normal], want[normal], rtol=tol, atol=0)
    assert np.all(np.isfinite(got)) and np.all(got * want >= 0)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16], ids=["f16", "bf16"])
def test_adam_low_precision_matches_float64_at_steps_one_and_one_million(dtype):
    opt = gradtx.adam(LR)
    params, grads = _params(dtype), _grads(dtype)
    g = np.asarray(grads["w"], np.float64)
    updates, state = opt.update(grads, opt.init(params), params)
    # eps = 1e-8 is below float16's smallest subnormal; it must not vanish or blow up.
    _assert_adam_close(updates["w"], _adam_closed_form(g, 0.0, 0.0, 1), 0.1 * g, dtype)
    assert np.count_nonzero(np.abs(0.1 * g) >= float(jnp.finfo(dtype).tiny)) >= 8

    late = _with_counts(state, 10**6 - 1)
    m = np.asarray(gradtx.tree_get(late, "mu['w']"), np.float64)
    v = np.asarray(gradtx.tree_get(late, "nu['w']"), np.float64)
    updates, _ = opt.update(grads, late, params)
    _assert_adam_close(updates["w"], _adam_closed_form(g, m, v, 10**6), 0.9 * m + 0.1 * g, dtype)


@pytest.mark.parametrize("name", ["adam", "amsgrad", "sgd_schedule"])
def test_optimizer_count_near_int32_max_saturates(name):
    def schedule(t):  # NaN if the count ever wrapped to a negative number
        return jnp.where(t >= 0, 0.1, jnp.nan)

    opt = {
        "adam": gradtx.adam(schedule),
        "amsgrad": gradtx.amsgrad(LR),
        "sgd_schedule": gradtx.sgd(schedule, momentum=0.5),
    }[name]
    params = {"w": jnp.array([1.0, -2.0], jnp.bfloat16)}
    grads = {"w": jnp.array([0.5, -0.25], jnp.bfloat16)}
    state = _with_counts(opt.init(params), INT32_MAX - 2)
    step = jax.jit(opt.update)
    for _ in range(4):
        updates, state = step(grads, state, params)
        chex.assert_tree_all_finite(updates)
        params = gradtx.apply_updates(params, updates)
    counts = [
        leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]
        if getattr(path[-1], "name", None) == "count"
    ]
    assert counts and all(int(c) == INT32_MAX and c.dtype == jnp.int32 for c in counts)
    chex.assert_tree_all_finite(params)
