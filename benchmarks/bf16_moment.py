"""Accuracy, not speed: Adam's second moment stored in bfloat16, gradtx vs optax vs torch.

    python benchmarks/bf16_moment.py [--out benchmarks/results/bf16_moment_cpu.md]

bf16 params, unit-variance Gaussian gradients (rounded to bf16), b2 = 0.999,
3000 steps over 1024 elements.  The exact bias-corrected second moment
v_t / (1 - b2^t) has expectation E[g^2] = 1.  Rounded to nearest in bf16,
b2 * v rounds back to v once v is large enough, so v stops decaying and
ratchets up; gradtx stores a bf16 v by stochastic rounding.  A float32 run of
each library is the reference row.
"""

from __future__ import annotations

import argparse

import _harness as H
import jax
import jax.numpy as jnp
import numpy as np

import gradtx

N, STEPS, B2 = 1024, 3000, 0.999


def _gradients(dtype):
    keys = jax.random.split(jax.random.PRNGKey(3), STEPS)
    return jax.vmap(lambda k: jax.random.normal(k, (N,)))(keys).astype(jnp.bfloat16).astype(dtype)


def jax_v_hat(opt, dtype, get_nu):
    params = jnp.zeros(N, dtype)
    grads = _gradients(dtype)

    def body(i, state):
        return opt.update(grads[i], state, params)[1]

    state = jax.jit(lambda s: jax.lax.fori_loop(0, STEPS, body, s))(opt.init(params))
    nu = get_nu(state)
    return str(nu.dtype), float(jnp.mean(nu.astype(jnp.float32))) / (1 - B2**STEPS)


def torch_v_hat(dtype):
    import torch

    grads = torch.from_numpy(np.array(_gradients(jnp.float32)))
    tdtype = {jnp.bfloat16: torch.bfloat16, jnp.float32: torch.float32}[dtype]
    p = torch.zeros(N, dtype=tdtype, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.0, betas=(0.9, B2))
    for i in range(STEPS):
        p.grad = grads[i].to(tdtype)
        opt.step()
    v = opt.state[p]["exp_avg_sq"]
    return str(v.dtype).replace("torch.", ""), float(v.float().mean()) / (1 - B2**STEPS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import optax

    rows = []
    for dtype in (jnp.float32, jnp.bfloat16):
        name = jnp.dtype(dtype).name
        runs = {
            "gradtx.adam": lambda: jax_v_hat(gradtx.adam(0.0), dtype, lambda s: s.states[2].nu),
            "optax.adam": lambda: jax_v_hat(optax.adam(0.0), dtype, lambda s: s[0].nu),
        }
        try:
            import torch  # noqa: F401

            runs["torch.optim.Adam"] = lambda: torch_v_hat(dtype)
        except ImportError:
            pass
        for impl, run in runs.items():
            stored, v_hat = run()
            rows.append([name, impl, stored, f"{v_hat:.4f}", f"{v_hat - 1:+.1%}"])
    header = ["params", "implementation", "v stored as", "mean v_hat (exact: 1)", "bias"]
    text = (
        "# Adam's second moment in bfloat16: bias after 3000 steps\n\n"
        "Command: `python benchmarks/bf16_moment.py`\n\n"
        + H.markdown_table(header, rows)
        + "\n\n"
        + __doc__.split("\n\n", 2)[1]
        + "\n\n"
        "## Machine\n\n" + H.machine_markdown(H.machine()) + "\n"
    )
    H.write_result(args.out, text)


if __name__ == "__main__":
    main()
