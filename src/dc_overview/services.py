"""The services of the fleet's control node and whether each runs, for the
reverse proxy's landing page (``/api/services``): an object keyed by service
name, each ``{running, healthy, container, port, image}`` as the proxy's own
``/api/services`` answers. Containers are found through the ContainerRuntime
port; without one (or when Docker cannot be reached) nothing is reported as
running except this web app itself, which is evidently serving."""

from __future__ import annotations

import asyncio

import attrs

from .ports import ContainerInfo, Deps

SELF = "dc-overview"


@attrs.frozen
class ServiceInfo:
    name: str
    title: str
    port: int
    path: str | None  # where the proxy serves it; None when it has no web UI
    summary: str
    install: str  # how to get it when it is not installed


CATALOG: tuple[ServiceInfo, ...] = (
    ServiceInfo("cryptolabs-proxy", "Reverse proxy", 443, None,
                "HTTPS entry point; serves every service below under one address",
                "installed with the dc-overview stack on this host"),
    ServiceInfo("dc-overview", "DC Overview", 5001, "/dc/",
                "Fleet inventory, exporters and this overview", "`pip install dc-overview`"),
    ServiceInfo("ipmi-monitor", "IPMI Monitor", 5000, "/ipmi/",
                "BMC sensors, SEL events and power control",
                "install ipmi-monitor on this host; the proxy finds it at port 5000"),
    ServiceInfo("grafana", "Grafana", 3000, "/grafana/", "Dashboards for GPUs and hosts",
                "part of the dc-overview stack on this host"),
    ServiceInfo("prometheus", "Prometheus", 9090, "/prometheus/", "Metrics store and alert rules",
                "part of the dc-overview stack on this host"),
    ServiceInfo("vastai-exporter", "Vast.ai exporter", 8622, None, "Vast.ai earnings and rentals",
                "set the Vast.ai API key in Settings; it runs with the stack"),
    ServiceInfo("runpod-exporter", "RunPod exporter", 8623, None, "RunPod pods and earnings",
                "set the RunPod API key in Settings; it runs with the stack"),
)


@attrs.frozen
class ServiceState:
    running: bool
    healthy: bool
    container: str | None
    port: int
    image: str | None


async def service_states(deps: Deps) -> dict[str, ServiceState]:
    found = await _containers(deps)
    states: dict[str, ServiceState] = {}
    for service in CATALOG:
        info = found.get(service.name)
        running = info is not None and info.state == "running"
        healthy = running and info is not None and info.health in (None, "healthy")
        if service.name == SELF and not running:  # answering this request: running, whatever Docker says
            running = healthy = True
        states[service.name] = ServiceState(
            running=running, healthy=healthy, container=info.name if info else None,
            port=service.port, image=info.image if info else None,
        )
    return states


async def _containers(deps: Deps) -> dict[str, ContainerInfo]:
    runtime = deps.runtime
    if runtime is None:
        return {}
    try:
        if not await runtime.available():
            return {}
        infos = await asyncio.gather(*(runtime.inspect(s.name) for s in CATALOG))
    except Exception:  # noqa: BLE001 - a broken runtime means "not known to run", never an error page
        return {}
    return {s.name: i for s, i in zip(CATALOG, infos) if i is not None}
