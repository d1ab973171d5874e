"""Closed-form float64 NumPy references of DiLoCo and SNOO, and their shared problem.

Written from the papers' equations (never by calling gradtx or optax): W
workers, each with its own data, run AdamW from the shared outer parameters;
every H steps the pseudo-gradients Delta_w = theta_outer - theta_w are averaged
and Nesterov momentum SGD moves theta_outer by the average; every worker
restarts from it and keeps its own AdamW state.  Used by ``test_diloco.py``
and by ``diloco_worker.py`` (the 4-device and two-process runs).
"""

from __future__ import annotations

import numpy as np

SHAPES = {"w": (3, 2), "b": (2,)}
WORKERS = 4
STEPS = 7
SYNC = 3
INNER = dict(learning_rate=0.05, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.1)
OUTER = dict(learning_rate=0.7, momentum=0.9)


def problem(workers=WORKERS, steps=STEPS, seed=0):
    """Start params (the same on every worker), per-worker curvatures a_w and per-step
    targets c_{w,t}: worker w's gradient at step t is a_w * (theta - c_{w,t})."""
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    curv = {k: 0.5 + rng.random((workers, *s)) for k, s in SHAPES.items()}
    targets = {k: rng.standard_normal((steps, workers, *s)) for k, s in SHAPES.items()}
    return params, curv, targets


def adamw_step(g, p, m, v, t, learning_rate, b1, b2, eps, weight_decay):
    """One AdamW step (decoupled decay, eps outside the root): returns (u, m, v)."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    return -learning_rate * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * p), m, v


def diloco(params, curv, targets, sync=SYNC, inner=INNER, outer=OUTER):
    """The W workers' params after every step, as arrays shaped (steps, W, ...) per key."""
    steps, workers = next(iter(targets.values())).shape[:2]
    lr, mu = outer["learning_rate"], outer["momentum"]
    out = {}
    for k, p0 in params.items():
        theta = np.broadcast_to(p0, (workers, *p0.shape)).copy()
        m, v = np.zeros_like(theta), np.zeros_like(theta)
        phi, b = p0.copy(), np.zeros_like(p0)
        history = []
        for t in range(steps):
            g = curv[k] * (theta - targets[k][t])
            u, m, v = adamw_step(g, theta, m, v, t + 1, **inner)
            theta = theta + u
            if (t + 1) % sync == 0:
                delta = np.mean(phi - theta, axis=0)
                b = mu * b + delta
                phi = phi - lr * (mu * b + delta)
                theta = np.broadcast_to(phi, theta.shape).copy()
            history.append(theta.copy())
        out[k] = np.stack(history)
    return out


def snoo(params, curv, targets, k_steps, learning_rate, momentum, inner=INNER):
    """SNOO in its paper's notation, one worker (the first of ``problem``'s): K AdamW steps on
    the fast weights w~ from the slow weights w, then s = w - w~, b = mu b + s,
    w = w - eta (mu b + s), w~ = w.  The fast weights after every step, per key."""
    steps = next(iter(targets.values())).shape[0]
    out = {}
    for k, p0 in params.items():
        slow, fast = p0.copy(), p0.copy()
        m, v, b = np.zeros_like(p0), np.zeros_like(p0), np.zeros_like(p0)
        history = []
        for t in range(steps):
            g = curv[k][0] * (fast - targets[k][t, 0])
            u, m, v = adamw_step(g, fast, m, v, t + 1, **inner)
            fast = fast + u
            if (t + 1) % k_steps == 0:
                s = slow - fast
                b = momentum * b + s
                slow = slow - learning_rate * (momentum * b + s)
                fast = slow.copy()
            history.append(fast.copy())
        out[k] = np.stack(history)
    return out
