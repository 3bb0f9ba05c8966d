"""Benchmark of the GPU exporter as a worker runs it: the zipapp in its own
process with simulated GPUs, scraped over loopback with one kept-alive
connection (as Prometheus does). Prints scrape latency percentiles and the
exporter process's memory and CPU time. The exporter collects every 0.5 s
(ten times its default rate) so that collections overlap the scrapes; the
cost of one collection, rendered, is measured in this process too.

    python -m bench.exporter [--gpus 8] [--scrapes 2000] [--python /usr/bin/python3]

Targets: p50 under 5 ms, RSS under 40 MB.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dc_overview.gpu_exporter import build_zipapp
from dc_overview.gpu_exporter.server import Exposition
from dc_overview.gpu_exporter.simulated import SimulatedSource
from dc_overview.gpu_exporter.source import Sampler

from .measure import process_cpu_s, process_memory_mb

TARGET_P50_MS = 5.0
TARGET_RSS_MB = 40.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connect_when_ready(
    port: int, process: subprocess.Popen, timeout: float = 20.0
) -> http.client.HTTPConnection:
    deadline = time.monotonic() + timeout
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/metrics")
            connection.getresponse().read()
            return connection
        except OSError:
            connection.close()
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the exporter did not start") from None
            time.sleep(0.05)


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def collection_ms(gpus: int, rounds: int = 200) -> float:
    """Median time of one collection plus its rendering, in this process."""
    source = SimulatedSource(gpus)
    source.start()
    sampler = Sampler(source, interval=5, on_snapshot=Exposition(source.name).update)
    times = []
    for _ in range(rounds):
        begin = time.perf_counter()
        sampler.collect_once()
        times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.exporter", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=8, help="simulated GPUs (default %(default)s)")
    parser.add_argument("--scrapes", type=int, default=2000, help="timed scrapes (default %(default)s)")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the zipapp")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        zipapp = build_zipapp(Path(folder))
        port = free_port()
        command = [
            args.python,
            "-S",
            str(zipapp),
            "--simulate",
            str(args.gpus),
            "--port",
            str(port),
            "--listen",
            "127.0.0.1",
            "--interval",
            "0.5",
        ]
        # its byte-code folder (boot.py) in this run's temporary folder, made by the first start below
        env = {**os.environ, "DC_GPU_EXPORTER_CACHE": f"{folder}/byte-code"}
        subprocess.run([*command[:3], "--version"], env=env, capture_output=True, check=True)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        try:
            connection = connect_when_ready(port, process)
            for _ in range(50):  # warm-up
                connection.request("GET", "/metrics")
                connection.getresponse().read()
            cpu_before = process_cpu_s(process.pid)
            latencies, size = [], 0
            started = time.perf_counter()
            for _ in range(args.scrapes):
                begin = time.perf_counter()
                connection.request("GET", "/metrics")
                body = connection.getresponse().read()
                latencies.append((time.perf_counter() - begin) * 1000)
                size = len(body)
            elapsed = time.perf_counter() - started
            cpu = process_cpu_s(process.pid) - cpu_before
            memory = process_memory_mb(process.pid)
            connection.close()
        finally:
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=15)
        series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))

    latencies.sort()
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    rss, peak = memory["VmRSS"], memory["VmHWM"]
    version = subprocess.run(
        [args.python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
    ).stdout.strip()

    def verdict(met: bool) -> str:
        return "met" if met else "MISSED"

    setup = f"zipapp on Python {version}, {args.gpus} simulated GPUs, {os.cpu_count()} CPUs"
    print(f"GPU exporter benchmark: {setup}")
    print(f"  scrapes          {args.scrapes} over one kept-alive connection in {elapsed:.2f} s")
    print(f"  response         {size} bytes, {series} samples")
    print(
        f"  latency p50      {p50:.2f} ms   (target < {TARGET_P50_MS:g} ms: {verdict(p50 < TARGET_P50_MS)})"
    )
    mean = statistics.fmean(latencies)
    print(f"  latency p99      {p99:.2f} ms   (max {latencies[-1]:.2f} ms, mean {mean:.2f} ms)")
    rss_target = f"target < {TARGET_RSS_MB:g} MB: {verdict(peak < TARGET_RSS_MB)}"
    print(f"  exporter RSS     {rss:.1f} MB, peak {peak:.1f} MB   ({rss_target})")
    print(f"  exporter CPU     {cpu:.2f} s during the scrapes ({cpu / args.scrapes * 1000:.2f} ms a scrape)")
    print(
        f"  one collection   {collection_ms(args.gpus):.2f} ms with rendering (median, measured in this process)"
    )
    print(f"  exit on SIGTERM  code {process.returncode}")
    if process.returncode != 0:
        print(errors, file=sys.stderr)
    return 0 if process.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
