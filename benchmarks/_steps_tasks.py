"""The tasks and the optimizer registry of ``steps_to_target.py``.

A ``Task`` is a deterministic, offline training problem: parameters from a
seed, every training batch of the run drawn from the same seed, a fixed
held-out set (the same for every seed) and a target held-out loss.

A registry ``Entry`` builds an optimizer from ``(gradtx, lr, wd, task)``
where ``lr`` and ``wd`` may be traced scalars: the benchmark vmaps one
jitted training program over learning rates, weight decays and seeds.  An
entry whose gradtx names do not exist yet is skipped with a note.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import gradtx
from gradtx.examples import lm_task as lm

SELECTION_SEED = 0  # the sweep's seed; the reported seeds are 1, 2, ...


class Task(NamedTuple):
    name: str
    description: str
    target: float  # held-out loss to reach
    max_steps: int  # a run that has not reached the target by then never does
    eval_every: int
    warmup: int  # linear learning-rate warm-up, then constant
    adam_lr: float  # AdamW's learning rate on the leaves a matrix method leaves to AdamW
    init: Callable  # seed -> params
    loss: Callable  # (params, batch) -> mean training loss
    val_loss: Callable  # params -> held-out loss (closes over the fixed held-out set)
    batches: Callable  # seed -> array (max_steps, ...) of training batches
    hidden: Callable  # (path, leaf) -> bool: the matrices a matrix method preconditions


# ----------------------------------------------------------------------------
# Task 1: the byte-level transformer LM of gradtx/examples/lm_task.py, in a
# configuration of its own: batch 8 and a target AdamW needs about 1,000+ steps for.

LM_CONFIG = lm.LMConfig(
    d_model=32,
    n_layers=2,
    n_heads=4,
    seq_len=64,
    batch_size=8,
    steps=2500,
    eval_every=10,
    eval_batches=8,
    warmup=50,
)
LM_TARGET = 1.97


def lm_byte_task(cfg: lm.LMConfig = LM_CONFIG, target: float = LM_TARGET) -> Task:
    held_out = lm.load_data(cfg, SELECTION_SEED)  # the held-out windows of every seed
    val_batches = jnp.asarray(held_out.val_batches)
    n_params = sum(int(np.prod(np.shape(p))) for p in jax.tree.leaves(_lm_init(cfg, 0)))

    n_val = cfg.eval_batches * cfg.batch_size

    def val_loss(params):
        return jnp.mean(jax.vmap(lambda w: lm.loss_fn(params, w, cfg.n_heads))(val_batches))

    description = (
        f"byte-level transformer LM (gradtx/examples/lm_task.py) on Python "
        f"{sys.version.split()[0]}'s standard library ({len(held_out.train):,} training bytes; "
        f"{held_out.n_val_files} whole files held out): d_model {cfg.d_model}, "
        f"{cfg.n_layers} layers, {cfg.n_heads} heads, context {cfg.seq_len}, {n_params:,} "
        f"parameters; batch {cfg.batch_size} windows; held-out loss on "
        f"{n_val} fixed held-out windows ({n_val * cfg.seq_len:,} "
        f"predicted bytes), nats per byte"
    )
    return Task(
        name="lm",
        description=description,
        target=target,
        max_steps=cfg.steps,
        eval_every=cfg.eval_every,
        warmup=cfg.warmup,
        adam_lr=1e-2,
        init=lambda seed: _lm_init(cfg, seed),
        loss=lambda params, windows: lm.loss_fn(params, windows, cfg.n_heads),
        val_loss=val_loss,
        batches=lambda seed: lm.load_data(cfg, seed).batches,
        hidden=lm.is_hidden_matrix,
    )


def _lm_init(cfg, seed):
    return lm.init_params(jax.random.key(seed), cfg)


# ----------------------------------------------------------------------------
# Task 2: a GELU MLP classifying scikit-learn's 8x8 digits (bundled, offline).

DIGITS_WIDTH = 128
DIGITS_TARGET = 0.15  # held-out cross-entropy, nats


def digits_task(target: float = DIGITS_TARGET, max_steps: int = 1500, batch: int = 16) -> Task:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    held = np.arange(len(y)) % 5 == 2  # every fifth digit is held out
    x_train, y_train = x[~held], y[~held].astype(np.int32)
    x_val, y_val = jnp.asarray(x[held]), jnp.asarray(y[held].astype(np.int32))
    sizes = (64, DIGITS_WIDTH, DIGITS_WIDTH, 10)

    def init(seed):
        keys = jax.random.split(jax.random.key(seed), len(sizes) - 1)
        names = ("in", "mid", "out")
        return {
            n: {
                "w": jax.random.normal(k, (a, b), jnp.float32) / math.sqrt(a),
                "b": jnp.zeros((b,), jnp.float32),
            }
            for n, k, a, b in zip(names, keys, sizes[:-1], sizes[1:])
        }

    def logits(params, xb):
        h = jax.nn.gelu(xb @ params["in"]["w"] + params["in"]["b"])
        h = jax.nn.gelu(h @ params["mid"]["w"] + params["mid"]["b"])
        return h @ params["out"]["w"] + params["out"]["b"]

    def xent(params, xb, yb):
        logp = jax.nn.log_softmax(logits(params, xb))
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=-1))

    x_train_j, y_train_j = jnp.asarray(x_train), jnp.asarray(y_train)

    def loss(params, idx):
        return xent(params, x_train_j[idx], y_train_j[idx])

    def batches(seed):
        rng = np.random.default_rng(seed)
        return rng.integers(0, len(y_train), size=(max_steps, batch)).astype(np.int32)

    def hidden(path, leaf):
        keys = [getattr(k, "key", None) for k in path]
        return jnp.ndim(leaf) == 2 and "out" not in keys

    description = (
        f"GELU MLP {'-'.join(map(str, sizes))} on scikit-learn's 8x8 digits "
        f"({len(y_train)} training images, {int(held.sum())} held out: every fifth), "
        f"{sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])):,} parameters; batch {batch}; "
        f"held-out cross-entropy, nats"
    )
    return Task(
        name="digits",
        description=description,
        target=target,
        max_steps=max_steps,
        eval_every=5,
        warmup=20,
        adam_lr=3e-3,
        init=init,
        loss=loss,
        val_loss=lambda params: xent(params, x_val, y_val),
        batches=batches,
        hidden=hidden,
    )


TASKS = {"lm": lm_byte_task, "digits": digits_task}


def quick_tasks():
    """Tiny versions of both tasks for the smoke test (the LM from lm_task.TINY)."""
    tiny = lm.TINY._replace(steps=40, eval_every=10)
    return {
        "lm": lm_byte_task(tiny, target=5.0),
        "digits": digits_task(target=2.0, max_steps=40),
    }


# ----------------------------------------------------------------------------
# The optimizers.  ``lr`` is the grid's centre per task; the grid is
# lr * (1/4, 1/2, 1, 2, 4).  ``wd``: the weight decays swept (the first is
# used during the learning-rate sweep); one value: not swept.


class Entry(NamedTuple):
    needs: tuple
    factory: Callable  # (gradtx, lr, wd, task) -> optimizer; lr and wd may be traced
    lr: dict  # task name -> centre of the learning-rate grid
    wd: tuple = (0.0,)
    note: str = ""
    batched: bool = True  # False: members run one after the other (see Trainer)


GRID = (0.25, 0.5, 1.0, 2.0, 4.0)


def warmup(gt, lr, task):
    """Linear warm-up from lr / warmup to lr over ``task.warmup`` steps, then constant."""
    return gt.linear_schedule(lr / task.warmup, lr, task.warmup)


def _adamw(gt, lr, wd, task):
    return gt.adamw(warmup(gt, lr, task), b1=0.9, b2=0.95, weight_decay=wd)


def _matrix(name, **kw):
    """A matrix method on the task's hidden matrices, AdamW (lr ``task.adam_lr``) elsewhere."""

    def factory(gt, lr, wd, task):
        labels = lambda params: jax.tree_util.tree_map_with_path(  # noqa: E731
            lambda path, leaf: "matrix" if task.hidden(path, leaf) else "adamw", params
        )
        inner = getattr(gt, name)(warmup(gt, lr, task), **kw)
        return gt.partition(
            {"matrix": inner, "adamw": _adamw(gt, task.adam_lr, 0.01, task)}, labels
        )

    return factory


