"""The Python API: one object per fleet, an async one for asyncio code and a
sync twin for scripts. Every front end goes through these same methods.

    import dc_overview
    with dc_overview.open("/etc/dc-overview") as fleet:
        fleet.add_server("gpu-01", "10.0.0.11")
        print(fleet.targets())
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any, Hashable, Iterable, Mapping

from . import errors, inventory, keys, lookups, settings, targets
from .api_stack import StackAndQuickstart
from .bootstrap import bootstrap
from .domain import Server, Settings, SshKey
from .fanout import Progress
from .inventory import ImportReport
from .lazy import lazy_import
from .ports import Deps

if TYPE_CHECKING:
    from .exporter_install import InstallOptions, InstallResult
    from .fleet_check import CheckResult
    from .identity import ApiToken, User
    from .overview import Overview
    from .services import ServiceState
    from .worker_session import TrustReport

# loaded at first use, so that a command imports only the use cases it runs
accounts = lazy_import(f"{__package__}.accounts")
credentials = lazy_import(f"{__package__}.credentials")
exporter_install = lazy_import(f"{__package__}.exporter_install")
fleet_check = lazy_import(f"{__package__}.fleet_check")
fleet_config = lazy_import(f"{__package__}.fleet_config")
ipmi_import = lazy_import(f"{__package__}.ipmi_import")
overview = lazy_import(f"{__package__}.overview")
services = lazy_import(f"{__package__}.services")
worker_session = lazy_import(f"{__package__}.worker_session")


class AsyncFleet(StackAndQuickstart):
    """The fleet's use cases as coroutine methods."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @property
    def data_dir(self) -> Path:
        return self.deps.storage.data_dir

    # servers
    async def servers(self) -> list[Server]:
        return await inventory.list_servers(self.deps)

    async def server(self, name: str) -> Server:
        return await inventory.show_server(self.deps, name)

    async def add_server(
        self,
        name: str,
        address: str,
        *,
        ssh_user: str | None = None,
        ssh_port: int = 22,
        ssh_key: str | None = None,
        bmc_ip: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Server:
        return await inventory.add_server(
            self.deps, name, address, ssh_user=ssh_user, ssh_port=ssh_port,
            ssh_key=ssh_key, bmc_ip=bmc_ip, labels=labels,
        )

    async def update_server(self, name: str, /, **changes: Any) -> Server:
        return await inventory.update_server(self.deps, name, **changes)

    async def remove_server(self, name: str) -> Server:
        return await inventory.remove_server(self.deps, name)

    async def import_servers(self, text: str, *, source: str = "input") -> ImportReport:
        """Servers from CSV text or pasted lines (``ip``, ``name,ip``, ``name,ip,user,port``)."""
        return await inventory.import_servers(self.deps, text, source=source)

    async def import_servers_file(self, path: str | Path) -> ImportReport:
        path = Path(path)
        return await self.import_servers(_read_text(path), source=path.name)

    # SSH keys
    async def keys(self) -> list[SshKey]:
        return await keys.list_keys(self.deps)

    async def key(self, name: str) -> SshKey:
        return await keys.show_key(self.deps, name)

    async def add_key(self, name: str, private_key_path: str | Path, passphrase: str | None = None) -> SshKey:
        return await keys.add_key(self.deps, name, _read_text(Path(private_key_path)), passphrase)

    async def generate_key(self, name: str, comment: str | None = None) -> SshKey:
        return await keys.generate_key(self.deps, name, comment)

    async def remove_key(self, name: str) -> SshKey:
        return await keys.remove_key(self.deps, name)

    # settings
    async def settings(self) -> Settings:
        return await settings.get_settings(self.deps)

    async def get_setting(self, name: str) -> Any:
        return await settings.get_setting(self.deps, name)

    async def set_setting(self, name: str, value: Any) -> Settings:
        return await settings.set_setting(self.deps, name, value)

    # Prometheus targets, exports, imports
    async def targets(self) -> list[dict]:
        return await targets.prometheus_targets(self.deps)

    async def write_targets(self) -> Path:
        return targets.write_targets(self.deps)

    async def revision(self) -> Hashable:
        """Differs after any stored change, by this process or another: a key
        for caching what is built from the inventory (the web API's bodies)."""
        return self.deps.storage.revision()

    async def fleet_config(self) -> dict:
        return await fleet_config.fleet_config(self.deps)

    async def export_fleet_config(self, destination: str | Path | None = None) -> str:
        return await fleet_config.export_fleet_config(self.deps, Path(destination) if destination else None)

    async def detect_ipmi_monitor(self) -> Path | None:
        return await ipmi_import.detect_ipmi_monitor(self.deps)

    async def import_ipmi_monitor(self, path: str | Path | None = None) -> ImportReport:
        return await ipmi_import.import_ipmi_monitor(self.deps, Path(path) if path else None)

    async def backup(self, destination: str | Path) -> Path:
        self.deps.storage.backup(Path(destination))
        return Path(destination)

    # -- the web app and the API: users, tokens, sessions, secrets, overview, services ----------

    async def users(self) -> list[User]:
        return await accounts.list_users(self.deps)

    async def user(self, name: str) -> User:
        return await accounts.show_user(self.deps, name)

    async def add_user(self, name: str, password: str, role: str = "viewer") -> User:
        """A user who may log in to the web app; ``role`` is ``admin`` or ``viewer`` (read-only)."""
        return await accounts.add_user(self.deps, name, password, role)

    async def remove_user(self, name: str) -> User:
        return await accounts.remove_user(self.deps, name)

    async def set_password(self, name: str, password: str) -> User:
        return await accounts.set_password(self.deps, name, password)

    async def set_role(self, name: str, role: str) -> User:
        return await accounts.set_role(self.deps, name, role)

    async def needs_setup(self) -> bool:
        return await accounts.needs_setup(self.deps)

    async def setup_admin(self, name: str, password: str) -> User:
        return await accounts.setup_admin(self.deps, name, password)

    async def authenticate(self, name: str, password: str) -> User:
        return await accounts.authenticate(self.deps, name, password)

    async def create_token(self, user_name: str, label: str) -> accounts.NewToken:
        """An API token for ``user_name``; its ``secret`` is returned this once only."""
        return await accounts.create_token(self.deps, user_name, label)

    async def tokens(self, user_name: str | None = None) -> list[ApiToken]:
        return await accounts.list_tokens(self.deps, user_name)

    async def revoke_token(self, token_id: int, *, user_name: str | None = None) -> ApiToken:
        return await accounts.revoke_token(self.deps, token_id, user_name=user_name)

    async def user_for_token(self, secret: str) -> User | None:
        return await accounts.user_for_token(self.deps, secret)

    async def start_session(self, user: User) -> accounts.NewSession:
        return await accounts.start_session(self.deps, user)

    async def session_user(self, secret: str) -> User | None:
        return await accounts.session_user(self.deps, secret)

    async def end_session(self, secret: str) -> None:
        await accounts.end_session(self.deps, secret)

    async def secret_status(self) -> dict[str, bool]:
        return await credentials.secret_status(self.deps)

    async def set_secret(self, name: str, value: str) -> None:
        await credentials.set_secret(self.deps, name, value)

    async def clear_secret(self, name: str) -> None:
        await credentials.clear_secret(self.deps, name)

    async def generate_scrape_token(self) -> str:
        return await credentials.generate_scrape_token(self.deps)

    async def read_secret(self, name: str) -> str | None:
        return await credentials.read_secret(self.deps, name)

    async def session_key(self) -> bytes:
        return await credentials.session_key(self.deps)

    async def overview(self, prometheus_api: str | None = None) -> Overview:
        return await overview.fleet_overview(self.deps, prometheus_api)

    async def services(self) -> dict[str, ServiceState]:
        return await services.service_states(self.deps)

    async def server_by_id(self, server_id: int) -> Server:
        return await lookups.server_by_id(self.deps, server_id)

    async def key_by_id(self, key_id: int) -> SshKey:
        return await lookups.key_by_id(self.deps, key_id)

    async def add_key_text(self, name: str, private_key: str, passphrase: str | None = None) -> SshKey:
        """Store a private key given as text (an upload) rather than a path."""
        return await keys.add_key(self.deps, name, private_key, passphrase)

    # -- fleet operations over SSH: check, install and remove exporters, re-trust ----------------
    # ``names`` None means every server; ``progress(result, done, total)`` is called per server.

    async def check(self, names: Iterable[str] | None = None, *, password: str | None = None,
                    progress: Progress | None = None) -> list[CheckResult]:
        """Reach each server over SSH: OS, CPU, RAM, GPUs, systemd, exporters; stored and returned."""
        return await fleet_check.check(self.deps, names, password=password, progress=progress)

    async def install_exporters(self, names: Iterable[str] | None = None, *,
                                node_exporter_binary: str | Path | None = None,
                                gpu_exporter_artifact: str | Path | None = None,
                                gpu_exporter_simulate: int | None = None, gpu_exporter: bool = True,
                                password: str | None = None, progress: Progress | None = None) -> list[InstallResult]:
        """node_exporter (and the GPU exporter where GPUs are) as hardened systemd units; idempotent."""
        options = _install_options(node_exporter_binary, gpu_exporter_artifact, gpu_exporter_simulate, gpu_exporter)
        return await exporter_install.install_exporters(self.deps, names, options=options, password=password,
                                                        progress=progress)

    async def remove_exporters(self, names: Iterable[str] | None = None, *, password: str | None = None,
                               progress: Progress | None = None) -> list[InstallResult]:
        return await exporter_install.remove_exporters(self.deps, names, password=password, progress=progress)

    async def install_exporters_local(self, *, node_exporter_binary: str | Path | None = None,
                                      gpu_exporter_artifact: str | Path | None = None,
                                      gpu_exporter_simulate: int | None = None,
                                      gpu_exporter: bool = True) -> InstallResult:
        """Install on this machine itself (run as root on a worker)."""
        options = _install_options(node_exporter_binary, gpu_exporter_artifact, gpu_exporter_simulate, gpu_exporter)
        return await exporter_install.install_exporters_local(self.deps, options)

    async def remove_exporters_local(self) -> InstallResult:
        return await exporter_install.remove_exporters_local(self.deps)

    async def trust_host(self, name: str) -> TrustReport:
        """Forget a server's pinned SSH host key; the next connection pins the key it offers."""
        return await worker_session.trust_host(self.deps, name)

    async def close(self) -> None:
        close = getattr(self.deps.storage, "close", None)
        if close:
            close()
        aclose = getattr(self.deps.runtime, "aclose", None)
        if aclose:
            await aclose()

    async def __aenter__(self) -> "AsyncFleet":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Fleet:
    """The same methods as ``AsyncFleet``, blocking, for scripts."""

    def __init__(self, fleet: AsyncFleet) -> None:
        self.aio = fleet
        self._runner = asyncio.Runner()

    @property
    def data_dir(self) -> Path:
        return self.aio.data_dir

    def run(self, coroutine: Any) -> Any:
        return self._runner.run(coroutine)

    def close(self) -> None:
        self.run(self.aio.close())
        self._runner.close()

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _blocking(name: str, method: Any) -> Any:
    @functools.wraps(method)
    def call(self: Fleet, *args: Any, **kwargs: Any) -> Any:
        return self.run(getattr(self.aio, name)(*args, **kwargs))

    return call


for _name, _method in inspect.getmembers(AsyncFleet, inspect.iscoroutinefunction):
    if not _name.startswith("_") and _name != "close":
        setattr(Fleet, _name, _blocking(_name, _method))


def open_async(data_dir: str | Path | None = None, **overrides: object) -> AsyncFleet:
    """An ``AsyncFleet`` on ``data_dir`` (default: ``DC_OVERVIEW_DATA``, else
    ``/etc/dc-overview`` as root, else the XDG data dir)."""
    return AsyncFleet(bootstrap(data_dir, **overrides))


def open(data_dir: str | Path | None = None, **overrides: object) -> Fleet:  # noqa: A001
    """A blocking ``Fleet`` on ``data_dir``; see ``open_async``."""
    return Fleet(open_async(data_dir, **overrides))


def _install_options(node_exporter_binary: str | Path | None, gpu_exporter_artifact: str | Path | None,
                     gpu_exporter_simulate: int | None, gpu_exporter: bool) -> InstallOptions:
    return exporter_install.InstallOptions(
        node_exporter_binary=Path(node_exporter_binary) if node_exporter_binary else None,
        gpu_exporter_artifact=Path(gpu_exporter_artifact) if gpu_exporter_artifact else None,
        gpu_exporter_simulate=gpu_exporter_simulate, gpu_exporter=gpu_exporter,
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise errors.InvalidInput("path", f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput("path", f"cannot read {path}: {exc}") from None
