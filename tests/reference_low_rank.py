"""Closed-form float64 NumPy references of one optimizer family.

References for the low-rank orthonormalized updates: Dion (Ahn et al.,
arXiv:2504.05295, Algorithm 1) and Dion2 (Ahn, Amsel, Langford,
arXiv:2512.16928).  Written from the papers' equations (never by calling
gradtx), on one matrix X in PyTorch's (fan_out, fan_in) orientation, the
papers' layout; AdamW for the other leaves in PyTorch's form.
"""

from __future__ import annotations

import math

import numpy as np


def dion_step(x, g, m, q, *, lr, mu, weight_decay, epsilon=1e-8, power_iters=1):
    """One Dion step on an (m, n) matrix; returns (x, m, q).

    The buffer is read so that its first side is the longer one (transposed
    when m < n), Q being the right factor of that orientation:
    B = M + G; P = QR(B Q).Q, R = B^T P (power_iters times); M = B - (1 - mu) P R^T;
    Q = R / (||R||_col + epsilon); X = (1 - lr wd) X - lr sqrt(m / n) P Q^T.
    """
    rows, cols = x.shape
    b = m + g
    transposed = rows < cols
    bb = b.T if transposed else b
    q0 = q
    for _ in range(power_iters):
        p = np.linalg.qr(bb @ q)[0]
        q = bb.T @ p
    if not np.any(bb):
        p, q = np.zeros_like(p), q0
    bb = bb - (1 - mu) * p @ q.T
    q = q / (np.linalg.norm(q, axis=0, keepdims=True) + epsilon)
    u = p @ q.T
    if transposed:
        u, bb = u.T, bb.T
    x = (1 - lr * weight_decay) * x - lr * math.sqrt(rows / cols) * u
    return x, bb, q


def svd_polar(x):
    u, _, vh = np.linalg.svd(x, full_matrices=False)
    return u @ vh


def dion2_step(x, g, m, *, lr, fraction, ef_decay, weight_decay, polar=svd_polar):
    """One Dion2 step on an (m, n) matrix; returns (x, m).

    B = M + G; on the shorter side's slices (rows if m <= n, else columns)
    the k = max(1, ceil(fraction min(m, n))) of largest L1 norm form S;
    B[S] *= ef_decay; X = (1 - lr wd) X - lr sqrt(m / n) (polar(B[S]) on S, 0 elsewhere).
    """
    rows, cols = x.shape
    b = m + g
    by_rows = rows <= cols
    c = b if by_rows else b.T.copy()
    k = max(1, math.ceil(fraction * c.shape[0]))
    chosen = np.argsort(-np.abs(c).sum(axis=1), kind="stable")[:k]
    u = np.zeros_like(c)
    u[chosen] = polar(c[chosen])
    c[chosen] *= ef_decay
    if not by_rows:
        u, c = u.T, c.T
    x = (1 - lr * weight_decay) * x - lr * math.sqrt(rows / cols) * u
    return x, c


def adamw_step(x, g, m, v, t, *, lr, b1, b2, eps, weight_decay):
    """PyTorch's AdamW: X = (1 - lr wd) X - lr m_hat / (sqrt(v_hat) + eps); returns (x, m, v)."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    x = (1 - lr * weight_decay) * x - lr * m_hat / (np.sqrt(v_hat) + eps)
    return x, m, v
