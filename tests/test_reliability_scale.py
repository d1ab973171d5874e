"""Wide pytrees: 10,000 leaves through init, naming and checkpoints, and a
jitted Adam step whose compile time is printed (never asserted).

A per-leaf jitted step over all 10,000 leaves is not run here: on XLA:CPU
its compile time grows faster than linearly with the leaf count and takes
many minutes at 10,000 leaves (see benchmarks/many_leaves.py), far beyond
the test budget; the per-leaf step runs on JIT_LEAVES leaves.  All 10,000
leaves do run through ``gradtx.flatten`` with packed params, which compiles
one buffer per dtype in a fraction of a second.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

LEAVES = 10_000
JIT_LEAVES = 500


def _wide(n):
    """{"blockNNN": {"wNN": float32[2]}}, n leaves, 100 per block, distinct values."""
    values = np.arange(2 * n, dtype=np.float32).reshape(n, 2) / n - 0.5
    tree = {}
    for i in range(n):
        tree.setdefault(f"block{i // 100:03d}", {})[f"w{i % 100:02d}"] = jnp.asarray(values[i])
    return tree


def test_ten_thousand_leaf_state_inits_names_and_checkpoints(tmp_path):
    params = _wide(LEAVES)
    opt = gradtx.adam(1e-3)
    state = opt.init(params)
    paths = gradtx.tree_paths(state)
    assert len(paths) == 2 * LEAVES + 2
    assert paths[LEAVES - 1] == "states[0].direction.states[0].mu['block099']['w99']"
    assert gradtx.tree_get(state, "nu['block042']['w07']").shape == (2,)
    training_state = {"params": params, "opt_state": state, "step": 0}
    gradtx.save_checkpoint(tmp_path / "wide.npz", training_state)
    restored = gradtx.load_checkpoint(tmp_path / "wide.npz", training_state)
    assert jax.tree.structure(restored) == jax.tree.structure(training_state)
    for got, want in zip(jax.tree.leaves(restored["params"]), jax.tree.leaves(params)):
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes()


def test_wide_tree_jitted_adam_step_matches_closed_form():
    lr, eps = 1e-3, 1e-8
    params = _wide(JIT_LEAVES)
    grads = jax.tree.map(lambda p: jnp.cos(7 * p), params)
    opt = gradtx.adam(lr, eps=eps)

    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return gradtx.apply_updates(p, u), s

    state = opt.init(params)
    start = time.perf_counter()
    lowered = jax.jit(step).lower(params, state, grads)
    traced = time.perf_counter()
    compiled = lowered.compile()
    done = time.perf_counter()
    print(
        f"\njitted adam step on {JIT_LEAVES} leaves: trace {traced - start:.2f} s, "
        f"compile {done - traced:.2f} s"
    )
    new_params, new_state = compiled(params, state, grads)

    p = np.concatenate([np.asarray(x, np.float64) for x in jax.tree.leaves(params)])
    g = np.concatenate([np.asarray(x, np.float64) for x in jax.tree.leaves(grads)])
    got = np.concatenate([np.asarray(x, np.float64) for x in jax.tree.leaves(new_params)])
    # Step 1 of Adam: m_hat = g and v_hat = g^2, so p_1 = p_0 - lr * g / (|g| + eps).
    # The bias correction 1 - b2^t is formed in float32 from b2 = 0.999 rounded
    # to float32 (as optax does), off by 1.3e-5 relative at t = 1; hence 1e-5 * lr.
    np.testing.assert_allclose(got, p - lr * g / (np.abs(g) + eps), rtol=1e-6, atol=1e-5 * lr)
    assert [int(c) for c in jax.tree.leaves(new_state) if c.dtype == jnp.int32] == [1, 1]


def test_ten_thousand_leaf_tree_packed_adam_steps_match_closed_form():
    """10,000 leaves through gradtx.flatten with packed params: compiles in well under a second.

    The per-leaf path compiles 10,000 separate kernels (XLA:CPU takes minutes
    and >10 GB there); packing gives the step one buffer per dtype.
    """
    n_leaves, lr = 10_000, 1e-3
    rng = np.random.default_rng(0)
    params = {
        f"layer{i}": jnp.asarray(rng.normal(size=(1 + i % 7,)), jnp.float32)
        for i in range(n_leaves)
    }
    opt = gradtx.flatten(gradtx.adam(lr))
    packed = gradtx.pack(params)
    state = opt.init(packed)

    def step(p, s):
        grads = jax.tree.map(lambda x: 2 * x, p)  # d/dp of sum(p^2), packed like p
        updates, s = opt.update(grads, s, p)
        return gradtx.apply_updates(p, updates), s

    start = time.perf_counter()
    compiled = jax.jit(step).lower(packed, state).compile()
    print(f"\n10,000-leaf packed adam step: compiled in {time.perf_counter() - start:.2f} s")
    p, s = packed, state
    for _ in range(2):
        p, s = compiled(p, s)
    # Closed form: Adam's first two steps on f = sum(p^2), float64 NumPy, element by element.
    b1, b2, eps = 0.9, 0.999, 1e-8
    got = p.unpack()
    keys = list(params)
    x = np.concatenate([np.asarray(params[k], np.float64) for k in keys])
    m = v = np.zeros_like(x)
    for t in (1, 2):
        g = 2 * x
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    result = np.concatenate([np.asarray(got[k], np.float64) for k in keys])
    assert np.max(np.abs(result - x)) < 1e-6
