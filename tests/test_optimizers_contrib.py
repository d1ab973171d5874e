"""optax.contrib's optimizers, number for number, against NumPy and optax.

Each case runs gradtx's optimizer, a float64 NumPy transcription of the
published rule (tests/reference_contrib.py) and optax.contrib's optimizer
(the same keywords) on the problems of tests/test_references.py: a
quadratic over scalar, vector, matrix and 3-d leaves, the chained
Rosenbrock function and a small tanh MLP.  Every implementation computes its
gradient at its own parameters.  float64 agrees to 1e-10 relative at every
step; float32 (learning rates ten times smaller, on the convex quadratic)
to 1e-5.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
import reference as ref
import reference_contrib as rc
from _porting_problems import compile_quickly
from problems import PROBLEMS, assert_trajectories_close

import gradtx

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

STEPS = 120


class Case:
    """gradtx_fn(lr), reference_fn(lr) and optax_fn(lr) build the three implementations;
    ``value``: the update takes the loss as ``value=``; ``optax_rtol``: the
    float64 tolerance against optax where optax rounds part of the rule to
    float32 even under x64 (said at the case); ``f32_scale``: the learning
    rate's scale in the float32 run; ``scale_lr``: multiply the learning rate
    by the problem's scale (False where it multiplies a learned step size);
    ``chaotic``: the names of the problems on which the rule amplifies
    round-off (said at the case), where the others are fed gradtx's own parameters, gradients and
    losses at every step and must reproduce its next parameters (teacher
    forcing) instead of running on their own; ``f32_rtol``: the float32
    tolerance against NumPy's float64 (said at the case where not 1e-5);
    ``variant``: a second setting of an optimizer already in the table, run
    on the several-leaf quadratic only (keeping the suite fast)."""

    def __init__(
        self,
        name,
        lr,
        gradtx_fn,
        reference_fn,
        optax_fn,
        value=False,
        optax_rtol=1e-10,
        f32_scale=0.1,
        scale_lr=True,
        chaotic=(),
        f32_rtol=1e-5,
        variant=False,
    ):
        self.name, self.lr, self.value, self.optax_rtol = name, lr, value, optax_rtol
        self.f32_scale, self.scale_lr, self.chaotic = f32_scale, scale_lr, chaotic
        self.gradtx, self.reference, self.optax = gradtx_fn, reference_fn, optax_fn
        self.f32_rtol, self.variant = f32_rtol, variant

    def lr_for(self, problem):
        return self.lr * problem.lr_scale if self.scale_lr else self.lr

    def forced(self, problem_name, inputs):
        return inputs if problem_name in self.chaotic else None


def _default_float(t):
    return jnp.asarray(t).astype(jax.dtypes.canonicalize_dtype(jnp.float64))


def _ramp(start, end, steps):
    """start + (end - start) * min(t, steps) / steps, in the default float dtype."""
    return lambda t: start + (end - start) * jnp.minimum(_default_float(t), steps) / steps


def _warmup(lr, steps):
    def schedule(t):
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
        return lr * jnp.minimum(t, steps).astype(dtype) / steps

    return schedule


def _sgd_ref(lr, momentum=None):
    return ref.tree(ref.sgd(lr, momentum=momentum))


def _sam_adversary(rho):
    return gradtx.chain(gradtx.normalize(), gradtx.sgd(rho))


CASES = [
    Case(
        "schedule_free_adamw",
        0.01,
        lambda lr: gradtx.schedule_free_adamw(lr, weight_decay=0.1),
        lambda lr: rc.schedule_free(rc.adamw_without_momentum(lr, weight_decay=0.1), lr),
        lambda lr: optax.contrib.schedule_free_adamw(lr, weight_decay=0.1),
    ),
    Case(
        "schedule_free_adamw_warmup",
        0.02,
        lambda lr: gradtx.schedule_free_adamw(
            lr, warmup_steps=10, b1=0.95, b2=0.99, eps=1e-3, weight_lr_power=1.0
        ),
        lambda lr: rc.schedule_free(
            rc.adamw_without_momentum(lambda t: lr * min(t, 10) / 10, b2=0.99, eps=1e-3),
            lambda t: lr * min(t, 10) / 10,
            b1=0.95,
            weight_lr_power=1.0,
        ),
        # optax's warmup schedule rounds to float32 even under x64: give optax the
        # same warmup in the default float dtype.
        lambda lr: optax.contrib.schedule_free_adamw(
            _warmup(lr, 10), b1=0.95, b2=0.99, eps=1e-3, weight_lr_power=1.0
        ),
        variant=True,
    ),
    Case(
        "schedule_free_sgd",
        0.05,
        lambda lr: gradtx.schedule_free_sgd(lr, weight_decay=0.01),
        lambda lr: rc.schedule_free(_l2_sgd(lr, 0.01), lr),
        lambda lr: optax.contrib.schedule_free_sgd(lr, weight_decay=0.01),
    ),
    Case(
        "ademamix",
        0.01,
        lambda lr: gradtx.ademamix(lr, b3=0.99, weight_decay=0.1),
        lambda lr: rc.ademamix(lr, b3=0.99, weight_decay=0.1),
        lambda lr: optax.contrib.ademamix(lr, b3=0.99, weight_decay=0.1),
    ),
    Case(
        "ademamix_schedules",
        0.01,
        lambda lr: gradtx.ademamix(
            lr, b3=_ramp(0.9, 0.99, 50), alpha=_ramp(0.0, 3.0, 50), eps_root=1e-6
        ),
        lambda lr: rc.ademamix(
            lr,
            b3=lambda t: 0.9 + 0.09 * min(t, 50) / 50,
            alpha=lambda t: 3.0 * min(t, 50) / 50,
            eps_root=1e-6,
        ),
        lambda lr: optax.contrib.ademamix(
            lr, b3=_ramp(0.9, 0.99, 50), alpha=_ramp(0.0, 3.0, 50), eps_root=1e-6
        ),
        variant=True,
    ),
    Case(
        "simplified_ademamix",
        0.001,
        lambda lr: gradtx.simplified_ademamix(lr, b1=0.9, alpha=2.0, weight_decay=0.1),
        lambda lr: rc.simplified_ademamix(lr, b1=0.9, alpha=2.0, weight_decay=0.1),
        lambda lr: optax.contrib.simplified_ademamix(lr, b1=0.9, alpha=2.0, weight_decay=0.1),
    ),
    Case(
        "adopt",
        0.01,
        lambda lr: gradtx.adopt(lr, b2=0.99),
        lambda lr: rc.adopt(lr, b2=0.99),
        lambda lr: optax.contrib.adopt(lr, b2=0.99),
    ),
    Case(
        "adopt_nesterov_unclipped",
        0.01,
        lambda lr: gradtx.adopt(lr, b2=0.99, eps=1e-3, nesterov=True, use_clipping=False),
        lambda lr: rc.adopt(lr, b2=0.99, eps=1e-3, nesterov=True, use_clipping=False),
        lambda lr: optax.contrib.adopt(lr, b2=0.99, eps=1e-3, nesterov=True, use_clipping=False),
        variant=True,
    ),
    Case(
        "prodigy",
        1.0,
        lambda lr: gradtx.prodigy(lr, estim_lr0=1e-3, weight_decay=0.01),
        lambda lr: rc.prodigy(lr, d0=1e-3, weight_decay=0.01),
        lambda lr: optax.contrib.prodigy(lr, estim_lr0=1e-3, weight_decay=0.01),
        # d_t is a ratio of sums that cancel: float32 holds it to ~1e-5 at lr 0.03.
        f32_scale=0.03,
    ),
    Case(
        "prodigy_safeguard",
        0.5,
        lambda lr: gradtx.prodigy(
            lr,
            betas=(0.8, 0.99),
            beta3=0.9,
            estim_lr0=1e-3,
            estim_lr_coef=0.5,
            safeguard_warmup=True,
        ),
        lambda lr: rc.prodigy(
            lr, betas=(0.8, 0.99), beta3=0.9, d0=1e-3, d_coef=0.5, safeguard_warmup=True
        ),
        lambda lr: optax.contrib.prodigy(
            lr,
            betas=(0.8, 0.99),
            beta3=0.9,
            estim_lr0=1e-3,
            estim_lr_coef=0.5,
            safeguard_warmup=True,
        ),
        variant=True,
    ),
    Case(
        "dadapt_adamw",
        1.0,
        lambda lr: gradtx.dadapt_adamw(lr, estim_lr0=1e-3, weight_decay=0.01),
        lambda lr: rc.dadapt_adamw(lr, d0=1e-3, weight_decay=0.01),
        lambda lr: optax.contrib.dadapt_adamw(lr, estim_lr0=1e-3, weight_decay=0.01),
    ),
    Case(
        "madgrad",
        0.01,
        lambda lr: gradtx.madgrad(lr, weight_decay=0.01),
        lambda lr: rc.madgrad(lr, weight_decay=0.01),
        lambda lr: optax.contrib.madgrad(lr, weight_decay=0.01),
        # optax forms lambda_k = (lr + eps) sqrt(k + 1) from jnp.sqrt of the int32
        # count, which is float32 even under x64; gradtx keeps float64 (and
        # matches NumPy to 1e-10): optax drifts from both by up to ~2e-5.
        optax_rtol=5e-5,
    ),
    Case(
        "sam",
        0.02,
        lambda lr: gradtx.sam(gradtx.sgd(lr, momentum=0.9), _sam_adversary(0.05)),
        lambda lr: rc.sam(_sgd_ref(lr, momentum=0.9), 0.05),
        lambda lr: optax.contrib.sam(
            optax.sgd(lr, momentum=0.9), optax.chain(optax.contrib.normalize(), optax.sgd(0.05))
        ),
    ),
    Case(
        "sam_three_steps",
        0.02,
        lambda lr: gradtx.sam(gradtx.adam(lr), _sam_adversary(0.02), sync_period=3),
        lambda lr: rc.sam(ref.tree(ref.adam(lr)), 0.02, sync_period=3),
        lambda lr: optax.contrib.sam(
            optax.adam(lr), optax.chain(optax.contrib.normalize(), optax.sgd(0.02)), sync_period=3
        ),
        variant=True,
    ),
    Case(
        "dog",
        1.0,
        lambda lr: gradtx.dog(lr, weight_decay=0.01),
        lambda lr: rc.dog(lr, weight_decay=0.01),
        lambda lr: optax.contrib.dog(lr, weight_decay=0.01),
        scale_lr=False,
    ),
    Case(
        "dog_distance",
        0.5,
        lambda lr: gradtx.dog(lr, init_step=("distance", 1e-3), eps=1e-6),
        lambda lr: rc.dog(lr, init_step=("distance", 1e-3), eps=1e-6),
        lambda lr: optax.contrib.dog(lr, init_step=("distance", 1e-3), eps=1e-6),
        scale_lr=False,
        variant=True,
    ),
    # On the MLP, DoG after a fixed first step, DoWG from a given distance and
    # COCOB amplify round-off (gradtx and optax agree bit for bit there, in
    # closed loop, but NumPy's different summation order drifts): teacher-forced.
    Case(
        "dog_learning_rate",
        1.0,
        lambda lr: gradtx.dog(lr, init_step=("learning_rate", 1e-3)),
        lambda lr: rc.dog(lr, init_step=("learning_rate", 1e-3)),
        lambda lr: optax.contrib.dog(lr, init_step=("learning_rate", 1e-3)),
        scale_lr=False,
        chaotic=("mlp",),
        variant=True,
    ),
    Case(
        "dowg",
        1.0,
        lambda lr: gradtx.dowg(lr, weight_decay=0.01),
        lambda lr: rc.dowg(lr, weight_decay=0.01),
        lambda lr: optax.contrib.dowg(lr, weight_decay=0.01),
        scale_lr=False,
    ),
    Case(
        "dowg_init",
        0.5,
        lambda lr: gradtx.dowg(lr, init_estim_sq_dist=1e-3, eps=1e-6),
        lambda lr: rc.dowg(lr, init_estim_sq_dist=1e-3, eps=1e-6),
        lambda lr: optax.contrib.dowg(lr, init_estim_sq_dist=1e-3, eps=1e-6),
        scale_lr=False,
        chaotic=("mlp",),
        variant=True,
    ),
    Case(
        "cocob",
        1.0,
        lambda lr: gradtx.cocob(lr, weight_decay=0.01),
        lambda lr: rc.cocob(lr, weight_decay=0.01),
        lambda lr: optax.contrib.cocob(lr, weight_decay=0.01),
        chaotic=("mlp",),
    ),
    # Mechanic reads Delta_t back from the parameters, (x_t - x_0) / (S + eps)
    # with S about 1e-6 at first, which cancels most digits, and its learned
    # scale S_t then amplifies the round-off: the runs are teacher-forced.
    Case(
        "mechanize_adam",
        0.01,
        lambda lr: gradtx.mechanize(gradtx.adam(lr)),
        lambda lr: rc.mechanize(ref.tree(ref.adam(lr))),
        lambda lr: optax.contrib.mechanize(optax.adam(lr)),
        chaotic=tuple(PROBLEMS),
    ),
    Case(
        "mechanize_sgd",
        0.01,
        lambda lr: gradtx.mechanize(
            gradtx.sgd(lr, momentum=0.9), weight_decay=0.1, num_betas=3, s_init=1e-2
        ),
        lambda lr: rc.mechanize(
            _sgd_ref(lr, momentum=0.9), weight_decay=0.1, num_betas=3, s_init=1e-2
        ),
        lambda lr: optax.contrib.mechanize(
            optax.sgd(lr, momentum=0.9), weight_decay=0.1, num_betas=3, s_init=1e-2
        ),
        chaotic=tuple(PROBLEMS),
        # In float32 each step's x_t, rounded, is read back as Delta = (x_t - x_0) / S:
        # float32 holds the step to about 1e-4 (optax's float32 agrees with gradtx's).
        f32_rtol=1e-4,
        variant=True,
    ),
    Case(
        "momo",
        0.1,
        lambda lr: gradtx.momo(lr, weight_decay=0.01),
        lambda lr: rc.momo(lr, weight_decay=0.01),
        lambda lr: optax.contrib.momo(lr, weight_decay=0.01),
        value=True,
    ),
    Case(
        "momo_adapt",
        0.1,
        lambda lr: gradtx.momo(lr, beta=0.8, lower_bound=-1.0, adapt_lower_bound=True),
        lambda lr: rc.momo(lr, beta=0.8, lower_bound=-1.0, adapt_lower_bound=True),
        lambda lr: optax.contrib.momo(lr, beta=0.8, lower_bound=-1.0, adapt_lower_bound=True),
        value=True,
        variant=True,
    ),
    Case(
        "momo_adam",
        0.01,
        lambda lr: gradtx.momo_adam(lr, weight_decay=0.01),
        lambda lr: rc.momo_adam(lr, weight_decay=0.01),
        lambda lr: optax.contrib.momo_adam(lr, weight_decay=0.01),
        value=True,
    ),
    Case(
        "momo_adam_adapt",
        0.01,
        lambda lr: gradtx.momo_adam(lr, b2=0.99, lower_bound=-1.0, adapt_lower_bound=True),
        lambda lr: rc.momo_adam(lr, b2=0.99, lower_bound=-1.0, adapt_lower_bound=True),
        lambda lr: optax.contrib.momo_adam(lr, b2=0.99, lower_bound=-1.0, adapt_lower_bound=True),
        value=True,
        variant=True,
    ),
    Case(
        "reduce_on_plateau",
        0.05,
        lambda lr: gradtx.chain(
            gradtx.sgd(lr),
            gradtx.reduce_on_plateau(
                factor=0.5, patience=3, rtol=1e-2, cooldown=2, accumulation_size=2, min_scale=0.1
            ),
        ),
        lambda lr: rc.reduce_on_plateau(
            _sgd_ref(lr),
            factor=0.5,
            patience=3,
            rtol=1e-2,
            cooldown=2,
            accumulation_size=2,
            min_scale=0.1,
        ),
        lambda lr: optax.chain(
            optax.sgd(lr),
            optax.contrib.reduce_on_plateau(
                factor=0.5, patience=3, rtol=1e-2, cooldown=2, accumulation_size=2, min_scale=0.1
            ),
        ),
        value=True,
    ),
]
CASE_BY_NAME = {c.name: c for c in CASES}
RUNS = [(c, p) for c in CASES for p in (["nested_quadratic"] if c.variant else list(PROBLEMS))]
MAIN = [c for c in CASES if not c.variant]


def _l2_sgd(lr, weight_decay):
    def init(p):
        return {}

    def update(g, s, y):
        return -lr * (g + weight_decay * y), s

    return ref.tree((init, update))


# ----------------------------------------------------------------------------
# Runs: a trajectory is a list (one per step) of lists of parameter leaves.


def run_jax(tx, problem, apply, value, steps=STEPS, dtype=np.float64, forced=None):
    """The trajectory; with ``forced`` (a run's inputs), each step starts from those inputs."""
    value_and_grad = jax.value_and_grad(problem.loss)

    def step(params, state, grad, loss):
        extra = {"value": loss} if value else {}
        updates, state = tx.update(grad, state, params, **extra)
        return apply(params, updates), state

    def closed_loop_step(params, state):
        loss, grad = value_and_grad(params)
        return step(params, state, grad, loss) + ((params, grad, loss),)

    params = jax.tree.map(lambda p: jnp.asarray(p, dtype), problem.params)
    state = tx.init(params)
    trajectory, inputs = [], []
    if forced is None:
        run = compile_quickly(closed_loop_step, params, state)
    else:
        run = compile_quickly(step, params, state, *jax.tree.map(jnp.asarray, forced[0][1:]))
    for t in range(steps):
        if forced is None:
            params, state, used = run(params, state)
        else:
            used = jax.tree.map(jnp.asarray, forced[t])
            params, state = run(used[0], state, used[1], used[2])
        inputs.append(jax.tree.map(np.asarray, used))
        trajectory.append([np.asarray(p) for p in jax.tree.leaves(params)])
    return trajectory, inputs


def run_reference(reference, problem, value, steps=STEPS, forced=None):
    init, update = reference
    params = [np.asarray(p, np.float64) for p in jax.tree.leaves(problem.params)]
    state = init(params)
    trajectory = []
    for t in range(steps):
        if forced is not None:
            params = [np.asarray(p, np.float64) for p in jax.tree.leaves(forced[t][0])]
        grads = problem.grad_np(params)
        if value:
            loss = float(problem.loss(jax.tree.unflatten(problem.treedef, params)))
            updates, state = update(grads, state, params, loss)
        else:
            updates, state = update(grads, state, params)
        params = [p + u for p, u in zip(params, updates)]
        trajectory.append(params)
    return trajectory, state


@functools.cache
def _gradtx_run(case_name, problem_name):
    case, problem = CASE_BY_NAME[case_name], PROBLEMS[problem_name]
    assert jax.config.jax_enable_x64, "call under the x64 fixture"
    return run_jax(case.gradtx(case.lr_for(problem)), problem, gradtx.apply_updates, case.value)


def _run_id(run):
    return f"{run[0].name}-{run[1]}"


@pytest.mark.parametrize("case, problem_name", RUNS, ids=[_run_id(r) for r in RUNS])
def test_contrib_optimizer_matches_closed_form(case, problem_name, x64):
    problem = PROBLEMS[problem_name]
    actual, inputs = _gradtx_run(case.name, problem_name)
    expected, _ = run_reference(
        case.reference(case.lr_for(problem)),
        problem,
        case.value,
        forced=case.forced(problem_name, inputs),
    )
    assert_trajectories_close(actual, expected, f"{case.name} on {problem_name} vs NumPy")
    start = jax.tree.leaves(problem.params)
    assert max(np.max(np.abs(a - b)) for a, b in zip(actual[-1], start)) > 1e-3


@pytest.mark.parametrize("case, problem_name", RUNS, ids=[_run_id(r) for r in RUNS])
def test_contrib_optimizer_matches_optax(case, problem_name, x64):
    problem = PROBLEMS[problem_name]
    actual, inputs = _gradtx_run(case.name, problem_name)
    with jax.numpy_dtype_promotion("standard"):
        expected, _ = run_jax(
            case.optax(case.lr_for(problem)),
            problem,
            optax.apply_updates,
            case.value,
            forced=case.forced(problem_name, inputs),
        )
    assert_trajectories_close(
        actual, expected, f"{case.name} on {problem_name} vs optax", rtol=case.optax_rtol
    )


@pytest.mark.parametrize("case", MAIN, ids=lambda c: c.name)
def test_contrib_optimizer_in_float32_matches_references(case):
    # float32 without x64, learning rates ten times smaller, on the convex
    # quadratic: round-off is damped rather than amplified.  Errors are
    # relative to max(1, |p|).
    problem = PROBLEMS["nested_quadratic"]
    lr = case.lr * case.f32_scale
    actual, inputs = run_jax(
        case.gradtx(lr), problem, gradtx.apply_updates, case.value, dtype=np.float32
    )
    forced = case.forced("nested_quadratic", inputs)
    with jax.enable_x64(True):
        expected, _ = run_reference(case.reference(lr), problem, case.value, forced=forced)
    with jax.numpy_dtype_promotion("standard"):
        from_optax, _ = run_jax(
            case.optax(lr),
            problem,
            optax.apply_updates,
            case.value,
            dtype=np.float32,
            forced=forced,
        )
    assert all(a.dtype == np.float32 for a in actual[-1])
    assert_trajectories_close(
        actual, from_optax, f"{case.name} float32 vs optax float32", rtol=1e-5, atol=1e-5
    )
    assert_trajectories_close(
        actual,
        expected,
        f"{case.name} float32 vs NumPy float64",
        rtol=case.f32_rtol,
        atol=case.f32_rtol,
    )
