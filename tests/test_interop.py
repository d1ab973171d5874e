"""gradtx optimizers drop into code written for optax (self-description: test_base.py)."""

from __future__ import annotations

import contextlib
import functools

import chex
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import pytest
from flax import nnx
from flax.training import train_state

import gradtx


def _data(dtype, x_scale=1.0):
    """Parameters, inputs (times ``x_scale``) and targets, made in NumPy in ``dtype``."""
    rng = np.random.default_rng(0)
    params = {"dense": {"w": rng.normal(size=(4, 3)), "b": np.zeros(3)}, "scale": np.asarray(1.5)}
    x, y = x_scale * rng.normal(size=(16, 4)), rng.normal(size=(16, 3))
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a).astype(dtype), dtype), (params, x, y))


def _loss(params, x, y):
    pred = params["scale"] * jnp.tanh(x @ params["dense"]["w"] + params["dense"]["b"])
    return jnp.mean((pred - y) ** 2)


def _train(tx, params, x, y, steps, apply=gradtx.apply_updates):
    """A hand-written jitted train step, as optax's docs write it."""

    @jax.jit
    def train_step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(_loss)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return apply(params, updates), opt_state, loss

    opt_state = tx.init(params)
    losses = []
    for _ in range(steps):
        params, opt_state, loss = train_step(params, opt_state, x, y)
        losses.append(float(loss))
    return params, losses


def for_optax():
    """optax's bias corrections raise a float to an int32 count, which strict
    promotion (on for every test, see conftest.py) refuses: run optax's
    stateful transforms under standard promotion."""
    return jax.numpy_dtype_promotion("standard")


def test_handwritten_jitted_train_step_with_gradtx_adam_matches_optax_adam():
    params, x, y = _data(jnp.float32)
    ours, losses = _train(gradtx.adam(0.01), params, x, y, 30)
    with for_optax():
        theirs, _ = _train(optax.adam(0.01), params, x, y, 30, apply=optax.apply_updates)
    assert losses[-1] < 0.8 * losses[0]
    chex.assert_trees_all_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_optax_chain_with_clipping_then_gradtx_adam_matches_optax(x64):
    params, x, y = _data(jnp.float64, x_scale=10.0)  # large gradients: the clipping is active
    assert float(optax.global_norm(jax.jit(jax.grad(_loss))(params, x, y))) > 1.0
    mixed, _ = _train(
        optax.chain(optax.clip_by_global_norm(1.0), gradtx.adam(0.01)), params, x, y, 20
    )
    with for_optax():
        expected, _ = _train(
            optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.01)),
            params,
            x,
            y,
            20,
            apply=optax.apply_updates,
        )
    chex.assert_trees_all_close(mixed, expected, rtol=1e-10, atol=1e-12)


def test_gradtx_momentum_inside_optax_chain_is_optax_sgd_momentum(x64):
    params, x, y = _data(jnp.float64)
    mixed, _ = _train(
        optax.chain(gradtx.scale_by_momentum(0.9), optax.scale(-0.05)),
        params,
        x,
        y,
        20,
        apply=optax.apply_updates,
    )
    expected, _ = _train(optax.sgd(0.05, momentum=0.9), params, x, y, 20, apply=optax.apply_updates)
    chex.assert_trees_all_close(mixed, expected, rtol=1e-10, atol=1e-12)


def test_gradtx_chain_with_optax_clipping_first_computes_clipped_adam(x64):
    # The optax clip feeds the precondition combinator, so Adam's first and
    # second moments both see the clipped gradient: optax.chain(clip, adam).
    params, x, y = _data(jnp.float64, x_scale=10.0)
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    ours = gradtx.chain(
        optax.clip_by_global_norm(1.0),
        gradtx.precondition(
            gradtx.chain(gradtx.scale_by_momentum(b1, ema=True), gradtx.bias_correction(b1)),
            by=gradtx.scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
        ),
        gradtx.scale_by_learning_rate(lr),
    )
    got, _ = _train(ours, params, x, y, 20)
    with for_optax():
        expected, _ = _train(
            optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr, b1, b2, eps)),
            params,
            x,
            y,
            20,
            apply=optax.apply_updates,
        )
    chex.assert_trees_all_close(got, expected, rtol=1e-10, atol=1e-12)


