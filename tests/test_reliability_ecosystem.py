"""gradtx optimizers used unchanged by Flax, Equinox, optimistix and optax.

Each test runs the same loop twice, once with a gradtx optimizer and once
with optax's implementation of the same rule, and checks the two end at the
same parameters: the framework must not notice which library it was given.
"""

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
from flax import nnx
from flax.training import train_state

import gradtx

RTOL = 1e-5


def _optax_run(run, *args):
    """optax itself mixes int32 counts with floats, which the suite's strict
    dtype promotion refuses; its reference runs use standard promotion, while
    gradtx runs strict."""
    with jax.numpy_dtype_promotion("standard"):
        return run(*args)


def _data():
    x = jax.random.normal(jax.random.key(0), (16, 3))
    y = jnp.stack([jnp.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1)
    return x, y


def test_flax_nnx_optimizer_with_gradtx_adamw_matches_optax():
    x, y = _data()

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
    x, y = _data()
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
    x, y = _data()

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
