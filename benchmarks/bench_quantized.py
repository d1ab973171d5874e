"""Quantized optimizer state: bytes per parameter, step time, quality, and bitsandbytes.

    python benchmarks/bench_quantized.py --out benchmarks/results/quantized_cpu.md

1. Bytes of optimizer state per parameter (from ``jax.eval_shape``, nothing
   runs) for adam, adamw, lion, muon and soap: float32, bfloat16 moments
   (``mu_dtype``/``nu_dtype`` where the optimizer takes them), and
   ``quantized_state`` at 8 and 4 bits (default block 256, min_size 4096).
2. Step time of jitted 8-bit and 4-bit Adam over the float32 step (update +
   apply, params and state donated), medians of paired rounds, a few sizes.
3. Quality: steps for a 3-layer MLP regressing a fixed random teacher on
   synthetic data to reach a target loss, Adam in float32 / 8-bit / 4-bit, 3 seeds.
4. bitsandbytes' 8-bit Adam (where it imports) against torch's float32 Adam
   and gradtx's 8-bit Adam on one quadratic.
"""

from __future__ import annotations

import argparse
import time

import _harness as H
import jax
import jax.numpy as jnp
import numpy as np

import gradtx

BF16 = jnp.bfloat16


# ----------------------------------------------------------------------------
# 1. Bytes per parameter


def model_shapes():
    """A transformer-block-like set of matrices and vectors, 5.3M parameters."""
    return {
        "attn": jax.ShapeDtypeStruct((1024, 3072), jnp.float32),
        "proj": jax.ShapeDtypeStruct((1024, 1024), jnp.float32),
        "mlp_in": jax.ShapeDtypeStruct((1024, 1024), jnp.float32),
        "norm": jax.ShapeDtypeStruct((1024,), jnp.float32),
        "bias": jax.ShapeDtypeStruct((3072,), jnp.float32),
    }


