"""Checkpoints that restore exactly or refuse loudly (gradtx's .npz format, and Orbax's)."""

import json
import os
import struct
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from checkpoint_files import crafted_manifest
from lazy_import import lazy
from trees import assert_bitwise_equal, wide_tree

import gradtx

ocp = lazy("orbax.checkpoint")


def _params():
    return {
        "layer3": {
            "w": jnp.arange(6, dtype=jnp.float32).reshape(2, 3) / 7,
            "b": jnp.array([0.5, -1.5], jnp.bfloat16),
        },
        "head": {
            "w": jnp.array([1.0, -2.0, 3.0], jnp.float16),
            "z": jnp.array([1 + 2j], jnp.complex64),
            "empty": jnp.zeros((0, 3), jnp.float32),
            "scalar": jnp.array(0.25, jnp.float32),
        },
    }


def _grads(params, seed):
    keys = iter(jax.random.split(jax.random.key(seed), 16))

    def one(p):
        g = jax.random.normal(next(keys), p.shape, jnp.float32)
        return jax.lax.complex(g, -g) if jnp.iscomplexobj(p) else g.astype(p.dtype)

    return jax.tree.map(one, params)


_OPT = gradtx.adamw(lambda t: 0.1 / (1.0 + t.astype(jnp.float32)), weight_decay=0.01)


@jax.jit
def _step(params, opt_state, t):
    updates, opt_state = _OPT.update(_grads(params, t), opt_state, params)
    return gradtx.apply_updates(params, updates), opt_state


def _train(state, steps, start=0):
    for t in range(start, start + steps):
        params, opt_state = _step(state["params"], state["opt_state"], t)
        state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
    return state


def _fresh():
    params = _params()
    return {"params": params, "opt_state": _OPT.init(params), "step": 0}


# ----------------------------------------------------------------------------
# The .npz format.


def test_checkpoint_round_trip_restores_types_and_bits(tmp_path):
    state = _train(_fresh(), 3)
    state["extras"] = (np.arange(3, dtype=np.int64), np.float32(2.5), 1.25, True, None)
    path = tmp_path / "ckpt.npz"
    gradtx.save_checkpoint(path, state)
    template = _fresh()
    template["extras"] = (np.zeros(3, np.int64), np.float32(0), 0.0, False, None)
    restored = gradtx.load_checkpoint(path, template)
    assert_bitwise_equal(restored, state)
    assert isinstance(restored["opt_state"], gradtx.ChainState)
    assert isinstance(restored["opt_state"].states[0].preconditioner, gradtx.RmsState)
    assert type(restored["step"]) is int and restored["step"] == 3


def test_checkpoint_abstract_template_restores_arrays(tmp_path):
    state = _train(_fresh(), 2)
    gradtx.save_checkpoint(tmp_path / "c.npz", state)
    template = jax.eval_shape(_fresh)
    template["step"] = 0
    restored = gradtx.load_checkpoint(tmp_path / "c.npz", template)
    assert_bitwise_equal(restored, state)


def test_checkpoint_resume_continues_exactly(tmp_path):
    straight = _train(_fresh(), 4)
    half = _train(_fresh(), 2)
    gradtx.save_checkpoint(tmp_path / "c.npz", half)
    resumed = gradtx.load_checkpoint(tmp_path / "c.npz", _fresh())
    assert_bitwise_equal(_train(resumed, 2, start=resumed["step"]), straight)


def test_checkpoint_file_is_plain_npz_with_json_manifest(tmp_path):
    state = _fresh()
    gradtx.save_checkpoint(tmp_path / "c.npz", state)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["data", "manifest"]
        manifest = json.loads(npz["manifest"].tobytes())
        data = npz["data"]
    assert manifest["leaves"][0] == {
        "path": "['opt_state'].states[0].direction.states[0].mu['head']['empty']",
        "dtype": "float32",
        "descr": "<f4" if sys.byteorder == "little" else ">f4",
        "shape": [0, 3],
        "offset": 0,
        # The named pytree nodes above the leaf: adamw's chain, its
        # preconditioner combinator, the inner chain, the momentum's state.
        "types": ["ChainState", "PreconditionState", "ChainState", "MomentumState"],
    }
    for entry, leaf in zip(manifest["leaves"], jax.tree.leaves(state)):
        leaf = np.asarray(leaf)
        assert entry["offset"] % 16 == 0
        assert data[entry["offset"] : entry["offset"] + leaf.nbytes].tobytes() == leaf.tobytes()
    assert os.listdir(tmp_path) == ["c.npz"]  # no temporary file left behind


