"""gradtx.microbatching computes optax.microbatching's results, and says what is wrong.

Every case builds the same call with gradtx's and optax's module, runs both
under ``jax.jit`` and compares the outputs leaf by leaf: bit for bit (both
run the same float operations in the same order), dtypes and structures
included.  A second check ties the microbatched result to the function on
the full batch, which involves neither implementation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax.microbatching as om
import pytest

from gradtx import microbatching as gm

ACC = ("SUM", "MEAN", "RUNNING_MEAN", "CONCAT")


def _acc(module, rule):
    """An accumulator spec (names, or a pytree of names) in ``module``'s enum."""
    return jax.tree.map(lambda name: module.AccumulationType[name], rule)


def _assert_same(ours, theirs):
    """Same leaves at the same key paths (namedtuple class names may differ), bit for bit."""
    ours = jax.tree_util.tree_leaves_with_path(ours)
    theirs = jax.tree_util.tree_leaves_with_path(theirs)
    assert [p for p, _ in ours] == [p for p, _ in theirs]
    for (path, a), (_, b) in zip(ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape, jax.tree_util.keystr(path)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), jax.tree_util.keystr(path))


def _each_rule(fun, rules=ACC):
    """fun's output once per rule, as a dict, and the matching accumulator tree."""
    return (lambda *a, **k: {r: fun(*a, **k) for r in rules}), {r: r for r in rules}


def _both(build, *args, **kwargs):
    """build(module) -> function, run under jit for gradtx and optax."""
    ours = jax.jit(build(gm))(*args, **kwargs)
    theirs = jax.jit(build(om))(*args, **kwargs)
    _assert_same(ours, theirs)
    return ours


# ----------------------------------------------------------------------------
# An MLP loss over a batch.


def _mlp_params(rng, sizes=(5, 8, 3)):
    return [
        {
            "w": jnp.asarray(rng.normal(size=(n_in, n_out)) / np.sqrt(n_in), jnp.float32),
            "b": jnp.asarray(0.1 * rng.normal(size=(n_out,)), jnp.float32),
        }
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ]


def _mlp_loss(params, x, y):
    h = x
    for layer in params[:-1]:
        h = jnp.tanh(h @ layer["w"] + layer["b"])
    logits = h @ params[-1]["w"] + params[-1]["b"]
    logp = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.take_along_axis(logp, y[:, None], axis=1))


def _mlp_data(batch=12, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(batch, 5)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, size=(batch,)), jnp.int32)
    return _mlp_params(rng), x, y


def test_microbatch_mlp_gradient_matches_optax():
    params, x, y = _mlp_data()
    k = 4
    fun, rule = _each_rule(jax.grad(_mlp_loss), ("SUM", "MEAN", "RUNNING_MEAN"))
    ours = _both(lambda m: m.microbatch(fun, (1, 2), k, _acc(m, rule)), params, x, y)
    # Independent of both: the loss is a sum over rows, so SUM is the full-batch gradient.
    full = jax.jit(jax.grad(_mlp_loss))(params, x, y)
    for name, scale in (("SUM", 1.0), ("MEAN", k / 12), ("RUNNING_MEAN", k / 12)):
        jax.tree.map(
            lambda a, b, s=scale: np.testing.assert_allclose(a, s * b, rtol=2e-5, atol=1e-6),
            ours[name],
            full,
        )


def test_microbatch_value_and_grad_pytree_accumulator_matches_optax():
    params, x, y = _mlp_data(batch=8, seed=1)

    def fun(params, x, y):
        loss, grads = jax.value_and_grad(_mlp_loss)(params, x, y)
        logits = x @ params[0]["w"]
        return {"loss": loss, "grads": grads, "per_row": (logits, y)}

    rule = {"loss": "MEAN", "grads": "SUM", "per_row": "CONCAT"}
    ours = _both(lambda m: m.microbatch(fun, (1, 2), 4, _acc(m, rule)), params, x, y)
    np.testing.assert_array_equal(ours["per_row"][1], y)  # CONCAT restores batch order
    np.testing.assert_allclose(ours["per_row"][0], x @ params[0]["w"], rtol=1e-5, atol=1e-6)


