"""The documentation site: every public name is on a reference page, and the site builds."""

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import gradtx

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _hook():
    spec = importlib.util.spec_from_file_location(
        "gradtx_docs_hook", DOCS / "hooks" / "reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_every_public_name_is_on_a_reference_page():
    assert _hook().undocumented(DOCS) == []


def test_docs_reference_covers_presets_and_the_namespace():
    documented = _hook().documented_names(DOCS)
    for name in (
        "gradtx.adam",
        "gradtx.chain",
        "gradtx.GradientTransformation",
        "gradtx.warmup_cosine_decay_schedule",
        "gradtx.presets.torch.adam",
        "gradtx.presets.keras.cosine_decay",
    ):
        assert name in documented


def test_docs_name_from_an_uncovered_module_is_reported(monkeypatch):
    def shiny(learning_rate):
        """A new optimizer."""

    shiny.__module__ = "gradtx._shiny"
    monkeypatch.setattr(gradtx, "shiny", shiny, raising=False)
    assert _hook().undocumented(DOCS) == ["gradtx.shiny (defined in gradtx._shiny)"]


def test_docs_new_name_in_a_covered_module_appears_automatically(monkeypatch):
    def shiny(learning_rate):
        """A new optimizer."""

    shiny.__module__ = "gradtx.optimizers._adam"
    monkeypatch.setattr(gradtx, "shiny", shiny, raising=False)
    hook = _hook()
    assert "gradtx.shiny" in hook.members_of("gradtx.optimizers._adam")
    assert hook.undocumented(DOCS) == []


def test_docs_members_of_expands_in_source_order_with_options():
    text = _hook().expand("::: members-of gradtx._momentum heading_level=3\n")
    entries = [line.split()[1] for line in text.splitlines() if line.startswith(":::")]
    assert entries.index("gradtx.scale_by_momentum") < entries.index("gradtx.bias_correction")
    assert text.count("heading_level: 3") == len(entries)


def test_docs_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "hooks" not in p.parts]
    notebooks = [f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")]
    missing = [p for p in pages + notebooks if f": {p}" not in nav]
    assert missing == []


@pytest.mark.slow
def test_docs_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    home = (site / "index.html").read_text()
    assert "Composable gradient transformations for JAX" in home
    optimizers = (site / "reference" / "optimizers" / "index.html").read_text()
    assert 'id="gradtx.adam"' in optimizers and "arithmatex" in optimizers
    assert (site / "notebooks" / "02_adam_from_parts" / "index.html").exists()
    shutil.rmtree(site)
