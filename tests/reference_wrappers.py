"""Closed-form float64 NumPy references of one optimizer family.

References for optimizer wrappers: SAM, reduce-on-plateau and cautious updates (and cautious
weight decay).
Written from the papers' equations (never by calling gradtx or optax), in the
form of ``tests/reference.py``: a pair ``init(p) -> state``,
``update(g, state, p) -> (u, state)`` on one array, lifted to leaves by
``reference.tree``, or on the list of leaves for the rules that couple
leaves (global norms, noise keyed over the tree, wrappers of another
reference).
"""

from __future__ import annotations

import numpy as np
from reference import _at


def sam(outer, lr_adv, sync_period=2):
    """Foret et al. 2021 with k = sync_period - 1 normalised ascent steps of size lr_adv.

    Transparent form: returned params are the ascent points, then the outer
    step taken from x with the gradient at the last ascent point.
    """
    outer_init, outer_update = outer

    def init(ps):
        return {"i": 0, "x": [np.array(p) for p in ps], "outer": outer_init(ps)}

    def update(gs, st, ps):
        i, x = st["i"], st["x"]
        if i == 0:
            x = [np.array(p) for p in ps]
        if i < sync_period - 1:
            norm = np.sqrt(sum(np.sum(g**2) for g in gs))
            return [lr_adv * g / norm for g in gs], {"i": i + 1, "x": x, "outer": st["outer"]}
        steps, outer_state = outer_update(gs, st["outer"], x)
        return (
            [xi + u - p for xi, u, p in zip(x, steps, ps)],
            {"i": 0, "x": x, "outer": outer_state},
        )

    return init, update


def reduce_on_plateau(
    base,
    factor=0.1,
    patience=10,
    rtol=1e-4,
    atol=0.0,
    cooldown=0,
    accumulation_size=1,
    min_scale=0.0,
):
    """Keras/PyTorch's ReduceLROnPlateau on averages of ``accumulation_size`` values,
    applied as a factor on ``base``'s steps; update takes ``value``."""
    base_init, base_update = base

    def init(ps):
        return {
            "scale": 1.0,
            "best": np.inf,
            "bad": 0,
            "cool": 0,
            "values": [],
            "base": base_init(ps),
        }

    def update(gs, st, ps, value):
        st = dict(st, values=st["values"] + [float(value)])
        if len(st["values"]) == accumulation_size:
            avg = float(np.mean(st["values"]))
            st["values"] = []
            if avg < (1 - rtol) * st["best"] - atol:
                st["best"], st["bad"] = avg, 0
            else:
                st["bad"] += 1
            if st["cool"] > 0:
                st["cool"] -= 1
                st["bad"] = 0
            elif st["bad"] == patience:
                st["scale"] = max(st["scale"] * factor, min_scale)
                st["bad"], st["cool"] = 0, cooldown
        steps, base_state = base_update(gs, st["base"], ps)
        st["base"] = base_state
        return [st["scale"] * u for u in steps], st

    return init, update


def cautious(inner):
    """phi = [s * (-g) > 0]; step s * phi * d / (sum(phi) + 1), s the inner step, d the leaf size."""
    inner_init, inner_update = inner

    def update(g, s, p):
        step, s = inner_update(g, s, p)
        keep = (step * -g > 0).astype(np.float64)
        return step * keep * (keep.size / (keep.sum() + 1)), s

    return inner_init, update


def cautious_weight_decay(weight_decay):
    """u + wd [u p >= 0] p (before the learning rate)."""

    def init(p):
        return {}

    def update(u, s, p):
        return u + weight_decay * (u * p >= 0) * p, s

    return init, update


def cautious_adamw_cwd(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
    """AdamW with cautious weight decay: -lr (u + wd [u p >= 0] p), u = m_hat / (sqrt(v_hat) + eps)."""

    def init(p):
        return {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g * g
        u = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        return -_at(lr, t - 1) * (u + weight_decay * (u * p >= 0) * p), {"t": t, "m": m, "v": v}

    return init, update
