"""Closed-form float64 NumPy references of one optimizer family.

References for the matrix methods: Muon (Newton-Schulz, Polar Express), NorMuon, SOAP, Shampoo,
PSGD-Kron and GaLore.
Written from the papers' equations (never by calling gradtx or optax), in the
form of ``tests/reference.py``: a pair ``init(p) -> state``,
``update(g, state, p) -> (u, state)`` on one array, lifted to leaves by
``reference.tree``, or on the list of leaves for the rules that couple
leaves (global norms, noise keyed over the tree, wrappers of another
reference).
"""

from __future__ import annotations

import numpy as np

JORDAN = (3.4445, -4.7750, 2.0315)


def newton_schulz(x, coeffs=JORDAN, steps=5, eps=1e-8):
    """X_0 = X / (||X||_F + eps); X <- a X + b (X X^T) X + c (X X^T)^2 X, on the wide orientation."""
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (np.linalg.norm(x) + eps)
    schedule = [coeffs] * steps if np.ndim(coeffs) == 1 else list(coeffs)
    for a, b, c in schedule:
        gram = x @ x.T
        x = a * x + b * gram @ x + c * gram @ gram @ x
    return x.T if tall else x


def polar_express(x, steps=5, safety=1.01, eps=1e-7):
    """Amsel et al. (2025), Algorithm 1 in float64: X_0 = X / (1.01 ||X||_F + eps), then the
    per-iteration optimal quintics (all but the last divided by safety, safety^3, safety^5;
    the last repeated), on the wide orientation."""
    table = [
        (8.28721201814563, -23.595886519098837, 17.300387312530933),
        (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
        (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
        (3.3184196573706015, -2.488488024314874, 0.51004894012372),
        (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
        (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
        (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    ]
    table = [(a / safety, b / safety**3, c / safety**5) for a, b, c in table]
    table.append((1.875, -1.25, 0.375))
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (np.linalg.norm(x) * 1.01 + eps)
    for k in range(steps):
        a, b, c = table[min(k, len(table) - 1)]
        gram = x @ x.T
        x = a * x + b * gram @ x + c * gram @ gram @ x
    return x.T if tall else x


def svd_polar(x):
    u, _, vh = np.linalg.svd(x, full_matrices=False)
    return u @ vh


def nadamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, nesterov=True):
    """AdamW with NAdam's look-ahead numerator b1 m_t / (1 - b1^(t+1)) + (1 - b1) g_t / (1 - b1^t)
    (Dozat 2016 with a constant b1; optax's adamw(nesterov=True))."""

    def init(p):
        return {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p)}

    def update(g, s, p):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g * g
        if nesterov:
            m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        u = -lr * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * p)
        return u, {"t": t, "m": m, "v": v}

    return init, update


def muon(
    lr,
    beta=0.95,
    weight_decay=0.0,
    nesterov=True,
    consistent_rms=None,
    polar=None,
    adam_lr=None,
    eps=1e-8,
):
    """Muon (Jordan 2024; optax's form): for a matrix W of shape (fan_in, fan_out),

    m_t = beta m_{t-1} + (1 - beta) g_t,
    m_hat = beta m_t / (1 - beta^(t+1)) + (1 - beta) g_t / (1 - beta^t)  (nesterov) or m_t / (1 - beta^t),
    O_t = NS_5(m_hat),  s = sqrt(max(1, fan_out / fan_in)) or consistent_rms sqrt(max(fan_in, fan_out)),
    step: -lr (s O_t + weight_decay W).
    Leaves that are not 2-D: NAdamW (nesterov) or AdamW, with lr ``adam_lr``.
    """
    polar = polar or (lambda x: newton_schulz(x, eps=eps))
    adam_init, adam_update = nadamw(lr if adam_lr is None else adam_lr, eps=eps, nesterov=nesterov)

    def init(p):
        if np.ndim(p) != 2:
            return adam_init(p)
        return {"t": 0, "m": np.zeros_like(p)}

    def update(g, s, p):
        if np.ndim(p) != 2:
            return adam_update(g, s, p)
        t = s["t"] + 1
        m = beta * s["m"] + (1 - beta) * g
        if nesterov:
            m_hat = beta * m / (1 - beta ** (t + 1)) + (1 - beta) * g / (1 - beta**t)
        else:
            m_hat = m / (1 - beta**t)
        fan_in, fan_out = p.shape
        if consistent_rms is None:
            scale = np.sqrt(max(1.0, fan_out / fan_in))
        else:
            scale = consistent_rms * np.sqrt(max(fan_in, fan_out))
        u = -lr * (scale * polar(m_hat) + weight_decay * p)
        return u, {"t": t, "m": m}

    return init, update


def _gram(g, axis):
    others = [a for a in range(g.ndim) if a != axis]
    return np.tensordot(g, g, axes=(others, others))


def _rotate(x, bases, forward=True):
    """Multiply every rotated axis a of x by Q_a^T (forward) or Q_a (back)."""
    for axis, q in bases.items():
        x = np.moveaxis(np.tensordot(x, q, axes=([axis], [0 if forward else 1])), -1, axis)
    return x


def soap(
    lr,
    b1=0.95,
    b2=0.95,
    shampoo_beta=None,
    eps=1e-8,
    weight_decay=0.0,
    frequency=10,
    max_dim=10000,
    precondition_1d=False,
):
    """SOAP for one leaf of any rank: for each rotated axis a,
    S_a <- s S_a + (1 - s) G_(a) G_(a)^T, Q_a its eigenvectors (descending);
    t = 1: set up S, Q (eigh), step -lr wd p only;  t > 1, k = t - 1:
    G' = G x_a Q_a^T,  m = b1 m + (1 - b1) G,  v = b2 v + (1 - b2) G'^2,
    step -lr (sqrt(1 - b2^k) / (1 - b1^k) (m x_a Q_a^T / (sqrt(v) + eps)) x_a Q_a + wd p),
    then S takes G; if k % frequency == 0: P = S_a Q_a, sort its columns by diag(Q_a^T P)
    descending (v along axis a follows), Q_a = qr(P).Q."""
    s_beta = b2 if shampoo_beta is None else shampoo_beta

    def axes(p):
        if np.ndim(p) == 1 and not precondition_1d:
            return []
        return [a for a, d in enumerate(np.shape(p)) if d <= max_dim]

    def init(p):
        p = np.asarray(p)
        return {
            "t": 0,
            "m": np.zeros_like(p),
            "v": np.zeros_like(p),
            "S": {a: np.zeros((p.shape[a],) * 2) for a in axes(p)},
            "Q": {},
        }

    def update(g, st, p):
        g = np.asarray(g)
        t = st["t"] + 1
        S = {a: s_beta * S + (1 - s_beta) * _gram(g, a) for a, S in st["S"].items()}
        if t == 1:
            Q = {a: np.linalg.eigh(S[a])[1][:, ::-1] for a in S}
            return -lr * weight_decay * p, {**st, "t": t, "S": S, "Q": Q}
        k, Q = t - 1, st["Q"]
        m = b1 * st["m"] + (1 - b1) * g
        v = b2 * st["v"] + (1 - b2) * _rotate(g, Q) ** 2
        c = np.sqrt(1 - b2**k) / (1 - b1**k)
        u = -lr * (
            c * _rotate(_rotate(m, Q) / (np.sqrt(v) + eps), Q, forward=False) + weight_decay * p
        )
        if k % frequency == 0:
            newQ = {}
            for a in S:
                P = S[a] @ Q[a]
                order = np.argsort(-np.sum(Q[a] * P, axis=0), kind="stable")
                v = np.take(v, order, axis=a)
                newQ[a] = np.linalg.qr(P[:, order])[0]
            Q = newQ
        return u, {"t": t, "m": m, "v": v, "S": S, "Q": Q}

    return init, update


def _inverse_root(h, p):
    values, vectors = np.linalg.eigh(h)
    return (vectors * values ** (-1.0 / p)) @ vectors.T


def shampoo(lr, eps=1e-6, frequency=1, beta2=1.0, precondition_1d=True, graft=None):
    """Shampoo for one leaf with k axes: H_a <- beta2 H_a + G_(a) G_(a)^T (H_a,0 = eps I),
    roots P_a = H_a^(-1/2k) recomputed at t = 1, 1 + f, ...;  D = G x_1 P_1 ... x_k P_k;
    with ``graft`` = (init, update) of a per-leaf step M: D <- D ||M(G)|| / ||D||;
    step -lr D.  Scalars (and vectors unless precondition_1d): D = G."""
    graft_init, graft_update = graft if graft is not None else (None, None)

    def init(p):
        p = np.asarray(p)
        axes = [] if p.ndim == 0 or (p.ndim == 1 and not precondition_1d) else range(p.ndim)
        H = {a: eps * np.eye(p.shape[a]) for a in axes}
        return {"t": 0, "H": H, "P": dict(H), "graft": graft_init(p) if graft else None}

    def update(g, st, p):
        g = np.asarray(g)
        t = st["t"] + 1
        H = {a: beta2 * h + _gram(g, a) for a, h in st["H"].items()}
        P = (
            {a: _inverse_root(h, 2 * g.ndim) for a, h in H.items()}
            if (t - 1) % frequency == 0
            else st["P"]
        )
        d = _rotate(g, P)
        graft_state = st["graft"]
        if graft:
            m, graft_state = graft_update(g, graft_state, p)
            nd = np.linalg.norm(d)
            d = d * (np.linalg.norm(m) / nd) if nd > 0 else 0 * d
        return -lr * d, {"t": t, "H": H, "P": P, "graft": graft_state}

    return init, update


def adagrad_step(eps=1e-8):
    """The Adagrad step g / sqrt(s_t + eps), s_t = s_{t-1} + g^2 (s_0 = 0), as a graft magnitude."""

    def init(p):
        return np.zeros_like(np.asarray(p))

    def update(g, s, p):
        s = s + g * g
        return g / np.sqrt(s + eps), s

    return init, update


def _norm_lower_bound(a):
    max_abs = np.max(np.abs(a))
    a = a / (max_abs if max_abs > 0 else 1.0)
    sq = a * a
    col, row = sq.sum(0), sq.sum(1)
    if col.max() > row.max():
        x = a[:, np.argmax(col)] @ a
        return max_abs * np.linalg.norm((x / np.linalg.norm(x)) @ a.T)
    x = a @ a[np.argmax(row), :]
    return max_abs * np.linalg.norm(a.T @ (x / np.linalg.norm(x)))


def _axis_apply(x, m, axis):
    """x with matrix m applied along ``axis``: y_a = sum_b m_ab x_b."""
    return np.moveaxis(np.tensordot(m, x, axes=([1], [axis])), 0, axis)


def psgd_kron(
    lr, probe, b1=0.9, precond_lr=0.1, max_tri=8192, min_ndim_tri=2, tiny=1.1754943508222875e-38
):
    """PSGD-Kron for one leaf (shape () taken as (1,)), fitting every step:
    m = b1 m + (1 - b1) g, h = m / (1 - b1^t), v = probe(t - 1, shape);
    A = h x_a Q_a, B = v x_a Q_a^(-T);  for each a (with the old A, B):
    Q_a <- Q_a - mu triu(A_(a)A_(a)^T - B_(a)B_(a)^T) Q_a / (lb(A A^T + B B^T) + tiny)
    (diagonal factors: elementwise, max norm);
    u = (Q_1^T Q_1) x ... h, scaled by min(1, 1.1 / (rms + 1e-6)); step -lr u."""

    def init(p):
        p = np.asarray(p)
        shape = p.shape or (1,)
        qs = [
            np.ones(d) if (d == 1 or d > max_tri or len(shape) < min_ndim_tri) else np.eye(d)
            for d in shape
        ]
        return {"t": 0, "m": np.zeros_like(p), "Q": qs}

    def update(g, st, p):
        g = np.asarray(g)
        t = st["t"] + 1
        m = b1 * st["m"] + (1 - b1) * g
        shape = g.shape or (1,)
        h = (m / (1 - b1**t)).reshape(shape)
        v = np.asarray(probe(t - 1, g.shape)).reshape(shape)
        A, B = h, v
        for a, q in enumerate(st["Q"]):
            if q.ndim == 1:
                A = A * q.reshape([-1 if i == a else 1 for i in range(len(shape))])
                B = B / q.reshape([-1 if i == a else 1 for i in range(len(shape))])
            else:
                A = _axis_apply(A, q, a)
                B = _axis_apply(B, np.linalg.inv(q).T, a)
        new = []
        for a, q in enumerate(st["Q"]):
            others = tuple(i for i in range(len(shape)) if i != a)
            if q.ndim == 1:
                t1, t2 = (A * A).sum(others), (B * B).sum(others)
                new.append(q - precond_lr * (t1 - t2) * q / (np.max(np.abs(t1 + t2)) + tiny))
            else:
                t1 = np.tensordot(A, A, axes=(others, others))
                t2 = np.tensordot(B, B, axes=(others, others))
                new.append(
                    q - precond_lr * np.triu(t1 - t2) @ q / (_norm_lower_bound(t1 + t2) + tiny)
                )
        u = h
        for a, q in enumerate(new):
            P = np.diag(q * q) if q.ndim == 1 else q.T @ q
            u = _axis_apply(u, P, a)
        u = u.reshape(g.shape)
        u = u * min(1.0, 1.1 / (np.sqrt(np.mean(u * u)) + 1e-6))
        return -lr * u, {"t": t, "m": m, "Q": new}

    return init, update


def normuon(
    lr,
    beta=0.95,
    beta2=0.95,
    eps=1e-10,
    weight_decay=0.0,
    ns_eps=1e-7,
    adam_lr=None,
    adam_b1=0.9,
    adam_b2=0.95,
    adam_eps=1e-10,
):
    """NorMuon (the authors' update, for a weight W of shape (fan_in, fan_out)):
    m = beta m + (1 - beta) g, d = beta m + (1 - beta) g, O = NS_5(d) (eps 1e-7),
    v_j = beta2 v_j + (1 - beta2) mean_i O_ij^2, O' = O / (sqrt(v) + eps),
    O'' = O' ||O||_F / (||O'||_F + eps), step -lr (sqrt(max(1, fan_out / fan_in)) O'' + wd W).
    Other leaves: AdamW (no Nesterov)."""
    adam_init, adam_update = nadamw(
        lr if adam_lr is None else adam_lr, adam_b1, adam_b2, adam_eps, nesterov=False
    )

    def init(p):
        if np.ndim(p) != 2:
            return adam_init(p)
        return {"m": np.zeros_like(p), "v": np.zeros((1, np.shape(p)[1]))}

    def update(g, s, p):
        if np.ndim(p) != 2:
            return adam_update(g, s, p)
        m = beta * s["m"] + (1 - beta) * g
        o = newton_schulz(beta * m + (1 - beta) * g, eps=ns_eps)
        v = beta2 * s["v"] + (1 - beta2) * np.mean(o * o, axis=0, keepdims=True)
        o2 = o / (np.sqrt(v) + eps)
        o2 = o2 * np.linalg.norm(o) / (np.linalg.norm(o2) + eps)
        fan_in, fan_out = np.shape(p)
        u = -lr * (np.sqrt(max(1.0, fan_out / fan_in)) * o2 + weight_decay * p)
        return u, {"m": m, "v": v}

    return init, update


def galore(
    lr,
    dims,
    rank=128,
    gap=200,
    scale=1.0,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    sign=None,
):
    """GaLore (Zhao et al. 2024, Algorithm 2) with Adam in the subspace, and decoupled decay.

    ``dims`` is None (the leaf takes plain Adam steps) or (reduction axes,
    output axes): the leaf, transposed to them, is an m x n matrix G.  At
    steps 1, 1 + gap, ... P = the first r = min(rank, m, n) left singular
    vectors of G (m >= n) or right ones (m < n), R = P^T G or G P; Adam's
    moments (kept across refreshes) give N, and the step is
    -lr (scale P N (or N P^T), reshaped back, + weight_decay p).  ``sign``
    (g, P) -> P picks the singular vectors' signs, which the SVD leaves free.
    """

    def init(p):
        return {"t": 0, "m": None, "v": None, "P": None}

    def update(g, s, p):
        t = s["t"] + 1
        if dims is None:
            r = g
        else:
            order = tuple(dims[0]) + tuple(dims[1])
            moved = np.transpose(g, order)
            rows = int(np.prod([g.shape[a] for a in dims[0]]))
            mat = moved.reshape(rows, -1)
            m_, n_ = mat.shape
            left = m_ >= n_
            proj = s["P"]
            if (t - 1) % gap == 0:
                u, _, vh = np.linalg.svd(mat, full_matrices=False)
                k = min(rank, m_, n_)
                proj = u[:, :k] if left else vh[:k].T
                if sign is not None:
                    proj = sign(mat, proj)
            r = proj.T @ mat if left else mat @ proj
        m = (1 - b1) * r if s["m"] is None else b1 * s["m"] + (1 - b1) * r
        v = (1 - b2) * r**2 if s["v"] is None else b2 * s["v"] + (1 - b2) * r**2
        n = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        if dims is None:
            direction = n
        else:
            full = proj @ n if left else n @ proj.T
            direction = scale * np.transpose(full.reshape(moved.shape), np.argsort(order))
            s = {**s, "P": proj}
        return -lr * (direction + weight_decay * p), {**s, "t": t, "m": m, "v": v}

    return init, update
