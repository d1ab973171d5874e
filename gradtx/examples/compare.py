"""``python -m gradtx compare`` (``--task digits``): one MLP on real data, several optimizers.

The data are scikit-learn's 8x8 handwritten digits (1797 images that ship
inside scikit-learn, so nothing is downloaded), split once into a fixed
training and test set.  Every optimizer starts from the same initial
parameters and sees the same mini-batches in the same order; each gets one
jax.jit-compiled train step.  The command prints a table (final training loss,
test accuracy, steps per second, compile time) and saves a PNG of the
training-loss and test-error curves.

scikit-learn and matplotlib are optional (``pip install "gradtx[examples]"``):
they are imported where the digits are loaded and where the figure is drawn,
so importing this module needs neither.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import gradtx

# name -> (the optimizer for a learning rate, its default learning rate).  The
# defaults come from a sweep on this task (powers of about 3 around each
# optimizer's customary value; see docs/main_job.md).
OPTIMIZERS = {
    "sgd": (lambda lr: gradtx.sgd(lr), 0.3),
    "momentum": (lambda lr: gradtx.sgd(lr, momentum=0.9), 0.03),
    "nesterov": (lambda lr: gradtx.sgd(lr, momentum=0.9, nesterov=True), 0.03),
    "rmsprop": (lambda lr: gradtx.rmsprop(lr), 1e-3),
    "adagrad": (lambda lr: gradtx.adagrad(lr), 0.1),
    "adadelta": (lambda lr: gradtx.adadelta(lr), 1.0),
    "adam": (lambda lr: gradtx.adam(lr), 1e-3),
    "adamw": (lambda lr: gradtx.adamw(lr, weight_decay=1e-2), 1e-3),
    "amsgrad": (lambda lr: gradtx.amsgrad(lr), 1e-3),
}
DEFAULT_OPTIMIZERS = (
    "sgd",
    "momentum",
    "nesterov",
    "rmsprop",
    "adagrad",
    "adadelta",
    "adam",
    "adamw",
)
DEFAULT_STEPS = 2000
DEFAULT_BATCH_SIZE = 64
DEFAULT_OUT = "gradtx_compare.png"
HIDDEN = (256, 256)
TEST_FRACTION = 0.25
SPLIT_SEED = 0  # the train/test split is fixed; --seed changes init and batch order
TITLE_WIDTH = 140  # characters per line of the figure's title (the task's description)


class CompareError(Exception):
    """A user-facing error: printed as one line, no traceback."""


class Run(NamedTuple):
    """What one optimizer did: curves at the evaluation steps and timings."""

    name: str
    learning_rate: float
    eval_steps: np.ndarray  # steps at which the curves were evaluated (0 first)
    train_loss: np.ndarray  # full training-set loss at those steps
    test_accuracy: np.ndarray  # test accuracy at those steps
    batch_loss: np.ndarray  # mini-batch loss of every step
    steps_per_second: float
    compile_seconds: float


# ----------------------------------------------------------------------------
# Data and model.


def load_data():
    """The digits as float32 pixels in [0, 1] and int32 labels, split train/test."""
    # scikit-learn is optional (the examples extra): imported here, when the data are loaded.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data, target = load_digits(return_X_y=True)
    x = (np.asarray(data) / 16.0).astype(np.float32)
    y = np.asarray(target).astype(np.int32)
    split = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    return tuple(np.asarray(part) for part in split)


def init_mlp(key, sizes):
    """He-normal weights and zero biases for a ReLU MLP with layer widths ``sizes``."""
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        key, sub = jax.random.split(key)
        w = jax.random.normal(sub, (n_in, n_out), jnp.float32) * math.sqrt(2.0 / n_in)
        params.append({"w": w, "b": jnp.zeros((n_out,), jnp.float32)})
    return params


def mlp(params, x):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss_fn(params, x, y):
    """Mean softmax cross-entropy."""
    logp = jax.nn.log_softmax(mlp(params, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def accuracy(params, x, y):
    return jnp.mean(jnp.argmax(mlp(params, x), axis=1) == y)


def make_batches(n_train, batch_size, steps, seed):
    """Indices of every mini-batch: reshuffled each epoch, the last partial batch dropped."""
    rng = np.random.default_rng(seed)
    per_epoch = n_train // batch_size
    epochs = -(-steps // per_epoch)
    order = [rng.permutation(n_train)[: per_epoch * batch_size] for _ in range(epochs)]
    return np.concatenate(order).reshape(-1, batch_size)[:steps].astype(np.int32)


def _plural(count, noun):
    """``1 step``, ``2 steps``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def eval_points(steps, count=60):
    """About ``count`` evenly spaced evaluation steps, 0 and ``steps`` included."""
    return np.unique(np.linspace(0, steps, min(count, steps) + 1).round().astype(int))


