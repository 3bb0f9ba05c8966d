"""CLI: fleet operations over SSH — ``check``, ``install-exporters``,
``remove-exporters`` (``servers trust`` lives with the ``servers`` group).

Each prints a progress bar on stderr while it works, then one row per
server; ``--json`` prints the results instead. Exit code 1 when any
server failed.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import click

from dc_overview import Fleet

from . import output
from .cli import emit, json_option, pass_fleet

names_argument = click.argument("names", nargs=-1, metavar="[NAME...]")
all_option = click.option("--all", "all_servers", is_flag=True, help="Every server in the inventory.")
password_option = click.option(
    "--ask-password", is_flag=True,
    help="Ask once for an SSH password, for servers that have no key (kept in memory only).",
)


def selected(names: Sequence[str], all_servers: bool) -> list[str] | None:
    if names and all_servers:
        raise click.UsageError("give server names or --all, not both")
    if not names and not all_servers:
        raise click.UsageError("give one or more server names, or --all for every server")
    return None if all_servers else list(names)


def prompt_password(wanted: bool) -> str | None:
    return click.prompt("SSH password", hide_input=True, err=True) if wanted else None


class ProgressBar:
    """A progress callback for the Fleet methods: a bar on stderr, made once
    the number of servers is known."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None

    def __call__(self, result: Any, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_pos=True,
                                         item_show_func=lambda name: name or "")
            self.bar.__enter__()
        self.bar.update(1, current_item=f"{result.name}: {result.result}")

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def results_table(results: Sequence[Any], seconds: float) -> str:
    if not results:
        return "No servers to work on. Add some with `dc-overview servers add NAME ADDRESS`."
    rows = [(r.name, r.result, r.detail, f"{r.duration_s:.1f}s") for r in results]
    table = output.table(rows, ("NAME", "RESULT", "DETAIL", "TIME"))
    counts = Counter(r.result for r in results)
    failed = sum(1 for r in results if not r.ok)
    summary = ", ".join(f"{n} {word}" for word, n in counts.most_common())
    verdict = f"{failed} of {len(results)} failed" if failed else f"all {len(results)} ok"
    return f"{table}\n\n{verdict} ({summary}) in {seconds:.1f}s"


def finish(results: Sequence[Any], as_json: bool, started: float) -> None:
    emit(list(results), as_json, lambda items: results_table(items, time.monotonic() - started))
    if any(not r.ok for r in results):
        click.get_current_context().exit(1)


@click.command("check")
@names_argument
@all_option
@password_option
@json_option
@pass_fleet
def check(fleet: Fleet, names: tuple[str, ...], all_servers: bool, ask_password: bool, as_json: bool) -> None:
    """Reach servers over SSH and report what they are and how their exporters do.

    \b
    Per server: reachable, login ok, OS and kernel, CPUs and memory, GPUs
    (nvidia-smi -L, else NVIDIA devices on the PCI bus), systemd, and for
    node_exporter (:9100) and the GPU exporter (:9835) whether the unit runs
    and answers. Results are stored (status, last seen, GPU count, exporters)
    and the Prometheus targets regenerated. The first login pins each
    server's host key; a changed key is refused.
    """
    started = time.monotonic()
    chosen = selected(names, all_servers)
    password = prompt_password(ask_password)
    with ProgressBar("Checking") as bar:
        results = fleet.check(chosen, password=password, progress=bar)
    finish(results, as_json, started)


@click.command("install-exporters")
@names_argument
@all_option
@click.option("--local", is_flag=True, help="Install on this machine itself (run as root on a worker).")
@click.option("--node-exporter-binary", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Push this node_exporter instead of the pinned release (e.g. /usr/bin/prometheus-node-exporter).")
@click.option("--gpu-exporter-artifact", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Push this GPU exporter (a zipapp or an executable) instead of the one built in.")
@click.option("--gpu-exporter-simulate", type=click.IntRange(1, 64), metavar="N",
              help="Install the GPU exporter everywhere, simulating N GPUs (for labs).")
@click.option("--no-gpu-exporter", is_flag=True, help="Install node_exporter only.")
@password_option
@json_option
@pass_fleet
def install_exporters(fleet: Fleet, names: tuple[str, ...], all_servers: bool, local: bool,
                      node_exporter_binary: Path | None, gpu_exporter_artifact: Path | None,
                      gpu_exporter_simulate: int | None, no_gpu_exporter: bool, ask_password: bool,
                      as_json: bool) -> None:
    """Install node_exporter, and the GPU exporter where GPUs are, as systemd units.

    \b
    Binaries are fetched once on this machine (pinned version and sha256,
    cached in <data>/artifacts/) and pushed over SFTP; workers need no
    internet access. Running it again changes nothing unless something
    differs (the binary, the unit, or a unit that is not running).
    """
    started = time.monotonic()
    kwargs = dict(node_exporter_binary=node_exporter_binary, gpu_exporter_artifact=gpu_exporter_artifact,
                  gpu_exporter_simulate=gpu_exporter_simulate, gpu_exporter=not no_gpu_exporter)
    if local:
        if names or all_servers:
            raise click.UsageError("--local works on this machine; give no server names or --all with it")
        finish([fleet.install_exporters_local(**kwargs)], as_json, started)
        return
    chosen = selected(names, all_servers)
    password = prompt_password(ask_password)
    with ProgressBar("Installing") as bar:
        results = fleet.install_exporters(chosen, password=password, progress=bar, **kwargs)
    finish(results, as_json, started)


@click.command("remove-exporters")
@names_argument
@all_option
@click.option("--local", is_flag=True, help="Remove them from this machine itself.")
@password_option
@json_option
@pass_fleet
def remove_exporters(fleet: Fleet, names: tuple[str, ...], all_servers: bool, local: bool, ask_password: bool,
                     as_json: bool) -> None:
    """Stop and remove the exporters dc-overview installed (units and binaries)."""
    started = time.monotonic()
    if local:
        if names or all_servers:
            raise click.UsageError("--local works on this machine; give no server names or --all with it")
        finish([fleet.remove_exporters_local()], as_json, started)
        return
    chosen = selected(names, all_servers)
    password = prompt_password(ask_password)
    with ProgressBar("Removing") as bar:
        results = fleet.remove_exporters(chosen, password=password, progress=bar)
    finish(results, as_json, started)

COMMANDS = (check, install_exporters, remove_exporters)
