"""Properties every optimizer shares, driven by one table of all optimizers.

Each row names an optimizer, its factory, typical hyperparameters for the
shared tests and the fewest arguments it needs (its defaults otherwise).
"""

from __future__ import annotations

import functools
import pickle

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizers import IDS, OPTIMIZERS, typical
from strategies import (
    DTYPES,
    assert_close,
    instantiate,
    numpy_leaves,
    optimizers,
    transforms,
    trees,
)
from trees import assert_bitwise_equal

import gradtx

# ----------------------------------------------------------------------------
# A quadratic over a nested dict, in any dtype (constants in that dtype, so
# strict promotion holds).

_RNG = np.random.default_rng(0)
_START = {
    "scalar": np.asarray(_RNG.normal()),
    "vector": _RNG.normal(size=4),
    "nested": {"matrix": _RNG.normal(size=(3, 2)), "cube": _RNG.normal(size=(2, 2, 2))},
}
_CENTRE = jax.tree.map(lambda x: x + 3.0 * np.sign(_RNG.normal(size=np.shape(x))), _START)
_CURVATURE = jax.tree.map(lambda x: _RNG.uniform(0.5, 2.0, size=np.shape(x)), _START)


def start(dtype=jnp.float32):
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), _START)


def quadratic(params, centre, curvature):
    def leaf(p, c, k):
        d = p - jnp.asarray(c, p.dtype)
        total = 0.5 * jnp.sum(jnp.asarray(k, p.dtype) * d * d)
        return total.astype(jnp.float32) if total.dtype == jnp.bfloat16 else total

    return sum(jax.tree.leaves(jax.tree.map(leaf, params, centre, curvature)))


def loss(params):
    return quadratic(params, _CENTRE, _CURVATURE)


_jitted_loss = jax.jit(loss)  # one program for every row's float32 params


def make_step(opt, count=None):
    """The jitted step: gradient, update, apply.  ``count`` collects traces."""

    def step(params, state):
        if count is not None:
            count.append(1)
        value, grad = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grad, state, params, value=value)
        return gradtx.apply_updates(params, updates), state

    return step


@functools.cache
def jitted_step(name):
    """The row's typical optimizer, its jitted step and the list that counts the step's traces.

    One program per row, shared by the tests below.  It donates params and state, as
    a training step does, so a test passes it only what it does not read afterwards.
    """
    row = OPTIMIZERS[IDS.index(name)]
    opt = typical(row)
    traces = []
    return opt, jax.jit(make_step(opt, traces), donate_argnums=(0, 1)), traces


def run(step, params, state, steps):
    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def leaves_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def signature(tree):
    """Structure plus each leaf's shape, dtype and weak type: what jit keys on."""
    leaves = [
        (np.shape(x), jnp.result_type(x), getattr(x, "weak_type", False))
        for x in jax.tree.leaves(tree)
    ]
    return jax.tree.structure(tree), leaves


# ----------------------------------------------------------------------------

DEFAULTS = {row.factory.__name__: row for row in OPTIMIZERS}  # one row per factory

# The losses that must fall step after step, where some steps by design do not
# descend: ADOPT's first step only records its second moment; SAM returns the
# ascent point every other step, so its losses fall from cycle to cycle; DoWG
# grows its step until it overshoots, so only its last loss must be lower.  SOAP's
# first step only sets up its bases; optax's Rprop (and gradtx's under its name)
# leaves the first step at zero.
_DESCENDING = {
    "adopt": lambda losses: losses[1:],
    "soap": lambda losses: losses[1:],
    "rprop": lambda losses: losses[1:],
    "sam_sgd": lambda losses: losses[::2],
    "dowg": lambda losses: [losses[0], losses[-1]],
    "kl_shampoo": lambda losses: losses[1:],
    "kl_soap": lambda losses: losses[1:],
}


