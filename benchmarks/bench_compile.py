"""Compile time of one jitted Adam step (update + apply, donated) against the number of leaves.

    python benchmarks/bench_compile.py                         # 100 and 1000 leaves
    python benchmarks/bench_compile.py --leaves 100,1000,5000 --repeats 2

Each measurement traces, lowers and compiles a fresh closure (so no JAX or
XLA cache is hit); implementations alternate within each repeat, and ratios
are per-repeat (paired).  Leaves are small vectors and matrices of 200-1800
values, as in the 2000-leaf case of ``bench_step.py``.
"""

from __future__ import annotations

import argparse
import time

import _cases
import _harness as H
import jax
import numpy as np

import gradtx

LR = 1e-3


def compile_seconds(make_tx, params, apply):
    """(trace + lower seconds, XLA compile seconds) for a fresh step closure."""
    tx = make_tx()
    state = tx.init(params)

    def step(p, s, g):
        updates, s = tx.update(g, s, p)
        return apply(p, updates), s

    start = time.perf_counter()
    lowered = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params)
    traced = time.perf_counter()
    lowered.compile()
    done = time.perf_counter()
    return traced - start, done - traced


def implementations(which):
    import optax

    impls = {}
    if "gradtx" in which:
        impls["gradtx.adam"] = (lambda: gradtx.adam(LR), False, gradtx.apply_updates)
    if "flatten" in which:
        impls["gradtx.flatten(adam)"] = (
            lambda: gradtx.flatten(gradtx.adam(LR)),
            False,
            gradtx.apply_updates,
        )
    if "packed" in which:
        impls["gradtx.flatten(adam), packed params"] = (
            lambda: gradtx.flatten(gradtx.adam(LR)),
            True,
            gradtx.apply_updates,
        )
    if "optax" in which:
        impls["optax.adam"] = (lambda: optax.adam(LR), False, optax.apply_updates)
    if "optax_flatten" in which:
        impls["optax.flatten(adam)"] = (
            lambda: optax.flatten(optax.adam(LR)),
            False,
            optax.apply_updates,
        )
    return impls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", default="100,1000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--impl", default="gradtx,flatten,packed,optax,optax_flatten")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    info = H.machine()
    impls = implementations(set(args.impl.split(",")))
    header = [
        "leaves",
        "params",
        "implementation",
        "trace+lower s",
        "XLA compile s",
        "total s (median)",
        "x optax.adam",
        "device",
    ]
    rows = []
    for n in [int(x) for x in args.leaves.split(",")]:
        shapes = _cases.many_small(n)
        params = _cases.arrays(shapes, fill=0.5)
        packed = gradtx.pack(params)
        totals = {name: [] for name in impls}
        parts = {name: [] for name in impls}
        for _ in range(args.repeats):
            for name, (make, use_packed, apply) in impls.items():
                lower_s, compile_s = compile_seconds(make, packed if use_packed else params, apply)
                totals[name].append(lower_s + compile_s)
                parts[name].append((lower_s, compile_s))
                print(
                    f"{n} leaves  {name:40s} trace+lower {lower_s:7.2f} s  compile "
                    f"{compile_s:7.2f} s",
                    flush=True,
                )
        ref = np.asarray(totals["optax.adam"]) if "optax.adam" in totals else None
        for name in impls:
            t = np.asarray(totals[name])
            lower = np.median([p[0] for p in parts[name]])
            comp = np.median([p[1] for p in parts[name]])
            ratio = H.fmt_ratio(H.paired_ratio(t, ref)) if ref is not None else "-"
            rows.append(
                [
                    n,
                    _cases.count(shapes)[1],
                    name,
                    f"{lower:.2f}",
                    f"{comp:.2f}",
                    f"{np.median(t):.2f} [{t.min():.2f}-{t.max():.2f}]",
                    ratio,
                    info["device"],
                ]
            )
        print(H.markdown_table(header, rows[-len(impls) :]), flush=True)
    text = (
        "# Compile time of one Adam step (trace + lower + XLA compile)\n\n"
        f"Command: `python benchmarks/bench_compile.py --leaves {args.leaves} --repeats "
        f"{args.repeats} --impl {args.impl}`\n\n"
        "total: median [min-max] over repeats; x optax.adam: median [25th-75th percentile] "
        "of per-repeat ratios.\n\n"
        + H.markdown_table(header, rows)
        + "\n\n## Machine\n\n"
        + H.machine_markdown(info)
        + "\n"
    )
    H.write_result(args.out, text)


if __name__ == "__main__":
    main()
