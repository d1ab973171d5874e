"""Closed-form float64 NumPy references of SPlus and Conda.

Written from the papers' equations (Frans et al. 2025, arXiv:2506.07254;
Wang et al. 2025, arXiv:2509.24218), never by calling gradtx, in the form of
``tests/reference.py``: ``init(p) -> state``, ``update(g, state, p) -> (u, state)``
on one array, lifted to leaves by ``reference.tree``.
"""

from __future__ import annotations

import numpy as np


def splus(
    lr,
    b1=0.9,
    b2=0.999,
    weight_decay=0.0,
    inverse_steps=100,
    nonstandard_constant=1e-3,
    max_dim=10000,
    eps=1e-30,
):
    """SPlus on one leaf: m = b1 m + (1 - b1) g; for a matrix u = Q_L sign(Q_L^T m Q_R) Q_R^T
    with the previous bases (identity at first, and on an axis >= max_dim), then
    L = b2 L + (1 - b2) g g^T, R = b2 R + (1 - b2) g^T g, and at t = 1 or t % inverse_steps == 0
    Q_L, Q_R = eigenvectors of L + eps I, R + eps I; other leaves u = sign(m).
    Step -lr s (u + wd p), s = 2 / (rows + cols) for a matrix whose sides are <= max_dim,
    else nonstandard_constant."""

    def init(p):
        p = np.asarray(p)
        state = {"t": 0, "m": np.zeros_like(p)}
        if p.ndim == 2:
            state["S"] = [np.zeros((d, d)) for d in p.shape]
            state["Q"] = [np.eye(d) for d in p.shape]
        return state

    def update(g, st, p):
        g, p = np.asarray(g), np.asarray(p)
        t = st["t"] + 1
        m = b1 * st["m"] + (1 - b1) * g
        new = {"t": t, "m": m}
        if p.ndim == 2:
            ql, qr = st["Q"]
            u = ql @ np.sign(ql.T @ m @ qr) @ qr.T
            grams = [g @ g.T, g.T @ g]
            S = [b2 * s + (1 - b2) * h for s, h in zip(st["S"], grams)]
            Q = list(st["Q"])
            if t == 1 or t % inverse_steps == 0:
                Q = [
                    np.linalg.eigh(s + eps * np.eye(len(s)))[1] if d < max_dim else q
                    for s, q, d in zip(S, Q, p.shape)
                ]
            new.update(S=S, Q=Q)
            s = 2.0 / sum(p.shape) if max(p.shape) <= max_dim else nonstandard_constant
        else:
            u = np.sign(m)
            s = nonstandard_constant
        return -lr * s * (u + weight_decay * p), new

    return init, update


def conda(lr, b1=0.9, b2=0.999, weight_decay=0.0, update_proj_gap=2000, scale=1.0, eps=1e-8):
    """Conda on one leaf: m = b1 m + (1 - b1) g; for an r x c matrix, at t = 1 or
    t % update_proj_gap == 0, (U, S, V^T) = svd(m) and P = V (r >= c) or U (r < c);
    proj(X) = X P (r >= c) or P^T X, back(Y) = Y P^T or P Y;
    v = b2 v + (1 - b2) proj(g)^2, d = scale back(proj(m) / (sqrt(v) + eps));
    other leaves: v = b2 v + (1 - b2) g^2, d = m / (sqrt(v) + eps).
    Step -lr (sqrt(1 - b2^t) / (1 - b1^t) d + wd p)."""

    def init(p):
        p = np.asarray(p)
        return {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p), "P": None}

    def update(g, st, p):
        g, p = np.asarray(g), np.asarray(p)
        t = st["t"] + 1
        m = b1 * st["m"] + (1 - b1) * g
        P = st["P"]
        if p.ndim == 2:
            tall = p.shape[0] >= p.shape[1]
            if t == 1 or t % update_proj_gap == 0:
                U, _, Vt = np.linalg.svd(m, full_matrices=False)
                P = Vt.T if tall else U

            def proj(x):
                return x @ P if tall else P.T @ x

            def back(y):
                return y @ P.T if tall else P @ y

            v = b2 * st["v"] + (1 - b2) * proj(g) ** 2
            d = scale * back(proj(m) / (np.sqrt(v) + eps))
        else:
            v = b2 * st["v"] + (1 - b2) * g**2
            d = m / (np.sqrt(v) + eps)
        c = np.sqrt(1 - b2**t) / (1 - b1**t)
        return -lr * (c * d + weight_decay * p), {"t": t, "m": m, "v": v, "P": P}

    return init, update
