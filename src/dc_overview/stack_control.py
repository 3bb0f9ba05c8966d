"""Use cases for the running stack: status, logs, stop, start, restart,
reloading Prometheus and the proxy. (What the landing page reads,
``/api/services``, is in ``services``.)"""

from __future__ import annotations

import asyncio
from typing import Callable

import attrs

from . import errors
from .ports import ContainerInfo, ContainerRuntime, Deps
from .stack import LABEL, PROMETHEUS_PREFIX, PROXY_CONF, StackSpec, container_name, find_service
from .stack_options import current_spec, runtime_of


@attrs.frozen
class ServiceStatus:
    service: str
    container: str
    state: str  # running, exited, restarting, ... or "missing"
    health: str | None = None
    image: str | None = None
    version: str | None = None  # the image's tag
    ports: tuple[str, ...] = ()
    started_at: str | None = None
    in_stack: bool = True  # False: a leftover of ours the stack no longer has


def stack_id(spec: StackSpec) -> str:
    return spec.prefix + "dc-overview"


async def stack_containers(runtime: ContainerRuntime, spec: StackSpec) -> list[ContainerInfo]:
    return await runtime.containers([f"{LABEL}.managed=true", f"{LABEL}.stack={stack_id(spec)}"])


def _tag(image: str | None) -> str | None:
    if not image or "@" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


async def stack_status(deps: Deps) -> list[ServiceStatus]:
    """Every service of the stack (missing ones too), then leftovers of ours."""
    runtime = runtime_of(deps)
    spec = await current_spec(deps)
    found = {c.name: c for c in await stack_containers(runtime, spec)}
    rows = []
    for service in spec.services:
        name = container_name(spec, service.name)
        info = found.pop(name, None)
        if info is None:
            rows.append(ServiceStatus(service.name, name, "missing", image=service.image, version=_tag(service.image)))
        else:
            rows.append(_row(service.name, info))
    for info in found.values():
        rows.append(attrs.evolve(_row(info.labels.get(f"{LABEL}.service", info.name), info), in_stack=False))
    return rows


def _row(service: str, info: ContainerInfo) -> ServiceStatus:
    return ServiceStatus(service, info.name, info.state, info.health, info.image, _tag(info.image),
                         info.ports, info.started_at)


# -- waiting, logs, reloading -------------------------------------------------------------


async def wait_healthy(runtime: ContainerRuntime, service: str, name: str, timeout_s: float,
                       poll_s: float = 0.5) -> ContainerInfo:
    """Until the container is healthy (or running, without a health check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        info = await runtime.inspect(name)
        if info is None:
            raise errors.ContainerFailed(service, f"container {name} disappeared")
        if info.state in ("exited", "dead", "restarting"):
            raise errors.ContainerFailed(service, f"stopped (exit code {info.exit_code}) right after it started",
                                         await service_logs_text(runtime, name))
        if info.state == "running" and info.health in (None, "healthy"):
            return info
        if info.health == "unhealthy":
            raise errors.ContainerFailed(service, "its health check fails", await service_logs_text(runtime, name))
        if loop.time() > deadline:
            raise errors.ContainerFailed(service, f"not healthy after {timeout_s:g} s (health: {info.health})",
                                         await service_logs_text(runtime, name))
        await asyncio.sleep(poll_s)


async def service_logs_text(runtime: ContainerRuntime, name: str, tail: int = 30) -> str:
    try:
        return "\n".join([line async for line in runtime.logs(name, tail=tail)])
    except errors.DcOverviewError:
        return ""


async def stack_logs(deps: Deps, service: str | None = None, *, tail: int | None = 100, follow: bool = False,
                     on_line: Callable[[str], None] = print) -> None:
    """Each output line of one service, or of all (prefixed ``service | ``)."""
    runtime = runtime_of(deps)
    spec = await current_spec(deps)
    names = [service] if service else [s.name for s in spec.services]
    for name in names:
        find_service(spec, name)
    present = {c.name for c in await stack_containers(runtime, spec)}
    chosen = [n for n in names if container_name(spec, n) in present]
    if not chosen:
        raise errors.StackNotApplied()

    async def pump(name: str) -> None:
        prefix = f"{name} | " if len(chosen) > 1 else ""
        async for line in runtime.logs(container_name(spec, name), tail=tail, follow=follow):
            on_line(prefix + line)

    await asyncio.gather(*(pump(n) for n in chosen))


async def check_and_reload_proxy(runtime: ContainerRuntime, container: str) -> None:
    """``nginx -t`` in the proxy, then a graceful reload; raises ProxyConfigInvalid."""
    conf = f"{PROXY_CONF}/nginx.conf"
    test = await runtime.exec(container, ["nginx", "-t", "-q", "-c", conf])
    if test.exit_status != 0:
        raise errors.ProxyConfigInvalid("the new configuration", test.stderr or test.stdout)
    done = await runtime.exec(container, ["nginx", "-s", "reload", "-c", conf])
    if done.exit_status != 0:
        raise errors.ProxyConfigInvalid("to reload", done.stderr or done.stdout)


def prometheus_url(spec: StackSpec) -> str:
    """Where this host reaches the stack's Prometheus (published on loopback)."""
    if not spec.options.prometheus_local_port:
        raise errors.InvalidStackOption("prometheus_local_port", "Prometheus is not published on this host (0)",
                                        "set it to a free port, e.g. 9090, and apply")
    return f"http://127.0.0.1:{spec.options.prometheus_local_port}{PROMETHEUS_PREFIX}"


async def reload_prometheus(deps: Deps, base_url: str | None = None, *, spec: StackSpec | None = None) -> None:
    """Have Prometheus re-read its configuration and rules (``POST /-/reload``)."""
    if deps.prometheus is None:
        raise errors.OperationUnavailable("reloading Prometheus", "open the fleet with dc_overview.open()")
    await deps.prometheus.reload(base_url or prometheus_url(spec or await current_spec(deps)))


# -- stop, start, restart ------------------------------------------------------------------


async def _targets(deps: Deps, service: str | None) -> tuple[ContainerRuntime, StackSpec, list[str]]:
    runtime = runtime_of(deps)
    spec = await current_spec(deps)
    names = [find_service(spec, service).name] if service else [s.name for s in spec.services]
    present = {c.name for c in await stack_containers(runtime, spec)}
    containers = [container_name(spec, n) for n in names if container_name(spec, n) in present]
    if not containers:
        raise errors.StackNotApplied()
    return runtime, spec, containers


async def stop_stack(deps: Deps, service: str | None = None) -> list[str]:
    """Stop the stack's containers (the proxy first), or one service's. Data stays."""
    runtime, _, containers = await _targets(deps, service)
    stopped = list(reversed(containers))
    for name in stopped:
        await runtime.stop(name)
    return stopped


async def start_stack(deps: Deps, service: str | None = None, *, timeout_s: float = 180.0) -> list[str]:
    """Start the stack's containers as they are (``apply`` makes missing ones)."""
    runtime, spec, containers = await _targets(deps, service)
    for name in containers:
        await runtime.start(name)
    await asyncio.gather(*(wait_healthy(runtime, n[len(spec.prefix):], n, timeout_s) for n in containers))
    return containers


async def restart_stack(deps: Deps, service: str | None = None, *, timeout_s: float = 180.0) -> list[str]:
    runtime, spec, containers = await _targets(deps, service)
    for name in containers:
        await runtime.restart(name)
    await asyncio.gather(*(wait_healthy(runtime, n[len(spec.prefix):], n, timeout_s) for n in containers))
    return containers
