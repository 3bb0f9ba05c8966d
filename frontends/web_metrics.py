"""The app's own metrics for Prometheus at ``GET /metrics``, in a registry of
its own (never the process-global one): the fleet's size and state from the
inventory, taken at scrape time, and the latency of every request by route.

- ``dc_overview_servers_total``, ``dc_overview_servers_online``,
  ``dc_overview_gpu_total`` (GPUs found by the last checks)
- ``dc_overview_exporters_installed{server,exporter}`` (1 installed, 0 not)
- ``dc_overview_http_request_duration_seconds{method,route,status}``
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from dc_overview.domain import EXPORTER_PORTS, Server, ServerStatus

from .web_context import METRICS


class FleetCollector:
    """Reports the servers handed to it by ``update`` just before a scrape."""

    def __init__(self) -> None:
        self.servers: Sequence[Server] = ()

    def update(self, servers: Sequence[Server]) -> None:
        self.servers = tuple(servers)

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: names are fixed below

    def collect(self) -> Iterator[Metric]:
        servers = self.servers
        yield GaugeMetricFamily("dc_overview_servers_total", "Servers in the inventory.", value=len(servers))
        yield GaugeMetricFamily(
            "dc_overview_servers_online", "Servers online at their last check.",
            value=sum(1 for s in servers if s.status is ServerStatus.ONLINE),
        )
        yield GaugeMetricFamily(
            "dc_overview_gpu_total", "GPUs found by the last checks.", value=sum(s.gpu_count or 0 for s in servers)
        )
        installed = GaugeMetricFamily(
            "dc_overview_exporters_installed", "1 when the exporter is installed on the server.",
            labels=["server", "exporter"],
        )
        for server in servers:
            for exporter in EXPORTER_PORTS:
                installed.add_metric([server.name, exporter], 1.0 if server.exporter(exporter).installed else 0.0)
        yield installed


class WebMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.fleet = FleetCollector()
        self.registry.register(self.fleet)  # type: ignore[arg-type]
        self.latency = Histogram(
            "dc_overview_http_request_duration_seconds", "Time to answer a request, by route.",
            ["method", "route", "status"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self._series: dict[tuple[str, str, int], Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request's time. The labelled series are looked up once each
        (they are bounded: methods, route patterns, statuses)."""
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self.latency.labels(method, route, str(status))
        series.observe(seconds)


def route_label(request: web.Request) -> str:
    """The route's pattern (``/api/servers/{id}``), never the raw path, so
    that unknown URLs cannot make new series."""
    match = request.match_info
    if match.http_exception is not None:
        return "unmatched"
    return match.route.resource.canonical if match.route.resource else "unmatched"


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(request: web.Request, status: int, seconds: float) -> None:
    """One request's latency, by method, route pattern and status."""
    method = request.method if request.method in _METHODS else "other"
    request.app[METRICS].observe(method, route_label(request), status, seconds)
