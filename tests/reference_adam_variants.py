"""Closed-form float64 NumPy references of one optimizer family.

References for Adam's variants: AdaBelief, Yogi, Adan, AdEMAMix (and its schedules), ADOPT,
LaProp, MARS and Adam-mini.
Written from the papers' equations (never by calling gradtx or optax), in the
form of ``tests/reference.py``: a pair ``init(p) -> state``,
``update(g, state, p) -> (u, state)`` on one array, lifted to leaves by
``reference.tree``, or on the list of leaves for the rules that couple
leaves (global norms, noise keyed over the tree, wrappers of another
reference).
"""

from __future__ import annotations

import math

import numpy as np
import reference as ref
from reference import _at


def _z(p):
    return np.zeros_like(np.asarray(p, np.float64))


def _hat(x, b, t):
    return x / (1 - b**t)


def _adam_direction(g, s, b1, t, nesterov=False):
    m = b1 * s["m"] + (1 - b1) * g
    if nesterov:
        return m, b1 * _hat(m, b1, t + 1) + (1 - b1) * _hat(g, b1, t)
    return m, _hat(m, b1, t)


def adabelief(lr, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False):
    """Zhuang et al. 2020, Algorithm 2, with eps_root added to s_t every step."""

    def init(p):
        return {"t": 0, "m": _z(p), "s": _z(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m, m_hat = _adam_direction(g, s, b1, t, nesterov)
        v = b2 * s["s"] + (1 - b2) * (g - m) ** 2 + eps_root
        u = m_hat / (np.sqrt(_hat(v, b2, t)) + eps)
        return -_at(lr, t - 1) * u, {"t": t, "m": m, "s": v}

    return init, update


def yogi(lr, b1=0.9, b2=0.999, eps=1e-3, initial=1e-6):
    """Zaheer et al. 2018, Algorithm 2, with bias-corrected moments started at ``initial``."""

    def init(p):
        return {"t": 0, "m": _z(p) + initial, "v": _z(p) + initial}

    def update(g, s, p):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = s["v"] - (1 - b2) * np.sign(s["v"] - g * g) * g * g
        u = _hat(m, b1, t) / (np.sqrt(_hat(v, b2, t)) + eps)
        return -_at(lr, t - 1) * u, {"t": t, "m": m, "v": v}

    return init, update


def adan(lr, b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=1e-8, weight_decay=0.0):
    """Xie et al. 2022, Algorithm 1 with optax's betas (b = 1 - paper beta) and bias correction."""

    def init(p):
        return {"t": 0, "m": _z(p), "v": _z(p), "n": _z(p), "g": _z(p)}

    def update(g, s, p):
        t = s["t"] + 1
        d = g - s["g"] if t > 1 else 0 * g
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * d
        n = b3 * s["n"] + (1 - b3) * (g + (1 - b2) * d) ** 2
        step = (_hat(m, b1, t) + (1 - b2) * _hat(v, b2, t)) / (
            np.sqrt(_hat(n, b3, t) + eps_root) + eps
        )
        step = step + _at(weight_decay, t - 1) * p
        return -_at(lr, t - 1) * step, {"t": t, "m": m, "v": v, "n": n, "g": g}

    return init, update


def ademamix(lr, b1=0.9, b2=0.999, b3=0.9999, alpha=5.0, eps=1e-8, eps_root=0.0, weight_decay=0.0):
    """Pagliardini et al. 2024, Algorithm 1 (no warmup of alpha, b3)."""

    def init(p):
        return {"t": 0, "m1": np.zeros_like(p), "m2": np.zeros_like(p), "nu": np.zeros_like(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m1 = b1 * s["m1"] + (1 - b1) * g
        m2 = _at(b3, t - 1) * s["m2"] + (1 - _at(b3, t - 1)) * g
        nu = b2 * s["nu"] + (1 - b2) * g**2
        m1_hat, nu_hat = m1 / (1 - b1**t), nu / (1 - b2**t)
        step = (m1_hat + _at(alpha, t - 1) * m2) / (np.sqrt(nu_hat + eps_root) + eps)
        return -_at(lr, t - 1) * (step + weight_decay * p), {"t": t, "m1": m1, "m2": m2, "nu": nu}

    return ref.tree((init, update))


def simplified_ademamix(lr, b1=0.99, b2=0.95, alpha=0.0, eps=1e-8, eps_root=0.0, weight_decay=0.0):
    """Morwani et al. 2025: m_t = b1 m + g, update (m + alpha g) / (sqrt(n_hat) + eps)."""

    def init(p):
        return {"t": 0, "m": np.zeros_like(p), "n": np.zeros_like(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m = b1 * s["m"] + g
        n = b2 * s["n"] + (1 - b2) * g**2
        step = (m + _at(alpha, t - 1) * g) / (np.sqrt(n / (1 - b2**t) + eps_root) + eps)
        return -_at(lr, t - 1) * (step + weight_decay * p), {"t": t, "m": m, "n": n}

    return ref.tree((init, update))


def adopt(lr, b1=0.9, b2=0.9999, eps=1e-6, nesterov=False, use_clipping=True):
    """Taniguchi et al. 2024, Algorithm 2 (with the clipped variant, c_t = t^(1/4))."""

    def init(p):
        return {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p)}

    def update(g, s, p):
        t = s["t"]
        if t == 0:  # v_0 = g_0^2; no step
            return np.zeros_like(g), {"t": 1, "m": s["m"], "v": g**2}
        n = g / np.maximum(np.sqrt(s["v"]), eps)
        if use_clipping:
            n = np.clip(n, -(t**0.25), t**0.25)
        m = b1 * s["m"] + (1 - b1) * n
        direction = b1 * m + (1 - b1) * n if nesterov else m
        v = b2 * s["v"] + (1 - b2) * g**2
        return -_at(lr, t) * direction, {"t": t + 1, "m": m, "v": v}

    return ref.tree((init, update))


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


def ademamix_alpha(alpha, warmup, t):
    """f_alpha(t) = min(t alpha / T_alpha, alpha)."""
    return min(t * alpha / warmup, alpha)


def ademamix_beta3(b3, warmup, b1, t):
    """f_beta3(t) = min(exp(ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1)), b3)."""
    a = min(t / warmup, 1.0)
    lb1, lb3 = math.log(b1), math.log(b3)
    return min(math.exp(lb1 * lb3 / ((1 - a) * lb3 + a * lb1)), b3)
