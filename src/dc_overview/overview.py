"""The fleet at a glance: totals and one tile per server, coloured by health.

The inventory gives the servers and what the last check found; Prometheus,
when it answers, adds what is live: which exporters answer scrapes, GPU
temperatures and utilisation. When Prometheus cannot be asked the overview
still comes back, from the inventory alone, saying why metrics are missing.

Health of a tile: ``critical`` (red) when the server is offline, its SSH
login is refused, every exporter is down, or a GPU is at 90 °C or more;
``warn`` (amber) when one exporter of several is down or a GPU is at 80 °C
or more; ``ok`` (green) when it answers; ``unknown`` (grey) before any check
or scrape has seen it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime

import attrs

from . import errors
from .domain import EXPORTER_PORTS, Server, ServerStatus
from .ports import Deps, Sample

TEMP_WARN = 80.0
TEMP_CRITICAL = 90.0
QUERY_TIMEOUT = 3.0

# A GPU may be reported by two exporters (dc-exporter and dcgm-exporter):
# utilisation and the count are over distinct (server, gpu) pairs.
QUERIES = {
    "up": 'up{server!=""}',
    "temp": 'max by (server) (DCGM_FI_DEV_GPU_TEMP{server!=""})',
    "util": 'avg by (server) (max by (server, gpu) (DCGM_FI_DEV_GPU_UTIL{server!=""}))',
    "gpus": 'count by (server) (max by (server, gpu) (DCGM_FI_DEV_GPU_TEMP{server!=""}))',
}


@attrs.frozen
class ServerTile:
    id: int | None
    name: str
    address: str
    status: str
    health: str  # ok | warn | critical | unknown
    reason: str
    reachable: bool | None  # None: nothing has seen it yet
    gpu_count: int | None
    max_gpu_temp: float | None
    avg_gpu_util: float | None
    exporters_up: int | None
    exporters_down: int | None
    exporters_installed: int
    last_seen: datetime | None


@attrs.frozen
class PrometheusState:
    reachable: bool
    url: str | None
    error: str | None = None


@attrs.frozen
class Overview:
    servers_total: int
    servers_online: int
    servers_offline: int
    servers_unknown: int
    gpus_total: int
    exporters_installed: int
    exporters_up: int | None
    exporters_down: int | None
    prometheus: PrometheusState
    tiles: tuple[ServerTile, ...]
    generated_at: datetime


@attrs.frozen
class _Metrics:
    up: dict[str, int] = attrs.field(factory=dict)
    down: dict[str, int] = attrs.field(factory=dict)
    temp: dict[str, float] = attrs.field(factory=dict)
    util: dict[str, float] = attrs.field(factory=dict)
    gpus: dict[str, int] = attrs.field(factory=dict)


def prometheus_api_url(configured: str | None, setting: str) -> str | None:
    """Where the server itself can ask Prometheus: ``configured`` if given,
    else the ``prometheus_url`` setting when it is an absolute http(s) URL
    (a path such as ``/prometheus/`` is a link for browsers only)."""
    for candidate in (configured, setting):
        if candidate and candidate.startswith(("http://", "https://")):
            return candidate
    return None


async def fleet_overview(deps: Deps, prometheus_api: str | None = None) -> Overview:
    servers = deps.storage.list_servers()
    setting = str(deps.storage.load_settings().get("prometheus_url") or "/prometheus/")
    url = prometheus_api_url(prometheus_api, setting)
    metrics, state = await _ask_prometheus(deps, url, setting)
    tiles = tuple(_tile(s, metrics if state.reachable else None) for s in servers)
    online = sum(1 for t in tiles if t.reachable is True)
    offline = sum(1 for t in tiles if t.reachable is False)
    return Overview(
        servers_total=len(tiles),
        servers_online=online,
        servers_offline=offline,
        servers_unknown=len(tiles) - online - offline,
        gpus_total=sum(t.gpu_count or 0 for t in tiles),
        exporters_installed=sum(t.exporters_installed for t in tiles),
        # of this inventory's servers only: Prometheus may scrape others too
        exporters_up=sum(t.exporters_up or 0 for t in tiles) if state.reachable else None,
        exporters_down=sum(t.exporters_down or 0 for t in tiles) if state.reachable else None,
        prometheus=state,
        tiles=tiles,
        generated_at=deps.clock.now(),
    )


async def _ask_prometheus(deps: Deps, url: str | None, setting: str) -> tuple[_Metrics, PrometheusState]:
    if url is None:
        return _Metrics(), PrometheusState(
            False, None,
            f"prometheus_url is {setting!r}, a link for browsers; give the web app an address it can "
            "reach (serve --prometheus-api http://HOST:9090/)",
        )
    if deps.metrics is None:
        return _Metrics(), PrometheusState(False, url, "no Prometheus client is configured")
    try:
        answers = await asyncio.gather(
            *(deps.metrics.query(url, q, timeout=QUERY_TIMEOUT) for q in QUERIES.values())
        )
    except errors.MetricsUnavailable as exc:
        return _Metrics(), PrometheusState(False, url, exc.message)
    found = dict(zip(QUERIES, answers))
    up: dict[str, int] = {}
    down: dict[str, int] = {}
    for sample in found["up"]:
        server = sample.labels.get("server", "")
        target = up if sample.value >= 1 else down
        target[server] = target.get(server, 0) + 1
    return (
        _Metrics(up=up, down=down, temp=_by_server(found["temp"]), util=_by_server(found["util"]),
                 gpus={k: int(v) for k, v in _by_server(found["gpus"]).items()}),
        PrometheusState(True, url),
    )


def _by_server(samples: Iterable[Sample]) -> dict[str, float]:
    return {s.labels["server"]: s.value for s in samples if s.labels.get("server") and s.value == s.value}


def _tile(server: Server, metrics: _Metrics | None) -> ServerTile:
    installed = sum(1 for name in EXPORTER_PORTS if server.exporter(name).installed)
    up = down = None
    temp = util = None
    gpus = server.gpu_count
    if metrics is not None:
        up, down = metrics.up.get(server.name, 0), metrics.down.get(server.name, 0)
        temp, util = metrics.temp.get(server.name), metrics.util.get(server.name)
        seen = metrics.gpus.get(server.name)
        if seen is not None and (gpus is None or seen > gpus):
            gpus = seen
    scraped = bool(up or down)
    reachable = (up or 0) > 0 if scraped else _STATUS_REACHABLE.get(server.status)
    health, reason = _health(server.status, reachable, scraped, down, temp)
    return ServerTile(
        id=server.id, name=server.name, address=server.address, status=server.status.value,
        health=health, reason=reason, reachable=reachable, gpu_count=gpus, max_gpu_temp=temp, avg_gpu_util=util,
        exporters_up=up, exporters_down=down, exporters_installed=installed, last_seen=server.last_seen,
    )


_STATUS_REACHABLE = {
    ServerStatus.ONLINE: True, ServerStatus.AUTH_FAILED: True,
    ServerStatus.OFFLINE: False, ServerStatus.ERROR: False,
}


def _health(
    status: ServerStatus, reachable: bool | None, scraped: bool, down: int | None, temp: float | None
) -> tuple[str, str]:
    if status is ServerStatus.AUTH_FAILED:  # alive, but cannot be managed
        return ("warn" if scraped and reachable else "critical"), "SSH login refused"
    if reachable is False:
        if scraped:
            return "critical", "exporters down"
        return "critical", "check failed" if status is ServerStatus.ERROR else "offline"
    if temp is not None and temp >= TEMP_CRITICAL:
        return "critical", f"GPU at {temp:.0f} °C"
    if temp is not None and temp >= TEMP_WARN:
        return "warn", f"GPU at {temp:.0f} °C"
    if down:
        return "warn", f"{down} exporter{'s' if down > 1 else ''} down"
    if reachable is None:
        return "unknown", "not checked yet"
    return "ok", "online"

