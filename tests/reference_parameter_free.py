"""Closed-form float64 NumPy references of one optimizer family.

References for the parameter-free methods: Prodigy, D-Adaptation, DoG, DoWG, COCOB, MoMo,
Polyak's step size and Mechanic.
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


def polyak_sgd(max_learning_rate=1.0, scaling=1.0, f_min=0.0, eps=0.0):
    """Loizou et al. 2021, SPS_max, on the list of leaves with the loss as ``value``.

    In optax's form: the Polyak step is measured on the scaled step d = -s * g,
    min((f - f_min) / (||d||^2 + eps), max_lr) * d.
    """

    def init(params):
        return {"t": 0}

    def update(grads, s, params, value):
        d = [-_at(scaling, s["t"]) * g for g in grads]
        sq = sum(float(np.sum(x * x)) for x in d)
        step = (
            0.0
            if sq + eps <= np.finfo(np.float64).eps
            else min((value - f_min) / (sq + eps), max_learning_rate)
        )
        return [step * x for x in d], {"t": s["t"] + 1}

    return init, update


def _dot(xs, ys):
    return float(sum(np.sum(x * y) for x, y in zip(xs, ys)))


def prodigy(
    lr=1.0,
    betas=(0.9, 0.999),
    beta3=None,
    eps=1e-8,
    d0=1e-6,
    d_coef=1.0,
    weight_decay=0.0,
    safeguard_warmup=False,
):
    """Mishchenko & Defazio 2024, Algorithm 4 (Adam version) with bias correction in the step."""
    b1, b2 = betas
    b3 = np.sqrt(b2) if beta3 is None else beta3

    def init(ps):
        zeros = [np.zeros_like(p) for p in ps]
        return {
            "t": 0,
            "d": d0,
            "r": 0.0,
            "m": zeros,
            "v": zeros,
            "s": zeros,
            "x0": [np.array(p) for p in ps],
        }

    def update(gs, st, ps):
        t, d = st["t"], st["d"]
        k = t + 1
        dlr = d * _at(lr, t) * np.sqrt(1 - b2**k) / (1 - b1**k)
        m = [b1 * m + (1 - b1) * d * g for m, g in zip(st["m"], gs)]
        v = [b2 * v + (1 - b2) * d**2 * g**2 for v, g in zip(st["v"], gs)]
        weight = d if safeguard_warmup else dlr
        s = [b3 * s + weight * d * g / d0 for s, g in zip(st["s"], gs)]
        r = b3 * st["r"] + d / d0 * dlr * _dot(gs, [x0 - x for x0, x in zip(st["x0"], ps)])
        s_norm = sum(np.sum(np.abs(x)) for x in s)
        d_new = max(d, d_coef * r / s_norm) if s_norm > 0 else d  # nothing seen yet: d stays
        ups = [
            -dlr * (mi / (np.sqrt(vi) + d_new * eps) + weight_decay * x)
            for mi, vi, x in zip(m, v, ps)
        ]
        return ups, {"t": k, "d": d_new, "r": r, "m": m, "v": v, "s": s, "x0": st["x0"]}

    return init, update


def dadapt_adamw(lr=1.0, betas=(0.9, 0.999), eps=1e-8, d0=1e-6, weight_decay=0.0):
    """Defazio & Mishchenko 2023, Algorithm (D-Adapted Adam), sqrt(b2) for the sums."""
    b1, b2 = betas
    c = np.sqrt(b2)

    def init(ps):
        zeros = [np.zeros_like(p) for p in ps]
        return {"t": 0, "d": d0, "r": 0.0, "m": zeros, "v": zeros, "s": zeros}

    def update(gs, st, ps):
        t, d = st["t"], st["d"]
        k = t + 1
        dlr = d * _at(lr, t) * np.sqrt(1 - b2**k) / (1 - b1**k)
        inner = _dot(gs, [s / (np.sqrt(v) + eps) for s, v in zip(st["s"], st["v"])])
        r = c * st["r"] + (1 - c) * dlr * inner
        m = [b1 * m + (1 - b1) * dlr * g for m, g in zip(st["m"], gs)]
        v = [b2 * v + (1 - b2) * g**2 for v, g in zip(st["v"], gs)]
        s = [c * s + (1 - c) * dlr * g for s, g in zip(st["s"], gs)]
        s_norm = sum(np.sum(np.abs(x)) for x in s)
        d_new = max(d, r / ((1 - c) * s_norm)) if s_norm > 0 else d  # nothing seen yet: d stays
        ups = [-(mi / (np.sqrt(vi) + eps) + weight_decay * dlr * x) for mi, vi, x in zip(m, v, ps)]
        return ups, {"t": k, "d": d_new, "r": r, "m": m, "v": v, "s": s}

    return init, update


def _norm_sq(xs):
    return float(sum(np.sum(x**2) for x in xs))


def dog(lr=1.0, init_step=("heuristic", 1e-6), eps=1e-8, weight_decay=None):
    """Ivgi et al. 2023, Algorithm 1: eta_t = r_t / sqrt(sum ||g||^2), r_t = max_s ||x_s - x_0||."""
    kind, value = init_step

    def init(ps):
        r0 = {
            "distance": value,
            "heuristic": value * (1 + np.sqrt(_norm_sq(ps))),
            "learning_rate": 0.0,
        }[kind]
        return {"t": 0, "x0": [np.array(p) for p in ps], "r": r0, "G": 0.0}

    def update(gs, st, ps):
        if weight_decay is not None:
            gs = [g + weight_decay * p for g, p in zip(gs, ps)]
        r = max(st["r"], np.sqrt(_norm_sq([p - p0 for p, p0 in zip(ps, st["x0"])])))
        big_g = st["G"] + _norm_sq(gs)
        eta = value if (kind == "learning_rate" and st["t"] == 0) else r / np.sqrt(big_g + eps)
        return (
            [-_at(lr, st["t"]) * eta * g for g in gs],
            {"t": st["t"] + 1, "x0": st["x0"], "r": r, "G": big_g},
        )

    return init, update


def dowg(lr=1.0, init_estim_sq_dist=None, eps=1e-4, weight_decay=None):
    """Khaled et al. 2023, Algorithm 1: eta_t = r_t^2 / sqrt(v_t), v_t = sum r_s^2 ||g_s||^2."""

    def init(ps):
        r_sq = eps if init_estim_sq_dist is None else init_estim_sq_dist
        return {"t": 0, "x0": [np.array(p) for p in ps], "r_sq": r_sq, "v": 0.0}

    def update(gs, st, ps):
        if weight_decay is not None:
            gs = [g + weight_decay * p for g, p in zip(gs, ps)]
        r_sq = max(st["r_sq"], _norm_sq([p - p0 for p, p0 in zip(ps, st["x0"])]))
        v = st["v"] + r_sq * _norm_sq(gs)
        eta = r_sq / (np.sqrt(v) + eps)
        return (
            [-_at(lr, st["t"]) * eta * g for g in gs],
            {"t": st["t"] + 1, "x0": st["x0"], "r_sq": r_sq, "v": v},
        )

    return init, update


def cocob(lr=1.0, alpha=100.0, eps=1e-8, weight_decay=0.0):
    """Orabona & Tommasi 2017, Algorithm 2 (COCOB-Backprop), on g' = lr (g + wd x)."""

    def init(p):
        return {
            "t": 0,
            "x0": np.array(p),
            "L": np.full_like(p, eps),
            "G": np.zeros_like(p),
            "reward": np.zeros_like(p),
            "theta": np.zeros_like(p),
        }

    def update(g, st, x):
        g = _at(lr, st["t"]) * (g + weight_decay * x)
        big_l = np.maximum(st["L"], np.abs(g))
        big_g = st["G"] + np.abs(g)
        reward = np.maximum(st["reward"] - (x - st["x0"]) * g, 0)
        theta = st["theta"] + (-g)
        x_new = st["x0"] + theta / (big_l * np.maximum(big_g + big_l, alpha * big_l)) * (
            big_l + reward
        )
        return x_new - x, {
            "t": st["t"] + 1,
            "x0": st["x0"],
            "L": big_l,
            "G": big_g,
            "reward": reward,
            "theta": theta,
        }

    return ref.tree((init, update))


