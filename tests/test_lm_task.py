"""The language-model task of ``compare --task lm`` and benchmarks/steps_to_target.py."""

from __future__ import annotations

import io
import os

import jax
import numpy as np
import pytest

import gradtx
from gradtx.examples import lm_task as lm
from gradtx.examples.cli import main

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny():
    cfg = lm.TINY
    return cfg, lm.load_data(cfg, seed=0), lm.init_params(jax.random.key(0), cfg)


def test_lm_task_tiny_config_trains_and_held_out_loss_decreases(tiny):
    cfg, data, params = tiny
    run = lm.run_entry("adamw", 1e-2, params, data, cfg)
    assert list(run.eval_steps) == list(range(0, cfg.steps + 1, cfg.eval_every))
    assert run.train_loss.shape == (cfg.steps,)
    assert np.all(np.isfinite(run.val_loss))
    assert run.val_loss[-1] < run.val_loss[0] - 1.0, run.val_loss
    assert run.train_loss[-10:].mean() < run.train_loss[:10].mean() - 1.0
    assert run.steps_to(run.val_loss[-1]) == cfg.steps
    assert run.steps_to(0.0) is None and run.seconds_to(0.0) is None


def test_lm_task_holds_out_whole_files_and_is_deterministic(tiny):
    cfg, data, _ = tiny
    train, val = lm.corpus_files()
    assert train and val and not set(train) & set(val)
    assert all(
        p.endswith(".py") and os.path.dirname(p) == os.path.dirname(os.__file__)
        for p in train + val
    )
    again = lm.load_data(cfg, seed=0)
    np.testing.assert_array_equal(again.batches, data.batches)
    np.testing.assert_array_equal(again.val_batches, data.val_batches)
    assert data.batches.shape == (cfg.steps, cfg.batch_size, cfg.seq_len + 1)
    assert data.batches.max() < lm.VOCAB


def test_lm_task_registry_skips_missing_optimizers_with_a_note(monkeypatch):
    monkeypatch.setitem(lm.REGISTRY, "no_such", lm.Entry(("no_such_optimizer",), None, (1.0,)))
    stream = io.StringIO()
    found = lm.available(["adamw", "no_such"], stream=stream)
    assert found == ["adamw"]
    assert "skipping no_such: gradtx has no no_such_optimizer" in stream.getvalue()


def test_lm_task_muon_share_is_the_block_matrices(tiny):
    _, _, params = tiny
    labels = jax.tree_util.tree_map_with_path(lm.is_hidden_matrix, params)
    assert not labels["embed"] and not labels["head"] and not labels["pos"]
    assert labels["blocks"][0]["attn"]["wq"] and labels["blocks"][0]["mlp"]["w1"]
    assert not labels["blocks"][0]["mlp"]["b1"]


def test_lm_task_registry_factories_build_the_optimizers_gradtx_has():
    for name in lm.available(stream=io.StringIO()):
        entry = lm.REGISTRY[name]
        assert len(entry.learning_rates) == 5  # c/4 .. 4c, a factor of 2 apart
        opt = entry.factory(gradtx, entry.learning_rates[1], lm.TINY)
        assert callable(opt.init) and callable(opt.update)


def test_compare_task_lm_help_exits_0_and_names_the_task(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--task", "lm", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--task {digits,lm}" in out and "with --task lm from:" in out


def test_compare_task_lm_with_digits_optimizer_exits_2_with_one_line_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--task", "lm", "--optimizers", "sgd", "--out", str(tmp_path / "x.png")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "unknown optimizer 'sgd' for --task lm" in err


def test_lm_figure_title_is_the_whole_description_inside_the_figure(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    figures = []
    savefig = Figure.savefig

    def save(self, path):
        figures.append(self)
        savefig(self, path)

    monkeypatch.setattr(Figure, "savefig", save)
    # The description of the default run: about 260 characters on one line.
    data = lm.Data(np.zeros(3_894_109, np.uint8), np.zeros(400_000, np.uint8), None, None, 180, 20)
    title = lm.describe(lm.DEFAULT, data, seed=0)
    steps = np.arange(0, 101, 25)
    loss = 5.0 - steps / 50
    run = lm.Run("adamw", 1e-2, steps, loss, loss, steps / 10, 1.0)
    lm.save_figure([run], title, tmp_path / "lm.png", target=lm.TARGET)
    (fig,) = figures
    (text,) = [t for t in fig.texts if t.get_text()]
    assert " ".join(text.get_text().split()) == title
    box = text.get_window_extent(fig.canvas.get_renderer())
    page = fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
