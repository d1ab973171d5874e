"""benchmarks/steps_to_target.py: its statistics, its results file and a smoke run."""

from __future__ import annotations

import json
import math
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))

import _steps_tasks as tasks  # noqa: E402
import steps_to_target as stt  # noqa: E402


def test_t_interval_matches_hand_computation_with_tabled_t():
    # n = 3: mean 12, sample sd 2, t_{0.975, 2} = 4.303 (t-table): half width 4.303 * 2 / sqrt(3).
    mean, lo, hi = stt.t_interval([10.0, 12.0, 14.0])
    half = 4.303 * 2 / math.sqrt(3)
    assert mean == 12.0
    assert lo == pytest.approx(12.0 - half, rel=1e-4)
    assert hi == pytest.approx(12.0 + half, rel=1e-4)
    # n = 5, level 0.9: t_{0.95, 4} = 2.132; values 1..5 have sd sqrt(2.5).
    mean, lo, hi = stt.t_interval([1, 2, 3, 4, 5], level=0.9)
    assert hi - mean == pytest.approx(2.132 * math.sqrt(2.5) / math.sqrt(5), rel=1e-3)


def test_t_interval_of_one_value_is_nan():
    mean, lo, hi = stt.t_interval([7.0])
    assert mean == 7.0 and math.isnan(lo) and math.isnan(hi)


def test_crossing_interpolates_between_evaluations():
    # Loss 3.0 at step 10, 2.0 at step 20: the target 2.25 is crossed 3/4 of the way.
    assert stt.crossing([0, 10, 20, 30], [4.0, 3.0, 2.0, 1.5], 2.25) == pytest.approx(17.5)
    assert stt.crossing([0, 10], [4.0, 3.0], 2.25) is None
    assert stt.crossing([0, 10], [2.0, 1.0], 2.25) == 0.0


def test_paired_ratios_need_every_seed_of_both():
    base = {"steps": [100.0, 200.0], "seeds": [1, 2]}
    assert stt.paired_ratios({"steps": [50.0, 300.0], "seeds": [1, 2]}, base) == [0.5, 1.5]
    assert stt.paired_ratios({"steps": [50.0, None], "seeds": [1, 2]}, base) is None


def test_registry_missing_names_what_gradtx_lacks(monkeypatch):
    monkeypatch.setitem(
        tasks.REGISTRY, "no_such", tasks.Entry(("adamw", "no_such_optimizer"), None, {})
    )
    assert tasks.missing("no_such") == ["no_such_optimizer"]
    assert tasks.missing("adamw") == []


@pytest.mark.slow
def test_quick_run_writes_and_merges_the_results_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(tasks.REGISTRY, "no_such", tasks.Entry(("no_such_optimizer",), None, {}))
    out = str(tmp_path / "stt")
    argv = ["--quick", "--tasks", "digits", "--seeds", "2", "--out", out]
    assert stt.main([*argv, "--optimizers", "adamw,no_such"]) == 0
    assert "note: skipping no_such" in capsys.readouterr().out
    assert stt.main([*argv, "--optimizers", "adam"]) == 0
    with open(out + ".json") as f:
        data = json.load(f)
    opts = data["tasks"]["digits"]["optimizers"]
    assert sorted(opts) == ["adam", "adamw"]  # the second run merged, not replaced
    assert set(opts["adamw"]) >= {"lr", "steps", "seconds", "weight_decay", "seeds"}
    assert opts["adamw"]["seeds"] == [1, 2] and opts["adamw"]["selection_seed"] == 0
    assert len(opts["adamw"]["steps"]) == 2
    assert [r["command"].split()[-1] for r in data["runs"]] == ["adamw,no_such", "adam"]
    with open(out + ".md") as f:
        assert "| adamw |" in f.read()
    assert os.path.exists(out + ".png")