# ----------------------------------------------------------------------------
# Training.


def make_train_step(optimizer):
    """One training step of ``optimizer`` on the mini-batch ``batches[i]``."""

    def train_step(params, state, data, i):
        x, y, batches = data
        idx = batches[i]
        loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
        updates, state = optimizer.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state, loss

    return train_step


def train(name, optimizer, params, data, steps, progress):
    """Run ``steps`` jitted steps; return the snapshots at ``eval_points``, losses, timings."""
    t0 = time.perf_counter()
    state = optimizer.init(params)
    step = jax.jit(make_train_step(optimizer)).lower(params, state, data, 0).compile()
    compile_seconds = time.perf_counter() - t0

    wanted = set(eval_points(steps).tolist())
    snapshots = [params]
    losses = []
    bar = progress(name, steps)
    t0 = time.perf_counter()
    for i in range(steps):
        params, state, loss = step(params, state, data, i)
        losses.append(loss)
        if i + 1 in wanted:
            snapshots.append(params)  # arrays are immutable: keeping them copies nothing
        bar.update(i + 1, loss)
    jax.block_until_ready(params)
    seconds = time.perf_counter() - t0
    bar.close(f"{_plural(steps, 'step')} in {seconds:.2f} s, compiled in {compile_seconds:.2f} s")
    return snapshots, np.asarray(jax.device_get(losses)), steps / seconds, compile_seconds


def compare(
    optimizers=DEFAULT_OPTIMIZERS,
    learning_rates=None,
    steps=DEFAULT_STEPS,
    batch_size=DEFAULT_BATCH_SIZE,
    seed=0,
    progress=None,
):
    """Train the digits MLP once per optimizer; return (runs, description of the task).

    Args:
      optimizers: names from ``OPTIMIZERS``.
      learning_rates: ``{name: lr}`` overriding the defaults.
      steps: training steps per optimizer.
      batch_size: mini-batch size.
      seed: seeds the initial parameters and the batch order.
      progress: ``progress(name, total)`` returning a bar with ``update(done, loss)``
        and ``close(message)``; ``None`` shows nothing.
    """
    learning_rates = dict(learning_rates or {})
    unknown = [name for name in [*optimizers, *learning_rates] if name not in OPTIMIZERS]
    if unknown:
        raise CompareError(f"unknown optimizer {unknown[0]!r}; choose from {', '.join(OPTIMIZERS)}")
    x_train, x_test, y_train, y_test = load_data()
    if not 1 <= batch_size <= len(x_train):
        raise CompareError(
            f"--batch-size must be between 1 and {len(x_train)} "
            f"(the training-set size), got {batch_size}"
        )
    made = {}
    for name in optimizers:
        lr = learning_rates.get(name, OPTIMIZERS[name][1])
        try:
            made[name] = (OPTIMIZERS[name][0](lr), lr)
        except (ValueError, TypeError) as err:
            raise CompareError(str(err)) from None

    sizes = (x_train.shape[1], *HIDDEN, 10)
    params0 = init_mlp(jax.random.key(seed), sizes)
    batches = make_batches(len(x_train), batch_size, steps, seed)
    data = tuple(jax.device_put(a) for a in (x_train, y_train, batches))
    test = jax.device_put((x_test, y_test))
    train_set = data[:2]

    @jax.jit
    def evaluate(params):
        return loss_fn(params, *train_set), accuracy(params, *test)

    progress = progress or _silent
    points = eval_points(steps)
    runs = []
    for name, (optimizer, lr) in made.items():
        snapshots, batch_loss, rate, compile_seconds = train(
            name, optimizer, params0, data, steps, progress
        )
        curves = np.asarray(jax.device_get([evaluate(p) for p in snapshots]), np.float64)
        losses, accs = curves[:, 0], curves[:, 1]
        runs.append(Run(name, lr, points, losses, accs, batch_loss, rate, compile_seconds))
    task = (
        f"digits 8x8 (scikit-learn): {len(x_train)} train / {len(x_test)} test images; "
        f"MLP {'-'.join(map(str, sizes))} (ReLU); {_plural(steps, 'step')} of batch {batch_size}; "
        f"seed {seed}"
    )
    return runs, task


# ----------------------------------------------------------------------------
# Output: progress bar, table, figure.


