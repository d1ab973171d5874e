"""Per-slot state dtypes (mu_dtype, nu_dtype): bf16 state halves memory and stays accurate.

References: the same optimizer with float32 state (the arithmetic is float32
in both; only the stored moments differ), and closed-form properties of
stochastic rounding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx._second_moment import _round_bf16_stochastic

BF16 = jnp.bfloat16


def _mlp_problem():
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    x = jax.random.normal(keys[0], (256, 16))
    y = jnp.tanh(x @ jax.random.normal(keys[1], (16, 1))) + 0.1 * jax.random.normal(
        keys[2], (256, 1)
    )
    params = {
        "w1": 0.3 * jax.random.normal(keys[3], (16, 64)),
        "b1": jnp.zeros(64),
        "w2": jnp.zeros((64, 1)),
        "b2": jnp.zeros(1),
    }

    def loss(p, i):
        rows = (jnp.arange(32) + 32 * i) % 256
        h = jnp.tanh(x[rows] @ p["w1"] + p["b1"])
        return jnp.mean((h @ p["w2"] + p["b2"] - y[rows]) ** 2)

    return params, loss


def _quadratic_problem():
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    scale = jnp.exp(jax.random.normal(keys[0], (500,)))
    center = jax.random.normal(keys[1], (500,))
    noise = 0.3 * jax.random.normal(keys[2], (200, 500))

    def loss(p, i):
        return 0.5 * jnp.sum(scale * (p["x"] - center) ** 2) + jnp.sum(noise[i] * p["x"])

    return {"x": jnp.zeros(500)}, loss


def _trajectory(opt, problem, steps=200):
    params, loss = problem

    def body(i, carry):
        p, s = carry
        updates, s = opt.update(jax.grad(loss)(p, i), s, p)
        return gradtx.apply_updates(p, updates), s

    return jax.jit(lambda p: jax.lax.fori_loop(0, steps, body, (p, opt.init(p)))[0])(params)


def _relative_drift(got, want, start):
    def sq(x, y):
        return sum(
            float(jnp.sum((a - b) ** 2)) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y))
        )

    return np.sqrt(sq(got, want) / sq(want, start))


@pytest.mark.parametrize("problem", [_quadratic_problem, _mlp_problem], ids=["quadratic", "mlp"])
@pytest.mark.parametrize("make", [gradtx.adam, gradtx.amsgrad], ids=["adam", "amsgrad"])
def test_bf16_state_trajectory_stays_within_two_percent_of_float32_state(problem, make):
    start = problem()[0]
    lr = 1e-2 if problem is _quadratic_problem else 3e-3
    want = _trajectory(make(lr), problem())
    got = _trajectory(make(lr, mu_dtype=BF16, nu_dtype=BF16), problem())
    assert _relative_drift(got, want, start) < 0.02


def test_bf16_state_halves_moment_memory_and_keeps_param_dtype():
    params = {"w": jnp.ones((8, 4)), "b": jnp.ones(4)}
    full = gradtx.adam(1e-3).init(params)
    half_opt = gradtx.adam(1e-3, mu_dtype=BF16, nu_dtype=BF16)
    half = half_opt.init(params)
    nbytes = lambda tree: sum(x.nbytes for x in jax.tree.leaves(tree) if x.ndim)  # noqa: E731
    assert nbytes(half) * 2 == nbytes(full)
    updates, new_state = half_opt.update(jax.tree.map(jnp.ones_like, params), half, params)
    assert all(
        x.dtype == BF16
        for x in (gradtx.tree_get(new_state, "mu")["w"], gradtx.tree_get(new_state, "nu")["b"])
    )
    assert all(u.dtype == jnp.float32 for u in jax.tree.leaves(updates))
    assert half_opt.hyperparams["mu_dtype"] == "bfloat16"


def test_bf16_second_moment_of_noise_stays_unbiased_over_long_runs():
    """0.999 * v rounds back to v in bf16; stochastic rounding keeps the EMA unbiased."""
    n, steps = 1024, 3000
    opt = gradtx.scale_by_rms(0.999, bias_correction=True, nu_dtype=BF16)
    params = jnp.zeros(n)

    def body(i, state):
        g = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(2), i), (n,))
        return opt.update(g, state, params)[1]

    state = jax.jit(lambda s: jax.lax.fori_loop(0, steps, body, s))(opt.init(params))
    v_hat = jnp.mean(state.nu.astype(jnp.float32)) / (1 - 0.999**steps)
    # unit-variance gradients: E[v_hat] = 1; the sampling error over 1024 x ~1000 steps is ~0.2%
    assert abs(float(v_hat) - 1.0) < 0.02


def test_stochastic_rounding_picks_a_neighbour_with_the_right_probability():
    x = jnp.full((1 << 16,), 1.0 + 2.0**-10, jnp.float32)  # 1/8 of the way from 1 to 1 + 2^-7
    rounded = _round_bf16_stochastic(x, jnp.asarray(7, jnp.int32), 0).astype(jnp.float32)
    up = np.asarray(rounded) == 1.0 + 2.0**-7
    assert np.all(up | (np.asarray(rounded) == 1.0))
    assert abs(up.mean() - 0.125) < 0.01
    negative = _round_bf16_stochastic(-x, jnp.asarray(7, jnp.int32), 0).astype(jnp.float32)
    np.testing.assert_array_equal(negative, -rounded)


def test_stochastic_rounding_draws_afresh_at_every_step():
    """One element over 65536 steps rounds up 1/8 of the time too."""
    x = jnp.asarray([1.0 + 2.0**-10], jnp.float32)
    counts = jnp.arange(1 << 16, dtype=jnp.int32)
    rounded = np.asarray(jax.vmap(lambda c: _round_bf16_stochastic(x, c, 3))(counts), np.float32)
    assert abs((rounded == 1.0 + 2.0**-7).mean() - 0.125) < 0.01


def test_bf16_params_get_an_unbiased_second_moment_without_nu_dtype():
    """bf16 params, nu_dtype left at None: v is stored in bf16 and still decays (optax's would not)."""
    n, steps = 1024, 3000
    opt = gradtx.scale_by_rms(0.999, bias_correction=True)
    params = jnp.zeros(n, BF16)

    def body(i, state):
        g = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(3), i), (n,)).astype(BF16)
        return opt.update(g, state, params)[1]

    state = jax.jit(lambda s: jax.lax.fori_loop(0, steps, body, s))(opt.init(params))
    assert state.nu.dtype == BF16
    v_hat = jnp.mean(state.nu.astype(jnp.float32)) / (1 - 0.999**steps)
    # E[v_hat] = E[bf16(g)^2] = 1 up to the bf16 rounding of g; round to nearest gives ~1.3
    assert abs(float(v_hat) - 1.0) < 0.02


