"""tree_paths and tree_get: finding a state slot by name, whatever chain it sits in."""

import jax.numpy as jnp
import pytest
from test_checkpoint import _OPT, _params, _step

import gradtx


def test_tree_paths_adam_state_lists_named_slots():
    state = gradtx.adam(0.1).init({"layer3": {"w": jnp.zeros(2)}})
    assert gradtx.tree_paths(state) == [
        "states[0].direction.states[0].mu['layer3']['w']",
        "states[0].direction.states[1].count",
        "states[0].preconditioner.count",
        "states[0].preconditioner.nu['layer3']['w']",
    ]


def test_tree_get_first_moment_of_layer_returns_that_subtree():
    params = _params()
    _, state = _step(params, _OPT.init(params), 0)
    found = gradtx.tree_get(state, "mu['layer3']")
    mu = state.states[0].direction.states[0].mu
    assert found is mu["layer3"]
    assert gradtx.tree_get(state, "mu.layer3.w") is mu["layer3"]["w"]
    assert gradtx.tree_get(state, "nu['head']['z']").dtype == jnp.float32  # |g|^2 is real


def test_tree_get_after_chain_edit_finds_same_slot():
    params = _params()
    short = gradtx.chain(gradtx.scale_by_momentum(0.9), gradtx.scale_by_learning_rate(0.1))
    edited = gradtx.chain(
        gradtx.scale(2.0),
        gradtx.identity(),
        gradtx.scale_by_momentum(0.9),
        gradtx.scale_by_learning_rate(0.1),
    )
    s1, s2 = short.init(params), edited.init(params)
    assert gradtx.tree_paths(gradtx.tree_get(s1, "mu")) == gradtx.tree_paths(
        gradtx.tree_get(s2, "mu")
    )
    assert gradtx.tree_get(s2, "mu['layer3']['w']").shape == (2, 3)


def test_tree_get_whole_path_wins_over_deeper_match():
    tree = {"mu": {"mu": jnp.zeros(1)}}
    assert gradtx.tree_get(tree, "mu") is tree["mu"]
    assert gradtx.tree_get(tree, "['mu']['mu']") is tree["mu"]["mu"]


def test_tree_get_index_and_empty_state_are_found():
    state = gradtx.chain(gradtx.identity(), gradtx.sgd(lambda t: 0.1)).init({"w": jnp.zeros(1)})
    assert gradtx.tree_get(state, "states[0]") == gradtx.EmptyState()
    assert gradtx.tree_get(state, "states[1].states[1].count").dtype == jnp.int32


def test_tree_get_ambiguous_name_raises():
    state = gradtx.adam(0.1).init({"w": jnp.zeros(1)})
    with pytest.raises(
        KeyError,
        match=r"'count' matches 2 subtrees: "
        r"states\[0\].direction.states\[1\].count, "
        r"states\[0\].preconditioner.count; write more",
    ):
        gradtx.tree_get(state, "count")


def test_tree_get_unknown_name_raises_listing_paths():
    state = gradtx.sgd(0.1, momentum=0.9).init({"w": jnp.zeros(1)})
    with pytest.raises(
        KeyError,
        match=r"no subtree's path ends with 'nu'; the tree's leaf "
        r"paths are: states\[0\].trace\['w'\]\"$",
    ):
        gradtx.tree_get(state, "nu")
    with pytest.raises(KeyError, match=r"\(none: the tree has no leaves\)"):
        gradtx.tree_get({}, "mu")
    assert gradtx.tree_get(state, "nu", default=None) is None


def test_tree_get_unreadable_path_raises():
    with pytest.raises(
        ValueError, match=r"tree_get: cannot read the path 'mu\[w\]' at character 2"
    ):
        gradtx.tree_get({}, "mu[w]")
    with pytest.raises(ValueError, match="tree_get: the path is empty"):
        gradtx.tree_get({}, "")
    with pytest.raises(TypeError, match="tree_get: path must be a string"):
        gradtx.tree_get({}, 0)
