"""Float64 NumPy transcriptions of SPAM, Stable-SPAM and CAME, from their papers.

Each is a loop over a list of parameter arrays, written from the published
update rules (and pytorch-optimizer's reading of them), independently of
gradtx's transforms.  ``torch_style`` switches to pytorch-optimizer's two
conventions that gradtx does not share (SPAM's eps on sqrt(v) and weight
decay after the step), so the transcription itself is checked against
pytorch-optimizer in float64.
"""

from __future__ import annotations

import math

import numpy as np


class Spam:
    """SPAM (arXiv:2501.06842): spike clipping against v_{t-1}, Adam, a moment reset every
    ``gap`` steps and a cosine warm-up of ``warmup`` steps after it."""

    def __init__(
        self,
        lr,
        b1=0.9,
        b2=0.999,
        weight_decay=0.0,
        warmup=50,
        threshold=5000.0,
        accu=20,
        gap=500,
        eps=1e-6,
        torch_style=False,
    ):
        self.__dict__.update(locals())
        self.t = 0
        self.m = self.v = None
        self.clipped = 0
        self.resets = 0

    def scale(self):
        k = self.t % self.gap
        if self.t >= self.gap and k < self.warmup:
            return 1 - 0.99 * (1 + math.cos(math.pi * (k + 1) / (self.warmup + 1))) / 2
        return 1.0

    def step(self, params, grads):
        self.t += 1
        t = self.t
        if self.m is None or t % self.gap == 0:
            self.resets += self.m is not None
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        clip = self.threshold != 0 and t >= self.accu and t % self.gap >= self.accu
        bc1, bc2 = 1 - self.b1**t, 1 - self.b2**t
        out = []
        for i, (p, g) in enumerate(zip(params, grads)):
            g = g.copy()
            if clip:
                spike = g**2 > self.threshold * self.v[i]
                self.clipped += int(spike.sum())
                g[spike] = np.sign(g[spike]) * np.sqrt(self.threshold * self.v[i][spike])
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            if self.torch_style:
                adam = self.m[i] / bc1 * math.sqrt(bc2) / (np.sqrt(self.v[i]) + self.eps)
                p = p - self.lr * self.scale() * adam
                p = p * (1 - self.lr * self.weight_decay)
            else:
                adam = (self.m[i] / bc1) / (np.sqrt(self.v[i] / bc2) + self.eps)
                p = p - self.lr * (self.scale() * adam + self.weight_decay * p)
            out.append(p)
        return out


class StableSpam:
    """Stable-SPAM (arXiv:2502.17055): AdaClip (running max |g|), AdaGN (running norm
    moments), Adam restarted with its bias correction every ``gap`` steps."""

    def __init__(
        self,
        lr,
        b1=0.9,
        b2=0.999,
        gamma1=0.7,
        gamma2=0.9,
        theta=0.999,
        weight_decay=0.0,
        gap=1000,
        eps=1e-8,
    ):
        self.__dict__.update(locals())
        self.t = 0
        self.k = 0
        self.state = None
        self.clipped = 0
        self.resets = 0

    def step(self, params, grads):
        self.t += 1
        t = self.t
        if self.state is None:
            self.state = [dict(m=0 * p, v=0 * p, mmax=0.0, mn=0.0, vn=0.0) for p in params]
        if t % self.gap == 0:
            self.k = 1
            self.resets += 1
            for s in self.state:
                s["m"], s["v"] = 0 * s["m"], 0 * s["v"]
        else:
            self.k += 1
        out = []
        for p, g, s in zip(params, grads, self.state):
            g = g.copy()
            p = p * (1 - self.lr * self.weight_decay)
            largest = np.max(np.abs(g))
            s["mmax"] = self.theta * s["mmax"] + (1 - self.theta) * largest
            mmax_hat = s["mmax"] / (1 - self.theta**t)
            big = np.abs(g) > mmax_hat
            self.clipped += int(big.sum())
            g[big] = g[big] / largest * mmax_hat
            norm = np.sqrt(np.sum(g * g))
            s["mn"] = self.gamma1 * s["mn"] + (1 - self.gamma1) * norm
            s["vn"] = self.gamma2 * s["vn"] + (1 - self.gamma2) * norm**2
            c = (s["mn"] / (1 - self.gamma1**t)) / (
                np.sqrt(s["vn"] / (1 - self.gamma2**t)) + self.eps
            )
            g = g / norm * c
            s["m"] = self.b1 * s["m"] + (1 - self.b1) * g
            s["v"] = self.b2 * s["v"] + (1 - self.b2) * g * g
            bc1, bc2 = 1 - self.b1**self.k, 1 - self.b2**self.k
            out.append(p - self.lr / bc1 * s["m"] / (np.sqrt(s["v"]) / math.sqrt(bc2) + self.eps))
        return out


def _factored_inverse_root(r, c):
    """(r_i c_j / mean(r))^(-1/2): Adafactor's rank-one reconstruction, inverted."""
    return 1 / np.sqrt(np.outer(r / r.mean(), c))


class Came:
    """CAME (arXiv:2307.02047): Adafactor's factored v (last two axes), RMS clip, momentum,
    and the factored confidence of the residual (u - m)^2 for matrices."""

    def __init__(
        self,
        lr,
        b1=0.9,
        b2=0.999,
        b3=0.9999,
        weight_decay=0.0,
        clip_threshold=1.0,
        eps1=1e-30,
        eps2=1e-16,
    ):
        self.__dict__.update(locals())
        self.state = None

    def step(self, params, grads):
        if self.state is None:
            self.state = [
                dict(m=0 * p, r=np.zeros(p.shape[0]), c=np.zeros(p.shape[1]), rr=0, rc=0)
                if p.ndim == 2
                else dict(m=0 * p, v=0 * p)
                for p in params
            ]
        b1, b2, b3 = self.b1, self.b2, self.b3
        out = []
        for p, g, s in zip(params, grads, self.state):
            sq = g * g + self.eps1
            if p.ndim == 2:
                s["r"] = b2 * s["r"] + (1 - b2) * sq.mean(axis=1)
                s["c"] = b2 * s["c"] + (1 - b2) * sq.mean(axis=0)
                u = g * _factored_inverse_root(s["r"], s["c"])
            else:
                s["v"] = b2 * s["v"] + (1 - b2) * sq
                u = g / np.sqrt(s["v"])
            u = u / max(1.0, np.sqrt(np.mean(u * u)) / self.clip_threshold)
            s["m"] = b1 * s["m"] + (1 - b1) * u
            if p.ndim == 2:
                res = (u - s["m"]) ** 2 + self.eps2
                s["rr"] = b3 * s["rr"] + (1 - b3) * res.mean(axis=1)
                s["rc"] = b3 * s["rc"] + (1 - b3) * res.mean(axis=0)
                update = s["m"] * _factored_inverse_root(s["rr"], s["rc"])
            else:
                update = s["m"]
            out.append(p - self.lr * (update + self.weight_decay * p))
        return out