@pytest.mark.parametrize("factory_name", list(DEFAULTS))
def test_optimizer_with_defaults_decreases_quadratic(factory_name):
    row = DEFAULTS[factory_name]
    opt = row.factory(**row.required)
    # Donated as jitted_step's: where the defaults are the typical hyperparameters, the
    # persistent compilation cache then serves the same program to the tests below.
    step = jax.jit(make_step(opt), donate_argnums=(0, 1))
    params, state = start(), opt.init(start())
    losses = [float(_jitted_loss(params))]
    for _ in range(20):
        params, state = step(params, state)
        losses.append(float(_jitted_loss(params)))
    # No step goes uphill (optax 0.2.8's adadelta() does), and it gets somewhere.
    descending = _DESCENDING.get(factory_name, lambda losses: losses)(losses)
    assert all(b < a for a, b in zip(descending, descending[1:])), losses
    assert losses[-1] < losses[0] * (1 - 1e-3), losses


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_optimizer_under_jit_matches_eager(row):
    opt, step, _ = jitted_step(row.name)
    eager = make_step(opt)
    jit_params, jit_state = run(step, start(), opt.init(start()), 3)  # donated: own inputs
    eager_params, eager_state = run(eager, start(), opt.init(start()), 3)
    # Eagerly a cond runs only its chosen branch: it must give what the traced cond gives.
    assert signature((eager_params, eager_state)) == signature((jit_params, jit_state))
    jit_leaves = jax.tree.leaves((jit_params, jit_state))
    for a, b in zip(jit_leaves, jax.tree.leaves((eager_params, eager_state))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_optimizer_state_can_be_donated_with_the_params(row):
    # A training step donates params and state; an init that put one array in two
    # places (or kept the params by reference) would fail with "donate the same
    # buffer twice".  Eager and jitted init alike.
    opt, donated, _ = jitted_step(row.name)
    for init in (opt.init, jax.jit(opt.init)):
        params = start()
        state = init(params)
        buffers = [id(x) for x in jax.tree.leaves((params, state)) if isinstance(x, jax.Array)]
        assert len(buffers) == len(set(buffers)), f"{row.name}: a buffer appears twice"
        params, state = run(donated, params, state, 2)
        chex.assert_tree_all_finite(params)


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_optimizer_under_vmap_matches_loop(row):
    opt, step, _ = jitted_step(row.name)
    batch = 3
    offsets = np.linspace(-1.0, 1.0, batch)
    members = [jax.tree.map(lambda x: x + jnp.float32(o), start()) for o in offsets]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *members)
    vstep = jax.jit(jax.vmap(make_step(opt)))
    batched = run(vstep, stacked, jax.vmap(opt.init)(stacked), 4)
    for i, member in enumerate(members):
        alone = run(step, member, opt.init(member), 4)
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(batched)):
            np.testing.assert_allclose(a, np.asarray(b)[i], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_optimizer_state_is_stable_across_steps_and_traces_once(row):
    # The shared step may have been traced already (by another test, on the same
    # signature): at most one trace for the first step, none after it.  A cache hit
    # would hide a retrace that another test already paid for, so what jit keys on,
    # params and state, must keep its signature from step to step.
    opt, step, traces = jitted_step(row.name)
    params, state = start(), opt.init(start())
    first = signature((params, state))
    before, counts = len(traces), []
    for _ in range(3):
        params, state = step(params, state)
        assert signature((params, state)) == first
        counts.append(len(traces))
    assert counts[0] <= before + 1 and counts[-1] == counts[0], (before, counts)


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_optimizer_with_bf16_params_keeps_dtype_and_stays_finite(row):
    opt = typical(row)
    step = jax.jit(make_step(opt))
    params = start(jnp.bfloat16)
    state = opt.init(params)
    first = signature(state)
    loss0 = float(loss(params))
    for _ in range(10):
        params, state = step(params, state)
        assert signature(state) == first
    for p in jax.tree.leaves(params):
        assert p.dtype == jnp.bfloat16
        assert bool(jnp.all(jnp.isfinite(p)))
    assert float(loss(params)) < loss0


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_optimizer_state_saved_with_numpy_continues_same_trajectory(row, tmp_path):
    opt, step, _ = jitted_step(row.name)
    params, state = run(step, start(), opt.init(start()), 3)
    leaves, treedef = jax.tree.flatten(state)
    np.savez(tmp_path / "state.npz", *[np.asarray(x) for x in leaves])
    (tmp_path / "treedef.pkl").write_bytes(pickle.dumps(treedef))

    straight = run(step, *jax.tree.map(jnp.copy, (params, state)), 3)  # the step donates
    with np.load(tmp_path / "state.npz") as saved:
        restored_leaves = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    restored = jax.tree.unflatten(
        pickle.loads((tmp_path / "treedef.pkl").read_bytes()), restored_leaves
    )
    assert signature(restored)[1] == [(s, d, False) for s, d, _ in signature(state)[1]]
    resumed = run(step, params, restored, 3)
    leaves_equal(straight, resumed)


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_loss_after_steps_differentiates_in_learning_rate_like_finite_differences(row):
    # Two leaves keep the second-order graph (and its compile time) small.
    steps, keys = 6, ("scalar", "vector")
    small_loss = functools.partial(
        quadratic, centre={k: _CENTRE[k] for k in keys}, curvature={k: _CURVATURE[k] for k in keys}
    )
    with jax.enable_x64(True):

        def final_loss(lr):
            opt = typical(row, learning_rate=lr)  # lr is traced: built inside

            def body(_, carry):
                params, state = carry
                value, grad = jax.value_and_grad(small_loss)(params)
                updates, state = opt.update(grad, state, params, value=value)
                return gradtx.apply_updates(params, updates), state

            params = {k: jnp.asarray(_START[k], jnp.float64) for k in keys}
            params, _ = jax.lax.fori_loop(0, steps, body, (params, opt.init(params)))
            return small_loss(params)

        value_and_grad = jax.jit(jax.value_and_grad(final_loss))
        lr = jnp.float64(row.typical["learning_rate"])
        h = 1e-6 * lr
        value, derivative = value_and_grad(lr)
        finite_difference = (value_and_grad(lr + h)[0] - value_and_grad(lr - h)[0]) / (2 * h)
        assert np.isfinite(float(value))
        np.testing.assert_allclose(float(derivative), float(finite_difference), rtol=1e-6)
        assert abs(float(derivative)) > 1e-6


# ----------------------------------------------------------------------------
# Edge cases every optimizer takes: leaves without entries, no leaves at all,
# gradients that are zero for a while.

# A matrix, a vector, and a (0, 4) and a (0,) leaf beside them.
_EDGE_PARAMS = {
    "w": np.linspace(-1.0, 1.0, 6).reshape(3, 2),
    "b": np.array([0.5, -0.25, 1.0]),
    "empty_matrix": np.zeros((0, 4)),
    "empty_vector": np.zeros((0,)),
}


def _edge_params():
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), _EDGE_PARAMS)


