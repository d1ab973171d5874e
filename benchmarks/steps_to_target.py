"""Steps (and seconds) to a target held-out loss: several seeds, two tasks, swept settings.

    python benchmarks/steps_to_target.py                        # every optimizer gradtx has
    python benchmarks/steps_to_target.py --optimizers dion,scion  # run these, merge into the results
    python benchmarks/steps_to_target.py --tasks digits --seeds 5
    python benchmarks/steps_to_target.py --quick                # tiny smoke run, nothing written

Tasks (``_steps_tasks.py``): a byte-level transformer LM on Python's standard
library (``gradtx/examples/lm_task.py``, in a configuration where AdamW needs
over 1,000 steps) and a GELU MLP on scikit-learn's 8x8 digits.  Both are
offline and deterministic: seed s fixes the initial parameters and every
training batch; the held-out set is the same for every seed.

Protocol, per task and optimizer:

1. Sweep on the selection seed (0), which is never reported: five learning
   rates a factor of 2 apart, at the first weight decay of the entry; then,
   for entries with several weight decays, the others at the best learning
   rate.  The best setting reaches the target in the fewest steps (lowest
   held-out loss if none does).  Each sweep is one jitted program vmapped
   over its settings; it stops as soon as one setting reaches the target
   (the others cannot beat it).
2. Train the chosen setting on the reported seeds 1..n, again as one vmapped
   program, until every seed reached the target or ``max_steps``.

The held-out loss is evaluated every 10 (LM) or 5 (digits) steps, and the
step at which it crosses the target is interpolated linearly between the
two evaluations around the crossing.  We report the mean over seeds with a
95% Student-t interval (``t_interval``), the per-seed values, the ratio to
AdamW's steps paired by seed (same initialisation and batches), and
seconds to the target: steps x the measured seconds per step of one run
(the vmapped program's time per step divided by the number of seeds).

Results merge into ``benchmarks/results/steps_to_target_cpu.json`` (only the
optimizers run are replaced), from which the ``.md`` table and the ``.png``
figure are rewritten; a hand-written section of the ``.md`` after
``NOTES_MARKER`` is kept.  Registry entries whose gradtx names do not
exist yet are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _harness import machine, machine_markdown
from _steps_tasks import GRID, REGISTRY, SELECTION_SEED, TASKS, eval_params, missing, quick_tasks

import gradtx

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "results", "steps_to_target_cpu")
GOAL = 0.75  # the best optimizer should need at most this fraction of AdamW's steps
MEMORY = {}  # the merged results of a run that writes no file (--quick)
NOTES_MARKER = "<!-- hand-written notes below: kept when the table is rewritten -->"


# ----------------------------------------------------------------------------
# Statistics.


def t_interval(values, level=0.95):
    """Mean and Student-t interval ``mean -+ t_{(1+level)/2, n-1} * s / sqrt(n)``.

    ``s`` is the sample standard deviation (ddof 1).  Returns (mean, low,
    high); with a single value the interval is (nan, nan).
    """
    from scipy import stats

    x = np.asarray(values, float)
    mean = float(np.mean(x))
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * np.std(x, ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def crossing(steps, losses, target):
    """The step at which ``losses`` (evaluated at ``steps``) first reach ``target``,
    interpolated linearly between the evaluations around it; None if never."""
    losses = np.asarray(losses, float)
    hit = np.nonzero(losses <= target)[0]
    if not hit.size:
        return None
    i = int(hit[0])
    if i == 0:
        return float(steps[0])
    l0, l1 = losses[i - 1], losses[i]
    return float(steps[i - 1] + (l0 - target) / (l0 - l1) * (steps[i] - steps[i - 1]))


# ----------------------------------------------------------------------------
# Training: one jitted program per (optimizer, task), vmapped over members
# (settings of the sweep, or seeds); no buffer donation (with it, runs with
# eigh/QR inside the scan hung on this machine's XLA CPU runtime).


class Trainer:
    def __init__(self, name, task):
        entry = REGISTRY[name]
        read = eval_params(name)

        def init_one(lr, wd, params):
            state = entry.factory(gradtx, lr, wd, task).init(params)
            return state, task.val_loss(read(state, params))

        def chunk_one(lr, wd, params, state, batches):
            opt = entry.factory(gradtx, lr, wd, task)

            def step(carry, batch):
                p, s = carry
                grads = jax.grad(task.loss)(p, batch)
                updates, s = opt.update(grads, s, p)
                return (gradtx.apply_updates(p, updates), s), None

            (params, state), _ = jax.lax.scan(step, (params, state), batches)
            return params, state, task.val_loss(read(state, params))

        self.task = task
        if entry.batched:
            self.init = jax.jit(jax.vmap(init_one))
            self.chunk = jax.jit(jax.vmap(chunk_one))
        else:
            # One member after the other (lax.map): under vmap a lax.cond whose predicate
            # is batched (the step count in the state) runs both branches, so a
            # preconditioner refreshed every 10 steps would be recomputed every step.
            self.init = jax.jit(lambda *args: jax.lax.map(lambda a: init_one(*a), args))
            self.chunk = jax.jit(lambda *args: jax.lax.map(lambda a: chunk_one(*a), args))
        self.batches = {}

    def _batches(self, seed):
        if seed not in self.batches:
            self.batches[seed] = np.asarray(self.task.batches(seed))
        return self.batches[seed]

    def run(self, lrs, wds, seeds, *, stop_all, limit=None):
        """Train members (lrs[i], wds[i], seeds[i]); evaluate every ``eval_every`` steps.

        Stops when every member (``stop_all``) or one member reached the
        target, when all diverged, or at ``limit`` (default ``max_steps``).
        Returns eval steps, held-out losses (evals x members), seconds per step
        of one member, seconds of the first (compiling) call.
        """
        task = self.task
        limit = min(limit or task.max_steps, task.max_steps)
        lrs, wds = jnp.asarray(lrs, jnp.float32), jnp.asarray(wds, jnp.float32)
        params = jax.tree.map(lambda *x: jnp.stack(x), *[task.init(s) for s in seeds])
        data = np.stack([self._batches(s) for s in seeds])
        t0 = time.perf_counter()
        state, val = self.init(lrs, wds, params)
        steps, losses = [0], [np.asarray(val)]
        first, timed, n_timed = 0.0, 0.0, 0
        done = np.zeros(len(seeds), bool)
        for start in range(0, limit, task.eval_every):
            batch = jnp.asarray(data[:, start : start + task.eval_every])
            t1 = time.perf_counter()
            params, state, val = self.chunk(lrs, wds, params, state, batch)
            val = np.asarray(val)  # blocks
            if start == 0:
                first = time.perf_counter() - t0
            else:
                timed += time.perf_counter() - t1
                n_timed += batch.shape[1]
            steps.append(start + batch.shape[1])
            losses.append(val)
            done |= (val <= task.target) | ~np.isfinite(val)
            reached = val <= task.target
            if (done.all() if stop_all else reached.any()) or (~np.isfinite(val)).all():
                break
        per_step = timed / max(n_timed, 1) / len(seeds)
        return np.asarray(steps), np.stack(losses), per_step, first


def sweep(trainer, entry, task_name, log):
    """The selection seed's sweep: (chosen lr, chosen wd, rows of the sweep)."""
    task = trainer.task
    centre = entry.lr[task_name]
    lrs = [centre * f for f in GRID]
    rows = []

    def go(lr_list, wd_list, limit=None):
        steps, losses, _, first = trainer.run(
            lr_list, wd_list, [SELECTION_SEED] * len(lr_list), stop_all=False, limit=limit
        )
        for i, (lr, wd) in enumerate(zip(lr_list, wd_list)):
            hit = crossing(steps, losses[:, i], task.target)
            rows.append(
                {
                    "lr": lr,
                    "weight_decay": wd,
                    "steps": hit,
                    "stopped_at": int(steps[-1]),
                    "final_loss": float(losses[-1, i]),
                }
            )
            log(f"  sweep lr {lr:<9.4g} wd {wd:<6g} steps {_fmt(hit)} (loss {losses[-1, i]:.3f})")
        log(f"  ({first:.1f} s for the first chunk, compile included)")

    def best():
        return min(
            rows,
            key=lambda r: (
                r["steps"] if r["steps"] is not None else math.inf,
                r["final_loss"] if math.isfinite(r["final_loss"]) else math.inf,
            ),
        )

    go(lrs, [entry.wd[0]] * len(lrs))
    if len(entry.wd) > 1:
        # The other weight decays at the best learning rate, then at twice and half
        # of it, as many as the sweep's width: the same compiled program runs them.
        b = best()
        pairs = [(b["lr"] * f, w) for f in (1.0, 2.0, 0.5) for w in entry.wd[1:]][: len(GRID)]
        pairs += [pairs[-1]] * (len(GRID) - len(pairs))
        limit = None
        if b["steps"] is not None:
            limit = int(math.ceil(b["steps"] / task.eval_every)) * task.eval_every
        n = len(rows)
        go([p[0] for p in pairs], [p[1] for p in pairs], limit)
        seen = set()
        for row in rows[n:]:  # drop the padding's repeats
            key = (row["lr"], row["weight_decay"])
            if key in seen:
                rows.remove(row)
            seen.add(key)
    b = best()
    return b["lr"], b["weight_decay"], rows


