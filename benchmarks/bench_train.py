"""The optimizer's share of a full training step (loss, grad, update, apply), gradtx vs optax.

    python benchmarks/bench_train.py
    python benchmarks/bench_train.py --model transformer --rounds 20

Per model, side by side in one process (interleaved rounds):

* ``fwd+bwd``: a jitted step computing the loss and its gradient only;
* ``train step (X)``: loss, gradient, ``X.update`` and ``apply_updates`` in one
  jit, params and optimizer state donated;
* ``optimizer step (X)``: update + apply alone on the same pytree (donated).

Reported share of the optimizer = 1 - fwd+bwd / train step (the time the
update adds to the step), next to optimizer step / train step.  Models are
plain JAX: an MLP (784-1024-1024-10, batch 128) and a small pre-LayerNorm
transformer (4 layers, width 256, 4 heads, sequence 128, batch 8, vocab
4096).
"""

from __future__ import annotations

import argparse

import _harness as H
import jax
import jax.numpy as jnp
import numpy as np

import gradtx

LR = 1e-3


def mlp(key, sizes=(784, 1024, 1024, 10), batch=128):
    keys = jax.random.split(key, len(sizes) + 1)
    params = {
        f"dense{i}": {"w": jax.random.normal(keys[i], (a, b)) / np.sqrt(a), "b": jnp.zeros(b)}
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
    }
    x = jax.random.normal(keys[-1], (batch, sizes[0]))
    labels = jax.random.randint(keys[-2], (batch,), 0, sizes[-1])

    def loss(params, batch):
        h, y = batch
        for i in range(len(sizes) - 1):
            layer = params[f"dense{i}"]
            h = h @ layer["w"] + layer["b"]
            if i < len(sizes) - 2:
                h = jax.nn.relu(h)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h), y[:, None], axis=1))

    return params, loss, (x, labels)