def test_gradtx_chain_with_optax_trace_in_the_middle_is_rmsprop_with_momentum(x64):
    params, x, y = _data(jnp.float64)
    ours = gradtx.chain(
        gradtx.scale_by_rms(0.9, 0.0, eps_root=1e-8),
        optax.trace(0.9),
        gradtx.scale_by_learning_rate(0.01),
    )
    got, _ = _train(ours, params, x, y, 20)
    expected, _ = _train(gradtx.rmsprop(0.01, momentum=0.9), params, x, y, 20)
    with for_optax():
        also, _ = _train(
            optax.rmsprop(0.01, momentum=0.9), params, x, y, 20, apply=optax.apply_updates
        )
    chex.assert_trees_all_close(got, expected, rtol=1e-10, atol=1e-12)
    chex.assert_trees_all_close(got, also, rtol=1e-10, atol=1e-12)


def test_flax_train_state_with_gradtx_tx_matches_optax_tx():
    from flax.training import train_state

    params, x, y = _data(jnp.float32)

    @jax.jit
    def train_step(state):
        grads = jax.grad(_loss)(state.params, x, y)
        return state.apply_gradients(grads=grads)

    def run(tx):
        state = train_state.TrainState.create(apply_fn=None, params=params, tx=tx)
        for _ in range(10):
            state = train_step(state)
        return state

    ours = run(gradtx.adamw(0.01, weight_decay=0.1))
    with for_optax():
        theirs = run(optax.adamw(0.01, weight_decay=0.1))
    assert int(ours.step) == 10
    assert isinstance(ours.opt_state, gradtx.ChainState)
    chex.assert_trees_all_close(ours.params, theirs.params, rtol=1e-5, atol=1e-6)


def test_flax_nnx_optimizer_with_gradtx_tx_matches_optax_tx():
    from flax import nnx

    x = jnp.asarray(np.random.default_rng(1).normal(size=(8, 3)), jnp.float32)
    y = jnp.ones((8, 2), jnp.float32)

    def run(tx):
        model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def step(model, optimizer):
            loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
            optimizer.update(model, grads, value=loss)  # extra keywords pass through
            return loss

        losses = [float(step(model, optimizer)) for _ in range(5)]
        return model, losses

    ours, losses = run(gradtx.adam(0.05))
    with for_optax():
        theirs, _ = run(optax.adam(0.05))
    assert losses[-1] < losses[0]
    chex.assert_trees_all_close(
        nnx.state(ours, nnx.Param), nnx.state(theirs, nnx.Param), rtol=1e-5, atol=1e-6
    )


# ----------------------------------------------------------------------------
# **extra keywords (what optimistix and nnx.Optimizer pass) are accepted and ignored.

EXTRA = dict(value=jnp.float32(0.5), grad=None, value_fn=lambda p: 0.0, rng=jax.random.key(0))


EXTRA_CASES = {
    "sgd": lambda: gradtx.sgd(0.1, momentum=0.9),
    "rmsprop": lambda: gradtx.rmsprop(0.01, centered=True),
    "adagrad": lambda: gradtx.adagrad(0.1),
    "adadelta": lambda: gradtx.adadelta(),
    "adam": lambda: gradtx.adam(0.01),
    "adamw": lambda: gradtx.adamw(0.01),
    "amsgrad": lambda: gradtx.amsgrad(0.01),
    # optax pieces whose update takes no extra keywords, inside a gradtx chain.
    "optax_clip_in_chain": lambda: gradtx.chain(optax.clip_by_global_norm(1.0), gradtx.sgd(0.1)),
    "optax_adam_in_chain": lambda: gradtx.chain(optax.scale_by_adam(), optax.scale(-0.1)),
}