def run_optimizer(name, task_name, task, n_seeds, log):
    entry = REGISTRY[name]
    trainer = Trainer(name, task)
    t0 = time.perf_counter()
    lr, wd, rows = sweep(trainer, entry, task_name, log)
    seeds = list(range(SELECTION_SEED + 1, SELECTION_SEED + 1 + n_seeds))
    steps, losses, per_step, first = trainer.run(
        [lr] * n_seeds, [wd] * n_seeds, seeds, stop_all=True
    )
    hits = [crossing(steps, losses[:, i], task.target) for i in range(n_seeds)]
    result = {
        "lr": lr,
        "weight_decay": wd,
        "seeds": seeds,
        "selection_seed": SELECTION_SEED,
        "steps": [None if h is None else round(h, 1) for h in hits],
        "seconds": [None if h is None else round(h * per_step, 2) for h in hits],
        "seconds_per_step": per_step,
        "final_loss": [float(x) for x in losses[-1]],
        "stopped_at": int(steps[-1]),
        "sweep": rows,
        "curve": {
            "steps": steps.tolist(),
            "val_loss": [[round(float(x), 4) for x in losses[:, i]] for i in range(n_seeds)],
        },
        "minutes": (time.perf_counter() - t0) / 60,
        "note": entry.note,
    }
    reached = [h for h in hits if h is not None]
    if len(reached) == n_seeds:
        mean, lo, hi = t_interval(reached)
        result.update(mean=mean, interval=[lo, hi])
    log(
        f"{name:<20} {task_name:<7} lr {lr:.4g} wd {wd:g}: steps {result['steps']} "
        f"({per_step * 1e3:.2f} ms/step, {result['minutes']:.1f} min)"
    )
    return result


