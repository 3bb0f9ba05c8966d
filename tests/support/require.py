"""Tests on real parts need those parts. Locally a missing part skips the
test with the command that installs it; in CI (``CI`` set) it fails, so a
missing install step in ``.ci/run`` can never pass unnoticed."""

from __future__ import annotations

import os
import shutil

import pytest


def missing(what: str, how: str) -> None:
    message = f"{what} is not available here ({how})"
    if os.environ.get("CI"):
        pytest.fail(message + "; .ci/run should have provided it", pytrace=False)
    pytest.skip(message)


def need_executable(name: str, how: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if not path:
        missing(name, how)
    return path  # type: ignore[return-value]
