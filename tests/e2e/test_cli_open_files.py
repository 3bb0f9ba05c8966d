"""The CLI lifts its soft limit on open files (one socket per server in
flight) up to the hard limit, in a real child process with its own limits."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

THROUGH_MAIN = """
from dc_overview.frontends import cli
try:
    cli.main(["--help"])
except SystemExit:
    pass
"""
SHOW = '\nimport resource\nprint("limits", *resource.getrlimit(resource.RLIMIT_NOFILE))\n'
HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def limits_after(code: str, soft: int, hard: int) -> tuple[int, int]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    done = subprocess.run([sys.executable, "-c", code + SHOW], capture_output=True, text=True, timeout=60,
                          preexec_fn=limit, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("limits "))
    _, now_soft, now_hard = line.split()
    return int(now_soft), int(now_hard)


@pytest.mark.parametrize(("soft", "hard", "expected"), [
    (256, HARD, min(HARD, 65536)),  # up to the hard limit
    (200, 200, 200),                # a hard limit is respected
    (HARD, HARD, HARD),             # never lowered
])
def test_main_lifts_the_soft_open_files_limit(soft: int, hard: int, expected: int):
    assert limits_after(THROUGH_MAIN, soft, hard) == (expected, hard)


def test_the_limit_is_raised_no_higher_than_wanted():
    code = "from dc_overview.frontends.cli import raise_open_files_limit\nraise_open_files_limit(300)"
    assert limits_after(code, 100, 1000) == (300, 1000)