def _fmt(x, spec=".0f"):
    return "-" if x is None else format(x, spec)


# ----------------------------------------------------------------------------
# The results file, the table and the figure.


def merge(path, tasks, results, run_info):
    """Merge ``results`` (task -> name -> entry) into the JSON at ``path``."""
    data = MEMORY.get(path) or {"tasks": {}, "runs": []}
    if path and os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    for task_name, by_name in results.items():
        task = tasks[task_name]
        old = data["tasks"].get(task_name)
        fresh = {
            "target": task.target,
            "description": task.description,
            "max_steps": task.max_steps,
            "eval_every": task.eval_every,
            "optimizers": {},
        }
        same = ("target", "max_steps", "eval_every")
        if old is None or any(old.get(k) != fresh[k] for k in same):
            data["tasks"][task_name] = old = fresh  # another task: start again
        old["description"] = task.description
        old["optimizers"].update(by_name)
    runs = [r for r in data.setdefault("runs", []) if r.get("started") != run_info["started"]]
    data["runs"] = runs + [run_info]
    data["interval"] = "95% Student-t interval over the reported seeds (mean -+ t * s / sqrt(n))"
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=1)
    else:
        MEMORY[path] = data
    return data


def paired_ratios(entry, base):
    """Per-seed steps / AdamW's steps on the same seeds (None unless all reached)."""
    if base is None or None in entry["steps"] or None in base["steps"]:
        return None
    if entry["seeds"] != base["seeds"]:
        return None
    return [a / b for a, b in zip(entry["steps"], base["steps"])]


