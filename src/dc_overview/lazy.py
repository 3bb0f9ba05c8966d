"""Modules imported when first used. The API object offers every use case,
but a command runs one or two of them: ``servers list`` has no use for the
monitoring stack's or quickstart's modules, and a CLI that imports them all
starts noticeably slower. A module named here is looked up at once (a
missing one fails at import, as usual) and imported at the first read of
one of its names, through the import system and its locks, so threads that
get there together import it once."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for a module until one of its names is read."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:  # only for names not on this object
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, {'imported' if self._module else 'imported at first use'}>"


def lazy_import(name: str) -> Any:
    """``name``'s module, imported at the first read of one of its names."""
    if importlib.util.find_spec(name) is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    return LazyModule(name)
