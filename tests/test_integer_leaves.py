"""Integer leaves: the stateless transforms treat them as optax 0.2.8 does.

Flax's TrainState and cursor tests use integer dummy params; optax's stateless
transforms take them (``step_size * g`` promotes an integer leaf to JAX's
default float dtype, ``sign`` and ``where`` keep it integer).  Each case runs
the same call in gradtx and in optax on a tree that mixes integer and float
leaves and compares dtypes and values.  The transforms that keep moments still
refuse integer leaves, naming the leaf.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

PARAMS = {"a": jnp.array([1, 2, 3], jnp.int32), "b": jnp.array([1.0, -2.0])}
GRADS = {"a": jnp.array([4, -5, 6], jnp.int32), "b": jnp.array([0.5, 3.0])}

# (id, make(module) -> transform); the same call builds gradtx's and optax's.
CASES = [
    ("sgd", lambda m: m.sgd(0.1)),
    ("scale", lambda m: m.scale(0.5)),
    ("scale_negative", lambda m: m.scale(-1.0)),
    ("scale_by_learning_rate", lambda m: m.scale_by_learning_rate(0.1)),
    ("clip", lambda m: m.clip(2.0)),
    ("clip_by_block_rms", lambda m: m.clip_by_block_rms(1.0)),
    ("identity", lambda m: m.identity()),
    ("set_to_zero", lambda m: m.set_to_zero()),
    ("zero_nans", lambda m: m.zero_nans()),
    ("scale_by_sign", lambda m: m.scale_by_sign()),
    ("add_decayed_weights", lambda m: m.add_decayed_weights(0.1)),
    (
        "add_decayed_weights_mask",
        lambda m: m.add_decayed_weights(0.1, mask={"a": False, "b": True}),
    ),
    ("keep_params_nonnegative", lambda m: m.keep_params_nonnegative()),
    ("normalize_by_update_norm", lambda m: m.normalize_by_update_norm()),
    ("adaptive_grad_clip", lambda m: m.adaptive_grad_clip(0.1)),
    ("chain_clip_sgd", lambda m: m.chain(m.clip(1.0), m.sgd(0.1))),
    (
        "partition",
        lambda m: m.partition({"s": m.sgd(0.1), "i": m.identity()}, {"a": "s", "b": "i"}),
    ),
]


def _two_steps(tx, params, grads):
    state = tx.init(params)
    first, state = tx.update(grads, state, params)
    second, state = tx.update(grads, state, params)
    return first, second


@pytest.mark.parametrize("name, make", CASES, ids=[c[0] for c in CASES])
def test_stateless_transform_with_integer_leaves_matches_optax(name, make):
    ours = _two_steps(make(gradtx), PARAMS, GRADS)
    with jax.numpy_dtype_promotion("standard"):  # optax relies on implicit promotion
        theirs = _two_steps(make(optax), PARAMS, GRADS)
    for step_ours, step_theirs in zip(ours, theirs):
        assert jax.tree.structure(step_ours) == jax.tree.structure(step_theirs)
        for a, b in zip(jax.tree.leaves(step_ours), jax.tree.leaves(step_theirs)):
            assert jnp.result_type(a) == jnp.result_type(b), name
            # clip_by_block_rms forms the RMS in another order than optax: one float32 ulp.
            rtol = 1e-6 if name == "clip_by_block_rms" else 0
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=0)


def test_per_example_global_norm_clip_with_integer_gradients_matches_optax():
    grads = [jnp.array([[1, 2], [3, 4]], jnp.int32), jnp.array([[5], [6]], jnp.int32)]
    ours = gradtx.per_example_global_norm_clip(grads, 1.0)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.per_example_global_norm_clip(grads, 1.0)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_partition_passes_integer_leaves_to_an_inner_adam_which_raises():
    tx = gradtx.partition({"s": gradtx.sgd(0.1), "a": gradtx.adam(0.1)}, {"a": "a", "b": "s"})
    with pytest.raises(TypeError, match=r"params leaf \['a'\] has dtype int32"):
        tx.init(PARAMS)


def test_sgd_on_integer_leaf_scales_in_default_float_under_x64(x64):
    tx = gradtx.sgd(0.1)
    updates, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
    assert updates["a"].dtype == jnp.float64
    np.testing.assert_array_equal(updates["a"], -0.1 * np.array([4.0, -5.0, 6.0]))


def test_adam_with_integer_params_raises_naming_the_leaf():
    with pytest.raises(TypeError, match=r"params leaf \['a'\] has dtype int32"):
        gradtx.adam(1e-3).init(PARAMS)


def test_sgd_with_momentum_and_integer_params_raises_naming_the_leaf():
    with pytest.raises(TypeError, match=r"params leaf \['a'\] has dtype int32"):
        gradtx.sgd(0.1, momentum=0.9).init(PARAMS)


def test_scheduled_learning_rate_with_integer_params_raises():
    # optax casts lr(t) * g back to int32 here, which truncates the step to 0.
    with pytest.raises(
        TypeError, match=r"scale_by_learning_rate: params leaf \['a'\] has dtype int32"
    ):
        gradtx.sgd(lambda t: 0.1).init(PARAMS)


def test_clip_by_global_norm_with_integer_gradient_raises_as_optax_does():
    with jax.numpy_dtype_promotion("standard"), pytest.raises(TypeError, match="lax.select"):
        optax.clip_by_global_norm(1.0).update(GRADS, None)
    tx = gradtx.clip_by_global_norm(1.0)
    with pytest.raises(
        TypeError, match=r"clip_by_global_norm: gradient leaf \['a'\] has dtype int32"
    ):
        tx.update(GRADS, tx.init(PARAMS))


def test_float_leaves_pass_through_promotion_untouched():
    from gradtx._checks import promote_integer_leaves

    tree = {"b": jnp.array([1.0], jnp.bfloat16)}
    assert promote_integer_leaves(tree) is tree