def bytes_per_param(tx, params):
    shapes = jax.eval_shape(tx.init, params)
    total = sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in jax.tree.leaves(shapes))
    return total / sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def memory_table():
    params = model_shapes()
    factories = {
        "adam": (lambda **k: gradtx.adam(1e-3, **k), dict(mu_dtype=BF16, nu_dtype=BF16)),
        "adamw": (lambda **k: gradtx.adamw(1e-3, **k), dict(mu_dtype=BF16, nu_dtype=BF16)),
        "lion": (lambda **k: gradtx.lion(1e-4, **k), dict(mu_dtype=BF16)),
        "muon": (lambda **k: gradtx.muon(0.02, **k), dict(mu_dtype=BF16)),
        "soap": (lambda **k: gradtx.soap(3e-3, **k), None),
    }
    rows = []
    for name, (make, low) in factories.items():
        row = [name, bytes_per_param(make(), params)]
        row.append(bytes_per_param(make(**low), params) if low else None)
        row.append(bytes_per_param(gradtx.quantized_state(make(), bits=8), params))
        row.append(bytes_per_param(gradtx.quantized_state(make(), bits=4), params))
        rows.append(row)
    lines = [
        "| optimizer | float32 | bf16 moments | 8-bit | 4-bit |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, *values in rows:
        cells = ["n/a" if v is None else f"{v:.3f}" for v in values]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


# ----------------------------------------------------------------------------
# 2. Step time


def step_times(sizes, rounds):
    lines = [
        "| parameters | float32 step (ms) | 8-bit / float32 | 4-bit / float32 |",
        "|---:|---:|---:|---:|",
    ]
    for n in sizes:
        params = {"w": jnp.ones((n // 1024, 1024), jnp.float32)}
        grads = {"w": jnp.full((n // 1024, 1024), 0.01, jnp.float32)}
        txs = {
            "fp32": gradtx.adam(1e-3),
            "8": gradtx.quantized_state(gradtx.adam(1e-3), bits=8),
            "4": gradtx.quantized_state(gradtx.adam(1e-3), bits=4),
        }
        fns = {}
        for key, tx in txs.items():

            def step(p, s, g, tx=tx):
                u, s = tx.update(g, s, p)
                return gradtx.apply_updates(p, u), s

            jitted = jax.jit(step, donate_argnums=(0, 1))
            carry = [jax.tree.map(jnp.copy, params), tx.init(params)]

            def run(jitted=jitted, carry=carry):
                carry[0], carry[1] = jitted(carry[0], carry[1], grads)
                jax.block_until_ready(carry[0])

            run()
            fns[key] = run
        times = {k: [] for k in fns}
        for _ in range(rounds):
            for key in np.random.default_rng().permutation(list(fns)):
                t0 = time.perf_counter()
                fns[key]()
                times[key].append(time.perf_counter() - t0)
        base = np.array(times["fp32"])
        ratio = {k: np.median(np.array(times[k]) / base) for k in ("8", "4")}
        lines.append(
            f"| {n:,} | {1e3 * np.median(base):.2f} | {ratio['8']:.2f} | {ratio['4']:.2f} |"
        )
    return lines


# ----------------------------------------------------------------------------
# 3. Quality: an MLP regressing a random teacher


def mlp_task(seed):
    rng = np.random.default_rng(1234)  # the data and teacher are the same for every seed
    d_in, width, d_out, n = 32, 128, 8, 2048
    x = rng.standard_normal((n, d_in)).astype(np.float32)
    teacher = [rng.standard_normal((d_in, 64)) / np.sqrt(d_in), rng.standard_normal((64, d_out))]
    y = (np.tanh(x @ teacher[0]) @ teacher[1] / 8).astype(np.float32)
    key = jax.random.PRNGKey(seed)
    k1, k2, k3 = jax.random.split(key, 3)
    params = {
        "w1": jax.random.normal(k1, (d_in, width)) / np.sqrt(d_in),
        "w2": jax.random.normal(k2, (width, width)) / np.sqrt(width),
        "w3": jax.random.normal(k3, (width, d_out)) / np.sqrt(width),
        "b1": jnp.zeros(width),
        "b2": jnp.zeros(width),
    }

    def loss(p, xb, yb):
        h = jnp.tanh(xb @ p["w1"] + p["b1"])
        h = jnp.tanh(h @ p["w2"] + p["b2"])
        return jnp.mean((h @ p["w3"] - yb) ** 2)

    return params, loss, jnp.asarray(x), jnp.asarray(y)


def steps_to_target(tx, seed, target, max_steps, batch=256):
    params, loss, x, y = mlp_task(seed)
    order = np.random.default_rng(seed).integers(0, x.shape[0], (max_steps, batch))

    def body(carry, idx):
        p, s = carry
        g = jax.grad(loss)(p, x[idx], y[idx])
        u, s = tx.update(g, s, p)
        p = gradtx.apply_updates(p, u)
        return (p, s), loss(p, x[:512], y[:512])

    losses = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), jnp.asarray(order))[1])(params)
    losses = np.asarray(losses)
    hit = np.flatnonzero(losses <= target)
    return (int(hit[0]) + 1 if hit.size else None), float(losses[-1])


def quality(target, max_steps):
    configs = {
        "float32": lambda: gradtx.adam(1e-3),
        "8-bit": lambda: gradtx.quantized_state(gradtx.adam(1e-3), bits=8),
        "4-bit": lambda: gradtx.quantized_state(gradtx.adam(1e-3), bits=4),
        "4-bit, stochastic rounding": lambda: gradtx.quantized_state(
            gradtx.adam(1e-3), bits=4, rounding="stochastic"
        ),
    }
    lines = [
        f"| Adam state | steps to loss {target} (seeds 0, 1, 2) | final loss after {max_steps} steps |",
        "|---|---|---|",
    ]
    for name, make in configs.items():
        results = [steps_to_target(make(), seed, target, max_steps) for seed in range(3)]
        steps = ", ".join(str(s) if s is not None else f">{max_steps}" for s, _ in results)
        finals = ", ".join(f"{f:.5f}" for _, f in results)
        lines.append(f"| {name} | {steps} | {finals} |")
    return lines


# ----------------------------------------------------------------------------
# 4. bitsandbytes


def quadratic(n=4096, seed=8):
    rng = np.random.default_rng(seed)
    curvature = (10.0 ** rng.uniform(0, 0.5, n)).astype(np.float32)
    centre = rng.standard_normal(n).astype(np.float32)
    return curvature, centre


def gradtx_trajectory(tx, steps):
    curvature, centre = map(jnp.asarray, quadratic())

    def step(carry, _):
        x, s = carry
        u, s = tx.update(curvature * (x - centre), s, x)
        x = gradtx.apply_updates(x, u)
        return (x, s), x

    x0 = jnp.zeros_like(centre)
    return np.asarray(jax.jit(lambda x: jax.lax.scan(step, (x, tx.init(x)), None, steps)[1])(x0))


def torch_trajectory(make, steps):
    import torch

    curvature, centre = map(torch.from_numpy, quadratic())
    x = torch.nn.Parameter(torch.zeros_like(centre))
    opt = make([x])
    out = []
    for _ in range(steps):
        opt.zero_grad()
        x.grad = curvature * (x.detach() - centre)
        opt.step()
        out.append(x.detach().numpy().copy())
    return np.stack(out)


def bitsandbytes_comparison(steps=300):
    try:
        import bitsandbytes as bnb
        import torch
    except Exception as e:  # report why, do not fail
        return [f"bitsandbytes not available here: {type(e).__name__}: {e}"]
    _, centre = quadratic()
    scale = np.linalg.norm(centre)
    trajectories = {
        "torch Adam, float32": torch_trajectory(
            lambda p: torch.optim.Adam(p, lr=0.01, eps=1e-8), steps
        ),
        "bitsandbytes Adam8bit": torch_trajectory(
            lambda p: bnb.optim.Adam8bit(p, lr=0.01, eps=1e-8, min_8bit_size=0), steps
        ),
        "gradtx adam, float32": gradtx_trajectory(gradtx.adam(0.01), steps),
        "gradtx quantized_state(adam, bits=8)": gradtx_trajectory(
            gradtx.quantized_state(gradtx.adam(0.01), min_size=0), steps
        ),
    }
    ref = trajectories["torch Adam, float32"]
    lines = [
        f"bitsandbytes {bnb.__version__} on {torch.__version__} CPU; Adam lr 0.01 on "
        f"sum_i k_i (x_i - c_i)^2 / 2, 4096 entries, k_i in [1, 10^0.5], {steps} steps. "
        "Distance: max over steps of ||x - x_ref|| / ||c||.",
        "",
        "| trajectory | distance to torch float32 Adam | distance to bitsandbytes 8-bit |",
        "|---|---:|---:|",
    ]
    for name, traj in trajectories.items():
        d_ref = np.max(np.linalg.norm(traj - ref, axis=1)) / scale
        d_bnb = np.max(np.linalg.norm(traj - trajectories["bitsandbytes Adam8bit"], axis=1)) / scale
        lines.append(f"| {name} | {d_ref:.4f} | {d_bnb:.4f} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sizes", default="65536,1048576,4194304")
    parser.add_argument("--target", type=float, default=0.015)
    parser.add_argument("--max-steps", type=int, default=1000)
    args = parser.parse_args()
    info = H.machine()
    t0 = time.perf_counter()
    sections = [
        "# Quantized optimizer state (`gradtx.quantized_state`), CPU",
        "",
        "Produced by `python benchmarks/bench_quantized.py`.",
        "",
        "Machine: " + ", ".join(f"{k}: {v}" for k, v in info.items()),
        "",
        "## Bytes of optimizer state per parameter",
        "",
        "5.3M parameters in five leaves (three matrices, two vectors); 8/4-bit use the",
        "defaults (blocks of 256 with one float32 scale each, leaves of 4096+ entries).",
        "",
        *memory_table(),
        "",
        "## Step time of jitted Adam (update + apply, donated), ratio to float32",
        "",
        f"Medians over {args.rounds} paired rounds.",
        "",
        *step_times([int(s) for s in args.sizes.split(",")], args.rounds),
        "",
        "## Quality: steps to a target loss",
        "",
        "MLP 32-128-128-8 (tanh, 22k parameters; w2 and w1 are quantized) regressing a fixed",
        "random teacher on 2048 synthetic points, batches of 256, Adam lr 1e-3, loss on the",
        "first 512 points after each step.",
        "",
        *quality(args.target, args.max_steps),
        "",
        "## bitsandbytes",
        "",
        *bitsandbytes_comparison(),
        "",
        f"Total time: {time.perf_counter() - t0:.0f} s.",
    ]
    text = "\n".join(sections) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
