"""The GPU exporter's figures for the suite: runs ``python -m bench.exporter``
(the exporter's own benchmark) as a subprocess and reads its figures from
what it prints. Its output is kept whole in the results too, so a change
in its wording loses no figure silently: an unread figure is None."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_P50_MS = 5.0
TARGET_RSS_MB = 40.0


def _number(pattern: str, text: str) -> float | None:
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else None


def parse(text: str) -> dict:
    rss_line = next((line for line in text.splitlines() if "exporter RSS" in line), "")
    peak = re.search(r"([\d.]+) MB peak|peak ([\d.]+) MB", rss_line)
    return {
        "p50_ms": _number(r"latency p50\s+([\d.]+) ms", text),
        "p99_ms": _number(r"latency p99\s+([\d.]+) ms", text),
        "rss_mb": _number(r"exporter RSS\s+([\d.]+) MB", text),
        "peak_rss_mb": float(peak.group(1) or peak.group(2)) if peak else None,
        "cpu_ms_per_scrape": _number(r"\(([\d.]+) ms a scrape\)", text),
        "collection_ms": _number(r"one collection\s+([\d.]+) ms", text),
        "response_bytes": _number(r"response\s+(\d+) bytes", text),
    }


def exporter_bench(gpus: int = 8, scrapes: int = 2000) -> dict:
    command = [sys.executable, "-m", "bench.exporter", "--gpus", str(gpus), "--scrapes", str(scrapes)]
    print(f"GPU exporter: {' '.join(command[1:])}")
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600, check=False)
    for line in done.stdout.splitlines():
        print("  " + line)
    figures = parse(done.stdout)
    return {"command": " ".join(["python", *command[1:]]), "gpus": gpus, "scrapes": scrapes,
            "returncode": done.returncode, **figures, "goals": {"p50_ms": TARGET_P50_MS, "rss_mb": TARGET_RSS_MB},
            "output": done.stdout + (done.stderr[-2000:] if done.returncode else "")}