def test_checkpoint_write_failure_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    gradtx.save_checkpoint(path, _fresh())
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk went away"):
        gradtx.save_checkpoint(path, _train(_fresh(), 1))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]


def _write(path, manifest, **arrays):
    raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    np.savez(path, allow_pickle=True, manifest=np.frombuffer(raw, np.uint8), **arrays)


ONE_LEAF = [{"path": "[0]", "dtype": "float32", "shape": [1], "offset": 0}]


def test_load_checkpoint_pickled_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "payload_ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    _write(
        tmp_path / "evil.npz",
        crafted_manifest(ONE_LEAF, 4),
        data=np.array([Payload()], dtype=object),
    )
    with pytest.raises(gradtx.CheckpointError, match=r"the data cannot be read .*allow_pickle"):
        gradtx.load_checkpoint(tmp_path / "evil.npz", (jnp.zeros(1),))
    assert not marker.exists()


def test_load_checkpoint_truncated_file_raises(tmp_path):
    path = tmp_path / "c.npz"
    gradtx.save_checkpoint(path, _fresh())
    data = path.read_bytes()
    template = _fresh()
    for cut in (len(data) // 2, len(data) - 30, 10, 0):
        path.write_bytes(data[:cut])
        with pytest.raises(
            gradtx.CheckpointError, match="not a readable checkpoint .*corrupt, truncated"
        ):
            gradtx.load_checkpoint(path, template)
    assert_bitwise_equal(template, _fresh())  # the template is untouched


def test_load_checkpoint_flipped_byte_raises(tmp_path):
    path = tmp_path / "c.npz"
    state = _train(_fresh(), 1)
    gradtx.save_checkpoint(path, state)
    data = bytearray(path.read_bytes())
    # Flip the last byte of the "data" member (after its zip local header).
    with np.load(path) as npz:
        member = npz.zip.getinfo("data.npy")
    name_len, extra_len = struct.unpack(
        "<HH", data[member.header_offset + 26 : member.header_offset + 30]
    )
    start = member.header_offset + 30 + name_len + extra_len
    data[start + member.compress_size - 1] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(gradtx.CheckpointError, match=r"the data cannot be read \(Bad CRC-32"):
        gradtx.load_checkpoint(path, _fresh())


def test_load_checkpoint_other_formats_raise(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(gradtx.CheckpointError, match="holds a single .npy array"):
        gradtx.load_checkpoint(tmp_path / "one.npy", {})
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(gradtx.CheckpointError, match="has no valid gradtx manifest"):
        gradtx.load_checkpoint(tmp_path / "plain.npz", {})
    (tmp_path / "junk.npz").write_bytes(b"\x80\x04junk" * 10)
    with pytest.raises(gradtx.CheckpointError, match="not a readable checkpoint"):
        gradtx.load_checkpoint(tmp_path / "junk.npz", {})
    with pytest.raises(FileNotFoundError):
        gradtx.load_checkpoint(tmp_path / "missing.npz", {})


def test_load_checkpoint_bad_manifest_raises(tmp_path):
    data = np.zeros(4, np.uint8)
    cases = [
        (crafted_manifest(ONE_LEAF, 4, format="other"), "has no valid gradtx manifest"),
        (
            crafted_manifest(ONE_LEAF, 4, version=7),
            "has checkpoint format version 7; this gradtx reads version 1",
        ),
        (crafted_manifest([{"path": 3}], 4), "has no valid gradtx manifest"),
        (crafted_manifest([dict(ONE_LEAF[0], offset=-4)], 4), "has no valid gradtx manifest"),
        (
            crafted_manifest(ONE_LEAF, 4, byteorder="middle"),
            "was written on a middle-endian machine",
        ),
        (b"{not json", "the manifest cannot be read"),
    ]
    for manifest, message in cases:
        _write(tmp_path / "m.npz", manifest, data=data)
        with pytest.raises(gradtx.CheckpointError, match=message):
            gradtx.load_checkpoint(tmp_path / "m.npz", (jnp.zeros(1),))


def test_load_checkpoint_manifest_disagreeing_with_data_raises(tmp_path):
    template = (jnp.zeros(2),)
    leaves = [{"path": "[0]", "dtype": "float32", "shape": [2], "offset": 0}]
    _write(tmp_path / "m.npz", crafted_manifest(leaves, 8), data=np.zeros(3, np.uint8))
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"the data is uint8\[3\] but the manifest "
        r"says uint8\[8\]",
    ):
        gradtx.load_checkpoint(tmp_path / "m.npz", template)
    _write(
        tmp_path / "m.npz",
        crafted_manifest([dict(leaves[0], offset=4)], 8),
        data=np.zeros(8, np.uint8),
    )
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"leaf \[0\] \(8 bytes at offset 4\) lies "
        r"beyond the end of the data \(8 bytes; it belongs at offset 0\)",
    ):
        gradtx.load_checkpoint(tmp_path / "m.npz", template)
    _write(tmp_path / "m.npz", crafted_manifest(leaves, 8))
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"holds the members \['manifest.npy'\]; a "
        r"gradtx checkpoint holds exactly",
    ):
        gradtx.load_checkpoint(tmp_path / "m.npz", template)


