"""The cost of keeping a float16 model's second moment in float32 (gradtx's default).

    python benchmarks/f16_second_moment.py [--n 4194304] [--repeats 30]

float16 params, Adam.  ``default``: v in float32 (what gradtx does for
float16 params); ``nu_dtype=float16``: v in float16, the old default and
optax's, which overflows once |g| reaches 256 and then freezes the
parameter.  Reports the state's bytes per parameter and the median time of a
jitted, donated update step (params, gradient and state in memory), with the
ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

import gradtx


def _state_bytes(state):
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))


def _stepper(opt, n):
    params = {"w": jnp.ones(n, jnp.float16)}
    grads = {"w": (jax.random.normal(jax.random.key(0), (n,)) * 0.01).astype(jnp.float16)}
    state = opt.init(params)
    nbytes = _state_bytes(state)

    def step(params, state):
        updates, state = opt.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    step = jax.jit(step, donate_argnums=(0, 1))
    carry = [step(params, state)]
    jax.block_until_ready(carry[0])

    def once():
        start = time.perf_counter()
        carry[0] = step(*carry[0])
        jax.block_until_ready(carry[0])
        return time.perf_counter() - start

    return nbytes, once


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1 << 22)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    n = args.n
    cases = [
        ("nu_dtype=float16", gradtx.adam(1e-3, nu_dtype=jnp.float16)),
        ("default (v in float32)", gradtx.adam(1e-3)),
    ]
    steppers = [_stepper(opt, n) for _, opt in cases]
    times = [[] for _ in cases]
    for r in range(args.repeats):  # interleaved, alternating order: a shared machine drifts
        order = range(len(cases)) if r % 2 == 0 else reversed(range(len(cases)))
        for i in order:
            times[i].append(steppers[i][1]())
    rows = [
        (label, nbytes, float(np.median(t)))
        for (label, _), (nbytes, _), t in zip(cases, steppers, times)
    ]
    base_bytes, base_t = rows[0][1], rows[0][2]
    print(
        f"# float16 Adam, {n} params, device {jax.devices()[0].device_kind} "
        f"({os.cpu_count()} CPUs, {platform.processor() or platform.machine()}), "
        f"median of {args.repeats} interleaved steps"
    )
    print("| second moment | state bytes/param | params+state bytes/param | step ms | time ratio |")
    print("|---|---|---|---|---|")
    for label, nbytes, t in rows:
        print(
            f"| {label} | {nbytes / n:.2f} | {(nbytes + 2 * n) / n:.2f} | {t * 1e3:.2f} | "
            f"{t / base_t:.3f} |"
        )
    print(
        f"state memory ratio: {rows[1][1] / base_bytes:.3f}; params+state: "
        f"{(rows[1][1] + 2 * n) / (base_bytes + 2 * n):.3f}"
    )


if __name__ == "__main__":
    main()
