"""Parameter groups: partition, masked, freeze, set_to_zero, reset_group."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.tree_util import GetAttrKey

import gradtx


@jax.tree_util.register_pytree_with_keys_class
class Layer:
    """A small custom pytree node, as a user's model class would be."""

    def __init__(self, w, b):
        self.w, self.b = w, b

    def tree_flatten_with_keys(self):
        return ((GetAttrKey("w"), self.w), (GetAttrKey("b"), self.b)), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


def _params():
    r = np.random.default_rng(1)
    f = lambda *s: jnp.asarray(r.normal(size=s), jnp.float32)
    return {
        "enc": [Layer(f(3, 2), f(2)), Layer(f(2, 2), f(2))],
        "head": (f(2, 1), None, f(1)),
        "emb": f(4, 3),
    }


def _grads(step):
    r = np.random.default_rng(10 + step)
    return jax.tree.map(lambda p: jnp.asarray(r.normal(size=p.shape), jnp.float32), _params())


LABELS = {"enc": "adam", "head": "sgd", "emb": "frozen"}  # a prefix of the params


def _groups():
    return {
        "adam": gradtx.adam(0.05),
        "sgd": gradtx.sgd(0.1, momentum=0.9),
        "frozen": gradtx.set_to_zero(),
    }


@pytest.mark.parametrize(
    "labels",
    [
        LABELS,
        lambda p: {
            "enc": jax.tree.map(lambda _: "adam", p["enc"]),
            "head": jax.tree.map(lambda _: "sgd", p["head"]),
            "emb": "frozen",
        },
    ],
    ids=["prefix_pytree", "function"],
)
def test_partition_matches_each_optimizer_on_its_subtree(labels):
    params = _params()
    tx = gradtx.partition(_groups(), labels)
    step = jax.jit(tx.update)
    state = tx.init(params)
    adam, sgd = gradtx.adam(0.05), gradtx.sgd(0.1, momentum=0.9)
    sa, ss = adam.init(params["enc"]), sgd.init(params["head"])
    adam_step, sgd_step = jax.jit(adam.update), jax.jit(sgd.update)
    for t in range(3):
        g = _grads(t)
        u, state = step(g, state, params)
        ua, sa = adam_step(g["enc"], sa, params["enc"])
        us, ss = sgd_step(g["head"], ss, params["head"])
        chex.assert_trees_all_close(u, {"enc": ua, "head": us, "emb": jnp.zeros((4, 3))}, atol=1e-6)
    assert state.states["frozen"] == gradtx.EmptyState()


def test_partition_matches_optax_partition():
    params = _params()
    ours = gradtx.partition(
        {"adam": gradtx.adam(0.05), "sgd": gradtx.sgd(0.1, momentum=0.9)},
        {"enc": "adam", "head": "sgd", "emb": "sgd"},
    )
    theirs = optax.partition(
        {"adam": optax.adam(0.05), "sgd": optax.sgd(0.1, momentum=0.9)},
        {"enc": "adam", "head": "sgd", "emb": "sgd"},
    )
    s1, s2 = ours.init(params), theirs.init(params)
    step1, step2 = jax.jit(ours.update), jax.jit(theirs.update)
    for t in range(2):
        u1, s1 = step1(_grads(t), s1, params)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes dtypes internally
            u2, s2 = step2(_grads(t), s2, params)
        chex.assert_trees_all_close(u1, u2, atol=1e-6)


def test_partition_group_state_holds_only_its_parameters():
    params = _params()
    state = gradtx.partition(_groups(), LABELS).init(params)
    adam_mu = gradtx.tree_get(state.states["adam"], "mu")
    assert len(jax.tree.leaves(adam_mu)) == 4  # the two Layers' w and b
    assert adam_mu["emb"] is None and adam_mu["head"] == (None, None, None)


def test_partition_under_vmap_matches_loop():
    tx = gradtx.partition({"a": gradtx.adam(0.1), "b": gradtx.sgd(0.1)}, {"w": "a", "b": "b"})
    params = {"w": jnp.arange(6.0).reshape(3, 2), "b": jnp.arange(3.0)}
    grads = {"w": jnp.ones((3, 2)) * jnp.arange(1.0, 4.0)[:, None], "b": jnp.arange(3.0) - 1}
    run = lambda g, p: tx.update(g, tx.init(p), p)[0]
    got, loop = jax.jit(jax.vmap(run))(grads, params), jax.jit(run)
    for i in range(3):
        one = lambda t: jax.tree.map(lambda x: x[i], t)
        want = loop(one(grads), one(params))
        chex.assert_trees_all_close(one(got), want, atol=1e-6)