def test_load_checkpoint_leaf_order_mismatch_raises(tmp_path):
    leaves = [
        {"path": "[1]", "dtype": "float32", "shape": [1], "offset": 0},
        {"path": "[0]", "dtype": "float32", "shape": [1], "offset": 16},
    ]
    _write(tmp_path / "m.npz", crafted_manifest(leaves, 20), data=np.zeros(20, np.uint8))
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"the leaves are in another order: leaf 0 "
        r"is \[1\] in the checkpoint",
    ):
        gradtx.load_checkpoint(tmp_path / "m.npz", (jnp.zeros(1), jnp.zeros(1)))


def test_load_checkpoint_other_optimizer_raises(tmp_path):
    params = _params()
    gradtx.save_checkpoint(tmp_path / "c.npz", {"opt_state": gradtx.adam(0.1).init(params)})
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"does not match the template: the template has 1 leaf the "
        r"checkpoint lacks, first \['opt_state'\].states\[0\].trace\['x'\]; "
        r"the checkpoint has 14 leaves the template lacks, first "
        r"\['opt_state'\].states\[0\].direction.states\[0\]"
        r".mu\['head'\]\['empty'\]; was it "
        r"saved from another model or optimizer\?",
    ):
        gradtx.load_checkpoint(
            tmp_path / "c.npz",
            {"opt_state": gradtx.sgd(0.1, momentum=0.9).init({"x": jnp.zeros(1)})},
        )


def test_load_checkpoint_shape_or_dtype_mismatch_names_leaf(tmp_path):
    gradtx.save_checkpoint(tmp_path / "c.npz", {"w": jnp.zeros(3), "b": jnp.zeros(2, jnp.bfloat16)})
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"leaf \['w'\] is float32\[3\] in the checkpoint but float32\[4\] "
        r"in the template",
    ):
        gradtx.load_checkpoint(
            tmp_path / "c.npz", {"w": jnp.zeros(4), "b": jnp.zeros(2, jnp.bfloat16)}
        )
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"leaf \['b'\] is bfloat16\[2\] in the checkpoint but float16\[2\] "
        r"in the template \(and 1 more\)",
    ):
        gradtx.load_checkpoint(
            tmp_path / "c.npz", {"w": jnp.zeros(3, jnp.float16), "b": jnp.zeros(2, jnp.float16)}
        )


def test_save_checkpoint_non_array_leaf_raises(tmp_path):
    with pytest.raises(
        TypeError,
        match=r"save_checkpoint: leaf \['name'\] is a str; a checkpoint "
        r"holds arrays and numbers only",
    ):
        gradtx.save_checkpoint(tmp_path / "c.npz", {"name": "adam", "w": jnp.zeros(1)})
    with pytest.raises(TypeError, match=r"leaf \[0\] is a ndarray"):
        gradtx.save_checkpoint(tmp_path / "c.npz", [np.array([object()])])
    assert os.listdir(tmp_path) == []


def test_load_checkpoint_non_array_template_leaf_raises(tmp_path):
    gradtx.save_checkpoint(tmp_path / "c.npz", {"w": jnp.zeros(1)})
    with pytest.raises(
        TypeError,
        match=r"load_checkpoint: template leaf \['w'\] is a str; the "
        r"template must hold arrays",
    ):
        gradtx.load_checkpoint(tmp_path / "c.npz", {"w": "zeros"})


# ----------------------------------------------------------------------------
# Orbax.


def test_orbax_standard_checkpointer_restores_named_state(tmp_path):
    # Orbax refuses zero-size arrays ("Cannot save arrays with zero size"), so
    # this state has none; gradtx.save_checkpoint stores them.
    def fresh():
        params = _params()
        del params["head"]["empty"]
        return {"params": params, "opt_state": _OPT.init(params), "step": jnp.zeros((), jnp.int32)}

    state = fresh()
    for t in range(2):
        params, opt_state = _step(state["params"], state["opt_state"], t)
        state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
    checkpointer = ocp.StandardCheckpointer()
    try:
        checkpointer.save(tmp_path / "orbax", state)
        checkpointer.wait_until_finished()
        template = fresh()
        restored = checkpointer.restore(tmp_path / "orbax", template)
        abstract = checkpointer.restore(tmp_path / "orbax", jax.eval_shape(lambda: template))
    finally:
        checkpointer.close()
    for tree in (restored, abstract):
        assert_bitwise_equal(tree, state)
        assert isinstance(tree["opt_state"], gradtx.ChainState)
        assert isinstance(tree["opt_state"].states[0], gradtx.PreconditionState)
    assert gradtx.tree_get(restored, "mu['layer3']['b']").dtype == jnp.bfloat16


