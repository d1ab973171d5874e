"""The main job, ``python -m gradtx compare`` (gradtx.examples): a tiny run end to end, and its errors."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import gradtx
from gradtx.examples import cli, compare, lm_task
from gradtx.examples.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _parse_table(stdout):
    """The initial loss and {optimizer: (final train loss, test accuracy %)} from the output."""
    lines = stdout.splitlines()
    initial = next(
        float(line.split()[3]) for line in lines if line.startswith("initial train loss")
    )
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["optimizer"])
    assert lines[header].split() == [
        "optimizer",
        "lr",
        "train",
        "loss",
        "test",
        "acc",
        "steps/s",
        "compile",
        "s",
    ]
    rows = {}
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        name, lr, loss, acc, rate, compile_s = line.split()
        rows[name] = (float(loss), float(acc.rstrip("%")))
        assert float(lr) > 0 and float(rate.replace(",", "")) > 0 and float(compile_s) > 0
    return initial, rows


def test_compare_tiny_run_prints_table_saves_png_and_every_loss_decreases(tmp_path, capsys):
    out = tmp_path / "curves.png"
    code = main(
        [
            "compare",
            "--steps",
            "30",
            "--batch-size",
            "32",
            "--seed",
            "1",
            "--lr",
            "adam=3e-3",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    initial, rows = _parse_table(captured.out)
    assert list(rows) == list(compare.DEFAULT_OPTIMIZERS)
    for name, (loss, acc) in rows.items():
        assert loss < 0.8 * initial, f"{name}: train loss {loss} did not fall from {initial}"
        assert acc > 10.0, f"{name}: test accuracy {acc}% is no better than chance"
    # Without a terminal the progress bar is one summary line per optimizer.
    progress = [line.split()[0] for line in captured.err.splitlines() if "steps in" in line]
    assert progress == list(compare.DEFAULT_OPTIMIZERS)
    assert "\r" not in captured.err
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def test_compare_runs_share_initialisation_and_batches(monkeypatch):
    # Momentum with coefficient 0 is plain SGD: given the same start and the same
    # batches in the same order, the two runs must produce the same losses.
    monkeypatch.setitem(
        compare.OPTIMIZERS, "momentum", (lambda lr: gradtx.sgd(lr, momentum=0.0), 0.3)
    )
    sgd, momentum = compare.compare(["sgd", "momentum"], steps=4, batch_size=16)[0]
    assert sgd.train_loss[0] == momentum.train_loss[0]
    np.testing.assert_allclose(momentum.batch_loss, sgd.batch_loss, rtol=1e-6)
    np.testing.assert_allclose(momentum.train_loss, sgd.train_loss, rtol=1e-6)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--optimizers", "adamx"], "unknown optimizer 'adamx'"),
        (["--lr", "adamx=1e-3"], "argument --lr: unknown optimizer 'adamx' for --task digits"),
        (["--optimizers", ""], "comma-separated list"),
        (["--lr", "adam"], "expected NAME=VALUE"),
        (["--lr", "adam=fast"], "learning rate of adam must be a number"),
        (["--lr", "adam=-1e-3"], "learning rate of adam must be a positive number"),
        (["--optimizers", "sgd", "--lr", "adam=1e-3"], "--lr sets adam, which --optimizers"),
        (["--steps", "0"], "--steps: expected a positive integer"),
        (["--steps", "ten"], "--steps: expected a positive integer"),
        (
            ["--batch-size", "100000", "--steps", "1"],
            r"--batch-size must be between 1 and \d+ \(the training-set size\)",
        ),
        (["--seed", "x"], "--seed: expected an integer in"),
        (["--seed", "-1"], "--seed: expected an integer in"),
        (["--out", "no/such/dir/curves.png"], "--out: directory .* does not exist"),
        (["--out", "curves.jpg"], "--out must name a .png file"),
        (
            ["--frobnicate"],
            r"unrecognized arguments: --frobnicate \(see python -m gradtx compare --help\)",
        ),
        (["--out", "."], "--out must name a .png file"),
        (["--out", "is_a_dir.png"], "--out: cannot write is_a_dir.png: Is a directory"),
    ],
)
def test_compare_bad_option_exits_2_with_one_line_error(
    argv, message, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    if "is_a_dir.png" in argv:
        (tmp_path / "is_a_dir.png").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("python -m gradtx compare: error: ")
    assert err.rstrip().endswith("(see python -m gradtx compare --help)")
    assert re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ["is_a_dir.png"] if "is_a_dir.png" in argv else []
    )


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_compare_unwritable_out_exits_2_before_training(capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(compare, "compare", no_training)
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--out", "/proc/gradtx_compare.png"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "python -m gradtx compare: error: --out: cannot write /proc/gradtx_compare.png: "
    ), err
    assert len(err.splitlines()) == 1, err


def test_compare_writable_out_check_keeps_an_existing_file(tmp_path):
    out = tmp_path / "old.png"
    out.write_bytes(b"old figure")
    assert cli._unwritable(str(out)) is None
    assert out.read_bytes() == b"old figure"
    assert cli._unwritable(str(tmp_path / "new.png")) is None
    assert not (tmp_path / "new.png").exists()


def test_compare_one_step_says_step_not_steps(tmp_path, capsys):
    code = main(
        ["compare", "--optimizers", "sgd", "--steps", "1", "--out", str(tmp_path / "one.png")]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "1 step in " in captured.err and "1 steps" not in captured.err
    assert "; 1 step of batch 64;" in captured.out


def test_compare_figure_plots_test_error_on_a_log_axis(tmp_path, monkeypatch):
    figures = []
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", lambda self, path: figures.append(self))
    steps = np.array([0, 1, 2])
    runs = [
        compare.Run(
            "sgd",
            0.3,
            steps,
            np.array([2.3, 1.0, 0.1]),
            np.array([0.1, 0.9, 1.0]),
            np.zeros(2),
            1.0,
            1.0,
        ),
        compare.Run(
            "adam",
            1e-3,
            steps,
            np.array([2.3, 0.5, 0.05]),
            np.array([0.1, 0.97, 0.985]),
            np.zeros(2),
            1.0,
            1.0,
        ),
    ]
    compare.save_figure(runs, "task", tmp_path / "f.png")
    _, ax_err = figures[0].axes
    assert ax_err.get_yscale() == "log"
    assert "test error" in ax_err.get_title()
    low, high = ax_err.get_ylim()
    lines = {line.get_label().split()[0]: line.get_ydata() for line in ax_err.get_lines()}
    np.testing.assert_allclose(lines["adam"], [90.0, 3.0, 1.5])
    assert np.isnan(lines["sgd"][-1])  # no error: no point on a log axis
    # Every point is inside the axis: nothing is clipped.
    finite = np.concatenate([y[np.isfinite(y)] for y in lines.values()])
    assert low <= finite.min() and finite.max() <= high


def test_main_without_command_exits_2_with_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m gradtx: error: choose a command: compare (see python -m gradtx --help)"
    ]


def test_module_bad_option_in_subprocess_prints_one_line_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "gradtx", "compare", "--optimizers", "sgd,adamx"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "unknown optimizer 'adamx'" in result.stderr
    assert "Traceback" not in result.stderr


def test_import_gradtx_does_not_import_the_examples_sklearn_or_matplotlib():
    code = (
        "import sys, gradtx; "
        "print(sorted(m for m in ('gradtx.examples', 'sklearn', 'matplotlib') if m in sys.modules)); "
        "import gradtx.examples.cli, gradtx.examples.compare, gradtx.examples.lm_task, "
        "gradtx.__main__; "
        "print(sorted(m for m in ('sklearn', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[]"]


def _choices(err):
    """The names after ``choose from`` in a one-line error."""
    listed = re.search(r"choose from (.*) \(see python -m gradtx compare --help\)", err).group(1)
    return listed.split(", ")


@pytest.mark.parametrize(
    "task, table", [("digits", compare.OPTIMIZERS), ("lm", lm_task.REGISTRY)], ids=["digits", "lm"]
)
@pytest.mark.parametrize("option", ["--optimizers", "--lr"])
def test_compare_unknown_optimizer_lists_exactly_the_names_the_task_accepts(
    task, table, option, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    value = "adamx" if option == "--optimizers" else "adamx=1e-3"
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--task", task, option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: unknown optimizer 'adamx' for --task {task}; " in err, err
    listed = _choices(err)
    assert listed == list(table)
    # Every listed name gets past the name check: the run stops at the next check
    # (an --out that is not a .png), before any training.
    for name in listed:
        argv = ["compare", "--task", task, "--optimizers", name, "--out", "x.jpg"]
        if option == "--lr":
            argv += ["--lr", f"{name}=1e-3"]
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err
        assert "--out must name a .png file" in err, (name, err)


@pytest.mark.parametrize(
    "task, name, other",
    [("digits", "muon", "lm"), ("digits", "lion", "lm"), ("lm", "sgd", "digits")],
)
def test_compare_optimizer_of_the_other_task_exits_2_and_names_that_task(
    task, name, other, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--task", task, "--optimizers", name])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert (
        f"argument --optimizers: unknown optimizer {name!r} for --task {task} "
        f"(it is an optimizer of --task {other}); choose from "
    ) in err
    assert name not in _choices(err)
    assert list(tmp_path.iterdir()) == []


def test_compare_help_lists_each_tasks_optimizers(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"from: {', '.join(compare.OPTIMIZERS)} (default: " in out
    assert f"with --task lm from: {', '.join(lm_task.REGISTRY)} (default: all)" in out
