"""Ports: what the use cases need from the outside world, as Protocols.

Adapters in ``dc_overview.adapters`` implement them against real systems;
tests implement them with small hand-written fakes (``tests/fakes.py``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import AsyncContextManager, ContextManager, Hashable, Mapping, Protocol, Sequence

import attrs

from .domain import Server, SshKey
from .identity import ApiToken, LoginSession, User
from .ports_stack import (
    ContainerFile,
    ContainerInfo,
    ContainerRuntime,
    ContainerSpec,
    HealthCheck,
    Mount,
    PortBinding,
    PrometheusControl,
    ProxyRegistry,
    ServiceRoute,
)

# -- storage ------------------------------------------------------------------------


class Storage(Protocol):
    """The inventory and settings. Calls inside ``transaction()`` commit or
    roll back together; every use case that writes runs in one."""

    data_dir: Path

    def transaction(self) -> ContextManager[None]: ...

    def revision(self) -> Hashable:
        """A cheap value that differs after any stored change (servers, keys,
        settings, accounts), whether this process or another made it; equal
        values mean nothing changed. For caches of what is built from it."""
        ...

    # servers
    def list_servers(self) -> list[Server]: ...
    def get_server(self, name: str) -> Server | None: ...
    def get_server_by_id(self, server_id: int) -> Server | None: ...
    def find_server_by_address(self, address: str) -> Server | None: ...
    def add_server(self, server: Server) -> Server: ...
    def update_server(self, server: Server) -> Server: ...
    def update_servers(self, servers: Sequence[Server]) -> None:
        """Store many servers' changed rows in one transaction (no re-read;
        a server removed meanwhile is skipped)."""
        ...

    def remove_server(self, server_id: int) -> None: ...

    # SSH keys (the private key text itself lives in a 0600 file)
    def list_keys(self) -> list[SshKey]: ...
    def get_key(self, name: str) -> SshKey | None: ...
    def get_key_by_id(self, key_id: int) -> SshKey | None: ...
    def add_key(self, key: SshKey) -> SshKey: ...
    def remove_key(self, key_id: int) -> None: ...
    def write_private_key(self, name: str, text: str) -> Path: ...
    def delete_private_key(self, path: str) -> None: ...

    # settings: plain values by name
    def load_settings(self) -> Mapping[str, object]: ...
    def save_setting(self, name: str, value: object) -> None: ...

    def write_file_atomically(self, relative: str, content: str, mode: int = 0o644) -> Path: ...
    def backup(self, destination: Path) -> None: ...


# -- SSH keys --------------------------------------------------------------------------


@attrs.frozen
class KeyMaterial:
    private_key: str = attrs.field(repr=False)  # never in logs or reprs
    public_key: str


class KeyTool(Protocol):
    def generate(self, comment: str) -> KeyMaterial:
        """A new ed25519 key pair, private key in OpenSSH format."""
        ...

    def load(self, private_key: str, passphrase: str | None = None) -> KeyMaterial:
        """Parse a private key and derive its public key; raises InvalidKey."""
        ...


# -- ipmi-monitor ----------------------------------------------------------------------


@attrs.frozen
class IpmiServer:
    name: str
    bmc_ip: str
    server_ip: str | None
    ssh_user: str | None
    ssh_port: int | None
    ssh_key_id: int | None
    inline_key: str | None = attrs.field(default=None, repr=False)
    status: str | None = None


@attrs.frozen
class IpmiKey:
    id: int
    name: str
    private_key: str = attrs.field(repr=False)


@attrs.frozen
class IpmiMonitorData:
    path: str
    servers: tuple[IpmiServer, ...]
    keys: tuple[IpmiKey, ...]


class IpmiMonitorSource(Protocol):
    def candidates(self) -> list[Path]:
        """Where an ipmi-monitor database is looked for, in order."""
        ...

    def locate(self) -> Path | None:
        """The first of ``candidates()`` that exists on this host."""
        ...

    def read(self, path: Path) -> IpmiMonitorData:
        """Read servers and keys; raises ForeignDatabase for anything else."""
        ...


# -- SSH to workers (the real adapter comes with fleet operations) -------------------


@attrs.frozen
class SshTarget:
    name: str
    host: str
    port: int
    user: str
    private_key_path: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    pinned_host_key: str | None = None


@attrs.frozen
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


@attrs.frozen
class FileUpload:
    path: str
    content: bytes = attrs.field(repr=False)
    mode: int = 0o644


@attrs.frozen
class LoopbackReply:
    """What a port on the worker's own loopback sent back (``http_get_local``)."""

    forwarded: bool = True  # False: the server forwards no connections (sshd's AllowTcpForwarding no)
    connected: bool = False  # the port took the connection (False: refused, or no answer in time)
    data: bytes = b""  # what it sent, until it closed, the end marker, the limit or the timeout