@pytest.mark.parametrize("name", list(EXTRA_CASES))
def test_update_accepts_and_ignores_extra_keywords(name):
    with for_optax() if name.startswith("optax") else contextlib.nullcontext():
        opt = EXTRA_CASES[name]()
        params, x, y = _data(jnp.float32)
        grads = jax.grad(_loss)(params, x, y)
        state = opt.init(params)
        plain, plain_state = opt.update(grads, state, params)
        with_extra, extra_state = opt.update(grads, state, params, **EXTRA)
    chex.assert_trees_all_close(plain, with_extra, rtol=0)
    chex.assert_trees_all_close(plain_state, extra_state, rtol=0)


def test_adam_state_counts_read_by_path_and_set_together_by_optax_tree():
    # Adam's recipe keeps two step counters (bias_correction's and the second
    # moment's); README's conventions table says how optax's tree helpers see them.
    params = {"w": jnp.ones(3)}
    opt = gradtx.adam(0.1)
    state = opt.init(params)
    for _ in range(3):
        _, state = opt.update(params, state, params)
    counts = optax.tree.get_all_with_path(state, "count")
    assert len(counts) == 2
    with pytest.raises(KeyError, match="multiple values for 'count'"):
        optax.tree.get(state, "count")
    assert int(gradtx.tree_get(state, "preconditioner.count")) == 3
    assert int(gradtx.tree_get(state, "direction.states[1].count")) == 3
    # optax's own adam with a scheduled learning rate has two counts as well.
    optax_state = optax.adam(optax.linear_schedule(0.1, 0.0, 10)).init(params)
    with pytest.raises(KeyError, match="multiple values for 'count'"):
        optax.tree.get(optax_state, "count")
    reset = optax.tree.set(state, count=jnp.zeros((), jnp.int32))
    assert [int(c) for _, c in optax.tree.get_all_with_path(reset, "count")] == [0, 0]
    # After the reset both counters agree, so the next step is Adam's first step.
    fresh = optax.tree.set(
        opt.init(params), mu=gradtx.tree_get(state, "mu"), nu=gradtx.tree_get(state, "nu")
    )
    chex.assert_trees_all_equal(
        opt.update(params, reset, params), opt.update(params, fresh, params)
    )


# ----------------------------------------------------------------------------
# Flax, Equinox, optimistix and optax use gradtx optimizers unchanged: each test runs
# the same loop twice, once with a gradtx optimizer and once with optax's
# implementation of the same rule, and checks the two end at the same parameters.


RTOL = 1e-5


def _optax_run(run, *args):
    """optax itself mixes int32 counts with floats, which the suite's strict
    dtype promotion refuses; its reference runs use standard promotion, while
    gradtx runs strict."""
    with jax.numpy_dtype_promotion("standard"):
        return run(*args)


def _regression_data():
    x = jax.random.normal(jax.random.key(0), (16, 3))
    y = jnp.stack([jnp.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1)
    return x, y


def test_flax_nnx_optimizer_with_gradtx_adamw_matches_optax():
    x, y = _regression_data()

    def run(tx):
        model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def step(model, optimizer):
            grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
            optimizer.update(model, grads)

        for _ in range(3):
            step(model, optimizer)
        return nnx.state(model, nnx.Param), optimizer

    got, optimizer = run(gradtx.adamw(0.05, weight_decay=0.1))
    want, _ = _optax_run(run, optax.adamw(0.05, weight_decay=0.1))
    chex.assert_trees_all_close(nnx.to_pure_dict(got), nnx.to_pure_dict(want), rtol=RTOL, atol=1e-7)
    assert int(optimizer.step[...]) == 3
    opt_state = nnx.as_pure(optimizer.opt_state)
    assert int(gradtx.tree_get(opt_state, "preconditioner.count")) == 3


def test_flax_train_state_with_gradtx_sgd_matches_optax():
    x, y = _regression_data()
    model_params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}

    def apply_fn(params, x):
        return x @ params["w"] + params["b"]

    @jax.jit
    def step(state):
        grads = jax.grad(lambda p: jnp.mean((state.apply_fn(p, x) - y) ** 2))(state.params)
        return state.apply_gradients(grads=grads)

    def run(tx):
        state = train_state.TrainState.create(apply_fn=apply_fn, params=model_params, tx=tx)
        for _ in range(3):
            state = step(state)
        return state

    got = run(gradtx.sgd(0.1, momentum=0.9, nesterov=True))
    want = _optax_run(run, optax.sgd(0.1, momentum=0.9, nesterov=True))
    chex.assert_trees_all_close(got.params, want.params, rtol=RTOL, atol=1e-7)
    assert int(got.step) == 3 and isinstance(got.opt_state, gradtx.ChainState)


