"""Closed-form float64 NumPy references for optax's other optimizers.

Written from the papers' equations and optax's documented conventions
(never by calling gradtx), in the form of ``tests/reference.py``: a pair
``init(p) -> state``, ``update(g, state, p) -> (u, state)`` on one array,
lifted to leaves by ``reference.tree``; the few rules that couple leaves
(Polyak's step, noise keyed over the tree) take lists of leaves instead.
"""

from __future__ import annotations

import numpy as np
from reference import _at


def _z(p):
    return np.zeros_like(np.asarray(p, np.float64))


def _norm(x):
    return float(np.sqrt(np.sum(np.square(x))))


def _hat(x, b, t):
    return x / (1 - b**t)


def lion(lr, b1=0.9, b2=0.99, weight_decay=1e-3):
    """Chen et al. 2023, Algorithm 2 (decoupled decay)."""

    def init(p):
        return {"t": 0, "m": _z(p)}

    def update(g, s, p):
        t = s["t"]
        step = np.sign(b1 * s["m"] + (1 - b1) * g) + _at(weight_decay, t) * p
        return -_at(lr, t) * step, {"t": t + 1, "m": b2 * s["m"] + (1 - b2) * g}

    return init, update


def sign_sgd(lr):
    return (lambda p: {"t": 0}, lambda g, s, p: (-_at(lr, s["t"]) * np.sign(g), {"t": s["t"] + 1}))


def signum(lr, beta=0.9):
    """Bernstein et al. 2018, Algorithm 3: sign of an undebiased average."""

    def init(p):
        return {"t": 0, "m": _z(p)}

    def update(g, s, p):
        m = beta * s["m"] + (1 - beta) * g
        return -_at(lr, s["t"]) * np.sign(m), {"t": s["t"] + 1, "m": m}

    return init, update


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


