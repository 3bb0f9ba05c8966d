"""Benchmark of the interactive shell on a large inventory: what an operator
waits for between commands and on Tab. Prints figures; asserts nothing.

    python -m bench.shell [--servers 5000] [--repeat 20]

- Tab: the completer listing every server (``servers show ``), a prefix, a
  subcommand; the first Tab after a command reads the names again;
- one command run through the shell (``servers show NAME``) and through the
  click group directly, in this process;
- start-up: ``dc-overview shell`` running one line from a pipe, the same
  command without the shell, and ``dc-overview --version`` (the shell must
  not slow other commands down: prompt-toolkit loads only for the shell).

Targets: Tab under 100 ms at 5,000 servers, also the first after a command.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

import dc_overview
from dc_overview.frontends.cli import cli
from dc_overview.frontends.shell import Shell, ShellContext


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and worst of ``repeat`` runs, in milliseconds."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs), max(runs)


def fill(data_dir: Path, servers: int) -> None:
    lines = "\n".join(f"gpu-{i:05d},10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(servers))
    with dc_overview.open(data_dir) as fleet:
        fleet.import_servers(lines, source="bench")
        fleet.generate_key("fleet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        started = time.perf_counter()
        fill(data_dir, args.servers)
        print(f"inventory: {args.servers} servers ({time.perf_counter() - started:.1f}s to import)")

        with dc_overview.open(data_dir) as fleet:
            shell = Shell(ShellContext(fleet))

            def tab(text: str, after_a_command: bool = False) -> Callable[[], object]:
                async def complete() -> list[str]:
                    event = CompleteEvent(completion_requested=True)
                    return [c.text async for c in shell.completer.get_completions_async(Document(text), event)]

                def press() -> object:
                    shell.names.stale = shell.names.stale or after_a_command
                    return fleet.run(complete())

                return press

            def through(run: Callable[[], object]) -> Callable[[], object]:
                def quiet() -> None:
                    with contextlib.redirect_stdout(io.StringIO()):
                        run()
                return quiet

            shown = f"gpu-{args.servers // 2:05d}"
            rows = [
                ("Tab after a command: every server", tab("servers show ", after_a_command=True)),
                ("  of which Fleet.servers() + keys()", lambda: (fleet.servers(), fleet.keys())),
                ("Tab: every server name", tab("servers show ")),
                ("Tab: names with a prefix", tab("servers show gpu-001")),
                ("Tab: a subcommand", tab("servers sh")),
                ("servers show NAME via the shell", through(lambda: shell.run_command(["servers", "show", shown]))),
                ("servers show NAME via click", through(lambda: cli.main(
                    ["servers", "show", shown], "dc-overview", standalone_mode=False, obj=shell.app))),
            ]
            for label, fn in rows:
                median, worst = timed(fn, args.repeat)
                print(f"{label:<40} median {median:8.2f} ms   worst {worst:8.2f} ms")

        command = [sys.executable, "-m", "dc_overview", "--data-dir", str(data_dir)]
        for label, extra, stdin in (("start-up: shell, one line, exit", ["shell"], "servers show gpu-00000\n"),
                                    ("start-up: servers show (no shell)", ["servers", "show", "gpu-00000"], ""),
                                    ("start-up: --version", ["--version"], "")):
            median, worst = timed(lambda extra=extra, stdin=stdin: subprocess.run(
                [*command, *extra], input=stdin, text=True, capture_output=True, check=True), 5)
            print(f"{label:<40} median {median:8.2f} ms   worst {worst:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
