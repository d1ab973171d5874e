"""One reference case: an optimizer three ways, and the checks that compare them.

A ``Case`` builds, from a learning rate, gradtx's optimizer, a float64 NumPy
transcription of its published rule (``tests/reference*.py``) and optax's
implementation of the same rule (or None).  The ``tests/test_optimizers_*.py``
files hold the cases of one family each and run them through the checks
below on the problems of ``tests/problems.py`` (a quadratic over scalar,
vector, matrix and 3-d leaves, the chained Rosenbrock function and a small
tanh MLP).  Every implementation computes its gradient at its own
parameters.

Two runners: ``gradtx_trajectory`` (``problems.run_jax``, the loss passed as
``value=`` where a case asks for it) and ``gradtx_run`` (which also records
each step's inputs so that a reference can be teacher-forced on problems
where the rule amplifies round-off).  Both are cached per case and problem,
so the float64 gradtx run of a table row is computed once per process
whatever the number of tests that compare it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _porting_problems import compile_quickly
from problems import PROBLEMS, STEPS, assert_trajectories_close, moved, run_jax, run_reference

import gradtx


class Case:
    """gradtx_fn(lr), reference_fn(lr, problem) and optax_fn(lr) build the three implementations.

    ``reference_fn`` gets the problem for rules whose reference depends on the
    leaves (masks, noise drawn per leaf); it returns a per-leaf pair, or with
    ``whole_tree`` a pair on the list of leaves.  Options:

    * ``problems``: the problems the case runs on (all by default);
      ``optax_problems``: those of the comparison with optax (``problems`` by default);
    * ``value``: the update takes the loss as ``value=``;
    * ``optax_rtol``: the float64 tolerance against optax where optax rounds
      part of the rule to float32 even under x64 (said at the case);
    * ``f32_scale``: the learning rate's scale in a float32 run;
      ``f32_rtol``: the float32 tolerance against NumPy's float64 (said at the
      case where not 1e-5);
    * ``scale_lr``: multiply the learning rate by the problem's scale (False
      where it multiplies a learned step size);
    * ``chaotic``: the problems on which the rule amplifies round-off (said at
      the case), where the references are fed gradtx's own parameters,
      gradients and losses at every step and must reproduce its next
      parameters (teacher forcing) instead of running on their own;
    * ``variant``: a second setting of an optimizer already in a table, run on
      the several-leaf quadratic only (keeping the suite fast).
    """

    def __init__(
        self,
        name,
        lr,
        gradtx_fn,
        reference_fn,
        optax_fn=None,
        *,
        problems=None,
        optax_problems=None,
        whole_tree=False,
        value=False,
        optax_rtol=1e-10,
        f32_scale=0.1,
        f32_rtol=1e-5,
        scale_lr=True,
        chaotic=(),
        variant=False,
    ):
        self.name, self.lr = name, lr
        self.gradtx, self.reference, self.optax = gradtx_fn, reference_fn, optax_fn
        if problems is None:
            problems = ("nested_quadratic",) if variant else tuple(PROBLEMS)
        self.problems = tuple(problems)
        self.optax_problems = self.problems if optax_problems is None else tuple(optax_problems)
        self.whole_tree, self.value, self.optax_rtol = whole_tree, value, optax_rtol
        self.f32_scale, self.f32_rtol = f32_scale, f32_rtol
        self.scale_lr, self.chaotic, self.variant = scale_lr, chaotic, variant

    def __repr__(self):
        return f"Case({self.name!r})"

    def lr_for(self, problem):
        return self.lr * problem.lr_scale if self.scale_lr else self.lr

    def forced(self, problem_name, inputs):
        return inputs if problem_name in self.chaotic else None


def pairs(cases, optax=False):
    """pytest parameters (case, problem name) over each case's problems (or its optax problems)."""
    return [
        pytest.param(c, p, id=f"{c.name}-{p}")
        for c in cases
        if not optax or c.optax is not None
        for p in (c.optax_problems if optax else c.problems)
    ]


def named(cases, *names):
    """The cases of these names, in this order."""
    by_name = {c.name: c for c in cases}
    return [by_name[n] for n in names]


# ----------------------------------------------------------------------------
# Closed-loop runs: a trajectory is a list (one per step) of lists of leaves.


@functools.cache
def gradtx_trajectory(case, problem_name):
    """gradtx's float64 trajectory of ``case`` on the problem (``problems.run_jax``)."""
    problem = PROBLEMS[problem_name]
    assert jax.config.jax_enable_x64, "call under the x64 fixture"
    return run_jax(
        case.gradtx(case.lr_for(problem)), problem, gradtx.apply_updates, with_value=case.value
    )


def check_closed_form(case, problem_name):
    """gradtx's float64 run against the NumPy reference's, to 1e-10 relative at every step."""
    problem = PROBLEMS[problem_name]
    expected = run_reference(
        case.reference(case.lr_for(problem), problem),
        problem,
        whole_tree=case.whole_tree,
        with_value=case.value,
    )
    actual = gradtx_trajectory(case, problem_name)
    assert_trajectories_close(actual, expected, f"{case.name} on {problem_name} vs NumPy")
    assert moved(actual, problem)


