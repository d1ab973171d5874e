"""Closed-form float64 NumPy references of one optimizer family.

References for the sign methods: Lion, signSGD, Signum and Rprop.
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


def _z(p):
    return np.zeros_like(np.asarray(p, np.float64))


def lion(lr, b1=0.9, b2=0.99, weight_decay=1e-3):
    """Chen et al. 2023, Algorithm 2 (decoupled decay)."""

    def init(p):
        return {"t": 0, "m": _z(p)}

    def update(g, s, p):
        t = s["t"]
        step = np.sign(b1 * s["m"] + (1 - b1) * g) + _at(weight_decay, t) * p
        return -_at(lr, t) * step, {"t": t + 1, "m": b2 * s["m"] + (1 - b2) * g}

    return init, update


def sign_sgd(lr):
    return (lambda p: {"t": 0}, lambda g, s, p: (-_at(lr, s["t"]) * np.sign(g), {"t": s["t"] + 1}))


def signum(lr, beta=0.9):
    """Bernstein et al. 2018, Algorithm 3: sign of an undebiased average."""

    def init(p):
        return {"t": 0, "m": _z(p)}

    def update(g, s, p):
        m = beta * s["m"] + (1 - beta) * g
        return -_at(lr, s["t"]) * np.sign(m), {"t": s["t"] + 1, "m": m}

    return init, update


def rprop(lr, eta_minus=0.5, eta_plus=1.2, min_step=1e-6, max_step=50.0):
    """Riedmiller & Braun 1993 (Rprop without backtracking), returned one step late as optax does."""

    def init(p):
        return {"size": _z(p) + lr, "q": _z(p)}

    def update(g, s, p):
        agree = g * s["q"]
        size = np.where(
            agree == 0,
            s["size"],
            np.clip(s["size"] * np.where(agree > 0, eta_plus, eta_minus), min_step, max_step),
        )
        q = np.where(agree < 0, 0.0, size * np.sign(g))
        out = np.where(agree < 0, 0.0, s["q"])
        return -out, {"size": size, "q": q}

    return init, update
