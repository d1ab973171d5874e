"""The documentation site: every public name is on a reference page, and the site builds."""

import contextlib
import importlib.util
import io
import os
import pathlib
import re
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


def _griffe_extension():
    spec = importlib.util.spec_from_file_location(
        "gradtx_griffe_examples", DOCS / "hooks" / "griffe_examples.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parameter_rows(obj):
    """``{name: default}`` of the Parameters table mkdocstrings renders for ``obj``."""
    rows = {}
    for section in obj.docstring.parsed:
        if section.kind.value == "parameters":
            rows.update({p.name: p.default for p in section.value})
    return rows


@pytest.fixture(scope="module")
def griffe_gradtx():
    griffe = pytest.importorskip("griffe")
    extension = _griffe_extension().ExampleSections()
    return griffe.load(
        "gradtx",
        search_paths=[str(ROOT)],
        extensions=griffe.Extensions(extension),
        docstring_parser="google",
        docstring_options={"warn_missing_types": False, "warn_unknown_params": False},
    )


def test_docs_reference_table_shows_defaults_of_arguments_documented_together(griffe_gradtx):
    adam = _parameter_rows(griffe_gradtx["adam"])
    # adam's docstring documents "mu_dtype, nu_dtype" on one line.
    assert adam["mu_dtype"] == "None" and adam["nu_dtype"] == "None"
    assert adam["learning_rate"] is None  # required: no default in the signature
    lion = _parameter_rows(griffe_gradtx["lion"])
    assert (lion["b1"], lion["b2"]) == ("0.9", "0.99")


def test_docs_no_argument_with_a_default_reads_required(griffe_gradtx):
    wrong = []

    def walk(module):
        for member in module.members.values():
            if member.is_alias:
                continue
            if member.is_module or member.is_class:
                walk(member)
            if not (member.is_function or member.is_class) or member.docstring is None:
                continue
            signature = {p.name: p.default for p in member.parameters}
            for name, default in _parameter_rows(member).items():
                if name.lstrip("*") not in signature and name not in signature:
                    wrong.append(f"{member.path}: {name!r} is not an argument")
                elif name in signature and default != signature[name]:
                    wrong.append(f"{member.path}: {name} shows {default}, not {signature[name]}")

    walk(griffe_gradtx)
    assert wrong == []


def test_docs_shared_args_item_splits_with_its_continuation():
    text = (
        "Sum.\n\nArgs:\n  a, b: the terms,\n    both numbers.\n  c: other.\n\nReturns:\n  x, y: z\n"
    )
    split = _griffe_extension().split_shared_items(text, {"a", "b", "c", "x", "y"})
    assert split == (
        "Sum.\n\nArgs:\n  a: the terms,\n    both numbers.\n  b: the terms,\n    both numbers.\n"
        "  c: other.\n\nReturns:\n  x, y: z\n"
    )


def _optax_names():
    spec = importlib.util.spec_from_file_location(
        "gradtx_optax_names", DOCS / "hooks" / "optax_names.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _coming_from_optax_rows():
    """``{optax name: gradtx cell}`` from the table of docs/coming_from_optax.md."""
    text = (DOCS / "coming_from_optax.md").read_text()
    rows = re.findall(r"^\| `(optax[\w.]*)` \| (.*?) \| .*\|$", text, re.M)
    assert len(rows) > 150
    return dict(rows)


def test_coming_from_optax_gradtx_column_names_exist_in_gradtx():
    cells = _coming_from_optax_rows().values()
    named = [n for cell in cells for n in re.findall(r"`([\w.]+)`", cell)]
    assert len(named) > 150
    missing = []
    for name in named:
        obj = gradtx
        for part in name.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            missing.append(name)
    assert missing == []
    assert all(re.fullmatch(r"(`[\w.]+`(, `[\w.]+`)*|not yet)", cell) for cell in cells)


def test_coming_from_optax_lists_every_name_gradtx_shares_with_optax():
    optax = pytest.importorskip("optax")
    rows = _coming_from_optax_rows()
    hook = _optax_names()
    for module, prefix in ((optax, "optax"), (optax.contrib, "optax.contrib")):
        for name in hook.public_names(module):
            assert f"{prefix}.{name}" in rows, name
            if hasattr(gradtx, name):
                assert rows[f"{prefix}.{name}"] == f"`{name}`", name
    shared = {n for n in dir(optax) + dir(optax.contrib) if not n.startswith("_")}
    shared &= {n for n in dir(gradtx) if not n.startswith("_")}
    listed = {n.rpartition(".")[2] for n in rows}
    # Modules of both (optax.microbatching, optax.tree) are not names of the table.
    assert len(shared) > 150 and shared - listed <= {"microbatching", "tree"}


def test_coming_from_optax_table_is_what_the_generator_prints():
    optax = pytest.importorskip("optax")
    text = (DOCS / "coming_from_optax.md").read_text()
    assert text.endswith(_optax_names().table(optax, gradtx))


def test_coming_from_optax_code_runs():
    text = (DOCS / "coming_from_optax.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for i, code in enumerate(blocks):
        namespace = {}
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, f"coming_from_optax block {i}", "exec"), namespace)
    assert namespace["mu"]["w"].shape == (3,) and int(namespace["count"]) == 0


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
    _assert_self_contained(site)
    shutil.rmtree(site)


def _assert_self_contained(site):
    """Every page loads its scripts, styles and fonts from the site: math renders offline."""
    remote = re.compile(
        r"<script[^>]*\bsrc=[\"']?https?:|<link[^>]*\brel=[\"']?(stylesheet|preconnect)[^>]*https?:"
        r"|<link[^>]*https?:[^>]*\brel=[\"']?(stylesheet|preconnect)",
        re.I,
    )
    pages = list(site.rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not remote.search(text), (page, remote.search(text).group(0))
        # Notebook pages import mermaid from a CDN only when a diagram is on the page.
        assert 'class="jp-Mermaid' not in text, page
    optimizers = (site / "reference" / "optimizers" / "index.html").read_text()
    assert "vendor/katex/katex.min.js" in optimizers
    assert "vendor/katex/katex.min.css" in optimizers
    assert (site / "vendor" / "katex" / "katex.min.js").stat().st_size > 100_000
    css = (site / "vendor" / "katex" / "katex.min.css").read_text()
    fonts = set(re.findall(r"url\((fonts/[^)]+\.woff2)\)", css))
    assert fonts and all((site / "vendor" / "katex" / f).exists() for f in fonts)