def check_optax_alias(case, problem_name):
    """gradtx's float64 run against optax's, to 1e-10 relative at every step."""
    problem = PROBLEMS[problem_name]
    # optax's own bias correction (float ** int32 count) needs standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        expected = run_jax(
            case.optax(case.lr_for(problem)), problem, optax.apply_updates, with_value=case.value
        )
    actual = gradtx_trajectory(case, problem_name)
    assert_trajectories_close(actual, expected, f"{case.name} on {problem_name} vs optax")


def check_float32_matches_optax(case):
    """Both in float32, without x64; a tenth of the case's learning rate on the
    first problem it runs, so that round-off is damped rather than amplified."""
    problem = PROBLEMS[case.problems[0]]
    lr = case.lr_for(problem) * 0.1
    with jax.numpy_dtype_promotion("standard"):
        expected = run_jax(
            case.optax(lr), problem, optax.apply_updates, dtype=np.float32, with_value=case.value
        )
    actual = run_jax(
        case.gradtx(lr), problem, gradtx.apply_updates, dtype=np.float32, with_value=case.value
    )
    assert all(a.dtype == np.float32 for a in actual[-1])
    assert len(actual) == STEPS
    assert_trajectories_close(
        actual, expected, f"{case.name} float32 vs optax float32", rtol=1e-5, atol=1e-6
    )


def check_float32_matches_float64_reference(case):
    """float32, without x64, against NumPy's float64.  The learning rate is a tenth
    of the case's and the problem a convex quadratic, so the float32 round-off of
    each step (about 1e-7 relative) is damped, not amplified by chaos, and stays
    near 1e-6 of the parameters after 120 steps."""
    problem = PROBLEMS["nested_quadratic"]
    lr = case.lr * 0.1
    expected = run_reference(case.reference(lr, problem), problem, whole_tree=case.whole_tree)
    actual = run_jax(case.gradtx(lr), problem, gradtx.apply_updates, dtype=np.float32)
    assert all(a.dtype == np.float32 for a in actual[-1])
    assert_trajectories_close(
        actual, expected, f"{case.name} float32 vs NumPy float64", rtol=2e-5, atol=2e-6
    )


# ----------------------------------------------------------------------------
# Runs that record their inputs, for teacher forcing.


def run_recorded(tx, problem, apply, value, steps=STEPS, dtype=np.float64, forced=None):
    """(trajectory, inputs); with ``forced`` (a run's inputs), each step starts from those inputs."""
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


def run_reference_forced(reference, problem, value, steps=STEPS, forced=None):
    """A NumPy reference on the list of leaves; with ``forced``, each step starts from its inputs."""
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
def gradtx_run(case, problem_name):
    """gradtx's float64 run of ``case`` on the problem, with its inputs (``run_recorded``)."""
    problem = PROBLEMS[problem_name]
    assert jax.config.jax_enable_x64, "call under the x64 fixture"
    return run_recorded(
        case.gradtx(case.lr_for(problem)), problem, gradtx.apply_updates, case.value
    )


def check_forced_closed_form(case, problem_name):
    """gradtx's float64 run against the NumPy reference's (teacher-forced on chaotic problems)."""
    problem = PROBLEMS[problem_name]
    actual, inputs = gradtx_run(case, problem_name)
    expected, _ = run_reference_forced(
        case.reference(case.lr_for(problem), problem),
        problem,
        case.value,
        forced=case.forced(problem_name, inputs),
    )
    assert_trajectories_close(actual, expected, f"{case.name} on {problem_name} vs NumPy")
    assert moved(actual, problem)


def check_forced_optax(case, problem_name):
    """gradtx's float64 run against optax's (teacher-forced on chaotic problems)."""
    problem = PROBLEMS[problem_name]
    actual, inputs = gradtx_run(case, problem_name)
    with jax.numpy_dtype_promotion("standard"):
        expected, _ = run_recorded(
            case.optax(case.lr_for(problem)),
            problem,
            optax.apply_updates,
            case.value,
            forced=case.forced(problem_name, inputs),
        )
    assert_trajectories_close(
        actual, expected, f"{case.name} on {problem_name} vs optax", rtol=case.optax_rtol
    )


def check_forced_float32(case):
    """float32 without x64, the learning rate scaled by ``f32_scale``, on the convex
    quadratic: round-off is damped rather than amplified.  Errors are relative to
    max(1, |p|)."""
    problem = PROBLEMS["nested_quadratic"]
    lr = case.lr * case.f32_scale
    actual, inputs = run_recorded(
        case.gradtx(lr), problem, gradtx.apply_updates, case.value, dtype=np.float32
    )
    forced = case.forced("nested_quadratic", inputs)
    with jax.enable_x64(True):
        expected, _ = run_reference_forced(
            case.reference(lr, problem), problem, case.value, forced=forced
        )
    with jax.numpy_dtype_promotion("standard"):
        from_optax, _ = run_recorded(
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
