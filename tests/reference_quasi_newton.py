"""Closed-form float64 NumPy references of one optimizer family.

References for L-BFGS without a line search.
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


def lbfgs(lr, memory_size=10, scale_init_precond=True):
    """Nocedal & Wright 2006, Algorithm 7.4 (two-loop recursion) with a fixed step size, on the
    list of leaves (the inner products run over the whole tree); gamma_0 = min(1, 1 / ||g_0||)."""

    def flat(leaves):
        return np.concatenate([np.ravel(x) for x in leaves])

    def init(params):
        return {"k": 0, "pairs": [], "x": None, "g": None}

    def update(grads, s, params):
        x, g = flat(params), flat(grads)
        pairs = list(s["pairs"])
        if s["k"] > 0:
            pairs = (pairs + [(x - s["x"], g - s["g"])])[-memory_size:]
        q, alphas = g.copy(), []
        for si, yi in reversed(pairs):
            rho = 0.0 if yi @ si == 0 else 1.0 / (yi @ si)
            alphas.append(rho * (si @ q))
            q = q - alphas[-1] * yi
        if not scale_init_precond:
            gamma = 1.0
        elif pairs:
            si, yi = pairs[-1]
            gamma = (yi @ si) / (yi @ yi) if yi @ yi > 0 else 1.0
        else:
            gamma = min(1.0, 1.0 / np.sqrt(g @ g))
        r = gamma * q
        for (si, yi), alpha in zip(pairs, reversed(alphas)):
            rho = 0.0 if yi @ si == 0 else 1.0 / (yi @ si)
            r = r + (alpha - rho * (yi @ r)) * si
        step = -_at(lr, s["k"]) * r
        out, start = [], 0
        for p in params:
            n = np.size(p)
            out.append(step[start : start + n].reshape(np.shape(p)))
            start += n
        return out, {"k": s["k"] + 1, "pairs": pairs, "x": x, "g": g}

    return init, update