def _edge_loss(params):
    """The loss on the edge-case trees: 0.5 ||p - 1||^2."""
    return sum((0.5 * jnp.sum((x - 1.0) ** 2) for x in jax.tree.leaves(params)), jnp.float32(0.0))


_edge_grad = jax.jit(jax.grad(_edge_loss))


def _edge_step(opt):
    """The jitted step on the edge-case trees: the loss and its gradient, or ``grads`` in
    its place."""

    def step(params, state, grads=None):
        value, grad = jax.value_and_grad(_edge_loss)(params)
        grad = grad if grads is None else grads
        updates, state = opt.update(grad, state, params, value=value)
        return updates, gradtx.apply_updates(params, updates), state

    return jax.jit(step)


def _assert_all_finite(tree, what):
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact):  # checked in NumPy: no dispatch
            assert np.isfinite(np.asarray(x)).all(), (
                f"{what}{jax.tree_util.keystr(path)} not finite"
            )


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_optimizer_with_zero_size_leaves_gives_empty_updates_and_finite_state(row):
    # Every row: a leaf without entries gets an update without entries, and the state
    # stays finite (a NaN there would, under apply_if_finite, skip every later step).
    opt = typical(row)
    step = _edge_step(opt)
    params = _edge_params()
    state = opt.init(params)
    _assert_all_finite(state, "init state")
    for _ in range(2):
        updates, params, state = step(params, state)
        for key, x in _EDGE_PARAMS.items():
            assert updates[key].shape == x.shape and updates[key].dtype == jnp.float32
        _assert_all_finite(updates, "updates")
        _assert_all_finite(state, "state")
    assert float(jnp.max(jnp.abs(params["w"] - _EDGE_PARAMS["w"]))) > 0  # the others moved


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_optimizer_with_empty_params_is_a_no_op(row):
    opt = typical(row)
    step = _edge_step(opt)
    state = opt.init({})
    for _ in range(2):
        updates, params, state = step({}, state)
        assert updates == {} and params == {}
        _assert_all_finite(state, "state")