class ProgressBar:
    """A one-line progress bar on a terminal; one summary line per run otherwise."""

    def __init__(self, name, total, stream=None, width=28, interval=0.1):
        self.name, self.total, self.width, self.interval = name, total, width, interval
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last = -math.inf
        self.start = time.perf_counter()

    def update(self, done, loss=None):
        now = time.perf_counter()
        if not self.tty or (now - self.last < self.interval and done < self.total):
            return
        self.last = now
        filled = int(self.width * done / self.total)
        bar = "=" * filled + (">" if filled < self.width else "") + " " * (self.width - filled - 1)
        rate = done / max(now - self.start, 1e-9)
        text = f"\r{self.name:<9} [{bar}] {done:>{len(str(self.total))}}/{self.total}"
        if loss is not None:
            text += f"  batch loss {float(loss):.4f}"  # float() waits for this step only
        self.stream.write(text + f"  {rate:,.0f} steps/s\x1b[K")
        self.stream.flush()

    def close(self, message):
        prefix = "\r" if self.tty else ""
        suffix = "\x1b[K" if self.tty else ""
        self.stream.write(f"{prefix}{self.name:<9} {message}{suffix}\n")
        self.stream.flush()


class _Silent:
    def update(self, done, loss=None):
        pass

    def close(self, message):
        pass


def _silent(name, total):
    return _Silent()


def format_table(runs, task):
    """The results as a fixed-width text table, one row per optimizer."""
    initial = runs[0].train_loss[0]
    lines = [
        task,
        f"initial train loss {initial:.4f} (the same initialisation for every optimizer)",
        "",
        f"{'optimizer':<10}{'lr':>9}{'train loss':>12}{'test acc':>10}"
        f"{'steps/s':>9}{'compile s':>11}",
    ]
    for r in runs:
        lines.append(
            f"{r.name:<10}{r.learning_rate:>9.3g}{r.train_loss[-1]:>12.4f}"
            f"{100 * r.test_accuracy[-1]:>9.1f}%{r.steps_per_second:>9,.0f}"
            f"{r.compile_seconds:>11.2f}"
        )
    diverged = [r.name for r in runs if not np.isfinite(r.train_loss[-1])]
    if diverged:
        lines += [
            "",
            f"diverged (loss is not finite): {', '.join(diverged)}; "
            f"try a smaller learning rate with --lr NAME=VALUE",
        ]
    return "\n".join(lines)


def save_figure(runs, task, path):
    """Training loss and test error against steps, both on log axes, one line per optimizer.

    Test error (100% - accuracy) on a log axis shows the whole run, from the
    90% error of the first step to the 2% at the end, and spreads apart the
    optimizers that all end between 97% and 99% accuracy.  A run with no test
    error at some step has no point there (log of 0).
    """
    # matplotlib is optional (the examples extra): imported here, when a figure is drawn.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator

    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_err = fig.subplots(1, 2)
    for r in runs:
        label = f"{r.name} (lr {r.learning_rate:g})"
        ax_loss.plot(r.eval_steps, r.train_loss, label=label)
        error = 100 * (1 - r.test_accuracy)
        ax_err.plot(r.eval_steps, np.where(error > 0, error, np.nan), label=label)
    ax_loss.set(
        yscale="log", xlabel="step", ylabel="loss on the full training set", title="training loss"
    )
    ax_err.set(
        yscale="log",
        xlabel="step",
        ylabel="test error (%), log scale",
        title="test error (100% - accuracy)",
    )
    percent = FuncFormatter(lambda value, _: f"{value:g}%")
    ax_err.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_err.yaxis.set_major_formatter(percent)
    ax_err.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
        ax.grid(alpha=0.1, which="minor")
    ax_err.legend(fontsize="small", loc="upper right")
    # Constrained layout makes room for the title's height, not its width: wrap it.
    fig.suptitle(textwrap.fill(task, TITLE_WIDTH), fontsize="small")
    fig.savefig(path)


# ----------------------------------------------------------------------------
# ``python -m gradtx compare`` (the options are parsed and checked in cli.py).


def run_command(args, parser: argparse.ArgumentParser, learning_rates) -> int:
    """``--task digits``: ``args`` and ``learning_rates`` as checked by the command line."""
    try:
        import matplotlib  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as err:
        print(
            f"{parser.prog}: error: needs scikit-learn and matplotlib "
            f'(pip install "gradtx[examples]"): {err}',
            file=sys.stderr,
        )
        return 1

    try:
        runs, task = compare(
            args.optimizers,
            learning_rates,
            args.steps or DEFAULT_STEPS,
            args.batch_size or DEFAULT_BATCH_SIZE,
            args.seed,
            progress=ProgressBar,
        )
    except CompareError as err:
        parser.error(str(err))
    print(format_table(runs, task))
    try:
        save_figure(runs, task, args.out)
    except OSError as err:
        print(f"{parser.prog}: error: could not save {args.out}: {err}", file=sys.stderr)
        return 1
    print(f"\nsaved the loss and test-error curves to {args.out}")
    return 0