@pytest.mark.parametrize("make", [gradtx.adam, gradtx.amsgrad], ids=["adam", "amsgrad"])
def test_bf16_second_moment_under_flatten_stays_within_two_percent_of_float32_state(make):
    """Packed, the rounding draws differ from the per-leaf path (they hash the position), but
    the trajectory stays as close to float32 state as the per-leaf one does."""
    problem = _quadratic_problem()
    start = problem[0]
    want = _trajectory(make(1e-2), problem)
    got = _trajectory(gradtx.flatten(make(1e-2, nu_dtype=BF16)), problem)
    assert _relative_drift(got, want, start) < 0.02


def test_mu_dtype_under_flatten_matches_per_leaf_path():
    params = {"a": jnp.linspace(-1.0, 1.0, 6), "b": jnp.ones((2, 3))}
    grads = jax.tree.map(lambda p: jnp.cos(3 * p), params)
    results = []
    for opt in (gradtx.adam(0.1, mu_dtype=BF16), gradtx.flatten(gradtx.adam(0.1, mu_dtype=BF16))):
        state = opt.init(params)
        p = params
        for _ in range(5):
            updates, state = opt.update(grads, state, p)
            p = gradtx.apply_updates(p, updates)
        results.append(p)
    for got, want in zip(jax.tree.leaves(results[1]), jax.tree.leaves(results[0])):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_state_dtype_arguments_are_checked():
    with pytest.raises(
        ValueError, match="adam: mu_dtype must be a floating-point dtype, got int32"
    ):
        gradtx.adam(1e-3, mu_dtype=jnp.int32)
    with pytest.raises(ValueError, match="scale_by_rms: nu_dtype must be a floating-point dtype"):
        gradtx.scale_by_rms(nu_dtype=jnp.bool_)
    with pytest.raises(
        ValueError,
        match=r"scale_by_momentum: mu_dtype float32 is real but "
        r"parameter leaf \['z'\] is complex",
    ):
        gradtx.scale_by_momentum(mu_dtype=jnp.float32).init({"z": jnp.zeros(2, jnp.complex64)})
