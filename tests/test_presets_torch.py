"""gradtx.presets.torch reproduces torch.optim and its schedulers number for number.

Each case runs the preset and the real PyTorch optimizer side by side for
110 steps on three problems (tests/_porting_problems.py), both in float64,
each computing its gradients from its own parameters (JAX autodiff for
gradtx, torch autograd for PyTorch), and compares every parameter at every
step to 1e-6 relative.  The presets take PyTorch's argument names, so each
case passes the very same keywords to both.
"""

from __future__ import annotations

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _porting_problems import (
    CONST,
    LEAVES,
    STEPS,
    TREEDEF,
    assert_same_trajectory,
    compile_quickly,
    gradtx_trajectory,
    loss,
    relative_error,
)
from lazy_import import lazy

import gradtx
from gradtx.presets import torch as pt

torch = lazy("torch")

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

RTOL = 1e-6


@pytest.fixture(scope="module", autouse=True)
def _float64_everywhere():
    """float64 in both frameworks for this module only (torch's scalar state included)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with jax.enable_x64(True):
            yield
    finally:
        torch.set_default_dtype(previous)


def torch_trajectory(
    make_optimizer,
    make_scheduler=None,
    steps_per_epoch=1,
    sign=1.0,
    steps=STEPS,
    dtype=None,
    record=None,
):
    """PyTorch's loop: zero_grad, backward, step; scheduler.step() once per epoch.

    ``record(optimizer, leaves)`` picks the tensors stacked after each step,
    one per leaf (default: the leaves).  ``dtype``: torch's dtype, float64 by default.
    """
    dtype = torch.float64 if dtype is None else dtype
    leaves = [torch.tensor(x, dtype=dtype, requires_grad=True) for x in LEAVES]
    const = jax.tree.map(lambda x: torch.tensor(x, dtype=dtype), CONST)
    record = record or (lambda optimizer, leaves: leaves)
    optimizer = make_optimizer(leaves)
    scheduler = make_scheduler(optimizer) if make_scheduler else None
    trajectory = []
    for t in range(steps):
        optimizer.zero_grad()
        (sign * loss(TREEDEF.unflatten(leaves), const, torch.tanh)).backward()
        optimizer.step()
        if scheduler is not None and (t + 1) % steps_per_epoch == 0:
            scheduler.step()
        trajectory.append([x.detach().numpy().copy() for x in record(optimizer, leaves)])
    return [np.stack(steps_of_leaf) for steps_of_leaf in zip(*trajectory)]


# (torch.optim class, preset, keywords given to both).  Learning rates keep
# every problem in its stable regime, so round-off is not amplified.
OPTIMIZER_CASES = [
    ("SGD", pt.sgd, dict(lr=1e-3)),
    ("SGD", pt.sgd, dict(lr=1e-3, momentum=0.9)),
    ("SGD", pt.sgd, dict(lr=1e-3, momentum=0.9, dampening=0.5, weight_decay=1e-2)),
    ("SGD", pt.sgd, dict(lr=1e-3, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    ("SGD", pt.sgd, dict(lr=1e-3, momentum=0.5, dampening=0.1, maximize=True)),
    ("Adam", pt.adam, dict(lr=1e-2)),
    ("Adam", pt.adam, dict(lr=1e-2, betas=(0.8, 0.99), amsgrad=True)),
    ("Adam", pt.adam, dict(lr=1e-2, weight_decay=0.1, eps=1e-6)),
    (
        "Adam",
        pt.adam,
        dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True, maximize=True),
    ),
    ("AdamW", pt.adamw, dict(lr=1e-2)),
    ("AdamW", pt.adamw, dict(lr=1e-2, betas=(0.85, 0.995), weight_decay=0.1, amsgrad=True)),
    ("RMSprop", pt.rmsprop, dict(lr=1e-3)),
    ("RMSprop", pt.rmsprop, dict(lr=1e-3, alpha=0.9, centered=True)),
    ("RMSprop", pt.rmsprop, dict(lr=1e-3, eps=1e-6, weight_decay=1e-2, momentum=0.9)),
    ("RMSprop", pt.rmsprop, dict(lr=1e-3, momentum=0.5, centered=True, maximize=True)),
    ("Adagrad", pt.adagrad, dict(lr=0.1)),
    ("Adagrad", pt.adagrad, dict(lr=0.1, lr_decay=1e-2, initial_accumulator_value=0.1, eps=1e-8)),
    ("Adagrad", pt.adagrad, dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("Adadelta", pt.adadelta, dict()),
    ("Adadelta", pt.adadelta, dict(lr=0.5, rho=0.95, eps=1e-5, weight_decay=0.1)),
    ("NAdam", pt.nadam, dict(lr=1e-2)),
    ("NAdam", pt.nadam, dict(lr=1e-2, momentum_decay=1e-2, weight_decay=0.1)),
    (
        "NAdam",
        pt.nadam,
        dict(
            lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1, decoupled_weight_decay=True, maximize=True
        ),
    ),
    ("RAdam", pt.radam, dict(lr=1e-2)),
    ("RAdam", pt.radam, dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)),
    (
        "RAdam",
        pt.radam,
        dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
    ),
    ("Adamax", pt.adamax, dict(lr=1e-2)),
    (
        "Adamax",
        pt.adamax,
        dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1, maximize=True),
    ),
    ("Rprop", pt.rprop, dict(lr=1e-3)),
    ("Rprop", pt.rprop, dict(lr=1e-2, etas=(0.3, 1.5), step_sizes=(1e-4, 0.05), maximize=True)),
    ("ASGD", pt.asgd, dict(lr=1e-3)),
    ("ASGD", pt.asgd, dict(lr=1e-3, lambd=1.0, alpha=0.6, t0=50, weight_decay=0.1, maximize=True)),
    ("Adafactor", pt.adafactor, dict(lr=1e-2)),
    (
        "Adafactor",
        pt.adafactor,
        dict(lr=2e-2, beta2_decay=-0.6, eps=(1e-20, 1e-2), d=2.0, weight_decay=0.1, maximize=True),
    ),
]


def _case_id(case):
    name, _, kwargs = case
    return name + "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=[_case_id(c) for c in OPTIMIZER_CASES])
def test_torch_preset_trajectory_matches_torch_optim(case):
    name, preset, kwargs = case
    # maximize=True runs on the negated loss, so both still descend it.
    sign = -1.0 if kwargs.get("maximize") else 1.0
    theirs = torch_trajectory(lambda ps: getattr(torch.optim, name)(ps, **kwargs), sign=sign)
    ours = gradtx_trajectory(preset(**kwargs), sign=sign)
    assert_same_trajectory(ours, theirs, RTOL)


ASGD_AVERAGE_CASES = [
    dict(lr=1e-3, t0=10),
    dict(lr=1e-3, lambd=1.0, alpha=0.6, t0=3.5, weight_decay=0.1, maximize=True),
]


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize("kwargs", ASGD_AVERAGE_CASES, ids=["t0=10", "t0=3.5_decay_maximize"])
def test_torch_asgd_average_matches_torch_ax_at_every_step(kwargs, dtype, rtol):
    # ax and the parameters after each of the 110 steps, against
    # optimizer.state[p]["ax"]; PyTorch keeps its scalar state (eta, mu) in
    # its default dtype, so that is set to the parameters' dtype.
    sign = -1.0 if kwargs.get("maximize") else 1.0
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        optimizers = []

        def make(ps):
            optimizers.append(torch.optim.ASGD(ps, **kwargs))
            return optimizers[-1]

        def with_ax(optimizer, leaves):
            return leaves + [optimizer.state[leaf]["ax"] for leaf in leaves]

        theirs = torch_trajectory(make, sign=sign, dtype=getattr(torch, dtype), record=with_ax)
    finally:
        torch.set_default_dtype(previous)
    opt = pt.asgd(**kwargs)
    ours_params = gradtx_trajectory(opt, sign=sign, dtype=getattr(jnp, dtype))
    ours_ax = gradtx_trajectory(
        opt,
        sign=sign,
        dtype=getattr(jnp, dtype),
        record=lambda params, state: pt.asgd_averaged_params(state),
    )
    n = len(LEAVES)
    assert all(leaf.dtype == np.dtype(dtype) for leaf in ours_params + ours_ax)
    assert_same_trajectory(ours_params, theirs[:n], rtol)
    assert_same_trajectory(ours_ax, theirs[n:], rtol)
    # From step t0 + 3 on, ax is a mean of several iterates, not the last one.
    assert max(np.abs(a[-1] - p[-1]).max() for a, p in zip(theirs[n:], theirs[:n])) > 1e-4


def test_torch_asgd_averaged_params_of_another_state_raises():
    opt = gradtx.presets.torch.sgd(lr=0.1)
    with pytest.raises(ValueError, match="torch.asgd_averaged_params: state holds no ASGD average"):
        pt.asgd_averaged_params(opt.init(jnp.zeros(2)))


# (torch.optim class, preset, optimizer keywords, torch.optim.lr_scheduler class,
# preset schedule, scheduler keywords, optimizer steps per scheduler.step()).
SCHEDULER_CASES = [
    (
        "SGD",
        pt.sgd,
        dict(lr=1e-3, momentum=0.9),
        "StepLR",
        pt.step_lr,
        dict(step_size=3, gamma=0.5),
        10,
    ),
    (
        "Adam",
        pt.adam,
        dict(lr=1e-2),
        "CosineAnnealingLR",
        pt.cosine_annealing_lr,
        dict(T_max=50, eta_min=1e-4),
        1,
    ),
    (
        "AdamW",
        pt.adamw,
        dict(lr=1e-2, weight_decay=0.1),
        "OneCycleLR",
        pt.one_cycle_lr,
        dict(max_lr=2e-2, total_steps=STEPS + 10, cycle_momentum=False),
        1,
    ),
    (
        "SGD",
        pt.sgd,
        dict(lr=1e-3, momentum=0.9),
        "OneCycleLR",
        pt.one_cycle_lr,
        dict(
            max_lr=2e-3,
            total_steps=STEPS,
            anneal_strategy="linear",
            three_phase=True,
            cycle_momentum=False,
        ),
        1,
    ),
    (
        "RMSprop",
        pt.rmsprop,
        dict(lr=1e-3, momentum=0.9),
        "ExponentialLR",
        pt.exponential_lr,
        dict(gamma=0.9),
        5,
    ),
    (
        "Adam",
        pt.adam,
        dict(lr=1e-2),
        "LinearLR",
        pt.linear_lr,
        dict(start_factor=0.1, total_iters=20),
        1,
    ),
    (
        "Adagrad",
        pt.adagrad,
        dict(lr=0.1, lr_decay=1e-2),
        "StepLR",
        pt.step_lr,
        dict(step_size=1, gamma=0.8),
        20,
    ),
]


def _uses_optimizer_lr(preset_schedule):
    return preset_schedule is not pt.one_cycle_lr


@pytest.mark.parametrize("case", SCHEDULER_CASES, ids=[f"{c[0]}+{c[3]}" for c in SCHEDULER_CASES])
def test_torch_preset_with_scheduler_matches_torch_optim(case):
    name, preset, kwargs, scheduler, schedule, sched_kwargs, steps_per_epoch = case
    scheduler = getattr(torch.optim.lr_scheduler, scheduler)
    theirs = torch_trajectory(
        lambda ps: getattr(torch.optim, name)(ps, **kwargs),
        lambda opt: scheduler(opt, **sched_kwargs),
        steps_per_epoch,
    )
    if _uses_optimizer_lr(schedule):
        lr = schedule(kwargs["lr"], **sched_kwargs, steps_per_epoch=steps_per_epoch)
    else:
        lr = schedule(**sched_kwargs)
    ours = gradtx_trajectory(preset(**{**kwargs, "lr": lr}))
    assert_same_trajectory(ours, theirs, RTOL)


SCHEDULE_VALUE_CASES = [
    ("StepLR", pt.step_lr, dict(step_size=7, gamma=0.3), 1),
    ("StepLR", pt.step_lr, dict(step_size=2), 4),
    ("ExponentialLR", pt.exponential_lr, dict(gamma=0.97), 3),
    ("CosineAnnealingLR", pt.cosine_annealing_lr, dict(T_max=40), 1),
    ("CosineAnnealingLR", pt.cosine_annealing_lr, dict(T_max=15, eta_min=0.02), 2),
    ("LinearLR", pt.linear_lr, dict(), 1),
    ("LinearLR", pt.linear_lr, dict(start_factor=0.9, end_factor=0.2, total_iters=30), 2),
    ("OneCycleLR", pt.one_cycle_lr, dict(max_lr=0.3, total_steps=200, cycle_momentum=False), 1),
    (
        "OneCycleLR",
        pt.one_cycle_lr,
        dict(
            max_lr=0.3,
            epochs=4,
            steps_per_epoch=30,
            pct_start=0.25,
            div_factor=10.0,
            final_div_factor=100.0,
            three_phase=True,
            cycle_momentum=False,
        ),
        1,
    ),
    (
        "OneCycleLR",
        pt.one_cycle_lr,
        dict(max_lr=0.3, total_steps=150, anneal_strategy="linear", cycle_momentum=False),
        1,
    ),
]


@pytest.mark.parametrize(
    "case",
    SCHEDULE_VALUE_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(SCHEDULE_VALUE_CASES)],
)
def test_torch_schedule_matches_scheduler_at_every_optimizer_step(case):
    scheduler, schedule, kwargs, steps_per_epoch = case
    scheduler = getattr(torch.optim.lr_scheduler, scheduler)
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=0.5)
    torch_scheduler = scheduler(optimizer, **kwargs)
    steps = 200 if "max_lr" not in kwargs else torch_scheduler.total_steps
    theirs = []
    for t in range(steps):
        theirs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if (t + 1) % steps_per_epoch == 0:
            torch_scheduler.step()
    if _uses_optimizer_lr(schedule):
        fn = schedule(0.5, **kwargs, steps_per_epoch=steps_per_epoch)
    else:
        fn = schedule(**kwargs)
    ours = np.asarray(jax.vmap(fn)(jnp.arange(steps, dtype=jnp.int32)))
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------
# Arguments are checked as PyTorch checks them, with gradtx's messages.


def test_torch_sgd_with_nesterov_and_dampening_raises():
    with pytest.raises(
        ValueError, match="torch.sgd: nesterov=True needs momentum > 0 and dampening = 0"
    ):
        pt.sgd(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)


def test_torch_adam_with_bad_betas_raises():
    with pytest.raises(ValueError, match=r"torch.adam: betas\[1\] must be in \[0, 1\)"):
        pt.adam(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="torch.nadam: betas must be a pair"):
        pt.nadam(betas=0.9)


def test_torch_one_cycle_lr_with_cycle_momentum_raises():
    with pytest.raises(ValueError, match="cycle_momentum=True .* pass cycle_momentum=False"):
        pt.one_cycle_lr(0.1, total_steps=10)


def test_torch_step_lr_with_bad_steps_per_epoch_raises():
    with pytest.raises(ValueError, match="torch.step_lr: steps_per_epoch must be an int >= 1"):
        pt.step_lr(0.1, step_size=3, steps_per_epoch=0)


def test_torch_preset_is_a_plain_chain_of_public_transforms():
    opt = pt.sgd(lr=0.1, momentum=0.9, dampening=0.5, weight_decay=1e-4, maximize=True)
    assert [part.name for part in opt.children] == [
        "scale",
        "add_decayed_weights",
        "scale_by_schedule",
        "scale_by_momentum",
        "scale_by_learning_rate",
    ]
    assert opt.name == "torch.sgd" and opt.hyperparams["dampening"] == 0.5


# ----------------------------------------------------------------------------
# The porting example in docs/porting.md runs, and ends where PyTorch ends.

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "porting.md"


def _doc_blocks():
    text = DOC.read_text()
    blocks = dict(re.findall(r"<!-- example: (\w+) -->\s*```python\n(.*?)```", text, re.S))
    assert set(blocks) == {"setup", "torch", "gradtx"}, sorted(blocks)
    return blocks


def test_porting_example_in_docs_matches_pytorch_loop():
    blocks = _doc_blocks()
    torch_ns, gradtx_ns = {}, {}
    exec(blocks["setup"], torch_ns)
    exec(blocks["torch"], torch_ns)
    exec(blocks["setup"], gradtx_ns)
    exec(blocks["gradtx"], gradtx_ns)
    ours = [np.asarray(gradtx_ns["params"]["w"]), np.asarray(gradtx_ns["params"]["b"])]
    theirs = [torch_ns["w"].detach().numpy(), torch_ns["b"].detach().numpy()]
    assert np.abs(theirs[0] - torch_ns["W0"]).max() > 1e-3
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-9)
    assert gradtx_ns["params"]["w"].dtype == jnp.float64
    assert isinstance(gradtx_ns["opt"], gradtx.GradientTransformation)


def test_torch_adafactor_factors_the_last_two_axes_of_a_3d_leaf_like_torch():
    # torch.optim.Adafactor factors the last two axes of any leaf of rank >= 2
    # (row and column statistics per leading index); the porting problems have
    # no 3-d leaf, so feed both the same gradients here.
    rng = np.random.default_rng(3)
    p0 = rng.normal(size=(2, 3, 4))
    grads = [rng.normal(size=(2, 3, 4)) * np.exp(rng.normal()) for _ in range(30)]
    param = torch.tensor(p0, requires_grad=True)
    theirs_opt = torch.optim.Adafactor([param], lr=0.05, weight_decay=0.1)
    opt = pt.adafactor(lr=0.05, weight_decay=0.1)
    ours, state = jnp.asarray(p0), opt.init(jnp.asarray(p0))
    step = jax.jit(lambda p, s, g: opt.update(g, s, p))
    for g in grads:
        param.grad = torch.tensor(g)
        theirs_opt.step()
        updates, state = step(ours, state, jnp.asarray(g))
        ours = gradtx.apply_updates(ours, updates)
        np.testing.assert_allclose(np.asarray(ours), param.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert np.abs(np.asarray(ours) - p0).max() > 1e-2


def torch_closure_trajectory(make_optimizer, torch_loss, leaves0, steps):
    """PyTorch's loop for optimizers that take a closure: step(closure) ``steps`` times.

    Returns the leaves stacked over steps and ``state["func_evals"]`` after each step.
    """
    leaves = [torch.tensor(np.asarray(x, np.float64), requires_grad=True) for x in leaves0]
    optimizer = make_optimizer(leaves)

    def closure():
        optimizer.zero_grad()
        value = torch_loss(leaves)
        value.backward()
        return value

    trajectory, evals = [], []
    for _ in range(steps):
        optimizer.step(closure)
        trajectory.append([leaf.detach().numpy().copy() for leaf in leaves])
        evals.append(optimizer.state[leaves[0]]["func_evals"])
    return [np.stack(per_leaf) for per_leaf in zip(*trajectory)], evals


def _porting_loss_torch(leaves):
    const = jax.tree.map(lambda x: torch.tensor(x, dtype=torch.float64), CONST)
    return loss(TREEDEF.unflatten(leaves), const, torch.tanh)


@pytest.mark.parametrize(
    "kwargs, iterations",
    [
        (dict(lr=0.2), 1),
        (dict(lr=0.1, history_size=5, tolerance_change=1e-12), 1),
        (dict(lr=0.2, max_iter=5), 5),
    ],
    ids=["full_history", "short_history", "five_iterations_per_step"],
)
def test_torch_lbfgs_preset_matches_torch_lbfgs(kwargs, iterations):
    # One gradtx update is one L-BFGS iteration; a PyTorch step(closure) with
    # max_iter=k runs k of them, evaluating the closure between them.  Without
    # a line search, unit steps on these problems amplify round-off (the two
    # agree to 1e-15 for the first 20 steps at lr=1, then drift to 1e-4), so
    # the learning rates are smaller.
    torch_kwargs = {**kwargs, "max_iter": iterations}
    steps = STEPS // iterations
    theirs, _ = torch_closure_trajectory(
        lambda ps: torch.optim.LBFGS(ps, **torch_kwargs), _porting_loss_torch, LEAVES, steps
    )
    ours = gradtx_trajectory(pt.lbfgs(**kwargs), steps=steps * iterations)
    ours = [leaf[iterations - 1 :: iterations] for leaf in ours]
    assert_same_trajectory(ours, theirs, RTOL)


# Problems for L-BFGS with a line search, which couples every leaf through one
# step size: (initial leaves, loss of a list of leaves in jnp or torch).
_LSQ = np.random.default_rng(7)
_LSQ_A, _LSQ_B = _LSQ.normal(size=(12, 5)), _LSQ.normal(size=12)
LINE_SEARCH_PROBLEMS = {
    "rosenbrock": (
        [np.array([-1.2, 1.0, -0.5, 0.8])],
        lambda ls: ((1 - ls[0][:-1]) ** 2).sum() + (100 * (ls[0][1:] - ls[0][:-1] ** 2) ** 2).sum(),
    ),
    "least_squares": (
        [_LSQ.normal(size=5), _LSQ.normal(size=(2, 2))],
        lambda ls: (
            0.5 * (((_const(_LSQ_A, ls[0]) @ ls[0]) - _const(_LSQ_B, ls[0])) ** 2).sum()
            + 0.1 * ((ls[1] - 0.5) ** 2).sum()
        ),
    ),
    "porting": (LEAVES, None),
}


def _const(x, like):
    """``x`` as a constant of ``like``'s framework."""
    return torch.tensor(x) if isinstance(like, torch.Tensor) else jnp.asarray(x)


