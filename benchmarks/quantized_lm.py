"""Steps to the byte-level LM's target loss with AdamW's state in float32, 8 and 4 bits.

    python benchmarks/quantized_lm.py --out benchmarks/results/quantized_lm_cpu.md

The task of benchmarks/steps_to_target.py (gradtx/examples/lm_task.py's
DEFAULT: a 2-layer transformer on the standard library's bytes, held-out
files for validation), its AdamW (b2 = 0.95, weight decay 0.01, warm-up) at
the learning rate that AdamW's sweep there found best, 0.01.  Each seed
draws its own initialisation and batches; the three states train from the
same ones.  ``quantized_state``'s defaults: blocks of 256, leaves of 4096
entries or more (the embedding, the attention and MLP matrices).  Writes
the table and a plot of the held-out losses (``quantized_lm_cpu.png``).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
from _harness import machine, machine_markdown

import gradtx
from gradtx.examples import lm_task as lm

HERE = os.path.dirname(os.path.abspath(__file__))
LEARNING_RATE = 0.01
STATES = {
    "float32": lambda tx: tx,
    "8-bit": lambda tx: gradtx.quantized_state(tx, bits=8),
    "4-bit": lambda tx: gradtx.quantized_state(tx, bits=4),
    "4-bit rank-1": lambda tx: gradtx.quantized_state(tx, bits=4, normalization="rank1"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--states", default=",".join(STATES))
    args = parser.parse_args()
    cfg = lm.DEFAULT._replace(eval_every=args.eval_every)
    names = args.states.split(",")
    t_start = time.perf_counter()
    runs = {name: [] for name in names}
    for seed in range(args.seeds):
        data = lm.load_data(cfg, seed)
        params = lm.init_params(jax.random.key(seed), cfg)
        for name in names:
            tx = STATES[name](lm.REGISTRY["adamw"].factory(gradtx, LEARNING_RATE, cfg))
            run = lm.train(f"{name}, seed {seed}", tx, params, data, cfg, LEARNING_RATE, None)
            runs[name].append(run)
            print(name, seed, run.steps_to(lm.TARGET), f"{run.val_loss[-1]:.3f}", flush=True)
    base = [r.steps_to(lm.TARGET) for r in runs["float32"]] if "float32" in runs else None
    lines = [
        "# AdamW with quantized state on the byte-level LM (steps to the target), CPU",
        "",
        f"Produced by `python benchmarks/quantized_lm.py` in {time.perf_counter() - t_start:.0f} s.",
        "",
        machine_markdown(machine()),
        "",
        lm.describe(cfg, data, 0),
        "",
        f"AdamW lr {LEARNING_RATE} (its best in benchmarks/results/steps_to_target_cpu.md), "
        f"held-out loss every {cfg.eval_every} steps, target {lm.TARGET} nats per byte; "
        f"seeds 0..{args.seeds - 1} (initialisation and batches).",
        "",
        "| Adam state | steps to target (per seed) | mean | mean / float32's | final loss (per seed) |",
        "|---|---|---:|---:|---|",
    ]
    for name, rs in runs.items():
        steps = [r.steps_to(lm.TARGET) for r in rs]
        shown = ", ".join("not reached" if s is None else str(s) for s in steps)
        finals = ", ".join(f"{r.val_loss[-1]:.3f}" for r in rs)
        if None in steps:
            mean, ratio = "n/a", "n/a"
        else:
            mean = f"{np.mean(steps):.0f}"
            ratio = "n/a" if not base or None in base else f"{np.mean(steps) / np.mean(base):.3f}"
        lines.append(f"| {name} | {shown} | {mean} | {ratio} | {finals} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        plot(runs, cfg, os.path.splitext(args.out)[0] + ".png")


def plot(runs, cfg, path):
    """Held-out loss against step: one colour per state, one line per seed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for color, (name, rs) in zip(["k", "tab:blue", "tab:red", "tab:green"], runs.items()):
        for seed, r in enumerate(rs):
            ax.plot(
                r.eval_steps,
                r.val_loss,
                color=color,
                lw=1,
                ls=["-", "--", ":"][seed % 3],
                label=f"{name}, seed {seed}",
            )
    ax.axhline(lm.TARGET, color="grey", lw=0.8)
    ax.set_ylim(lm.TARGET - 0.2, lm.TARGET + 0.8)
    ax.set(
        xlabel="step",
        ylabel="held-out loss (nats per byte)",
        title=f"AdamW (lr {LEARNING_RATE}), state in float32 / 8 / 4 bits; byte-level LM",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2)
    fig.savefig(path)


if __name__ == "__main__":
    main()
