"""mkdocs hook: reference pages that follow the code, and the notebooks.

A reference page names the modules it documents with one line,

    ::: members-of gradtx._momentum gradtx._scaling

(options for every entry may follow, as in ``heading_level=3``), which this
hook replaces by one mkdocstrings entry (``::: gradtx.NAME``) per public name
of ``gradtx`` defined in those modules, in source order.  A public module
such as ``gradtx.presets.torch`` contributes its ``__all__``.
So a name added to a module that a page already covers appears on that page
without editing the docs, and a name from a module no page covers is
reported: ``mkdocs build --strict`` fails on it, and so does
``tests/test_docs.py``.  Pages may also list names by hand (``::: gradtx.adam``).

The notebooks live in ``notebooks/`` at the repository root; the hook adds
them to the site under ``notebooks/`` (mkdocs-jupyter renders them, without
executing them).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pathlib
import re
import sys
import types

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = "notebooks"
MEMBERS = re.compile(r"^::: members-of (?P<modules>.+?) *$", re.M)
ENTRY = re.compile(r"^(?:#{1,6} *)?::: *(?P<name>[\w.]+) *$", re.M)
DOCUMENTED_MODULES = (
    "gradtx",
    "gradtx.microbatching",
    "gradtx.presets.torch",
    "gradtx.presets.keras",
)

log = logging.getLogger("mkdocs.hooks.reference")


def public_names(module_name: str) -> dict[str, object]:
    """The public names of a module, ``{qualified name: object}``.

    ``__all__`` when the module has one; otherwise every attribute not
    starting with an underscore, except modules (``gradtx.presets`` is
    documented through its own submodules).
    """
    if str(ROOT) not in sys.path:  # document this checkout's gradtx, whatever is installed
        sys.path.insert(0, str(ROOT))
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and not isinstance(v, types.ModuleType)
        ]
    return {f"{module_name}.{n}": getattr(module, n) for n in names}


def all_public_names() -> dict[str, object]:
    """Every name the reference must document."""
    names = {}
    for module_name in DOCUMENTED_MODULES:
        names.update(public_names(module_name))
    return names


def _defining_module(obj) -> str | None:
    module = getattr(obj, "__module__", None)
    if module is None:
        found = inspect.getmodule(obj)
        module = found.__name__ if found else None
    return module


def _source_line(obj) -> int:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return 10**9


def members_of(module_name: str) -> list[str]:
    """Qualified public names documented by ``members-of module_name``, in source order.

    For a private module (``gradtx._momentum``, ``gradtx.optimizers._adam``):
    the names of the nearest enclosing namespace that exports them.  For a public one: its own public names.
    """
    package, _, last = module_name.rpartition(".")
    if last.startswith("_"):
        # The nearest enclosing package that exports the module's names
        # (``gradtx`` for ``gradtx.optimizers._adam``).
        chosen = []
        while package and not chosen:
            candidates = public_names(package)
            chosen = [(q, o) for q, o in candidates.items() if _defining_module(o) == module_name]
            package = package.rpartition(".")[0]
    else:
        chosen = list(public_names(module_name).items())
    chosen.sort(key=lambda item: _source_line(item[1]))
    return [q for q, _ in chosen]


def expand(markdown: str) -> str:
    """Replace each ``::: members-of ...`` line by mkdocstrings entries."""

    def entries(match):
        words = match.group("modules").split()
        options = [w.split("=", 1) for w in words if "=" in w]
        names = [n for m in words if "=" not in m for n in members_of(m)]
        if not names:
            raise ValueError(f"'{match.group(0)}' documents no public name")
        yaml = (
            "\n    options:" + "".join(f"\n      {k}: {v}" for k, v in options) if options else ""
        )
        return "\n\n".join(f"::: {n}{yaml}" for n in names)

    return MEMBERS.sub(entries, markdown)


def documented_names(docs_dir: pathlib.Path) -> set[str]:
    """The qualified names that the Markdown pages under ``docs_dir`` document."""
    found = set()
    for page in docs_dir.rglob("*.md"):
        text = expand(page.read_text(encoding="utf-8"))
        found.update(m.group("name") for m in ENTRY.finditer(text))
    return found


def undocumented(docs_dir: pathlib.Path) -> list[str]:
    """Public names that no reference page documents, each with its defining module."""
    documented = documented_names(docs_dir)
    return sorted(
        f"{name} (defined in {_defining_module(obj)})"
        for name, obj in all_public_names().items()
        if name not in documented
    )


# ----------------------------------------------------------------------------
# mkdocs events.


def on_files(files, config):
    from mkdocs.structure.files import File

    for path in sorted((ROOT / NOTEBOOKS).glob("*.ipynb")):
        files.append(
            File(
                f"{NOTEBOOKS}/{path.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    for entry in undocumented(pathlib.Path(config["docs_dir"])):
        log.warning(
            "public name %s is on no reference page: add its module to a "
            "'::: members-of' line in docs/reference/",
            entry,
        )
    return files


# Run before mkdocs-jupyter's on_files, which claims the notebooks added here.
on_files.mkdocs_priority = 100


def on_page_markdown(markdown, page, config, files):
    return expand(markdown)
