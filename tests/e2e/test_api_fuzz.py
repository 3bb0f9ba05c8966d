"""A schema-driven fuzz of the JSON API: Schemathesis generates requests from
docs/openapi.yaml (valid and invalid ones, bounded in number) and checks
every answer: never a 500, status codes, content types, headers and bodies
as documented, invalid input rejected, auth enforced.

The app runs here on loopback with its real adapters, except that SSH and
downloads are test doubles that refuse everything: the fuzzer makes servers
with any address it likes, and a check of those must never leave this
machine."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest
from aiohttp import web
from dc_overview.frontends.web_app import create_app

from tests.fakes import FakeDownloader, FakeSsh
from tests.support.require import missing
from tests.support.web import PASSWORD, open_fleet
from tests.support.web_stack import free_port

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 100  # per operation; the whole run takes well under two minutes here
SEED = 20260301


class AppInThread:
    """The web app served by aiohttp on its own event loop in a thread."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.token = ""
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.fleet = open_fleet(self.data_dir, ssh=FakeSsh(), downloader=FakeDownloader())
        await self.fleet.add_user("admin", PASSWORD, "admin")
        self.token = (await self.fleet.create_token("admin", "fuzz")).secret
        await self.fleet.add_server("gpu-01", "127.0.0.1", ssh_port=1)
        await self.fleet.generate_key("fuzz-key")
        self.runner = web.AppRunner(create_app(self.fleet))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.fleet.close()

    def __enter__(self) -> Self:
        self.thread.start()
        assert self.ready.wait(30), "the app did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def app(tmp_path) -> Iterator[AppInThread]:
    with AppInThread(tmp_path / "data") as running:
        yield running


def schemathesis_command() -> list[str]:
    found = shutil.which("schemathesis")
    if found is None:
        missing("schemathesis", "pip install schemathesis")
    return [found]  # type: ignore[list-item]


def test_the_api_survives_a_schema_driven_fuzz(app, tmp_path):
    command = [
        *schemathesis_command(), "run", str(ROOT / "docs" / "openapi.yaml"),
        "--url", f"http://127.0.0.1:{app.port}",
        "--header", f"Authorization: Bearer {app.token}",
        "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--generation-database", "none", "--workers", "2", "--request-timeout", "10",
        "--no-color", "--output-truncate", "true",
        "--report", "junit", "--report-junit-path", str(tmp_path / "fuzz-junit.xml"),
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    seconds = time.monotonic() - started
    summary = [line for line in done.stdout.splitlines() if "passed" in line or "failed" in line or "error" in line.lower()]
    print(f"schemathesis ran {seconds:.0f} s; exit {done.returncode}")
    print("\n".join(summary[-15:]))
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-3000:]
    generated = int(re.search(r"(\d+) generated", done.stdout).group(1))
    assert generated > 22 * 10, f"only {generated} requests were made"  # it really fuzzed every operation