def test_microbatch_argnums_argnames_in_axes_match_optax():
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(10, 4, 3)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(4, 10, 3)), jnp.float32)
    c = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
    tree = {"u": jnp.asarray(rng.normal(size=(10,)), jnp.float32), "v": a[:, 0, :]}

    def one(a, c, b, *, tree):
        return jnp.einsum("bij,kbj->bik", a, b) * c + tree["u"][:, None, None], tree["v"] ** 2

    fun, rule = _each_rule(one)
    _both(
        lambda m: m.microbatch(fun, (0, 2), 5, _acc(m, rule), argnames="tree", in_axes=(0, 1, 0)),
        a,
        c,
        b,
        tree=tree,
    )


def test_microbatch_rows_are_strided_like_optax():
    # Not a sum over rows: the result shows which rows share a microbatch.
    x = jnp.arange(6.0)
    fun = lambda x: x[:-1] @ x[1:]  # noqa: E731
    ours = _both(lambda m: m.microbatch(fun, 0, 3), x)
    assert ours == 0 * 2 + 2 * 4 + 1 * 3 + 3 * 5
    split = gm.reshape_batch_axis({"x": jnp.arange(12).reshape(2, 6)}, 2, axis=1)
    _assert_same(split, om.reshape_batch_axis({"x": jnp.arange(12).reshape(2, 6)}, 2, axis=1))


def test_microbatch_traced_num_real_microbatches_matches_optax():
    x = jnp.arange(1.0, 25.0).reshape(12, 2)
    fun, rule = _each_rule(lambda v: v * 2.0)

    def build(m):
        def run(x, steps):
            return m.microbatch(fun, 0, 3, _acc(m, rule), num_real_microbatches=steps)(x)

        return run

    for steps in (0, 2, 4):
        _both(build, x, steps)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_microbatch_low_precision_matches_optax(dtype):
    x = jnp.asarray(np.random.default_rng(1).normal(size=(8, 3)), dtype)
    fun, rule = _each_rule(lambda v: jnp.sum(v, axis=0))
    ours = _both(lambda m: m.microbatch(fun, 0, 1, _acc(m, rule)), x)
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(ours))


def test_microbatch_float64_matches_optax(x64):
    rng = np.random.default_rng(4)
    w = jnp.asarray(rng.normal(size=(3,)), jnp.float64)
    x = jnp.asarray(rng.normal(size=(12, 3)), jnp.float64)
    fun, rule = _each_rule(jax.grad(lambda w, x: jnp.sum(jnp.tanh(x @ w))))
    ours = _both(lambda m: m.microbatch(fun, 1, 3, _acc(m, rule)), w, x)
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(ours))


def test_microbatch_size_none_returns_fun_itself():
    fun = lambda x: x  # noqa: E731
    assert gm.microbatch(fun, 0, None) is fun
    assert om.microbatch(fun, 0, None) is fun


# ----------------------------------------------------------------------------
# micro_vmap and micro_grad


def test_micro_vmap_matches_optax():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(3, 8, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(2,)), jnp.float32)
    s = jnp.asarray(rng.normal(size=(8,)), jnp.float32)

    def one(x, w, *, s):
        return {"dot": x @ w * s, "norm": jnp.linalg.norm(x)}

    fun, rule = _each_rule(one)
    ours = _both(
        lambda m: m.micro_vmap(
            fun, in_axes=(1, None), microbatch_size=2, accumulator=_acc(m, rule)
        ),
        x,
        w,
        s=s,
    )
    expected = jax.vmap(one, in_axes=(1, None))(x, w, s=s)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ours["CONCAT"], expected)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, jnp.sum(b, axis=0), rtol=1e-5),
        ours["SUM"],
        expected,
    )


def test_micro_vmap_int_in_axes_maps_every_positional_argument_like_jax_vmap():
    # optax's micro_vmap takes an int in_axes for the first argument only (jax.vmap then
    # refuses a second one); gradtx maps every positional argument, as jax.vmap does.
    x, w = jnp.arange(12.0).reshape(6, 2), jnp.arange(12.0, 24.0).reshape(6, 2)
    fun = lambda a, b: a @ b  # noqa: E731
    ours = jax.jit(gm.micro_vmap(fun, microbatch_size=3))(x, w)
    np.testing.assert_array_equal(ours, jax.vmap(fun)(x, w))


def test_micro_vmap_without_microbatch_size_matches_optax():
    x = jnp.arange(12.0).reshape(6, 2)
    _both(lambda m: m.micro_vmap(jnp.sum, accumulator=m.AccumulationType.MEAN), x)


