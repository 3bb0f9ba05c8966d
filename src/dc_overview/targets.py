"""Prometheus targets for the fleet, in the file_sd / http_sd JSON shape:
``[{"targets": ["host:port"], "labels": {...}}]``.

Every server gets a node_exporter target (9100) and a GPU exporter target
(9835) unless a check found no GPU and no GPU exporter is installed (a lab
worker may run it with simulated GPUs). An exporter that was explicitly
disabled is left out. Labels: ``job`` (one per exporter), ``server`` (the
server's name), ``exporter``, and the server's own labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from .domain import EXPORTER_PORTS, GPU_EXPORTER, NODE_EXPORTER, Server
from .ports import Deps

TARGETS_FILE = "prometheus/targets/fleet.json"
JOBS = {NODE_EXPORTER: "node", GPU_EXPORTER: "gpu"}


def host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def build_targets(servers: Iterable[Server]) -> list[dict]:
    groups: list[dict] = []
    for server in sorted(servers, key=lambda s: s.name):
        for exporter, port in EXPORTER_PORTS.items():
            installed = server.exporter(exporter).installed
            if exporter == GPU_EXPORTER and not (server.may_have_gpu or installed):
                continue
            if not server.exporter(exporter).enabled:
                continue
            labels = {**server.labels, "job": JOBS[exporter], "server": server.name, "exporter": exporter}
            groups.append({"targets": [host_port(server.address, port)], "labels": labels})
    return groups


async def prometheus_targets(deps: Deps) -> list[dict]:
    return build_targets(deps.storage.list_servers())


def write_targets(deps: Deps) -> Path:
    """Regenerate the file_sd file atomically; Prometheus picks it up by itself."""
    text = json.dumps(build_targets(deps.storage.list_servers()), indent=2) + "\n"
    return deps.storage.write_file_atomically(TARGETS_FILE, text)


__all__ = ["TARGETS_FILE", "build_targets", "prometheus_targets", "write_targets", "NODE_EXPORTER"]