def test_equinox_filter_loop_with_gradtx_adam_matches_optax():
    x, y = _regression_data()

    def run(opt):
        model = eqx.nn.MLP(3, 2, 8, 1, key=jax.random.key(1))
        opt_state = opt.init(eqx.filter(model, eqx.is_array))

        @eqx.filter_jit
        def step(model, opt_state):
            grads = eqx.filter_grad(lambda m: jnp.mean((jax.vmap(m)(x) - y) ** 2))(model)
            updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_array))
            return eqx.apply_updates(model, updates), opt_state

        for _ in range(3):
            model, opt_state = step(model, opt_state)
        return eqx.filter(model, eqx.is_array)

    chex.assert_trees_all_close(
        run(gradtx.adam(0.05)), _optax_run(run, optax.adam(0.05)), rtol=RTOL, atol=1e-7
    )


def test_equinox_unfiltered_model_with_function_leaves_through_sgd_matches_optax():
    # An Equinox MLP keeps its activations (functions) as leaves.  A transform
    # that keeps no state for them takes the whole model, as optax's does.
    x, y = _regression_data()

    def run(opt, filtered):
        model = eqx.nn.MLP(3, 2, 8, 1, key=jax.random.key(1))
        opt_state = opt.init(eqx.filter(model, eqx.is_array) if filtered else model)

        @eqx.filter_jit
        def step(model, opt_state):
            grads = eqx.filter_grad(lambda m: jnp.mean((jax.vmap(m)(x) - y) ** 2))(model)
            updates, opt_state = opt.update(grads, opt_state)
            return eqx.apply_updates(model, updates), opt_state

        for _ in range(3):
            model, opt_state = step(model, opt_state)
        return eqx.filter(model, eqx.is_array)

    model = eqx.nn.MLP(3, 2, 8, 1, key=jax.random.key(1))
    assert any(callable(leaf) for leaf in jax.tree.leaves(model))
    want = _optax_run(run, optax.sgd(0.05), False)
    for filtered in (False, True):
        chex.assert_trees_all_close(run(gradtx.sgd(0.05), filtered), want, rtol=RTOL, atol=1e-7)


def test_stateless_transforms_init_on_a_function_leaf_and_update_as_optax():
    params = {"w": jnp.ones(2), "act": jax.nn.relu}
    grads = {"w": jnp.array([0.5, -4.0]), "act": None}
    pairs = [
        (gradtx.sgd(1e-2), optax.sgd(1e-2)),
        (gradtx.scale(0.5), optax.scale(0.5)),
        (gradtx.clip(1.0), optax.clip(1.0)),
        (gradtx.clip_by_global_norm(1.0), optax.clip_by_global_norm(1.0)),
        (gradtx.scale_by_learning_rate(0.1), optax.scale_by_learning_rate(0.1)),
        (gradtx.noisy_sgd(0.1, key=3), optax.noisy_sgd(0.1, key=3)),
    ]
    for ours, theirs in pairs:
        got, _ = ours.update(grads, ours.init(params), params)
        want, _ = _optax_run(lambda: theirs.update(grads, theirs.init(params), params))
        chex.assert_trees_all_close(got, want, rtol=RTOL)


@pytest.mark.parametrize(
    ("make", "owner"),
    [
        # an error inside a recipe names the recipe, then its part
        (lambda: gradtx.sgd(1e-2, momentum=0.9), "sgd: trace"),
        (lambda: gradtx.trace(0.9), "trace"),
        (lambda: gradtx.adam(1e-3), "adam: scale_by_momentum"),
        (lambda: gradtx.nadam(1e-3), "nadam: scale_by_nadam_momentum"),
    ],
)
def test_momentum_on_a_function_leaf_raises_naming_the_leaf_and_the_filter(make, owner):
    params = {"w": jnp.ones(2), "act": jax.nn.relu}
    with pytest.raises(
        TypeError,
        match=rf"^{owner}: params leaf \['act'\] is not an array \(got custom_jvp 'relu'\); "
        rf".*eqx\.filter\(model, eqx\.is_inexact_array\)",
    ):
        make().init(params)


