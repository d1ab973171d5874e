"""Closed-form float64 NumPy references of one optimizer family.

References for SGD's relatives: optimistic gradient descent, noisy SGD and MADGRAD.
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


def optimistic_gradient_descent(lr, alpha=1.0, beta=1.0):
    """Mokhtari et al. 2020, eq. (OGDA): step (alpha + beta) g_t - beta g_{t-1}, g_0 = g_1."""

    def init(p):
        return {"t": 0, "prev": None}

    def update(g, s, p):
        prev = g if s["prev"] is None else s["prev"]
        return -_at(lr, s["t"]) * ((alpha + beta) * g - beta * prev), {"t": s["t"] + 1, "prev": g}

    return init, update


def noisy_sgd(lr, eta, gamma, noise):
    """Neelakantan et al. 2015: g + N(0, eta / t^gamma); ``noise(t)`` gives step t's standard
    normal draws (a list of leaves), on the list of leaves."""

    def init(params):
        return {"t": 0}

    def update(grads, s, params):
        t = s["t"] + 1
        std = np.sqrt(eta / t**gamma)
        return ([-_at(lr, t - 1) * (g + std * z) for g, z in zip(grads, noise(t))], {"t": t})

    return init, update


def madgrad(lr, momentum=0.9, weight_decay=0.0, eps=1e-6):
    """Defazio & Jelassi 2022, Algorithm 1 (lambda_k = (lr + eps) sqrt(k + 1))."""

    def init(p):
        return {"k": 0, "s": np.zeros_like(p), "nu": np.zeros_like(p), "x0": np.array(p)}

    def update(g, st, x):
        k = st["k"]
        g = g + weight_decay * x
        lam = (_at(lr, k) + eps) * np.sqrt(k + 1)
        s = st["s"] + lam * g
        nu = st["nu"] + lam * g**2
        z = st["x0"] - s / (np.cbrt(nu) + eps)
        x_new = (1 - momentum) * z + momentum * x
        return x_new - x, {"k": k + 1, "s": s, "nu": nu, "x0": st["x0"]}

    return ref.tree((init, update))
