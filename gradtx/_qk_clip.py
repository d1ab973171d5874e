"""QK-clip: shrink the query and key projections of attention heads whose logits grew too large.

The model measures, for each attention head h, the largest pre-softmax
logit S_h = max_{i,j} q_i . k_j of the step and passes these to the update
as the extra keyword ``max_logits``; ``qk_clip`` then rescales the new
query weights of head h by gamma_h^alpha and its key weights by
gamma_h^(1 - alpha), gamma_h = min(1, tau / S_h), so that the product
q . k, and with it the logit, shrinks by gamma_h.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._base import EmptyState
from ._checks import check_range, check_state
from ._lmo import _per_leaf
from ._numerics import compute_dtype
from ._paths import _key_value
from ._recipe import transform
from ._tree import path_str

QK_ROLES = ("query", "key", "query_rotary", "key_rotary")


def _key(path):
    return tuple((type(v), v) for v in map(_key_value, path))


@transform(exclude=("labels", "head_axis"))
def qk_clip(labels, threshold=100.0, alpha=0.5, *, head_axis=1):
    """QK-clip: W_q <- gamma^alpha W_q, W_k <- gamma^(1 - alpha) W_k after the step, gamma = min(1, tau / S).

    The incoming updates u are turned into (p + u) * s - p, s the leaf's
    factor, so that the parameters after ``apply_updates`` are the clipped
    new weights; where s = 1 (no clipping) u passes unchanged.  ``max_logits``
    (the extra keyword of ``update``) is a pytree whose leaves are the
    largest attention logits S: one per head (a vector of length H) or one
    for the layer (a scalar).  A leaf labelled ``"query"`` or ``"key"`` takes
    the entry of ``max_logits`` at its own path or at the nearest enclosing
    path (so ``{"layer_0": {"attn": s}}`` serves ``layer_0/attn/query`` and
    ``layer_0/attn/key``); a leaf without an entry, and every leaf when
    ``max_logits`` is absent, passes unchanged.  Per head, the leaf's
    ``head_axis`` (axis 0 for vectors, such as biases) is split into H equal
    contiguous blocks, head h's block scaled by s_h.  For Multi-head Latent
    Attention (Kimi K2) ``"query_rotary"`` scales by gamma and
    ``"key_rotary"`` (shared by the heads) is never scaled.  This is the
    only transform that changes the parameters beyond the step: it needs
    ``params`` and comes last.

    Args:
      labels: the role of each leaf, ``"query"``, ``"key"``,
        ``"query_rotary"``, ``"key_rotary"`` or None (not
        clipped): a pytree shaped like the params or a prefix of them, or a
        function ``params -> that pytree``.
      threshold: tau, > 0.
      alpha: the query's share of the rescaling, in [0, 1].
      head_axis: the axis of a weight that holds its heads: 1 for ``x @ W``
        weights of shape (d_model, H * d_head) or (d_model, H, d_head), 0 for
        PyTorch's (H * d_head, d_model).

    Returns:
      A stateless transform.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.qk_clip({"q": "query", "k": "key"}, threshold=10.0)
      >>> p = {"q": jnp.ones((2, 2)), "k": jnp.ones((2, 2))}
      >>> g = {"q": jnp.zeros((2, 2)), "k": jnp.zeros((2, 2))}
      >>> u, _ = tx.update(g, tx.init(p), p, max_logits={"q": 40.0, "k": 40.0})
      >>> gradtx.apply_updates(p, u)["q"][0, 0]
      Array(0.5, dtype=float32)

    Reference: Kimi Team, "Kimi K2: Open Agentic Intelligence", 2025,
    arXiv:2507.20534, Algorithm 1 (MuonClip).
    """
    owner = "qk_clip"
    check_range(owner, "threshold", threshold, 0, low_open=True)
    check_range(owner, "alpha", alpha, 0, 1)
    exponents = {"query": alpha, "key": 1 - alpha, "query_rotary": 1.0, "key_rotary": None}

    def check_role(role):
        if role is not None and role not in QK_ROLES:
            raise ValueError(
                f"{owner}: labels must be None or one of {list(QK_ROLES)}, got {role!r}"
            )
        return role

    def update(updates, state, params=None, max_logits=None, **extra):
        check_state(owner, state, EmptyState)
        if max_logits is None:
            return updates, state
        flat, treedef = jax.tree_util.tree_flatten_with_path(updates)
        roles = _per_leaf(
            owner, "labels", labels, updates if params is None else params, check_role
        )
        logits = {_key(p): m for p, m in jax.tree_util.tree_flatten_with_path(max_logits)[0]}
        p_leaves = None if params is None else jax.tree.leaves(params)
        out = []
        for i, ((path, u), role) in enumerate(zip(flat, roles)):
            key = _key(path)
            found = [key[:n] for n in range(len(key), -1, -1) if key[:n] in logits]
            if exponents.get(role) is None or not found:
                out.append(u)
                continue
            name = path_str(path)
            if p_leaves is None:
                raise ValueError(
                    f"{owner}: leaf {name} ({role}) has max_logits but update got no params; "
                    f"QK-clip rescales the weights: call update(grads, state, params, max_logits=...)"
                )
            p = p_leaves[i]
            s = jnp.asarray(logits[found[0]], compute_dtype(p.dtype))
            s = (threshold / jnp.maximum(s, threshold)) ** exponents[role]
            if s.ndim > 1:
                raise ValueError(
                    f"{owner}: max_logits for {name} must be a scalar or one per head, "
                    f"got shape {s.shape}"
                )
            if s.ndim == 1:
                axis = head_axis if p.ndim > 1 else 0
                size = p.shape[axis]
                if s.shape[0] == 0 or size % s.shape[0]:
                    raise ValueError(
                        f"{owner}: leaf {name} has {size} entries along its head axis {axis}, "
                        f"not a multiple of the {s.shape[0]} heads of its max_logits"
                    )
                s = jnp.repeat(s, size // s.shape[0])
                s = s.reshape((size,) + (1,) * (p.ndim - 1 - axis % p.ndim))
            s = s.astype(p.dtype)
            clipped = ((p + u) * s - p).astype(u.dtype)
            out.append(jnp.where(s == 1, u, clipped))
        return treedef.unflatten(out), state

    return lambda params: EmptyState(), update
