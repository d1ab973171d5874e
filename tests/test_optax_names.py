"""A name gradtx shares with optax computes optax's math for optax's keywords.

Each case calls the gradtx name and the optax name with the same arguments
(positional where optax takes them positionally) and compares the two
parameter trajectories at every step: float64 within 1e-10 relative, float32
within 1e-5 (learning rates small enough that neither run is chaotic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from problems import PROBLEMS, assert_trajectories_close, run_jax

import gradtx

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

STEPS = 100


def _cosine(lr):
    def schedule(count):
        t = jnp.minimum(count, 80).astype(jnp.result_type(float))
        return lr * (0.5 + 0.5 * jnp.cos(jnp.pi * t / 80))

    return schedule


def _mask(params):
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


# (id, make(module, lr) -> transform, learning rate).  ``module`` is gradtx or
# optax: the same call builds both.
CASES = [
    ("sgd", lambda m, lr: m.sgd(lr), 0.05),
    ("sgd_momentum", lambda m, lr: m.sgd(lr, 0.9), 0.02),
    ("sgd_nesterov_schedule", lambda m, lr: m.sgd(_cosine(lr), momentum=0.9, nesterov=True), 0.02),
    ("rmsprop", lambda m, lr: m.rmsprop(lr), 0.01),
    (
        "rmsprop_all_keywords",
        lambda m, lr: m.rmsprop(lr, 0.8, 1e-3, 0.1, False, False, 0.5, True, True),
        0.01,
    ),
    (
        "rmsprop_centered_momentum_schedule",
        lambda m, lr: m.rmsprop(_cosine(lr), centered=True, momentum=0.9, eps=0.1),
        0.01,
    ),
    ("adagrad", lambda m, lr: m.adagrad(lr, 0.2, 1e-5), 0.1),
    ("adadelta_l2_mask", lambda m, lr: m.adadelta(lr, 0.8, 1e-4, 0.1, _mask), 1.0),
    ("adam", lambda m, lr: m.adam(lr), 0.01),
    ("adam_positional", lambda m, lr: m.adam(lr, 0.8, 0.99, 1e-6, 1e-8, None), 0.01),
    ("adam_nesterov", lambda m, lr: m.adam(lr, nesterov=True), 0.01),
    ("nadam", lambda m, lr: m.nadam(lr, b2=0.99), 0.01),
    ("adamw_mask_schedule", lambda m, lr: m.adamw(_cosine(lr), weight_decay=0.1, mask=_mask), 0.01),
    ("nadamw", lambda m, lr: m.nadamw(lr, weight_decay=0.05), 0.01),
    ("amsgrad", lambda m, lr: m.amsgrad(lr, b2=0.99), 0.01),
    (
        "amsgrad_no_correction",
        lambda m, lr: m.amsgrad(lr, bias_correction_mu=False, bias_correction_nu=False),
        0.01,
    ),
    ("radam", lambda m, lr: m.radam(lr, b2=0.9), 0.01),
    ("radam_nesterov", lambda m, lr: m.radam(lr, b2=0.9, threshold=6.0, nesterov=True), 0.01),
    (
        "chain_scale_by_rms",
        lambda m, lr: m.chain(
            m.scale_by_rms(0.9, 1e-3, 0.1, True, True), m.scale_by_learning_rate(lr)
        ),
        0.01,
    ),
    (
        "chain_scale_by_rms_eps_outside",
        lambda m, lr: m.chain(
            m.scale_by_rms(0.9, 1e-3, eps_in_sqrt=False), m.scale_by_learning_rate(lr)
        ),
        0.01,
    ),
    (
        "chain_scale_by_rss",
        lambda m, lr: m.chain(m.scale_by_rss(0.3, 1e-4), m.scale_by_learning_rate(lr)),
        0.1,
    ),
    (
        "chain_trace_decay_schedule",
        lambda m, lr: m.chain(
            m.trace(0.8, True),
            m.add_decayed_weights(_cosine(0.1), _mask),
            m.scale_by_learning_rate(lr),
        ),
        0.02,
    ),
    ("chain_clip_adam", lambda m, lr: m.chain(m.clip_by_global_norm(0.5), m.adam(lr)), 0.01),
]
IDS = [case[0] for case in CASES]


def _trajectories(make, lr, problem, dtype):
    problem = PROBLEMS[problem]
    lr = lr * problem.lr_scale
    ours = run_jax(make(gradtx, lr), problem, gradtx.apply_updates, STEPS, dtype)
    # optax raises Python floats to int32 counts, which strict promotion refuses.
    with jax.numpy_dtype_promotion("standard"):
        theirs = run_jax(make(optax, lr), problem, optax.apply_updates, STEPS, dtype)
    start = jax.tree.leaves(problem.params)
    assert max(np.max(np.abs(a - b)) for a, b in zip(ours[-1], start)) > 1e-3  # it moved
    return ours, theirs


@pytest.mark.parametrize("name, make, lr", CASES, ids=IDS)
def test_gradtx_name_matches_optax_trajectory_float64(name, make, lr, x64):
    ours, theirs = _trajectories(make, lr, "nested_quadratic", np.float64)
    assert_trajectories_close(ours, theirs, f"{name} vs optax, float64")


# On the MLP, plain RMSprop at this learning rate is chaotic in float64: optax
# multiplies by rsqrt(v + eps) where gradtx divides by sqrt(v + eps), one rounding
# apart, and the difference doubles every few steps (2e-10 at step 62, 3e-8 at 64).
# The nested quadratic above checks those two cases at 1e-10.
MLP_CASES = [c for c in CASES if c[0] not in ("rmsprop", "chain_scale_by_rms_eps_outside")]


@pytest.mark.slow
@pytest.mark.parametrize("name, make, lr", MLP_CASES, ids=[c[0] for c in MLP_CASES])
def test_gradtx_name_matches_optax_trajectory_float64_mlp(name, make, lr, x64):
    ours, theirs = _trajectories(make, lr, "mlp", np.float64)
    assert_trajectories_close(ours, theirs, f"{name} on the MLP vs optax, float64")


@pytest.mark.parametrize("name, make, lr", CASES, ids=IDS)
def test_gradtx_name_matches_optax_trajectory_float32(name, make, lr):
    ours, theirs = _trajectories(make, lr / 10, "nested_quadratic", np.float32)
    assert_trajectories_close(ours, theirs, f"{name} vs optax, float32", rtol=1e-5, atol=1e-6)


def test_adam_bf16_first_moment_matches_optax_mu_dtype():
    """mu_dtype stores m in bfloat16 and the step uses m before rounding, as optax does.

    optax multiplies the stored bfloat16 moment by b1 in bfloat16; gradtx widens
    it to float32 first, so the two differ by bfloat16 round-off (2^-8) in m:
    the trajectories stay within 2% of the distance travelled.
    """
    ours, theirs = _trajectories(
        lambda m, lr: m.adam(lr, mu_dtype=jnp.bfloat16), 0.001, "nested_quadratic", np.float32
    )
    start = [np.asarray(p) for p in jax.tree.leaves(PROBLEMS["nested_quadratic"].params)]
    travelled = max(np.max(np.abs(b - s)) for b, s in zip(theirs[-1], start))
    drift = max(
        np.max(np.abs(a - b))
        for step_a, step_b in zip(ours, theirs)
        for a, b in zip(step_a, step_b)
    )
    assert drift < 0.02 * travelled, (drift, travelled)


# ----------------------------------------------------------------------------
# optax.contrib's names (gradtx exports them at top level) and transforms
# that need params or extra keywords.


def _contrib(m):
    return optax.contrib if m is optax else m


CONTRIB_CASES = [
    ("acprop", lambda m, lr: _contrib(m).acprop(lr), 0.01),
    (
        "acprop_all_keywords",
        lambda m, lr: _contrib(m).acprop(lr, 0.8, 0.95, 1e-3, 1e-4, 0.1, _mask),
        0.01,
    ),
]
CONTRIB_CASES += [
    (
        "scale_by_distance_over_gradients",
        lambda m, lr: m.chain(
            m.scale_by_distance_over_gradients(1e-3, 1e-6, global_scale=0.5),
            m.scale_by_learning_rate(lr),
        ),
        1.0,
    ),
]
CONTRIB_IDS = [case[0] for case in CONTRIB_CASES]


@pytest.mark.parametrize("name, make, lr", CONTRIB_CASES, ids=CONTRIB_IDS)
def test_gradtx_contrib_name_matches_optax_trajectory_float64(name, make, lr, x64):
    ours, theirs = _trajectories(make, lr, "nested_quadratic", np.float64)
    assert_trajectories_close(ours, theirs, f"{name} vs optax, float64")


@pytest.mark.parametrize("name, make, lr", CONTRIB_CASES, ids=CONTRIB_IDS)
def test_gradtx_contrib_name_matches_optax_trajectory_float32(name, make, lr):
    ours, theirs = _trajectories(make, lr / 10, "nested_quadratic", np.float32)
    assert_trajectories_close(ours, theirs, f"{name} vs optax, float32", rtol=1e-5, atol=1e-6)


def _per_example_run(make, dtype, steps=30):
    """``make(module)``'s trajectory on a linear regression fed per-example gradients."""
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(steps, 6, 3)), rng.normal(size=(steps, 6))

    def loss(p, xi, yi):
        return 0.5 * (xi @ p["w"] + p["b"] - yi) ** 2

    per_example = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))
    runs = []
    for module in (gradtx, optax):
        tx = make(module)
        params = {"w": jnp.ones(3, dtype), "b": jnp.zeros((), dtype)}
        state = tx.init(params)
        step = jax.jit(
            lambda p, s, xi, yi: tx.update(per_example(p, xi, yi), s, p)  # noqa: B023
        )
        trajectory = []
        with jax.numpy_dtype_promotion("standard" if module is optax else "strict"):
            for xi, yi in zip(x, y):
                updates, state = step(params, state, jnp.asarray(xi, dtype), jnp.asarray(yi, dtype))
                params = module.apply_updates(params, updates)
                trajectory.append([np.asarray(p) for p in jax.tree.leaves(params)])
        runs.append(trajectory)
    return runs


