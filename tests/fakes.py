"""Hand-written fakes of the ports, for unit tests of the use cases."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

import attrs

from dc_overview import errors
from dc_overview.domain import Server, SshKey
from dc_overview.ports import Deps, IpmiMonitorData, KeyMaterial


class FakeStorage:
    """In memory; a transaction restores the previous state when it fails."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.servers: dict[int, Server] = {}
        self.keys: dict[int, SshKey] = {}
        self.settings: dict[str, object] = {}
        self.files: dict[str, str] = {}
        self.private_keys: dict[str, str] = {}
        self.next_id = 1
        self.transactions = 0
        self.batch_updates: list[int] = []  # how many servers each update_servers call stored

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        saved = copy.deepcopy((self.servers, self.keys, self.settings))
        self.transactions += 1
        try:
            yield
        except BaseException:
            self.servers, self.keys, self.settings = saved
            raise

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def revision(self) -> str:
        """The stored state itself, as text: differs after any change."""
        return repr((sorted(self.servers.items()), sorted(self.keys.items()), sorted(self.settings.items())))

    def list_servers(self) -> list[Server]:
        return sorted(self.servers.values(), key=lambda s: s.name)

    def get_server(self, name: str) -> Server | None:
        return next((s for s in self.servers.values() if s.name == name), None)

    def get_server_by_id(self, server_id: int) -> Server | None:
        return self.servers.get(server_id)

    def find_server_by_address(self, address: str) -> Server | None:
        return next((s for s in self.servers.values() if s.address == address), None)

    def add_server(self, server: Server) -> Server:
        stored = attrs.evolve(server, id=self._id())
        self.servers[stored.id] = stored  # type: ignore[index]
        return stored

    def update_server(self, server: Server) -> Server:
        self.servers[server.id] = server  # type: ignore[index]
        return server

    def update_servers(self, servers: Sequence[Server]) -> None:
        self.batch_updates.append(len(servers))
        for server in servers:
            if server.id in self.servers:
                self.servers[server.id] = server

    def remove_server(self, server_id: int) -> None:
        del self.servers[server_id]

    def list_keys(self) -> list[SshKey]:
        return sorted(self.keys.values(), key=lambda k: k.name)

    def get_key(self, name: str) -> SshKey | None:
        return next((k for k in self.keys.values() if k.name == name), None)

    def get_key_by_id(self, key_id: int) -> SshKey | None:
        return self.keys.get(key_id)

    def add_key(self, key: SshKey) -> SshKey:
        if self.get_key(key.name):
            raise errors.DuplicateKey(key.name)
        stored = attrs.evolve(key, id=self._id())
        self.keys[stored.id] = stored  # type: ignore[index]
        return stored

    def remove_key(self, key_id: int) -> None:
        del self.keys[key_id]

    def write_private_key(self, name: str, text: str) -> Path:
        path = str(self.data_dir / "ssh_keys" / name)
        if path in self.private_keys:
            raise errors.DuplicateKey(name)
        self.private_keys[path] = text
        return Path(path)

    def delete_private_key(self, path: str) -> None:
        self.private_keys.pop(path, None)

    def load_settings(self) -> dict[str, object]:
        return dict(self.settings)

    def save_setting(self, name: str, value: object) -> None:
        self.settings[name] = value

    def write_file_atomically(self, relative: str, content: str, mode: int = 0o644) -> Path:
        self.files[relative] = content
        return self.data_dir / relative

    def backup(self, destination: Path) -> None:
        self.files[f"backup:{destination}"] = "copy"


class FakeKeyTool:
    """Keys are text ``FAKE-PRIVATE <id>``; the public key is derived from it."""

    def __init__(self) -> None:
        self.generated = 0

    def generate(self, comment: str) -> KeyMaterial:
        self.generated += 1
        return self.load(f"FAKE-PRIVATE generated-{self.generated}")

    def load(self, private_key: str, passphrase: str | None = None) -> KeyMaterial:
        if not private_key.startswith("FAKE-PRIVATE "):
            raise errors.InvalidKey("private_key", "not a private key in OpenSSH or PEM format")
        blob = base64.b64encode(hashlib.sha256(private_key.encode()).digest()).decode()
        return KeyMaterial(private_key=private_key, public_key=f"ssh-ed25519 {blob} fake")


