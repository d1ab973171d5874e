"""lookahead, lookahead_in_state and ema_params against direct float64 loops, optax and torch's AveragedModel."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

A = np.array([0.5, 2.0, 4.0])  # the quadratic 0.5 * sum(A * p^2); its gradient is A * p
P0 = np.array([1.0, -1.5, 0.8])


def _grad(p):
    return {"p": jnp.asarray(A, jnp.float32) * p["p"]}


def _run(opt, steps):
    """Train on the quadratic; return the params and state after each step."""

    @jax.jit
    def step(params, state):
        u, state = opt.update(_grad(params), state, params)
        return gradtx.apply_updates(params, u), state

    params = {"p": jnp.asarray(P0, jnp.float32)}
    state = opt.init(params)
    history = []
    for _ in range(steps):
        params, state = step(params, state)
        history.append((params, state))
    return history


@pytest.mark.parametrize("sync_period, alpha", [(3, 0.5), (1, 0.8)])
def test_lookahead_in_state_matches_direct_loop(sync_period, alpha):
    lr, mom = 0.1, 0.9
    history = _run(gradtx.lookahead_in_state(gradtx.sgd(lr, momentum=mom), sync_period, alpha), 8)
    theta, phi, m = P0.copy(), P0.copy(), np.zeros(3)
    for t, (params, state) in enumerate(history, start=1):
        m = mom * m + A * theta
        theta = theta - lr * m
        if t % sync_period == 0:
            phi = phi + alpha * (theta - phi)
            theta = phi.copy()
        np.testing.assert_allclose(np.asarray(params["p"]), theta, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(state.slow["p"]), phi, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("debias", [False, True])
def test_ema_params_matches_direct_loop(debias):
    lr, decay = 0.1, 0.8
    history = _run(gradtx.ema_params(gradtx.sgd(lr), decay, debias=debias), 6)
    p = P0.copy()
    biased = np.zeros(3)
    for t, (params, state) in enumerate(history, start=1):
        p = p - lr * A * p
        if debias:
            biased = decay * biased + (1 - decay) * p
            want = biased / (1 - decay**t)
        else:
            want = p.copy() if t == 1 else decay * want + (1 - decay) * p
        np.testing.assert_allclose(np.asarray(params["p"]), p, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(state.ema["p"]), want, rtol=1e-5)


def test_ema_params_matches_torch_averaged_model():
    import torch
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    lr, decay = 0.1, 0.9
    model = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(P0[None, :], dtype=torch.float32))
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
    sgd = torch.optim.SGD(model.parameters(), lr=lr)
    a = torch.tensor(A[None, :], dtype=torch.float32)
    history = _run(gradtx.ema_params(gradtx.sgd(lr), decay), 5)
    for _, state in history:
        sgd.zero_grad()
        (0.5 * (a * model.weight**2).sum()).backward()
        sgd.step()
        averaged.update_parameters(model)
        want = averaged.module.weight.detach().numpy()[0]
        np.testing.assert_allclose(np.asarray(state.ema["p"]), want, rtol=1e-6)


def test_ema_params_bf16_params_keep_a_float32_average():
    params = {"w": jnp.ones(3, jnp.bfloat16)}
    opt = gradtx.ema_params(gradtx.sgd(0.1), 0.999)
    u, state = opt.update({"w": jnp.ones(3, jnp.bfloat16)}, opt.init(params), params)
    assert state.ema["w"].dtype == jnp.float32 and u["w"].dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "make",
    [
        lambda: gradtx.lookahead_in_state(gradtx.adam(0.1), sync_period=2, slow_step_size=0.5),
        lambda: gradtx.ema_params(gradtx.adam(0.1), 0.9, debias=True),
    ],
    ids=["lookahead", "ema_params"],
)
def test_averaging_under_vmap_matches_loop(make):
    opt = make()
    params = {"p": jnp.asarray(np.stack([P0, -P0, 2 * P0]), jnp.float32)}

    def two_steps(p):
        state = opt.init(p)
        for _ in range(2):
            u, state = opt.update(_grad(p), state, p)
            p = gradtx.apply_updates(p, u)
        return p, state

    got = jax.jit(jax.vmap(two_steps))(params)
    loop = jax.jit(two_steps)
    for i in range(3):
        want = loop({"p": params["p"][i]})
        jax.tree.map(
            lambda x, y: np.testing.assert_allclose(np.asarray(x[i]), np.asarray(y), rtol=1e-6),
            got,
            want,
        )


@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda: gradtx.lookahead_in_state(gradtx.sgd(0.1), 0),
            ValueError,
            "lookahead_in_state: sync_period must be an int >= 1, got 0",
        ),
        (
            lambda: gradtx.lookahead_in_state(gradtx.sgd(0.1), 2, 1.5),
            ValueError,
            r"lookahead_in_state: slow_step_size must be in \[0, 1\], got 1.5",
        ),
        (
            lambda: gradtx.lookahead_in_state("sgd"),
            TypeError,
            "lookahead_in_state: fast_optimizer must be a gradient transformation",
        ),
        (
            lambda: gradtx.ema_params(gradtx.sgd(0.1), 1.0),
            ValueError,
            r"ema_params: decay must be in \[0, 1\), got 1.0",
        ),
    ],
)
def test_averaging_bad_arguments_raise(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "opt",
    [gradtx.lookahead_in_state(gradtx.sgd(0.1)), gradtx.ema_params(gradtx.sgd(0.1))],
    ids=["lookahead", "ema_params"],
)
def test_averaging_without_params_raises(opt):
    g = {"p": jnp.ones(3)}
    with pytest.raises(ValueError, match=f"{opt.name}: update needs params"):
        opt.update(g, opt.init(g))


def _run_pair(opt, steps, dtype=jnp.float32, pair=gradtx.LookaheadParams):
    """Train lookahead's (fast, slow) pair on the quadratic; gradients at the fast weights."""
    a = jnp.asarray(A, dtype)

    @jax.jit
    def step(params, state):
        u, state = opt.update({"p": a * params.fast["p"]}, state, params)
        return optax.apply_updates(params, u), state

    params = pair.init_synced({"p": jnp.asarray(P0, dtype)})
    state = opt.init(params)
    history = []
    for _ in range(steps):
        params, state = step(params, state)
        history.append(params)
    return history