def test_adam_on_an_unfiltered_equinox_model_names_the_activation_field():
    model = eqx.nn.MLP(3, 2, 8, 1, key=jax.random.key(1))
    with pytest.raises(TypeError, match=r"params leaf \.activation is not an array"):
        gradtx.adam(1e-3).init(model)
    state = gradtx.adam(1e-3).init(eqx.filter(model, eqx.is_inexact_array))
    assert jax.tree.structure(state.states[0].direction.states[0].mu) == jax.tree.structure(
        eqx.filter(model, eqx.is_inexact_array)
    )


def test_integer_params_beside_a_function_leaf_keep_the_dtype_message():
    # The integer leaf comes first: its own error, not the function leaf's, is raised.
    params = {"a": jnp.arange(3), "act": jax.nn.relu}
    with pytest.raises(TypeError, match=r"params leaf \['a'\] has dtype int32"):
        gradtx.adam(1e-3).init(params)


def test_closure_to_pytree_exposes_the_learning_rate_of_adam_as_optax_does():
    # equinox's own check on optax: the signed learning rate is a leaf.
    lr = jnp.array(1e-3)
    for lib in (gradtx, optax):
        leaves = jax.tree.leaves(eqxi.closure_to_pytree(lib.adam(lr)))
        assert any(eqx.is_array(leaf) and leaf.shape == () and leaf == -lr for leaf in leaves)


def _compilations(lib, runner):
    """How many times a jitted step traces its body for two learning rates."""
    traces = []
    run = runner(traces)
    for lr in (1e-2, 2e-2):
        run(lib.adam(jnp.array(lr)))
    return len(traces)


def _optimistix_runner(traces):
    def loss(y, args):
        traces.append(None)
        return jnp.sum((y - 1.0) ** 2)

    def run(opt):
        solver = optx.OptaxMinimiser(opt, rtol=1e-6, atol=1e-6)
        return optx.minimise(loss, solver, jnp.zeros(2), max_steps=5, throw=False).value

    return run


def _fixup_step(traces):
    """A jitted step that takes the optimizer as an argument, as equinox's users write it."""

    @eqx.filter_jit
    def step(opt, params):
        traces.append(None)
        return opt.update(params, opt.init(params), params)[0]

    return step


def _fixup_runner(traces):
    step = _fixup_step(traces)
    return lambda opt: step(eqxi.closure_to_pytree(opt), {"w": jnp.ones(3)})


@pytest.mark.parametrize("runner", [_optimistix_runner, _fixup_runner], ids=["optimistix", "fixup"])
def test_a_new_array_learning_rate_does_not_compile_again(runner):
    assert _optax_run(_compilations, optax, runner) == 1
    assert _compilations(gradtx, runner) == 1


def test_closure_to_pytree_adam_steps_as_adam_with_each_learning_rate():
    params = {"w": jnp.array([1.0, -2.0])}
    step = _fixup_step([])
    for lr in (1e-2, 2e-2):
        got = step(eqxi.closure_to_pytree(gradtx.adam(jnp.array(lr))), params)
        want = _optax_run(lambda: optax.adam(lr).update(params, optax.adam(lr).init(params)))
        chex.assert_trees_all_close(got, want[0], rtol=RTOL)


