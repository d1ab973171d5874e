"""Trace and compile time of one jitted Adam step on a pytree with many leaves.

    python benchmarks/many_leaves.py [LEAVES ...]      (default: 10000)

For each leaf count, builds ``{"blockNNN": {"wNN": float32[2]}}`` and times
``jax.jit(step).lower(...)`` (tracing) and ``.compile()`` (XLA) for
``gradtx.adam`` and ``optax.adam``, once each (compilation is not repeated:
the second compile would hit the cache).  Also prints the HLO size, the
thing XLA's compile time grows with.  Each configuration runs in its own
subprocess, so caches do not leak between them.

Warning: on XLA:CPU the compile time grows faster than linearly with the
number of leaves; at 10,000 leaves it takes many minutes and over 10 GB of
memory on a 2-core machine.
"""

import json
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
import jax, jax.numpy as jnp, optax
import gradtx
n, lib = int(sys.argv[1]), sys.argv[2]
params = {f"block{i // 100:03d}": {} for i in range(n)}
for i in range(n):
    params[f"block{i // 100:03d}"][f"w{i % 100:02d}"] = jnp.full((2,), 0.5 + i % 7, jnp.float32)
grads = jax.tree.map(lambda p: jnp.cos(p), params)
opt = gradtx.adam(1e-3) if lib == "gradtx" else optax.adam(1e-3)
state = opt.init(params)
def step(p, s, g):
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s
t0 = time.perf_counter()
lowered = jax.jit(step).lower(params, state, grads)
t1 = time.perf_counter()
compiled = lowered.compile()
t2 = time.perf_counter()
jax.block_until_ready(compiled(params, state, grads))
hlo_lines = lowered.as_text().count("\n")
print(json.dumps({"leaves": n, "lib": lib, "trace_s": t1 - t0, "compile_s": t2 - t1,
                  "hlo_lines": hlo_lines, "device": str(jax.devices()[0])}))
"""


def main(counts):
    for n in counts:
        for lib in ("gradtx", "optax"):
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(n), lib],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{row['lib']:7s} leaves={row['leaves']:6d} trace={row['trace_s']:7.2f}s "
                f"compile={row['compile_s']:7.2f}s hlo_lines={row['hlo_lines']:8d} "
                f"wall={time.perf_counter() - start:7.2f}s on {row['device']}",
                flush=True,
            )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10000])
