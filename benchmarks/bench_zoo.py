"""One step of every optimizer gradtx shares with optax, gradtx against optax.

    python benchmarks/bench_zoo.py                          # the transformer case, 20 rounds
    python benchmarks/bench_zoo.py --only lion,adafactor --rounds 10
    python benchmarks/bench_zoo.py --case many_small --out benchmarks/results/zoo_step_cpu_many_small.md

One step is ``update`` + ``apply_updates`` in one ``jax.jit`` with params and
optimizer state donated, for the same optimizer built under the same name
with the same arguments in gradtx and in optax (``optax`` or
``optax.contrib``).  The two run in paired rounds (each round runs both, in
a shuffled order), one optimizer at a time so that only two optimizer
states are alive; the ratio column is the median and interquartile range of
the per-round ratios gradtx / optax.  Optimizers that need the loss
(``polyak_sgd``, ``momo``, ``momo_adam``, ``lbfgs``) get ``value=`` (and
lbfgs ``value_fn`` / ``grad``) of a quadratic, the same for both.

A ratio above 1.05 is printed in the summary line as slower by more than 5%;
on a machine shared with other jobs, rerun such a row with ``--only`` and
more rounds before concluding.
"""

from __future__ import annotations

import argparse

import _cases
import _harness as H
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib

import gradtx
from gradtx._tree import distinct_buffers

LR = 1e-3
HEADER = ["optimizer", "gradtx ms [IQR]", "optax ms [IQR]", "x optax [IQR]", "device"]

# name -> (keyword arguments for both libraries, which optax namespace)
ZOO = {
    "sgd": (dict(learning_rate=LR, momentum=0.9), optax),
    "adam": (dict(learning_rate=LR), optax),
    "adamw": (dict(learning_rate=LR), optax),
    "nadam": (dict(learning_rate=LR), optax),
    "nadamw": (dict(learning_rate=LR), optax),
    "radam": (dict(learning_rate=LR), optax),
    "amsgrad": (dict(learning_rate=LR), optax),
    "adamax": (dict(learning_rate=LR), optax),
    "adamaxw": (dict(learning_rate=LR), optax),
    "adabelief": (dict(learning_rate=LR), optax),
    "adan": (dict(learning_rate=LR), optax),
    "yogi": (dict(learning_rate=LR), optax),
    "novograd": (dict(learning_rate=LR), optax),
    "rmsprop": (dict(learning_rate=LR, momentum=0.9), optax),
    "adagrad": (dict(learning_rate=LR), optax),
    "adadelta": (dict(learning_rate=LR), optax),
    "adafactor": (dict(learning_rate=LR), optax),
    "sm3": (dict(learning_rate=LR), optax),
    "lion": (dict(learning_rate=LR), optax),
    "lamb": (dict(learning_rate=LR), optax),
    "lars": (dict(learning_rate=LR), optax),
    "fromage": (dict(learning_rate=LR), optax),
    "sign_sgd": (dict(learning_rate=LR), optax),
    "signum": (dict(learning_rate=LR), optax),
    "rprop": (dict(learning_rate=LR), optax),
    "noisy_sgd": (dict(learning_rate=LR, key=0), optax),
    "optimistic_gradient_descent": (dict(learning_rate=LR), optax),
    "optimistic_adam_v2": (dict(learning_rate=LR), optax),
    "polyak_sgd": (dict(max_learning_rate=LR), optax),
    "lbfgs": (dict(), optax),
    "ademamix": (dict(learning_rate=LR), optax.contrib),
    "simplified_ademamix": (dict(learning_rate=LR), optax.contrib),
    "adopt": (dict(learning_rate=LR), optax.contrib),
    "schedule_free_adamw": (dict(learning_rate=LR), optax.contrib),
    "schedule_free_sgd": (dict(learning_rate=LR), optax.contrib),
    "prodigy": (dict(), optax.contrib),
    "dadapt_adamw": (dict(), optax.contrib),
    "dog": (dict(), optax.contrib),
    "dowg": (dict(), optax.contrib),
    "cocob": (dict(), optax.contrib),
    "madgrad": (dict(learning_rate=LR), optax.contrib),
    "momo": (dict(), optax.contrib),
    "momo_adam": (dict(), optax.contrib),
    "muon": (dict(learning_rate=LR), optax.contrib),
}
NEEDS_LOSS = ("polyak_sgd", "momo", "momo_adam", "lbfgs")


