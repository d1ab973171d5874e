"""Closed-form float64 NumPy references of one optimizer family.

References for the Adam family beyond ``reference.py``'s Adam, AdamW and AMSGrad: Adamax and
optimistic Adam.
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


def adamax(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
    """Kingma & Ba 2015, Algorithm 2; weight_decay decoupled (AdaMaxW)."""

    def init(p):
        return {"t": 0, "m": _z(p), "u": _z(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        inf = np.maximum(b2 * s["u"], np.abs(g) + eps)
        step = _hat(m, b1, t) / inf + _at(weight_decay, t - 1) * p
        return -_at(lr, t - 1) * step, {"t": t, "m": m, "u": inf}

    return init, update


def optimistic_adam(lr, optimism=None, b1=0.9, b2=0.999, eps=1e-8, nesterov=True):
    """Daskalakis et al. 2018, Algorithm 1 (Optimistic Adam) in optax's form.

    u_t = -((lr + o) a_t - o a_{t-1}): v2's step with lr 1, alpha = lr and beta = o.
    """
    o = lr if optimism is None else optimism
    return optimistic_adam_v2(1.0, alpha=lr, beta=o, b1=b1, b2=b2, eps=eps, nesterov=nesterov)


def _adam_direction(g, s, b1, t, nesterov=False):
    m = b1 * s["m"] + (1 - b1) * g
    if nesterov:
        return m, b1 * _hat(m, b1, t + 1) + (1 - b1) * _hat(g, b1, t)
    return m, _hat(m, b1, t)


def optimistic_adam_v2(lr, alpha=1.0, beta=1.0, b1=0.9, b2=0.999, eps=1e-8, nesterov=True):
    """optax's optimistic_adam_v2: lr_t * ((alpha + beta) a_t - beta a_{t-1}), a_t Adam's step."""

    def init(p):
        return {"t": 0, "m": _z(p), "v": _z(p), "prev": None}

    def update(g, s, p):
        t = s["t"] + 1
        m, m_hat = _adam_direction(g, s, b1, t, nesterov)
        v = b2 * s["v"] + (1 - b2) * g * g
        a = m_hat / (np.sqrt(_hat(v, b2, t)) + eps)
        prev = a if s["prev"] is None else s["prev"]
        step = (alpha + beta) * a - beta * prev
        return -_at(lr, s["t"]) * step, {"t": t, "m": m, "v": v, "prev": a}

    return init, update