def momo(lr=1.0, beta=0.9, lower_bound=0.0, weight_decay=0.0, adapt_lower_bound=False):
    """Schaipp et al. 2024, Algorithm 1 (MoMo), with optax's weight-decay form; takes ``value``."""

    def init(ps):
        return {
            "t": 0,
            "d": [np.zeros_like(p) for p in ps],
            "f": 0.0,
            "gamma": 0.0,
            "lb": lower_bound,
        }

    def update(gs, st, ps, value):
        t = st["t"]
        b = 0.0 if t == 0 else beta
        f = b * st["f"] + (1 - b) * value
        d = [b * di + (1 - b) * g for di, g in zip(st["d"], gs)]
        gamma = b * st["gamma"] + (1 - b) * _dot(gs, ps)
        a = _at(lr, t)
        k = 1 + a * weight_decay
        norm, inner = _norm_sq(d), _dot(d, ps)
        lb = st["lb"]
        if adapt_lower_bound:
            cap = k * (f - gamma) + inner
            if cap < k * lb:
                lb = max(cap / (2 * k), lower_bound)
        polyak = 0.0 if norm <= np.finfo(float).eps else max(k * (f - lb - gamma) + inner, 0) / norm
        tau = min(a, polyak)
        if adapt_lower_bound:
            lb = max(f + inner - gamma - tau * norm / 2, lower_bound)
        ups = [-(a * weight_decay) / k * p - tau * di for di, p in zip(d, ps)]
        return ups, {"t": t + 1, "d": d, "f": f, "gamma": gamma, "lb": lb}

    return init, update


