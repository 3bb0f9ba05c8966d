"""``lazy_import``: a module found at once, run at its first use."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from dc_overview.lazy import lazy_import


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A throwaway package whose module records when it runs."""
    folder = tmp_path / "lazy_probe_pkg"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "heavy.py").write_text(textwrap.dedent("""
        import builtins
        builtins.lazy_probe_runs = getattr(builtins, "lazy_probe_runs", 0) + 1
        VALUE = 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazy_probe_pkg"
    for name in [n for n in sys.modules if n.startswith("lazy_probe_pkg")]:
        del sys.modules[name]
    import builtins
    if hasattr(builtins, "lazy_probe_runs"):
        del builtins.lazy_probe_runs


def runs() -> int:
    import builtins
    return getattr(builtins, "lazy_probe_runs", 0)


def test_the_module_runs_at_its_first_use_and_only_once(package: str):
    __import__(package)
    heavy = lazy_import(f"{package}.heavy")
    assert runs() == 0
    assert heavy.VALUE == 42
    assert runs() == 1
    assert heavy.VALUE == 42 and runs() == 1
    # an ordinary import finds the same module, without running it again
    from lazy_probe_pkg import heavy as imported  # type: ignore[import-not-found]
    assert imported.VALUE == 42 and runs() == 1
    assert sys.modules[f"{package}.heavy"] is heavy


def test_a_module_already_loaded_is_returned_as_it_is(package: str):
    __import__(f"{package}.heavy")
    assert runs() == 1
    assert lazy_import(f"{package}.heavy") is sys.modules[f"{package}.heavy"]
    assert runs() == 1


def test_a_missing_module_fails_at_once(package: str):
    __import__(package)
    with pytest.raises(ModuleNotFoundError, match="lazy_probe_pkg.nothing"):
        lazy_import(f"{package}.nothing")
