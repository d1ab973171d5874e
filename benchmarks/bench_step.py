"""Time one full optimizer step: gradtx vs optax vs torch fused Adam, against the memory floor.

    python benchmarks/bench_step.py                      # all three cases
    python benchmarks/bench_step.py --case many_small --rounds 20

One step is ``update`` + ``apply_updates`` in one ``jax.jit`` with params and
optimizer state donated (torch: ``optimizer.step()``, in place).  The no-op
row is a jitted step that takes the same params (donated) and grads and
returns the params: the cost of the pytree interface alone.  The bf16-state
row is left out of the 2000-leaf case (one more per-leaf compile of minutes).
``--case all`` runs each case in its own process.  Cases:
one 4096x4096 leaf; a GPT-2-shaped model (148 leaves, 29.4M params); 2000
small leaves (2.05M params); on an accelerator also one 32768x32768 leaf
(1.07B params; ``--case billion``).

The floor: Adam in float32 must read params, grads, m and v and write params,
m and v: 28 bytes per parameter.  We time two kernels that move exactly those
28 bytes per parameter in ONE pass over a working set of the same size, and
take the faster as the floor: (a) a jitted, donated XLA loop over an
(N, 3) array and an (N,) array, ``x = x * a + g[:, None]`` (reads 16 B,
writes 12 B per parameter); (b) the same pass in torch, in place,
``x.add_(g[:, None])``.  Multi-leaf cases use one array of the total size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import _cases
import _harness as H
import jax
import jax.numpy as jnp
import numpy as np

import gradtx

LR = 1e-3


def jax_step(tx, apply):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def jax_runner(tx, params, grads, apply=gradtx.apply_updates):
    """A callable doing one blocking donated step; keeps its own params and state."""
    params = jax.tree.map(jnp.copy, params)
    state = tx.init(params)
    step = jax_step(tx, apply)
    box = [params, state]

    def run():
        box[0], box[1] = step(box[0], box[1], grads)
        H.block(box)

    return run


def floor_runners(n: int):
    """Two one-pass kernels moving 28 bytes per parameter (see the module docstring)."""
    runners = {}
    x = [jnp.full((n, 3), 0.5, jnp.float32)]
    g = jnp.full((n,), 1e-3, jnp.float32)
    kernel = jax.jit(lambda x, g: x * 0.999 + g[:, None], donate_argnums=0)

    def run_jax():
        x[0] = kernel(x[0], g)
        H.block(x[0])

    runners["floor: XLA one pass"] = run_jax
    try:
        import torch

        tx_ = torch.full((n, 3), 0.5)
        tg = torch.full((n, 1), 1e-3)

        def run_torch():
            tx_.add_(tg)

        if jax.default_backend() == "cpu":
            runners["floor: torch one pass"] = run_torch
    except ImportError:
        pass
    return runners


def torch_runner(shapes):
    """torch.optim.Adam(fused=True) (foreach if fused is unavailable), on the same shapes."""
    import torch

    device = (
        "cpu" if jax.default_backend() == "cpu" else ("cuda" if torch.cuda.is_available() else None)
    )
    if device is None:
        return None, None
    leaves = jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, tuple))
    params = [torch.nn.Parameter(torch.randn(s, device=device)) for s in leaves]
    for p in params:
        p.grad = torch.randn(p.shape, device=device) * 1e-2
    try:
        opt = torch.optim.Adam(params, lr=LR, fused=True)
        opt.step()
        kind = "fused"
    except (RuntimeError, TypeError):
        opt = torch.optim.Adam(params, lr=LR, foreach=True)
        kind = "foreach"

    def run():
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return run, f"torch Adam({kind}=True)"


def implementations(shapes, which):
    import optax

    params = _cases.arrays(shapes)
    grads = _cases.arrays(shapes, seed=1)
    grads = jax.tree.map(lambda g: g * 1e-2, grads)
    runners = {}
    if "gradtx" in which:
        runners["gradtx.adam"] = jax_runner(gradtx.adam(LR), params, grads)
    if "flatten" in which:
        runners["gradtx.flatten(adam)"] = jax_runner(gradtx.flatten(gradtx.adam(LR)), params, grads)
    if "packed" in which and len(jax.tree.leaves(params)) > 1:
        runners["gradtx.flatten(adam), packed params"] = jax_runner(
            gradtx.flatten(gradtx.adam(LR)), gradtx.pack(params), gradtx.pack(grads)
        )
    if "bf16" in which and len(jax.tree.leaves(params)) <= 500:
        runners["gradtx.adam(mu_dtype=bf16, nu_dtype=bf16)"] = jax_runner(
            gradtx.adam(LR, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16), params, grads
        )
    if "noop" in which:
        noop = jax.jit(lambda p, g: p, donate_argnums=0)
        box = [jax.tree.map(jnp.copy, params)]

        def run_noop():
            box[0] = noop(box[0], grads)
            H.block(box[0])

        runners["no-op step over the same pytree"] = run_noop
    if "optax" in which:
        runners["optax.adam"] = jax_runner(optax.adam(LR), params, grads, optax.apply_updates)
    if "optax_flatten" in which:
        runners["optax.flatten(adam)"] = jax_runner(
            optax.flatten(optax.adam(LR)), params, grads, optax.apply_updates
        )
    if "torch" in which:
        run, name = torch_runner(shapes)
        if run is not None:
            runners[name] = run
    return runners


def run_case(name, rounds, which):
    shapes = _cases.CASES[name]()
    n_leaves, n_params = _cases.count(shapes)
    if n_params > 200_000_000:
        # Each implementation keeps its own params and state (17 GB per Adam at 1B params):
        # time only gradtx, optax and torch against the floor.
        which = which & {"gradtx", "optax", "torch"}
    runners = implementations(shapes, which)
    runners.update(floor_runners(n_params))
    times = H.interleaved(runners, rounds)
    floors = {k: t for k, t in times.items() if k.startswith("floor")}
    floor_name = min(floors, key=lambda k: np.median(floors[k]))
    floor = floors[floor_name]
    optax_t = times.get("optax.adam")
    torch_name = next((k for k in times if k.startswith("torch")), None)
    rows = []
    for impl, t in times.items():
        rows.append(
            [
                name,
                impl,
                H.fmt_ms(t),
                H.fmt_ratio(H.paired_ratio(t, floor)),
                H.fmt_ratio(H.paired_ratio(t, optax_t)) if optax_t is not None else "-",
                H.fmt_ratio(H.paired_ratio(t, times[torch_name])) if torch_name else "-",
                H.machine()["device"],
            ]
        )
    gbs = 28 * n_params / np.median(floor) / 1e9
    note = (
        f"{name}: {n_leaves} leaves, {n_params / 1e6:.2f}M params, float32; floor = "
        f"'{floor_name}', {np.median(floor) * 1e3:.2f} ms = {gbs:.1f} GB/s at 28 B/param; "
        f"{rounds} rounds"
    )
    return rows, note


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="all", choices=["all", *_cases.CASES])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--impl",
        default="gradtx,flatten,packed,bf16,noop,optax,optax_flatten,torch",
        help="comma-separated subset of gradtx,flatten,packed,bf16,noop,optax,optax_flatten,torch",
    )
    parser.add_argument("--out", default=None, help="write the markdown table to this file")
    parser.add_argument("--rows-json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    which = set(args.impl.split(","))
    info = H.machine()
    rows, notes = [], []
    if args.case != "all":
        rows, note = run_case(args.case, args.rounds, which)
        notes.append(note)
        print(H.markdown_table(HEADER, rows), "\n" + note + "\n", flush=True)
    else:
        # One process per case: thousands of compiled per-leaf kernels from earlier cases
        # would otherwise pile up (LLVM maps memory per kernel; Linux caps the mappings).
        for case in _cases.default_cases(jax.default_backend()):
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "rows.json")
                subprocess.run(
                    [
                        sys.executable,
                        os.path.abspath(__file__),
                        "--case",
                        case,
                        "--rounds",
                        str(args.rounds),
                        "--impl",
                        args.impl,
                        "--rows-json",
                        out,
                    ],
                    check=True,
                )
                with open(out) as f:
                    r, note = json.load(f)
            rows += r
            notes.append(note)
    if args.rows_json:
        with open(args.rows_json, "w") as f:
            json.dump([rows, notes[0]], f)
        return
    text = (
        "# One Adam step (update + apply, donated)\n\n"
        "Command: `python benchmarks/bench_step.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None and k != "out")
        + "`\n\n"
        "Times: median [25th-75th percentile] over rounds; ratios: median [25th-75th "
        "percentile] of per-round ratios (every implementation runs once per round, "
        "shuffled, so ratios are paired).\n\n"
        + H.markdown_table(HEADER, rows)
        + "\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n\n## Machine\n\n"
        + H.machine_markdown(info)
        + "\n"
    )
    H.write_result(args.out, text)


HEADER = [
    "case",
    "implementation",
    "median ms [IQR]",
    "x floor",
    "x optax.adam",
    "x torch",
    "device",
]


if __name__ == "__main__":
    main()