@pytest.mark.parametrize(("keep_batch_dim", "k"), [(True, None), (False, 3)])
def test_micro_grad_clipped_mlp_gradients_match_optax(keep_batch_dim, k):
    params, x, y = _mlp_data()

    def loss(params, x, y):
        if not keep_batch_dim:
            x, y = x[None], y[None]
        value = _mlp_loss(params, x, y)
        return value, {"logit0": (x @ params[0]["w"])[0, 0]}

    def clip(grads):
        norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))
        factor = jnp.minimum(1.0, 0.5 / norm)
        return jax.tree.map(lambda g: g * factor, grads), norm

    def build(m):
        return m.micro_grad(
            loss,
            has_aux=True,
            batch_argnums=(1, 2),
            keep_batch_dim=keep_batch_dim,
            microbatch_size=k,
            accumulator=(m.AccumulationType.SUM, m.AccumulationType.MEAN),
            transform_fn=clip,
            metrics_fn=lambda g: jnp.linalg.norm(g[0]["w"]),
        )

    (clipped, mean_norm), aux = _both(build, params, x, y)
    assert aux.values.shape == (12,) and aux.aux["logit0"].shape == (12,)
    # Independent of both: jax.vmap over all examples at once.
    if keep_batch_dim:
        x, y = x[:, None], y[:, None]
    per_example = jax.jit(
        jax.vmap(lambda xi, yi: clip(jax.grad(lambda p: loss(p, xi, yi)[0])(params)))
    )(x, y)
    expected = jax.tree.map(lambda g: jnp.sum(g, axis=0), per_example[0])
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), clipped, expected
    )
    np.testing.assert_allclose(mean_norm, np.mean(per_example[1]), rtol=1e-5)


def test_micro_grad_several_argnums_and_early_stop_match_optax():
    rng = np.random.default_rng(3)
    w = jnp.asarray(rng.normal(size=(3,)), jnp.float32)
    b = jnp.float32(0.5)
    x = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)

    def loss(w, b, x):  # optax's micro_grad needs the batch argument last
        return jnp.sum(jnp.sin(x @ w + b))

    def build(m):
        def run(w, b, x, steps):
            return m.micro_grad(
                loss,
                argnums=(0, 1),
                batch_argnums=2,
                microbatch_size=2,
                accumulator=m.AccumulationType.RUNNING_MEAN,
                num_real_microbatches=steps,
            )(w, b, x)

        return run

    _both(build, w, b, x, 3)
    _both(build, w, b, x, 4)


# ----------------------------------------------------------------------------
# Explicit sharding: the batch axis stays sharded (optax 0.2.8 compares jax versions
# as strings and takes its unsharded path on jax >= 0.10, so it is not compared here).