# --- the gradient stream reaches a wrapped preconditioner --------------------


def test_masked_precondition_measures_raw_gradient_on_selected_leaves():
    decay, b2, eps = 0.9, 0.8, 1e-8
    tx = gradtx.masked(
        gradtx.precondition(
            gradtx.scale_by_momentum(decay), by=gradtx.scale_by_rms(b2, eps, eps_in_sqrt=False)
        ),
        {"w": True, "b": False},
    )
    params = {"w": jnp.zeros(3), "b": jnp.zeros(3)}
    state = tx.init(params)
    gs = [np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.1, -1.0]), np.array([2.0, 2.0, -0.2])]
    m = np.zeros(3)
    v = np.zeros(3)
    for g in gs:
        u, state = tx.update(
            {"w": jnp.asarray(g, jnp.float32), "b": jnp.asarray(g, jnp.float32)}, state, params
        )
        m = decay * m + g
        v = b2 * v + (1 - b2) * g**2  # of the raw gradient, not of the momentum
        np.testing.assert_allclose(np.asarray(u["w"]), m / (np.sqrt(v) + eps), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(u["b"]), g, rtol=1e-6)


# --- masked, set_to_zero, freeze ---------------------------------------------


def test_masked_passes_unselected_leaves_unchanged():
    params = _params()
    mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
    tx = gradtx.masked(gradtx.clip(0.1), mask)
    g = _grads(0)
    u, state = tx.update(g, tx.init(params), params)
    for (path, got), want, keep in zip(
        jax.tree_util.tree_flatten_with_path(u)[0],
        jax.tree.leaves(g),
        jax.tree.leaves(mask(params)),
    ):
        expected = np.clip(np.asarray(want), -0.1, 0.1) if keep else np.asarray(want)
        np.testing.assert_allclose(np.asarray(got), expected, err_msg=str(path))
    assert state == gradtx.MaskedState(gradtx.EmptyState())


def test_freeze_last_in_chain_keeps_frozen_params_exactly():
    params = _params()
    frozen = {"enc": True, "head": False, "emb": True}
    opt = gradtx.chain(gradtx.adamw(0.1, weight_decay=0.1), gradtx.freeze(frozen))
    ref = gradtx.adamw(0.1, weight_decay=0.1)
    step, ref_step = jax.jit(opt.update), jax.jit(ref.update)
    p, pr = params, params
    s, sr = opt.init(params), ref.init(params)
    for t in range(3):
        u, s = step(_grads(t), s, p)
        ur, sr = ref_step(_grads(t), sr, pr)
        p, pr = gradtx.apply_updates(p, u), gradtx.apply_updates(pr, ur)
    chex.assert_trees_all_close(p["enc"], params["enc"], rtol=0, atol=0)
    np.testing.assert_array_equal(np.asarray(p["emb"]), np.asarray(params["emb"]))
    chex.assert_trees_all_close(p["head"], pr["head"], atol=1e-6)


# --- reset_group ---------------------------------------------------------------


def _two_momentum_groups():
    return gradtx.partition(
        {"a": gradtx.sgd(0.1, momentum=0.9), "b": gradtx.sgd(0.1, momentum=0.9)},
        {"w": "a", "b": "b"},
    )


def test_reset_group_resets_one_group_and_keeps_the_other():
    params = {"w": jnp.array([1.0, 2.0]), "b": jnp.array([3.0])}
    g = {"w": jnp.array([1.0, 1.0]), "b": jnp.array([2.0])}
    tx = _two_momentum_groups()
    state = tx.init(params)
    for _ in range(2):
        _, state = tx.update(g, state, params)
    new = gradtx.reset_group(tx, state, params, "a")
    chex.assert_trees_all_close(new.states["a"], tx.init(params).states["a"], rtol=0, atol=0)
    chex.assert_trees_all_close(new.states["b"], state.states["b"], rtol=0, atol=0)
    u, _ = tx.update(g, new, params)
    np.testing.assert_allclose(np.asarray(u["w"]), -0.1 * np.ones(2), rtol=1e-6)  # fresh momentum


