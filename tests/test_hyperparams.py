"""inject_hyperparams / set_hyperparams / get_hyperparams.

The reference for an injected optimizer is the plain gradtx optimizer built
with the same values (rebuilt where the values change), continuing the same
inner state: injection must change nothing but where the numbers live.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx


def _params(dtype=jnp.float32):
    return {"w": jnp.array([[0.5, -1.0], [2.0, 0.25]], dtype), "b": jnp.array([0.1, -0.3], dtype)}


def _grads(n, dtype=jnp.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "w": jnp.asarray(rng.normal(size=(2, 2)), dtype),
            "b": jnp.asarray(rng.normal(size=2), dtype),
        }
        for _ in range(n)
    ]


# Injected values are float32 arrays, plain ones Python floats: ``1 - b2`` is
# then rounded differently (float32(0.999) carries a 1.3e-8 error that
# 1 / (1 - b2) amplifies 1000 times), so updates agree to about 1e-5.
RTOL, ATOL = 2e-5, 1e-6


def test_inject_hyperparams_values_changed_between_steps_compile_once_and_match_fresh_optimizer():
    values = dict(learning_rate=1e-2, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-2)
    opt = gradtx.inject_hyperparams(gradtx.adamw)(**values)
    changes = {3: dict(learning_rate=3e-2), 6: dict(b1=0.5, eps=1e-3), 9: dict(weight_decay=0.3)}
    traces = []

    @jax.jit
    def step(params, state, grad):
        traces.append(1)
        updates, state = opt.update(grad, state, params)
        return gradtx.apply_updates(params, updates), state

    params, state = _params(), opt.init(_params())
    grads = _grads(12)
    history = [(params, state)]
    for t, grad in enumerate(grads):
        if t in changes:
            state = gradtx.set_hyperparams(state, **changes[t])
            history[-1] = (params, state)
        params, state = step(params, state, grad)
        history.append((params, state))
    assert len(traces) == 1 and step._cache_size() == 1

    # From each change on, a fresh adamw with the new values, continuing the
    # same inner state, follows the same trajectory.
    bounds = sorted(changes) + [len(grads)]
    for start, stop in zip(bounds, bounds[1:]):
        values.update(changes[start])
        fresh = gradtx.adamw(**values)
        params, state = history[start]
        inner = state.inner_state
        assert {k: float(v) for k, v in gradtx.get_hyperparams(state).items()} == pytest.approx(
            {**values, "eps_root": 0.0}, rel=1e-6
        )
        for t in range(start, stop):
            updates, inner = fresh.update(grads[t], inner, params)
            params = gradtx.apply_updates(params, updates)
            chex.assert_trees_all_close(params, history[t + 1][0], rtol=RTOL, atol=ATOL)
            chex.assert_trees_all_close(inner, history[t + 1][1].inner_state, rtol=RTOL, atol=ATOL)


OPTIMIZERS = [
    (gradtx.sgd, dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    (gradtx.rmsprop, dict(learning_rate=0.01, centered=True, momentum=0.5)),
    (gradtx.adagrad, dict(learning_rate=0.1)),
    (gradtx.adadelta, dict(learning_rate=1.0, weight_decay=0.1)),
    (gradtx.adam, dict(learning_rate=0.1, b1=0.8)),
    (
        gradtx.adamw,
        dict(learning_rate=0.1, weight_decay=0.5, mask=lambda p: {"w": True, "b": False}),
    ),
    (gradtx.amsgrad, dict(learning_rate=0.1)),
]


@pytest.mark.parametrize("factory, kwargs", OPTIMIZERS, ids=[f.__name__ for f, _ in OPTIMIZERS])
def test_inject_hyperparams_matches_plain_optimizer_and_keeps_its_state(factory, kwargs):
    opt = gradtx.inject_hyperparams(factory)(**kwargs)
    plain = factory(**kwargs)
    params = _params()
    state, ref_state = opt.init(params), plain.init(params)
    assert jax.tree.structure(state.inner_state) == jax.tree.structure(ref_state)
    assert all(v.dtype == jnp.float32 and v.shape == () for v in state.hyperparams.values())
    assert "nesterov" not in state.hyperparams and "mask" not in state.hyperparams
    for grad in _grads(3):
        updates, state = opt.update(grad, state, params)
        ref_updates, ref_state = plain.update(grad, ref_state, params)
        chex.assert_trees_all_close(updates, ref_updates, rtol=RTOL, atol=ATOL)
    chex.assert_trees_all_close(state.inner_state, ref_state, rtol=RTOL, atol=ATOL)


def test_inject_hyperparams_with_bf16_params_keeps_b2_in_float32():
    params = _params(jnp.bfloat16)
    opt = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=1e-2, b2=0.999)
    plain = gradtx.adam(1e-2, b2=0.999)
    state, ref_state = opt.init(params), plain.init(params)
    assert state.hyperparams["b2"].dtype == jnp.float32
    assert state.hyperparams["b2"] == np.float32(0.999)  # bf16 would round it to 1.0
    step = jax.jit(lambda p, s, g: opt.update(g, s, p))
    ref_params = params
    for grad in _grads(4, jnp.bfloat16):
        updates, state = step(params, state, grad)
        params = gradtx.apply_updates(params, updates)
        ref_updates, ref_state = plain.update(grad, ref_state, ref_params)
        ref_params = gradtx.apply_updates(ref_params, ref_updates)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(params))
    assert all(x.dtype in (jnp.bfloat16, jnp.int32) for x in jax.tree.leaves(state.inner_state))
    assert all(np.isfinite(np.asarray(x, np.float32)).all() for x in jax.tree.leaves(state))
    chex.assert_trees_all_close(params, ref_params, rtol=1e-2, atol=0)  # to a bf16 rounding


def test_inject_hyperparams_hyperparam_dtype_sets_the_stored_dtype():
    opt = gradtx.inject_hyperparams(gradtx.sgd, hyperparam_dtype=jnp.bfloat16)(learning_rate=0.1)
    assert opt.init(_params()).hyperparams["learning_rate"].dtype == jnp.bfloat16


def test_inject_hyperparams_evaluates_schedules_at_the_state_count():
    lr = gradtx.cosine_decay_schedule(0.1, decay_steps=4)
    b1 = gradtx.linear_schedule(0.5, 0.9, transition_steps=3)
    opt = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=lr, b1=b1)
    params = _params()
    state = opt.init(params)
    assert set(state.hyperparams_states) == {"learning_rate", "b1"}
    assert state.hyperparams["learning_rate"] == lr(0)
    inner = state.inner_state
    for t, grad in enumerate(_grads(6)):
        updates, state = opt.update(grad, state, params)
        # The definition: adam rebuilt with this step's values, same state.
        ref_updates, inner = gradtx.adam(float(lr(t)), b1=float(b1(t))).update(grad, inner, params)
        chex.assert_trees_all_close(updates, ref_updates, rtol=RTOL, atol=ATOL)
        assert state.hyperparams["learning_rate"] == lr(t) and state.hyperparams["b1"] == b1(t)
        params = gradtx.apply_updates(params, updates)
    assert int(state.count) == 6


def test_inject_hyperparams_scheduled_learning_rate_equals_plain_schedule():
    lr = gradtx.warmup_cosine_decay_schedule(0.0, 0.1, warmup_steps=2, decay_steps=5)
    opt = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=lr)
    plain = gradtx.adam(lr)
    params = _params()
    state, ref_state = opt.init(params), plain.init(params)
    for grad in _grads(6):
        updates, state = opt.update(grad, state, params)
        ref_updates, ref_state = plain.update(grad, ref_state, params)
        chex.assert_trees_all_close(updates, ref_updates, rtol=RTOL, atol=ATOL)


def test_inject_hyperparams_under_vmap_runs_a_sweep_equal_to_separate_runs():
    lrs, b1s = np.array([0.1, 0.01, 0.001]), np.array([0.9, 0.8, 0.5])
    opt = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=0.1)
    params = _params()
    batched = jax.tree.map(lambda x: jnp.stack([x] * 3), opt.init(params))
    batched = gradtx.set_hyperparams(batched, learning_rate=lrs, b1=b1s)
    batched_params = jax.tree.map(lambda x: jnp.stack([x] * 3), params)

    @jax.jit
    @jax.vmap
    def step(p, s, g):
        updates, s = opt.update(g, s, p)
        return gradtx.apply_updates(p, updates), s

    grads = _grads(3)
    for grad in grads:
        batched_params, batched = step(
            batched_params, batched, jax.tree.map(lambda g: jnp.stack([g] * 3), grad)
        )
    for i in range(3):
        plain = gradtx.adam(float(lrs[i]), b1=float(b1s[i]))
        p, s = params, plain.init(params)
        for grad in grads:
            updates, s = plain.update(grad, s, p)
            p = gradtx.apply_updates(p, updates)
        chex.assert_trees_all_close(
            jax.tree.map(lambda x: x[i], batched_params), p, rtol=RTOL, atol=ATOL
        )


def test_inject_hyperparams_inside_a_chain_passes_the_gradient_stream():
    # The injected preconditioner must measure the raw gradient, not the momentum.
    def make(rms):
        return gradtx.chain(
            gradtx.scale_by_momentum(0.5, ema=True), rms, gradtx.scale_by_learning_rate(0.1)
        )

    opt = make(gradtx.inject_hyperparams(gradtx.scale_by_rms)(decay=0.9, eps=1e-3))
    plain = make(gradtx.scale_by_rms(0.9, 1e-3))
    params = _params()
    state, ref_state = opt.init(params), plain.init(params)
    state = gradtx.set_hyperparams(state, eps=1e-4)
    plain = make(gradtx.scale_by_rms(0.9, 1e-4))
    assert float(gradtx.get_hyperparams(state)["eps"]) == pytest.approx(1e-4)
    for grad in _grads(3):
        updates, state = opt.update(grad, state, params)
        ref_updates, ref_state = plain.update(grad, ref_state, params)
        chex.assert_trees_all_close(updates, ref_updates, rtol=RTOL, atol=ATOL)


def test_inject_hyperparams_keeps_static_arguments_out_of_the_state():
    def my_sgd(learning_rate, every=1, momentum=None):
        return gradtx.sgd(learning_rate, momentum=momentum)

    state = gradtx.inject_hyperparams(my_sgd)(1, every=4).init(_params())
    assert set(state.hyperparams) == {"learning_rate"}  # an int for an int default is static
    assert state.hyperparams["learning_rate"].dtype == jnp.float32
    opt = gradtx.inject_hyperparams(gradtx.adam, static_args="b1")(learning_rate=0.1, b1=0.5)
    assert set(opt.init(_params()).hyperparams) == {"learning_rate", "b2", "eps", "eps_root"}
    assert repr(opt).startswith("inject_hyperparams(adam)(learning_rate=0.1, b1=0.5")


def test_inject_hyperparams_wraps_an_optax_factory():
    with jax.numpy_dtype_promotion("standard"):  # optax raises b1 (float32) to an int32 power
        opt = gradtx.inject_hyperparams(optax.adam)(learning_rate=0.1)
        plain = optax.adam(0.05)
        params = _params()
        state = gradtx.set_hyperparams(opt.init(params), learning_rate=0.05)
        ref_state = plain.init(params)
        for grad in _grads(3):
            updates, state = opt.update(grad, state, params)
            ref_updates, ref_state = plain.update(grad, ref_state, params)
            chex.assert_trees_all_close(updates, ref_updates, rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------
# Errors.


def test_inject_hyperparams_with_invalid_value_raises_the_factory_message():
    with pytest.raises(ValueError, match=r"adam: b1 must be in \[0, 1\), got 1.2"):
        gradtx.inject_hyperparams(gradtx.adam)(learning_rate=0.1, b1=1.2)


def test_inject_hyperparams_with_invalid_schedule_start_raises_the_factory_message():
    b1 = gradtx.linear_schedule(1.5, 0.9, transition_steps=10)
    with pytest.raises(ValueError, match=r"adam: b1 must be in \[0, 1\), got 1.5"):
        gradtx.inject_hyperparams(gradtx.adam)(learning_rate=0.1, b1=b1)


def test_set_hyperparams_invalid_value_raises_the_factory_message_on_eager_update():
    # b1 = 1 is a decay by name (set_hyperparams lets it through: lion takes it), but not
    # Adam's: its factory refuses it when the update runs outside jit.
    opt = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=0.1)
    state = gradtx.set_hyperparams(opt.init(_params()), b1=1.0)
    with pytest.raises(ValueError, match=r"adam: b1 must be in \[0, 1\), got"):
        opt.update(_grads(1)[0], state, _params())


def test_set_hyperparams_with_unknown_name_raises_listing_the_names():
    state = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=0.1).init(_params())
    with pytest.raises(
        ValueError,
        match="set_hyperparams: the state has no hyperparameter 'lr'; it has learning_rate",
    ):
        gradtx.set_hyperparams(state, lr=0.1)


def test_set_hyperparams_on_a_scheduled_name_raises():
    opt = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=gradtx.constant_schedule(0.1))
    with pytest.raises(ValueError, match="set_hyperparams: learning_rate follows a schedule"):
        gradtx.set_hyperparams(opt.init(_params()), learning_rate=0.2)


def test_set_hyperparams_with_wrong_shape_raises():
    state = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=0.1).init(_params())
    with pytest.raises(ValueError, match=r"set_hyperparams: learning_rate must have shape \(\)"):
        gradtx.set_hyperparams(state, learning_rate=jnp.ones(3))


def test_set_hyperparams_on_a_state_without_injection_raises():
    with pytest.raises(ValueError, match="set_hyperparams: the state holds no injected"):
        gradtx.set_hyperparams(gradtx.adam(0.1).init(_params()), learning_rate=0.2)


def test_get_hyperparams_with_a_name_in_two_injected_states_raises():
    inject = gradtx.inject_hyperparams(gradtx.sgd)
    state = gradtx.chain(inject(0.1), inject(0.2)).init(_params())
    with pytest.raises(
        ValueError, match="get_hyperparams: learning_rate is a hyperparameter of more than one"
    ):
        gradtx.get_hyperparams(state)


def test_inject_hyperparams_with_stale_state_raises():
    opt = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=0.1)
    other = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=gradtx.constant_schedule(0.1))
    with pytest.raises(
        ValueError,
        match=r"inject_hyperparams\(adam\): the state injects .* was "
        "this state made by another optimizer's init",
    ):
        opt.update(_grads(1)[0], other.init(_params()), _params())


def test_inject_hyperparams_with_unknown_static_arg_raises():
    with pytest.raises(
        ValueError, match="inject_hyperparams: static_args names beta1, which adam does not take"
    ):
        gradtx.inject_hyperparams(gradtx.adam, static_args=["beta1"])


def test_inject_hyperparams_bf16_rounding_b2_to_one_raises():
    with pytest.raises(
        ValueError,
        match=r"^inject_hyperparams\(adam\): hyperparam_dtype=bfloat16 "
        r"cannot hold b2=0\.999 \(it rounds to 1\.0\): adam: b2 "
        r"must be in \[0, 1\).*use hyperparam_dtype=jnp\.float32",
    ):
        gradtx.inject_hyperparams(gradtx.adam, hyperparam_dtype=jnp.bfloat16)(1e-2)


def test_inject_hyperparams_bf16_values_it_can_hold_are_accepted():
    opt = gradtx.inject_hyperparams(gradtx.adam, hyperparam_dtype=jnp.bfloat16)(1e-2, b2=0.99)
    state = opt.init({"w": jnp.zeros(2)})
    assert state.hyperparams["b2"].dtype == jnp.bfloat16


def test_inject_hyperparams_infinite_value_raises():
    with pytest.raises(ValueError, match=r"^adam: learning_rate must be finite, got inf"):
        gradtx.inject_hyperparams(gradtx.adam)(float("inf"))


class _RunningTotal:
    """A stateful schedule (optax's protocol): the sum of the ``addendum`` passed so far."""

    def init(self):
        return jnp.zeros((), jnp.float32)

    def update(self, state, **extra):
        return state + extra["addendum"]

    def __call__(self, state, **extra):
        return state


def test_inject_hyperparams_with_stateful_schedule_feeds_it_the_extra_arguments():
    opt = gradtx.inject_hyperparams(gradtx.scale)(step_size=_RunningTotal())
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    for t in range(3):
        updates, state = jax.jit(opt.update)(params, state, params, addendum=jnp.float32(0.5))
        # The update uses the total before it: 0, 0.5, 1.0.
        np.testing.assert_allclose(updates["w"], np.full(3, 0.5 * t))
        np.testing.assert_allclose(state.hyperparams["step_size"], 0.5 * t)
    np.testing.assert_allclose(state.hyperparams_states["step_size"], 1.5)


def test_inject_hyperparams_keeps_an_integer_seed_an_integer():
    def noisy(learning_rate, seed=None):
        assert seed is None or jnp.issubdtype(jnp.asarray(seed).dtype, jnp.integer)
        return gradtx.sgd(learning_rate)

    state = gradtx.inject_hyperparams(noisy)(learning_rate=1, seed=3).init(_params())
    assert state.hyperparams["seed"].dtype == jnp.int32
    assert state.hyperparams["learning_rate"].dtype == jnp.float32


def test_inject_hyperparams_under_x64_stores_float64():
    with jax.enable_x64(True):
        lr = gradtx.cosine_decay_schedule(0.1, decay_steps=10)
        state = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=lr, b1=0.9).init(_params())
        assert state.hyperparams["b1"].dtype == jnp.float64
        assert state.hyperparams["learning_rate"].dtype == jnp.float64


@pytest.mark.parametrize(
    "values, message",
    [
        ({"learning_rate": -1.0}, r"learning_rate must be >= 0 and finite, got Array\(-1"),
        ({"learning_rate": float("inf")}, r"learning_rate must be >= 0 and finite, got Array\(inf"),
        ({"learning_rate": 1e39}, r"learning_rate must be >= 0 and finite, got Array\(inf"),
        ({"b1": 1.5}, r"b1 must be in \[0, 1\], got Array\(1.5"),
        ({"b2": float("nan")}, r"b2 must not be NaN"),
    ],
)
def test_set_hyperparams_refuses_a_concrete_value_no_optimizer_accepts(values, message):
    opt = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=1e-3)
    state = opt.init({"w": jnp.zeros(2)})
    with pytest.raises(ValueError, match=r"^set_hyperparams: " + message):
        gradtx.set_hyperparams(state, **values)
