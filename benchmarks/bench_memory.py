"""Memory of one compiled Adam step: XLA's ``memory_analysis()``, gradtx vs optax.

    python benchmarks/bench_memory.py
    python benchmarks/bench_memory.py --case one_leaf

For each pytree the step (update + apply) is compiled with params and state
donated, and once without donation.  Reported, in MB: arguments, outputs,
argument bytes aliased to outputs (donation), and temporaries (scratch XLA
allocates beyond arguments and outputs).  Also the optimizer state size with
float32 and with bfloat16 moments (``mu_dtype``/``nu_dtype``).  Nothing runs;
only compiles, so it is deterministic whatever the machine's load.
"""

from __future__ import annotations

import argparse

import _cases
import _harness as H
import jax
import jax.numpy as jnp

import gradtx

MB = 1e6


def analyse(tx, params, apply, donate):
    state = tx.init(params)

    def step(p, s, g):
        updates, s = tx.update(g, s, p)
        return apply(p, updates), s

    jitted = jax.jit(step, donate_argnums=(0, 1) if donate else ())
    compiled = jitted.lower(params, state, params).compile()
    m = compiled.memory_analysis()
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    return m, state_bytes


def main():
    import optax

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="all", choices=["all", *_cases.CASES])
    parser.add_argument(
        "--small-leaves",
        type=int,
        default=500,
        help="leaves of the many_small case (per-leaf compiles are slow)",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    info = H.machine()
    bf16 = jnp.bfloat16
    impls = {
        "gradtx.adam": (lambda: gradtx.adam(1e-3), gradtx.apply_updates),
        "gradtx.adam(mu_dtype=bf16, nu_dtype=bf16)": (
            lambda: gradtx.adam(1e-3, mu_dtype=bf16, nu_dtype=bf16),
            gradtx.apply_updates,
        ),
        "gradtx.flatten(adam)": (lambda: gradtx.flatten(gradtx.adam(1e-3)), gradtx.apply_updates),
        "gradtx.flatten(adam), packed params": (
            lambda: gradtx.flatten(gradtx.adam(1e-3)),
            gradtx.apply_updates,
        ),
        "optax.adam": (lambda: optax.adam(1e-3), optax.apply_updates),
        "optax.adam(mu_dtype=bf16)": (lambda: optax.adam(1e-3, mu_dtype=bf16), optax.apply_updates),
    }
    header = [
        "case",
        "implementation",
        "donated",
        "state MB",
        "arguments MB",
        "outputs MB",
        "aliased MB",
        "temporaries MB",
        "device",
    ]
    rows = []
    cases = _cases.default_cases(jax.default_backend()) if args.case == "all" else [args.case]
    for case in cases:
        shapes = (
            _cases.many_small(args.small_leaves) if case == "many_small" else _cases.CASES[case]()
        )
        params = _cases.arrays(shapes, fill=0.5)
        n_leaves, n_params = _cases.count(shapes)
        label = f"{case} ({n_leaves} leaves, {n_params / 1e6:.2f}M)"
        for name, (make, apply) in impls.items():
            tree = gradtx.pack(params) if "packed params" in name else params
            for donate in (True, False):
                m, state_bytes = analyse(make(), tree, apply, donate)
                rows.append(
                    [
                        label,
                        name,
                        "yes" if donate else "no",
                        f"{state_bytes / MB:.1f}",
                        f"{m.argument_size_in_bytes / MB:.1f}",
                        f"{m.output_size_in_bytes / MB:.1f}",
                        f"{m.alias_size_in_bytes / MB:.1f}",
                        f"{m.temp_size_in_bytes / MB:.3f}",
                        info["device"],
                    ]
                )
                print(" | ".join(str(c) for c in rows[-1]), flush=True)
    text = (
        "# Memory of one compiled Adam step (`compiled.memory_analysis()`)\n\n"
        f"Command: `python benchmarks/bench_memory.py --case {args.case} --small-leaves "
        f"{args.small_leaves}`\n\n"
        "Arguments include the gradients (never donated). 'aliased' is the argument "
        "memory reused for outputs; with donation every output aliases its input.\n\n"
        + H.markdown_table(header, rows)
        + "\n\n## Machine\n\n"
        + H.machine_markdown(info)
        + "\n"
    )
    H.write_result(args.out, text)


if __name__ == "__main__":
    main()
