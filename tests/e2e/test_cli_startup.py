"""Start-up cost: a command loads only the libraries it uses. The heavy ones
(aiohttp, prompt_toolkit, aiodocker, jinja2, asyncssh, cryptography,
sqlite-utils, prometheus_client) are imported inside the adapters and
commands that need them, so ``settings list`` or ``--help`` starts in a
fraction of the time. The time itself is measured by ``python -m bench``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("aiohttp", "prompt_toolkit", "aiodocker", "jinja2", "asyncssh", "cryptography", "sqlite_utils",
         "prometheus_client", "numpy", "pandas")

# Runs the CLI as `dc-overview` would, then prints the top-level modules it loaded.
RUN_CLI = """
import json, sys
from dc_overview.frontends.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"exit": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}), file=sys.stderr)
"""


def loaded_by(*argv: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", RUN_CLI, *argv], capture_output=True, text=True, timeout=120)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["exit"] in (0, None), done.stderr
    return set(report["modules"])


@pytest.mark.parametrize("argv", [
    ("settings", "list"),
    ("servers", "list"),
    ("check", "--help"),
    ("quickstart", "--help"),
    ("exporter", "--help"),
    ("--help",),
], ids=" ".join)
def test_a_command_that_needs_no_heavy_library_loads_none(tmp_path: Path, argv: tuple[str, ...]):
    data = ("--data-dir", str(tmp_path / "data"))
    assert "sqlite_utils" in loaded_by(*data, "settings", "list")  # the first open creates the schema with it
    loaded = loaded_by(*data, *argv)
    assert "dc_overview" in loaded and "click" in loaded
    assert sorted(loaded & set(HEAVY)) == []


# Prints the dc_overview modules (and yaml) that were imported; a lazy one never used was not.
RUN_CLI_MODULES = """
import json, sys
from dc_overview.frontends.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
ran = sorted(n for n in sys.modules if n.startswith(("dc_overview", "yaml")))
print(json.dumps(ran), file=sys.stderr)
"""

STACK_AND_QUICKSTART = ("dc_overview.stack", "dc_overview.stack_apply", "dc_overview.stack_control",
                        "dc_overview.quickstart", "dc_overview.quickstart_answers", "dc_overview.exporter_install",
                        "dc_overview.accounts", "dc_overview.fleet_config", "dc_overview.overview")


@pytest.mark.parametrize("argv", [("settings", "list"), ("servers", "list"), ("check", "--help"),
                                  ("quickstart", "--help"), ("secrets", "list")], ids=" ".join)
def test_a_command_runs_only_the_use_cases_it_needs(tmp_path: Path, argv: tuple[str, ...]):
    done = subprocess.run([sys.executable, "-c", RUN_CLI_MODULES, "--data-dir", str(tmp_path / "data"), *argv],
                          capture_output=True, text=True, timeout=120)
    ran = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert "dc_overview.api" in ran and "dc_overview.inventory" in ran
    assert sorted(ran & set(STACK_AND_QUICKSTART)) == []
    assert "yaml" not in ran


def test_the_lazy_modules_still_run_when_used(tmp_path: Path):
    # `stack options` reads the stack's options: those modules load at their first use
    done = subprocess.run([sys.executable, "-c", RUN_CLI_MODULES, "--data-dir", str(tmp_path / "data"),
                           "stack", "options"], capture_output=True, text=True, timeout=120)
    ran = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert {"dc_overview.stack", "dc_overview.stack_options"} <= ran, done.stderr[-2000:]


def test_a_command_that_uses_a_library_still_loads_it(tmp_path: Path):
    # the check above sees imports: generating a key brings asyncssh in
    loaded = loaded_by("--data-dir", str(tmp_path / "data"), "keys", "generate", "fleet")
    assert "asyncssh" in loaded
    assert "aiohttp" not in loaded and "prompt_toolkit" not in loaded


def test_the_exporter_command_shows_the_exporters_own_defaults():
    from dc_overview.frontends import cli_exporter
    from dc_overview.gpu_exporter import server

    assert (cli_exporter.DEFAULT_PORT, cli_exporter.DEFAULT_LISTEN, cli_exporter.DEFAULT_INTERVAL) == (
        server.DEFAULT_PORT, server.DEFAULT_LISTEN, server.DEFAULT_INTERVAL)
