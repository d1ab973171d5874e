"""The table of docs/coming_from_optax.md: every public name of optax and optax.contrib, with gradtx's.

``python docs/hooks/optax_names.py`` prints the table; tests/test_docs.py checks
that the page holds exactly what it prints for the installed optax and this
checkout's gradtx.  A name that gradtx exports under the same name is listed
with that name.  Every other name takes its row from ``OTHER`` below, written
by hand: the gradtx names that do the same job, or "not yet".  An optax name
that is in neither raises, so a new optax release cannot slip past the table.
optax's loss functions (``optax.losses``, re-exported at the top level) are
left out: gradtx has none.
"""

from __future__ import annotations

import pathlib
import sys
import types

NOT_YET = "not yet"

_EMPTY = ("`EmptyState`", "optax's alias of `EmptyState`")
_TYPING = (NOT_YET, "a typing alias; gradtx's are private (`gradtx._typing`)")

# optax name -> (gradtx cell, note).  The gradtx cell is backticked gradtx names
# (``gradtx.<name>``, a dotted name for a submodule) or "not yet".
OTHER = {
    # optax's state classes.  gradtx's recipes keep a nested ChainState of the
    # states of their parts, so one optax class maps to the parts' classes.
    "AdaptiveGradClipState": _EMPTY,
    "AddDecayedWeightsState": _EMPTY,
    "ClipByGlobalNormState": _EMPTY,
    "ClipState": _EMPTY,
    "ScaleState": _EMPTY,
    "ScaleByTrustRatioState": _EMPTY,
    "NormalizeState": _EMPTY,
    "ScaleByAdamState": (
        "`MomentumState`, `BiasCorrectionState`, `RmsState`",
        "Adam's `mu` and `nu` live in the states of its parts; `tree_get(state, 'mu')` reads one",
    ),
    "ScaleByAmsgradState": (
        "`MomentumState`, `BiasCorrectionState`, `MaxRmsState`",
        "the states of AMSGrad's parts",
    ),
    "ScaleByAdaDeltaState": ("`AdadeltaState`", ""),
    "ScaleByRmsState": ("`RmsState`", ""),
    "ScaleByRssState": ("`RssState`", ""),
    "ScaleByRStdDevState": ("`CenteredRmsState`", ""),
    "ScaleByScheduleState": ("`ScheduleState`", ""),
    "MultiTransformState": ("`PartitionState`", "optax's alias of `PartitionState`"),
    "ShouldSkipUpdateFunction": _TYPING,
    "GradientTransformationExtraArgs": (
        "`GradientTransformation`",
        "every gradtx update accepts `**extra`",
    ),
    "TransformInitFn": _TYPING,
    "TransformUpdateFn": _TYPING,
    "TransformUpdateExtraArgsFn": _TYPING,
    "OptState": _TYPING,
    "Params": _TYPING,
    "Updates": _TYPING,
    "MaskOrFn": _TYPING,
    "ScalarOrSchedule": _TYPING,
    "Schedule": _TYPING,
    "MaskedNode": (NOT_YET, "`masked`'s state keeps the masked-out leaves' structure"),
    "InjectStatefulHyperparamsState": (
        "`InjectHyperparamsState`",
        "`inject_hyperparams` takes optax's stateful schedules",
    ),
    "WrappedSchedule": (NOT_YET, ""),
    "init_empty_state": (NOT_YET, ""),
    "with_extra_args_support": (NOT_YET, "not needed: every gradtx update accepts `**extra`"),
    "matrix_inverse_pth_root": (NOT_YET, ""),
    "power_iteration": (NOT_YET, ""),
    "nnls": (NOT_YET, ""),
    "multi_normal": (NOT_YET, ""),
    "microbatch": ("`microbatching.microbatch`", "in the submodule `gradtx.microbatching`"),
    "safe_increment": (NOT_YET, ""),
    "safe_int32_increment": (NOT_YET, ""),
    "safe_norm": (NOT_YET, ""),
    "safe_root_mean_squares": (NOT_YET, ""),
    "scale_by_adam": (
        "`precondition`, `scale_by_momentum`, `bias_correction`, `scale_by_rms`",
        "Adam's direction is `precondition(chain(scale_by_momentum(b1, ema=True), "
        "bias_correction(b1)), by=scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True))`",
    ),
    "update_moment": (NOT_YET, "gradtx's moment helpers are private"),
    "update_infinity_moment": (NOT_YET, "gradtx's moment helpers are private"),
    "update_moment_per_elem_norm": (NOT_YET, "gradtx's moment helpers are private"),
    # optax.contrib
    "MuonState": (
        "`PartitionState`, `NadamMomentumState`",
        "`muon` is a `partition` of two chains, each with its own momentum",
    ),
}


def public_names(module) -> list[str]:
    """A module's public names, less its submodules and optax's loss functions."""
    names = []
    for name in dir(module):
        value = getattr(module, name)
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if getattr(value, "__module__", "").startswith("optax.losses"):
            continue
        names.append(name)
    return names


def rows(optax, gradtx) -> list[tuple[str, str, str]]:
    """``(optax name, gradtx cell, note)`` for every public name of optax and optax.contrib."""
    out = []
    for module, prefix in ((optax, "optax"), (optax.contrib, "optax.contrib")):
        for name in public_names(module):
            if hasattr(gradtx, name):
                cell, note = f"`{name}`", ""
            elif name in OTHER:
                cell, note = OTHER[name]
            else:
                raise KeyError(f"{prefix}.{name} is neither in gradtx nor in OTHER")
            out.append((f"`{prefix}.{name}`", cell, note))
    return out


def table(optax, gradtx) -> str:
    lines = ["| optax | gradtx | note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows(optax, gradtx)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
    import optax as _optax

    import gradtx as _gradtx

    sys.stdout.write(table(_optax, _gradtx))
