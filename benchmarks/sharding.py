"""Optimizer-state sharding (ZeRO stage 1) with gradtx: memory and step time.

    python benchmarks/sharding.py [--steps 10] [--repeats 3] [--width 1024] [--batch 512]

Part 1 runs on simulated CPU devices (``--xla_force_host_platform_device_count=8``,
set below before jax is imported).  For 1, 2, 4 and 8 devices it trains an
MLP with AdamW data-parallel (global batch fixed, split over "data"; params
replicated), once with the optimizer state replicated and once with it split
by ``gradtx.state_shardings`` (ZeRO-1).  It reports the state bytes each device
holds, measured from the arrays' addressable shards, next to the bytes the
rule predicts, the median step time, and checks that both layouts give the
same params as one device.

Simulated devices share the host's cores, so step times show the overhead of
partitioning (collectives, smaller kernels), not the speed-up real
accelerators would give.

Part 2 is a paper estimate for a 7B-parameter model on 8, 64 and 512
accelerators: bytes per device for params, grads and each Adam slot, with and
without state sharding, in float32 and bfloat16.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = " ".join(
    [
        f
        for f in os.environ.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    + ["--xla_force_host_platform_device_count=8"]
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import gradtx  # noqa: E402

GIB = 2.0**30


# ---------------------------------------------------------------------------
# Part 1: measured on the simulated mesh


def mlp(width, seed=0):
    rng = np.random.default_rng(seed)
    sizes = [256, width, width, 256, 10]
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"w{i}"] = jnp.asarray(
            rng.standard_normal((n_in, n_out)) / np.sqrt(n_in), jnp.float32
        )
        params[f"b{i}"] = jnp.zeros((n_out,), jnp.float32)
    return params


def loss(params, x, y):
    h = x
    n = len(params) // 2
    for i in range(n):
        h = h @ params[f"w{i}"] + params[f"b{i}"]
        if i < n - 1:
            h = jax.nn.relu(h)
    return jnp.mean(cross_entropy(h, y))


def cross_entropy(logits, labels):
    return (
        jax.nn.logsumexp(logits, axis=-1)
        - jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
    )


def bytes_per_device(tree):
    counts = {}
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            counts[shard.device] = counts.get(shard.device, 0) + shard.data.nbytes
    return counts


def predicted_bytes(state, n):
    """The ZeRO-1 rule: a leaf with a dimension divisible by n keeps 1/n per device."""
    return sum(
        leaf.nbytes // n if leaf.ndim and any(d % n == 0 for d in leaf.shape) else leaf.nbytes
        for leaf in jax.tree.leaves(state)
    )


def median_step_time(step, args, steps, repeats):
    params, state, x, y = args
    params, state = step(params, state, x, y)  # compile
    jax.block_until_ready((params, state))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            params, state = step(params, state, x, y)
        jax.block_until_ready((params, state))
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times), params


def measure(width, batch, steps, repeats):
    opt = gradtx.adamw(1e-3, weight_decay=1e-4)
    params0 = mlp(width)
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((batch, 256)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)

    def train_step(params, state, x, y):
        grads = jax.grad(loss)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    n_params = sum(p.size for p in jax.tree.leaves(params0))
    print(
        f"MLP {[256, width, width, 256, 10]}: {n_params:,} float32 params; AdamW; "
        f"global batch {batch}; {steps} steps x {repeats} repeats, median\n"
    )
    print(
        "| devices | state layout | state bytes / device (measured) | predicted | "
        "vs replicated | step time (ms) | max abs param diff vs 1 device | "
        "vs replicated state, same devices |"
    )
    print("|---|---|---|---|---|---|---|---|")
    reference = None
    for n in (1, 2, 4, 8):
        mesh = jax.make_mesh(
            (n,), ("data",), axis_types=(AxisType.Auto,), devices=jax.devices()[:n]
        )
        replicated = NamedSharding(mesh, P())
        batch_sh = NamedSharding(mesh, P("data"))
        param_sh = jax.tree.map(lambda _: replicated, params0)
        layouts = {
            "replicated": jax.tree.map(lambda _: replicated, jax.eval_shape(opt.init, params0)),
            "ZeRO-1": gradtx.state_shardings(opt, params0, mesh, axis="data"),
        }
        full_bytes = same_n = None
        for name, state_sh in layouts.items():
            step = jax.jit(
                train_step,
                in_shardings=(param_sh, state_sh, batch_sh, batch_sh),
                out_shardings=(param_sh, state_sh),
            )
            state = jax.jit(opt.init, out_shardings=state_sh)(params0)
            args = (
                jax.device_put(params0, param_sh),
                state,
                jax.device_put(x, batch_sh),
                jax.device_put(y, batch_sh),
            )
            measured = bytes_per_device(state)
            per_device = max(measured.values())
            assert len(set(measured.values())) == 1, measured
            predicted = (
                predicted_bytes(state, n)
                if name == "ZeRO-1"
                else sum(leaf.nbytes for leaf in jax.tree.leaves(state))
            )
            full_bytes = full_bytes or per_device
            seconds, final = median_step_time(step, args, steps, repeats)
            final = [np.asarray(leaf) for leaf in jax.tree.leaves(final)]
            if reference is None:
                reference = final
            same_n = same_n or final
            diff = max(float(np.max(np.abs(a - b))) for a, b in zip(final, reference))
            diff_n = max(float(np.max(np.abs(a - b))) for a, b in zip(final, same_n))
            print(
                f"| {n} | {name} | {per_device:,} | {predicted:,} | "
                f"{full_bytes / per_device:.2f}x less | {1e3 * seconds:.1f} | {diff:.1e} | "
                f"{diff_n:.1e} |"
            )


# ---------------------------------------------------------------------------
# Part 2: paper estimate for 7B parameters


def estimate(n_params=7e9, devices=(8, 64, 512)):
    """Bytes per device of params, grads and Adam's mu and nu under data parallelism.

    Params and grads are replicated on every device (plain data parallelism);
    ZeRO-1 splits only the optimizer state.  Activations, temporaries and the
    framework's own buffers come on top.
    """
    configs = [
        # (label, param/grad bytes, state bytes)
        ("fp32 params+grads, fp32 state", 4, 4),
        ("fp32 params+grads, bf16 state", 4, 2),
        ("bf16 params+grads+state", 2, 2),
    ]
    print(f"\n{n_params / 1e9:g}B parameters, Adam (two state slots: mu, nu), GiB per device\n")
    print("| accelerators | precision | state sharding | params | grads | mu | nu | total |")
    print("|---|---|---|---|---|---|---|---|")
    for n in devices:
        for label, pg_bytes, s_bytes in configs:
            for sharded in (False, True):
                params = grads = n_params * pg_bytes / GIB
                slot = n_params * s_bytes / GIB / (n if sharded else 1)
                total = params + grads + 2 * slot
                print(
                    f"| {n} | {label} | {'ZeRO-1 over ' + str(n) if sharded else 'replicated'} "
                    f"| {params:.1f} | {grads:.1f} | {slot:.2f} | {slot:.2f} | {total:.1f} |"
                )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--skip-measure", action="store_true")
    args = parser.parse_args()
    print(
        f"jax {jax.__version__}, {jax.device_count()} simulated {jax.devices()[0].platform} "
        f"devices on {os.cpu_count()} cores ({platform.processor() or platform.machine()})\n"
    )
    if not args.skip_measure:
        measure(args.width, args.batch, args.steps, args.repeats)
    estimate()


if __name__ == "__main__":
    main()
