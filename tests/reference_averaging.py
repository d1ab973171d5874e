"""Closed-form float64 NumPy references of one optimizer family.

References for schedule-free averaging (Defazio et al. 2024).
Written from the papers' equations (never by calling gradtx or optax), in the
form of ``tests/reference.py``: a pair ``init(p) -> state``,
``update(g, state, p) -> (u, state)`` on one array, lifted to leaves by
``reference.tree``, or on the list of leaves for the rules that couple
leaves (global norms, noise keyed over the tree, wrappers of another
reference).
"""

from __future__ import annotations

import numpy as np
import reference as ref
from reference import _at


def schedule_free(base, lr, b1=0.9, weight_lr_power=2.0):
    """Defazio et al. 2024, Algorithm 1, keeping x and z explicitly; params are y.

    ``base`` is a list-level reference for the steps of z (given y).
    Returns (init, update, eval) where eval(state) is x.
    """
    base_init, base_update = base

    def init(ps):
        return {
            "t": 1,
            "z": [np.array(p) for p in ps],
            "x": [np.array(p) for p in ps],
            "max_lr": 0.0,
            "wsum": 0.0,
            "base": base_init(ps),
        }

    def update(gs, st, ys):
        t = st["t"]
        max_lr = max(st["max_lr"], _at(lr, t))
        w = max_lr**weight_lr_power
        wsum = st["wsum"] + w
        c = w / wsum if wsum > 0 else 0.0
        steps, base_state = base_update(gs, st["base"], ys)
        z = [z + u for z, u in zip(st["z"], steps)]
        x = [(1 - c) * x + c * zn for x, zn in zip(st["x"], z)]
        y_new = [b1 * xi + (1 - b1) * zi for xi, zi in zip(x, z)]
        return (
            [yn - y for yn, y in zip(y_new, ys)],
            {"t": t + 1, "z": z, "x": x, "max_lr": max_lr, "wsum": wsum, "base": base_state},
        )

    return init, update


def adamw_without_momentum(lr, b2=0.999, eps=1e-8, weight_decay=0.0):
    """z's step in Schedule-Free AdamW: -lr (g / (sqrt(v_hat) + eps) + wd y), t counted from 0."""

    def init(p):
        return {"t": 0, "v": np.zeros_like(p)}

    def update(g, s, y):
        t = s["t"] + 1
        v = b2 * s["v"] + (1 - b2) * g**2
        step = g / (np.sqrt(v / (1 - b2**t)) + eps) + weight_decay * y
        return -_at(lr, t - 1) * step, {"t": t, "v": v}

    return ref.tree((init, update))