class FakeIpmiSource:
    def __init__(self, data: dict[Path, IpmiMonitorData] | None = None, where: list[Path] | None = None) -> None:
        self.data = data or {}
        self.where = where or []

    def candidates(self) -> list[Path]:
        return self.where

    def locate(self) -> Path | None:
        return next((p for p in self.where if p in self.data), None)

    def read(self, path: Path) -> IpmiMonitorData:
        if path not in self.data:
            raise errors.ForeignDatabase(f"{path} is not an ipmi-monitor database")
        return self.data[path]


class FixedClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.moment = now or datetime(2026, 1, 1, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.moment


def fake_deps(data_dir: Path = Path("/data"), **overrides: object) -> Deps:
    ports: dict[str, object] = {
        "storage": FakeStorage(data_dir),
        "keys": FakeKeyTool(),
        "ipmi_monitor": FakeIpmiSource(),
        "clock": FixedClock(),
    }
    ports.update(overrides)
    return Deps(**ports)  # type: ignore[arg-type]


# -- fleet operations: workers reached over a fake SSH --------------------------------------


def fake_elf(arch: str = "x86_64", version: str = "1.8.2", extra: bytes = b"") -> bytes:
    """Bytes that pass for a Linux executable of ``arch`` and report ``version``."""
    machines = {"x86_64": 0x3E, "aarch64": 0xB7}
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(10) + machines[arch].to_bytes(2, "little")
    return header + f" version={version} ".encode() + extra


def fake_host_key(seed: str) -> str:
    return "ssh-ed25519 " + base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


@attrs.define
class FakeWorker:
    """One machine as the fake SSH sees it. The scripts the use cases send are
    read for what they do (probe, install, remove), and the machine's state
    (files, units) changes accordingly."""

    address: str
    host_key: str = ""
    authorized_keys: set[str] | None = None  # private key paths accepted; None: any
    down: bool = False
    drops: int = 0  # connection attempts to drop first, as sshd's MaxStartups does
    connect_delay: float = 0.0
    hang: bool = False  # every command runs into its timeout
    arch: str = "x86_64"
    uid: int = 0
    systemd: bool = True
    python3: str | None = "3.11.2"
    gpu_smi: int | None = None
    gpu_pci: int = 0
    sudo_ok: bool = True
    files: dict[str, bytes] = attrs.Factory(dict)
    units: dict[str, dict[str, str]] = attrs.Factory(dict)  # unit -> {"active": .., "enabled": ..}
    foreign_ports: set[int] = attrs.Factory(set)  # answered by something that is not ours
    http_replies: dict[int, bytes] = attrs.Factory(dict)  # port -> what it sends to GET /metrics, as is
    silent_ports: set[int] = attrs.Factory(set)  # take the connection, never answer
    tcp_forwarding: bool = True  # False: its sshd forwards nothing (AllowTcpForwarding no)
    forwards: list[int] = attrs.Factory(list)  # ports asked through the connection
    runs: list[str] = attrs.Factory(list)
    uploads: list[str] = attrs.Factory(list)
    connects: int = 0

    def __attrs_post_init__(self) -> None:
        self.host_key = self.host_key or fake_host_key(self.address)

    # what the probe script reports
    def answering(self, spec) -> bool:  # type: ignore[no-untyped-def]
        ours = self.units.get(spec.unit, {}).get("active") == "active" and spec.binary in self.files
        return ours or spec.port in self.foreign_ports

    def http_reply(self, spec) -> bytes | None:  # type: ignore[no-untyped-def]
        """What GET /metrics on the spec's port gets; None: nothing listens."""
        if spec.port in self.http_replies:
            return self.http_replies[spec.port]
        if spec.port in self.silent_ports:
            return b""
        if self.answering(spec):
            return b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n# HELP up Up.\n# TYPE up gauge\nup 1\n"
        return None

    def answer_word(self, spec) -> str:  # type: ignore[no-untyped-def]
        """The script's exporter.NAME.answering word (its own HTTP check, which
        decides as worker_probe.http_answer does: tests/integration hold them equal)."""
        from dc_overview.worker_probe import http_answer

        return http_answer(self.http_reply(spec) or b"")

    def answers_output(self, script: str) -> str:
        """The answer to worker_probe.probe_http_script: the ports it names."""
        from dc_overview.exporter_units import SPECS

        asked = re.search(r"^probe_exporters (.*)$", script, re.MULTILINE)
        names = {word.split(":")[0] for word in asked.group(1).split()} if asked else set()
        return "".join(f"exporter.{spec.name}.answering={self.answer_word(spec)}\n"
                       for spec in SPECS if spec.name in names)

    def probe_output(self, script: str, uid: int | None = None) -> str:
        from dc_overview.exporter_units import SPECS

        uid = self.uid if uid is None else uid
        lines = [f"user={'root' if uid == 0 else 'worker'}", f"uid={uid}",
                 "os=Debian GNU/Linux 12 (bookworm)", "kernel=6.1.0-fake", f"arch={self.arch}",
                 f"hostname={self.address}", "cpus=32", "cpu_model=Fake CPU", "mem_kb=263921664",
                 f"systemd={'yes' if self.systemd else 'no'}", f"gpu_pci={self.gpu_pci}"]
        if self.python3:
            lines.append(f"python3={self.python3}")
        if self.gpu_smi is not None:
            lines.append(f"gpu_smi={self.gpu_smi}")
        for spec in SPECS:
            key = f"exporter.{spec.name}"
            lines.append(f"{key}.unit={'present' if spec.unit_path in self.files else 'absent'}")
            if spec.binary in self.files:
                found = re.search(rb"version=(\S+)", self.files[spec.binary])
                lines.append(f"{key}.version={spec.name}, version {found.group(1).decode() if found else '?'}")
            unit = self.units.get(spec.unit, {})
            if self.systemd:
                lines.append(f"{key}.active={unit.get('active', 'inactive')}")
                lines.append(f"{key}.enabled={unit.get('enabled', 'disabled')}")
            if re.search(r"^probe_exporters ", script, re.MULTILINE):  # not with probe_script(http=False)
                lines.append(f"{key}.answering={self.answer_word(spec)}")
        for path in re.findall(r'say "sha256\.([^"]+)"', script):
            content = self.files.get(path)
            lines.append(f"sha256.{path}=" + (hashlib.sha256(content).hexdigest() if content is not None else "absent"))
        return "\n".join(lines) + "\n"

    def apply(self, script: str) -> tuple[int, str]:
        """Carry out an install or remove script; (exit status, stderr)."""
        for src, dst in re.findall(r"install -D -m \d+ -o root -g root (\S+) \S+ && mv -f \S+ (\S+)", script):
            self.files[dst] = self.files.pop(src)
        for removed in re.findall(r"^rm -f (.+)$", script, re.M):
            for path in removed.split():
                self.files.pop(path, None)
        for unit in re.findall(r"systemctl enable --quiet (\S+)", script):
            self.units.setdefault(unit, {})["enabled"] = "enabled"
        for _, unit in re.findall(r"systemctl (start|restart) (\S+)", script):
            self.units.setdefault(unit, {})["active"] = "active"
        for unit in re.findall(r"systemctl disable --now --quiet (\S+)", script):
            self.units[unit] = {"active": "inactive", "enabled": "disabled"}
        for stage in re.findall(r"^rm -rf (\S+)$", script, re.M):
            for path in [p for p in self.files if p.startswith(stage + "/")]:
                del self.files[path]
        return 0, ""


class FakeWorkerConnection:
    def __init__(self, worker: FakeWorker) -> None:
        self.worker = worker
        self.host_key = worker.host_key
        self._stages = 0

    async def run(self, command: str, *, timeout: float, input: str | None = None):  # type: ignore[no-untyped-def]
        from dc_overview.ports import CommandResult

        worker = self.worker
        worker.runs.append(command)
        if worker.hang:
            await asyncio.sleep(timeout)
            raise errors.CommandTimeout(worker.address, f"`{command[:40]}` did not finish within {timeout:g}s")
        if command.startswith("sudo -n ") and not worker.sudo_ok:
            return CommandResult(1, "", "sudo: a password is required\n")
        script = input or ""
        if "exec sudo -n sh -s" in command:  # worker_probe.ROOT_SHELL
            login = f"login_uid={worker.uid}\n"
            if worker.uid != 0 and not worker.sudo_ok:
                return CommandResult(1, login, "sudo: a password is required\n")
            return CommandResult(0, login + worker.probe_output(script, uid=0), "")
        if "say kernel" in script:
            return CommandResult(0, worker.probe_output(script), "")
        if re.search(r"^probe_exporters ", script, re.MULTILINE):  # worker_probe.probe_http_script
            return CommandResult(0, worker.answers_output(script), "")
        if command.startswith("umask 077; mktemp -d"):
            self._stages += 1
            return CommandResult(0, f"/tmp/dc-overview.fake{self._stages}\n", "")
        if "systemctl" in script or "install -D" in script:
            status, stderr = worker.apply(script)
            return CommandResult(status, "", stderr)
        return CommandResult(0, "", "")

    async def put(self, files) -> None:  # type: ignore[no-untyped-def]
        for upload in files:
            self.worker.uploads.append(upload.path)
            self.worker.files[upload.path] = upload.content

    async def http_get_local(self, port: int, path: str, *, timeout: float, until: bytes = b"",
                             limit: int = 65536):  # type: ignore[no-untyped-def]
        from dc_overview.exporter_units import SPECS
        from dc_overview.ports import LoopbackReply

        worker = self.worker
        worker.forwards.append(port)
        if not worker.tcp_forwarding:
            return LoopbackReply(forwarded=False)
        spec = next((s for s in SPECS if s.port == port), None)
        reply = worker.http_reply(spec) if spec is not None else worker.http_replies.get(port)
        if reply is None:
            return LoopbackReply(connected=False)
        if worker.hang:
            await asyncio.sleep(timeout)
        return LoopbackReply(connected=True, data=reply[:limit])  # a silent port: b"", as after the timeout


class FakeSsh:
    """Workers by address. Counts connections at once (``max_open``)."""

    def __init__(self, workers: list[FakeWorker] | None = None) -> None:
        self.workers = {w.address: w for w in workers or []}
        self.open = 0
        self.max_open = 0
        self.targets: list = []

    def add(self, worker: FakeWorker) -> FakeWorker:
        self.workers[worker.address] = worker
        return worker

    @contextlib.asynccontextmanager
    async def connect(self, target, *, timeout: float):  # type: ignore[no-untyped-def]
        from dc_overview.domain import fingerprint

        self.targets.append(target)
        worker = self.workers.get(target.host)
        if worker is None or worker.down:
            raise errors.HostUnreachable(target.name, f"connection refused by {target.host}:{target.port}")
        worker.connects += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            if worker.connect_delay:
                await asyncio.sleep(worker.connect_delay)
            if worker.drops > 0:
                worker.drops -= 1
                raise errors.ConnectionDropped(target.name, "closed the connection during login")
            if target.pinned_host_key and target.pinned_host_key.split()[:2] != worker.host_key.split()[:2]:
                raise errors.HostKeyChanged(target.name, fingerprint(target.pinned_host_key),
                                            fingerprint(worker.host_key))
            if worker.authorized_keys is not None and target.private_key_path not in worker.authorized_keys:
                raise errors.SshAuthFailed(target.name, f"refused the login as {target.user!r}")
            yield FakeWorkerConnection(worker)
        finally:
            self.open -= 1


class FakeLocalHost:
    def __init__(self, worker: FakeWorker) -> None:
        self.worker = worker

    @contextlib.asynccontextmanager
    async def open(self):  # type: ignore[no-untyped-def]
        yield FakeWorkerConnection(self.worker)


class FakeDownloader:
    """Serves fixed bytes per URL; counts fetches."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files = files or {}
        self.fetched: list[str] = []

    async def fetch(self, url: str, destination: Path, *, timeout: float) -> None:
        self.fetched.append(url)
        if url not in self.files:
            raise errors.ArtifactProblem(f"downloading {url} failed: HTTP 404")
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(self.files[url])


# -- the monitoring stack: a container engine, the proxy's routes, Prometheus, secrets --------


class FakeSecretStore:
    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def put(self, name: str, value: str) -> None:
        self.values[name] = value

    def delete(self, name: str) -> None:
        self.values.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self.values)


class FakeRuntime:
    """An engine in memory. ``images`` are on the host (name -> id), ``registry``
    is what a pull can fetch; a container started from an image listed in
    ``failing_images`` turns unhealthy. Every change is recorded in ``calls``."""

    def __init__(self, images: dict[str, str] | None = None, registry: dict[str, str] | None = None) -> None:
        from dc_overview.ports import CommandResult, ContainerInfo, ContainerSpec

        self._info, self._result, self._spec = ContainerInfo, CommandResult, ContainerSpec
        self.images = dict(images or {})
        self.registry = dict(registry or {})
        self.failing_images: set[str] = set()
        self.specs: dict[str, ContainerSpec] = {}
        self.infos: dict[str, ContainerInfo] = {}
        self.networks: dict[str, dict] = {}
        self.volumes: dict[str, dict] = {}
        self.lines: dict[str, list[str]] = {}
        self.exec_results: dict[tuple[str, ...], CommandResult] = {}
        self.calls: list[tuple[str, ...]] = []
        self.down = False
        self._ids = 0

    def _check(self) -> None:
        if self.down:
            raise errors.EngineUnavailable("no Docker engine here", "start it")

    async def available(self) -> bool:
        return not self.down

    async def version(self) -> str:
        self._check()
        return "Fake 1.0"

    async def containers(self, label):  # type: ignore[no-untyped-def]
        self._check()
        wanted = [label] if isinstance(label, str) else list(label)
        pairs = [tuple(w.split("=", 1)) for w in wanted]
        return sorted((i for i in self.infos.values() if all(i.labels.get(k) == v for k, v in pairs)),
                      key=lambda i: i.name)

    async def inspect(self, name: str):  # type: ignore[no-untyped-def]
        self._check()
        return self.infos.get(name)

    async def image_id(self, image: str) -> str | None:
        self._check()
        return self.images.get(image)

    async def pull(self, image: str, progress=None) -> str:  # type: ignore[no-untyped-def]
        self._check()
        self.calls.append(("pull", image))
        if image not in self.registry:
            raise errors.ImagePullFailed(image, "manifest unknown")
        if progress:
            progress("Pull complete")
        self.images[image] = self.registry[image]
        return self.images[image]

    async def ensure_network(self, name: str, labels) -> str | None:  # type: ignore[no-untyped-def]
        self.networks.setdefault(name, dict(labels))
        return "172.30.0.0/16"

    async def ensure_volume(self, name: str, labels) -> None:  # type: ignore[no-untyped-def]
        self.volumes.setdefault(name, dict(labels))

    async def create(self, spec):  # type: ignore[no-untyped-def]
        self._check()
        if spec.image not in self.images:
            raise errors.ImageMissing(spec.image)
        if spec.name in self.infos:
            raise errors.Conflict(f"container {spec.name} exists")
        self._ids += 1
        self.calls.append(("create", spec.name))
        self.specs[spec.name] = spec
        self.infos[spec.name] = self._info(spec.name, spec.image, "created", None, dict(spec.labels),
                                           id=f"c{self._ids}", image_id=self.images[spec.image])
        return self.infos[spec.name]

    def _set(self, container: str, **changes) -> None:  # type: ignore[no-untyped-def]
        if container not in self.infos:
            raise errors.NotFound(f"no container named {container!r}")
        self.infos[container] = attrs.evolve(self.infos[container], **changes)

    async def start(self, name: str) -> None:
        self._set(name, state="running")
        spec = self.specs[name]
        if spec.health is not None:
            self._set(name, health="unhealthy" if spec.image in self.failing_images else "healthy")
        self.calls.append(("start", name))

    async def stop(self, name: str, timeout_s: float = 10.0) -> None:
        self._set(name, state="exited", health=None, exit_code=0)
        self.calls.append(("stop", name))

    async def restart(self, name: str, timeout_s: float = 10.0) -> None:
        await self.stop(name)
        await self.start(name)

    async def rename(self, name: str, new_name: str) -> None:
        self._set(name, name=new_name)
        self.infos[new_name] = self.infos.pop(name)
        self.specs[new_name] = self.specs.pop(name)
        self.calls.append(("rename", name, new_name))

    async def remove(self, name: str) -> None:
        if self.infos.pop(name, None) is not None:
            self.specs.pop(name, None)
            self.calls.append(("remove", name))

    async def logs(self, name: str, *, tail=100, follow=False):  # type: ignore[no-untyped-def]
        if name not in self.infos:
            raise errors.NotFound(f"no container named {name!r}")
        lines = self.lines.get(name, [f"{name} started"])
        for line in lines[-tail:] if tail else lines:
            yield line

    async def exec(self, name: str, argv, *, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
        self.calls.append(("exec", name, *argv))
        return self.exec_results.get(tuple(argv[:2]), self._result(0, "", ""))

    def changes(self) -> list[tuple[str, ...]]:
        """What changed containers (not reads), then forget them."""
        done, self.calls = self.calls, []
        return done


class FakeProxyRegistry:
    def __init__(self) -> None:
        self.registered: dict[str, object] = {}

    async def register(self, route) -> None:  # type: ignore[no-untyped-def]
        self.registered[route.name] = route

    async def unregister(self, name: str) -> None:
        if self.registered.pop(name, None) is None:
            raise errors.NotFound(f"no route named {name!r}")

    async def routes(self):  # type: ignore[no-untyped-def]
        return list(self.registered.values())


class FakePrometheusControl:
    def __init__(self) -> None:
        self.reloads: list[str] = []
        self.refuse: str | None = None

    async def reload(self, base_url: str) -> None:
        if self.refuse:
            raise errors.PrometheusReloadFailed(self.refuse)
        self.reloads.append(base_url)


class FakeAccountStore:
    """Users, tokens and sessions in memory; a failed transaction restores them.
    Removing a user removes their tokens and sessions, as the database does."""

    def __init__(self) -> None:
        self.users: dict[int, "User"] = {}
        self.tokens: dict[int, "ApiToken"] = {}
        self.sessions: dict[int, "LoginSession"] = {}
        self.next_id = 1

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        saved = copy.deepcopy((self.users, self.tokens, self.sessions))
        try:
            yield
        except BaseException:
            self.users, self.tokens, self.sessions = saved
            raise

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def list_users(self):  # type: ignore[no-untyped-def]
        return sorted(self.users.values(), key=lambda u: u.name.lower())

    def get_user(self, name: str):  # type: ignore[no-untyped-def]
        return next((u for u in self.users.values() if u.name.lower() == name.lower()), None)

    def get_user_by_id(self, user_id: int):  # type: ignore[no-untyped-def]
        return self.users.get(user_id)

    def add_user(self, user):  # type: ignore[no-untyped-def]
        if self.get_user(user.name):
            raise errors.DuplicateUser(user.name)
        stored = attrs.evolve(user, id=self._id())
        self.users[stored.id] = stored
        return stored

    def update_user(self, user):  # type: ignore[no-untyped-def]
        self.users[user.id] = user
        return user

    def remove_user(self, user_id: int) -> None:
        self.users.pop(user_id, None)
        self.tokens = {k: t for k, t in self.tokens.items() if t.user_id != user_id}
        self.sessions = {k: s for k, s in self.sessions.items() if s.user_id != user_id}

    def _named(self, token):  # type: ignore[no-untyped-def]
        return attrs.evolve(token, user_name=self.users[token.user_id].name)

    def add_token(self, token):  # type: ignore[no-untyped-def]
        stored = attrs.evolve(token, id=self._id())
        self.tokens[stored.id] = stored
        return self._named(stored)

    def list_tokens(self, user_id: int | None = None):  # type: ignore[no-untyped-def]
        return [self._named(t) for t in self.tokens.values() if user_id is None or t.user_id == user_id]

    def get_token(self, token_id: int):  # type: ignore[no-untyped-def]
        token = self.tokens.get(token_id)
        return self._named(token) if token else None

    def find_token(self, token_hash: str):  # type: ignore[no-untyped-def]
        return next((self._named(t) for t in self.tokens.values() if t.token_hash == token_hash), None)

    def touch_token(self, token_id: int, when: datetime) -> None:
        self.tokens[token_id] = attrs.evolve(self.tokens[token_id], last_used_at=when)

    def remove_token(self, token_id: int) -> None:
        self.tokens.pop(token_id, None)

    def add_session(self, session):  # type: ignore[no-untyped-def]
        stored = attrs.evolve(session, id=self._id())
        self.sessions[stored.id] = stored
        return stored

    def find_session(self, token_hash: str):  # type: ignore[no-untyped-def]
        return next((s for s in self.sessions.values() if s.token_hash == token_hash), None)

    def touch_session(self, session_id: int, when: datetime) -> None:
        self.sessions[session_id] = attrs.evolve(self.sessions[session_id], last_seen_at=when)

    def remove_session(self, token_hash: str) -> None:
        self.sessions = {k: s for k, s in self.sessions.items() if s.token_hash != token_hash}

    def remove_user_sessions(self, user_id: int) -> None:
        self.sessions = {k: s for k, s in self.sessions.items() if s.user_id != user_id}

    def prune_sessions(self, now: datetime, idle_since: datetime) -> int:
        keep = {k: s for k, s in self.sessions.items() if s.expires_at > now and s.last_seen_at > idle_since}
        pruned = len(self.sessions) - len(keep)
        self.sessions = keep
        return pruned


class FakeMetrics:
    """Prometheus' instant queries answered from ``answers`` (promql -> samples);
    with ``down`` set every query fails as an unreachable Prometheus does."""

    def __init__(self, answers: dict | None = None, down: str | None = None) -> None:
        self.answers = dict(answers or {})
        self.down = down
        self.asked: list[tuple[str, str]] = []

    async def query(self, base_url: str, promql: str, *, timeout: float):  # type: ignore[no-untyped-def]
        self.asked.append((base_url, promql))
        if self.down:
            raise errors.MetricsUnavailable(self.down)
        return list(self.answers.get(promql, []))


# -- quickstart: this machine, and a local runner that records commands -----------------------


class FakeHostProbe:
    def __init__(self, hostname: str = "master-01", addresses: list[str] | None = None, gpus: int | None = 0,
                 gpu_source: str = "pci", docker_installed: bool = True) -> None:
        from dc_overview.ports import GpuInfo

        self.name = hostname
        self.found = ["192.0.2.10"] if addresses is None else addresses
        self.gpu_info = GpuInfo(gpus, gpu_source if gpus is not None else "none")
        self.docker = docker_installed

    def hostname(self) -> str:
        return self.name

    def addresses(self) -> list[str]:
        return list(self.found)

    def gpus(self):  # type: ignore[no-untyped-def]
        return self.gpu_info

    def docker_installed(self) -> bool:
        return self.docker


class RecordingLocalHost:
    """This machine, where every command is recorded and answered from
    ``answers`` (a prefix of the command -> (exit status, stdout, stderr));
    ``on_run`` is called with each command (e.g. to make Docker appear)."""

    def __init__(self, answers: dict[str, tuple[int, str, str]] | None = None, on_run=None) -> None:  # type: ignore[no-untyped-def]
        self.answers = answers or {}
        self.commands: list[str] = []
        self.on_run = on_run

    @contextlib.asynccontextmanager
    async def open(self):  # type: ignore[no-untyped-def]
        from dc_overview.ports import CommandResult

        host = self

        class Connection:
            host_key = ""

            async def run(self, command: str, *, timeout: float, input: str | None = None):  # type: ignore[no-untyped-def]
                host.commands.append(command)
                if host.on_run:
                    host.on_run(command)
                for prefix, (status, out, err) in host.answers.items():
                    if command.startswith(prefix):
                        return CommandResult(status, out, err)
                return CommandResult(0, "", "")

            async def put(self, files) -> None:  # type: ignore[no-untyped-def]
                raise AssertionError("no files are expected here")

        yield Connection()


class DiskFakeStorage(FakeStorage):
    """FakeStorage whose files are also written under ``data_dir`` (for use
    cases that read back what they wrote, such as quickstart's kept answers)."""

    def write_file_atomically(self, relative: str, content: str, mode: int = 0o644) -> Path:
        from dc_overview.fsutil import atomic_write

        super().write_file_atomically(relative, content, mode)
        return atomic_write(self.data_dir / relative, content, mode)
