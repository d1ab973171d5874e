"""Shared runs for the add-on tests: gradtx against NumPy and against pytorch-optimizer.

The problems and the JAX/NumPy runners are test_references.py's; this adds a
runner for torch optimizers (parameters as torch tensors, gradients from
the problem's NumPy gradient, so only the update rule is torch's).
"""

from __future__ import annotations

import jax
import numpy as np
import reference_addons as ref_addons  # noqa: F401
import torch
from problems import (  # noqa: F401
    PROBLEMS,
    STEPS,
    assert_trajectories_close,
    random_sequence,
    relative_error,
    run_jax,
    run_reference,
)


def run_torch(make_optimizer, problem, steps=STEPS, dtype=torch.float64):
    """The trajectory of a torch optimizer built by ``make_optimizer(list of Parameters)``."""
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


def moved(trajectory, problem, at_least=1e-3):
    """Whether the run went somewhere (the comparison is not between unmoved points)."""
    start = jax.tree.leaves(problem.params)
    return max(np.max(np.abs(a - b)) for a, b in zip(trajectory[-1], start)) > at_least
