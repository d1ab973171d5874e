"""Closed-form float64 NumPy references of one optimizer family.

References for the layer-wise methods: LAMB, LARS, Fromage and NovoGrad.
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


def _hat(x, b, t):
    return x / (1 - b**t)


def _norm(x):
    return float(np.sqrt(np.sum(np.square(x))))


def _trust(u, p, coefficient=1.0, eps=0.0, min_norm=0.0):
    pn, un = max(_norm(p), min_norm), max(_norm(u), min_norm)
    return u if pn == 0 or un == 0 else coefficient * pn / (un + eps) * u


def lamb(lr, b1=0.9, b2=0.999, eps=1e-6, eps_root=0.0, weight_decay=0.0):
    """You et al. 2020, Algorithm 2 (phi = identity), Adam's step with decoupled decay."""

    def init(p):
        return {"t": 0, "m": _z(p), "v": _z(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g * g
        r = (
            _hat(m, b1, t) / (np.sqrt(_hat(v, b2, t) + eps_root) + eps)
            + _at(weight_decay, t - 1) * p
        )
        return -_at(lr, t - 1) * _trust(r, p), {"t": t, "m": m, "v": v}

    return init, update


def lars(
    lr,
    weight_decay=0.0,
    trust_coefficient=0.001,
    eps=0.0,
    momentum=0.9,
    nesterov=False,
    decay=True,
    trusted=True,
):
    """You et al. 2017, Algorithm 1 with optax's order: lr applied before the momentum."""

    def init(p):
        return {"t": 0, "m": _z(p)}

    def update(g, s, p):
        t = s["t"]
        r = g + (_at(weight_decay, t) * p if decay else 0)
        if trusted:
            r = _trust(r, p, trust_coefficient, eps)
        step = _at(lr, t) * r
        m = momentum * s["m"] + step
        out = momentum * m + step if nesterov else m
        return -out, {"t": t + 1, "m": m}

    return init, update


def fromage(lr, min_norm=1e-6):
    """Bernstein et al. 2020, Algorithm 1: p <- (p - lr ||p||/||g|| g) / sqrt(1 + lr^2)."""

    def init(p):
        return {"t": 0}

    def update(g, s, p):
        a = _at(lr, s["t"])
        new = (p - a * _trust(g, p, min_norm=min_norm)) / np.sqrt(1 + a * a)
        return new - p, {"t": s["t"] + 1}

    return init, update


def novograd(lr, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0, weight_decay=0.0):
    """Ginsburg et al. 2019, Algorithm 1 in optax's form (m_t a sum, v_1 = ||g_1||^2)."""

    def init(p):
        return {"t": 0, "m": _z(p), "v": 0.0}

    def update(g, s, p):
        t = s["t"] + 1
        sq = float(np.sum(g * g))
        v = sq if t == 1 else b2 * s["v"] + (1 - b2) * sq
        step = g / (np.sqrt(v + eps_root) + eps) + weight_decay * p
        m = step if t == 1 else b1 * s["m"] + step
        return -_at(lr, t - 1) * m, {"t": t, "m": m, "v": v}

    return init, update
