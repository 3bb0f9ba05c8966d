"""Parts for the whole-fleet end-to-end test (tests/e2e/test_whole_fleet.py):
the ``dc-overview`` command as a subprocess, a web client that keeps cookies
by path as a browser does (so a test can say "the same cookie"), a record of
the scenario's steps with their timings, and the fleet under test.

Everything here talks only to loopback and to the Docker networks the test
makes itself."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.image_registry import Registry
from tests.support.stack_lab import LABEL, container_ids, docker, prometheus_query, remove_stack, wait_until
from tests.support.worker_lab import SshKey, Worker, WorkerLab, pid_alive

PREFIX_MARK = "wf"  # the stack prefix of a whole-fleet run: wf<pid>x<n>-
RECENT = "20s"  # a target is "up" when a scrape in the last 20 s succeeded


# -- the command line --------------------------------------------------------------------------


def cli_argv() -> list[str]:
    """``dc-overview`` as a user runs it: the installed script beside this
    Python, else ``python -m dc_overview``."""
    script = Path(sys.executable).with_name("dc-overview")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dc_overview"]


@dataclass
class CliRun:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def explain(self) -> str:
        return (f"`{' '.join(self.argv)}` exited {self.returncode} after {self.seconds:.1f}s\n"
                f"--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr[-6000:]}")

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError:
            raise AssertionError(f"no JSON on stdout:\n{self.explain()}") from None


def run_cli(data: Path, *args: str, timeout: float = 600) -> CliRun:
    argv = [*cli_argv(), "--data-dir", str(data), *args]
    env = {k: v for k, v in os.environ.items() if k != "DC_OVERVIEW_DATA"}
    started = time.monotonic()
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    return CliRun(argv, done.returncode, done.stdout, done.stderr, time.monotonic() - started)


# -- the web app through the proxy ---------------------------------------------------------------

_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
COOKIE_NAME = "dc_overview_session"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    set_cookies: list[str]

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"HTTP {self.status}, not JSON: {self.text[:300]!r}") from None

    def ok(self) -> Any:
        """The JSON of a 200 answer; anything else fails with what came instead."""
        assert self.status == 200, f"HTTP {self.status}: {self.text[:500]!r}"
        return self.json()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class WebClient:
    """HTTPS to the proxy, keeping cookies as a browser does (by path, RFC
    6265: a cookie goes to the paths under its own, the longest path first).
    ``cookie`` is the session cookie the app's pages get (path ``/dc/``)."""

    origin: str  # https://127.0.0.1:PORT
    context: ssl.SSLContext
    jar: dict[tuple[str, str], str] = field(default_factory=dict)  # (name, path) -> value

    @property
    def cookie(self) -> str | None:
        return self.jar.get((COOKIE_NAME, "/dc/"))

    @cookie.setter
    def cookie(self, value: str) -> None:
        self.jar[(COOKIE_NAME, "/dc/")] = value

    def _cookie_header(self, path: str) -> str:
        sent = sorted(((p, n, v) for (n, p), v in self.jar.items() if path.startswith(p)),
                      key=lambda c: -len(c[0]))
        return "; ".join(f"{n}={v}" for _, n, v in sent)

    def _keep(self, path: str, line: str) -> None:
        parts = [p.strip() for p in line.split(";")]
        name, _, value = parts[0].partition("=")
        attributes = {k.lower(): v for k, _, v in (p.partition("=") for p in parts[1:])}
        cookie_path = attributes.get("path") or path[: path.rfind("/") + 1] or "/"
        if attributes.get("max-age") == "0":
            self.jar.pop((name, cookie_path), None)
        else:
            self.jar[(name, cookie_path)] = value

    def request(self, method: str, path: str, *, data: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30) -> Response:
        headers = dict(headers or {})
        cookies = self._cookie_header(path.split("?", 1)[0])
        if cookies:
            headers["Cookie"] = cookies
        request = urllib.request.Request(self.origin + path, data=data, method=method, headers=headers)
        opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=self.context))
        try:
            with opener.open(request, timeout=timeout) as answer:
                status, head, body = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as exc:
            status, head, body = exc.code, exc.headers, exc.read()
        cookies_set = head.get_all("Set-Cookie") or []
        for line in cookies_set:
            self._keep(path.split("?", 1)[0], line)
        return Response(status, dict(head), body, cookies_set)

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def csrf(self, path: str = "/dc/") -> str:
        page = self.get(path)
        found = _CSRF_META.search(page.text) or _CSRF_FIELD.search(page.text)
        assert found, f"no CSRF token on {path} (HTTP {page.status}): {page.text[:300]!r}"
        return found.group(1).replace("&amp;", "&")

    def post_form(self, path: str, fields: dict[str, str], csrf: str) -> Response:
        body = urllib.parse.urlencode({**fields, "csrf_token": csrf}).encode()
        return self.request("POST", path, data=body,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})

    def post_json(self, path: str, value: Any, csrf: str) -> Response:
        return self.request("POST", path, data=json.dumps(value).encode(),
                            headers={"Content-Type": "application/json", "X-CSRF-Token": csrf})

    def log_in(self, name: str, password: str) -> Response:
        csrf = self.csrf("/dc/login")
        return self.post_form("/dc/login", {"name": name, "password": password, "next": "/"}, csrf)


