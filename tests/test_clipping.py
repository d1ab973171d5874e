"""Clipping transforms against closed-form float64 NumPy and optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

RNG = np.random.default_rng(0)


def _tree(complex_=False, scale=1.0):
    shapes = {"w": (3, 4), "b": (4,), "conv": (2, 2, 3, 5), "s": ()}

    def one(shape):
        x = RNG.normal(size=shape) * scale
        if complex_:
            x = x + 1j * RNG.normal(size=shape) * scale
        return x

    return {k: one(s) for k, s in shapes.items()}


def _to_jax(tree):
    def one(x):
        if isinstance(x, jax.Array):
            return x
        return jnp.asarray(x, jnp.complex64 if np.iscomplexobj(x) else jnp.float32)

    return jax.tree.map(one, tree)


def _apply(tx, g, params=None):
    """One update, compiled as a whole (cheaper than op-by-op dispatch)."""
    run = jax.jit(lambda g, p: tx.update(g, tx.init(g), p)[0])
    return run(_to_jax(g), None if params is None else _to_jax(params))


def _close(got, want, tol=1e-5):
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=tol, atol=tol)


def _np_shrink(g, norm, bound):
    with np.errstate(divide="ignore", invalid="ignore"):
        return g * np.where(norm > bound, bound / np.where(norm > 0, norm, 1), 1.0)


# --- closed forms -------------------------------------------------------------


@pytest.mark.parametrize("complex_", [False, True])
def test_clip_matches_closed_form(complex_):
    g = _tree(complex_, scale=2.0)
    want = {
        k: (np.clip(x, -1.5, 1.5) if not complex_ else _np_shrink(x, np.abs(x), 1.5))
        for k, x in g.items()
    }
    _close(_apply(gradtx.clip(1.5), g), want)


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_by_global_norm_matches_closed_form(complex_, max_norm):
    g = _tree(complex_)
    norm = np.sqrt(sum(np.sum(np.abs(x) ** 2) for x in g.values()))
    want = {k: _np_shrink(x, norm, max_norm) for k, x in g.items()}
    _close(_apply(gradtx.clip_by_global_norm(max_norm), g), want)
    np.testing.assert_allclose(float(gradtx.global_norm(_to_jax(g))), norm, rtol=1e-6)


@pytest.mark.parametrize("complex_", [False, True])
def test_clip_by_leaf_norm_matches_closed_form(complex_):
    g = _tree(complex_)
    want = {k: _np_shrink(x, np.sqrt(np.sum(np.abs(x) ** 2)), 1.0) for k, x in g.items()}
    _close(_apply(gradtx.clip_by_leaf_norm(1.0), g), want)


@pytest.mark.parametrize("complex_", [False, True])
def test_clip_by_block_rms_matches_closed_form(complex_):
    g = _tree(complex_)
    want = {k: _np_shrink(x, np.sqrt(np.mean(np.abs(x) ** 2)), 0.8) for k, x in g.items()}
    _close(_apply(gradtx.clip_by_block_rms(0.8), g), want)


def _np_unit_norm(x):
    if sum(d != 1 for d in x.shape) <= 1:
        axis = None
    elif x.ndim in (2, 3):
        axis = 0
    else:
        axis = tuple(range(x.ndim - 1))
    return np.broadcast_to(np.sqrt(np.sum(np.abs(x) ** 2, axis=axis, keepdims=True)), x.shape)


@pytest.mark.parametrize("complex_", [False, True])
def test_adaptive_grad_clip_matches_closed_form(complex_):
    g, p = _tree(complex_), _tree(complex_, scale=0.3)
    p["b"] = np.zeros_like(p["b"])  # zero-initialised bias: eps takes over
    clipping, eps = 0.05, 1e-3
    want = {
        k: _np_shrink(g[k], _np_unit_norm(g[k]), clipping * np.maximum(_np_unit_norm(p[k]), eps))
        for k in g
    }
    _close(_apply(gradtx.adaptive_grad_clip(clipping, eps), g, p), want)


def test_adaptive_grad_clip_axis_overrides_units():
    g, p = _tree()["w"], _tree()["w"]
    norm = lambda x: np.broadcast_to(np.sqrt(np.sum(x**2, axis=1, keepdims=True)), x.shape)
    want = _np_shrink(g, norm(g), 0.1 * np.maximum(norm(p), 1e-3))
    _close(_apply(gradtx.adaptive_grad_clip(0.1, axis=1), {"w": g}, {"w": p}), {"w": want})


# --- optax --------------------------------------------------------------------


@pytest.mark.parametrize(
    "pair",
    [
        (gradtx.clip(0.5), optax.clip(0.5)),
        (gradtx.clip_by_global_norm(1.0), optax.clip_by_global_norm(1.0)),
        (gradtx.clip_by_block_rms(0.7), optax.clip_by_block_rms(0.7)),
    ],
    ids=["clip", "global_norm", "block_rms"],
)
def test_clipping_matches_optax(pair):
    ours, theirs = pair
    g = _tree()
    _close(_apply(ours, g), jax.tree.map(np.asarray, _apply(theirs, g)), tol=1e-6)


def test_adaptive_grad_clip_matches_optax():
    g = _to_jax({k: v for k, v in _tree().items() if k in ("w", "b", "conv")})
    p = _to_jax({k: v for k, v in _tree(scale=0.2).items() if k in ("w", "b", "conv")})
    want = _apply(optax.adaptive_grad_clip(0.05), g, p)
    _close(_apply(gradtx.adaptive_grad_clip(0.05), g, p), jax.tree.map(np.asarray, want), tol=1e-6)


def test_clip_by_global_norm_before_adam_matches_optax_chain():
    params = _to_jax(_tree(scale=0.1))
    ours = gradtx.chain(gradtx.clip_by_global_norm(0.5), gradtx.adam(0.01))
    theirs = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(0.01))
    s1, s2 = ours.init(params), theirs.init(params)
    step1, step2 = jax.jit(ours.update), jax.jit(theirs.update)
    for _ in range(3):
        g = _to_jax(_tree(scale=3.0))
        u1, s1 = step1(g, s1, params)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes dtypes internally
            u2, s2 = step2(g, s2, params)
        _close(u1, jax.tree.map(np.asarray, u2), tol=1e-6)


# --- zero gradients, derivatives, dtypes ---------------------------------------


@pytest.mark.parametrize(
    "tx",
    [
        gradtx.clip(1.0),
        gradtx.clip_by_global_norm(1.0),
        gradtx.clip_by_leaf_norm(1.0),
        gradtx.clip_by_block_rms(1.0),
        gradtx.adaptive_grad_clip(0.1),
    ],
    ids=["clip", "global", "leaf", "block_rms", "agc"],
)
def test_clipping_zero_gradient_gives_zero_and_finite_derivative(tx):
    params = {"w": jnp.zeros((2, 3)), "z": jnp.zeros((2,), jnp.complex64)}

    def loss(g):
        out, _ = tx.update(g, tx.init(params), params)
        return jnp.sum(out["w"]) + jnp.sum(jnp.abs(out["z"]) ** 2)

    zeros = jax.tree.map(jnp.zeros_like, params)
    out = jax.jit(lambda g: tx.update(g, tx.init(params), params)[0])(zeros)
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(out))
    grads = jax.jit(jax.grad(loss))(zeros)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(grads))
    np.testing.assert_allclose(np.asarray(grads["w"]), 1.0)  # d clip(g)/dg = 1 below the bound


def test_clip_by_global_norm_derivative_above_bound_matches_closed_form():
    g = jnp.array([3.0, 4.0])
    tx = gradtx.clip_by_global_norm(1.0)
    jac = jax.jit(jax.jacobian(lambda x: tx.update(x, tx.init(x))[0]))(g)
    x = np.array([3.0, 4.0])
    want = np.eye(2) / 5.0 - np.outer(x, x) / 125.0  # d(x / ||x||)/dx
    np.testing.assert_allclose(np.asarray(jac), want, rtol=1e-6, atol=1e-7)


def test_clipping_bf16_update_keeps_dtype():
    g = {"w": jnp.array([3.0, 4.0], jnp.bfloat16)}
    for tx in (gradtx.clip(1.0), gradtx.clip_by_global_norm(1.0), gradtx.clip_by_block_rms(1.0)):
        assert _apply(tx, g)["w"].dtype == jnp.bfloat16


def test_clip_by_global_norm_under_jit_and_vmap_matches_loop():
    tx = gradtx.clip_by_global_norm(1.0)
    batch = {
        "w": jnp.asarray(RNG.normal(size=(4, 3)) * 2, jnp.float32),
        "b": jnp.asarray(RNG.normal(size=(4,)), jnp.float32),
    }
    step = jax.jit(jax.vmap(lambda g: tx.update(g, tx.init(g))[0]))
    got = step(batch)
    for i in range(4):
        one = {k: v[i] for k, v in batch.items()}
        want = tx.update(one, tx.init(one))[0]
        for k in one:
            np.testing.assert_allclose(np.asarray(got[k][i]), np.asarray(want[k]), rtol=1e-6)


# --- validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: gradtx.clip(-1.0), r"clip: max_delta must be in \[0, inf\], got -1.0"),
        (lambda: gradtx.clip_by_global_norm(-0.1), "clip_by_global_norm: max_norm must be in"),
        (lambda: gradtx.clip_by_leaf_norm(float("nan")), "clip_by_leaf_norm: max_norm must be in"),
        (lambda: gradtx.clip_by_block_rms(-2), "clip_by_block_rms: threshold must be in"),
        (lambda: gradtx.adaptive_grad_clip(-1.0), "adaptive_grad_clip: clipping must be in"),
        (lambda: gradtx.adaptive_grad_clip(0.1, eps=-1.0), "adaptive_grad_clip: eps must be in"),
    ],
)
def test_clipping_bad_hyperparameter_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_adaptive_grad_clip_without_params_raises():
    tx = gradtx.adaptive_grad_clip(0.1)
    g = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="adaptive_grad_clip: update needs params"):
        tx.update(g, tx.init(g))


def test_adaptive_grad_clip_mismatched_params_names_leaf():
    tx = gradtx.adaptive_grad_clip(0.1)
    with pytest.raises(
        ValueError, match=r"adaptive_grad_clip: updates do not match params.*\['b'\]"
    ):
        tx.update({"w": jnp.ones(2), "b": jnp.ones(1)}, tx.init(None), {"w": jnp.ones(2)})


def test_clip_by_global_norm_integer_gradient_names_leaf():
    tx = gradtx.clip_by_global_norm(1.0)
    with pytest.raises(
        TypeError, match=r"clip_by_global_norm: gradient leaf \['n'\] has dtype int32"
    ):
        tx.update({"n": jnp.ones(2, jnp.int32)}, tx.init(None))


def test_per_example_global_norm_clip_matches_optax():
    rng = np.random.default_rng(11)
    grads = {
        "w": jnp.asarray(rng.normal(size=(6, 3, 2)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=(6, 2)), jnp.float32),
    }
    ours, n = gradtx.per_example_global_norm_clip(grads, 1.5)
    with jax.numpy_dtype_promotion("standard"):
        theirs, their_n = optax.per_example_global_norm_clip(grads, 1.5)
    assert int(n) == int(their_n) > 0
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_per_example_global_norm_clip_without_batch_axis_raises():
    with pytest.raises(ValueError, match=r"^per_example_global_norm_clip: every leaf of grads"):
        gradtx.per_example_global_norm_clip({"a": jnp.ones((3, 2)), "b": jnp.ones(2)}, 1.0)


def test_clip_by_block_rms_equals_optax_bit_for_bit():
    updates = (jnp.array([500.0, 5.0]), jnp.array([300.0, 3.0]), jnp.array([0.1, -0.2]))
    ours, theirs = updates, updates
    for i in range(1, 8):  # repeated clipping at a falling threshold
        ours, _ = gradtx.clip_by_block_rms(1.0 / i).update(ours, None)
        with jax.numpy_dtype_promotion("standard"):
            theirs, _ = optax.clip_by_block_rms(1.0 / i).update(theirs, None)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("uniform", [True, False])
def test_per_example_layer_norm_clip_matches_closed_form_and_optax(uniform, x64):
    rng = np.random.default_rng(12)
    grads = {
        "w": rng.normal(size=(6, 3, 2)) * np.arange(1, 7)[:, None, None],
        "b": rng.normal(size=(6, 2)),
        "s": rng.normal(size=(6,)) * 3,
    }
    c = 2.5
    leaves = jax.tree.leaves(grads)
    sizes = [np.prod(g.shape[1:]) for g in leaves]
    expected_sums, expected_counts = [], []
    for g, d in zip(leaves, sizes):
        c_k = c / np.sqrt(len(leaves)) if uniform else c * np.sqrt(d / sum(sizes))
        norms = np.sqrt(np.sum(g.reshape(6, -1) ** 2, axis=1))
        factors = np.minimum(1.0, c_k / norms)
        expected_sums.append(np.tensordot(factors, g, axes=1))
        expected_counts.append(int(np.sum(factors < 1)))
    ours, n = gradtx.per_example_layer_norm_clip(
        jax.tree.map(jnp.asarray, grads), c, uniform=uniform
    )
    with jax.numpy_dtype_promotion("standard"):
        theirs, their_n = optax.per_example_layer_norm_clip(
            jax.tree.map(jnp.asarray, grads), c, uniform=uniform
        )
    assert jax.tree.structure(ours) == jax.tree.structure(grads) == jax.tree.structure(n)
    for a, b, e in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), expected_sums):
        np.testing.assert_allclose(a, e, rtol=1e-12)
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert [int(k) for k in jax.tree.leaves(n)] == expected_counts
    assert [int(k) for k in jax.tree.leaves(their_n)] == expected_counts
    assert 0 < sum(expected_counts) < 18


def test_per_example_layer_norm_clip_without_batch_axis_raises():
    with pytest.raises(ValueError, match=r"^per_example_layer_norm_clip: every leaf of grads"):
        gradtx.per_example_layer_norm_clip([jnp.ones((3, 2)), jnp.ones((2, 2))], 1.0)