def _line_search_problem(name):
    leaves0, fn = LINE_SEARCH_PROBLEMS[name]
    if fn is None:  # the porting problem: quadratic + Rosenbrock + MLP
        const = jax.tree.map(jnp.asarray, CONST)
        return leaves0, lambda ls: loss(TREEDEF.unflatten(ls), const, jnp.tanh), _porting_loss_torch
    return leaves0, fn, fn


def gradtx_line_search_trajectory(opt, value_fn, leaves0, steps):
    """Run ``opt`` with ``value=`` and ``value_fn=`` from ``leaves0`` in float64 under one
    jit; the leaves stacked over steps and ``func_evals`` after each step."""

    def body(carry, _):
        params, state = carry
        value, grad = jax.value_and_grad(value_fn)(params)
        updates, state = opt.update(grad, state, params, value=value, value_fn=value_fn)
        params = gradtx.apply_updates(params, updates)
        return (params, state), (params, state.states[0].func_evals)

    def run(params):
        return jax.lax.scan(body, (params, opt.init(params)), None, length=steps)[1]

    params = [jnp.asarray(x, jnp.float64) for x in leaves0]
    trajectory, evals = compile_quickly(run, params)(params)
    return [np.asarray(leaf) for leaf in trajectory], [int(n) for n in evals]


