"""The gradtx command line: ``python -m gradtx compare [options]``.

The parser, the checks of every option and the dispatch to a task: ``--task
digits`` (the default, :mod:`gradtx.examples.compare`) or ``--task lm``
(:mod:`gradtx.examples.lm_task`).  Each task accepts the optimizer names of its
own table, and an unknown name is reported with exactly those names.  Every
bad option ends in one line, ``prog: error: message (see prog --help)``, before
any training.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence

from gradtx.examples import compare, lm_task

TASKS = ("digits", "lm")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``prog: error: message``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def task_optimizers(task: str) -> list[str]:
    """The optimizer names ``--task`` accepts, in the order ``--help`` lists them."""
    return list(lm_task.REGISTRY) if task == "lm" else list(compare.OPTIMIZERS)


# ----------------------------------------------------------------------------
# Option types: each checks one value on its own (the names against the task
# are checked once the task is known, in ``run_command``).


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), got {text!r}")
    return value


def _optimizer_list(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of optimizer names")
    return list(dict.fromkeys(names))


def _lr_overrides(text):
    overrides = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE such as adam=3e-3, got {item!r}")
        try:
            lr = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"learning rate of {name} must be a number, got {value.strip()!r}"
            ) from None
        if not (math.isfinite(lr) and lr > 0):
            raise argparse.ArgumentTypeError(
                f"learning rate of {name} must be a positive number, got {value.strip()!r}"
            )
        overrides[name] = lr
    return overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``compare``."""
    digits = compare.OPTIMIZERS
    defaults = ", ".join(f"{n}={digits[n][1]:g}" for n in digits)
    parser.add_argument(
        "--task",
        choices=TASKS,
        default="digits",
        help="digits: the MLP on the 8x8 digits (default); lm: a small byte-level "
        "transformer language model on Python's standard library, held-out loss "
        "(optimizers gradtx does not have yet are skipped with a note)",
    )
    parser.add_argument(
        "--optimizers",
        type=_optimizer_list,
        default=None,
        metavar="LIST",
        help=f"comma-separated optimizers to compare, from: {', '.join(task_optimizers('digits'))} "
        f"(default: {','.join(compare.DEFAULT_OPTIMIZERS)}); with --task lm from: "
        f"{', '.join(task_optimizers('lm'))} (default: all)",
    )
    parser.add_argument(
        "--lr",
        type=_lr_overrides,
        action="append",
        default=[],
        metavar="NAME=VALUE[,...]",
        help=f"learning-rate overrides, e.g. --lr adam=3e-3,sgd=0.1 (repeatable); "
        f"defaults: {defaults}; with --task lm the middle of each optimizer's sweep",
    )
    parser.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help=f"training steps per optimizer (default: {compare.DEFAULT_STEPS}; "
        f"lm: {lm_task.DEFAULT.steps})",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help=f"mini-batch size (default: {compare.DEFAULT_BATCH_SIZE}; "
        f"lm: {lm_task.DEFAULT.batch_size})",
    )
    parser.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="seed of the initial parameters and the batch order; the "
        "train/test split is fixed (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        default=compare.DEFAULT_OUT,
        metavar="PATH",
        help="where to save the PNG of the curves (default: %(default)s)",
    )


def _unwritable(path: str) -> str | None:
    """Why ``path`` cannot be written, or None if it can.  Leaves no file behind."""
    existed = os.path.lexists(path)
    try:
        with open(path, "ab"):
            pass
    except OSError as err:
        return err.strerror or str(err)
    if not existed:
        os.remove(path)
    return None


def _check_names(parser, task, option, names):
    """``parser.error`` naming the first of ``names`` that ``task`` does not accept."""
    accepted = task_optimizers(task)
    unknown = [n for n in names if n not in accepted]
    if not unknown:
        return
    name = unknown[0]
    other = [t for t in TASKS if t != task and name in task_optimizers(t)]
    hint = f" (it is an optimizer of --task {other[0]})" if other else ""
    parser.error(
        f"argument {option}: unknown optimizer {name!r} for --task {task}{hint}; "
        f"choose from {', '.join(accepted)}"
    )


def run_command(args, parser: argparse.ArgumentParser) -> int:
    """Run ``compare`` for parsed ``args``; bad values end in ``parser.error`` (one line)."""
    if args.optimizers is None:
        default = lm_task.REGISTRY if args.task == "lm" else compare.DEFAULT_OPTIMIZERS
        args.optimizers = list(default)
    lrs = {}
    for overrides in args.lr:
        lrs.update(overrides)
    _check_names(parser, args.task, "--optimizers", args.optimizers)
    _check_names(parser, args.task, "--lr", lrs)
    skipped = sorted(set(lrs) - set(args.optimizers))
    if skipped:
        parser.error(f"--lr sets {', '.join(skipped)}, which --optimizers does not run")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        parser.error(f"--out: directory {out_dir} does not exist")
    if not args.out.lower().endswith(".png"):
        parser.error(f"--out must name a .png file, got {args.out!r}")
    # Find out now, not after training every optimizer, that the figure cannot be saved.
    reason = _unwritable(args.out)
    if reason is not None:
        parser.error(f"--out: cannot write {args.out}: {reason}")
    task = lm_task if args.task == "lm" else compare
    return task.run_command(args, parser, lrs)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return its exit code."""
    parser = _Parser(
        prog="python -m gradtx", description="gradtx: composable gradient transformations for JAX."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    command = commands.add_parser(
        "compare",
        help="train an MLP on the 8x8 digits (or, with --task lm, a small language "
        "model) with several optimizers and compare them",
        description=(
            "Train an MLP on scikit-learn's 8x8 digits (bundled with scikit-learn, no "
            "download; a fixed train/test split) once per optimizer, from the same "
            "initialisation and with the same mini-batches, each with one jitted train "
            "step. Prints a table (final training loss, test accuracy, steps/s, compile "
            "time) and saves a PNG of the loss and test-error curves. Momentum and nesterov "
            "are sgd with momentum 0.9; adamw uses weight_decay=1e-2; the others use "
            "gradtx's defaults apart from the learning rate. With --task lm: a small byte-level "
            "transformer on Python's standard library, compared by held-out loss and steps "
            "to a target (the task of benchmarks/steps_to_target.py)."
        ),
        epilog="example: python -m gradtx compare --optimizers sgd,adam --lr adam=3e-3 "
        "--steps 500 --out curves.png",
    )
    add_arguments(command)
    args, unknown = parser.parse_known_args(argv)
    if args.command is None:
        parser.error("choose a command: compare")
    if unknown:  # say so in the command's own words, pointing at its --help
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return run_command(args, command)
    except KeyboardInterrupt:
        print(f"\n{command.prog}: interrupted", file=sys.stderr)
        return 130
