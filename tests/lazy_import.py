"""Heavy test-only dependencies (torch, pytorch-optimizer, orbax), imported on first use.

``torch = lazy("torch")`` at the top of a test module reads like ``import torch``,
but the import happens when a test first looks a name up on it, not when the suite
is collected: an xdist worker that runs no torch test never pays for importing
torch.  Module-level code must not look names up on it (write the name as a string
and look it up in the test instead), and private names (``torch._C``) are not
reachable through it.
"""

from __future__ import annotations

import importlib


class _Lazy:
    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def __setattr__(self, attr: str, value):
        # Setting a name here would not reach the module (monkeypatch "torch.randn_like").
        raise TypeError(f"set {attr!r} on the module itself, not on lazy({self._name!r})")

    def __getattr__(self, attr: str):
        # pytest's collection probes every module-level object for private markers
        # (``_pytestfixturefunction``, ``__test__``, ...); those must not import.
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str):
    """The module ``name``, imported when one of its attributes is first read."""
    return _Lazy(name)