@pytest.mark.parametrize("sync_period, alpha", [(3, 0.5), (1, 0.8), (2, 1.0), (2, 0.0)])
def test_lookahead_matches_direct_loop(sync_period, alpha):
    lr, mom = 0.1, 0.9
    history = _run_pair(gradtx.lookahead(gradtx.sgd(lr, momentum=mom), sync_period, alpha), 8)
    theta, phi, m = P0.copy(), P0.copy(), np.zeros(3)
    for t, params in enumerate(history, start=1):
        m = mom * m + A * theta
        theta = theta - lr * m
        if t % sync_period == 0:
            phi = phi + alpha * (theta - phi)
            theta = phi.copy()
        np.testing.assert_allclose(np.asarray(params.fast["p"]), theta, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(params.slow["p"]), phi, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reset_state", [False, True])
def test_lookahead_matches_optax_in_float64(reset_state):
    with jax.enable_x64(True):
        ours = _run_pair(gradtx.lookahead(gradtx.adam(0.1), 3, 0.6, reset_state), 12, jnp.float64)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes float and int32 counts
            theirs = _run_pair(
                optax.lookahead(optax.adam(0.1), 3, 0.6, reset_state),
                12,
                jnp.float64,
                optax.LookaheadParams,
            )
    for mine, want in zip(ours, theirs):
        for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_lookahead_with_reset_state_restarts_the_fast_optimizer_at_sync():
    opt = gradtx.lookahead(gradtx.sgd(0.1, momentum=0.9), 2, 0.5, reset_state=True)
    params = gradtx.LookaheadParams.init_synced({"p": jnp.asarray(P0, jnp.float32)})
    state = opt.init(params)
    g = {"p": jnp.ones(3)}
    _, state = opt.update(g, state, params)
    assert int(state.steps_since_sync) == 1 and float(state.fast_state.states[0].trace["p"][0]) == 1
    _, state = opt.update(g, state, params)
    assert int(state.steps_since_sync) == 0
    np.testing.assert_array_equal(state.fast_state.states[0].trace["p"], np.zeros(3))


def test_lookahead_with_plain_params_raises_naming_lookahead_in_state():
    opt = gradtx.lookahead(gradtx.sgd(0.1), 2, 0.5)
    g = {"p": jnp.ones(3)}
    with pytest.raises(
        TypeError, match="lookahead: update needs params=LookaheadParams.*lookahead_in_state"
    ):
        opt.update(g, opt.init(g), g)
