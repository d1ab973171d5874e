"""A small deterministic training run that checkpoints, for the fault tests.

Run as ``python reliability_worker.py CKPT OUT TOTAL_STEPS EVERY``: it
resumes from CKPT when that file exists, trains to TOTAL_STEPS, writes a
checkpoint every EVERY steps, and saves the final params to OUT.  It prints
one line per event (``resumed 8``, ``step 9``, ``saved 12``, ``done``) and
flushes, so the test can kill it at a chosen moment.

Fault hooks, read from the environment (used by the tests only):
  RELIABILITY_STEP_SLEEP: seconds to sleep after each step, so that a kill
    lands mid-run;
  RELIABILITY_PAUSE_BEFORE_REPLACE: a step number; when the checkpoint of
    that step has been written to its temporary file, print ``paused N`` and
    sleep before the rename, so the test can kill the writer there.
"""

import os
import sys
import time

import jax
import jax.numpy as jnp

import gradtx

SIZES = (3, 8, 2)


def schedule(t):
    return 0.05 / (1.0 + 0.1 * t.astype(jnp.float32))


OPT = gradtx.chain(
    gradtx.scale_by_momentum(0.9, ema=True),
    gradtx.bias_correction(0.9),
    gradtx.scale_by_rms(0.999, 1e-8, bias_correction=True),
    gradtx.add_decayed_weights(1e-3),
    gradtx.scale_by_learning_rate(schedule),
)


def init_params():
    keys = jax.random.split(jax.random.key(0), len(SIZES) - 1)
    return {
        f"layer{i}": {"w": jax.random.normal(k, (m, n)) / m**0.5, "b": jnp.zeros(n)}
        for i, (k, m, n) in enumerate(zip(keys, SIZES[:-1], SIZES[1:]))
    }


def fresh_state():
    params = init_params()
    return {"params": params, "opt_state": OPT.init(params), "step": 0}


def loss(params, x, y):
    h = x
    for i in range(len(SIZES) - 1):
        layer = params[f"layer{i}"]
        h = h @ layer["w"] + layer["b"]
        if i < len(SIZES) - 2:
            h = jnp.tanh(h)
    return jnp.mean((h - y) ** 2)


@jax.jit
def train_step(params, opt_state, step):
    key = jax.random.fold_in(jax.random.key(1), step)
    x = jax.random.normal(key, (16, SIZES[0]))
    y = jnp.stack([jnp.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1)
    grads = jax.grad(loss)(params, x, y)
    updates, opt_state = OPT.update(grads, opt_state, params)
    return gradtx.apply_updates(params, updates), opt_state


def _pause_before_replace(step_to_pause):
    """Make os.replace stop once, at the checkpoint of ``step_to_pause``."""
    real_replace = os.replace
    current = {"step": None}

    def replace(src, dst):
        if current["step"] == step_to_pause:
            print(f"paused {step_to_pause}", flush=True)
            time.sleep(600)
        return real_replace(src, dst)

    os.replace = replace
    return current


def main(ckpt, out, total, every):
    pause = os.environ.get("RELIABILITY_PAUSE_BEFORE_REPLACE")
    current = _pause_before_replace(int(pause)) if pause else {}
    sleep = float(os.environ.get("RELIABILITY_STEP_SLEEP", "0"))
    state = fresh_state()
    if os.path.exists(ckpt):
        state = gradtx.load_checkpoint(ckpt, state)
        print(f"resumed {state['step']}", flush=True)
    while state["step"] < total:
        params, opt_state = train_step(state["params"], state["opt_state"], state["step"])
        state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
        print(f"step {state['step']}", flush=True)
        if state["step"] % every == 0:
            current["step"] = state["step"]
            gradtx.save_checkpoint(ckpt, state)
            print(f"saved {state['step']}", flush=True)
        time.sleep(sleep)
    gradtx.save_checkpoint(out, state["params"])
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