class SshConnection(Protocol):
    host_key: str  # the key the host presented, as an OpenSSH public key line

    async def run(self, command: str, *, timeout: float, input: str | None = None) -> CommandResult:
        """Run ``command`` (with ``input`` on its stdin); raises CommandTimeout
        after ``timeout`` seconds. A non-zero exit is a result, not an error."""
        ...

    async def put(self, files: Sequence[FileUpload]) -> None:
        """Write each file (parent folders made, mode set) by writing a
        temporary file beside it and renaming it over the target."""
        ...

    async def http_get_local(self, port: int, path: str, *, timeout: float, until: bytes = b"",
                             limit: int = 65536) -> LoopbackReply:
        """``GET path HTTP/1.0`` to 127.0.0.1:``port`` as the worker sees it,
        through the connection itself (SSH direct-tcpip: the worker's sshd
        connects, no process is started there). Reads until the port closes,
        ``until`` has been read, ``limit`` bytes or ``timeout`` seconds in all.
        Refused connections and timeouts are replies, not errors; a lost
        connection raises SshError."""
        ...



class Ssh(Protocol):
    def connect(self, target: SshTarget, *, timeout: float) -> AsyncContextManager[SshConnection]:
        """Connect and authenticate. With ``pinned_host_key`` set, any other
        host key is refused (HostKeyChanged); without, the key is accepted and
        reported in ``SshConnection.host_key`` for the caller to pin.

        Raises the SshError family: HostUnreachable, ConnectionDropped
        (retryable: sshd's MaxStartups), SshAuthFailed, HostKeyChanged."""
        ...


class LocalHost(Protocol):
    """This machine, reached through the same connection protocol as a worker
    over SSH (for ``install-exporters --local`` on a worker itself)."""

    def open(self) -> AsyncContextManager[SshConnection]: ...


class Downloader(Protocol):
    async def fetch(self, url: str, destination: Path, *, timeout: float) -> None:
        """Download ``url`` into the file ``destination``; raises ArtifactProblem."""
        ...


# -- time --------------------------------------------------------------------------------


class Clock(Protocol):
    def now(self) -> datetime: ...


__all__ = [
    "AccountStore",
    "MetricsSource",
    "PasswordHasher",
    "Sample",
    "SecretStore",
    "Clock",
    "CommandResult",
    "ContainerFile",
    "ContainerInfo",
    "ContainerRuntime",
    "ContainerSpec",
    "HealthCheck",
    "Mount",
    "PortBinding",
    "PrometheusControl",
    "Deps",
    "FileUpload",
    "GpuInfo",
    "HostProbe",
    "IpmiKey",
    "IpmiMonitorData",
    "IpmiMonitorSource",
    "IpmiServer",
    "KeyMaterial",
    "KeyTool",
    "LocalHost",
    "LoopbackReply",
    "Downloader",
    "ProxyRegistry",
    "ServiceRoute",
    "Ssh",
    "SshConnection",
    "SshTarget",
    "Storage",
]


