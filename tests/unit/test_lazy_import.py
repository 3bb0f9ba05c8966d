"""``lazy_import``: a module looked up at once, imported at its first use."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from dc_overview.lazy import lazy_import


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A throwaway package whose module counts its runs (slowly, so that
    threads arriving together would run it twice if nothing stopped them)."""
    folder = tmp_path / "lazy_probe_pkg"
    folder.mkdir()
    (folder / "__init__.py").write_text("RUNS = []\n")
    (folder / "heavy.py").write_text(textwrap.dedent("""
        import time
        import lazy_probe_pkg
        lazy_probe_pkg.RUNS.append(1)
        time.sleep(0.2)
        VALUE = 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield __import__("lazy_probe_pkg")
    for name in [n for n in sys.modules if n.startswith("lazy_probe_pkg")]:
        del sys.modules[name]


def test_the_module_is_imported_at_its_first_use_and_only_once(package):
    heavy = lazy_import("lazy_probe_pkg.heavy")
    assert package.RUNS == [] and "lazy_probe_pkg.heavy" not in sys.modules
    assert heavy.VALUE == 42
    assert package.RUNS == [1]
    assert heavy.VALUE == 42 and package.RUNS == [1]
    from lazy_probe_pkg import heavy as imported  # type: ignore[import-not-found]
    assert imported is sys.modules["lazy_probe_pkg.heavy"] and package.RUNS == [1]


def test_threads_that_use_it_together_import_it_once(package):
    heavy = lazy_import("lazy_probe_pkg.heavy")
    start = threading.Barrier(8)
    seen: list[int] = []

    def use() -> None:
        start.wait()
        seen.append(heavy.VALUE)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [42] * 8
    assert package.RUNS == [1]


def test_a_module_already_imported_is_used_as_it_is(package):
    __import__("lazy_probe_pkg.heavy")
    assert lazy_import("lazy_probe_pkg.heavy").VALUE == 42
    assert package.RUNS == [1]


def test_a_missing_module_fails_at_once(package):
    with pytest.raises(ModuleNotFoundError, match="lazy_probe_pkg.nothing"):
        lazy_import("lazy_probe_pkg.nothing")
    with pytest.raises(AttributeError):
        lazy_import("lazy_probe_pkg.heavy").no_such_name


def test_the_package_still_offers_its_modules_as_attributes():
    """``dc_overview.quickstart`` works after a bare ``import dc_overview``,
    as it did when the package imported every module at once."""
    code = ("import sys, dc_overview\n"
            "assert 'dc_overview.quickstart' not in sys.modules\n"
            "print(dc_overview.quickstart.QuickstartProgress.__name__)\n"
            "try:\n    dc_overview.no_such_module\nexcept AttributeError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["QuickstartProgress",
                                        "module 'dc_overview' has no attribute 'no_such_module'"]
