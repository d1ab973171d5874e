"""Griffe extension: read a Google-style ``Example:`` section as ``Examples:``.

gradtx's docstrings head their doctest with ``Example:``; griffe reads only
``Examples:`` as an examples section (and ``Example:`` as an admonition), so
this renders the doctest as code on the reference pages.
"""

from __future__ import annotations

import re

import griffe

_EXAMPLE = re.compile(r"^Example:[ \t]*$", re.M)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub("Examples:", obj.docstring.value)
