"""Griffe extension: gradtx's docstrings as mkdocstrings' reference tables read them.

Two rewrites of a docstring's text, before griffe parses it:

* An ``Example:`` section is read as ``Examples:``.  gradtx's docstrings
  head their doctest with ``Example:``; griffe reads only ``Examples:`` as an
  examples section (and ``Example:`` as an admonition), so this renders the
  doctest as code on the reference pages.
* An ``Args:`` item that documents several arguments at once
  (``b1, b2: the decays of m and v``) becomes one item per argument, each
  with the same description.  Griffe takes a parameter's default from the
  signature by the item's name, so a shared item ``b1, b2`` matches no
  parameter and its table row read *required*; one item per name shows
  each argument's own default.  Only items whose every name is a parameter
  of the function are split.
"""

from __future__ import annotations

import re

import griffe

_EXAMPLE = re.compile(r"^Example:[ \t]*$", re.M)
_ARGS = re.compile(r"^(?P<indent>[ \t]*)(?:Args|Arguments|Parameters):[ \t]*$")
_SHARED_ITEM = re.compile(
    r"^(?P<indent>[ \t]*)(?P<names>\w+(?:[ \t]*,[ \t]*\w+)+)[ \t]*:(?P<rest>.*)$"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_shared_items(docstring: str, parameters) -> str:
    """``docstring`` with each ``Args:`` item naming several ``parameters`` split into one per name."""
    lines = docstring.split("\n")
    out: list[str] = []
    i = 0
    in_args, section_indent = False, 0
    while i < len(lines):
        line = lines[i]
        header = _ARGS.match(line)
        if header:
            in_args, section_indent = True, len(header.group("indent"))
            out.append(line)
            i += 1
            continue
        if in_args and line.strip() and _indent(line) <= section_indent:
            in_args = False
        item = _SHARED_ITEM.match(line) if in_args else None
        names = [n.strip() for n in item.group("names").split(",")] if item else []
        if not names or not all(n in parameters for n in names):
            out.append(line)
            i += 1
            continue
        # The item's continuation: the following lines indented deeper than its name.
        end = i + 1
        while end < len(lines) and (
            not lines[end].strip() or _indent(lines[end]) > len(item.group("indent"))
        ):
            end += 1
        while end > i + 1 and not lines[end - 1].strip():  # blank lines stay after the items
            end -= 1
        continuation = lines[i + 1 : end]
        for name in names:
            out.append(f"{item.group('indent')}{name}:{item.group('rest')}")
            out.extend(continuation)
        i = end
    return "\n".join(out)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is None:
            return
        text = _EXAMPLE.sub("Examples:", obj.docstring.value)
        parameters = getattr(obj, "parameters", None)
        if parameters is not None:
            text = split_shared_items(text, {p.name for p in parameters})
        obj.docstring.value = text