# SAM's ascent is gradtx.normalize (optax's normalize), g / ||g||: documented NaN at g = 0.
_NAN_AT_ZERO_GRADIENT = {"sam"}


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_optimizer_after_zero_gradients_recovers_with_finite_steps(row):
    # Three steps of all-zero gradients, then the loss's own: every step finite,
    # and the params move once the gradients do.
    opt = typical(row)
    step = _edge_step(opt)
    params = {k: v for k, v in _edge_params().items() if not k.startswith("empty")}
    state = opt.init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    for _ in range(3):
        updates, params, state = step(params, state, zeros)
    if row.name in _NAN_AT_ZERO_GRADIENT:
        assert not bool(jnp.all(jnp.isfinite(updates["w"])))
        return
    _assert_all_finite((updates, params, state), "after zero gradients: ")
    before = params
    for _ in range(3):  # the loss's gradient passed in: one program for both phases
        updates, params, state = step(params, state, _edge_grad(params))
        _assert_all_finite((updates, params, state), "after nonzero gradients: ")
    assert float(jnp.max(jnp.abs(params["w"] - before["w"]))) > 0


# ----------------------------------------------------------------------------
# Complex parameters.
#
# Convention: for a real loss L of complex z, jax.grad(L)(z) is the complex
# conjugate of the steepest-ascent direction 2 dL/d(conj z); optax's docs say
# the same.  The gradient an optimizer must descend along is therefore
# g = conj(jax.grad(L)(z)); for L = sum k |z - c|^2 it is 2 k (z - c).  Second
# moments use |g|^2 = g * conj(g), so they stay real.

COMPLEX_CASES = {
    "sgd": (lambda: gradtx.sgd(0.05, momentum=0.9), lambda: ref.sgd(0.05, momentum=0.9)),
    "rmsprop": (
        lambda: gradtx.rmsprop(0.01, eps=1e-3, centered=True, momentum=0.5),
        lambda: ref.rmsprop(0.01, eps=1e-3, centered=True, momentum=0.5),
    ),
    "adam": (lambda: gradtx.adam(0.05, b2=0.99), lambda: ref.adam(0.05, b2=0.99)),
}


