"""scale_by_prodigy and scale_by_dadapt_adamw on their own: the estimate d_t."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_parameter_free as ref_parameter_free
from problems import PROBLEMS

import gradtx

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adamw"])
def test_step_size_estimate_grows_from_d0_and_matches_numpy(name):
    problem = PROBLEMS["nested_quadratic"]
    make = {
        "prodigy": lambda: (
            gradtx.scale_by_prodigy(estim_lr0=1e-4),
            ref_parameter_free.prodigy(d0=1e-4),
        ),
        "dadapt_adamw": lambda: (
            gradtx.scale_by_dadapt_adamw(estim_lr0=1e-4),
            ref_parameter_free.dadapt_adamw(d0=1e-4),
        ),
    }[name]
    with jax.enable_x64(True):
        tx, (init, update) = make()
        params = jax.tree.map(jnp.asarray, problem.params)
        state = tx.init(params)
        leaves = [np.asarray(p) for p in jax.tree.leaves(problem.params)]
        ref_state = init(leaves)
        step = jax.jit(lambda p, s: tx.update(jax.grad(problem.loss)(p), s, p))
        for _ in range(60):
            updates, state = step(params, state)
            params = gradtx.apply_updates(params, updates)
            ref_updates, ref_state = update(problem.grad_np(leaves), ref_state, leaves)
            leaves = [p + u for p, u in zip(leaves, ref_updates)]
            np.testing.assert_allclose(float(state.estim_lr), ref_state["d"], rtol=1e-10)
    assert ref_state["d"] > 100 * 1e-4  # the estimate grew from d_0


def test_prodigy_without_params_raises():
    tx = gradtx.prodigy()
    with pytest.raises(ValueError, match="prodigy: scale_by_prodigy: update needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: gradtx.prodigy(betas=(0.9,)), r"^prodigy: betas must be a pair"),
        (lambda: gradtx.prodigy(estim_lr0=0.0), r"^prodigy: estim_lr0 must be in \(0, inf\]"),
        (
            lambda: gradtx.dadapt_adamw(betas=(0.9, 1.0)),
            r"^dadapt_adamw: betas\[1\] must be in \[0, 1\)",
        ),
        (
            lambda: gradtx.dadapt_adamw(weight_decay=-1.0),
            r"^dadapt_adamw: weight_decay must be in \[0, inf\]",
        ),
    ],
)
def test_parameter_free_invalid_hyperparameter_raises(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_mechanize_under_jit_matches_eager_and_keeps_its_state_structure():
    problem = PROBLEMS["nested_quadratic"]
    opt = gradtx.mechanize(gradtx.adam(0.01))
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), problem.params)

    def step(p, s):
        updates, s = opt.update(jax.grad(problem.loss)(p), s, p)
        return gradtx.apply_updates(p, updates), s

    jitted = jax.jit(step)
    eager_p, eager_s = params, opt.init(params)
    jit_p, jit_s = params, opt.init(params)
    structure = jax.tree.structure(jit_s)
    for _ in range(2):
        eager_p, eager_s = step(eager_p, eager_s)
        jit_p, jit_s = jitted(jit_p, jit_s)
        assert jax.tree.structure(jit_s) == structure
    for a, b in zip(jax.tree.leaves((jit_p, jit_s)), jax.tree.leaves((eager_p, eager_s))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert float(jnp.sum(jit_s.s)) != 1e-6 * 6  # the scale moved


def test_mechanize_with_a_non_transform_base_raises():
    with pytest.raises(
        TypeError, match="mechanize: base_optimizer must be a gradient transformation"
    ):
        gradtx.mechanize(0.1)


def test_scale_by_dog_with_an_unknown_init_step_raises():
    with pytest.raises(ValueError, match="scale_by_dog: init_step must be a pair"):
        gradtx.scale_by_dog(("guess", 1e-6))


def test_scale_by_cocob_first_bet_is_bounded_by_alpha():
    # x_1 = x_0 - g / (|g| max(2 |g|, alpha |g|)) * |g| = x_0 - sign(g) / alpha for alpha >= 2.
    tx = gradtx.scale_by_cocob(alpha=50.0)
    params = jnp.array([0.3, -1.0])
    u, _ = tx.update(jnp.array([4.0, -0.01]), tx.init(params), params)
    np.testing.assert_allclose(u, [-1 / 50, 1 / 50], rtol=1e-5)


def _ldog_closed_form(leaves, grads_of, steps, reps_rel, eps, global_scale):
    """Layer-wise DoG in float64 NumPy, x_0 kept in float32 as optax's default param_dtype."""
    x0 = [p.astype(np.float32).astype(np.float64) for p in leaves]
    r = [reps_rel * (1 + np.linalg.norm(p)) for p in leaves]
    total = [0.0 for _ in leaves]
    trajectory = []
    for _ in range(steps):
        grads = grads_of(leaves)
        r = [max(d, np.linalg.norm(p - p0)) for d, p, p0 in zip(r, leaves, x0)]
        total = [s + np.sum(g**2) for s, g in zip(total, grads)]
        steps_ = [global_scale * d / np.sqrt(s + eps) for d, s in zip(r, total)]
        leaves = [p - lr * g for p, lr, g in zip(leaves, steps_, grads)]
        trajectory.append(leaves)
    return trajectory


