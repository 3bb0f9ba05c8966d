"""Ports of the monitoring stack: the container engine that runs its
services, the shared reverse proxy's routes and Prometheus' lifecycle API,
with the values they exchange. ``ports`` re-exports every name here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator, Callable, Mapping, Protocol, Sequence

import attrs

if TYPE_CHECKING:
    from .ports import CommandResult


@attrs.frozen
class ContainerInfo:
    name: str
    image: str
    state: str  # running, exited, created, restarting, ...
    health: str | None = None  # healthy, unhealthy, starting; None without a health check
    labels: Mapping[str, str] = attrs.field(factory=dict)
    id: str | None = None
    image_id: str | None = None  # the image the container runs (sha256:...)
    ports: tuple[str, ...] = ()  # published ports, e.g. "127.0.0.1:9090->9090/tcp"
    started_at: str | None = None
    exit_code: int | None = None


@attrs.frozen
class PortBinding:
    container_port: int
    host_port: int
    host_ip: str = "0.0.0.0"


@attrs.frozen
class Mount:
    source: str  # a named volume, or an absolute path on the host
    target: str
    volume: bool = False
    read_only: bool = False


@attrs.frozen
class HealthCheck:
    test: tuple[str, ...]  # a command run inside the container; exit 0 is healthy
    interval_s: float = 10.0
    timeout_s: float = 5.0
    retries: int = 6
    start_period_s: float = 30.0


@attrs.frozen
class ContainerFile:
    """A file put into a container before it starts (secrets, never on the host's disk)."""

    path: str
    content: str = attrs.field(repr=False)
    mode: int = 0o444


@attrs.frozen
class ContainerSpec:
    """Everything a runtime needs to create one container."""

    name: str
    image: str
    labels: Mapping[str, str] = attrs.field(factory=dict)
    entrypoint: tuple[str, ...] | None = None  # None: the image's own
    command: tuple[str, ...] = ()  # empty: the image's own
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)  # may hold secrets
    ports: tuple[PortBinding, ...] = ()
    mounts: tuple[Mount, ...] = ()
    files: tuple[ContainerFile, ...] = ()
    network: str | None = None
    aliases: tuple[str, ...] = ()
    health: HealthCheck | None = None
    user: str | None = None
    run_as_owner_of: str | None = None  # a host path: run as its owner's uid:gid
    docker_socket: bool = False  # mount the engine's socket, with the socket's group
    restart: str = "unless-stopped"


class ContainerRuntime(Protocol):
    """A container engine (Docker). Every call raises EngineUnavailable when
    the engine cannot be reached, with what to do about it."""

    async def available(self) -> bool: ...
    async def containers(self, label: str | Sequence[str]) -> list[ContainerInfo]:
        """Containers (running or not) carrying every ``key=value`` label given."""
        ...
    async def inspect(self, name: str) -> ContainerInfo | None: ...

    async def version(self) -> str:
        """The engine's version; raises EngineUnavailable."""
        ...
    async def image_id(self, image: str) -> str | None:
        """The local image's id, or None when it is not here."""
        ...
    async def pull(self, image: str, progress: Callable[[str], None] | None = None) -> str:
        """Pull ``image`` (reporting progress lines) and return its id; raises ImagePullFailed."""
        ...
    async def ensure_network(self, name: str, labels: Mapping[str, str]) -> str | None:
        """Make the network unless it exists; its subnet (e.g. 172.18.0.0/16) when known."""
        ...
    async def ensure_volume(self, name: str, labels: Mapping[str, str]) -> None: ...
    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create the container (and put its files in); it is not started."""
        ...
    async def start(self, name: str) -> None: ...
    async def stop(self, name: str, timeout_s: float = 10.0) -> None: ...
    async def restart(self, name: str, timeout_s: float = 10.0) -> None: ...
    async def rename(self, name: str, new_name: str) -> None: ...
    async def remove(self, name: str) -> None:
        """Stop and remove the container; one that is not there is fine. Volumes stay."""
        ...
    def logs(self, name: str, *, tail: int | None = 100, follow: bool = False) -> AsyncIterator[str]:
        """The container's output, line by line (stdout and stderr)."""
        ...
    async def exec(self, name: str, argv: Sequence[str], *, timeout_s: float = 30.0) -> CommandResult:
        """Run ``argv`` inside the running container."""
        ...


@attrs.frozen
class ServiceRoute:
    """A service the reverse proxy serves under ``path`` (``/name/``)."""

    name: str
    path: str
    upstream: str  # host:port inside the proxy's network
    container: str | None = None
    strip_prefix: bool = True  # pass /rest instead of /path/rest (X-Forwarded-Prefix says path)
    read_only_paths: tuple[str, ...] = ()  # sub-paths where only GET and HEAD pass


class ProxyRegistry(Protocol):
    """The shared reverse proxy's routes: one include file per service and
    its entry in the services list. A change is validated (``nginx -t`` in
    the proxy) before the proxy reloads; an invalid one is undone."""

    async def register(self, route: ServiceRoute) -> None: ...
    async def unregister(self, name: str) -> None: ...
    async def routes(self) -> list[ServiceRoute]: ...


class PrometheusControl(Protocol):
    async def reload(self, base_url: str) -> None:
        """POST ``{base_url}/-/reload``; raises PrometheusReloadFailed with
        Prometheus' own message when it refuses the new configuration."""
        ...
