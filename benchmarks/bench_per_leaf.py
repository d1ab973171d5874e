"""gradtx against optax on the per-leaf path: step time and compile time, several optimizers.

    python benchmarks/bench_per_leaf.py --leaves 100,1000 --opt adam,adamw,rmsprop,sgd \\
        --json benchmarks/results/per_leaf_cpu.jsonl
    python benchmarks/bench_per_leaf.py --render benchmarks/results/per_leaf_cpu.jsonl \\
        --out benchmarks/results/per_leaf_cpu.md

For each optimizer (adam, adamw, rmsprop, sgd with momentum 0.9; optax's
defaults otherwise, learning rate 1e-3) and each leaf count, on params of
mixed leaf shapes (``_cases.mixed``: ranks 0 to 4, 200-1800 values, shapes
mostly distinct):

- compile: trace + lower + XLA compile of one jitted, donated step
  (``update`` + ``apply_updates``), from a fresh closure after
  ``jax.clear_caches()``, so each measurement pays what a fresh process pays
  (jnp's operators are jitted functions cached per shape; without clearing,
  whichever implementation runs second would reuse the first one's traces).
  gradtx and optax alternate (which goes first alternates by repeat), after
  one small warm-up step of each so neither pays the process's first-compile
  setup; the ratio is per repeat (paired), median over repeats.
- step: the executables just compiled, run in interleaved rounds (both once
  per round, shuffled order); the ratio is the median of per-round ratios.
  ``--keep last`` keeps only each library's latest executable alive (at
  thousands of leaves, several alive at once exceed the kernel's memory-map
  limit) and times that one.

Each (leaf count, optimizer) runs in its own process (thousands of compiled
kernels per process would pile up) and appends one JSON line; ``--render``
turns the lines into the markdown table.  Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import time

import _cases
import _harness as H
import jax
import jax.numpy as jnp
import numpy as np

import gradtx

LR = 1e-3

OPTIMIZERS = {
    "adam": ("adam(1e-3)", lambda lib: lib.adam(LR)),
    "adamw": ("adamw(1e-3)", lambda lib: lib.adamw(LR)),
    "rmsprop": ("rmsprop(1e-3)", lambda lib: lib.rmsprop(LR)),
    "sgd": ("sgd(1e-3, momentum=0.9)", lambda lib: lib.sgd(LR, momentum=0.9)),
}


def hlo_sizes(lowered, compiled) -> tuple[int, int]:
    """Instructions in the program as lowered (StableHLO ops) and as XLA compiled it.

    Unlike a compile time, these counts do not depend on the machine's load:
    equal counts mean XLA compiles the same amount of program.
    """
    lowered_ops = sum(1 for line in lowered.as_text().splitlines() if "stablehlo." in line)
    optimized = sum(
        1 for line in compiled.as_text().splitlines() if re.match(r"\s+(ROOT )?%?[\w.\-]+ = ", line)
    )
    return lowered_ops, optimized


def compile_step(lib, make, params, grads):
    """(trace + lower s, XLA compile s, compiled step, its own params, state, HLO sizes)."""
    jax.clear_caches()
    tx = make(lib)
    state = tx.init(params)

    def step(p, s, g):
        updates, s = tx.update(g, s, p)
        return lib.apply_updates(p, updates), s

    start = time.perf_counter()
    lowered = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads)
    traced = time.perf_counter()
    compiled = lowered.compile()
    done = time.perf_counter()
    sizes = hlo_sizes(lowered, compiled)
    return traced - start, done - traced, compiled, jax.tree.map(jnp.copy, params), state, sizes


def runner(compiled, params, state, grads):
    box = [params, state]

    def run():
        box[0], box[1] = compiled(box[0], box[1], grads)
        H.block(box)

    return run


def measure(opt, n, case, repeats, rounds, keep="all"):
    import optax

    libs = {"gradtx": gradtx, "optax": optax}
    shapes = _cases.PER_LEAF_CASES[case](n)
    params = _cases.arrays(shapes)
    grads = jax.tree.map(lambda g: g * 1e-2, _cases.arrays(shapes, seed=1))
    make = OPTIMIZERS[opt][1]
    # The first compile in a process pays one-time setup (about 15% of a
    # 4000-leaf compile); a small step of each library pays it before any timing.
    warm = _cases.arrays(_cases.PER_LEAF_CASES[case](8))
    for lib in libs.values():
        compile_step(lib, make, warm, warm)
    compile_s = {name: [] for name in libs}
    lower_s = {name: [] for name in libs}
    executables, sizes = {name: [] for name in libs}, {}
    for r in range(repeats):
        order = list(libs) if r % 2 == 0 else list(libs)[::-1]
        for name in order:
            if keep == "last":
                # Free this library's previous executable before compiling the next:
                # at 4000 leaves each executable holds tens of thousands of memory
                # maps of JIT code, and a few alive at once exceed the kernel's map
                # limit (LLVM then aborts with "Cannot allocate memory").
                executables[name].clear()
                gc.collect()
            lo, co, compiled, p, s, sizes[name] = compile_step(libs[name], make, params, grads)
            lower_s[name].append(lo)
            compile_s[name].append(lo + co)
            executables[name].append((compiled, p, s))
            print(
                f"{opt} {n} leaves {name}: trace+lower {lo:.2f} s, XLA compile {co:.2f} s",
                flush=True,
            )
    # Every executable kept is timed (with keep="all", every one of every repeat):
    # one executable of a program can run a few percent faster or slower than
    # another of the same program (where its buffers land), so each library's time
    # per round is the mean over its executables, and optax's first executable
    # against its last shows the spread of identical programs.
    kept = len(executables["optax"])
    runners = {
        f"{name} #{i}": runner(c, p, s, grads)
        for name, compiled in executables.items()
        for i, (c, p, s) in enumerate(compiled)
    }
    times = H.interleaved(runners, rounds)
    per_lib = {name: np.mean([times[f"{name} #{i}"] for i in range(kept)], axis=0) for name in libs}
    g_c, o_c = np.asarray(compile_s["gradtx"]), np.asarray(compile_s["optax"])
    return {
        "optimizer": opt,
        "leaves": n,
        "case": case,
        "params": _cases.count(shapes)[1],
        "repeats": repeats,
        "rounds": rounds,
        "executables_timed": keep,
        "step_ms": {k: float(np.median(v) * 1e3) for k, v in per_lib.items()},
        "step_ratio": H.paired_ratio(per_lib["gradtx"], per_lib["optax"]),
        "step_ratio_optax_again": (
            H.paired_ratio(times["optax #0"], times[f"optax #{kept - 1}"]) if kept > 1 else None
        ),
        "compile_s": {k: float(np.median(v)) for k, v in compile_s.items()},
        "trace_lower_s": {k: float(np.median(v)) for k, v in lower_s.items()},
        "compile_ratio": H.paired_ratio(g_c, o_c),
        "hlo_lowered": {k: v[0] for k, v in sizes.items()},
        "hlo_optimized": {k: v[1] for k, v in sizes.items()},
        "loadavg": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return "unknown CPU"


def _sizes(record, key) -> str:
    sizes = record.get(key)
    return f"{sizes['gradtx']} / {sizes['optax']}" if sizes else "-"


def render(path, out):
    rows, info = [], None
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    info = lines[0].get("machine") if lines else {}
    records = [r for r in lines if "optimizer" in r]
    records.sort(key=lambda r: (list(OPTIMIZERS).index(r["optimizer"]), r["leaves"]))
    for r in records:
        rows.append(
            [
                r["optimizer"],
                r["leaves"],
                r["params"],
                f"{r['step_ms']['gradtx']:.2f} / {r['step_ms']['optax']:.2f}",
                H.fmt_ratio(r["step_ratio"])
                + f" ({r['rounds']} rounds"
                + ("" if r.get("executables_timed") == "all" else ", last executable")
                + ")",
                H.fmt_ratio(r["step_ratio_optax_again"])
                if r.get("step_ratio_optax_again")
                else "-",
                f"{r['trace_lower_s']['gradtx']:.2f} / {r['trace_lower_s']['optax']:.2f}",
                f"{r['compile_s']['gradtx']:.1f} / {r['compile_s']['optax']:.1f}",
                H.fmt_ratio(r["compile_ratio"]) + f" ({r['repeats']} rep.)",
                _sizes(r, "hlo_lowered"),
                _sizes(r, "hlo_optimized"),
                r["loadavg"],
            ]
        )
    header = [
        "optimizer",
        "leaves",
        "params",
        "step ms gradtx / optax",
        "step x optax",
        "optax x optax (same program)",
        "trace+lower s gradtx / optax",
        "compile total s gradtx / optax",
        "compile x optax",
        "HLO ops lowered gradtx / optax",
        "HLO ops after XLA gradtx / optax",
        "load avg after",
    ]
    commands = [line["command"] for line in lines if "command" in line]
    loads = sorted(float(r["loadavg"].split()[0]) for r in records) or [0.0]
    cores = int((info or {}).get("CPU(s)", 2))
    loaded = [
        f"{r['optimizer']} at {r['leaves']} leaves"
        for r in records
        if float(r["loadavg"].split()[0]) > cores + 0.5
    ]
    load_note = (
        f"1-minute load average {loads[0]}-{loads[-1]} on {cores} cores at the end of each "
        "row. "
        + (
            f"**Loaded rows** (load above {cores + 0.5}): {', '.join(loaded)}; other jobs "
            "shared the CPU there, and a one-repeat compile ratio of identical programs "
            "under load lies within about +-25% of 1.0.\n\n"
            if loaded
            else "Nothing else ran on the machine.\n\n"
        )
    )
    text = (
        "# Per-leaf path: gradtx vs optax, step and compile time\n\n"
        f"Device: {(info or {}).get('Model name') or _cpu_model()} "
        f"({(info or {}).get('CPU(s)', '?')} cores), JAX on "
        f"{(info or {}).get('device', 'cpu')}.\n\n"
        "Commands:\n\n" + "\n".join(f"    {c}" for c in commands) + "\n\n"
        "Params: `_cases.mixed(leaves)` (ranks 0-4, 200-1800 values per leaf), float32; "
        "optax's defaults with learning rate 1e-3. Step: the compiled, donated step "
        "(update + apply), gradtx and optax once per round in shuffled order; x optax is "
        "the median [25th-75th percentile] of per-round ratios. Every executable a row "
        "compiled is timed, and a library's time per round is the mean over its executables "
        "(rows marked 'last executable' timed only each library's last one): "
        "two executables of one program can differ by a few percent. optax's first "
        "executable against its last (rows with repeats) shows how far from 1.0 that "
        "alone moves a ratio. "
        "Compile: trace + lower + "
        "XLA compile after `jax.clear_caches()`, gradtx and optax alternating; x optax is "
        "the median of per-repeat ratios (each row gives its number of repeats). HLO ops: "
        "instructions of the jitted step as lowered (StableHLO) and after XLA's "
        "optimization passes; they do not depend on the machine's load, so equal counts "
        "mean both libraries hand XLA the same amount of program. "
        + load_note
        + H.markdown_table(header, rows)
        + "\n\n## Machine\n\n"
        + H.machine_markdown(info or {})
        + "\n"
    )
    H.write_result(out, text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", default="100,1000")
    parser.add_argument("--opt", default=",".join(OPTIMIZERS))
    parser.add_argument("--case", default="mixed", choices=list(_cases.PER_LEAF_CASES))
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="compile repeats (default 3 below 1000 leaves, else 1)",
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--keep",
        default="all",
        choices=["all", "last"],
        help="executables kept alive and timed: every one, or each library's last "
        "(for thousands of leaves, where several alive exhaust the memory-map limit)",
    )
    parser.add_argument("--json", default=None, help="append one JSON line per measurement")
    parser.add_argument("--render", default=None, help="JSON lines file to render")
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render:
        render(args.render, args.out)
        return
    if args.json and not args.one and not os.path.exists(args.json):
        with open(args.json, "w") as f:
            f.write(json.dumps({"machine": H.machine()}) + "\n")
    if args.json and not args.one:
        with open(args.json, "a") as f:
            f.write(
                json.dumps(
                    {
                        "command": "python benchmarks/bench_per_leaf.py "
                        + " ".join(a for a in sys.argv[1:])
                    }
                )
                + "\n"
            )
    for n in [int(x) for x in args.leaves.split(",")]:
        for opt in args.opt.split(","):
            repeats = args.repeats or (3 if n < 1000 else 1)
            if args.one:
                record = measure(opt, n, args.case, repeats, args.rounds, args.keep)
                print(json.dumps(record), flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(record) + "\n")
                continue
            subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--one",
                    "--leaves",
                    str(n),
                    "--opt",
                    opt,
                    "--case",
                    args.case,
                    "--repeats",
                    str(repeats),
                    "--rounds",
                    str(args.rounds),
                    "--keep",
                    args.keep,
                ]
                + (["--json", args.json] if args.json else []),
                check=True,
            )


if __name__ == "__main__":
    main()
