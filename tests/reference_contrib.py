"""Closed-form float64 NumPy references for optax.contrib's optimizers.

Written from the papers' equations (and the equations in gradtx's
docstrings), never by calling gradtx or optax.  Each reference works on a
list of leaves, like ``reference.tree``'s output:

    init(params) -> state
    update(grads, state, params[, value]) -> (updates, state)

Per-leaf rules are written for one array and lifted with ``reference.tree``;
rules with global reductions (Prodigy, D-Adaptation, SAM's normalisation)
are written for the list.
"""

from __future__ import annotations

import numpy as np
import reference as ref


def _at(value, t):
    return float(value(t)) if callable(value) else value


def _dot(xs, ys):
    return float(sum(np.sum(x * y) for x, y in zip(xs, ys)))


# ----------------------------------------------------------------------------
# Per-leaf rules.


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


# ----------------------------------------------------------------------------
# Rules over the whole list of leaves.


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
        d_new = max(d, d_coef * r / sum(np.sum(np.abs(x)) for x in s))
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
        d_new = max(d, r / ((1 - c) * sum(np.sum(np.abs(x)) for x in s)))
        ups = [-(mi / (np.sqrt(vi) + eps) + weight_decay * dlr * x) for mi, vi, x in zip(m, v, ps)]
        return ups, {"t": k, "d": d_new, "r": r, "m": m, "v": v, "s": s}

    return init, update


def schedule_free(base, lr, b1=0.9, weight_lr_power=2.0):
    """Defazio et al. 2024, Algorithm 1, keeping x and z explicitly; params are y.

    ``base`` is a list-level reference for the steps of z (given y).
    Returns (init, update, eval) where eval(state) is x.
    """
    base_init, base_update = base

    def init(ps):
        return {
            "t": 1,
            "z": [np.array(p) for p in ps],
            "x": [np.array(p) for p in ps],
            "max_lr": 0.0,
            "wsum": 0.0,
            "base": base_init(ps),
        }

    def update(gs, st, ys):
        t = st["t"]
        max_lr = max(st["max_lr"], _at(lr, t))
        w = max_lr**weight_lr_power
        wsum = st["wsum"] + w
        c = w / wsum if wsum > 0 else 0.0
        steps, base_state = base_update(gs, st["base"], ys)
        z = [z + u for z, u in zip(st["z"], steps)]
        x = [(1 - c) * x + c * zn for x, zn in zip(st["x"], z)]
        y_new = [b1 * xi + (1 - b1) * zi for xi, zi in zip(x, z)]
        return (
            [yn - y for yn, y in zip(y_new, ys)],
            {"t": t + 1, "z": z, "x": x, "max_lr": max_lr, "wsum": wsum, "base": base_state},
        )

    return init, update


def adamw_without_momentum(lr, b2=0.999, eps=1e-8, weight_decay=0.0):
    """z's step in Schedule-Free AdamW: -lr (g / (sqrt(v_hat) + eps) + wd y), t counted from 0."""

    def init(p):
        return {"t": 0, "v": np.zeros_like(p)}

    def update(g, s, y):
        t = s["t"] + 1
        v = b2 * s["v"] + (1 - b2) * g**2
        step = g / (np.sqrt(v / (1 - b2**t)) + eps) + weight_decay * y
        return -_at(lr, t - 1) * step, {"t": t, "v": v}

    return ref.tree((init, update))


def sam(outer, lr_adv, sync_period=2):
    """Foret et al. 2021 with k = sync_period - 1 normalised ascent steps of size lr_adv.

    Transparent form: returned params are the ascent points, then the outer
    step taken from x with the gradient at the last ascent point.
    """
    outer_init, outer_update = outer

    def init(ps):
        return {"i": 0, "x": [np.array(p) for p in ps], "outer": outer_init(ps)}

    def update(gs, st, ps):
        i, x = st["i"], st["x"]
        if i == 0:
            x = [np.array(p) for p in ps]
        if i < sync_period - 1:
            norm = np.sqrt(sum(np.sum(g**2) for g in gs))
            return [lr_adv * g / norm for g in gs], {"i": i + 1, "x": x, "outer": st["outer"]}
        steps, outer_state = outer_update(gs, st["outer"], x)
        return (
            [xi + u - p for xi, u, p in zip(x, steps, ps)],
            {"i": 0, "x": x, "outer": outer_state},
        )

    return init, update


def reduce_on_plateau(
    base,
    factor=0.1,
    patience=10,
    rtol=1e-4,
    atol=0.0,
    cooldown=0,
    accumulation_size=1,
    min_scale=0.0,
):
    """Keras/PyTorch's ReduceLROnPlateau on averages of ``accumulation_size`` values,
    applied as a factor on ``base``'s steps; update takes ``value``."""
    base_init, base_update = base

    def init(ps):
        return {
            "scale": 1.0,
            "best": np.inf,
            "bad": 0,
            "cool": 0,
            "values": [],
            "base": base_init(ps),
        }

    def update(gs, st, ps, value):
        st = dict(st, values=st["values"] + [float(value)])
        if len(st["values"]) == accumulation_size:
            avg = float(np.mean(st["values"]))
            st["values"] = []
            if avg < (1 - rtol) * st["best"] - atol:
                st["best"], st["bad"] = avg, 0
            else:
                st["bad"] += 1
            if st["cool"] > 0:
                st["cool"] -= 1
                st["bad"] = 0
            elif st["bad"] == patience:
                st["scale"] = max(st["scale"] * factor, min_scale)
                st["bad"], st["cool"] = 0, cooldown
        steps, base_state = base_update(gs, st["base"], ps)
        st["base"] = base_state
        return [st["scale"] * u for u in steps], st

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
