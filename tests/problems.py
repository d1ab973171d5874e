"""Test problems and trajectory helpers shared by the reference tests.

``PROBLEMS`` are float64 NumPy trees with a loss and its NumPy gradient: a
quadratic over leaves of several shapes (scalar, vector, matrix, 3-d),
Rosenbrock, and a small MLP.  ``run_jax`` runs a transform on one of them
for some steps (jitted) and returns the trajectory of parameter leaves
(``with_value`` passes the loss as ``value=``); ``run_reference`` does the
same for a NumPy reference; ``assert_trajectories_close`` compares two
trajectories step by step.  ``transform_outputs`` and
``assert_transform_matches`` run a transform on its own over a sequence of
random gradients (``random_sequence``) and compare it with optax's;
``run_rows`` feeds it the rows of an array such as ``GRAD_ROWS`` without params.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import reference as ref

STEPS = 120
RTOL, ATOL = 1e-10, 1e-12


def relative_error(actual, expected, rtol=RTOL, atol=ATOL):
    """max |a - b| / (atol / rtol + |b|): at most rtol exactly when assert_allclose passes."""
    worst = 0.0
    for a, b in zip(actual, expected):
        a, b = np.asarray(a), np.asarray(b)
        worst = max(worst, float(np.max(np.abs(a - b) / (atol / rtol + np.abs(b)), initial=0.0)))
    return worst


def assert_trajectories_close(actual, expected, what, rtol=RTOL, atol=ATOL):
    assert len(actual) == len(expected)
    err = max(relative_error(a, b, rtol, atol) for a, b in zip(actual, expected))
    print(f"\n{what}: worst relative error {err:.2e}")
    for step, (a_leaves, b_leaves) in enumerate(zip(actual, expected)):
        for a, b in zip(a_leaves, b_leaves):
            np.testing.assert_allclose(
                a, b, rtol=rtol, atol=atol, err_msg=f"{what}: step {step + 1}"
            )


# ----------------------------------------------------------------------------
# Problems.  Parameters are NumPy float64 trees; ``grad_np`` maps a list of
# leaves (in jax.tree.leaves order) to the list of gradient leaves.


class Problem:
    def __init__(self, name, params, loss, grad_np, lr_scale):
        self.name, self.params, self.loss, self.grad_np = name, params, loss, grad_np
        self.lr_scale = lr_scale
        self.treedef = jax.tree.structure(params)


def _nested_quadratic():
    rng = np.random.default_rng(0)

    def like(f):
        return {
            "scalar": np.asarray(f(())),
            "vector": f((5,)),
            "nested": {"matrix": f((3, 4)), "cube": f((2, 3, 2))},
        }

    params = like(lambda s: rng.normal(size=s))
    centre = like(lambda s: rng.normal(size=s))
    curvature = like(lambda s: rng.uniform(0.5, 2.0, size=s))
    c_leaves, k_leaves = jax.tree.leaves(centre), jax.tree.leaves(curvature)

    def loss(p):
        return sum(
            0.5 * jnp.sum(k * (x - c) ** 2)
            for x, c, k in zip(jax.tree.leaves(p), c_leaves, k_leaves)
        )

    def grad_np(leaves):
        return [k * (x - c) for x, c, k in zip(leaves, c_leaves, k_leaves)]

    return Problem("nested_quadratic", params, loss, grad_np, lr_scale=1.0)


def _rosenbrock():
    # sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2.  Its curvature near the
    # start is about 2000, so every learning rate is scaled by 1/20 here.
    params = {"x": np.array([-1.2, 1.0, -0.5, 0.8])}

    def loss(p):
        x = p["x"]
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    def grad_np(leaves):
        (x,) = leaves
        g = np.zeros_like(x)
        r = x[1:] - x[:-1] ** 2
        g[:-1] += -400.0 * x[:-1] * r - 2.0 * (1.0 - x[:-1])
        g[1:] += 200.0 * r
        return [g]

    return Problem("rosenbrock", params, loss, grad_np, lr_scale=0.05)


def _mlp():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(20, 6)))  # float64: built under x64
    y = jnp.asarray(rng.normal(size=(20, 2)))
    params = {
        "hidden": {"w": rng.normal(size=(6, 8)) / np.sqrt(6), "b": np.zeros(8)},
        "out": {"w": rng.normal(size=(8, 2)) / np.sqrt(8), "b": np.zeros(2)},
    }

    def loss(p):
        h = jnp.tanh(x @ p["hidden"]["w"] + p["hidden"]["b"])
        return jnp.mean((h @ p["out"]["w"] + p["out"]["b"] - y) ** 2)

    # The problem is not under test, the update rule is: the reference may
    # take its gradients from jax.grad.
    grad_fn = jax.jit(jax.grad(loss))
    treedef = jax.tree.structure(params)

    def grad_np(leaves):
        return [
            np.asarray(g) for g in jax.tree.leaves(grad_fn(jax.tree.unflatten(treedef, leaves)))
        ]

    return Problem("mlp", params, loss, grad_np, lr_scale=1.0)


with jax.enable_x64(True):
    PROBLEMS = {p.name: p for p in (_nested_quadratic(), _rosenbrock(), _mlp())}


def run_jax(tx, problem, apply, steps=STEPS, dtype=np.float64, with_value=False):
    """``steps`` jitted steps of ``tx`` on ``problem``; ``with_value`` passes the loss as ``value=``."""
    grad_fn = jax.grad(problem.loss)
    value_and_grad = jax.value_and_grad(problem.loss)

    @jax.jit
    def step(params, state):
        if with_value:
            value, grad = value_and_grad(params)
            updates, state = tx.update(grad, state, params, value=value)
        else:
            updates, state = tx.update(grad_fn(params), state, params)
        return apply(params, updates), state

    params = jax.tree.map(lambda p: jnp.asarray(p, dtype), problem.params)
    state = tx.init(params)
    trajectory = []
    for _ in range(steps):
        params, state = step(params, state)
        trajectory.append([np.asarray(p) for p in jax.tree.leaves(params)])
    return trajectory


def run_reference(reference, problem, steps=STEPS, whole_tree=False, with_value=False):
    """``steps`` steps of a NumPy reference on ``problem``.

    ``reference`` is a per-leaf pair (lifted by ``ref.tree``) or, with
    ``whole_tree``, a pair on the list of leaves; ``with_value`` passes the
    loss (float64) to its update as ``value=``.
    """
    init, update = reference if whole_tree else ref.tree(reference)
    params = [np.asarray(p, np.float64) for p in jax.tree.leaves(problem.params)]
    state = init(params)
    trajectory = []
    for _ in range(steps):
        extra = {}
        if with_value:
            tree = jax.tree.unflatten(problem.treedef, [jnp.asarray(p) for p in params])
            extra["value"] = float(problem.loss(tree))
        updates, state = update(problem.grad_np(params), state, params, **extra)
        params = [p + u for p, u in zip(params, updates)]
        trajectory.append(params)
    return trajectory


def random_sequence(tree, steps, seed):
    """steps random trees shaped like ``tree``, the scale changing from step to step."""
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.normal(size=steps))
    return [jax.tree.map(lambda x: s * rng.normal(size=np.shape(x)), tree) for s in scales]


def transform_outputs(tx, grads, params, extra=None, standard_promotion=False):
    """The updates of ``tx`` over a sequence of (gradient, params[, extra]) trees, in one scan.

    ``grads`` and ``params`` are lists of trees (from ``random_sequence``);
    ``extra`` a list of dicts of keyword arguments per step.  Returns a list
    (one per step) of lists of update leaves.  ``standard_promotion`` runs
    under standard dtype promotion (optax's own transforms need it).
    """
    extra = extra if extra is not None else [{} for _ in grads]

    def body(state, xs):
        g, p, e = xs
        u, state = tx.update(g, state, p, **e)
        return state, u

    stacked = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *zip(grads, params, extra))
    with jax.numpy_dtype_promotion("standard" if standard_promotion else "strict"):
        state0 = tx.init(jax.tree.map(jnp.asarray, params[0]))
        _, outs = jax.jit(lambda s, xs: jax.lax.scan(body, s, xs))(state0, stacked)
    outs = jax.tree.leaves(outs)
    return [[np.asarray(o[t]) for o in outs] for t in range(len(grads))]


def assert_transform_matches(
    ours, theirs, tree, what, steps=STEPS, extra=None, rtol=RTOL, atol=ATOL, seed=2
):
    """gradtx's transform ``ours`` computes optax's ``theirs`` on random gradients and params."""
    grads = random_sequence(tree, steps, seed)
    params = random_sequence(tree, steps, seed + 1)
    actual = transform_outputs(ours, grads, params, extra)
    expected = transform_outputs(theirs, grads, params, extra, standard_promotion=True)
    assert_trajectories_close(actual, expected, what, rtol=rtol, atol=atol)
    return actual


def assert_transform_matches_optax(tx, optax_tx, what, steps=STEPS):
    """Over random gradients and params of the nested tree, in float64, to 1e-10 (seeds 7, 8)."""
    with jax.enable_x64(True):
        tree0 = PROBLEMS["nested_quadratic"].params
        grads = random_sequence(tree0, steps, seed=7)
        params = random_sequence(tree0, steps, seed=8)
        actual = _scan_outputs(tx, grads, params)
        with jax.numpy_dtype_promotion("standard"):
            expected = _scan_outputs(optax_tx, grads, params)
    assert_trajectories_close(actual, expected, what)


def _scan_outputs(tx, grads, params):
    """The transform's outputs over the sequences, as lists of leaves (jitted scan)."""

    def body(state, gp):
        u, state = tx.update(gp[0], state, gp[1])
        return state, u

    stacked = jax.tree.map(lambda *xs: np.stack(xs), *zip(grads, params))
    _, outs = jax.jit(lambda s, xs: jax.lax.scan(body, s, xs))(tx.init(params[0]), stacked)
    outs = jax.tree.leaves(outs)
    return [[np.asarray(o[t]) for o in outs] for t in range(len(grads))]


def moved(trajectory, problem, at_least=1e-3):
    """Whether the run went somewhere (the comparison is not between unmoved points)."""
    start = jax.tree.leaves(problem.params)
    return max(np.max(np.abs(a - b)) for a, b in zip(trajectory[-1], start)) > at_least


def run_torch(make_optimizer, problem, steps=STEPS, dtype=None):
    """The trajectory of a torch optimizer built by ``make_optimizer(list of Parameters)``.

    Parameters are torch tensors (``dtype``, float64 by default), gradients the
    problem's NumPy gradient, so only the update rule is torch's.
    """
    import torch

    dtype = torch.float64 if dtype is None else dtype
    leaves = jax.tree.leaves(problem.params)
    params = [torch.nn.Parameter(torch.tensor(np.asarray(p), dtype=dtype)) for p in leaves]
    optimizer = make_optimizer(params)
    trajectory = []
    for _ in range(steps):
        grads = problem.grad_np([p.detach().numpy().astype(np.float64) for p in params])
        for p, g in zip(params, grads):
            p.grad = torch.tensor(np.asarray(g), dtype=dtype).reshape(p.shape)
        optimizer.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


# ----------------------------------------------------------------------------
# A transform alone on the rows of one array, without params.

GRAD_ROWS = np.random.default_rng(7).normal(size=(12, 5))


def run_rows(tx, grads):
    """Feed the rows of ``grads`` to ``tx`` one step at a time, in float64."""
    state = tx.init(jnp.zeros(grads.shape[1], jnp.float64))
    outs = []
    for g in grads:
        u, state = tx.update(jnp.asarray(g), state)
        outs.append(np.asarray(u))
    return np.stack(outs)
