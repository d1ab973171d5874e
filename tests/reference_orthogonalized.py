"""Closed-form float64 NumPy references of Muon's relatives and the LMO methods:
Scion (constrained and unconstrained), AdaMuon and MuonClip's QK-clip.

Written from the papers' equations (never by calling gradtx or optax), in the
form of ``tests/reference.py``: a pair ``init(p) -> state``,
``update(g, state, p) -> (u, state)`` on one array.  Matrices have the layout
of ``x @ W``: (fan_in, fan_out).
"""

from __future__ import annotations

import numpy as np
from reference_matrix import nadamw

JORDAN = (3.4445, -4.7750, 2.0315)


def newton_schulz(x, steps=5, eps=1e-7, sign=False):
    """X_0 = X / max(||X||_F, eps); X <- a X + b (X X^T) X + c (X X^T)^2 X, on the wide orientation."""
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / max(np.linalg.norm(x), eps)
    a, b, c = JORDAN
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + b * gram @ x + c * gram @ gram @ x
    return x.T if tall else x


def lmo(name, d, eps=1e-8):
    """Pethick et al.'s oracles (the negative of argmin_{||x|| <= 1} <d, x>) with their layer scalings."""
    if name == "bias":
        return d / (np.sqrt(np.mean(d * d, axis=0, keepdims=True)) + eps)
    fan_in, fan_out = d.shape
    if name == "spectral":
        return np.sqrt(fan_out / fan_in) * newton_schulz(d)
    if name == "sign":
        return np.sign(d) / fan_in
    if name == "col":  # each input feature's weights to norm sqrt(fan_out)
        return d / (np.linalg.norm(d, axis=1, keepdims=True) / np.sqrt(fan_out) + eps)
    if name == "row":  # each output neuron's weights to norm 1 / sqrt(fan_in)
        return d / (np.linalg.norm(d, axis=0, keepdims=True) * np.sqrt(fan_in) + eps)
    raise ValueError(name)


def scion(lr, alpha, radius, norm, constrained=True, weight_decay=0.0):
    """Scion (Algorithm 1 of the paper): d = (1 - alpha) d + alpha g, then
    x <- (1 - lr) x - lr radius lmo(d) (constrained, SCG) or
    x <- x - lr (radius lmo(d) + weight_decay x) (unconstrained, uSCG)."""

    def init(p):
        return {"d": np.zeros_like(p)}

    def update(g, s, p):
        d = (1 - alpha) * s["d"] + alpha * g
        step = radius * lmo(norm, d)
        u = -lr * (step + (p if constrained else weight_decay * p))
        return u, {"d": d}

    return init, update


def adamuon(lr, b1=0.9, b2=0.95, eps=1e-10, weight_decay=0.0, sign=False, adam_lr=None):
    """AdaMuon for a matrix W (fan_in, fan_out): m = b1 m + (1 - b1) g, O = NS(m) (NS(sign(m))),
    v = b2 v + (1 - b2) O^2, O' = O / (sqrt(v / (1 - b2^t)) + eps),
    step -lr (0.2 sqrt(fan_in fan_out) O' / (||O'||_F + eps) + weight_decay W).
    Other leaves: AdamW (b2 0.999, eps 1e-10)."""
    adam_init, adam_update = nadamw(
        lr if adam_lr is None else adam_lr, 0.9, 0.999, 1e-10, nesterov=False
    )

    def init(p):
        if np.ndim(p) != 2:
            return adam_init(p)
        return {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p)}

    def update(g, s, p):
        if np.ndim(p) != 2:
            return adam_update(g, s, p)
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        o = newton_schulz(np.sign(m) if sign else m)
        v = b2 * s["v"] + (1 - b2) * o * o
        o = o / (np.sqrt(v / (1 - b2**t)) + eps)
        gamma = 0.2 * np.sqrt(p.size) / (np.linalg.norm(o) + eps)
        return -lr * (gamma * o + weight_decay * p), {"t": t, "m": m, "v": v}

    return init, update


def muonclip_step(lr, beta=0.95, weight_decay=0.0):
    """MuonClip's Muon step for a matrix (Kimi K2, Algorithm 1): m = beta m + g, O = NS(m),
    step -lr (0.2 sqrt(max(fan_in, fan_out)) O + weight_decay W)."""

    def init(p):
        return {"m": np.zeros_like(p)}

    def update(g, s, p):
        m = beta * s["m"] + g
        u = -lr * (0.2 * np.sqrt(max(p.shape)) * newton_schulz(m) + weight_decay * p)
        return u, {"m": m}

    return init, update


def qk_clip(w, max_logits, tau, exponent):
    """W's head h (a contiguous block of its columns) times min(1, tau / S_h)^exponent."""
    heads = len(max_logits)
    gamma = np.minimum(1.0, tau / np.asarray(max_logits)) ** exponent
    return w * np.repeat(gamma, w.shape[1] // heads)[None, :]
