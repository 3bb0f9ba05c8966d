"""``dc-overview exporter`` through click, in this process: it serves until
SIGTERM, then returns and puts the previous signal handlers back."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request

import pytest
from click.testing import CliRunner
from dc_overview.frontends.cli_exporter import exporter

from tests.support.sshd import free_port

pytestmark = pytest.mark.integration


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(exporter, ["--help"])
    assert result.exit_code == 0
    for option in ("--port", "--interval", "--simulate", "--listen"):
        assert option in result.output


@pytest.mark.parametrize("args", [["--interval", "0"], ["--port", "70000"], ["--simulate", "0"]])
def test_bad_values_are_usage_errors(args: list[str]) -> None:
    assert CliRunner().invoke(exporter, args).exit_code == 2


def test_serves_simulated_gpus_until_sigterm() -> None:
    port = free_port(["127.0.0.1"])
    scraped: list[str] = []

    def scrape_then_terminate() -> None:
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                        scraped.append(response.read().decode())
                        return
                except OSError:
                    time.sleep(0.05)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # the exporter's handler is installed before it serves

    previous = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=scrape_then_terminate)

    # The handler only exists once the exporter serves; if it never does, SIGTERM must not kill pytest.
    def placeholder(*_: object) -> None:
        pass

    signal.signal(signal.SIGTERM, placeholder)
    try:
        thread.start()
        result = CliRunner().invoke(
            exporter, ["--simulate", "3", "--port", str(port), "--listen", "127.0.0.1"]
        )
        thread.join(10)
        assert result.exit_code == 0, result.output
        assert scraped, "nothing was scraped"
        assert 'source="simulated"' in scraped[0]
        assert scraped[0].count("DCGM_FI_DEV_GPU_TEMP{") == 3
        assert signal.getsignal(signal.SIGTERM) is placeholder  # put back by the exporter
    finally:
        signal.signal(signal.SIGTERM, previous)
