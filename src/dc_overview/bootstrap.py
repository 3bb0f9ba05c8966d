"""The composition root: the one place that picks adapters for the ports."""

from __future__ import annotations

from pathlib import Path

from .fsutil import default_data_dir
from .ports import Deps


def bootstrap(data_dir: Path | str | None = None, **overrides: object) -> Deps:
    """Real adapters over ``data_dir`` (default: ``default_data_dir()``).
    Keyword arguments replace single ports, e.g. ``ssh=...`` in a lab."""
    from dc_overview.adapters.ipmi_monitor import IpmiMonitorReader
    from dc_overview.adapters.sqlite_storage import SqliteStorage
    from dc_overview.adapters.ssh_keys import AsyncsshKeyTool
    from dc_overview.adapters.system_clock import SystemClock
    from dc_overview.adapters.asyncssh_client import AsyncsshClient
    from dc_overview.adapters.http_download import HttpDownloader
    from dc_overview.adapters.local_host import LocalShell
    from dc_overview.adapters.prometheus_query import PrometheusQuery
    from dc_overview.adapters.secret_files import FileSecretStore
    from dc_overview.adapters.sqlite_accounts import SqliteAccounts

    ports: dict[str, object] = {
        "storage": SqliteStorage(Path(data_dir) if data_dir else default_data_dir()),
        "keys": AsyncsshKeyTool(),
        "ipmi_monitor": IpmiMonitorReader(),
        "clock": SystemClock(),
        "ssh": AsyncsshClient(),
        "local": LocalShell(),
        "downloader": HttpDownloader(),
    }
    # web accounts share the inventory's database connection; secrets are files beside it
    storage = ports["storage"]
    ports["accounts"] = SqliteAccounts(storage.conn)  # type: ignore[attr-defined]
    ports["secrets"] = FileSecretStore(storage.data_dir)  # type: ignore[attr-defined]
    ports["metrics"] = PrometheusQuery()
    # the monitoring stack: the container engine, the shared proxy's routes, Prometheus' lifecycle API
    from dc_overview.adapters.docker_runtime import DockerRuntime
    from dc_overview.adapters.nginx_proxy import NginxProxyRegistry
    from dc_overview.adapters.prometheus_lifecycle import PrometheusLifecycle

    runtime = overrides.get("runtime") or DockerRuntime()
    ports["runtime"] = runtime
    ports["proxy"] = NginxProxyRegistry(runtime, storage.data_dir)  # type: ignore[arg-type, attr-defined]
    ports["prometheus"] = PrometheusLifecycle()
    from dc_overview.adapters.host_probe import LocalHostProbe

    ports["host"] = LocalHostProbe()
    ports.update(overrides)
    return Deps(**ports)  # type: ignore[arg-type]