def _ademamix(gt, lr, wd, task):
    # A slow momentum of about 100 steps' memory and alpha 2, warmed up over the
    # first 500 steps: the paper's b3 0.9999 and alpha 5 are for runs of 100k+ steps.
    return gt.ademamix(
        warmup(gt, lr, task),
        b1=0.9,
        b2=0.95,
        b3=gt.ademamix_beta3_schedule(0.99, 500, b1=0.9),
        alpha=gt.ademamix_alpha_schedule(2.0, 500),
        weight_decay=wd,
    )


_ADAMW_WD = (0.01, 0.1, 0.0)
_MATRIX_NOTE = "on the hidden matrices; AdamW (lr 1e-2 LM, 3e-3 digits) on the other leaves"

REGISTRY = {
    "adamw": Entry(("adamw",), _adamw, {"lm": 1e-2, "digits": 3e-3}, _ADAMW_WD),
    "sgd_momentum": Entry(
        ("sgd",),
        lambda gt, lr, wd, task: gt.sgd(warmup(gt, lr, task), momentum=0.9, nesterov=True),
        {"lm": 0.5, "digits": 0.1},
        note="Nesterov momentum 0.9",
    ),
    "adam": Entry(
        ("adam",),
        lambda gt, lr, wd, task: gt.adam(warmup(gt, lr, task), b1=0.9, b2=0.95),
        {"lm": 1e-2, "digits": 3e-3},
    ),
    "nadamw": Entry(
        ("nadamw",),
        lambda gt, lr, wd, task: gt.nadamw(warmup(gt, lr, task), b1=0.9, b2=0.95, weight_decay=wd),
        {"lm": 1e-2, "digits": 3e-3},
        _ADAMW_WD,
    ),
    "cautious_adamw": Entry(
        ("cautious", "adamw"),
        lambda gt, lr, wd, task: gt.cautious(_adamw(gt, lr, wd, task)),
        {"lm": 1e-2, "digits": 3e-3},
        _ADAMW_WD,
    ),
    "schedule_free_adamw": Entry(
        ("schedule_free_adamw", "schedule_free_eval_params"),
        lambda gt, lr, wd, task: gt.schedule_free_adamw(
            lr, warmup_steps=task.warmup, b1=0.9, b2=0.95, weight_decay=wd
        ),
        {"lm": 2e-2, "digits": 6e-3},
        _ADAMW_WD,
        "evaluated at its averaged point x_t",
    ),
    "lion": Entry(
        ("lion",),
        lambda gt, lr, wd, task: gt.lion(warmup(gt, lr, task), b1=0.9, b2=0.99, weight_decay=wd),
        {"lm": 2e-3, "digits": 6e-4},
        (0.1, 0.3, 1.0),
        "b1 0.9, b2 0.99; weight decay 10x AdamW's (lr x wd comparable)",
    ),
    "ademamix": Entry(
        ("ademamix", "ademamix_alpha_schedule", "ademamix_beta3_schedule"),
        _ademamix,
        {"lm": 1e-2, "digits": 3e-3},
        (0.01,),
        "b3 0.99 and alpha 2, both warmed up over 500 steps",
    ),
    "mars": Entry(
        ("mars",),
        lambda gt, lr, wd, task: gt.mars(warmup(gt, lr, task), weight_decay=wd),
        {"lm": 1e-2, "digits": 3e-3},
        (0.01,),
        "MARS-AdamW, b1 0.95, b2 0.99, gamma 0.025",
    ),
    "muon": Entry(
        ("muon", "partition"), _matrix("muon"), {"lm": 0.02, "digits": 0.02}, note=_MATRIX_NOTE
    ),
    "normuon": Entry(
        ("normuon", "partition"),
        _matrix("normuon"),
        {"lm": 0.02, "digits": 0.02},
        note=_MATRIX_NOTE,
    ),
    "soap": Entry(
        ("soap",),
        lambda gt, lr, wd, task: gt.soap(warmup(gt, lr, task), b1=0.95, b2=0.95, weight_decay=wd),
        {"lm": 1e-2, "digits": 3e-3},
        (0.01,),
        "b1 0.95, b2 0.95, preconditioner refreshed every 10 steps",
        batched=False,
    ),
    "shampoo": Entry(
        ("shampoo",),
        lambda gt, lr, wd, task: gt.shampoo(
            warmup(gt, lr, task),
            beta2=0.95,
            grafting="adagrad",
            momentum=0.9,
            precondition_frequency=10,
        ),
        {"lm": 1e-2, "digits": 3e-3},
        note="statistics EMA 0.95, AdaGrad grafting, momentum 0.9, roots every 10 steps",
        batched=False,
    ),
    "psgd_kron": Entry(
        ("psgd_kron",),
        lambda gt, lr, wd, task: gt.psgd_kron(warmup(gt, lr, task)),
        {"lm": 3e-3, "digits": 1e-3},
        batched=False,
    ),
    # AdamW with its moments stored in 8 or 4 bits (gradtx.quantized_state): every
    # leaf of 256 entries or more, in blocks of 256 with one float32 scale each.
    "adamw_8bit": Entry(
        ("adamw", "quantized_state"),
        lambda gt, lr, wd, task: gt.quantized_state(_adamw(gt, lr, wd, task), 8, min_size=256),
        {"lm": 1e-2, "digits": 3e-3},
        _ADAMW_WD,
        note="AdamW, moments in 8 bits (dynamic maps) for leaves of 256+ entries",
    ),
    "adamw_4bit": Entry(
        ("adamw", "quantized_state"),
        lambda gt, lr, wd, task: gt.quantized_state(_adamw(gt, lr, wd, task), 4, min_size=256),
        {"lm": 1e-2, "digits": 3e-3},
        _ADAMW_WD,
        note="AdamW, moments in 4 bits (block normalization) for leaves of 256+ entries",
    ),
    "adamw_4bit_rank1": Entry(
        ("adamw", "quantized_state"),
        lambda gt, lr, wd, task: gt.quantized_state(
            _adamw(gt, lr, wd, task), 4, min_size=256, normalization="rank1"
        ),
        {"lm": 1e-2, "digits": 3e-3},
        _ADAMW_WD,
        note="AdamW, moments in 4 bits, second moments rank-1 normalized (Li et al.)",
    ),
    "scion": Entry(
        ("scion", "partition"), _matrix("scion"), {"lm": 0.04, "digits": 0.04}, note=_MATRIX_NOTE
    ),
    "scion_unconstrained": Entry(
        ("scion_unconstrained", "partition"),
        _matrix("scion_unconstrained"),
        {"lm": 0.04, "digits": 0.04},
        note=_MATRIX_NOTE,
    ),
    "dion": Entry(
        ("dion", "partition"), _matrix("dion"), {"lm": 0.04, "digits": 0.04}, note=_MATRIX_NOTE
    ),
    "dion2": Entry(
        ("dion2", "partition"), _matrix("dion2"), {"lm": 0.04, "digits": 0.04}, note=_MATRIX_NOTE
    ),
    "adamuon": Entry(
        ("adamuon", "partition"),
        _matrix("adamuon"),
        {"lm": 0.04, "digits": 0.04},
        note=_MATRIX_NOTE,
    ),
    "kl_soap": Entry(
        ("kl_soap",),
        lambda gt, lr, wd, task: gt.kl_soap(warmup(gt, lr, task)),
        {"lm": 1e-2, "digits": 3e-3},
        batched=False,
    ),
    "kl_shampoo": Entry(
        ("kl_shampoo",),
        lambda gt, lr, wd, task: gt.kl_shampoo(warmup(gt, lr, task)),
        {"lm": 1e-2, "digits": 3e-3},
        batched=False,
    ),
    "spam": Entry(
        ("spam",),
        lambda gt, lr, wd, task: gt.spam(warmup(gt, lr, task)),
        {"lm": 1e-2, "digits": 3e-3},
    ),
    "stable_spam": Entry(
        ("stable_spam",),
        lambda gt, lr, wd, task: gt.stable_spam(warmup(gt, lr, task)),
        {"lm": 1e-2, "digits": 3e-3},
    ),
    "came": Entry(
        ("came",),
        lambda gt, lr, wd, task: gt.came(warmup(gt, lr, task)),
        {"lm": 1e-2, "digits": 3e-3},
    ),
    "splus": Entry(
        ("splus",),
        lambda gt, lr, wd, task: gt.splus(warmup(gt, lr, task)),
        {"lm": 1e-2, "digits": 3e-3},
        batched=False,
    ),
    "conda": Entry(
        ("conda",),
        lambda gt, lr, wd, task: gt.conda(warmup(gt, lr, task)),
        {"lm": 1e-2, "digits": 3e-3},
    ),
}


def missing(name):
    """The gradtx names ``REGISTRY[name]`` needs that this gradtx does not have."""
    return [n for n in REGISTRY[name].needs if getattr(gradtx, n, None) is None]


def eval_params(name):
    """(state, params) -> the parameters to evaluate: the averaged point for schedule-free."""
    if name.startswith("schedule_free"):
        return gradtx.schedule_free_eval_params
    return lambda state, params: params