@attrs.frozen
class Deps:
    """Everything a use case may reach, built once by ``bootstrap``."""

    storage: Storage
    keys: KeyTool
    ipmi_monitor: IpmiMonitorSource
    clock: Clock
    ssh: Ssh | None = None
    runtime: ContainerRuntime | None = None
    proxy: ProxyRegistry | None = None
    local: LocalHost | None = None
    downloader: Downloader | None = None
    accounts: AccountStore | None = None
    secrets: SecretStore | None = None
    metrics: MetricsSource | None = None
    prometheus: PrometheusControl | None = None
    passwords: PasswordHasher | None = None  # None: scrypt at the default cost
    host: HostProbe | None = None  # this machine's facts, for quickstart


# -- accounts, secrets and metrics (the web app and the API) -------------------------


class AccountStore(Protocol):
    """Users, their API tokens and login sessions. Removing a user removes
    their tokens and sessions. ``transaction()`` commits or rolls back together."""

    def transaction(self) -> ContextManager[None]: ...

    def list_users(self) -> list[User]: ...
    def get_user(self, name: str) -> User | None: ...
    def get_user_by_id(self, user_id: int) -> User | None: ...
    def add_user(self, user: User) -> User: ...
    def update_user(self, user: User) -> User: ...
    def remove_user(self, user_id: int) -> None: ...

    def add_token(self, token: ApiToken) -> ApiToken: ...
    def list_tokens(self, user_id: int | None = None) -> list[ApiToken]: ...
    def get_token(self, token_id: int) -> ApiToken | None: ...
    def find_token(self, token_hash: str) -> ApiToken | None: ...
    def touch_token(self, token_id: int, when: datetime) -> None: ...
    def remove_token(self, token_id: int) -> None: ...

    def add_session(self, session: LoginSession) -> LoginSession: ...
    def find_session(self, token_hash: str) -> LoginSession | None: ...
    def touch_session(self, session_id: int, when: datetime) -> None: ...
    def remove_session(self, token_hash: str) -> None: ...
    def remove_user_sessions(self, user_id: int) -> None: ...
    def prune_sessions(self, now: datetime, idle_since: datetime) -> int:
        """Remove sessions expired by ``now`` or unused since ``idle_since``."""
        ...


class SecretStore(Protocol):
    """Write-only secrets (API keys of providers, tokens, the session key),
    each a 0600 file in the data dir. Nothing reads them back to a user."""

    def get(self, name: str) -> str | None: ...
    def put(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> None: ...
    def names(self) -> list[str]: ...


@attrs.frozen
class Sample:
    """One series of an instant query: its labels and value."""

    labels: Mapping[str, str]
    value: float


class PasswordHasher(Protocol):
    """A slow, salted KDF for passwords (``dc_overview.passwords.ScryptHasher``).
    ``dummy`` is a hash to check when a user does not exist, at the same cost."""

    dummy: str

    def hash(self, password: str) -> str: ...
    def verify(self, password: str, encoded: str) -> bool: ...
    def needs_rehash(self, encoded: str) -> bool: ...


class MetricsSource(Protocol):
    async def query(self, base_url: str, promql: str, *, timeout: float) -> list[Sample]:
        """Run an instant query against Prometheus' HTTP API at ``base_url``
        (``.../api/v1/query``); raises MetricsUnavailable when it cannot."""
        ...


# -- this machine, as quickstart sees it ----------------------------------------------------


@attrs.frozen
class GpuInfo:
    """How many NVIDIA GPUs this machine has, and how that was learned."""

    count: int | None  # None: could not be told
    source: str = "none"  # nvidia-smi, pci, none
    note: str | None = None


class HostProbe(Protocol):
    """Facts about the machine quickstart runs on. Read-only; each call is cheap
    (at most one short command) and never raises for a missing tool."""

    def hostname(self) -> str: ...

    def addresses(self) -> list[str]:
        """Its non-loopback IP addresses, IPv4 first."""
        ...

    def gpus(self) -> GpuInfo:
        """NVIDIA GPUs by ``nvidia-smi -L``, else NVIDIA display devices on the PCI bus."""
        ...

    def docker_installed(self) -> bool:
        """Whether a Docker engine binary (dockerd or docker) is on this machine."""
        ...
