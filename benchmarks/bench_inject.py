"""Cost of injected hyperparameters: compiles over a learning-rate sweep, and step time.

A sweep over learning rates with the plain optimizer compiles one step per
value (the rate is a constant of the program); with ``inject_hyperparams``
it compiles once.  The per-step time of the compiled step should be the same.

    python benchmarks/bench_inject.py [--size 1000000] [--repeats 50]

Prints medians over repeats (the two steps timed turn by turn, so that they
share the machine's load), and the median ratio injected / plain, on the
default JAX device.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import gradtx


def make_step(opt):
    @jax.jit
    def step(params, state, grad):
        updates, state = opt.update(grad, state, params)
        return gradtx.apply_updates(params, updates), state

    return step


def interleaved_step_times(steps, repeats):
    """Median seconds per step of each (step, params, state, grad), timed turn by turn."""
    runs = [list(run) for run in steps]
    times = [[] for _ in runs]
    for run in runs:  # warm up (compile) first
        run[1], run[2] = run[0](run[1], run[2], run[3])
        jax.block_until_ready(run[1])
    for _ in range(repeats):
        for run, t in zip(runs, times):
            start = time.perf_counter()
            run[1], run[2] = run[0](run[1], run[2], run[3])
            jax.block_until_ready(run[1])
            t.append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times], float(
        np.median(np.array(times[1]) / np.array(times[0]))
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--sweep", type=int, default=5)
    args = parser.parse_args()
    params = {"w": jnp.ones((args.size,), jnp.float32)}
    grad = {"w": jnp.full((args.size,), 0.01, jnp.float32)}
    rates = [10.0**-k for k in range(1, args.sweep + 1)]

    start = time.perf_counter()
    plain_compiles = 0
    for lr in rates:
        opt = gradtx.adamw(lr, weight_decay=1e-4)
        step = make_step(opt)
        jax.block_until_ready(step(params, opt.init(params), grad))
        plain_compiles += step._cache_size()
    plain_sweep = time.perf_counter() - start

    start = time.perf_counter()
    opt = gradtx.inject_hyperparams(gradtx.adamw)(learning_rate=rates[0], weight_decay=1e-4)
    step = make_step(opt)
    for lr in rates:
        state = gradtx.set_hyperparams(opt.init(params), learning_rate=lr)
        jax.block_until_ready(step(params, state, grad))
    injected_sweep = time.perf_counter() - start

    plain_opt = gradtx.adamw(1e-3, weight_decay=1e-4)
    (plain_t, injected_t), ratio = interleaved_step_times(
        [
            (make_step(plain_opt), params, plain_opt.init(params), grad),
            (step, params, opt.init(params), grad),
        ],
        args.repeats,
    )

    print(f"device: {jax.devices()[0].device_kind}, params: {args.size} float32")
    print(
        f"sweep of {len(rates)} learning rates: plain compiles {plain_compiles} "
        f"({plain_sweep:.2f} s), injected compiles {step._cache_size()} ({injected_sweep:.2f} s)"
    )
    print(
        f"median step: plain {plain_t * 1e3:.3f} ms, injected {injected_t * 1e3:.3f} ms, "
        f"median of per-repeat ratios injected / plain = {ratio:.3f}"
    )


if __name__ == "__main__":
    main()
