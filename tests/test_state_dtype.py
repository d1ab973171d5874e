"""Per-slot state dtypes (mu_dtype, nu_dtype): bf16 state halves memory and stays accurate.

Reference: the same optimizer with float32 state (the arithmetic is float32
in both; only the stored moments differ).  The stochastic rounding of bf16
second moments is tested against its closed-form properties in
test_second_moment.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

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