DPSGD_CASES = {
    "dpsgd": lambda m: _contrib(m).dpsgd(0.05, 1.0, 0.5, 3),
    "dpsgd_nesterov": lambda m: _contrib(m).dpsgd(
        0.05, l2_norm_clip=0.5, noise_multiplier=1.1, seed=7, momentum=0.9, nesterov=True
    ),
}


@pytest.mark.parametrize("name", list(DPSGD_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dpsgd_matches_optax_trajectory_with_the_same_seed(name, dtype):
    """The noise included: the same seed draws the same noise in gradtx and optax."""
    with jax.enable_x64(dtype == np.float64):
        ours, theirs = _per_example_run(DPSGD_CASES[name], dtype)
    tol = {"rtol": 1e-10, "atol": 0.0} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-6}
    assert_trajectories_close(ours, theirs, f"{name} vs optax.contrib, {dtype.__name__}", **tol)


BACKTRACKING_CASES = {
    "default": {"max_backtracking_steps": 15},
    "store_grad_restart": {
        "max_backtracking_steps": 15,
        "decrease_factor": 0.5,
        "increase_factor": float("inf"),
        "store_grad": True,
    },
    "all_keywords": {
        "max_backtracking_steps": 6,
        "slope_rtol": 0.3,
        "decrease_factor": 0.6,
        "increase_factor": 1.2,
        "max_learning_rate": 0.5,
        "atol": 1e-4,
        "rtol": 1e-3,
    },
}


@pytest.mark.parametrize("case", list(BACKTRACKING_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scale_by_backtracking_linesearch_matches_optax_trajectory(case, dtype):
    """SGD directions scaled by the search, the loss taking a keyword (a batch weight)."""
    kwargs = BACKTRACKING_CASES[case]
    problem = PROBLEMS["nested_quadratic"]

    def loss(p, weight):
        return weight * problem.loss(p)

    runs = []
    with jax.enable_x64(dtype == np.float64):
        for m in (gradtx, optax):
            opt = m.chain(m.sgd(1.0), m.scale_by_backtracking_linesearch(**kwargs))
            from_state = m.value_and_grad_from_state(loss)

            @jax.jit
            def step(p, s, opt=opt, from_state=from_state):
                weight = jnp.asarray(2.0, dtype)
                if kwargs.get("store_grad"):
                    value, grad = from_state(p, weight, state=s)
                else:
                    value, grad = jax.value_and_grad(loss)(p, weight)
                return opt.update(grad, s, p, value=value, grad=grad, value_fn=loss, weight=weight)

            params = jax.tree.map(lambda x: jnp.asarray(x, dtype), problem.params)
            state = opt.init(params)
            trajectory = []
            with jax.numpy_dtype_promotion("standard" if m is optax else "strict"):
                for _ in range(40):
                    updates, state = step(params, state)
                    params = m.apply_updates(params, updates)
                    trajectory.append([np.asarray(x) for x in jax.tree.leaves(params)])
            runs.append(trajectory)
    tol = {} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-6}
    assert_trajectories_close(
        *runs, f"scale_by_backtracking_linesearch {case}, {dtype.__name__}", **tol
    )


SOPHIA_CASES = {
    "sophia": {},
    "sophia_all_keywords": dict(
        b1=0.9,
        b2=0.8,
        eps=1e-6,
        weight_decay=0.01,
        weight_decay_mask=_mask,
        gamma=0.5,
        clip_threshold=0.5,
        update_interval=3,
    ),
}


@pytest.mark.parametrize("case", list(SOPHIA_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sophia_matches_optax_contrib_trajectory(case, dtype):
    """Hutchinson's random signs included: the default key draws the same ones in both."""
    problem = PROBLEMS["mlp" if dtype == np.float64 else "nested_quadratic"]
    runs = []
    with jax.enable_x64(dtype == np.float64):
        for m in (gradtx, optax.contrib):
            opt = m.sophia(0.01, **SOPHIA_CASES[case])
            step = jax.jit(
                lambda p, s, opt=opt: opt.update(
                    jax.grad(problem.loss)(p), s, p, obj_fn=problem.loss
                )
            )
            params = jax.tree.map(lambda x: jnp.asarray(x, dtype), problem.params)
            state = opt.init(params)
            trajectory = []
            with jax.numpy_dtype_promotion("standard" if m is optax.contrib else "strict"):
                for _ in range(40):
                    updates, state = step(params, state)
                    params = gradtx.apply_updates(params, updates)
                    trajectory.append([np.asarray(x) for x in jax.tree.leaves(params)])
            runs.append(trajectory)
    tol = {} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-6}
    assert_trajectories_close(*runs, f"{case} vs optax.contrib, {dtype.__name__}", **tol)


# ----------------------------------------------------------------------------
# GaLore.  optax computes the SVD in float32 even under x64 (and float32 and
# float64 solvers may sign singular vectors differently, which changes the step
# once momentum crosses a refresh): the float64 check is against a float64 NumPy
# transcription (tests/test_optimizers_matrix.py), and optax is compared here in
# float32, where both call the same solver on the same matrices.

GALORE_DIMS = {
    "nested": {
        "cube": gradtx.GaLoreDimensionNumbers(reduction_axis=(0, 2), output_axis=1),
        "matrix": gradtx.GaLoreDimensionNumbers(reduction_axis=1, output_axis=0),
    },
    "scalar": None,
    "vector": None,
}
GALORE_CASES = {
    "galore": {},
    "galore_all_keywords": dict(
        rank=2,
        update_proj_gap=7,
        scale=0.5,
        weight_decay=0.1,
        mask=_mask,
        weight_dimension_numbers=GALORE_DIMS,
    ),
    "galore_rank_1_refresh_every_3": dict(rank=1, update_proj_gap=3),
    "galore_lion_base": dict(rank=2, update_proj_gap=5, base_optimizer="lion"),
}


@pytest.mark.parametrize("case", list(GALORE_CASES))
def test_galore_matches_optax_contrib_trajectory_float32(case):
    kwargs = dict(GALORE_CASES[case])

    def make(m, lr):
        if kwargs.get("base_optimizer") == "lion":
            return _contrib(m).galore(lr, **{**kwargs, "base_optimizer": m.scale_by_lion()})
        return _contrib(m).galore(lr, **kwargs)

    ours, theirs = _trajectories(make, 0.001, "nested_quadratic", np.float32)
    assert all(a.dtype == np.float32 for a in ours[-1])
    assert_trajectories_close(ours, theirs, f"{case} vs optax, float32", rtol=1e-5, atol=1e-6)