def _interval(lo, hi, spec=".0f"):
    return "-" if lo is None or not math.isfinite(lo) else f"[{lo:{spec}}, {hi:{spec}}]"


def task_markdown(task_name, task):
    opts = task["optimizers"]
    base = opts.get("adamw")
    order = sorted(opts, key=lambda n: opts[n].get("mean", math.inf))
    lines = [
        f"## Task `{task_name}`: held-out loss <= {task['target']}",
        "",
        task["description"] + ".",
        f"Held-out loss every {task['eval_every']} steps; at most {task['max_steps']} steps.",
        "",
        "| optimizer | lr | wd | mean steps | 95% interval | per seed | x AdamW (paired) "
        "| seconds to target | ms/step | sweep on seed 0 (lr/wd: steps) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in order:
        e = opts[name]
        per_seed = ", ".join(_fmt(s) for s in e["steps"])
        ratios = paired_ratios(e, base)
        if ratios:
            m, lo, hi = t_interval(ratios)
            ratio = f"{m:.2f} {_interval(lo, hi, '.2f')}"
        else:
            ratio = "-"
        secs = [s for s in e["seconds"] if s is not None]
        seconds = f"{np.mean(secs):.1f}" if len(secs) == len(e["seconds"]) else "-"
        lo, hi = e.get("interval", [None, None])
        mean = (
            _fmt(e.get("mean"))
            if "mean" in e
            else f"{sum(s is not None for s in e['steps'])}/{len(e['steps'])} reached"
        )
        sweep = ", ".join(
            f"{r['lr']:.3g}/{r['weight_decay']:g}: {_fmt(r['steps'])}" for r in e["sweep"]
        )
        edge = (
            " (grid edge)"
            if e["lr"] in (min(r["lr"] for r in e["sweep"]), max(r["lr"] for r in e["sweep"]))
            else ""
        )
        lines.append(
            f"| {name} | {e['lr']:.3g}{edge} | {e['weight_decay']:g} | {mean} | {_interval(lo, hi)} | "
            f"{per_seed} | {ratio} | {seconds} | {e['seconds_per_step'] * 1e3:.1f} | {sweep} |"
        )
    lines.append("")
    if base is not None and "mean" in base:
        rivals = [n for n in order if n != "adamw" and "mean" in opts[n]]
        if rivals:
            best = opts[rivals[0]]
            ratio = best["mean"] / base["mean"]
            apart = best["interval"][1] < base["interval"][0]
            met = ratio <= GOAL and apart
            lines += [
                f"Headline: best is {rivals[0]}, mean {best['mean']:.0f} steps = {ratio:.2f} x "
                f"AdamW's {base['mean']:.0f}; its interval "
                f"{'does not overlap' if apart else 'overlaps'} AdamW's. "
                f"Goal (<= {GOAL} x with intervals apart): {'met' if met else 'not met'}.",
                "",
            ]
    notes = [f"- {n}: {opts[n]['note']}." for n in order if opts[n].get("note")]
    return "\n".join(lines + notes + [""])


def markdown(data, skipped, notes=""):
    first = next(iter(data["tasks"].values()))["optimizers"]
    example = next(iter(first.values()), {"seeds": [1, 2, 3]})
    lines = [
        "# Steps to a target held-out loss (CPU)",
        "",
        f"Each optimizer's learning rate (5 values a factor of 2 apart; weight decay too for "
        f"the AdamW family and Lion) is chosen on selection seed {SELECTION_SEED}, which is "
        f"not among the reported seeds ({', '.join(map(str, example['seeds']))}); the chosen "
        f"setting then trains on each reported seed (its own initialisation and batches, the "
        f"same for every optimizer). Steps to the target are interpolated linearly between "
        f"the two held-out evaluations around the crossing. Mean and {data['interval']}; "
        f"'x AdamW (paired)' is the mean of the per-seed ratios to AdamW with its interval. "
        f"Seconds: steps x the measured time per step of one run (compile and evaluation "
        f"excluded) on a 2-core machine shared with other jobs; read the steps, but note "
        f"that a SOAP or PSGD step costs several AdamW steps. In the sweep column '-' means "
        f"not reached when the sweep stopped (it stops once one setting reaches the target); "
        f"'grid edge' marks a chosen learning rate at the end of the swept range.",
        "",
    ]
    for task_name, task in data["tasks"].items():
        lines.append(task_markdown(task_name, task))
    if skipped:
        lines += [f"Skipped (not in gradtx at this commit): {', '.join(skipped)}.", ""]
    lines += ["## Runs", ""]
    for run in data.get("runs", []):
        lines += [
            f"- `{run['command']}` ({run['minutes']:.1f} minutes): {', '.join(run['optimizers'])}"
        ]
    last = data.get("runs", [{}])[-1].get("machine", {})
    lines += ["", "## Machine (last run)", "", machine_markdown(last), "", NOTES_MARKER, notes]
    return "\n".join(lines)


def figure(data, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = data["tasks"]
    fig = Figure(figsize=(13, 4.2 * len(tasks)), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(tasks), 2, squeeze=False)
    for (ax_bar, ax_curve), (task_name, task) in zip(axes, tasks.items()):
        opts = task["optimizers"]
        order = sorted(opts, key=lambda n: opts[n].get("mean", math.inf))
        for i, name in enumerate(order):
            e = opts[name]
            if "mean" in e:
                lo, hi = e["interval"]
                ax_bar.barh(
                    i,
                    e["mean"],
                    xerr=[[e["mean"] - lo], [hi - e["mean"]]],
                    color="C0" if name != "adamw" else "C3",
                    alpha=0.6,
                    capsize=3,
                )
            reached = [s for s in e["steps"] if s is not None]
            ax_bar.plot(reached, [i] * len(reached), "k.", ms=4)
            curve = np.asarray(e["curve"]["val_loss"], float)
            (line,) = ax_curve.plot(e["curve"]["steps"], curve.mean(axis=0), label=name, lw=1)
        ax_bar.set_yticks(range(len(order)), order, fontsize="small")
        ax_bar.invert_yaxis()
        ax_bar.set(
            xlabel="steps to target (mean, 95% t-interval; dots: seeds)",
            title=f"{task_name}: held-out loss <= {task['target']}",
        )
        ax_curve.axhline(task["target"], color="k", lw=0.8, ls="--")
        ax_curve.set_ylim(0.9 * task["target"], task["target"] + max(0.3 * task["target"], 0.35))
        ax_curve.set(xlabel="step", ylabel="held-out loss, mean over seeds")
        ax_curve.legend(fontsize="x-small", ncol=2)
        for ax in (ax_bar, ax_curve):
            ax.grid(alpha=0.3)
    fig.savefig(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--optimizers",
        default=",".join(REGISTRY),
        help="comma-separated registry names (default: all)",
    )
    parser.add_argument("--tasks", default="digits,lm", help="comma-separated: lm, digits")
    parser.add_argument(
        "--seeds",
        type=int,
        default=len(GRID),
        help="reported seeds 1..n (5: the sweep's compiled program)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny tasks; writes nothing unless --out is given"
    )
    parser.add_argument(
        "--out", default=None, help=f"results path without extension (default {OUT})"
    )
    parser.add_argument(
        "--report", action="store_true", help="only rewrite the .md and .png from the .json"
    )
    args = parser.parse_args(argv)
    if args.report:
        out = args.out or OUT
        with open(out + ".json") as f:
            data = json.load(f)
        notes = ""
        if os.path.exists(out + ".md"):
            with open(out + ".md") as f:
                text = f.read()
            if NOTES_MARKER in text:
                notes = text.split(NOTES_MARKER, 1)[1].lstrip("\n")
        skipped = [n for n in REGISTRY if missing(n)]
        with open(out + ".md", "w") as f:
            f.write(markdown(data, skipped, notes))
        figure(data, out + ".png")
        return 0

    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown optimizer {unknown[0]!r}; choose from {', '.join(REGISTRY)}")
    task_names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if any(t not in TASKS for t in task_names):
        parser.error(f"unknown task in {args.tasks!r}; choose from {', '.join(TASKS)}")
    out = args.out or (None if args.quick else OUT)
    n_seeds = args.seeds

    def log(msg):
        print(msg, flush=True)

    skipped = []
    for name in names:
        if missing(name):
            log(f"note: skipping {name}: gradtx has no {', '.join(missing(name))} yet")
            skipped.append(name)
    present = [n for n in names if n not in skipped]
    tasks = quick_tasks() if args.quick else {t: TASKS[t]() for t in task_names}
    tasks = {t: tasks[t] for t in task_names}
    command = (
        "python benchmarks/steps_to_target.py"
        + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )
    start = time.perf_counter()
    run_info = {
        "command": command,
        "started": time.time(),
        "minutes": 0.0,
        "optimizers": [],
        "tasks": list(tasks),
        "machine": machine(),
    }
    text = ""
    for task_name, task in tasks.items():
        log(f"# {task_name}: {task.description}; target {task.target}")
        for name in present:
            try:
                result = run_optimizer(name, task_name, task, n_seeds, log)
            except Exception as err:  # a factory from another branch with other keywords
                log(f"note: skipping {name} on {task_name}: {type(err).__name__}: {err}")
                if name not in skipped:
                    skipped.append(name)
                continue
            if name not in run_info["optimizers"]:
                run_info["optimizers"].append(name)
            run_info["minutes"] = (time.perf_counter() - start) / 60
            # Written after every optimizer, so an interrupted run keeps what it finished.
            text = write(out, tasks, {task_name: {name: result}}, run_info, skipped)
    if out is None:
        print(text)
    else:
        log(text)
        log(f"wrote {out}.json, .md and .png")
    return 0


def write(out, tasks, results, run_info, skipped):
    """Merge ``results`` into ``out``.json and rewrite the .md and .png; the .md's text."""
    path = out + ".json" if out else None
    data = merge(path, tasks, results, run_info)
    notes = ""
    if out and os.path.exists(out + ".md"):
        with open(out + ".md") as f:
            text = f.read()
        if NOTES_MARKER in text:
            notes = text.split(NOTES_MARKER, 1)[1].lstrip("\n")
    text = markdown(data, skipped, notes)
    if out:
        with open(out + ".md", "w") as f:
            f.write(text)
        figure(data, out + ".png")
    return text


if __name__ == "__main__":
    sys.exit(main())