def momo_adam(
    lr=1e-2, b1=0.9, b2=0.999, eps=1e-8, lower_bound=0.0, weight_decay=0.0, adapt_lower_bound=False
):
    """Schaipp et al. 2024, Algorithm 3 (MoMo-Adam), with optax's weight-decay form."""

    def init(ps):
        return {
            "t": 0,
            "m": [np.zeros_like(p) for p in ps],
            "v": [np.zeros_like(p) for p in ps],
            "f": 0.0,
            "gamma": 0.0,
            "lb": lower_bound,
        }

    def update(gs, st, ps, value):
        t = st["t"] + 1
        c1, c2 = 1 - b1**t, 1 - b2**t
        f = b1 * st["f"] + (1 - b1) * value
        m = [b1 * mi + (1 - b1) * g for mi, g in zip(st["m"], gs)]
        v = [b2 * vi + (1 - b2) * g**2 for vi, g in zip(st["v"], gs)]
        big_d = [eps + np.sqrt(vi / c2) for vi in v]
        norm = _dot(m, [mi / di for mi, di in zip(m, big_d)])
        gamma = b1 * st["gamma"] + (1 - b1) * _dot(gs, ps)
        inner = _dot(m, ps)
        a = _at(lr, t - 1)
        k = 1 + a * weight_decay
        lb = st["lb"]
        if adapt_lower_bound:
            cap = k * (f - gamma) + inner
            if cap < k * c1 * lb:
                lb = max(cap / (2 * c1 * k), lower_bound)
        polyak = (
            0.0 if norm <= np.finfo(float).eps else max(k * (f - c1 * lb - gamma) + inner, 0) / norm
        )
        tau = min(a / c1, polyak)
        if adapt_lower_bound:
            lb = max((f + inner - gamma - tau * norm / 2) / c1, lower_bound)
        ups = [-(a * weight_decay) / k * p - tau * mi / di for mi, di, p in zip(m, big_d, ps)]
        return ups, {"t": t, "m": m, "v": v, "f": f, "gamma": gamma, "lb": lb}

    return init, update


def mechanize(base, weight_decay=0.01, eps=1e-8, s_init=1e-6, num_betas=6):
    """Cutkosky et al. 2023, Algorithm 1 (Mechanic); params x_t = x_0 + S_t Delta_t.

    As gradtx (and optax) read it: Delta_{t-1} is read back from the
    parameters as (x_t - x_0) / (S_{t-1} + eps); r is not floored at 0 (only
    its positive part enters the wealth); h is clipped to [-m_{t-1}, m_{t-1}]
    in r; and m_t = max(b m_{t-1}, |h_t| + eps).
    """
    base_init, base_update = base
    betas = np.array([1 - 0.1**i for i in range(1, num_betas + 1)])

    def init(ps):
        zeros = np.zeros(num_betas)
        return {
            "x0": [np.array(p) for p in ps],
            "s": np.full(num_betas, s_init),
            "m": zeros,
            "v": zeros,
            "r": zeros,
            "base": base_init(ps),
        }

    def update(gs, st, ps):
        steps, base_state = base_update(gs, st["base"], ps)
        total = np.sum(st["s"])
        delta = [(p - x0) / (total + eps) for p, x0 in zip(ps, st["x0"])]
        lam = weight_decay * total * np.sqrt(_norm_sq(gs)) / (np.sqrt(_norm_sq(ps)) + eps)
        h = _dot([g + lam * p for g, p in zip(gs, ps)], delta)
        r = betas * st["r"] - np.clip(h, -st["m"], st["m"]) * st["s"]
        m = np.maximum(betas * st["m"], np.abs(h) + eps)
        v = betas**2 * st["v"] + h**2
        s = (s_init / num_betas * m + np.maximum(r, 0)) / (np.sqrt(v) + eps)
        new = [x0 + np.sum(s) * (d + u) for x0, d, u in zip(st["x0"], delta, steps)]
        return (
            [n - p for n, p in zip(new, ps)],
            {"x0": st["x0"], "s": s, "m": m, "v": v, "r": r, "base": base_state},
        )

    return init, update
