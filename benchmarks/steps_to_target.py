"""Steps (and seconds) to a target held-out loss, on a small byte-level language model.

    python benchmarks/steps_to_target.py                  # every optimizer of the registry
    python benchmarks/steps_to_target.py --optimizers adamw,mars --target 2.3
    python benchmarks/steps_to_target.py --quick          # a tiny smoke run, nothing written

The task is gradtx/examples/lm_task.py's: a transformer trained on Python's standard
library as bytes, whole files held out for validation.  Every optimizer
trains from the same initialisation on the same batches, once per learning
rate of its short sweep (``REGISTRY``); the best learning rate is the one
that reaches the target in the fewest steps (the lowest final held-out loss
if none does).  The script writes a markdown table
(``benchmarks/results/steps_to_target_cpu.md``: steps to the target, the
ratio to AdamW's, training seconds to the target, final loss, the sweep)
and a plot of the best run of each optimizer (``steps_to_target_cpu.png``).
Optimizers whose parts are not in gradtx yet are skipped with a note.

Wall time counts the training steps only (not compilation, not
evaluation); it is measured on a shared machine, so read the steps.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np
from _harness import machine, machine_markdown

from gradtx.examples import lm_task as lm

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = lm.TARGET  # nats per byte on the held-out files, with the default config
GOAL = 0.75  # the best optimizer should need at most this fraction of AdamW's steps


def best_of(runs, target):
    """The run that reaches ``target`` first (ties and misses: the lowest final loss)."""

    def key(r):
        steps = r.steps_to(target)
        final = r.val_loss[-1] if np.isfinite(r.val_loss[-1]) else np.inf
        return (steps if steps is not None else np.inf, final)

    return min(runs, key=key)


def _fmt(x, spec):
    return "not reached" if x is None else format(x, spec)


def report(results, target, cfg, data, seed, skipped, command, wall):
    """The markdown table and its context."""
    adamw = results.get("adamw")
    base = best_of(adamw, target).steps_to(target) if adamw else None
    rows = []
    for name, runs in results.items():
        best = best_of(runs, target)
        steps = best.steps_to(target)
        ratio = f"{steps / base:.2f}" if steps is not None and base else "-"
        sweep = ", ".join(f"{r.learning_rate:g}: {_fmt(r.steps_to(target), 'd')}" for r in runs)
        rows.append(
            (
                steps if steps is not None else np.inf,
                f"| {name} | {best.learning_rate:g} | {_fmt(steps, 'd')} | {ratio} | "
                f"{_fmt(best.seconds_to(target), '.1f')} | {best.val_loss[-1]:.3f} | "
                f"{sweep} |",
            )
        )
    lines = [
        "# Steps to a target held-out loss: byte-level transformer LM (CPU)",
        "",
        lm.describe(cfg, data, seed) + ".",
        "",
        f"Target: held-out loss <= {target} nats per byte, evaluated every {cfg.eval_every} "
        f"steps on {cfg.eval_batches} x {cfg.batch_size} held-out windows (so steps are "
        f"multiples of {cfg.eval_every}).  Every optimizer starts from the same parameters "
        f"and sees the same batches; the learning rate is the best of the sweep (the one "
        f"that reaches the target first).  Seconds: training steps only, to the target "
        f"(compile and evaluation excluded), on a machine shared with other jobs.",
        "",
        "| optimizer | best lr | steps to target | x AdamW | seconds to target | "
        "final loss | sweep (lr: steps) |",
        "|---|---|---|---|---|---|---|",
        *[line for _, line in sorted(rows, key=lambda r: r[0])],
        "",
    ]
    finite = [
        (best_of(runs, target).steps_to(target), name)
        for name, runs in results.items()
        if name != "adamw" and best_of(runs, target).steps_to(target) is not None
    ]
    if base and finite:
        steps, name = min(finite)
        verdict = "met" if steps <= GOAL * base else "not met"
        lines += [
            f"Best non-AdamW optimizer: {name}, {steps} steps = {steps / base:.2f} x "
            f"AdamW's {base} (goal <= {GOAL} x: {verdict}).",
            "",
        ]
    for name, entry in lm.REGISTRY.items():
        if name in results and entry.note:
            lines.append(f"- {name}: {entry.note}.")
    if skipped:
        lines += ["", f"Skipped (not in gradtx at this commit): {', '.join(skipped)}."]
    lines += [
        "",
        f"Command: `{command}` ({wall / 60:.1f} minutes in all).",
        "",
        "## Machine",
        "",
        machine_markdown(machine()),
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--optimizers",
        default=",".join(lm.REGISTRY),
        help="comma-separated names from the registry (default: all)",
    )
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny config and one learning rate each; writes nothing",
    )
    parser.add_argument(
        "--out",
        default=os.path.join(HERE, "results", "steps_to_target_cpu"),
        help="path of the results without extension (.md and .png)",
    )
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    unknown = [n for n in names if n not in lm.REGISTRY]
    if unknown:
        parser.error(f"unknown optimizer {unknown[0]!r}; choose from {', '.join(lm.REGISTRY)}")
    cfg = lm.TINY if args.quick else lm.DEFAULT
    if args.steps:
        cfg = cfg._replace(steps=args.steps)
    present = lm.available(names)
    skipped = [n for n in names if n not in present]

    start = time.perf_counter()
    data = lm.load_data(cfg, args.seed)
    params = lm.init_params(jax.random.key(args.seed), cfg)
    print(lm.describe(cfg, data, args.seed), flush=True)
    results = {}
    for name in present:
        lrs = lm.REGISTRY[name].learning_rates
        lrs = lrs[len(lrs) // 2 : len(lrs) // 2 + 1] if args.quick else lrs
        results[name] = []
        for lr in lrs:
            try:
                run = lm.run_entry(name, lr, params, data, cfg)
            except Exception as err:  # a factory from another branch with other keywords
                print(
                    f"note: skipping {name} at lr {lr:g}: {type(err).__name__}: {err}", flush=True
                )
                continue
            results[name].append(run)
            print(
                f"{name:<20} lr {lr:<8g} steps to {args.target}: "
                f"{_fmt(run.steps_to(args.target), 'd'):>11}  final {run.val_loss[-1]:.3f}  "
                f"train {run.train_seconds[-1]:.1f} s  compile {run.compile_seconds:.1f} s",
                flush=True,
            )
        if not results[name]:
            del results[name]
            skipped.append(name)
    wall = time.perf_counter() - start
    command = (
        "python benchmarks/steps_to_target.py"
        + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )
    text = report(results, args.target, cfg, data, args.seed, skipped, command, wall)
    print(text)
    if args.quick:
        return 0
    with open(args.out + ".md", "w") as f:
        f.write(text)
    best = [best_of(runs, args.target) for runs in results.values()]
    lm.save_figure(
        best,
        f"best learning rate of each optimizer; target {args.target}",
        args.out + ".png",
        target=args.target,
    )
    print(f"wrote {args.out}.md and {args.out}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