def transformer(key, layers=4, width=256, heads=4, seq=128, batch=8, vocab=4096):
    keys = iter(jax.random.split(key, 8 * layers + 8))

    def dense(a, b):
        return {"w": jax.random.normal(next(keys), (a, b)) / np.sqrt(a), "b": jnp.zeros(b)}

    def norm():
        return {"scale": jnp.ones(width), "bias": jnp.zeros(width)}

    params = {
        "embed": jax.random.normal(next(keys), (vocab, width)) * 0.02,
        "pos": jax.random.normal(next(keys), (seq, width)) * 0.02,
        "ln_f": norm(),
    }
    for i in range(layers):
        params[f"layer{i}"] = {
            "ln1": norm(),
            "qkv": dense(width, 3 * width),
            "out": dense(width, width),
            "ln2": norm(),
            "fc": dense(width, 4 * width),
            "proj": dense(4 * width, width),
        }
    tokens = jax.random.randint(next(keys), (batch, seq + 1), 0, vocab)

    def layer_norm(x, p):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / jnp.sqrt(var + 1e-5) * p["scale"] + p["bias"]

    def loss(params, tokens):
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        h = params["embed"][inputs] + params["pos"]
        mask = jnp.tril(jnp.ones((seq, seq), bool))
        for i in range(layers):
            p = params[f"layer{i}"]
            x = layer_norm(h, p["ln1"])
            qkv = x @ p["qkv"]["w"] + p["qkv"]["b"]
            q, k, v = jnp.split(qkv.reshape(batch, seq, 3, heads, width // heads), 3, axis=2)
            scores = jnp.einsum("bqhd,bkhd->bhqk", q[:, :, 0], k[:, :, 0]) / np.sqrt(width // heads)
            att = jax.nn.softmax(jnp.where(mask, scores, -1e9), axis=-1)
            y = jnp.einsum("bhqk,bkhd->bqhd", att, v[:, :, 0]).reshape(batch, seq, width)
            h = h + y @ p["out"]["w"] + p["out"]["b"]
            x = layer_norm(h, p["ln2"])
            h = h + jax.nn.gelu(x @ p["fc"]["w"] + p["fc"]["b"]) @ p["proj"]["w"] + p["proj"]["b"]
        logits = layer_norm(h, params["ln_f"]) @ params["embed"].T
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, targets[..., None], axis=-1))

    return params, loss, tokens


MODELS = {"mlp": mlp, "transformer": transformer}


def runners_for(model, which):
    import optax

    params, loss, batch = MODELS[model](jax.random.PRNGKey(0))
    grads = jax.tree.map(lambda p: 1e-3 * jnp.ones_like(p), params)
    runners = {}

    fwd_bwd = jax.jit(jax.value_and_grad(loss))

    def run_fwd_bwd():
        H.block(fwd_bwd(params, batch))

    runners["fwd+bwd"] = run_fwd_bwd
    txs = {}
    if "gradtx" in which:
        txs["gradtx.adam"] = (gradtx.adam(LR), gradtx.apply_updates)
    if "flatten" in which:
        txs["gradtx.flatten(adam)"] = (gradtx.flatten(gradtx.adam(LR)), gradtx.apply_updates)
    if "optax" in which:
        txs["optax.adam"] = (optax.adam(LR), optax.apply_updates)
    for name, (tx, apply) in txs.items():

        def train_step(p, s, b, tx=tx, apply=apply):
            value, g = jax.value_and_grad(loss)(p, b)
            updates, s = tx.update(g, s, p)
            return apply(p, updates), s, value

        def opt_step(p, s, g, tx=tx, apply=apply):
            updates, s = tx.update(g, s, p)
            return apply(p, updates), s

        train = jax.jit(train_step, donate_argnums=(0, 1))
        only = jax.jit(opt_step, donate_argnums=(0, 1))
        box_t = [jax.tree.map(jnp.copy, params)]
        box_t.append(tx.init(box_t[0]))
        box_o = [jax.tree.map(jnp.copy, params)]
        box_o.append(tx.init(box_o[0]))

        def run_train(box=box_t, train=train):
            box[0], box[1], value = train(box[0], box[1], batch)
            H.block((box[0], value))

        def run_only(box=box_o, only=only):
            box[0], box[1] = only(box[0], box[1], grads)
            H.block(box)

        runners[f"train step ({name})"] = run_train
        runners[f"optimizer step ({name})"] = run_only
    n_leaves = len(jax.tree.leaves(params))
    n_params = sum(x.size for x in jax.tree.leaves(params))
    return runners, f"{model}: {n_leaves} leaves, {n_params / 1e6:.2f}M params, float32"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all", choices=["all", *MODELS])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--impl", default="gradtx,flatten,optax")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    info = H.machine()
    header = [
        "model",
        "optimizer",
        "train step ms",
        "optimizer step ms",
        "share: 1 - fwd+bwd / train",
        "optimizer step / train step",
        "device",
    ]
    rows, notes = [], []
    for model in list(MODELS) if args.model == "all" else [args.model]:
        runners, note = runners_for(model, set(args.impl.split(",")))
        times = H.interleaved(runners, args.rounds)
        base = times["fwd+bwd"]
        notes.append(f"{note}; fwd+bwd alone {H.fmt_ms(base)} ms")
        for name in [k[len("train step (") : -1] for k in times if k.startswith("train step")]:
            train = times[f"train step ({name})"]
            only = times[f"optimizer step ({name})"]
            rows.append(
                [
                    model,
                    name,
                    H.fmt_ms(train),
                    H.fmt_ms(only),
                    H.fmt_ratio(H.paired_ratio(train - base, train)),
                    H.fmt_ratio(H.paired_ratio(only, train)),
                    info["device"],
                ]
            )
        print(H.markdown_table(header, rows), "\n" + notes[-1], flush=True)
    text = (
        "# The optimizer's share of a training step\n\n"
        f"Command: `python benchmarks/bench_train.py --model {args.model} --rounds "
        f"{args.rounds} --impl {args.impl}`\n\n"
        "Times: median [25th-75th percentile]; shares: median [IQR] of per-round ratios.\n\n"
        + H.markdown_table(header, rows)
        + "\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n\n## Machine\n\n"
        + H.machine_markdown(info)
        + "\n"
    )
    H.write_result(args.out, text)


if __name__ == "__main__":
    main()