def test_reset_group_reaches_through_chain_and_wrapper():
    params = {"w": jnp.array([1.0, 2.0]), "b": jnp.array([3.0])}
    g = {"w": jnp.array([1.0, 1.0]), "b": jnp.array([2.0])}
    tx = gradtx.apply_if_finite(gradtx.chain(gradtx.clip(10.0), _two_momentum_groups()), 3)
    state = tx.init(params)
    _, state = tx.update(g, state, params)
    new = gradtx.reset_group(tx, state, params, "b")
    groups = new.inner_state.states[1].states
    np.testing.assert_array_equal(np.asarray(groups["b"].states[0].trace["b"]), [0.0])
    np.testing.assert_array_equal(np.asarray(groups["a"].states[0].trace["w"]), [1.0, 1.0])


def test_reset_group_unknown_label_raises():
    tx = _two_momentum_groups()
    params = {"w": jnp.ones(2), "b": jnp.ones(1)}
    with pytest.raises(ValueError, match="reset_group: no partition in partition has a group 'c'"):
        gradtx.reset_group(tx, tx.init(params), params, "c")


# --- errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels, match",
    [
        (
            {"enc": "adam", "head": "sgd"},
            r"partition: param_labels do not match the params: params leaf \['emb'\] has no entry",
        ),
        (
            {"enc": "adam", "head": "sgd", "emb": "frozen", "emb2": "sgd"},
            r"param_labels leaf \['emb2'\] matches no parameter",
        ),
        (
            {"enc": "adam", "head": ("sgd", None, None), "emb": "frozen"},
            r"params leaf \['head'\]\[2\] has no entry in param_labels",
        ),
        (
            {"enc": "adam", "head": "sgd", "emb": "adamw"},
            r"partition: params leaf \['emb'\] has label 'adamw', which has no transform; "
            r"the groups are \['adam', 'sgd', 'frozen'\]",
        ),
    ],
)
def test_partition_bad_labels_name_the_path(labels, match):
    tx = gradtx.partition(_groups(), labels)
    with pytest.raises(ValueError, match=match):
        tx.init(_params())


def test_partition_labels_of_a_custom_node_name_the_attribute():
    labels = {
        "enc": [Layer("adam", "adam"), {"w": "adam", "b": "adam"}],
        "head": "sgd",
        "emb": "frozen",
    }
    with pytest.raises(
        ValueError, match=r"params leaf \['enc'\]\[1\]\.w has no entry in param_labels"
    ):
        gradtx.partition(_groups(), labels).init(_params())


def test_partition_error_inside_a_group_names_the_group():
    tx = gradtx.partition(
        {"wd": gradtx.add_decayed_weights(0.1), "plain": gradtx.identity()},
        {"w": "wd", "b": "plain"},
    )
    params = {"w": jnp.ones(2), "b": jnp.ones(1)}
    with pytest.raises(
        ValueError, match="partition: group 'wd': add_decayed_weights: update needs params"
    ):
        tx.update(params, tx.init(params))


def test_partition_stale_state_raises():
    tx = gradtx.partition(_groups(), LABELS)
    params = _params()
    with pytest.raises(TypeError, match="partition: expected a PartitionState, got ChainState"):
        tx.update(_grads(0), gradtx.adam(0.1).init(params), params)
    other = gradtx.partition({"adam": gradtx.adam(0.1)}, "adam").init(params)
    with pytest.raises(ValueError, match=r"partition: the state has groups \['adam'\] but"):
        tx.update(_grads(0), other, params)


def test_partition_bad_transforms_raise():
    with pytest.raises(TypeError, match="partition: transforms must be a non-empty dict"):
        gradtx.partition([gradtx.adam(0.1)], "a")
    with pytest.raises(
        TypeError, match=r"partition: transforms\['a'\] must be a gradient transformation"
    ):
        gradtx.partition({"a": 0.1}, "a")


def test_masked_non_bool_mask_raises():
    tx = gradtx.masked(gradtx.clip(1.0), {"w": "yes"})
    with pytest.raises(
        TypeError, match=r"masked: mask entry for params leaf \['w'\] must be a Python bool"
    ):
        tx.init({"w": jnp.ones(2)})


def test_masked_state_maps_with_optax_tree_map_params():
    params = {"a": jnp.ones(2), "b": [jnp.ones(3), jnp.ones(1)]}
    tx = gradtx.masked(gradtx.sgd(0.1, momentum=0.9), {"a": True, "b": [False, True]})
    state = tx.init(params)
    doubled = optax.tree.map_params(tx, lambda v: 2 * v, state)
    trace = doubled.inner_state.states[0].trace
    np.testing.assert_array_equal(trace["a"], np.zeros(2))
    assert trace["b"][0] is None
    assert jax.tree.structure(doubled) == jax.tree.structure(state)
