"""flatten runs only what it can run exactly, and refuses the rest by name."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optimizers import OPTIMIZERS

import gradtx


def _params(dtype=np.float32):
    # Made in NumPy: the inputs are not what the tests check.
    return {
        "a": jnp.asarray(np.linspace(-1.0, 1.0, 12, dtype=dtype).reshape(3, 4), dtype),
        "b": jnp.asarray(np.array([0.5, -2.0, 3.0], dtype), dtype),
        "c": jnp.asarray(np.array(4.0, dtype), dtype),
    }


def _gradient(p, t):
    """10 sin((t + 1) p), in NumPy, in p's dtype."""
    p = np.asarray(p)
    return jnp.asarray((np.sin(p * (t + 1)) * 10.0).astype(p.dtype), p.dtype)


def _run(opt, params, steps=5):
    state = opt.init(params)
    for t in range(steps):
        grads = jax.tree.map(lambda p, t=t: _gradient(p, t), params)
        updates, state = opt.update(grads, state, params)
        params = gradtx.apply_updates(params, updates)
    return params


PER_LEAF = [
    ("clip_by_leaf_norm", lambda: gradtx.clip_by_leaf_norm(0.1), "it takes the norm of each leaf"),
    ("clip_by_block_rms", lambda: gradtx.clip_by_block_rms(0.1), "it takes the RMS of each leaf"),
    (
        "adaptive_grad_clip",
        lambda: gradtx.adaptive_grad_clip(0.01),
        "it takes the norms of each leaf",
    ),
    ("zero_nans", lambda: gradtx.zero_nans(), "it records a flag per leaf"),
    (
        "graft",
        lambda: gradtx.graft(gradtx.scale_by_sign(), gradtx.scale_by_rss()),
        "it takes the norms of each leaf",
    ),
    (
        "cautious",
        lambda: gradtx.cautious(gradtx.scale_by_momentum(0.9)),
        "it rescales each leaf by the share of its entries kept",
    ),
    (
        "masked",
        lambda: gradtx.masked(gradtx.sgd(0.1), {"a": True, "b": False, "c": True}),
        "its mask chooses leaf by leaf",
    ),
    (
        "freeze",
        lambda: gradtx.freeze({"a": True, "b": False, "c": False}),
        "its mask chooses leaf by leaf",
    ),
    (
        "partition",
        lambda: gradtx.partition(
            {"x": gradtx.sgd(0.1), "y": gradtx.adam(0.1)}, {"a": "x", "b": "y", "c": "x"}
        ),
        "its labels choose leaf by leaf",
    ),
]


@pytest.mark.parametrize("name,make,why", PER_LEAF, ids=[p[0] for p in PER_LEAF])
def test_flatten_per_leaf_transform_raises_naming_it(name, make, why):
    with pytest.raises(ValueError, match=rf"^flatten: {name} cannot run on packed buffers: {why}"):
        gradtx.flatten(gradtx.chain(make(), gradtx.adam(1e-2)))


@pytest.mark.parametrize("name,make,why", PER_LEAF[:3], ids=[p[0] for p in PER_LEAF[:3]])
def test_per_leaf_transform_packed_would_differ(name, make, why):
    # Why the refusal: forced through, the numbers change.
    want = _run(gradtx.chain(make(), gradtx.sgd(0.1)), _params())
    got = _run(
        gradtx.flatten(gradtx.chain(make(), gradtx.sgd(0.1)), assume_elementwise=True), _params()
    )
    assert (
        max(
            float(np.max(np.abs(np.asarray(g) - np.asarray(w))))
            for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want))
        )
        > 1e-3
    )


def test_flatten_optax_transform_raises_unless_assumed():
    with pytest.raises(
        ValueError,
        match=r"^flatten: GradientTransformationExtraArgs is not a "
        r"gradtx transform, so flatten cannot tell",
    ):
        gradtx.flatten(optax.lamb(1e-2))
    gradtx.flatten(optax.adam(1e-2), assume_elementwise=True)


def test_flatten_inject_hyperparams_raises_naming_it():
    with pytest.raises(
        ValueError,
        match=r"flatten does not know whether "
        r"inject_hyperparams\(adam\) works element by element",
    ):
        gradtx.flatten(gradtx.inject_hyperparams(gradtx.adam)(1e-2))


@pytest.mark.parametrize(
    "make",
    [
        lambda: gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adam(1e-2)),
        lambda: gradtx.apply_if_finite(gradtx.adamw(1e-2, weight_decay=0.1)),
        lambda: gradtx.lookahead_in_state(gradtx.sgd(0.1, momentum=0.9), sync_period=2),
        lambda: gradtx.chain(gradtx.clip(0.5), gradtx.rmsprop(1e-2, centered=True)),
    ],
    ids=["global_norm", "apply_if_finite", "lookahead", "clip_rmsprop"],
)
def test_flatten_exact_transform_matches_per_leaf(make):
    want = _run(make(), _params())
    got = _run(gradtx.flatten(make()), _params())
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_masked_around_flatten_matches_masked_per_leaf():
    mask = {"a": True, "b": False, "c": True}
    want = _run(gradtx.masked(gradtx.adam(1e-2), mask), _params())
    got = _run(gradtx.masked(gradtx.flatten(gradtx.adam(1e-2)), mask), _params())
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


ELEMENTWISE_ROWS = [row for row in OPTIMIZERS if row.elementwise]
OTHER_ROWS = [row for row in OPTIMIZERS if not row.elementwise]


@pytest.mark.parametrize("row", ELEMENTWISE_ROWS, ids=[row.name for row in ELEMENTWISE_ROWS])
def test_flatten_of_an_elementwise_optimizer_runs_and_matches_per_leaf(row):
    with jax.enable_x64(True):
        params = _params(np.float64)
        want = _run(row.factory(**row.typical), params)
        got = _run(gradtx.flatten(row.factory(**row.typical)), params)
    for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("row", OTHER_ROWS, ids=[row.name for row in OTHER_ROWS])
def test_flatten_of_a_per_leaf_optimizer_refuses_naming_what_it_cannot_pack(row):
    with pytest.raises(ValueError, match=r"^flatten: .*(cannot run on packed|element by element)"):
        gradtx.flatten(row.factory(**row.typical))
