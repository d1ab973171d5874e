"""A small byte-level transformer language model, to compare optimizers on real text.

The text is Python's own standard library: the ``.py`` files directly under
``os.path.dirname(os.__file__)``, sorted by name, read as bytes (a vocabulary
of 256).  Every tenth file is held out whole for validation, so the
validation loss measures text the model never trained on.  Nothing is
downloaded; the corpus is whatever Python runs the task (its version is
part of the task's description).

The model is a pre-norm decoder-only transformer in plain JAX: byte and
position embeddings, ``n_layers`` blocks of causal multi-head attention and
a GELU MLP, a final layer norm and an untied output layer; matrices are
stored ``(in, out)``.  Every optimizer starts from the same parameters,
trains on the same batches (random windows of the training text, drawn
once from the seed) and is evaluated on the same held-out windows; the
training steps run in ``lax.scan`` chunks between evaluations.

``REGISTRY`` names each optimizer of the comparison with a factory and a
short learning-rate sweep.  Optimizers whose parts are not in gradtx are
skipped with a note (``available``), so the comparison shows whatever
exists.  ``benchmarks/steps_to_target.py``, ``python -m gradtx compare --task
lm`` and ``notebooks/07_frontier.ipynb`` all read it.

matplotlib is optional (``pip install "gradtx[examples]"``): it is imported
where the figure is drawn, so importing this module needs only gradtx.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import gradtx

VOCAB = 256
VAL_EVERY = 10  # every tenth file (sorted by name) is held out for validation
TARGET = 2.25  # held-out nats per byte: AdamW's best reaches it at about 2/3 of DEFAULT's run
TITLE_WIDTH = 140  # characters per line of the figure's title (the task's description)


class LMConfig(NamedTuple):
    """The model, the data and the training budget."""

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    seq_len: int = 64
    batch_size: int = 16
    steps: int = 400
    eval_every: int = 25
    eval_batches: int = 8
    warmup: int = 30
    max_train_bytes: int = 4_000_000
    max_val_bytes: int = 400_000


DEFAULT = LMConfig()
TINY = LMConfig(
    d_model=32,
    n_layers=1,
    n_heads=2,
    seq_len=32,
    batch_size=8,
    steps=40,
    eval_every=20,
    eval_batches=2,
    warmup=5,
    max_train_bytes=200_000,
    max_val_bytes=20_000,
)
# The notebooks' run: TINY, longer and on more data.
NOTEBOOK = TINY._replace(
    batch_size=16, steps=200, eval_batches=4, warmup=20, max_train_bytes=10**6, max_val_bytes=10**5
)


# ----------------------------------------------------------------------------
# Data.


def corpus_files():
    """The standard library's top-level ``.py`` files, sorted: (train, validation) paths."""
    root = os.path.dirname(os.__file__)
    names = sorted(f for f in os.listdir(root) if f.endswith(".py"))
    paths = [os.path.join(root, f) for f in names]
    val = [p for i, p in enumerate(paths) if i % VAL_EVERY == VAL_EVERY // 2]
    train = [p for i, p in enumerate(paths) if i % VAL_EVERY != VAL_EVERY // 2]
    return train, val


def _read(paths, limit):
    chunks, total = [], 0
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        chunks.append(data)
        total += len(data)
        if total >= limit:
            break
    return np.frombuffer(b"\n".join(chunks)[:limit], np.uint8)


class Data(NamedTuple):
    train: np.ndarray  # uint8 bytes of the training files
    val: np.ndarray  # uint8 bytes of the held-out files
    batches: np.ndarray  # (steps, batch, seq_len + 1) int32 training windows
    val_batches: np.ndarray  # (eval_batches, batch, seq_len + 1) int32 held-out windows
    n_train_files: int
    n_val_files: int


def _windows(text, rng, shape, length):
    starts = rng.integers(0, len(text) - length, size=shape)
    return text[starts[..., None] + np.arange(length)].astype(np.int32)


def load_data(cfg: LMConfig, seed: int = 0) -> Data:
    """The byte corpus and every batch of the run, drawn from ``seed``."""
    train_paths, val_paths = corpus_files()
    train = _read(train_paths, cfg.max_train_bytes)
    val = _read(val_paths, cfg.max_val_bytes)
    rng = np.random.default_rng(seed)
    n = cfg.seq_len + 1
    batches = _windows(train, rng, (cfg.steps, cfg.batch_size), n)
    val_batches = _windows(
        val, np.random.default_rng(10_000 + seed), (cfg.eval_batches, cfg.batch_size), n
    )
    return Data(train, val, batches, val_batches, len(train_paths), len(val_paths))


# ----------------------------------------------------------------------------
# Model.


def init_params(key, cfg: LMConfig):
    """Normal(0, 1/fan_in) matrices (output projections also / sqrt(2 n_layers)), unit norms."""
    d, h = cfg.d_model, 4 * cfg.d_model
    keys = iter(jax.random.split(key, 3 + 6 * cfg.n_layers))

    def dense(n_in, n_out, scale=1.0):
        return jax.random.normal(next(keys), (n_in, n_out), jnp.float32) * (scale / math.sqrt(n_in))

    def norm():
        return {"scale": jnp.ones((d,), jnp.float32), "bias": jnp.zeros((d,), jnp.float32)}

    out_scale = 1 / math.sqrt(2 * cfg.n_layers)
    blocks = []
    for _ in range(cfg.n_layers):
        blocks.append(
            {
                "ln1": norm(),
                "attn": {
                    "wq": dense(d, d),
                    "wk": dense(d, d),
                    "wv": dense(d, d),
                    "wo": dense(d, d, out_scale),
                },
                "ln2": norm(),
                "mlp": {
                    "w1": dense(d, h),
                    "b1": jnp.zeros((h,), jnp.float32),
                    "w2": dense(h, d, out_scale),
                    "b2": jnp.zeros((d,), jnp.float32),
                },
            }
        )
    return {
        "embed": jax.random.normal(next(keys), (VOCAB, d), jnp.float32) * 0.5,
        "pos": jax.random.normal(next(keys), (cfg.seq_len, d), jnp.float32) * 0.1,
        "blocks": blocks,
        "ln_f": norm(),
        "head": dense(d, VOCAB),
    }


def _layer_norm(x, p):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.var(x, axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-5) * p["scale"] + p["bias"]


def _attention(x, p, n_heads):
    b, t, d = x.shape
    split = lambda y: y.reshape(b, t, n_heads, d // n_heads).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = split(x @ p["wq"]), split(x @ p["wk"]), split(x @ p["wv"])
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d // n_heads)
    causal = jnp.tril(jnp.ones((t, t), bool))
    scores = jnp.where(causal, scores, jnp.finfo(scores.dtype).min)
    y = jax.nn.softmax(scores, axis=-1) @ v
    return y.transpose(0, 2, 1, 3).reshape(b, t, d) @ p["wo"]


def logits_fn(params, tokens, n_heads):
    """Next-byte logits for int tokens of shape (batch, time)."""
    x = params["embed"][tokens] + params["pos"][: tokens.shape[1]]
    for block in params["blocks"]:
        x = x + _attention(_layer_norm(x, block["ln1"]), block["attn"], n_heads)
        h = _layer_norm(x, block["ln2"])
        m = block["mlp"]
        x = x + jax.nn.gelu(h @ m["w1"] + m["b1"]) @ m["w2"] + m["b2"]
    return _layer_norm(x, params["ln_f"]) @ params["head"]


def loss_fn(params, windows, n_heads):
    """Mean next-byte cross-entropy in nats over windows of shape (batch, seq_len + 1)."""
    logits = logits_fn(params, windows[:, :-1], n_heads)
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, windows[:, 1:, None], axis=-1))


def is_hidden_matrix(path, leaf) -> bool:
    """The matrices inside the transformer blocks (Muon's share); not embeddings or the head."""
    keys = [getattr(k, "key", getattr(k, "idx", None)) for k in path]
    return jnp.ndim(leaf) == 2 and "blocks" in keys


# ----------------------------------------------------------------------------
# The optimizers compared.  Each factory gets gradtx, a peak learning rate and
# the config (for the warm-up and the run length); ``needs`` lists the gradtx
# names it uses, so a missing one skips the entry with a note.


class Entry(NamedTuple):
    needs: tuple
    factory: Callable  # (gradtx, lr, cfg) -> optimizer
    learning_rates: tuple  # the sweep; the middle one is the default
    note: str = ""


def _grid(center):
    """Five learning rates a factor of 2 apart around ``center``: c/4, c/2, c, 2c, 4c."""
    return tuple(center * f for f in (0.25, 0.5, 1.0, 2.0, 4.0))


def _warmup(gt, lr, cfg):
    """Linear warm-up from lr / warmup to lr over ``cfg.warmup`` steps, then constant."""
    return gt.linear_schedule(lr / max(cfg.warmup, 1), lr, max(cfg.warmup, 1))


def _adamw(gt, lr, cfg):
    return gt.adamw(_warmup(gt, lr, cfg), b1=0.9, b2=0.95, weight_decay=0.01)


def _muon(gt, lr, cfg):
    labels = lambda params: jax.tree_util.tree_map_with_path(  # noqa: E731
        lambda path, leaf: "muon" if is_hidden_matrix(path, leaf) else "adamw", params
    )
    return gt.partition(
        {"muon": gt.muon(_warmup(gt, lr, cfg)), "adamw": _adamw(gt, 1e-2, cfg)}, labels
    )


def _ademamix(gt, lr, cfg):
    # A slow momentum of about 100 steps' memory and alpha 2, both warmed up over the run:
    # the paper's b3 = 0.9999 and alpha = 5 (for runs of 100k+ steps) stall a 400-step run
    # (optax's ademamix, held-out 2.62 at step 200 against 2.38 with these).
    return gt.ademamix(
        _warmup(gt, lr, cfg),
        b1=0.9,
        b2=0.95,
        b3=gt.ademamix_beta3_schedule(0.99, cfg.steps, b1=0.9),
        alpha=gt.ademamix_alpha_schedule(2.0, cfg.steps),
        weight_decay=0.01,
    )


REGISTRY = {
    "adamw": Entry(("adamw",), _adamw, _grid(1e-2)),
    "muon": Entry(
        ("muon", "adamw", "partition"),
        _muon,
        _grid(0.02),
        "Muon on the block matrices, AdamW (lr 1e-2, AdamW's best) on embeddings, head, norms",
    ),
    "soap": Entry(("soap",), lambda gt, lr, cfg: gt.soap(_warmup(gt, lr, cfg)), _grid(1e-2)),
    "psgd_kron": Entry(
        ("psgd_kron",), lambda gt, lr, cfg: gt.psgd_kron(_warmup(gt, lr, cfg)), _grid(3e-3)
    ),
    "lion": Entry(
        ("lion",),
        lambda gt, lr, cfg: gt.lion(_warmup(gt, lr, cfg), b1=0.9, b2=0.99, weight_decay=0.01),
        _grid(2e-3),
    ),
    "schedule_free_adamw": Entry(
        ("schedule_free_adamw",),
        lambda gt, lr, cfg: gt.schedule_free_adamw(
            lr, warmup_steps=cfg.warmup, b1=0.9, b2=0.95, weight_decay=0.01
        ),
        _grid(2e-2),
        "evaluated at its averaged point x_t",
    ),
    "ademamix": Entry(
        ("ademamix", "ademamix_alpha_schedule", "ademamix_beta3_schedule"),
        _ademamix,
        _grid(1e-2),
        "b3 0.99 and alpha 2, both warmed up over the whole run",
    ),
    "laprop": Entry(
        ("laprop",),
        lambda gt, lr, cfg: gt.laprop(_warmup(gt, lr, cfg), b1=0.9, b2=0.95, weight_decay=0.01),
        _grid(1e-2),
    ),
    "mars": Entry(
        ("mars",),
        lambda gt, lr, cfg: gt.mars(_warmup(gt, lr, cfg), weight_decay=0.01),
        _grid(1e-2),
        "MARS-AdamW, b1 0.95, b2 0.99, gamma 0.025",
    ),
    "adam_mini": Entry(
        ("adam_mini",),
        lambda gt, lr, cfg: gt.adam_mini(_warmup(gt, lr, cfg), b1=0.9, b2=0.95, weight_decay=0.01),
        _grid(1e-2),
        "one second moment per leaf",
    ),
    "cautious_adamw": Entry(
        ("cautious", "adamw"),
        lambda gt, lr, cfg: gt.cautious(_adamw(gt, lr, cfg)),
        _grid(1e-2),
    ),
}


def available(names=None, *, stream=None):
    """The registry's names whose gradtx parts exist; a note on ``stream`` for each one skipped."""
    stream = stream if stream is not None else sys.stdout
    names = list(REGISTRY) if names is None else list(names)
    found = []
    for name in names:
        missing = [n for n in REGISTRY[name].needs if getattr(gradtx, n, None) is None]
        if missing:
            print(f"note: skipping {name}: gradtx has no {', '.join(missing)} yet", file=stream)
        else:
            found.append(name)
    return found


def eval_params_fn(name):
    """How to read the parameters to evaluate from (state, params): the identity but for
    schedule-free methods, which evaluate at their averaged point."""
    if name.startswith("schedule_free"):
        convert = getattr(gradtx, "schedule_free_eval_params", None)
        if convert is not None:
            return convert
    return lambda state, params: params


# ----------------------------------------------------------------------------
# Training.


class Run(NamedTuple):
    """One optimizer at one learning rate."""

    name: str
    learning_rate: float
    eval_steps: np.ndarray  # 0, eval_every, 2 * eval_every, ...
    val_loss: np.ndarray  # held-out loss at those steps (nats per byte)
    train_loss: np.ndarray  # mini-batch loss of every step
    train_seconds: np.ndarray  # training time (no compile, no evaluation) up to each eval step
    compile_seconds: float

    def steps_to(self, target):
        """The first evaluation step at which the held-out loss is <= target (None: never)."""
        hit = np.nonzero(self.val_loss <= target)[0]
        return int(self.eval_steps[hit[0]]) if hit.size else None

    def seconds_to(self, target):
        hit = np.nonzero(self.val_loss <= target)[0]
        return float(self.train_seconds[hit[0]]) if hit.size else None


def train(
    name,
    optimizer,
    params,
    data: Data,
    cfg: LMConfig,
    learning_rate: float = float("nan"),
    eval_params=None,
):
    """Train from ``params`` on ``data.batches``; evaluate every ``cfg.eval_every`` steps."""
    eval_params = eval_params or eval_params_fn(name)
    n_heads = cfg.n_heads

    def step(carry, windows):
        params, state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, windows, n_heads)
        updates, state = optimizer.update(grads, state, params)
        return (gradtx.apply_updates(params, updates), state), loss

    @jax.jit
    def chunk(params, state, windows):
        (params, state), losses = jax.lax.scan(step, (params, state), windows)
        return params, state, losses

    val_batches = jnp.asarray(data.val_batches)

    @jax.jit
    def evaluate(params, state):
        p = eval_params(state, params)
        return jnp.mean(jax.vmap(lambda w: loss_fn(p, w, n_heads))(val_batches))

    batches = data.batches[: cfg.steps]
    starts = list(range(0, len(batches), cfg.eval_every))
    t0 = time.perf_counter()
    state = optimizer.init(params)
    first = jnp.asarray(batches[starts[0] : starts[0] + cfg.eval_every])
    compiled = {first.shape: chunk.lower(params, state, first).compile()}
    compile_seconds = time.perf_counter() - t0

    eval_steps, val_loss, seconds, losses = [0], [float(evaluate(params, state))], [0.0], []
    elapsed = 0.0
    for s in starts:
        windows = jnp.asarray(batches[s : s + cfg.eval_every])
        run = compiled.get(windows.shape) or chunk  # a shorter last chunk compiles again
        t0 = time.perf_counter()
        params, state, chunk_losses = run(params, state, windows)
        jax.block_until_ready(params)
        elapsed += time.perf_counter() - t0
        losses.append(np.asarray(chunk_losses))
        eval_steps.append(s + len(windows))
        val_loss.append(float(evaluate(params, state)))
        seconds.append(elapsed)
        if not math.isfinite(val_loss[-1]):
            break
    return Run(
        name,
        learning_rate,
        np.asarray(eval_steps),
        np.asarray(val_loss),
        np.concatenate(losses),
        np.asarray(seconds),
        compile_seconds,
    )