def adamax(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
    """Kingma & Ba 2015, Algorithm 2; weight_decay decoupled (AdaMaxW)."""

    def init(p):
        return {"t": 0, "m": _z(p), "u": _z(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        inf = np.maximum(b2 * s["u"], np.abs(g) + eps)
        step = _hat(m, b1, t) / inf + _at(weight_decay, t - 1) * p
        return -_at(lr, t - 1) * step, {"t": t, "m": m, "u": inf}

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


def novograd(lr, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0, weight_decay=0.0):
    """Ginsburg et al. 2019, Algorithm 1 in optax's form (m_t a sum, v_1 = ||g_1||^2)."""

    def init(p):
        return {"t": 0, "m": _z(p), "v": 0.0}

    def update(g, s, p):
        t = s["t"] + 1
        sq = float(np.sum(g * g))
        v = sq if t == 1 else b2 * s["v"] + (1 - b2) * sq
        step = g / (np.sqrt(v + eps_root) + eps) + weight_decay * p
        m = step if t == 1 else b1 * s["m"] + step
        return -_at(lr, t - 1) * m, {"t": t, "m": m, "v": v}

    return init, update


def _trust(u, p, coefficient=1.0, eps=0.0, min_norm=0.0):
    pn, un = max(_norm(p), min_norm), max(_norm(u), min_norm)
    return u if pn == 0 or un == 0 else coefficient * pn / (un + eps) * u


def lamb(lr, b1=0.9, b2=0.999, eps=1e-6, eps_root=0.0, weight_decay=0.0):
    """You et al. 2020, Algorithm 2 (phi = identity), Adam's step with decoupled decay."""

    def init(p):
        return {"t": 0, "m": _z(p), "v": _z(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g * g
        r = (
            _hat(m, b1, t) / (np.sqrt(_hat(v, b2, t) + eps_root) + eps)
            + _at(weight_decay, t - 1) * p
        )
        return -_at(lr, t - 1) * _trust(r, p), {"t": t, "m": m, "v": v}

    return init, update


def lars(
    lr,
    weight_decay=0.0,
    trust_coefficient=0.001,
    eps=0.0,
    momentum=0.9,
    nesterov=False,
    decay=True,
    trusted=True,
):
    """You et al. 2017, Algorithm 1 with optax's order: lr applied before the momentum."""

    def init(p):
        return {"t": 0, "m": _z(p)}

    def update(g, s, p):
        t = s["t"]
        r = g + (_at(weight_decay, t) * p if decay else 0)
        if trusted:
            r = _trust(r, p, trust_coefficient, eps)
        step = _at(lr, t) * r
        m = momentum * s["m"] + step
        out = momentum * m + step if nesterov else m
        return -out, {"t": t + 1, "m": m}

    return init, update


def fromage(lr, min_norm=1e-6):
    """Bernstein et al. 2020, Algorithm 1: p <- (p - lr ||p||/||g|| g) / sqrt(1 + lr^2)."""

    def init(p):
        return {"t": 0}

    def update(g, s, p):
        a = _at(lr, s["t"])
        new = (p - a * _trust(g, p, min_norm=min_norm)) / np.sqrt(1 + a * a)
        return new - p, {"t": s["t"] + 1}

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


def rprop(lr, eta_minus=0.5, eta_plus=1.2, min_step=1e-6, max_step=50.0):
    """Riedmiller & Braun 1993 (Rprop without backtracking), returned one step late as optax does."""

    def init(p):
        return {"size": _z(p) + lr, "q": _z(p)}

    def update(g, s, p):
        agree = g * s["q"]
        size = np.where(
            agree == 0,
            s["size"],
            np.clip(s["size"] * np.where(agree > 0, eta_plus, eta_minus), min_step, max_step),
        )
        q = np.where(agree < 0, 0.0, size * np.sign(g))
        out = np.where(agree < 0, 0.0, s["q"])
        return -out, {"size": size, "q": q}

    return init, update


def optimistic_gradient_descent(lr, alpha=1.0, beta=1.0):
    """Mokhtari et al. 2020, eq. (OGDA): step (alpha + beta) g_t - beta g_{t-1}, g_0 = g_1."""

    def init(p):
        return {"t": 0, "prev": None}

    def update(g, s, p):
        prev = g if s["prev"] is None else s["prev"]
        return -_at(lr, s["t"]) * ((alpha + beta) * g - beta * prev), {"t": s["t"] + 1, "prev": g}

    return init, update


def optimistic_adam(lr, optimism=None, b1=0.9, b2=0.999, eps=1e-8, nesterov=True):
    """Daskalakis et al. 2018, Algorithm 1 (Optimistic Adam) in optax's form.

    u_t = -((lr + o) a_t - o a_{t-1}): v2's step with lr 1, alpha = lr and beta = o.
    """
    o = lr if optimism is None else optimism
    return optimistic_adam_v2(1.0, alpha=lr, beta=o, b1=b1, b2=b2, eps=eps, nesterov=nesterov)


def optimistic_adam_v2(lr, alpha=1.0, beta=1.0, b1=0.9, b2=0.999, eps=1e-8, nesterov=True):
    """optax's optimistic_adam_v2: lr_t * ((alpha + beta) a_t - beta a_{t-1}), a_t Adam's step."""

    def init(p):
        return {"t": 0, "m": _z(p), "v": _z(p), "prev": None}

    def update(g, s, p):
        t = s["t"] + 1
        m, m_hat = _adam_direction(g, s, b1, t, nesterov)
        v = b2 * s["v"] + (1 - b2) * g * g
        a = m_hat / (np.sqrt(_hat(v, b2, t)) + eps)
        prev = a if s["prev"] is None else s["prev"]
        step = (alpha + beta) * a - beta * prev
        return -_at(lr, s["t"]) * step, {"t": t, "m": m, "v": v, "prev": a}

    return init, update


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


def lbfgs(lr, memory_size=10, scale_init_precond=True):
    """Nocedal & Wright 2006, Algorithm 7.4 (two-loop recursion) with a fixed step size, on the
    list of leaves (the inner products run over the whole tree); gamma_0 = min(1, 1 / ||g_0||)."""

    def flat(leaves):
        return np.concatenate([np.ravel(x) for x in leaves])

    def init(params):
        return {"k": 0, "pairs": [], "x": None, "g": None}

    def update(grads, s, params):
        x, g = flat(params), flat(grads)
        pairs = list(s["pairs"])
        if s["k"] > 0:
            pairs = (pairs + [(x - s["x"], g - s["g"])])[-memory_size:]
        q, alphas = g.copy(), []
        for si, yi in reversed(pairs):
            rho = 0.0 if yi @ si == 0 else 1.0 / (yi @ si)
            alphas.append(rho * (si @ q))
            q = q - alphas[-1] * yi
        if not scale_init_precond:
            gamma = 1.0
        elif pairs:
            si, yi = pairs[-1]
            gamma = (yi @ si) / (yi @ yi) if yi @ yi > 0 else 1.0
        else:
            gamma = min(1.0, 1.0 / np.sqrt(g @ g))
        r = gamma * q
        for (si, yi), alpha in zip(pairs, reversed(alphas)):
            rho = 0.0 if yi @ si == 0 else 1.0 / (yi @ si)
            r = r + (alpha - rho * (yi @ r)) * si
        step = -_at(lr, s["k"]) * r
        out, start = [], 0
        for p in params:
            n = np.size(p)
            out.append(step[start : start + n].reshape(np.shape(p)))
            start += n
        return out, {"k": s["k"] + 1, "pairs": pairs, "x": x, "g": g}

    return init, update
