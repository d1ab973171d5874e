"""The gradtx command line: ``python -m gradtx compare [options]``.

Commands import what they need (scikit-learn, matplotlib) when they run, so
``import gradtx`` stays free of them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``prog: error: message``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return its exit code."""
    from . import _compare

    parser = _Parser(
        prog="python -m gradtx", description="gradtx: composable gradient transformations for JAX."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    compare = commands.add_parser(
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
    _compare.add_arguments(compare)
    args, unknown = parser.parse_known_args(argv)
    if args.command is None:
        parser.error("choose a command: compare")
    if unknown:  # say so in the command's own words, pointing at its --help
        compare.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return _compare.run_command(args, compare)
    except KeyboardInterrupt:
        print(f"\n{compare.prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
