"""One Muon step: gradtx.muon (same-shape matrices orthogonalized as one batch) vs optax.contrib.muon.

The case is a small transformer-like tree: an embedding (vocab x d), an
output head (d x vocab), ``--layers`` blocks of attention (q, k, v, o:
d x d) and MLP (d x 4d, 4d x d) weights, norm scales and biases.  Both
libraries use their default rule (every 2-D leaf is Muon's, the rest
AdamW's); optax's ``muon`` has no mask, so the embedding and head are
Muon's here too.  gradtx's speed comes from two things: matrices of one
shape (a tall one transposed to join the wide ones) go through one batched
Newton-Schulz iteration, and wide matrices (n > 1.875 m) iterate on their
m x m Gram matrix (``newton_schulz``'s ``gram``), which needs fewer flops.
Each round times one jitted step (update + apply) of each implementation,
in a shuffled order; the ratio is the median of per-round ratios.

Before timing, the two are run side by side for a few steps from the same
start and their parameters compared: they must agree to 1e-6.

    python benchmarks/bench_muon.py --rounds 30 --out benchmarks/results/muon_cpu.md
"""

from __future__ import annotations

import argparse

import _harness as h  # noqa: E402  (puts the repo root on sys.path)
import jax
import jax.numpy as jnp
import numpy as np
import optax  # noqa: E402

import gradtx  # noqa: E402


def transformer(layers, d, vocab, seed=0):
    rng = np.random.default_rng(seed)

    def w(*shape):
        return jnp.asarray(rng.normal(size=shape) / np.sqrt(shape[0]), jnp.float32)

    params = {"embed": w(vocab, d), "head": w(d, vocab), "final_norm": jnp.ones(d)}
    for i in range(layers):
        params[f"block{i}"] = {
            "q": w(d, d),
            "k": w(d, d),
            "v": w(d, d),
            "o": w(d, d),
            "up": w(d, 4 * d),
            "down": w(4 * d, d),
            "up_bias": jnp.zeros(4 * d),
            "norm1": jnp.ones(d),
            "norm2": jnp.ones(d),
        }
    return params


def make_step(tx, apply):
    def step(params, grads, state):
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

    return jax.jit(step, donate_argnums=(0, 2))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    params = transformer(args.layers, args.d, args.vocab)
    rng = np.random.default_rng(1)
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
    impls = {
        "gradtx.muon": (gradtx.muon(0.02), gradtx.apply_updates),
        "optax.contrib.muon": (optax.contrib.muon(0.02), optax.apply_updates),
    }

    # Same numbers: 5 steps each from the same start, gradients changing.
    finals = {}
    for name, (tx, apply) in impls.items():
        step = make_step(tx, apply)
        p, s = jax.tree.map(jnp.copy, params), tx.init(params)
        for k in range(5):
            p, s = step(p, jax.tree.map(lambda g: g * (1.0 + 0.1 * k), grads), s)
        finals[name] = p
    ours, theirs = finals["gradtx.muon"], finals["optax.contrib.muon"]
    diff = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs))
    )

    states, runners = {}, {}
    for name, (tx, apply) in impls.items():
        step = make_step(tx, apply)
        states[name] = [jax.tree.map(jnp.copy, params), tx.init(params)]

        def run(name=name, step=step):
            p, s = states[name]
            p, s = step(p, grads, s)
            states[name] = [p, s]
            h.block(p)

        runners[name] = run
    times = h.interleaved(runners, args.rounds)
    base = times["optax.contrib.muon"]
    rows = [
        [name, h.fmt_ms(t), h.fmt_ratio(h.paired_ratio(t, base)), h.machine()["device"]]
        for name, t in times.items()
    ]
    n_matrices = sum(1 for x in jax.tree.leaves(params) if x.ndim == 2)
    n_shapes = len({x.shape for x in jax.tree.leaves(params) if x.ndim == 2})
    text = "\n\n".join(
        [
            "# One Muon step (update + apply, jitted, donated)",
            f"Command: `python benchmarks/bench_muon.py --layers {args.layers} --d {args.d} "
            f"--vocab {args.vocab} --rounds {args.rounds}`",
            f"Case: {args.layers} transformer blocks, d = {args.d}, vocabulary {args.vocab}: "
            f"{n_matrices} matrices in {n_shapes} shapes, "
            f"{sum(x.size for x in jax.tree.leaves(params))} parameters, float32.",
            f"Same numbers: after 5 steps from the same start the largest parameter difference "
            f"between the two is {diff:.2e} (must be <= 1e-6).",
            "Where the time goes: gradtx orthogonalizes the matrices of one shape as one "
            "batch (a tall matrix transposed to join the wide ones) and iterates wide "
            "matrices (n > 1.875 m) on their m x m Gram matrix; optax runs each leaf on its own.",
            "Times: median [25th-75th percentile] over rounds; ratio: median [25th-75th "
            "percentile] of per-round ratios (both run once per round, shuffled).",
            h.markdown_table(
                ["implementation", "median ms [IQR]", "x optax.contrib.muon", "device"], rows
            ),
            "## Machine\n\n" + h.machine_markdown(h.machine()),
        ]
    )
    h.write_result(args.out, text)
    if diff > 1e-6:
        raise SystemExit(f"bench_muon: the two disagree by {diff:.2e} > 1e-6")


if __name__ == "__main__":
    main()
