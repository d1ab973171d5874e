"""Differential privacy: aggregate per-example gradients with bounded influence and noise.

``differentially_private_aggregate`` is the gradient step of DP-SGD (Abadi
et al., 2016): it takes one gradient per example (a leading batch axis on
every leaf, from ``jax.vmap(jax.grad(loss))``), clips each example's global
norm, sums, adds Gaussian noise and averages.  It must come first in a
chain, since every later transform sees the averaged gradient.  Noise is
drawn as optax draws it, so the same key gives the same noise in both.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from ._accumulation import key_or_seed, raw_key
from ._checks import check_float_leaves, check_range, check_state
from ._clipping import per_example_global_norm_clip
from ._numerics import compute_dtype
from ._recipe import transform


class DifferentiallyPrivateAggregateState(NamedTuple):
    """rng_key: the key the next step's noise is drawn from, as its raw uint32 data (optax's field)."""

    rng_key: jax.Array


@transform(exclude=("key", "seed"))
def differentially_private_aggregate(l2_norm_clip, noise_multiplier, key=None, *, seed=None):
    """DP-SGD's aggregate: u_t = (sum_i g_i min(1, C / ||g_i||) + C * sigma * z_t) / B.

    g_i is example i's gradient (row i of every leaf), ||g_i|| its norm over
    every leaf, B the batch size and z_t ~ N(0, I) drawn per leaf.  The
    state's key is split into the next key and one key per leaf, as in optax.

    Args:
      l2_norm_clip: C, the largest norm one example may contribute, >= 0.
      noise_multiplier: sigma, the noise's standard deviation relative to C, >= 0.
      key: a ``jax.random.key``, a raw ``jax.random.PRNGKey`` or an int seed;
        None: 0 (optax's default).
      seed: an int seed, optax's older spelling of ``key``.

    Returns:
      A transform with state ``DifferentiallyPrivateAggregateState(rng_key)``;
      its updates have no batch axis.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.differentially_private_aggregate(1.0, 0.0, key=0)
      >>> per_example = jnp.array([[3.0, 4.0], [0.3, 0.4]])   # the first is clipped to norm 1
      >>> tx.update(per_example, tx.init(jnp.zeros(2)))[0]
      Array([0.45000002, 0.6       ], dtype=float32)

    Reference: Abadi et al., "Deep Learning with Differential Privacy",
    CCS 2016, arXiv:1607.00133.
    """
    owner = "differentially_private_aggregate"
    check_range(owner, "l2_norm_clip", l2_norm_clip, 0)
    check_range(owner, "noise_multiplier", noise_multiplier, 0)
    key = key_or_seed(owner, key, seed)
    noise_std = l2_norm_clip * noise_multiplier

    def init(params):
        return DifferentiallyPrivateAggregateState(rng_key=raw_key(key))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, DifferentiallyPrivateAggregateState)
        check_float_leaves(owner, updates, "gradient")
        leaves, treedef = jax.tree.flatten(updates)
        clipped, _ = per_example_global_norm_clip(leaves, l2_norm_clip)
        batch = leaves[0].shape[0]
        next_key, *keys = jax.random.split(state.rng_key, len(leaves) + 1)

        def noised(g, k):
            cd = compute_dtype(g.dtype)
            z = jax.random.normal(k, g.shape, g.dtype).astype(cd)
            return ((g.astype(cd) + noise_std * z) / batch).astype(g.dtype)

        out = [noised(g, k) for g, k in zip(clipped, keys)]
        return treedef.unflatten(out), DifferentiallyPrivateAggregateState(rng_key=next_key)

    return init, update