def run_entry(name, learning_rate: float, params, data, cfg):
    """Build ``REGISTRY[name]`` at ``learning_rate`` and train it."""
    optimizer = REGISTRY[name].factory(gradtx, learning_rate, cfg)
    return train(name, optimizer, params, data, cfg, learning_rate)


def describe(cfg: LMConfig, data: Data, seed: int) -> str:
    n_params = sum(
        int(np.prod(np.shape(p)))
        for p in jax.tree.leaves(jax.eval_shape(lambda: init_params(jax.random.key(0), cfg)))
    )
    return (
        f"byte-level transformer LM on Python {sys.version.split()[0]}'s standard library "
        f"({data.n_train_files} train files, {len(data.train):,} bytes; {data.n_val_files} "
        f"held-out files, {len(data.val):,} bytes): d_model {cfg.d_model}, {cfg.n_layers} "
        f"layer{'s' if cfg.n_layers > 1 else ''}, {cfg.n_heads} heads, context {cfg.seq_len}, {n_params:,} parameters; "
        f"{cfg.steps} steps of batch {cfg.batch_size}, linear warm-up {cfg.warmup} steps "
        f"then constant; seed {seed}"
    )


def save_figure(runs, title, path, target=None):
    """Held-out loss against step and against training seconds, one line per run."""
    # matplotlib is optional (the examples extra): imported here, when a figure is drawn.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    ax_steps, ax_time = fig.subplots(1, 2, sharey=True)
    for r in runs:
        label = f"{r.name} (lr {r.learning_rate:g})"
        (line,) = ax_steps.plot(r.eval_steps, r.val_loss, label=label)
        ax_time.plot(r.train_seconds, r.val_loss, color=line.get_color())
    finite = np.concatenate([r.val_loss[np.isfinite(r.val_loss)] for r in runs])
    if finite.size:
        ax_steps.set_ylim(finite.min() - 0.05, min(finite.max(), finite.min() + 1.5))
    for ax in (ax_steps, ax_time):
        if target is not None:
            ax.axhline(target, color="k", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    ax_steps.set(xlabel="step", ylabel="held-out loss (nats per byte)")
    ax_time.set(xlabel="training seconds (compile and evaluation excluded)")
    ax_steps.legend(fontsize="small")
    # Constrained layout makes room for the title's height, not its width: wrap it.
    fig.suptitle(textwrap.fill(title, TITLE_WIDTH), fontsize="small")
    fig.savefig(path)


# ----------------------------------------------------------------------------
# ``python -m gradtx compare --task lm``.


def format_table(runs, task, target):
    """One row per run: final held-out loss, steps and training seconds to ``target``."""
    lines = [
        task,
        f"initial held-out loss {runs[0].val_loss[0]:.4f} (the same initialisation "
        f"for every optimizer); target {target} nats per byte",
        "",
        f"{'optimizer':<20}{'lr':>9}{'held-out':>10}{'steps to':>10}{'train s':>9}"
        f"{'compile s':>11}",
    ]
    for r in runs:
        steps = r.steps_to(target)
        lines.append(
            f"{r.name:<20}{r.learning_rate:>9.3g}{r.val_loss[-1]:>10.4f}"
            f"{'-' if steps is None else steps:>10}{r.train_seconds[-1]:>9.1f}"
            f"{r.compile_seconds:>11.2f}"
        )
    return "\n".join(lines)


def run_command(args, parser, learning_rates) -> int:
    """``--task lm``: ``args`` and ``learning_rates`` as checked by the command line
    (every name is one of ``REGISTRY``)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        print(
            f'{parser.prog}: error: needs matplotlib (pip install "gradtx[examples]"): {err}',
            file=sys.stderr,
        )
        return 1
    cfg = DEFAULT._replace(
        steps=args.steps or DEFAULT.steps, batch_size=args.batch_size or DEFAULT.batch_size
    )
    cfg = cfg._replace(eval_every=min(cfg.eval_every, cfg.steps))
    names = available(args.optimizers, stream=sys.stderr)
    if not names:
        parser.error("none of the chosen optimizers is in gradtx yet")
    data = load_data(cfg, args.seed)
    params = init_params(jax.random.key(args.seed), cfg)
    runs = []
    for name in names:
        entry = REGISTRY[name]
        lr = learning_rates.get(name, entry.learning_rates[len(entry.learning_rates) // 2])
        try:
            run = run_entry(name, lr, params, data, cfg)
        except (ValueError, TypeError) as err:
            parser.error(str(err))
        print(
            f"{name:<20} {cfg.steps} steps in {run.train_seconds[-1]:.2f} s, compiled in "
            f"{run.compile_seconds:.2f} s",
            file=sys.stderr,
            flush=True,
        )
        runs.append(run)
    task = describe(cfg, data, args.seed)
    print(format_table(runs, task, TARGET))
    try:
        save_figure(runs, task, args.out, target=TARGET)
    except OSError as err:
        print(f"{parser.prog}: error: could not save {args.out}: {err}", file=sys.stderr)
        return 1
    print(f"\nsaved the held-out loss curves to {args.out}")
    return 0
