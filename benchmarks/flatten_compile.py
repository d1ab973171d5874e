"""Compile time of a jitted Adam step: per leaf, flatten on unpacked params, flatten on packed.

    python benchmarks/flatten_compile.py 1000 1024     # leaves, elements per leaf

One compile each (each case is a fresh closure, so no cache is hit), in seconds.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jax
import jax.numpy as jnp

import gradtx


def compile_seconds(opt, params):
    state = opt.init(params)

    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return gradtx.apply_updates(p, u), s

    start = time.perf_counter()
    jax.jit(step).lower(params, state, params).compile()
    return time.perf_counter() - start


def main():
    n_leaves, size = int(sys.argv[1]), int(sys.argv[2])
    params = {f"p{i:05d}": jnp.ones(size) for i in range(n_leaves)}
    cases = [
        ("per-leaf adam", gradtx.adam(1e-3), params),
        ("flatten(adam), unpacked params", gradtx.flatten(gradtx.adam(1e-3)), params),
        ("flatten(adam), packed params", gradtx.flatten(gradtx.adam(1e-3)), gradtx.pack(params)),
    ]
    for label, opt, p in cases:
        print(
            f"{label}: compile {compile_seconds(opt, p):.2f} s ({n_leaves} leaves of {size})",
            flush=True,
        )


if __name__ == "__main__":
    main()