def _loss(params):
    return 0.5 * sum(jnp.sum(p.astype(jnp.float32) ** 2) for p in jax.tree.leaves(params))


def runner(tx, name, params, grads, apply):
    """One blocking donated step per call; keeps its own params and state."""

    def step(params, state, grads):
        extra = {}
        if name in NEEDS_LOSS:
            extra["value"] = _loss(params)
        if name == "lbfgs":
            extra.update(grad=grads, value_fn=_loss)
        updates, state = tx.update(grads, state, params, **extra)
        return apply(params, updates), state

    jitted = jax.jit(step, donate_argnums=(0, 1))
    box = [jax.tree.map(jnp.copy, params)]
    # optax's lbfgs starts two state fields from one array; give each its own buffer so
    # that both libraries' states can be donated.
    box.append(distinct_buffers(tx.init(box[0]), box[0]))

    def run():
        box[0], box[1] = jitted(box[0], box[1], grads)
        H.block(box)

    return run


def measure(name, params, grads, rounds):
    kwargs, namespace = ZOO[name]
    runners = {
        "gradtx": runner(
            getattr(gradtx, name)(**kwargs), name, params, grads, gradtx.apply_updates
        ),
        "optax": runner(
            getattr(namespace, name)(**kwargs), name, params, grads, optax.apply_updates
        ),
    }
    with jax.numpy_dtype_promotion("standard"):  # some optax optimizers mix dtypes
        return H.interleaved(runners, rounds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="transformer", choices=sorted(_cases.CASES))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--only", default=None, help="comma-separated optimizer names")
    parser.add_argument("--out", default=None, help="write the markdown table to this file")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(ZOO)
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        parser.error(f"unknown optimizer(s) {unknown}; known: {', '.join(ZOO)}")
    shapes = _cases.CASES[args.case]()
    n_leaves, n_params = _cases.count(shapes)
    params = _cases.arrays(shapes)
    grads = jax.tree.map(lambda g: g * 1e-2, _cases.arrays(shapes, seed=1))
    device = H.machine()["device"]
    rows, ratios = [], {}
    for name in names:
        times = measure(name, params, grads, args.rounds)
        ratio = H.paired_ratio(times["gradtx"], times["optax"])
        ratios[name] = ratio[0]
        rows.append(
            [name, H.fmt_ms(times["gradtx"]), H.fmt_ms(times["optax"]), H.fmt_ratio(ratio), device]
        )
        print(" | ".join(rows[-1]), flush=True)
    slower = {n: r for n, r in ratios.items() if r > 1.05}
    command = "python benchmarks/bench_zoo.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if v is not None and k != "out"
    )
    text = (
        f"# One step per optimizer: gradtx vs optax ({args.case})\n\n"
        f"Command: `{command}`\n\n"
        f"{args.case}: {n_leaves} leaves, {n_params / 1e6:.2f}M params, float32; "
        "one step = update + apply_updates, jitted, params and state donated.  "
        "Times: median [25th-75th percentile] over rounds; ratio: median [IQR] of the "
        "per-round ratios gradtx / optax (both run in every round, shuffled).\n\n"
        + H.markdown_table(HEADER, rows)
        + "\n\n"
        + f"Median of the per-optimizer ratios: {np.median(list(ratios.values())):.3f}; "
        + (
            "slower than optax by more than 5%: "
            + ", ".join(f"{n} ({r:.2f}x)" for n, r in slower.items())
            if slower
            else "none slower than optax by more than 5%"
        )
        + ".\n\n## Machine\n\n"
        + H.machine_markdown(H.machine())
    )
    H.write_result(args.out, text)


if __name__ == "__main__":
    main()