@pytest.mark.slow  # a subprocess with two CPU devices: a few seconds
def test_microbatch_keeps_an_explicitly_sharded_batch_axis():
    code = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
        from gradtx import microbatching as gm
        mesh = jax.make_mesh((2,), ("b",), axis_types=(AxisType.Explicit,))
        x = jnp.arange(16.0).reshape(8, 2)
        xs = jax.device_put(x, NamedSharding(mesh, P("b", None)))
        rule = (gm.AccumulationType.CONCAT, gm.AccumulationType.SUM)
        fun = lambda v: (v * 2, jnp.sum(v**2, axis=0))
        with jax.set_mesh(mesh):
            split = gm.reshape_batch_axis(xs, 4)
            assert jax.typeof(split).sharding.spec == P(None, "b", None), jax.typeof(split)
            out = jax.jit(gm.microbatch(fun, 0, 4, rule))(xs)
            assert out[0].sharding.spec == P("b", None), out[0].sharding
            try:
                gm.microbatch(jnp.sum, 0, 3)(jax.device_put(jnp.arange(12.0), NamedSharding(mesh, P("b"))))
                raise AssertionError("no error")
            except ValueError as e:
                assert "split over 2 devices, which must divide microbatch_size=3" in str(e), e
        ref = gm.microbatch(fun, 0, 4, rule)(x)
        np.testing.assert_array_equal(out[0], ref[0])
        np.testing.assert_array_equal(out[1], ref[1])
        print("ok")
        """
    )
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


# ----------------------------------------------------------------------------
# Errors


def _sum(*args, **kwargs):
    return sum(jnp.sum(a) for a in jax.tree.leaves((args, kwargs)))


def test_microbatch_batch_not_divisible_raises():
    # optax: "batch_size=10 must be divisible by microbatch_size=3."
    with pytest.raises(
        ValueError, match=r"microbatch: batch size 10 is not divisible by microbatch_size=3"
    ):
        gm.microbatch(_sum, 0, 3)(jnp.ones(10))


def test_microbatch_unequal_batch_sizes_raise_naming_the_arguments():
    with pytest.raises(
        ValueError,
        match=r"microbatch: the batch arguments must share one batch size, got argument 0: 4, argument 'b'\['w'\]: 6",
    ):
        gm.microbatch(_sum, 0, 2, argnames="b")(jnp.ones(4), b={"w": jnp.ones(6)})


def test_microbatch_mean_of_integers_raises():
    with pytest.raises(
        ValueError, match=r"microbatch: accumulator MEAN averages.*got int32|fun returned int32"
    ):
        gm.microbatch(jnp.sum, 0, 2, gm.AccumulationType.MEAN)(jnp.arange(4))


def test_microbatch_empty_batch_with_mean_raises():
    with pytest.raises(
        ValueError, match=r"microbatch: accumulator MEAN needs at least one microbatch"
    ):
        gm.microbatch(jnp.sum, 0, 2, gm.AccumulationType.MEAN)(jnp.ones(0))


@pytest.mark.parametrize("size", [0, -2, 2.0, True])
def test_microbatch_bad_microbatch_size_raises_when_built(size):
    with pytest.raises(
        ValueError, match=r"microbatch: microbatch_size must be an int >= 1 or None"
    ):
        gm.microbatch(_sum, 0, size)


def test_microbatch_bad_accumulator_raises_when_built():
    with pytest.raises(ValueError, match=r"microbatch: accumulator must be an Accumulator.*'sum'"):
        gm.microbatch(_sum, 0, 2, "sum")


def test_microbatch_accumulator_not_a_prefix_raises():
    fun = lambda x: {"a": jnp.sum(x), "b": x}  # noqa: E731
    with pytest.raises(ValueError, match=r"microbatch: the accumulator tree .* is not a prefix"):
        gm.microbatch(fun, 0, 2, {"a": gm.AccumulationType.SUM})(jnp.ones(4))


def test_microbatch_in_axes_length_raises_when_built():
    with pytest.raises(
        ValueError, match=r"microbatch: in_axes must be an int or a sequence of 2 ints"
    ):
        gm.microbatch(_sum, (0, 1), 2, in_axes=(0,))


def test_microbatch_missing_batch_argument_raises():
    with pytest.raises(TypeError, match=r"microbatch: argnums names positional argument 2"):
        gm.microbatch(_sum, 2, 2)(jnp.ones(4))
    with pytest.raises(TypeError, match=r"microbatch: argnames names 'y'"):
        gm.microbatch(_sum, (), 2, argnames="y")(jnp.ones(4))


def test_microbatch_axis_out_of_range_raises():
    with pytest.raises(
        ValueError, match=r"microbatch: argument 0 has shape \(4,\), with no axis 1"
    ):
        gm.microbatch(_sum, 0, 2, in_axes=1)(jnp.ones(4))


def test_microbatch_without_batch_arguments_raises():
    with pytest.raises(ValueError, match=r"microbatch: no batch argument holds an array"):
        gm.microbatch(_sum, (), 2)(jnp.ones(4))


def test_microbatch_too_many_real_microbatches_raises():
    with pytest.raises(
        ValueError, match=r"microbatch: num_real_microbatches=3 exceeds the 2 microbatches"
    ):
        gm.microbatch(_sum, 0, 2, num_real_microbatches=3)(jnp.ones(4))
    with pytest.raises(ValueError, match=r"microbatch: num_real_microbatches must be >= 0"):
        gm.microbatch(_sum, 0, 2, num_real_microbatches=-1)


def test_micro_vmap_out_axes_not_zero_raises():
    with pytest.raises(NotImplementedError, match=r"micro_vmap: out_axes must be 0"):
        gm.micro_vmap(jnp.sum, out_axes=1)


def test_micro_grad_batch_argnum_beyond_arguments_raises():
    with pytest.raises(
        TypeError, match=r"micro_grad: batch_argnums=\(1,\) names positional argument 1"
    ):
        gm.micro_grad(lambda w: jnp.sum(w))(jnp.ones(3))