def test_scale_by_distance_over_gradients_matches_closed_form_and_optax(x64):
    import optax

    problem = PROBLEMS["nested_quadratic"]
    kwargs = {"reps_rel": 1e-3, "eps": 1e-6, "global_scale": 0.5}
    leaves = [np.asarray(p, np.float64) for p in jax.tree.leaves(problem.params)]
    expected = _ldog_closed_form(leaves, problem.grad_np, 40, **kwargs)
    for module in (gradtx, optax):
        tx = gradtx.chain(
            module.scale_by_distance_over_gradients(**kwargs), gradtx.scale_by_learning_rate(1.0)
        )
        params = jax.tree.map(jnp.asarray, problem.params)
        state = tx.init(params)
        step = jax.jit(lambda p, s: tx.update(jax.grad(problem.loss)(p), s, p))
        worst = 0.0
        with jax.numpy_dtype_promotion("standard"):
            for want in expected:
                updates, state = step(params, state)
                params = gradtx.apply_updates(params, updates)
                for got, w in zip(jax.tree.leaves(params), want):
                    np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)
                    worst = max(worst, float(np.max(np.abs(got - w) / (np.abs(w) + 1e-12))))
        print(f"\nscale_by_distance_over_gradients ({module.__name__}) vs NumPy: {worst:.1e}")
    fields = gradtx.scale_by_distance_over_gradients().init(jnp.ones(2))._fields
    assert fields == ("max_dist", "grad_sum_of_squares", "init_params")


def test_scale_by_distance_over_gradients_keeps_a_scalar_leaf_scalar():
    tx = gradtx.scale_by_distance_over_gradients(reps_rel=0.5, eps=0.0)
    params = {"s": jnp.asarray(3.0), "v": jnp.zeros(2)}
    updates, state = tx.update({"s": jnp.asarray(-2.0), "v": jnp.ones(2)}, tx.init(params), params)
    assert updates["s"].shape == () and state.grad_sum_of_squares["s"].shape == (1,)
    np.testing.assert_allclose(updates["s"], -2.0)  # r_0 = 0.5 * (1 + 3) = 2, 2 g / |g|
    np.testing.assert_allclose(updates["v"], [0.5 / np.sqrt(2)] * 2)


def test_scale_by_distance_over_gradients_without_params_raises():
    tx = gradtx.scale_by_distance_over_gradients()
    with pytest.raises(ValueError, match="scale_by_distance_over_gradients: update needs params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adamw"])
def test_step_size_estimate_after_zero_gradients_stays_finite_and_matches_numpy(name):
    # ||s||_1 = 0 while every gradient is zero: the estimate stays d_0 (optax.contrib's
    # divides 0 / 0 and is NaN for good), and the run goes on once gradients come.
    problem = PROBLEMS["nested_quadratic"]
    tx, (init, update) = {
        "prodigy": lambda: (gradtx.prodigy(estim_lr0=1e-4), ref_parameter_free.prodigy(d0=1e-4)),
        "dadapt_adamw": lambda: (
            gradtx.dadapt_adamw(estim_lr0=1e-4),
            ref_parameter_free.dadapt_adamw(d0=1e-4),
        ),
    }[name]()
    with jax.enable_x64(True):
        params = jax.tree.map(jnp.asarray, problem.params)
        state = tx.init(params)
        leaves = [np.asarray(p) for p in jax.tree.leaves(problem.params)]
        ref_state = init(leaves)
        step = jax.jit(lambda g, p, s: tx.update(g, s, p))
        for i in range(13):
            grads = jax.grad(problem.loss)(params)
            ref_grads = problem.grad_np(leaves)
            if i < 3:
                grads = jax.tree.map(jnp.zeros_like, grads)
                ref_grads = [np.zeros_like(g) for g in ref_grads]
            updates, state = step(grads, params, state)
            params = gradtx.apply_updates(params, updates)
            ref_updates, ref_state = update(ref_grads, ref_state, leaves)
            leaves = [p + u for p, u in zip(leaves, ref_updates)]
            if i < 3:
                assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(updates))
            for a, b in zip(jax.tree.leaves(params), leaves):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(float(_estim_lr(state)), ref_state["d"], rtol=1e-10)
    assert ref_state["d"] > 1e-4  # the estimate grew once the gradients came


def _estim_lr(state):
    """The estimate d_t inside a recipe's state."""
    for s in jax.tree.leaves(state, is_leaf=lambda x: hasattr(x, "estim_lr")):
        if hasattr(s, "estim_lr"):
            return s.estim_lr
    raise AssertionError("no estim_lr in the state")


@pytest.mark.parametrize("make", [gradtx.dowg, lambda: gradtx.dog(init_step=("distance", 0.1))])
def test_distance_methods_with_state_of_other_params_raise_naming_leaf(make):
    opt = make()
    state = opt.init({"w": jnp.ones((3, 2)), "b": jnp.ones(3)})
    other = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    with pytest.raises(
        ValueError,
        match=r"^do\w+: scale_by_do\w+: updates leaf \['w'\] has shape \(2, 3\) but the "
        r"state's init_params has shape \(3, 2\)",
    ):
        opt.update(other, state, other)
    with pytest.raises(ValueError, match=r"updates lack leaf \['b'\], which the state's"):
        opt.update({"w": jnp.ones((3, 2))}, state, {"w": jnp.ones((3, 2))})


def test_polyak_sgd_with_params_of_other_structure_raises_naming_leaf():
    opt = gradtx.polyak_sgd()
    params = {"w": jnp.ones(2), "b": jnp.ones(1)}
    with pytest.raises(
        ValueError,
        match=r"^polyak_sgd: scale_by_polyak: updates do not match params: updates lack "
        r"leaf \['b'\]",
    ):
        opt.update({"w": jnp.ones(2)}, opt.init(params), params, value=jnp.asarray(1.0))