# ----------------------------------------------------------------------------
# Leaves of every kind: other byte orders, float0, typed PRNG keys.


def test_checkpoint_big_endian_leaves_round_trip_their_values(tmp_path):
    values = {
        "f4": [1.0, 2.0, 3.0],
        "f8": [0.1, -2.5, 1e300],
        "i8": [1, -2, 2**40],
        "u2": [1, 2, 65535],
        "c8": [1 + 2j, -3j, 0.5],
    }
    tree = {k: np.array(v, ">" + k) for k, v in values.items()}
    gradtx.save_checkpoint(tmp_path / "be.npz", tree)
    for order in (">", "<"):
        template = {k: np.zeros(3, order + k) for k in values}
        restored = gradtx.load_checkpoint(tmp_path / "be.npz", template)
        for k, v in values.items():
            assert restored[k].dtype == np.dtype(order + k)  # the template's byte order
            np.testing.assert_array_equal(restored[k], np.array(v, np.dtype(k)))
    restored = gradtx.load_checkpoint(tmp_path / "be.npz", {**tree, "f4": jnp.zeros(3)})
    np.testing.assert_array_equal(restored["f4"], np.array([1.0, 2.0, 3.0], np.float32))


def test_checkpoint_round_trips_float0_and_typed_prng_keys(tmp_path):
    # float0 is the dtype of a gradient with respect to an integer argument.
    grads = jax.grad(
        lambda x, n: jnp.sum(x) * jnp.sum(n).astype(jnp.float32), argnums=(0, 1), allow_int=True
    )(jnp.ones(2), np.arange(3))
    state = {
        "grads": grads,
        "key": jax.random.key(0),
        "keys": jax.random.split(jax.random.key(1, impl="rbg"), 3),
        "w": jnp.array([1.0, 2.0]),
    }
    gradtx.save_checkpoint(tmp_path / "c.npz", state)
    restored = gradtx.load_checkpoint(tmp_path / "c.npz", state)
    assert restored["grads"][1].dtype == jax.dtypes.float0
    assert restored["grads"][1].shape == (3,)
    np.testing.assert_array_equal(restored["grads"][0], [3.0, 3.0])
    for name in ("key", "keys"):
        assert jax.random.key_impl(restored[name]) == jax.random.key_impl(state[name])
        np.testing.assert_array_equal(
            jax.random.key_data(restored[name]), jax.random.key_data(state[name])
        )
    np.testing.assert_array_equal(
        jax.random.normal(restored["key"], (4,)), jax.random.normal(state["key"], (4,))
    )
    abstract = gradtx.load_checkpoint(tmp_path / "c.npz", jax.eval_shape(lambda: state))
    assert jax.random.key_impl(abstract["keys"]) == "rbg"


def test_load_checkpoint_key_of_another_implementation_raises(tmp_path):
    gradtx.save_checkpoint(tmp_path / "c.npz", {"key": jax.random.key(0, impl="rbg")})
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"leaf \['key'\] is a rbg PRNG key in the checkpoint but a unsafe_rbg PRNG "
        r"key in the template",
    ):
        gradtx.load_checkpoint(tmp_path / "c.npz", {"key": jax.random.key(0, impl="unsafe_rbg")})
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"leaf \['key'\] is a rbg PRNG key in the checkpoint but not a PRNG key",
    ):
        gradtx.load_checkpoint(tmp_path / "c.npz", {"key": jnp.zeros(4, jnp.uint32)})


# ----------------------------------------------------------------------------
# A state of another optimizer whose leaves have the same paths.

_SAME_PATHS_AS_ADABELIEF = [
    (lambda: gradtx.yogi(0.1), "ScaleByYogiState"),
    (lambda: gradtx.adopt(0.1), "ScaleByAdoptState"),
    (lambda: gradtx.rmsprop(0.1, centered=True), "CenteredRmsState"),
]


