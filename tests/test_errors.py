"""Bad input: hyperparameters, mismatched trees, foreign states, integer leaves.

Every test matches the message: it must name the transform and the argument
or leaf path, and say what was expected.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optimizers import IDS, OPTIMIZERS

import gradtx

# (call, expected message).  The message names the transform, the argument,
# the accepted range and the value received.
INVALID = [
    (lambda: gradtx.adam(1e-3, b1=1.2), r"^adam: b1 must be in \[0, 1\), got 1\.2$"),
    (lambda: gradtx.adam(1e-3, b2=-0.1), r"^adam: b2 must be in \[0, 1\), got -0\.1$"),
    (lambda: gradtx.adam(1e-3, eps=-1e-8), r"^adam: eps must be in \[0, inf\], got -1e-08$"),
    (
        lambda: gradtx.adam(1e-3, eps_root=-1.0),
        r"^adam: eps_root must be in \[0, inf\], got -1\.0$",
    ),
    (lambda: gradtx.adam(-1e-3), r"^adam: learning_rate must be in \[0, inf\], got -0\.001$"),
    (lambda: gradtx.adam(float("nan")), r"^adam: learning_rate must be in \[0, inf\], got nan$"),
    (
        lambda: gradtx.adamw(1e-3, weight_decay=-0.1),
        r"^adamw: weight_decay must be in \[0, inf\], got -0\.1$",
    ),
    (lambda: gradtx.adamw(1e-3, b1=1.0), r"^adamw: b1 must be in \[0, 1\), got 1\.0$"),
    (lambda: gradtx.amsgrad(1e-3, b2=1.0), r"^amsgrad: b2 must be in \[0, 1\), got 1\.0$"),
    (lambda: gradtx.sgd(-0.1), r"^sgd: learning_rate must be in \[0, inf\], got -0\.1$"),
    (lambda: gradtx.sgd(0.1, momentum=1.0), r"^sgd: momentum must be in \[0, 1\), got 1\.0$"),
    (lambda: gradtx.sgd(0.1, nesterov=True), r"^sgd: nesterov=True needs a momentum"),
    (lambda: gradtx.rmsprop(0.1, decay=1.5), r"^rmsprop: decay must be in \[0, 1\), got 1\.5$"),
    (lambda: gradtx.rmsprop(0.1, eps=-1.0), r"^rmsprop: eps must be in \[0, inf\], got -1\.0$"),
    (
        lambda: gradtx.rmsprop(0.1, momentum=-0.5),
        r"^rmsprop: momentum must be in \[0, 1\), got -0\.5$",
    ),
    (
        lambda: gradtx.rmsprop(0.1, initial_scale=-1.0),
        r"^rmsprop: initial_scale must be in \[0, inf\], got -1\.0$",
    ),
    (
        lambda: gradtx.adagrad(0.1, initial_accumulator_value=-0.1),
        r"^adagrad: initial_accumulator_value must be in \[0, inf\], got -0\.1$",
    ),
    (lambda: gradtx.adagrad(0.1, eps=-1.0), r"^adagrad: eps must be in \[0, inf\], got -1\.0$"),
    (lambda: gradtx.adadelta(rho=1.0), r"^adadelta: rho must be in \[0, 1\), got 1\.0$"),
    (lambda: gradtx.adadelta(eps=0.0), r"^adadelta: eps must be in \(0, inf\], got 0\.0$"),
    (
        lambda: gradtx.adadelta(weight_decay=-1.0),
        r"^adadelta: weight_decay must be in \[0, inf\], got -1\.0$",
    ),
    (lambda: gradtx.scale(float("nan")), r"^scale: step_size must be in \[-inf, inf\], got nan$"),
    (
        lambda: gradtx.scale_by_learning_rate(-1.0),
        r"^scale_by_learning_rate: learning_rate must be in \[0, inf\], got -1\.0$",
    ),
    (
        lambda: gradtx.scale_by_momentum(1.0),
        r"^scale_by_momentum: decay must be in \[0, 1\), got 1\.0$",
    ),
    (lambda: gradtx.trace(-0.1), r"^trace: decay must be in \[0, 1\], got -0\.1$"),
    (
        lambda: gradtx.bias_correction(1.0),
        r"^bias_correction: decay must be in \[0, 1\), got 1\.0$",
    ),
    (lambda: gradtx.scale_by_rms(1.0), r"^scale_by_rms: decay must be in \[0, 1\), got 1\.0$"),
    (
        lambda: gradtx.scale_by_rms(0.9, eps_root=-1e-3),
        r"^scale_by_rms: eps_root must be in \[0, inf\], got -0\.001$",
    ),
    (
        lambda: gradtx.scale_by_rms(0.9, initial_scale=-1.0),
        r"^scale_by_rms: initial_scale must be in \[0, inf\], got -1\.0$",
    ),
    (
        lambda: gradtx.scale_by_centered_rms(0.9, eps=-1.0),
        r"^scale_by_centered_rms: eps must be in \[0, inf\], got -1\.0$",
    ),
    (
        lambda: gradtx.scale_by_rss(-1.0),
        r"^scale_by_rss: initial_accumulator_value must be in \[0, inf\], got -1\.0$",
    ),
    (
        lambda: gradtx.scale_by_adadelta(rho=2.0),
        r"^scale_by_adadelta: rho must be in \[0, 1\), got 2\.0$",
    ),
    (
        lambda: gradtx.scale_by_max_rms(1.0),
        r"^scale_by_max_rms: decay must be in \[0, 1\), got 1\.0$",
    ),
    (
        lambda: gradtx.add_decayed_weights(-0.1),
        r"^add_decayed_weights: weight_decay must be in \[0, inf\], got -0\.1$",
    ),
]


@pytest.mark.parametrize(
    "make, message",
    INVALID,
    ids=[m.split(":")[0][1:] + "-" + str(i) for i, (_, m) in enumerate(INVALID)],
)
def test_invalid_hyperparameter_raises_naming_transform_argument_range_and_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_non_numeric_hyperparameter_raises_type_error():
    with pytest.raises(TypeError, match=r"^adam: b1 must be a number, got 'high'$"):
        gradtx.adam(1e-3, b1="high")


def test_traced_hyperparameters_are_let_through_and_used():
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.3, -0.5])}

    @jax.jit
    def one_step(lr, b1, b2, eps):
        opt = gradtx.adam(lr, b1=b1, b2=b2, eps=eps)
        updates, _ = opt.update(grads, opt.init(params), params)
        return updates

    # Values out of range cannot be checked while traced: they pass.
    traced = one_step(0.1, 0.9, 0.99, 1e-8)
    eager, _ = gradtx.adam(0.1, b1=0.9, b2=0.99, eps=1e-8).update(
        grads, gradtx.adam(0.1).init(params), params
    )
    np.testing.assert_allclose(traced["w"], eager["w"], rtol=1e-6)
    assert np.all(np.isfinite(one_step(0.1, 1.5, 0.99, 1e-8)["w"]))


# ----------------------------------------------------------------------------
# Trees that do not match the state.

PARAMS = {"layer": {"b": jnp.zeros(2), "w": jnp.ones((2, 2))}}


# adadelta's first part is its L2 step (as in optax), which meets the params first.
@pytest.mark.parametrize(
    "name, owner, other",
    [
        ("adam", "scale_by_momentum", "the state's moments"),
        ("rmsprop", "scale_by_rms", "the state's moments"),
        ("adagrad", "scale_by_rss", "the state's moments"),
        ("adadelta", "add_decayed_weights", "params"),
    ],
)
def test_grads_with_other_structure_raise_naming_transform_and_leaf(name, owner, other):
    row = OPTIMIZERS[IDS.index(name)]
    opt = row.factory(**row.typical)
    state = opt.init(PARAMS)
    grads = {"layer": {"b": jnp.zeros(2), "kernel": jnp.ones((2, 2))}}
    with pytest.raises(
        ValueError,
        match=rf"^{name}: {owner}: updates do not match {other}: "
        rf"updates lack leaf \['layer'\]\['w'\], which {other} "
        rf"have; updates have leaf \['layer'\]\['kernel'\]",
    ):
        opt.update(grads, state, PARAMS)


def test_grads_with_an_extra_leaf_raise_naming_the_unmatched_leaf():
    opt = gradtx.sgd(0.1, momentum=0.9)
    grads = {"layer": {"b": jnp.zeros(2), "w": jnp.ones((2, 2)), "z": jnp.ones(1)}}
    with pytest.raises(
        ValueError,
        match=r"^sgd: trace: .*updates have leaf \['layer'\]\['z'\], which the "
        r"state's moments do not",
    ):
        opt.update(grads, opt.init(PARAMS), PARAMS)


def test_adamw_with_params_of_other_structure_raises_naming_leaf():
    opt = gradtx.adamw(0.1)
    state = opt.init(PARAMS)
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    other = {"layer": {"b": jnp.zeros(2), "v": jnp.ones((2, 2))}}
    with pytest.raises(ValueError, match=r"^adamw: add_decayed_weights: .*\['layer'\]\['v'\]"):
        opt.update(grads, state, other)


def test_adamw_mask_of_other_structure_raises_naming_mask():
    opt = gradtx.adamw(0.1, mask={"layer": {"w": True}})
    with pytest.raises(
        ValueError,
        match=r"^adamw: add_decayed_weights: mask do not match params: mask lack "
        r"leaf \['layer'\]\['b'\]",
    ):
        opt.update(jax.tree.map(jnp.ones_like, PARAMS), opt.init(PARAMS), PARAMS)


def test_add_decayed_weights_without_params_raises():
    opt = gradtx.adamw(0.1)
    with pytest.raises(ValueError, match=r"^adamw: add_decayed_weights: update needs params"):
        opt.update(jax.tree.map(jnp.ones_like, PARAMS), opt.init(PARAMS))


# ----------------------------------------------------------------------------
# A state made by another optimizer's init.


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: gradtx.adam(0.1), r"^adam: expected a ChainState, got None; call opt\.init"),
        (
            lambda: gradtx.scale_by_rss(),
            r"^scale_by_rss: expected a RssState, got None; call opt\.init\(params\) first",
        ),
    ],
)
def test_update_with_none_state_says_to_call_init(make, message):
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    with pytest.raises(TypeError, match=message):
        make().update(grads, None, PARAMS)


GRADS = jax.tree.map(jnp.ones_like, PARAMS)


def test_state_of_a_shorter_chain_raises_clear_error_not_index_error():
    state = gradtx.sgd(0.1, momentum=0.9).init(PARAMS)
    with pytest.raises(
        ValueError,
        match=r"^rmsprop: got state for 2 transforms but the chain has "
        r"3; was this state made by another optimizer's init\?",
    ):
        gradtx.rmsprop(0.1).update(GRADS, state, PARAMS)


def test_state_of_a_longer_chain_raises_clear_error():
    state = gradtx.rmsprop(0.1).init(PARAMS)
    with pytest.raises(ValueError, match=r"^adam: got state for 3 transforms but the chain has 2"):
        gradtx.adam(0.1).update(GRADS, state, PARAMS)


@pytest.mark.parametrize(
    "source, target, message",
    [
        (
            lambda: gradtx.sgd(0.1, momentum=0.9),
            lambda: gradtx.adagrad(0.1),
            r"^adagrad: scale_by_rss: expected a RssState, got TraceState; "
            r"was this state made by another optimizer's init\?",
        ),
        (
            lambda: gradtx.adam(0.1),
            lambda: gradtx.adagrad(0.1),
            r"^adagrad: scale_by_rss: expected a RssState, got PreconditionState",
        ),
        (
            lambda: gradtx.adam(0.1),
            lambda: gradtx.amsgrad(0.1),
            r"^amsgrad: scale_by_max_rms: expected a MaxRmsState, got RmsState",
        ),
        (
            lambda: optax.adam(0.1),
            lambda: gradtx.adam(0.1),
            r"^adam: expected a ChainState, got tuple; was this state made by another optimizer's init\?",
        ),
    ],
)
def test_state_of_another_optimizer_raises_clear_type_error(source, target, message):
    state = source().init(PARAMS)
    with pytest.raises(TypeError, match=message):
        target().update(GRADS, state, PARAMS)


# ----------------------------------------------------------------------------
# Integer leaves: a clear TypeError naming the leaf, never silent truncation.
# Recipes that start with a stateless transform promote an integer gradient leaf
# to JAX's default float dtype there, as optax's do (tests/test_integer_leaves.py),
# and recipes that keep no per-parameter state accept integer params at init.

INT_PARAMS = {"layer": {"b": jnp.zeros(2), "w": jnp.ones((2, 2))}, "steps": jnp.zeros(3, jnp.int32)}
INT_LEAF = r"\['steps'\]"
PROMOTE_INTEGER_GRADS = {"sgd", "sign_sgd", "polyak_sgd", "adadelta", "lars", "madgrad", "cocob"}
NO_PER_PARAMETER_STATE = {"sgd", "sign_sgd", "fromage", "polyak_sgd"}


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_integer_grads_raise_type_error_naming_leaf(row):
    opt = row.factory(**row.typical)
    params = jax.tree.map(lambda x: x.astype(jnp.float32), INT_PARAMS)
    grads = {**jax.tree.map(jnp.ones_like, params), "steps": jnp.ones(3, jnp.int32)}
    if row.name in PROMOTE_INTEGER_GRADS:
        extra = {"value": jnp.array(1.0)} if row.name == "polyak_sgd" else {}
        updates, _ = opt.update(grads, opt.init(params), params, **extra)
        assert updates["steps"].dtype == jnp.float32
        return
    with pytest.raises(
        TypeError,
        # The recipe, then the parts the gradient went through (a partition's group).
        match=rf"^\w+: (\w+: |partition: group '\w+': )+(gradient|updates) leaf {INT_LEAF} "
        rf"has dtype int32",
    ):
        opt.update(grads, opt.init(params), params)


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_integer_params_raise_type_error_naming_leaf_at_init(row):
    opt = row.factory(**row.typical)
    if row.name in NO_PER_PARAMETER_STATE:
        opt.init(INT_PARAMS)
        return
    with pytest.raises(
        TypeError,
        match=rf"^(\w+: )+params leaf {INT_LEAF} "
        rf"has dtype int32",
    ):
        opt.init(INT_PARAMS)


def test_adam_with_state_for_other_shapes_raises_naming_leaf_and_shapes():
    opt = gradtx.adam(1e-3)
    state = opt.init({"w": jnp.zeros(1)})
    with pytest.raises(
        ValueError,
        match=r"scale_by_momentum: updates leaf \['w'\] has shape "
        r"\(3,\) but the state's mu has shape \(1,\)",
    ):
        opt.update({"w": jnp.ones(3)}, state)
