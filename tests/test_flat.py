"""gradtx.flatten: packed state gives the numbers of the per-leaf path.

The reference for a packed optimizer is the same optimizer run leaf by leaf
(itself checked against closed-form references elsewhere), plus optax's
Adam for one independent check.  Both paths are jitted; XLA may contract a
multiply-add differently in the two programs, so float32 agrees to a few
ulps and bfloat16 to one bfloat16 ulp, not bit for bit; bfloat16 leaves whose
second moment is rounded stochastically agree to that rounding's noise.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

STEPS = 12

OPTIMIZERS = [
    ("sgd", lambda: gradtx.sgd(0.05)),
    ("sgd_nesterov", lambda: gradtx.sgd(0.05, momentum=0.9, nesterov=True)),
    ("rmsprop", lambda: gradtx.rmsprop(0.01, centered=True, momentum=0.5)),
    ("adagrad", lambda: gradtx.adagrad(0.05)),
    ("adadelta", lambda: gradtx.adadelta(weight_decay=0.01)),
    ("adam", lambda: gradtx.adam(0.01)),
    ("adamw", lambda: gradtx.adamw(0.01, weight_decay=0.1)),
    ("amsgrad", lambda: gradtx.amsgrad(0.01)),
]


def _params():
    """Mixed dtypes, a None leaf, a scalar, and one leaf larger than max_leaf_size=16."""
    return {
        "a": jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(3, 4),
        "b": jnp.linspace(0.5, -0.5, 5).astype(jnp.bfloat16),
        "frozen": None,
        "block": {
            "s": jnp.asarray(0.3, jnp.float32),
            "m": jnp.arange(6, dtype=jnp.float32).reshape(2, 3) / 6,
            "h": jnp.linspace(-2.0, 2.0, 6).astype(jnp.bfloat16).reshape(3, 2),
        },
        "big": jnp.linspace(-1.0, 3.0, 40, dtype=jnp.float32),
    }


def _grads(params, step):
    """A deterministic, step-dependent gradient of each leaf's dtype."""
    return jax.tree.map(
        lambda p: (jnp.sin(p.astype(jnp.float32) * (step + 1.0)) + 0.1 * step).astype(p.dtype),
        params,
    )


def _run(opt, params, steps=STEPS):
    state = opt.init(params)
    step = jax.jit(lambda p, s, g: _apply(opt, p, s, g))
    for t in range(steps):
        params, state = step(params, state, _grads(params, t))
    return params, state


def _apply(opt, params, state, grads):
    updates, state = opt.update(grads, state, params)
    return gradtx.apply_updates(params, updates), state


def _assert_trees_close(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert g.dtype == w.dtype and g.shape == w.shape
        if g.dtype == jnp.bfloat16:
            # A bf16 second moment is rounded stochastically, and the draw hashes the
            # element's position, which packing changes: equal in distribution, not
            # element for element (differences up to ~2e-3 here).
            np.testing.assert_allclose(np.float32(g), np.float32(w), rtol=2**-7, atol=4e-3)
        else:
            np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name,make", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_flatten_every_optimizer_matches_per_leaf_path(name, make):
    params = _params()
    want, _ = _run(make(), params)
    got, state = _run(gradtx.flatten(make(), max_leaf_size=16), params)
    _assert_trees_close(got, want)
    # the state is packed: no moment has one array per leaf
    packed = [
        x
        for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, gradtx.Packed))
        if isinstance(x, gradtx.Packed)
    ]
    assert all(set(p.keys()) == {"bfloat16", "float32", "['big']"} for p in packed)


def test_flatten_adam_matches_optax_adam():
    params = {
        "w": jnp.linspace(-1.0, 1.0, 30).reshape(5, 6),
        "b": jnp.zeros(6),
        "s": jnp.asarray(2.0),
    }
    got, _ = _run(gradtx.flatten(gradtx.adam(0.02)), params)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
        want, _ = _run(optax.adam(0.02), params)
    _assert_trees_close(got, want)


def test_flatten_state_holds_one_buffer_per_dtype():
    params = {f"p{i}": jnp.ones((i % 4 + 1,), jnp.float32) for i in range(50)}
    params["half"] = jnp.ones(3, jnp.bfloat16)
    state = gradtx.flatten(gradtx.adam(1e-3)).init(params)
    momentum = gradtx.tree_get(state, "mu")
    assert isinstance(momentum, gradtx.Packed)
    assert momentum["float32"].shape == (sum(i % 4 + 1 for i in range(50)),)
    assert momentum["bfloat16"].shape == (3,)
    # 2 moments x 2 dtypes + 2 step counters, instead of 2 x 51 arrays + 2
    assert len(jax.tree.leaves(state)) == 6


def test_flatten_packed_params_match_unpacked():
    params = _params()
    opt = gradtx.flatten(gradtx.adamw(0.01, weight_decay=0.1), max_leaf_size=16)
    want, _ = _run(opt, params)
    packed = gradtx.pack(params, max_leaf_size=16)
    state = opt.init(packed)
    step = jax.jit(lambda p, s, g: _apply(opt, p, s, g))
    for t in range(STEPS):
        grads = gradtx.pack(_grads(packed.unpack(), t), max_leaf_size=16)
        packed, state = step(packed, state, grads)
    _assert_trees_close(packed.unpack(), want)


