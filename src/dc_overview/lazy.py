"""Modules loaded when first used. The API object offers every use case,
but a command runs one or two of them: ``servers list`` has no use for the
monitoring stack's or quickstart's modules, and a CLI that imports them all
starts noticeably slower. A module named here is found at once (a missing
one fails at import, as usual) and runs when one of its names is first read."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """``name``'s module: the loaded one if it is loaded, else one that loads
    itself on first attribute access (``importlib.util.LazyLoader``)."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return module
