"""Closed-form float64 NumPy references for the optimizers and transforms.

Written from the published equations (the papers cited below and the
equations at the top of gradtx's docstrings), never by calling gradtx, so a
test that compares the two compares two independent implementations.

Each reference is a pair of plain functions on ONE array, like the math:

    init(p) -> state                  (a dict)
    update(g, state, p) -> (u, state) (u is the step: p_new = p + u)

``tree(ref)`` lifts such a pair to a list of leaves.  Hyperparameters that
may be schedules (learning rate, weight decay) are called with the step
number t = 0, 1, 2, ... when callable.  Squares are |g|^2 = g * conj(g), so
the same code serves complex arrays.
"""

from __future__ import annotations

import numpy as np


def _sq(x):
    """|x|^2, real for complex x."""
    return np.real(x * np.conj(x))


def _at(value, t):
    return float(value(t)) if callable(value) else value


def _zeros(p):
    return np.zeros_like(np.asarray(p))


def _real_zeros(p):
    return np.zeros(np.shape(p), np.real(np.asarray(p)).dtype)


def tree(refs, n=None):
    """Lift per-leaf references to lists of leaves.

    ``refs`` is one (init, update) pair used for every leaf, or a list with
    one pair per leaf (to give leaves different settings, e.g. a mask).
    """

    def pick(i):
        return refs[i] if isinstance(refs, list) else refs

    def init(params):
        return [pick(i)[0](p) for i, p in enumerate(params)]

    def update(grads, states, params):
        outs = [pick(i)[1](g, s, p) for i, (g, s, p) in enumerate(zip(grads, states, params))]
        return [u for u, _ in outs], [s for _, s in outs]

    return init, update


# ----------------------------------------------------------------------------
# Optimizers.


def sgd(lr, momentum=None, nesterov=False):
    """SGD; heavy ball b_t = mu b_{t-1} + g_t (Polyak 1964), step -lr b_t;
    Nesterov (Sutskever et al. 2013, PyTorch's form) steps -lr (mu b_t + g_t)."""

    def init(p):
        return {"t": 0, "b": _zeros(p)}

    def update(g, s, p):
        t = s["t"]
        if momentum is None:
            direction, b = g, s["b"]
        else:
            b = momentum * s["b"] + g
            direction = momentum * b + g if nesterov else b
        return -_at(lr, t) * direction, {"t": t + 1, "b": b}

    return init, update


def rmsprop(
    lr,
    decay=0.9,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt=True,
    centered=False,
    momentum=None,
    nesterov=False,
):
    """RMSprop (Tieleman & Hinton 2012); centered (Graves 2013, eq. 38-45).

    v_t = decay v_{t-1} + (1 - decay) |g_t|^2,  a_t = decay a_{t-1} + (1 - decay) g_t,
    var_t = v_t - |a_t|^2 if centered else v_t,
    s_t = g_t / sqrt(var_t + eps)  or  g_t / (sqrt(var_t) + eps),
    with momentum: b_t = mu b_{t-1} + s_t, direction b_t (or mu b_t + s_t, Nesterov);
    step: -lr * direction.  (The buffer accumulates the scaled gradient and
    the learning rate multiplies afterwards, as in PyTorch.)
    """

    def init(p):
        return {"t": 0, "v": _real_zeros(p) + initial_scale, "a": _zeros(p), "b": _zeros(p)}

    def update(g, s, p):
        t = s["t"]
        v = decay * s["v"] + (1 - decay) * _sq(g)
        a = decay * s["a"] + (1 - decay) * g
        var = v - _sq(a) if centered else v
        scaled = g / np.sqrt(var + eps) if eps_in_sqrt else g / (np.sqrt(var) + eps)
        if momentum is None:
            direction, b = scaled, s["b"]
        else:
            b = momentum * s["b"] + scaled
            direction = momentum * b + scaled if nesterov else b
        return -_at(lr, t) * direction, {"t": t + 1, "v": v, "a": a, "b": b}

    return init, update


def adagrad(lr, initial_accumulator_value=0.1, eps=1e-7):
    """Adagrad (Duchi, Hazan, Singer 2011): s_t = s_{t-1} + |g_t|^2,
    step -lr g_t / sqrt(s_t + eps), s_0 = initial_accumulator_value."""

    def init(p):
        return {"t": 0, "s": _real_zeros(p) + initial_accumulator_value}

    def update(g, st, p):
        s = st["s"] + _sq(g)
        return -_at(lr, st["t"]) * g / np.sqrt(s + eps), {"t": st["t"] + 1, "s": s}

    return init, update


def adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    """Adadelta (Zeiler 2012, Algorithm 1) with a learning rate and L2 decay.

    g_t <- g_t + wd p_{t-1},
    E[g^2]_t = rho E[g^2]_{t-1} + (1 - rho) |g_t|^2,
    dx_t = sqrt(E[dx^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) * g_t,
    E[dx^2]_t = rho E[dx^2]_{t-1} + (1 - rho) |dx_t|^2,
    step: -lr dx_t (lr = 1 is the paper).
    """

    def init(p):
        return {"t": 0, "eg": _real_zeros(p), "ex": _real_zeros(p)}

    def update(g, s, p):
        g = g + weight_decay * p
        eg = rho * s["eg"] + (1 - rho) * _sq(g)
        dx = np.sqrt(s["ex"] + eps) / np.sqrt(eg + eps) * g
        ex = rho * s["ex"] + (1 - rho) * _sq(dx)
        return -_at(lr, s["t"]) * dx, {"t": s["t"] + 1, "eg": eg, "ex": ex}

    return init, update


def adam(lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=0.0, decay=True):
    """Adam (Kingma & Ba 2015, Algorithm 1), eps outside the root, eps_root inside.

    m_t = b1 m_{t-1} + (1 - b1) g_t,     m_hat = m_t / (1 - b1^t),
    v_t = b2 v_{t-1} + (1 - b2) |g_t|^2, v_hat = v_t / (1 - b2^t),
    step: -lr (m_hat / (sqrt(v_hat + eps_root) + eps) + wd p_{t-1})
    with t counted from 1.  A weight decay wd != 0 is AdamW (Loshchilov &
    Hutter 2019): decoupled from the gradient and multiplied by lr; ``decay``
    False exempts this leaf (a mask).
    """

    def init(p):
        return {"t": 0, "m": _zeros(p), "v": _real_zeros(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * _sq(g)
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        direction = m_hat / (np.sqrt(v_hat + eps_root) + eps)
        if decay:
            direction = direction + _at(weight_decay, t - 1) * p
        return -_at(lr, t - 1) * direction, {"t": t, "m": m, "v": v}

    return init, update


def adamw(lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=1e-4, decay=True):
    """AdamW (Loshchilov & Hutter 2019, Algorithm 2 with eta_t = lr): see ``adam``."""
    return adam(lr, b1, b2, eps, eps_root, weight_decay=weight_decay, decay=decay)


def amsgrad(lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, max_before_correction=False):
    """AMSGrad (Reddi, Kale, Kumar 2018) with Adam's bias corrections.

    m_hat, v_t as in Adam;
    vmax_t = max(vmax_{t-1}, v_t / (1 - b2^t))             (maximum of the corrected v), or
    vmax_t = max(vmax_{t-1}, v_t), used as vmax_t / (1 - b2^t)  (maximum before correction);
    step: -lr m_hat / (sqrt(vmax + eps_root) + eps).
    """

    def init(p):
        return {"t": 0, "m": _zeros(p), "v": _real_zeros(p), "vmax": _real_zeros(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * _sq(g)
        if max_before_correction:
            vmax = np.maximum(s["vmax"], v)
            denom_v = vmax / (1 - b2**t)
        else:
            vmax = np.maximum(s["vmax"], v / (1 - b2**t))
            denom_v = vmax
        u = -_at(lr, t - 1) * (m / (1 - b1**t)) / (np.sqrt(denom_v + eps_root) + eps)
        return u, {"t": t, "m": m, "v": v, "vmax": vmax}

    return init, update


# ----------------------------------------------------------------------------
# Transforms, each on its own (its input is the gradient).


def scale(step_size):
    """u_t = c g_t."""
    return (lambda p: {}), (lambda g, s, p: (step_size * g, s))


def scale_by_learning_rate(lr, flip_sign=True):
    """u_t = -lr(t) g_t with t = 0 at the first step (+lr(t) g_t without the flip)."""
    sign = -1.0 if flip_sign else 1.0

    def update(g, s, p):
        return sign * _at(lr, s["t"]) * g, {"t": s["t"] + 1}

    return (lambda p: {"t": 0}), update


def momentum(decay, ema=False, nesterov=False):
    """m_t = d m_{t-1} + c g_t with c = 1 - d (EMA) or 1 (heavy ball);
    u_t = m_t, or d m_t + c g_t (Nesterov)."""
    c = (1 - decay) if ema else 1.0

    def update(g, s, p):
        m = decay * s["m"] + c * g
        return (decay * m + c * g if nesterov else m), {"m": m}

    return (lambda p: {"m": _zeros(p)}), update


def bias_correction(decay):
    """u_t = g_t / (1 - d^t), t = 1 at the first step."""

    def update(g, s, p):
        t = s["t"] + 1
        return g / (1 - decay**t), {"t": t}

    return (lambda p: {"t": 0}), update


def scale_by_rms(decay, eps, eps_root=0.0, bias_correction=False, initial_scale=0.0):
    """v_t = d v_{t-1} + (1 - d) |g_t|^2 (v_0 = initial_scale),
    v_hat = v_t / (1 - d^t) if corrected, u_t = g_t / (sqrt(v_hat + eps_root) + eps)."""

    def init(p):
        return {"t": 0, "v": _real_zeros(p) + initial_scale}

    def update(g, s, p):
        t = s["t"] + 1
        v = decay * s["v"] + (1 - decay) * _sq(g)
        v_hat = v / (1 - decay**t) if bias_correction else v
        return g / (np.sqrt(v_hat + eps_root) + eps), {"t": t, "v": v}

    return init, update


def scale_by_centered_rms(decay, eps, eps_root=0.0, bias_correction=False, initial_scale=0.0):
    """a_t = d a_{t-1} + (1 - d) g_t, v_t = d v_{t-1} + (1 - d) |g_t|^2 (both
    divided by 1 - d^t if corrected), u_t = g_t / (sqrt(v_t - |a_t|^2 + eps_root) + eps)."""

    def init(p):
        return {"t": 0, "a": _zeros(p), "v": _real_zeros(p) + initial_scale}

    def update(g, s, p):
        t = s["t"] + 1
        a = decay * s["a"] + (1 - decay) * g
        v = decay * s["v"] + (1 - decay) * _sq(g)
        c = (1 - decay**t) if bias_correction else 1.0
        var = v / c - _sq(a / c)
        return g / (np.sqrt(var + eps_root) + eps), {"t": t, "a": a, "v": v}

    return init, update


def scale_by_rss(initial_accumulator_value, eps, eps_root):
    """s_t = s_{t-1} + |g_t|^2 (s_0 = initial_accumulator_value),
    u_t = g_t / (sqrt(s_t + eps_root) + eps)."""

    def init(p):
        return {"s": _real_zeros(p) + initial_accumulator_value}

    def update(g, st, p):
        s = st["s"] + _sq(g)
        return g / (np.sqrt(s + eps_root) + eps), {"s": s}

    return init, update


def scale_by_adadelta(rho, eps):
    """Zeiler's Algorithm 1 without the learning rate: u_t = dx_t (see ``adadelta``)."""
    init, update = adadelta(-1.0, rho, eps)  # -lr * dx with lr = -1 is +dx
    return init, update


def scale_by_max_rms(decay, eps, eps_root=0.0, bias_correction=True, max_before_correction=False):
    """v_t = d v_{t-1} + (1 - d) |g_t|^2; c_t = 1 - d^t (1 without correction);
    vmax_t = max(vmax_{t-1}, v_t / c_t), u_t = g_t / (sqrt(vmax_t + eps_root) + eps);
    before correction: vmax_t = max(vmax_{t-1}, v_t) and the root is of vmax_t / c_t."""

    def init(p):
        return {"t": 0, "v": _real_zeros(p), "vmax": _real_zeros(p)}

    def update(g, s, p):
        t = s["t"] + 1
        c = (1 - decay**t) if bias_correction else 1.0
        v = decay * s["v"] + (1 - decay) * _sq(g)
        if max_before_correction:
            vmax = np.maximum(s["vmax"], v)
            denom_v = vmax / c
        else:
            vmax = np.maximum(s["vmax"], v / c)
            denom_v = vmax
        return g / (np.sqrt(denom_v + eps_root) + eps), {"t": t, "v": v, "vmax": vmax}

    return init, update


def add_decayed_weights(weight_decay, decay=True):
    """u_t = g_t + wd(t) p_t for a decayed leaf (``decay``), u_t = g_t otherwise."""

    def update(g, s, p):
        u = g + _at(weight_decay, s["t"]) * p if decay else g
        return u, {"t": s["t"] + 1}

    return (lambda p: {"t": 0}), update