@pytest.mark.parametrize("kind", ["pytree", "callable"])
def test_flatten_weight_decay_mask_matches_per_leaf_path(kind):
    params = _params()
    keep = {
        "a": True,
        "b": False,
        "frozen": None,
        "block": {"s": False, "m": True, "h": True},
        "big": True,
    }
    if kind == "callable":
        mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)  # noqa: E731
    else:
        mask = keep
    make = lambda: gradtx.chain(
        gradtx.add_decayed_weights(0.5, mask),  # noqa: E731
        gradtx.scale_by_learning_rate(0.1),
    )
    want, _ = _run(make(), params, steps=3)
    got, _ = _run(gradtx.flatten(make(), max_leaf_size=16), params, steps=3)
    _assert_trees_close(got, want)


def test_flatten_preconditioner_inside_chain_sees_raw_gradient():
    """A flattened preconditioner after momentum still measures the raw gradient: Adam."""
    params = _params()
    adam_from_parts = gradtx.chain(
        gradtx.flatten(
            gradtx.precondition(
                gradtx.chain(gradtx.scale_by_momentum(0.9, ema=True), gradtx.bias_correction(0.9)),
                by=gradtx.scale_by_rms(0.999, 1e-8, eps_in_sqrt=False, bias_correction=True),
            ),
            max_leaf_size=16,
        ),
        gradtx.scale_by_learning_rate(0.01),
    )
    got, _ = _run(adam_from_parts, params)
    want, _ = _run(gradtx.adam(0.01), params)
    _assert_trees_close(got, want)


def test_flatten_with_optax_global_norm_clip_matches_unflattened():
    """A global reduction is kept by packing, up to the order of a float32 sum."""
    params = {
        "w": jnp.linspace(-1.0, 1.0, 30).reshape(5, 6),
        "b": jnp.zeros(6),
        "s": jnp.asarray(2.0),
        "big": jnp.linspace(0.0, 1.0, 40),
    }
    make = lambda: optax.chain(optax.clip_by_global_norm(0.5), gradtx.adam(0.01))  # noqa: E731
    with jax.numpy_dtype_promotion("standard"):  # optax's clip mixes bf16 and float32
        want, _ = _run(make(), params)
        got, _ = _run(gradtx.flatten(make(), max_leaf_size=16, assume_elementwise=True), params)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_flatten_eager_equals_jit():
    params = _params()
    opt = gradtx.flatten(gradtx.adam(0.01), max_leaf_size=16)
    state = opt.init(params)
    grads = _grads(params, 0)
    eager = _apply(opt, params, state, grads)
    jitted = jax.jit(lambda p, s, g: _apply(opt, p, s, g))(params, state, grads)
    _assert_trees_close(eager, jitted)


def test_flatten_with_state_of_other_params_raises():
    opt = gradtx.flatten(gradtx.adam(1e-3))
    state = opt.init({"w": jnp.zeros(3)})
    with pytest.raises(ValueError, match="was the state made by init on other params"):
        opt.update({"w": jnp.zeros(4)}, state)


def test_flatten_with_mask_of_wrong_structure_raises():
    opt = gradtx.flatten(gradtx.add_decayed_weights(0.1, mask={"w": True}))
    params = {"w": jnp.zeros(3), "b": jnp.zeros(2)}
    with pytest.raises(ValueError, match="flatten: the mask does not match the params"):
        opt.update(params, opt.init(params), params)


def test_flatten_with_bad_arguments_raises():
    with pytest.raises(TypeError, match="flatten: tx must be a gradient transformation"):
        gradtx.flatten(0.1)
    with pytest.raises(ValueError, match="flatten: max_leaf_size must be an integer >= 0, got -1"):
        gradtx.flatten(gradtx.sgd(0.1), max_leaf_size=-1)


def test_flatten_integer_leaf_raises():
    opt = gradtx.flatten(gradtx.sgd(0.1))
    with pytest.raises(TypeError, match=r"flatten: parameter leaf \['n'\] has dtype int32"):
        opt.init({"w": jnp.zeros(2), "n": jnp.zeros(2, jnp.int32)})


# ----------------------------------------------------------------------------
# 10,000 leaves through gradtx.flatten with packed params (compile time printed, never asserted).


@pytest.mark.slow
def test_ten_thousand_leaf_tree_packed_adam_steps_match_closed_form():
    """10,000 leaves through gradtx.flatten with packed params: compiles in well under a second.

    The per-leaf path compiles 10,000 separate kernels (XLA:CPU takes minutes
    and >10 GB there); packing gives the step one buffer per dtype.
    """
    n_leaves, lr = 10_000, 1e-3
    rng = np.random.default_rng(0)
    params = {
        f"layer{i}": jnp.asarray(rng.normal(size=(1 + i % 7,)), jnp.float32)
        for i in range(n_leaves)
    }
    opt = gradtx.flatten(gradtx.adam(lr))
    packed = gradtx.pack(params)
    state = opt.init(packed)

    def step(p, s):
        grads = jax.tree.map(lambda x: 2 * x, p)  # d/dp of sum(p^2), packed like p
        updates, s = opt.update(grads, s, p)
        return gradtx.apply_updates(p, updates), s

    start = time.perf_counter()
    compiled = jax.jit(step).lower(packed, state).compile()
    print(f"\n10,000-leaf packed adam step: compiled in {time.perf_counter() - start:.2f} s")
    p, s = packed, state
    for _ in range(2):
        p, s = compiled(p, s)
    # Closed form: Adam's first two steps on f = sum(p^2), float64 NumPy, element by element.
    b1, b2, eps = 0.9, 0.999, 1e-8
    got = p.unpack()
    keys = list(params)
    x = np.concatenate([np.asarray(params[k], np.float64) for k in keys])
    m = v = np.zeros_like(x)
    for t in (1, 2):
        g = 2 * x
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    result = np.concatenate([np.asarray(got[k], np.float64) for k in keys])
    assert np.max(np.abs(result - x)) < 1e-6
