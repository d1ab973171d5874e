"""Closed-form float64 NumPy references of KL-Shampoo, KL-SOAP (Lin et al. 2025,
arXiv:2509.03378) and one-sided Shampoo, written in Kronecker form from the
equations (never by calling gradtx): vec(G) in C order, the factor of axis a
acting on the mode-a unfolding G_(a) = moveaxis(G, a, 0).reshape(d_a, -1),
the other axes' factors as one Kronecker product.  Per-leaf pairs
``init(p) -> state``, ``update(g, state, p) -> (u, state)`` as in
``tests/reference.py``.
"""

from __future__ import annotations

from functools import reduce

import numpy as np


def _unfold(g, a):
    return np.moveaxis(g, a, 0).reshape(g.shape[a], -1)


def _kron(mats):
    return reduce(np.kron, mats, np.ones((1, 1)))


def kl(
    lr,
    b1=0.9,
    b2=0.98,
    eps=1e-8,
    frequency=10,
    shampoo_beta=None,
    init_factor=0.1,
    clamp=4000,
    weight_decay=0.0,
    soap=False,
    max_dim=10000,
    precondition_1d=False,
):
    """KL-Shampoo (soap=False) or KL-SOAP (soap=True) on one leaf (a scalar as a vector of one).

    Full factors S_a, Q_a on the axes of length <= max_dim (vectors only with
    precondition_1d); Q_a = I on the others; eigenvalues D_a on every axis.
    t = 1: S_a = (1 - s) d_a / N G_(a) G_(a)^T, Q_a = eigh(S_a) largest first,
    D_a = init_factor; step -lr wd p.  t > 1, k = t - 1, Q = kron(Q_a), with the
    state before this step:
      m = b1 m + (1 - b1) G;
      KL-Shampoo: dir = Q diag(1 / (sqrt(kron(D_a)) + eps)) Q^T vec(m);
      KL-SOAP: v = b2 v + (1 - b2) (Q^T vec G)^2, dir = Q ((Q^T vec m) / (sqrt(v) + eps));
      M_a = d_a / N G_(a) kron_{b != a}(Q_b diag(1/D_b) Q_b^T) G_(a)^T,
      S_a = s S_a + (1 - s) M_a, D_a = max(s D_a + (1 - s) diag(Q_a^T M_a Q_a), 1/c_a^2),
      c_a = max(10, min(d_a, clamp));  if k % frequency == 0: Q_a = qr(S_a Q_a).Q;
    step -lr (dir + wd p)."""
    s = b2 if shampoo_beta is None else shampoo_beta

    def full_axes(shape):
        if (len(shape) == 1 and not precondition_1d) or np.ndim(np.zeros(shape)) == 0:
            return []
        return [a for a, d in enumerate(shape) if d <= max_dim]

    def init(p):
        shape = np.shape(p) or (1,)
        return {
            "t": 0,
            "m": np.zeros(shape),
            "v": np.zeros(int(np.prod(shape))),
            "S": {a: np.zeros((shape[a],) * 2) for a in full_axes(shape)},
            "Q": {a: np.eye(d) for a, d in enumerate(shape)},
            "D": {a: np.full(d, init_factor) for a, d in enumerate(shape)},
        }

    def update(g, st, p):
        p = np.asarray(p)
        g = np.asarray(g, np.float64).reshape(st["m"].shape)
        shape, n, t = g.shape, g.size, st["t"] + 1
        axes = range(g.ndim)
        if t == 1:
            S = {
                a: s * S + (1 - s) * shape[a] / n * _unfold(g, a) @ _unfold(g, a).T
                for a, S in st["S"].items()
            }
            Q = dict(st["Q"])
            for a in S:
                Q[a] = np.linalg.eigh(S[a])[1][:, ::-1]
            return -lr * weight_decay * p, {**st, "t": t, "S": S, "Q": Q}
        k, Q, D = t - 1, st["Q"], st["D"]
        big_q = _kron([Q[a] for a in axes])
        m = b1 * st["m"] + (1 - b1) * g
        v = st["v"]
        if soap:
            v = b2 * v + (1 - b2) * (big_q.T @ g.ravel()) ** 2
            direction = big_q @ ((big_q.T @ m.ravel()) / (np.sqrt(v) + eps))
        else:
            d = _kron([D[a][None, :] for a in axes]).ravel()
            direction = big_q @ ((big_q.T @ m.ravel()) / (np.sqrt(d) + eps))
        inverse = {a: Q[a] @ np.diag(1 / D[a]) @ Q[a].T for a in axes}
        S, newD = {}, {}
        for a in axes:
            ga = _unfold(g, a)
            M = shape[a] / n * ga @ _kron([inverse[b] for b in axes if b != a]) @ ga.T
            if a in st["S"]:
                S[a] = s * st["S"][a] + (1 - s) * M
            floor = 0.0 if clamp is None else 1 / max(10, min(shape[a], clamp)) ** 2
            newD[a] = np.maximum(s * D[a] + (1 - s) * np.diag(Q[a].T @ M @ Q[a]), floor)
        if k % frequency == 0:
            Q = {**Q, **{a: np.linalg.qr(S[a] @ Q[a])[0] for a in S}}
        u = -lr * (direction.reshape(np.shape(p)) + weight_decay * p)
        return u, {"t": t, "m": m, "v": v, "S": S, "Q": Q, "D": newD}

    return init, update


def one_sided_shampoo(lr, b1=0.95, b2=0.95, eps=1e-12, frequency=1, weight_decay=0.0):
    """One-sided Shampoo on one leaf of >= 2 axes: a = its shortest axis (the first of equals),
    H = b2 H + (1 - b2) d_a / N G_(a) G_(a)^T, m = b1 m + (1 - b1) G, at t = 1, 1 + f, ...:
    R = V diag((w + eps)^(-1/2)) V^T with (w, V) = eigh(H / (1 - b2^t)); step
    -lr (R m_(a) / (1 - b1^t) folded back + wd p).  A vector or scalar: -lr (m / (1 - b1^t) + wd p)."""

    def init(p):
        shape = np.shape(p)
        a = int(np.argmin(shape)) if len(shape) >= 2 else None
        h = np.zeros((shape[a],) * 2) if a is not None else None
        return {"t": 0, "m": np.zeros(shape), "H": h, "R": h, "a": a}

    def update(g, st, p):
        g, p, t, a = np.asarray(g, np.float64), np.asarray(p), st["t"] + 1, st["a"]
        m = b1 * st["m"] + (1 - b1) * g
        m_hat = m / (1 - b1**t)
        if a is None:
            return -lr * (m_hat + weight_decay * p), {**st, "t": t, "m": m}
        H = b2 * st["H"] + (1 - b2) * g.shape[a] / g.size * _unfold(g, a) @ _unfold(g, a).T
        R = st["R"]
        if (t - 1) % frequency == 0:
            w, V = np.linalg.eigh(H / (1 - b2**t))
            R = V @ np.diag((w + eps) ** -0.5) @ V.T
        moved = np.moveaxis(m_hat, a, 0)
        direction = np.moveaxis((R @ moved.reshape(moved.shape[0], -1)).reshape(moved.shape), 0, a)
        u = -lr * (direction + weight_decay * p)
        return u, {**st, "t": t, "m": m, "H": H, "R": R}

    return init, update
