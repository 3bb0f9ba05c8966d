"""The ContainerRuntime port on a Docker engine, through aiodocker.

The engine is reached at ``$DOCKER_HOST`` or ``unix:///var/run/docker.sock``.
Its errors become domain errors that say what to do: no socket (install or
start Docker), no permission on it (root or the ``docker`` group), an image
that cannot be pulled.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Mapping, Sequence

from dc_overview import errors
from dc_overview.ports import CommandResult, ContainerInfo, ContainerSpec

if TYPE_CHECKING:
    import aiodocker

DEFAULT_SOCKET = "/var/run/docker.sock"
_NANO = 1_000_000_000


class _NotLoaded(Exception):
    """Stands for aiodocker's and aiohttp's errors until ``_load_client_library``
    has run; nothing raises it, and nothing that could raise theirs runs before."""


DockerError: type[Exception] = _NotLoaded
ClientConnectionError: type[Exception] = _NotLoaded


def _load_client_library() -> None:
    """aiodocker (and aiohttp under it) on the first use of the engine, so the
    commands that never reach Docker start without them."""
    global aiodocker, DockerError, ClientConnectionError
    import aiodocker
    from aiodocker.exceptions import DockerError
    from aiohttp import ClientConnectionError


class DockerRuntime:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
        self._client: aiodocker.Docker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the connection ---------------------------------------------------------------

    def _socket(self) -> str | None:
        return self.url[len("unix://"):] if self.url.startswith("unix://") else None

    def _check_socket(self) -> None:
        socket = self._socket()
        if socket is None:
            return
        if not os.path.exists(socket):
            raise errors.EngineUnavailable(
                f"no Docker engine here: {socket} does not exist",
                "install Docker (Debian: apt-get install docker.io) and start it (systemctl start docker)",
            )
        if not os.access(socket, os.R_OK | os.W_OK):
            raise errors.EngineUnavailable(
                f"no permission to use the Docker engine at {socket}",
                "run as root, or add this user to the docker group (usermod -aG docker USER) and log in again",
            )

    async def _docker(self) -> aiodocker.Docker:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is not loop:
            self._client = None  # made on another (closed) event loop
        if self._client is None:
            self._check_socket()
            _load_client_library()
            self._client = aiodocker.Docker(url=self.url)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            try:
                await self._client.close()
            finally:
                self._client = None

    def _engine_error(self, exc: DockerError) -> errors.DcOverviewError:
        if exc.status == 900:
            return errors.EngineUnavailable(
                f"the Docker engine at {self.url} does not answer ({exc.message})",
                "start it (systemctl start docker) and try again",
            )
        return errors.DcOverviewError(f"Docker: {exc.message}")

    async def _call(self, coroutine: Any) -> Any:
        try:
            return await coroutine
        except DockerError as exc:
            raise self._engine_error(exc) from None
        except PermissionError:
            raise errors.EngineUnavailable(f"no permission to use the Docker engine at {self.url}",
                                           "run as root or join the docker group") from None
        except (FileNotFoundError, ConnectionRefusedError, ClientConnectionError) as exc:
            raise errors.EngineUnavailable(f"the Docker engine at {self.url} cannot be reached ({exc})",
                                           "start it (systemctl start docker)") from None

    async def _container(self, name: str) -> Any | None:
        docker = await self._docker()
        try:
            return await docker.containers.get(name)
        except DockerError as exc:
            if exc.status == 404:
                return None
            raise self._engine_error(exc) from None

    # -- queries ---------------------------------------------------------------------------

    async def available(self) -> bool:
        try:
            await self.version()
            return True
        except errors.EngineUnavailable:
            return False

    async def version(self) -> str:
        docker = await self._docker()
        info = await self._call(docker.version())
        return f"Docker {info.get('Version', '?')} (API {info.get('ApiVersion', '?')})"

    async def containers(self, label: str | Sequence[str]) -> list[ContainerInfo]:
        docker = await self._docker()
        labels = [label] if isinstance(label, str) else list(label)
        listed = await self._call(docker.containers.list(all="true", filters=json.dumps({"label": labels})))
        infos = []
        for item in listed:
            info = await self.inspect(item.id)
            if info is not None:  # gone meanwhile
                infos.append(info)
        return sorted(infos, key=lambda i: i.name)

    async def inspect(self, name: str) -> ContainerInfo | None:
        container = await self._container(name)
        if container is None:
            return None
        try:
            data = await container.show()
        except DockerError as exc:
            if exc.status == 404:
                return None
            raise self._engine_error(exc) from None
        return _info(data)

    async def image_id(self, image: str) -> str | None:
        docker = await self._docker()
        try:
            return (await docker.images.inspect(image))["Id"]
        except DockerError as exc:
            if exc.status == 404:
                return None
            raise self._engine_error(exc) from None

    # -- images, networks, volumes ----------------------------------------------------------

    async def pull(self, image: str, progress: Callable[[str], None] | None = None) -> str:
        docker = await self._docker()
        last: dict[str, str] = {}
        shown = 0.0
        try:
            async for event in docker.images.pull(image, stream=True):
                status = str(event.get("status", ""))
                layer = str(event.get("id", ""))
                if progress and status and (last.get(layer) != status or time.monotonic() - shown > 2):
                    detail = event.get("progress") or ""
                    progress(f"{layer + ': ' if layer else ''}{status} {detail}".rstrip())
                    last[layer] = status
                    shown = time.monotonic()
        except DockerError as exc:
            if exc.status == 900:
                raise self._engine_error(exc) from None
            raise errors.ImagePullFailed(image, exc.message.strip()) from None
        found = await self.image_id(image)
        if found is None:
            raise errors.ImagePullFailed(image, "the engine reported no error, but the image is not there")
        return found

    async def ensure_network(self, name: str, labels: Mapping[str, str]) -> str | None:
        docker = await self._docker()
        try:
            await docker.networks.get(name)
        except DockerError as exc:
            if exc.status != 404:
                raise self._engine_error(exc) from None
            try:
                await docker.networks.create({"Name": name, "Driver": "bridge", "CheckDuplicate": True,
                                              "Labels": dict(labels)})
            except DockerError as exc:
                if exc.status != 409:  # made meanwhile by someone else: fine
                    raise self._engine_error(exc) from None
        network = await self._call(docker.networks.get(name))
        configs = ((await self._call(network.show())).get("IPAM") or {}).get("Config") or []
        return next((c["Subnet"] for c in configs if c.get("Subnet")), None)

    async def ensure_volume(self, name: str, labels: Mapping[str, str]) -> None:
        docker = await self._docker()
        try:
            await docker.volumes.get(name)
        except DockerError as exc:
            if exc.status != 404:
                raise self._engine_error(exc) from None
            await self._call(docker.volumes.create({"Name": name, "Labels": dict(labels)}))

    # -- containers ------------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        docker = await self._docker()
        config = self._config(spec)
        try:
            container = await docker.containers.create(config, name=spec.name)
        except DockerError as exc:
            if exc.status == 404:
                raise errors.ImageMissing(spec.image) from None
            raise errors.ContainerFailed(spec.name, f"cannot be created: {exc.message}") from None
        if spec.files:
            await self._call(container.put_archive("/", _archive(spec)))
        return _info(await self._call(container.show()))

    def _config(self, spec: ContainerSpec) -> dict[str, Any]:
        binds, group_add = [], []
        for mount in spec.mounts:
            if not mount.volume and not os.path.exists(mount.source):
                os.makedirs(mount.source, exist_ok=True)  # like `docker run -v`, but as a folder we own
            binds.append(f"{mount.source}:{mount.target}{':ro' if mount.read_only else ''}")
        socket = self._socket()
        if spec.docker_socket and socket:
            binds.append(f"{socket}:/var/run/docker.sock")
            group_add.append(str(os.stat(socket).st_gid))
        user = spec.user
        if spec.run_as_owner_of:
            owner = os.stat(spec.run_as_owner_of)
            user = f"{owner.st_uid}:{owner.st_gid}"
        host: dict[str, Any] = {
            "Binds": binds,
            "RestartPolicy": {"Name": spec.restart},
            "PortBindings": {f"{p.container_port}/tcp": [{"HostIp": p.host_ip, "HostPort": str(p.host_port)}]
                             for p in spec.ports},
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        }
        if group_add:
            host["GroupAdd"] = group_add
        if spec.network:
            host["NetworkMode"] = spec.network
        config: dict[str, Any] = {
            "Image": spec.image,
            "Labels": dict(spec.labels),
            "Env": [f"{k}={v}" for k, v in sorted(spec.env.items())],
            "ExposedPorts": {f"{p.container_port}/tcp": {} for p in spec.ports},
            "HostConfig": host,
        }
        if spec.entrypoint is not None:
            config["Entrypoint"] = list(spec.entrypoint)
        if spec.command:
            config["Cmd"] = list(spec.command)
        if user:
            config["User"] = user
        if spec.health:
            h = spec.health
            config["Healthcheck"] = {"Test": list(h.test), "Interval": int(h.interval_s * _NANO),
                                     "Timeout": int(h.timeout_s * _NANO), "Retries": h.retries,
                                     "StartPeriod": int(h.start_period_s * _NANO)}
        if spec.network:
            config["NetworkingConfig"] = {"EndpointsConfig": {spec.network: {"Aliases": list(spec.aliases)}}}
        return config

    async def _existing(self, name: str) -> Any:
        container = await self._container(name)
        if container is None:
            raise errors.NotFound(f"no container named {name!r}", "run `dc-overview stack apply`")
        return container

    async def start(self, name: str) -> None:
        container = await self._existing(name)
        try:
            await container.start()
        except DockerError as exc:
            raise errors.ContainerFailed(name, f"cannot start: {exc.message}") from None

    async def stop(self, name: str, timeout_s: float = 10.0) -> None:
        container = await self._existing(name)
        await self._call(container.stop(t=int(timeout_s)))

    async def restart(self, name: str, timeout_s: float = 10.0) -> None:
        container = await self._existing(name)
        await self._call(container.restart(t=int(timeout_s)))

    async def rename(self, name: str, new_name: str) -> None:
        container = await self._existing(name)
        await self._call(container.rename(new_name))

    async def remove(self, name: str) -> None:
        container = await self._container(name)
        if container is None:
            return
        try:
            await container.delete(force=True)
        except DockerError as exc:
            if exc.status != 404:
                raise self._engine_error(exc) from None

    async def logs(self, name: str, *, tail: int | None = 100, follow: bool = False) -> AsyncIterator[str]:
        container = await self._existing(name)
        params: dict[str, Any] = {"stdout": True, "stderr": True, "tail": "all" if tail is None else str(tail)}
        try:
            if follow:
                pending = ""
                async for chunk in container.log(follow=True, **params):
                    pending += chunk
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        yield line
                if pending:
                    yield pending
            else:
                for chunk in await container.log(**params):
                    for line in chunk.splitlines():
                        yield line
        except DockerError as exc:
            raise self._engine_error(exc) from None

    async def exec(self, name: str, argv: Sequence[str], *, timeout_s: float = 30.0) -> CommandResult:
        container = await self._existing(name)
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            execution = await container.exec(list(argv), stdout=True, stderr=True)
            async with asyncio.timeout(timeout_s):
                async with execution.start(detach=False) as stream:
                    while (message := await stream.read_out()) is not None:
                        (err if message.stream == 2 else out).append(message.data)
                info = await execution.inspect()
        except TimeoutError:
            raise errors.ContainerFailed(name, f"{argv[0]} took longer than {timeout_s:g} s") from None
        except DockerError as exc:
            raise self._engine_error(exc) from None
        return CommandResult(info.get("ExitCode") or 0, b"".join(out).decode(errors="replace"),
                             b"".join(err).decode(errors="replace"))


def _info(data: dict[str, Any]) -> ContainerInfo:
    state = data.get("State") or {}
    ports = []
    for inner, bindings in ((data.get("NetworkSettings") or {}).get("Ports") or {}).items():
        for b in bindings or []:
            ports.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{inner}")
    return ContainerInfo(
        name=data.get("Name", "").lstrip("/"),
        image=(data.get("Config") or {}).get("Image", ""),
        state=state.get("Status", "unknown"),
        health=(state.get("Health") or {}).get("Status"),
        labels=dict((data.get("Config") or {}).get("Labels") or {}),
        id=data.get("Id"),
        image_id=data.get("Image"),
        ports=tuple(sorted(ports)),
        started_at=state.get("StartedAt"),
        exit_code=state.get("ExitCode"),
    )


def _archive(spec: ContainerSpec) -> bytes:
    """A tar of the container's files (made in memory, never on the host's disk)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folders = sorted({str(Path(f.path).parent).lstrip("/") for f in spec.files})
        for folder in folders:
            entry = tarfile.TarInfo(folder)
            entry.type, entry.mode, entry.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            tar.addfile(entry)
        for item in spec.files:
            data = item.content.encode()
            entry = tarfile.TarInfo(item.path.lstrip("/"))
            entry.size, entry.mode, entry.mtime = len(data), item.mode, int(time.time())
            tar.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()