def test_transform_pytree_children_are_its_functions_and_rebuild_it():
    tx = gradtx.adam(jnp.array(1e-3))
    init, update = tx
    assert jax.tree.leaves(tx) == [tx.init, tx.update] and len(tx) == 2 and tx[0] is init
    rebuilt = jax.tree.map(lambda f: f, tx)
    assert isinstance(rebuilt, gradtx.GradientTransformation)
    assert repr(rebuilt) == repr(tx) and rebuilt.hyperparams == tx.hyperparams
    assert rebuilt.children == tx.children and rebuilt.update is tx.update
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tx)[0]]
    assert paths == [".init", ".update"]
    # Two adams that differ only in an array's value have the same structure.
    other = gradtx.adam(jnp.array(2e-3))
    assert jax.tree.structure(other) == jax.tree.structure(tx)
    assert jax.tree.structure(gradtx.sgd(1e-3)) != jax.tree.structure(tx)
    precond = gradtx.scale_by_rms()
    assert jax.tree.leaves(precond) == [precond.init, precond.update, precond.precondition]


def test_transform_as_a_static_jit_argument_is_hashed_by_identity():
    traces = []

    @functools.partial(jax.jit, static_argnums=0)
    def step(tx, g):
        traces.append(None)
        return tx.update(g, tx.init(g))[0]

    tx = gradtx.sgd(0.5)
    g = jnp.array([1.0, -2.0])
    np.testing.assert_array_equal(step(tx, g), np.array([-0.5, 1.0], np.float32))
    step(tx, g)
    assert len(traces) == 1 and tx == tx and hash(tx) == hash(tx)


def test_optimistix_optax_minimiser_with_gradtx_adam_matches_optax():
    def rosenbrock(y, args):
        return (1 - y[0]) ** 2 + 100 * (y[1] - y[0] ** 2) ** 2

    y0 = jnp.array([-1.0, 1.5])

    def run(opt):
        solver = optx.OptaxMinimiser(opt, rtol=1e-6, atol=1e-6)
        return optx.minimise(rosenbrock, solver, y0, max_steps=300, throw=False)

    got, want = run(gradtx.adam(0.02)), _optax_run(run, optax.adam(0.02))
    np.testing.assert_allclose(np.asarray(got.value), np.asarray(want.value), rtol=1e-4)
    assert int(got.stats["num_steps"]) == int(want.stats["num_steps"])
    assert float(rosenbrock(got.value, None)) < float(rosenbrock(y0, None))


def test_optax_chain_and_wrappers_accept_gradtx_transforms():
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array([0.5])}
    grads = [jax.tree.map(lambda p: jnp.cos(p * (k + 1)) * 3, params) for k in range(4)]
    mask = {"w": True, "b": False}
    pairs = [
        (
            optax.chain(optax.clip_by_global_norm(1.0), gradtx.adam(0.1)),
            optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1)),
        ),
        (
            gradtx.chain(
                optax.clip_by_global_norm(1.0),
                gradtx.precondition(
                    gradtx.chain(
                        gradtx.scale_by_momentum(0.9, ema=True), gradtx.bias_correction(0.9)
                    ),
                    by=gradtx.scale_by_rms(0.999, 1e-8, eps_in_sqrt=False, bias_correction=True),
                ),
                optax.add_decayed_weights(0.1),
                gradtx.scale_by_learning_rate(0.1),
            ),
            optax.chain(
                optax.clip_by_global_norm(1.0),
                optax.scale_by_adam(),
                optax.add_decayed_weights(0.1),
                optax.scale_by_learning_rate(0.1),
            ),
        ),
        (optax.masked(gradtx.rmsprop(0.1), mask), optax.masked(optax.rmsprop(0.1), mask)),
    ]

    def run(opt):
        p, state = params, opt.init(params)
        step = jax.jit(opt.update)
        for g in grads:
            updates, state = step(g, state, p)
            p = optax.apply_updates(p, updates)
        return p

    for ours, theirs in pairs:
        chex.assert_trees_all_close(run(ours), _optax_run(run, theirs), rtol=RTOL, atol=1e-7)
    # MultiSteps' own code averages an int32 count with float32 gradients.
    ours = optax.MultiSteps(gradtx.adam(0.1), every_k_schedule=2).gradient_transformation()
    theirs = optax.MultiSteps(optax.adam(0.1), every_k_schedule=2).gradient_transformation()
    chex.assert_trees_all_close(
        _optax_run(run, ours), _optax_run(run, theirs), rtol=RTOL, atol=1e-7
    )
