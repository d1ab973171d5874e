"""Float64 NumPy transcriptions of the add-ons' published equations.

Cautious updates (Liang et al. 2024, arXiv:2411.16085), cautious weight
decay (Chen et al. 2025, arXiv:2510.12402), the MARS correction and
MARS-AdamW (Yuan et al. 2024, arXiv:2411.10438, Algorithm 2), LaProp
(Ziyin et al. 2020, arXiv:2002.04839, Algorithm 1), Adam-mini (Zhang et
al. 2024, arXiv:2406.16793) and AdEMAMix's schedules (Pagliardini et al.
2024, arXiv:2409.03137).  Written from the papers, never by calling gradtx;
the same ``init(p) / update(g, state, p) -> (step, state)`` convention as
``tests/reference.py`` (the step is added to the parameters).
"""

from __future__ import annotations

import math

import numpy as np


def _at(value, t):
    return float(value(t)) if callable(value) else value


def laprop(lr, b1=0.9, b2=0.999, eps=1e-15, weight_decay=0.0):
    """n_t = b2 n + (1-b2) g^2; m_t = b1 m + (1-b1) g / (sqrt(n_t / c_n) + eps); step -lr (m_t / c_m + wd p)."""

    def init(p):
        return {"t": 0, "m": np.zeros_like(p), "n": np.zeros_like(p)}

    def update(g, s, p):
        t = s["t"] + 1
        n = b2 * s["n"] + (1 - b2) * g * g
        m = b1 * s["m"] + (1 - b1) * g / (np.sqrt(n / (1 - b2**t)) + eps)
        step = -_at(lr, t - 1) * (m / (1 - b1**t) + weight_decay * p)
        return step, {"t": t, "m": m, "n": n}

    return init, update


def mars_correction(b1=0.95, gamma=0.025):
    """c_t = g_t + gamma b1 / (1 - b1) (g_t - g_{t-1}), g_0 = 0; c_t / ||c_t|| if ||c_t|| > 1."""

    def init(p):
        return {"prev": np.zeros_like(p)}

    def update(g, s, p):
        c = g + gamma * b1 / (1 - b1) * (g - s["prev"])
        norm = np.sqrt(np.sum(c * c))
        if norm > 1:
            c = c / norm
        return c, {"prev": g}

    return init, update


def mars(lr, b1=0.95, b2=0.99, eps=1e-8, gamma=0.025, weight_decay=0.0):
    """MARS-AdamW, Algorithm 2: Adam on c_t, step -lr (m_hat / (sqrt(v_hat) + eps) + wd p)."""
    c_init, c_update = mars_correction(b1, gamma)

    def init(p):
        return {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p), "c": c_init(p)}

    def update(g, s, p):
        t = s["t"] + 1
        c, c_state = c_update(g, s["c"], p)
        m = b1 * s["m"] + (1 - b1) * c
        v = b2 * s["v"] + (1 - b2) * c * c
        direction = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        step = -_at(lr, t - 1) * (direction + weight_decay * p)
        return step, {"t": t, "m": m, "v": v, "c": c_state}

    return init, update


def _block_mean(x, block_axes):
    """mean of x over the entries of each block: one block per leaf, or over ``block_axes``."""
    if block_axes is None or x.ndim < 2:
        return np.full_like(x, np.mean(x)) if x.size else x
    axes = tuple(sorted({a % x.ndim for a in np.atleast_1d(block_axes)}))
    return np.broadcast_to(np.mean(x, axis=axes, keepdims=True), x.shape).copy()


def adam_mini(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, block_axes=None):
    """m_t per entry; v_{t,b} = b2 v + (1-b2) mean_b g^2 per block; step -lr (m_hat / (sqrt(v_hat) + eps) + wd p)."""

    def init(p):
        return {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * _block_mean(g * g, block_axes)
        direction = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        step = -_at(lr, t - 1) * (direction + weight_decay * p)
        return step, {"t": t, "m": m, "v": v}

    return init, update


def block_rms(decay, eps, block_axes=None):
    """The Adam-mini preconditioner on its own: g / (sqrt(v_hat_b) + eps)."""

    def init(p):
        return {"t": 0, "v": np.zeros_like(p)}

    def update(g, s, p):
        t = s["t"] + 1
        v = decay * s["v"] + (1 - decay) * _block_mean(g * g, block_axes)
        return g / (np.sqrt(v / (1 - decay**t)) + eps), {"t": t, "v": v}

    return init, update


def cautious(inner):
    """phi = [s * (-g) > 0]; step s * phi * d / (sum(phi) + 1), s the inner step, d the leaf size."""
    inner_init, inner_update = inner

    def update(g, s, p):
        step, s = inner_update(g, s, p)
        keep = (step * -g > 0).astype(np.float64)
        return step * keep * (keep.size / (keep.sum() + 1)), s

    return inner_init, update


def cautious_weight_decay(weight_decay):
    """u + wd [u p >= 0] p (before the learning rate)."""

    def init(p):
        return {}

    def update(u, s, p):
        return u + weight_decay * (u * p >= 0) * p, s

    return init, update


def cautious_adamw_cwd(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
    """AdamW with cautious weight decay: -lr (u + wd [u p >= 0] p), u = m_hat / (sqrt(v_hat) + eps)."""

    def init(p):
        return {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g * g
        u = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        return -_at(lr, t - 1) * (u + weight_decay * (u * p >= 0) * p), {"t": t, "m": m, "v": v}

    return init, update


def ademamix_alpha(alpha, warmup, t):
    """f_alpha(t) = min(t alpha / T_alpha, alpha)."""
    return min(t * alpha / warmup, alpha)


def ademamix_beta3(b3, warmup, b1, t):
    """f_beta3(t) = min(exp(ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1)), b3)."""
    a = min(t / warmup, 1.0)
    lb1, lb3 = math.log(b1), math.log(b3)
    return min(math.exp(lb1 * lb3 / ((1 - a) * lb3 + a * lb1)), b3)