# -- the scenario's steps ---------------------------------------------------------------------


@dataclass
class Steps:
    """Which steps passed, and how long each took. A step that needs an
    earlier one that failed says so instead of failing for a reason that
    only repeats the first failure."""

    passed: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    timings: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str, *needs: str) -> Iterator[None]:
        import pytest

        missing = [n for n in needs if n not in self.passed]
        if missing:
            self.failed.add(name)
            pytest.fail(f"step {name!r} not run: it needs step(s) {', '.join(map(repr, missing))}, "
                        f"which did not pass", pytrace=False)
        started = time.monotonic()
        print(f"\n[whole fleet] {name} ...", flush=True)
        try:
            yield
        except BaseException:
            self.failed.add(name)
            raise
        finally:
            took = time.monotonic() - started
            self.timings.append((name, took))
            print(f"[whole fleet] {name}: {took:.1f}s", flush=True)
        self.passed.add(name)

    def summary(self) -> str:
        total = sum(t for _, t in self.timings)
        rows = [f"  {name:<44} {took:6.1f}s{'  FAILED' if name in self.failed else ''}"
                for name, took in self.timings]
        return "whole-fleet steps:\n" + "\n".join(rows) + f"\n  {'total':<44} {total:6.1f}s"


# -- cleanup of runs that died before they could clean up ------------------------------------------


def new_prefix(counter: list[int] = [0]) -> str:  # noqa: B006  (a per-process counter)
    counter[0] += 1
    return f"{PREFIX_MARK}{os.getpid()}x{counter[0]}-"


def reap_stale_stacks() -> None:
    """Remove the stacks of whole-fleet runs whose process is gone: their
    containers, network and volumes (found by the stack label's prefix)."""
    listed = docker("ps", "-a", "--filter", f"label={LABEL}.stack", "--format",
                    f'{{{{.Label "{LABEL}.stack"}}}}', check=False).stdout.split()
    for stack in set(listed):
        found = re.fullmatch(rf"({PREFIX_MARK}(\d+)x\d+-)dc-overview", stack)
        if found and not pid_alive(int(found.group(2))):
            remove_stack(found.group(1), f"{found.group(1)}cryptolabs")


def container_id(name: str) -> str:
    return docker("inspect", "-f", "{{.Id}}", name).stdout.strip()


def volume_names(prefix: str) -> list[str]:
    return sorted(v for v in docker("volume", "ls", "-q", "--filter", f"name={prefix}").stdout.split()
                  if v.startswith(prefix))


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    """``wait_until`` that also retries on AssertionError (a check may assert)."""
    return wait_until(check, timeout, what, interval, retry_on=(OSError, ValueError, AssertionError))


# -- the fleet under test ---------------------------------------------------------------------


@dataclass
class Fleet:
    """Everything the scenario made, shared by its steps."""

    root: Path
    data: Path
    key: SshKey
    lab: WorkerLab
    registry: Registry
    prefix: str
    ports: dict[str, int]
    steps: Steps
    workers: list[Worker] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)
    web: WebClient | None = None

    @property
    def answers(self) -> Path:
        return self.root / "answers.yaml"

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}/prometheus"

    @property
    def names(self) -> list[str]:
        return [f"gpu-{i:02d}" for i in range(1, len(self.workers) + 1)]

    def container(self, service: str) -> str:
        return self.prefix + service

    def ids(self) -> dict[str, str]:
        return container_ids(self.prefix)

    def up(self, window: str | None = None) -> dict[tuple[str, str], str]:
        """(server, job) -> ``up`` for the fleet's targets; with ``window``, its
        best value over that time (1: a scrape in it succeeded), which a single
        scrape that timed out on a busy machine does not turn into 0."""
        expr = 'up{job=~"node|gpu"}'
        found = prometheus_query(self.prometheus, f"max_over_time({expr}[{window}])" if window else expr)
        return {(r["metric"].get("server", "?"), r["metric"]["job"]): r["value"][1] for r in found}

    def running_names(self) -> list[str]:
        """The names of the workers whose containers run now."""
        return [name for name, worker in zip(self.names, self.workers) if worker.running()]

    def all_up(self, names: list[str] | None = None) -> bool:
        """Every one of the 2 targets per worker (of ``names``, else every
        worker) up (recently scraped)."""
        targets = {(name, job) for name in self.names for job in ("node", "gpu")}
        up = self.up(RECENT)
        assert set(up) == targets, f"targets {sorted(up)}"
        up = {(name, job): v for (name, job), v in up.items() if names is None or name in names}
        down = sorted(t for t, v in up.items() if v != "1")
        assert not down, f"down: {down}"
        return True

    def cli(self, *args: str, timeout: float = 600):  # type: ignore[no-untyped-def]
        return run_cli(self.data, *args, timeout=timeout)