# (keywords given to both, problems): lr=1 takes the first trial or zooms in,
# lr=0.02 grows the step by cubic extrapolation, max_eval=3 runs out of
# evaluations, and PyTorch's default max_eval for max_iter=1 (1) leaves one
# trial, kept only where it lowers the loss.
STRONG_WOLFE_CASES = [
    (dict(max_eval=25), ["rosenbrock", "least_squares", "porting"]),
    (dict(lr=0.02, max_eval=25), ["rosenbrock", "porting"]),
    (dict(max_eval=3, history_size=4), ["rosenbrock", "least_squares"]),
    (dict(lr=5.0, max_eval=25, tolerance_change=1e-12), ["rosenbrock"]),
    (dict(), ["rosenbrock", "least_squares"]),
]


@pytest.mark.parametrize(
    "kwargs, problem",
    [(kw, p) for kw, problems in STRONG_WOLFE_CASES for p in problems],
    ids=[
        f"{p}-" + (",".join(f"{k}={v}" for k, v in kw.items()) or "defaults")
        for kw, problems in STRONG_WOLFE_CASES
        for p in problems
    ],
)
def test_torch_lbfgs_strong_wolfe_matches_torch_lbfgs_max_iter_1(kwargs, problem):
    # One gradtx update is one step(closure) of torch.optim.LBFGS with
    # max_iter=1: every iterate, and the loss evaluations PyTorch counts.
    steps = 30
    leaves0, loss_jax, loss_torch = _line_search_problem(problem)
    kwargs = {**kwargs, "max_iter": 1, "line_search_fn": "strong_wolfe"}
    theirs, their_evals = torch_closure_trajectory(
        lambda ps: torch.optim.LBFGS(ps, **kwargs), loss_torch, leaves0, steps
    )
    ours, our_evals = gradtx_line_search_trajectory(pt.lbfgs(**kwargs), loss_jax, leaves0, steps)
    assert all(np.all(np.isfinite(b)) for b in theirs), "the reference diverged"
    assert relative_error(ours, theirs) < 1e-8
    assert our_evals == their_evals
    if "max_eval" in kwargs:
        assert max(float(np.abs(b[-1] - x).max()) for b, x in zip(theirs, leaves0)) > 1e-2
    if "max_eval" in kwargs and problem != "least_squares":  # there unit steps are accepted
        assert max(np.diff([0] + their_evals)) > 2  # some search took more than one trial


