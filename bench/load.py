"""HTTP load for the API benchmark, from its own process: ``wrk`` (Debian's
package, installed on demand) when it is there, else a bounded aiohttp
loop. Both keep ``connections`` requests in flight on kept-alive
connections for ``duration`` seconds (closed loop) and report requests/s
and latency percentiles.

    python -m bench.load URL --connections 50 --duration 10 [--header 'Authorization: Bearer ...']
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

import attrs


@attrs.frozen
class LoadResult:
    tool: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers and failed requests
    bytes_per_response: int | None = None


# -- wrk ----------------------------------------------------------------------------------------


def ensure_wrk(install: bool = True) -> str | None:
    found = shutil.which("wrk")
    if found or not install:
        return found
    print("installing wrk (apt-get) ...", flush=True)
    command = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=120", "--no-install-recommends", "wrk"]
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if subprocess.run(command, capture_output=True, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, check=False)
        subprocess.run(command, capture_output=True, env=env, check=False)
    return shutil.which("wrk")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not found:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def parse_wrk(output: str) -> LoadResult:
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(\w+),", output, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if not (percentiles.get("50") and percentiles.get("99") and total and rps):
        raise ValueError("unexpected wrk output:\n" + output[-800:])
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return LoadResult(tool="wrk", requests=int(total.group(1)), seconds=_ms(total.group(2) + total.group(3)) / 1000,
                      rps=float(rps.group(1)), p50_ms=_ms(percentiles["50"]), p99_ms=_ms(percentiles["99"]),
                      errors=errors)


def wrk_command(wrk: str, url: str, connections: int, duration: float, headers: Sequence[str]) -> list[str]:
    command = [wrk, "-t", "1", "-c", str(connections), "-d", f"{duration:g}s", "--latency", "--timeout", "10s"]
    for header in headers:
        command += ["-H", header]
    return command + [url]


# -- the aiohttp loop ------------------------------------------------------------------------------


async def aiohttp_load(url: str, connections: int, duration: float, headers: Sequence[str]) -> LoadResult:
    import aiohttp

    header_map = dict(h.split(":", 1) for h in headers)
    header_map = {k.strip(): v.strip() for k, v in header_map.items()}
    latencies: list[float] = []
    errors = 0
    size = None
    deadline = time.monotonic() + duration
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=header_map) as session:
        async def worker() -> None:
            nonlocal errors, size
            while time.monotonic() < deadline:
                begin = time.perf_counter()
                try:
                    async with session.get(url) as response:
                        body = await response.read()
                        if response.status >= 300:
                            errors += 1
                        size = len(body)
                except aiohttp.ClientError:
                    errors += 1
                latencies.append((time.perf_counter() - begin) * 1000)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        seconds = time.monotonic() - started
    latencies.sort()
    pick = lambda f: latencies[min(len(latencies) - 1, int(f * len(latencies)))] if latencies else 0.0
    return LoadResult(tool="python-aiohttp", requests=len(latencies), seconds=seconds,
                      rps=len(latencies) / seconds, p50_ms=pick(0.5), p99_ms=pick(0.99), errors=errors,
                      bytes_per_response=size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args(argv)
    result = asyncio.run(aiohttp_load(args.url, args.connections, args.duration, args.header))
    print(json.dumps(attrs.asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
