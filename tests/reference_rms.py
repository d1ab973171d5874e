"""Closed-form float64 NumPy references of one optimizer family.

References for the factored and cover second moments beyond ``reference.py``'s RMSprop, Adagrad
and Adadelta: Adafactor and SM3.
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


def adafactor(
    lr,
    min_dim_size_to_factor=128,
    decay_rate=0.8,
    clipping_threshold=1.0,
    eps=1e-30,
    momentum=None,
    weight_decay_rate=None,
):
    """Shazeer & Stern 2018, Algorithms 4-5 with optax's clip, parameter scale, momentum, decay."""

    def factored(shape):
        if len(shape) < 2:
            return None
        order = np.argsort(shape)
        return None if shape[order[-2]] < min_dim_size_to_factor else (order[-2], order[-1])

    def init(p):
        p = np.asarray(p)
        dims = factored(p.shape)
        if dims is None:
            return {"t": 0, "v": _z(p), "m": _z(p)}
        d1, d0 = dims
        return {"t": 0, "row": np.mean(_z(p), axis=d0), "col": np.mean(_z(p), axis=d1), "m": _z(p)}

    def update(g, s, p):
        t = s["t"]
        beta = 1 - (t + 1.0) ** (-decay_rate)
        sq = g * g + eps
        dims = factored(np.shape(g))
        new = {"t": t + 1}
        if dims is None:
            v = beta * s["v"] + (1 - beta) * sq
            u = g / np.sqrt(v)
            new["v"] = v
        else:
            d1, d0 = dims
            row = beta * s["row"] + (1 - beta) * np.mean(sq, axis=d0)
            col = beta * s["col"] + (1 - beta) * np.mean(sq, axis=d1)
            r = row / np.mean(row, axis=d1 - 1 if d1 > d0 else d1, keepdims=True)
            # V_ij ~ R_i C_j / mean(R): divide by its root.
            u = g / np.sqrt(np.expand_dims(r, d0)) / np.sqrt(np.expand_dims(col, d1))
            new["row"], new["col"] = row, col
        if clipping_threshold is not None:
            rms = np.sqrt(np.mean(u * u))
            u = u * min(1.0, clipping_threshold / rms) if rms > 0 else u
        u = _at(lr, t) * u
        u = u * max(np.sqrt(np.mean(np.square(p))), 1e-3)
        m = s["m"]
        if momentum is not None:
            m = momentum * m + (1 - momentum) * u
            u = m
        new["m"] = m
        if weight_decay_rate is not None:
            u = u + weight_decay_rate * p
        return -u, new

    return init, update


def sm3(lr, momentum=0.9, eps=1e-8):
    """Anil et al. 2019, SM3-II with per-axis covers (b2 = 1) and optax's momentum."""

    def init(p):
        p = np.asarray(p)
        return {"acc": [np.zeros(n) for n in p.shape] or [np.zeros(())], "m": _z(p)}

    def update(g, s, p):
        g = np.asarray(g)
        if g.ndim == 0:
            a = g * g + s["acc"][0]
        else:
            covers = [
                c.reshape([-1 if j == i else 1 for j in range(g.ndim)])
                for i, c in enumerate(s["acc"])
            ]
            a = g * g + np.minimum.reduce(np.broadcast_arrays(*covers))
        scaled = np.where(a > 0, g / np.sqrt(a + eps), 0.0)
        m = momentum * s["m"] + (1 - momentum) * scaled
        if g.ndim == 0:
            acc = [a]
        else:
            acc = [np.max(a, axis=tuple(j for j in range(g.ndim) if j != i)) for i in range(g.ndim)]
        return -lr * m, {"acc": acc, "m": m}

    return init, update