@pytest.mark.parametrize("make, state_type", _SAME_PATHS_AS_ADABELIEF)
def test_load_checkpoint_state_of_another_optimizer_with_the_same_paths_raises(
    tmp_path, make, state_type
):
    params = {"w": jnp.ones(3)}
    gradtx.save_checkpoint(tmp_path / "c.npz", {"opt_state": gradtx.adabelief(0.1).init(params)})
    template = {"opt_state": make().init(params)}
    saved_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(template)[0]]
    adabelief_paths = jax.tree_util.tree_flatten_with_path(
        {"opt_state": gradtx.adabelief(0.1).init(params)}
    )[0]
    assert saved_paths == [p for p, _ in adabelief_paths]  # only the types differ
    with pytest.raises(
        gradtx.CheckpointError,
        match=r"does not match the template: leaf \['opt_state'\]\.states\[0\]\.count is in "
        r"ChainState > ScaleByBeliefState in the checkpoint but in ChainState > "
        + state_type
        + r" in the template; was it saved from another model or optimizer\?",
    ):
        gradtx.load_checkpoint(tmp_path / "c.npz", template)


def _drop_recent_manifest_fields(path):
    """Rewrite ``path`` as gradtx wrote files before it kept node types and plain descrs."""
    with np.load(path, allow_pickle=False) as npz:
        manifest = json.loads(npz["manifest"].tobytes())
        data = npz["data"]
    for entry in manifest["leaves"]:
        del entry["types"]
        if isinstance(entry.get("descr"), str):
            del entry["descr"]
    _write(path, manifest, data=data)


def test_load_checkpoint_file_without_node_types_is_checked_by_paths_only(tmp_path):
    # Such a file loads into any template with its leaf paths, dtypes and shapes,
    # as it did when it was written: a state of another optimizer with the same
    # paths is not told apart there.
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    opt = gradtx.adabelief(0.1)
    state = opt.update(params, opt.init(params), params)[1]
    gradtx.save_checkpoint(tmp_path / "c.npz", {"opt_state": state})
    _drop_recent_manifest_fields(tmp_path / "c.npz")
    restored = gradtx.load_checkpoint(tmp_path / "c.npz", {"opt_state": opt.init(params)})
    assert_bitwise_equal(restored, {"opt_state": state})
    other = gradtx.load_checkpoint(tmp_path / "c.npz", {"opt_state": gradtx.yogi(0.1).init(params)})
    assert isinstance(other["opt_state"].states[0], type(gradtx.yogi(0.1).init(params).states[0]))


def test_orbax_keeps_the_shapes_of_unpacked_params_and_restores_them(tmp_path):
    # Orbax checks each array's path, shape and dtype against what it stored; a
    # packed buffer's path is its dtype name, so the documented way through
    # orbax is the unpacked tree, whose stored shapes tell models apart.
    a = {"embed": jnp.arange(4.0), "head": jnp.arange(6.0).reshape(2, 3) + 100}
    checkpointer = ocp.StandardCheckpointer()
    try:
        checkpointer.save(tmp_path / "orbax", {"params": gradtx.pack(a).unpack()})
        checkpointer.wait_until_finished()
        stored = checkpointer.metadata(tmp_path / "orbax").item_metadata.tree
        template = {"params": jax.tree.map(jnp.zeros_like, a)}
        restored = checkpointer.restore(tmp_path / "orbax", template)
    finally:
        checkpointer.close()
    shapes = jax.tree.map(lambda x: tuple(x.shape), stored, is_leaf=lambda x: hasattr(x, "shape"))
    assert shapes == {"params": {"embed": (4,), "head": (2, 3)}}
    assert_bitwise_equal(gradtx.pack(restored["params"]).buffers, gradtx.pack(a).buffers)


# A wide tree: 10,000 leaves through init, naming and a checkpoint round trip.


@pytest.mark.slow
def test_ten_thousand_leaf_state_inits_names_and_checkpoints(tmp_path):
    params = wide_tree(10_000)
    opt = gradtx.adam(1e-3)
    state = opt.init(params)
    paths = gradtx.tree_paths(state)
    assert len(paths) == 2 * 10_000 + 2
    assert paths[10_000 - 1] == "states[0].direction.states[0].mu['block099']['w99']"
    assert gradtx.tree_get(state, "nu['block042']['w07']").shape == (2,)
    training_state = {"params": params, "opt_state": state, "step": 0}
    gradtx.save_checkpoint(tmp_path / "wide.npz", training_state)
    restored = gradtx.load_checkpoint(tmp_path / "wide.npz", training_state)
    assert jax.tree.structure(restored) == jax.tree.structure(training_state)
    for got, want in zip(jax.tree.leaves(restored["params"]), jax.tree.leaves(params)):
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes()