@pytest.mark.parametrize("name", list(COMPLEX_CASES))
def test_optimizer_with_complex_params_matches_complex_reference(name):
    make_tx, make_ref = COMPLEX_CASES[name]
    rng = np.random.default_rng(5)
    shapes = {"a": (3,), "b": (2, 2)}
    z0 = {k: rng.normal(size=s) + 1j * rng.normal(size=s) for k, s in shapes.items()}
    c = {k: rng.normal(size=s) + 1j * rng.normal(size=s) for k, s in shapes.items()}
    k = {k: rng.uniform(0.5, 2.0, size=s) for k, s in shapes.items()}

    def complex_loss(z):
        return sum(jnp.sum(k[n] * jnp.abs(z[n] - c[n]) ** 2) for n in z)

    steps = 50
    with jax.enable_x64(True):
        tx = make_tx()

        @jax.jit
        def step(z, state):
            g = jax.tree.map(jnp.conj, jax.grad(complex_loss)(z))
            updates, state = tx.update(g, state, z)
            return gradtx.apply_updates(z, updates), state

        z = jax.tree.map(jnp.asarray, z0)
        state = tx.init(z)
        for _ in range(steps):
            z, state = step(z, state)
        assert all(x.dtype == jnp.complex128 for x in jax.tree.leaves(z))
        assert float(complex_loss(z)) < 0.5 * float(complex_loss(z0))

    init, update = ref.tree(make_ref())
    names = sorted(z0)
    zr = [z0[n] for n in names]
    state = init(zr)
    for _ in range(steps):
        g = [2 * k[n] * (x - c[n]) for n, x in zip(names, zr)]
        u, state = update(g, state, zr)
        zr = [x + du for x, du in zip(zr, u)]
    for n, expected in zip(names, zr):
        np.testing.assert_allclose(np.asarray(z[n]), expected, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------
# Properties over random pytrees (``tests/strategies.py``) and random valid
# hyperparameters.  Example counts are kept small for the CI budget; run with
# ``--hypothesis-show-statistics`` to see them.


FEW = settings(max_examples=25, deadline=None)


def _steps(opt, params, grads_list):
    state = opt.init(params)
    outs = []
    for grads in grads_list:
        updates, state = opt.update(grads, state, params)
        params = gradtx.apply_updates(params, updates)
        outs.append(updates)
    return outs, state, params


def _check_structure_and_jit(opt, spec, seed):
    params = instantiate(spec, seed)
    grads = [instantiate(spec, seed + 1), instantiate(spec, seed + 2, scale=0.01)]
    state0 = opt.init(params)
    eager_updates, eager_state, eager_params = _steps(opt, params, grads)
    for updates in eager_updates:
        assert jax.tree.structure(updates) == jax.tree.structure(params)
        for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
            assert u.dtype == p.dtype and u.shape == p.shape
    assert jax.tree.structure(eager_state) == jax.tree.structure(state0)
    assert [x.dtype for x in jax.tree.leaves(eager_state)] == [
        x.dtype for x in jax.tree.leaves(state0)
    ]

    step = jax.jit(lambda g, s, p: opt.update(g, s, p))
    jit_state, jit_params, jit_updates = state0, params, []
    for g in grads:
        updates, jit_state = step(g, jit_state, jit_params)
        jit_params = gradtx.apply_updates(jit_params, updates)
        jit_updates.append(updates)
    assert signature((jit_updates, jit_state)) == signature((eager_updates, eager_state))
    assert_close(jit_updates, eager_updates)
    assert_close(jit_state, eager_state)
    assert_close(jit_params, eager_params)


@FEW
@given(optimizers(), trees(), st.integers(0, 2**16))
def test_optimizer_random_tree_keeps_structure_and_jit_matches_eager(opt, spec, seed):
    _check_structure_and_jit(opt, spec, seed)


@settings(max_examples=15, deadline=None)
@given(optimizers(), trees(DTYPES + (jnp.float64,)), st.integers(0, 2**16))
def test_optimizer_float64_tree_under_x64_keeps_structure_and_jit_matches_eager(opt, spec, seed):
    with jax.enable_x64(True):
        _check_structure_and_jit(opt, spec, seed)


@FEW
@given(transforms(), transforms(), transforms(), trees(), st.integers(0, 2**16))
def test_chain_random_transforms_is_associative_and_identity_neutral(a, b, c, spec, seed):
    params = instantiate(spec, seed)
    grads = [instantiate(spec, seed + 1), instantiate(spec, seed + 2)]
    flat = gradtx.chain(a, b, c)
    want_updates, want_state, _ = _steps(flat, params, grads)
    for variant in (gradtx.chain(gradtx.chain(a, b), c), gradtx.chain(a, gradtx.chain(b, c))):
        updates, state, _ = _steps(variant, params, grads)
        assert_bitwise_equal(updates, want_updates)
        for x, y in zip(numpy_leaves(state), numpy_leaves(want_state)):
            assert x.tobytes() == y.tobytes()
    single_updates, _, _ = _steps(a, params, grads)
    for variant in (
        gradtx.chain(gradtx.identity(), a),
        gradtx.chain(a, gradtx.identity()),
        gradtx.chain(a),
    ):
        updates, _, _ = _steps(variant, params, grads)
        assert_bitwise_equal(updates, single_updates)


NO_MEMORY = ["sgd", "rmsprop", "adagrad", "adadelta"]  # no momentum, no weight decay


@FEW
@given(optimizers(NO_MEMORY), trees(), st.integers(0, 2**16), st.integers(0, 2))
def test_optimizer_without_momentum_zero_gradient_leaves_params_unchanged(opt, spec, seed, warmup):
    params = instantiate(spec, seed)
    state = opt.init(params)
    for k in range(warmup):  # a state that has seen gradients
        _, state = opt.update(instantiate(spec, seed + 1 + k), state, params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = opt.update(zeros, state, params)
    assert_bitwise_equal(gradtx.apply_updates(params, updates), params)
    for u in jax.tree.leaves(updates):
        assert not np.any(np.asarray(u))


@FEW
@given(
    optimizers(["sgd_momentum", "rmsprop_momentum", "adam", "amsgrad"]),
    trees(),
    st.integers(0, 2**16),
)
def test_optimizer_with_momentum_zero_gradient_from_init_leaves_params_unchanged(opt, spec, seed):
    params = instantiate(spec, seed)
    updates, _ = opt.update(jax.tree.map(jnp.zeros_like, params), opt.init(params), params)
    assert_bitwise_equal(gradtx.apply_updates(params, updates), params)