def test_torch_lbfgs_strong_wolfe_without_value_fn_raises():
    opt = pt.lbfgs(line_search_fn="strong_wolfe")
    x = jnp.ones(2)
    with pytest.raises(
        ValueError,
        match=r"torch.lbfgs: line_search_fn='strong_wolfe' needs params, value= .* value_fn= "
        r".* call update\(grads, state, params, value=loss, value_fn=loss_fn\)",
    ):
        opt.update(x, opt.init(x), x, value=jnp.asarray(1.0))


def test_torch_lbfgs_strong_wolfe_with_keywords_value_fn_does_not_take_raises():
    opt = pt.lbfgs(line_search_fn="strong_wolfe")
    x = jnp.ones(2)
    with pytest.raises(
        TypeError, match=r"torch.lbfgs: value_fn takes none of the keywords \['batch'\]"
    ):
        opt.update(x, opt.init(x), x, value=jnp.asarray(2.0), value_fn=jnp.sum, batch=jnp.ones(3))


def test_torch_lbfgs_with_an_unknown_line_search_or_max_eval_raises():
    with pytest.raises(
        ValueError, match="torch.lbfgs: line_search_fn must be None or 'strong_wolfe', got 'armijo'"
    ):
        pt.lbfgs(line_search_fn="armijo")
    with pytest.raises(ValueError, match="torch.lbfgs: max_eval must be None or an integer >= 1"):
        pt.lbfgs(line_search_fn="strong_wolfe", max_eval=0)
