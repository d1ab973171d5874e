"""accumulate_gradients, apply_if_finite and zero_nans against direct loops and optax."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import assert_close, instantiate, optimizers, trees

import gradtx

PARAMS = {"w": jnp.array([[0.5, -1.0], [2.0, 0.1]]), "b": jnp.array([0.3])}


def _grad(t):
    r = np.random.default_rng(100 + t)
    return jax.tree.map(lambda p: jnp.asarray(r.normal(size=p.shape), jnp.float32), PARAMS)


def _equal(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


# --- accumulate_gradients --------------------------------------------------------


def test_accumulate_gradients_kth_call_equals_one_step_on_mean_gradient():
    k = 3
    opt = gradtx.accumulate_gradients(gradtx.adam(0.1), every_k=k)
    ref = gradtx.adam(0.1)
    step, ref_step = jax.jit(opt.update), jax.jit(ref.update)
    params, ref_params = PARAMS, PARAMS
    state, ref_state = opt.init(PARAMS), ref.init(PARAMS)
    for cycle in range(2):
        grads = [_grad(cycle * k + j) for j in range(k)]
        for j, g in enumerate(grads):
            before = state.inner_state
            u, state = step(g, state, params)
            if j < k - 1:
                _equal(u, jax.tree.map(jnp.zeros_like, PARAMS))
                _equal(state.inner_state, before)  # inner state untouched
            params = gradtx.apply_updates(params, u)
        mean = jax.tree.map(lambda *xs: sum(xs) / k, *grads)
        ref_u, ref_state = ref_step(mean, ref_state, ref_params)
        ref_params = gradtx.apply_updates(ref_params, ref_u)
        chex.assert_trees_all_close(u, ref_u, atol=1e-6)
        chex.assert_trees_all_close(state.inner_state, ref_state, atol=1e-6)
        assert int(state.mini_step) == 0
    chex.assert_trees_all_close(params, ref_params, atol=1e-6)


def test_accumulate_gradients_matches_optax_multisteps():
    k = 2
    ours = gradtx.accumulate_gradients(gradtx.sgd(0.1, momentum=0.9), every_k=k)
    theirs = optax.MultiSteps(optax.sgd(0.1, momentum=0.9), every_k_schedule=k)
    s1, s2 = ours.init(PARAMS), theirs.init(PARAMS)
    step1, step2 = jax.jit(ours.update), jax.jit(theirs.update)
    for t in range(4):
        u1, s1 = step1(_grad(t), s1, PARAMS)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes dtypes internally
            u2, s2 = step2(_grad(t), s2, PARAMS)
        chex.assert_trees_all_close(u1, u2, atol=1e-6)


def test_accumulate_gradients_forwards_the_loss_to_polyak_sgd():
    # optax.MultiSteps(optax.polyak_sgd(...)) forwards value= as well; compare on the
    # k-th call, where the inner step runs on the mean gradient.
    k, loss = 2, jnp.array(3.0)
    ours = gradtx.accumulate_gradients(gradtx.polyak_sgd(max_learning_rate=0.5), every_k=k)
    theirs = optax.MultiSteps(optax.polyak_sgd(max_learning_rate=0.5), every_k_schedule=k)
    s1, s2 = ours.init(PARAMS), theirs.init(PARAMS)
    for t in range(2 * k):
        u1, s1 = jax.jit(ours.update)(_grad(t), s1, PARAMS, value=loss)
        with jax.numpy_dtype_promotion("standard"):
            u2, s2 = jax.jit(theirs.update)(_grad(t), s2, PARAMS, value=loss)
        chex.assert_trees_all_close(u1, u2, rtol=1e-6)
    assert float(jnp.abs(u1["w"]).sum()) > 0  # the k-th call stepped


def test_accumulate_gradients_keeps_one_float32_buffer():
    params = {"w": jnp.ones((4, 3), jnp.bfloat16), "b": jnp.ones(3, jnp.bfloat16)}
    opt = gradtx.accumulate_gradients(gradtx.sgd(0.1), every_k=4)
    state = opt.init(params)
    assert jax.tree.structure(state.grad_sum) == jax.tree.structure(params)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.grad_sum))
    # state = mini_step + one buffer + the inner state (sgd's learning-rate count)
    assert len(jax.tree.leaves(state)) == 1 + 2 + len(jax.tree.leaves(state.inner_state))
    u, state = opt.update(jax.tree.map(jnp.ones_like, params), state, params)
    assert u["w"].dtype == jnp.bfloat16


def test_accumulate_gradients_under_vmap_matches_loop():
    opt = gradtx.accumulate_gradients(gradtx.adam(0.1), every_k=2)
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), _grad(0), _grad(1), _grad(2))

    def two_calls(g):
        state = opt.init(PARAMS)
        _, state = opt.update(g, state, PARAMS)
        return opt.update(jax.tree.map(lambda x: 2 * x, g), state, PARAMS)[0]

    got = jax.jit(jax.vmap(two_calls))(batch)
    loop = jax.jit(two_calls)
    for i in range(3):
        one = jax.tree.map(lambda x: x[i], batch)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], got), loop(one), atol=1e-6)


@pytest.mark.parametrize("every_k", [0, 2.0, True])
def test_accumulate_gradients_bad_every_k_raises(every_k):
    with pytest.raises(
        ValueError, match=f"accumulate_gradients: every_k must be an int >= 1, got {every_k}"
    ):
        gradtx.accumulate_gradients(gradtx.sgd(0.1), every_k)


def test_accumulate_gradients_not_a_transform_raises():
    with pytest.raises(
        TypeError, match="accumulate_gradients: inner must be a gradient transformation"
    ):
        gradtx.accumulate_gradients(0.1, 2)


# --- apply_if_finite -------------------------------------------------------------

BAD = {1: np.nan, 3: np.inf, 4: -np.inf}


def _maybe_bad(t):
    g = _grad(t)
    if t in BAD:
        g = {"w": g["w"].at[0, 1].set(BAD[t]), "b": g["b"]}
    return g


def test_apply_if_finite_skips_and_counts_bad_steps():
    opt = gradtx.apply_if_finite(gradtx.adam(0.1), max_consecutive_errors=3)
    ref = gradtx.adam(0.1)
    step, ref_step = jax.jit(opt.update), jax.jit(ref.update)
    params, ref_params = PARAMS, PARAMS
    state, ref_state = opt.init(PARAMS), ref.init(PARAMS)
    consecutive, total = [], []
    for t in range(6):
        before = state.inner_state
        u, state = step(_maybe_bad(t), state, params)
        params = gradtx.apply_updates(params, u)
        consecutive.append(int(state.notfinite_count))
        total.append(int(state.total_notfinite))
        assert bool(state.last_finite) == (t not in BAD)
        if t in BAD:
            _equal(u, jax.tree.map(jnp.zeros_like, PARAMS))
            _equal(state.inner_state, before)
        else:
            ref_u, ref_state = ref_step(_grad(t), ref_state, ref_params)
            ref_params = gradtx.apply_updates(ref_params, ref_u)
    assert consecutive == [0, 1, 0, 1, 2, 0]
    assert total == [0, 1, 1, 2, 3, 3]
    chex.assert_trees_all_close(params, ref_params, atol=1e-6)
    chex.assert_trees_all_close(state.inner_state, ref_state, atol=1e-6)


def test_apply_if_finite_too_many_bad_steps_raises_eagerly():
    opt = gradtx.apply_if_finite(gradtx.sgd(0.1), max_consecutive_errors=2)
    nan = {"w": jnp.full((2, 2), jnp.nan), "b": jnp.ones(1)}
    state = opt.init(PARAMS)
    for _ in range(2):
        _, state = opt.update(nan, state, PARAMS)
    with pytest.raises(
        FloatingPointError,
        match="apply_if_finite: 3 consecutive steps had a non-finite .* max_consecutive_errors=2",
    ):
        opt.update(nan, state, PARAMS)


def test_apply_if_finite_too_many_bad_steps_raises_under_jit():
    opt = gradtx.apply_if_finite(gradtx.sgd(0.1), max_consecutive_errors=1)
    step = jax.jit(opt.update)
    nan = {"w": jnp.full((2, 2), jnp.nan), "b": jnp.ones(1)}
    u, state = step(nan, opt.init(PARAMS), PARAMS)
    assert int(state.notfinite_count) == 1
    with pytest.raises(jax.errors.JaxRuntimeError, match="apply_if_finite: 2 consecutive steps"):
        jax.block_until_ready(step(nan, state, PARAMS))


def test_apply_if_finite_without_limit_skips_forever():
    opt = gradtx.apply_if_finite(gradtx.sgd(0.1), max_consecutive_errors=None)
    nan = {"w": jnp.full((2, 2), jnp.nan), "b": jnp.ones(1)}
    state = opt.init(PARAMS)
    for _ in range(3):
        u, state = opt.update(nan, state, PARAMS)
    assert int(state.notfinite_count) == 3 and int(state.total_notfinite) == 3
    _equal(u, jax.tree.map(jnp.zeros_like, PARAMS))


def test_apply_if_finite_under_vmap_skips_only_bad_members():
    opt = gradtx.apply_if_finite(gradtx.adam(0.1), max_consecutive_errors=5)
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), _grad(0), _maybe_bad(1))
    u, state = jax.jit(jax.vmap(lambda g: opt.update(g, opt.init(PARAMS), PARAMS)))(batch)
    ref = gradtx.adam(0.1)
    chex.assert_trees_all_close(
        jax.tree.map(lambda x: x[0], u),
        ref.update(_grad(0), ref.init(PARAMS), PARAMS)[0],
        atol=1e-6,
    )
    _equal(jax.tree.map(lambda x: x[1], u), jax.tree.map(jnp.zeros_like, PARAMS))
    np.testing.assert_array_equal(np.asarray(state.notfinite_count), [0, 1])


def test_apply_if_finite_bad_arguments_raise():
    with pytest.raises(
        ValueError, match="apply_if_finite: max_consecutive_errors must be an int >= 0, got -1"
    ):
        gradtx.apply_if_finite(gradtx.sgd(0.1), -1)
    with pytest.raises(TypeError, match="apply_if_finite: inner must be a gradient transformation"):
        gradtx.apply_if_finite(None, 1)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_apply_if_finite_spike_overflowing_state_is_skipped(jit):
    params = {"w": jnp.array([1.0, 1.0])}
    spike = {"w": jnp.array([1e20, 1.0])}  # finite, but 1e40 overflows float32
    normal = {"w": jnp.array([1.0, 1.0])}
    opt = gradtx.apply_if_finite(gradtx.adam(0.1))
    state = opt.init(params)
    update = jax.jit(opt.update) if jit else opt.update
    updates, after_spike = update(spike, state, params)
    np.testing.assert_array_equal(updates["w"], [0.0, 0.0])
    assert int(after_spike.notfinite_count) == 1 and not bool(after_spike.last_finite)
    for a, b in zip(jax.tree.leaves(after_spike.inner_state), jax.tree.leaves(state.inner_state)):
        np.testing.assert_array_equal(a, b)  # the inner state is unchanged
    updates, later = update(normal, after_spike, params)
    assert bool(later.last_finite)
    np.testing.assert_allclose(updates["w"], [-0.1, -0.1], rtol=1e-5)  # not frozen


def test_apply_if_finite_nan_gradient_still_skipped_and_counted():
    params = {"w": jnp.array([1.0])}
    opt = gradtx.apply_if_finite(gradtx.adam(0.1), max_consecutive_errors=1)
    state = opt.init(params)
    _, state = opt.update({"w": jnp.array([jnp.nan])}, state, params)
    assert int(state.total_notfinite) == 1
    with pytest.raises(
        FloatingPointError,
        match=r"2 consecutive steps had a non-finite \(NaN or "
        r"inf\) gradient, update or optimizer state",
    ):
        opt.update({"w": jnp.array([1e20])}, state, params)


# --- zero_nans ---------------------------------------------------------------------


def test_zero_nans_matches_closed_form():
    g = {
        "r": np.array([1.0, np.nan, np.inf, -2.0]),
        "c": np.array([1 + 1j, complex(np.nan, 1.0), complex(2.0, np.nan)]),
        "ok": np.array([0.5]),
    }
    tx = gradtx.zero_nans()
    jg = {
        "r": jnp.asarray(g["r"], jnp.float32),
        "c": jnp.asarray(g["c"], jnp.complex64),
        "ok": jnp.asarray(g["ok"], jnp.float32),
    }
    u, state = jax.jit(tx.update)(jg, tx.init(jg))
    for k, x in g.items():
        np.testing.assert_array_equal(np.asarray(u[k]), np.where(np.isnan(x), 0, x))
        assert bool(state.found_nan[k]) == bool(np.isnan(x).any())


# ----------------------------------------------------------------------------
# apply_if_finite, property-based: for a random optimizer, random tree and a random
# sequence of gradients in which some steps carry a NaN, +inf or -inf (never
# max_consecutive_errors or more such steps in a row, so every one of them must be
# skipped), the wrapped run ends at the same parameters as the inner optimizer run on
# the finite gradients alone, every skipped step's update is zero, and every
# floating-point leaf of the wrapper's state stays finite.


def _poison(grads, kind, seed):
    """``grads`` with one element of one non-empty leaf set to NaN/inf; None if none is."""
    leaves, treedef = jax.tree.flatten(grads)
    sizable = [i for i, leaf in enumerate(leaves) if leaf.size > 0]
    if not sizable:
        return None
    rng = np.random.default_rng(seed)
    i = sizable[rng.integers(len(sizable))]
    flat = np.array(leaves[i]).reshape(-1)
    flat[rng.integers(flat.size)] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[kind]
    leaves[i] = jnp.asarray(flat.reshape(leaves[i].shape), leaves[i].dtype)
    return jax.tree.unflatten(treedef, leaves)


@st.composite
def schedules(draw):
    """(max_consecutive_errors, kinds): runs of bad steps shorter than the maximum."""
    max_errors = draw(st.integers(2, 4))
    kinds, run = [], 0
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["ok", "nan", "inf", "-inf"]))
        if kind != "ok" and run + 1 >= max_errors:
            kind = "ok"
        run = run + 1 if kind != "ok" else 0
        kinds.append(kind)
    return max_errors, kinds


@settings(max_examples=25, deadline=None)
@given(optimizers(), trees(), st.integers(0, 2**16), schedules())
def test_apply_if_finite_nonfinite_gradients_never_poison_state(opt, spec, seed, schedule):
    max_errors, kinds = schedule
    wrapped = gradtx.apply_if_finite(opt, max_errors)
    params = ref_params = instantiate(spec, seed)
    state, ref_state = wrapped.init(params), opt.init(params)
    for step, kind in enumerate(kinds):
        grads = instantiate(spec, seed + 1 + step)
        bad = None if kind == "ok" else _poison(grads, kind, seed + step)
        updates, state = wrapped.update(grads if bad is None else bad, state, params)
        params = gradtx.apply_updates(params, updates)
        if bad is None:
            ref_updates, ref_state = opt.update(grads, ref_state, ref_params)
            ref_params = gradtx.apply_updates(ref_params, ref_updates)
        else:
            for u in jax.tree.leaves(updates):
                assert not np.any(np.asarray(u)), (kind, u)
        for leaf in jax.tree.leaves(state):
            if jnp.issubdtype(leaf.dtype, jnp.inexact):
                assert np.all(np.isfinite(np.asarray(leaf, np.complex128))), (kind, leaf)
    assert_close(params, ref_params)
