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

    ports: dict[str, object] = {
        "storage": SqliteStorage(Path(data_dir) if data_dir else default_data_dir()),
        "keys": AsyncsshKeyTool(),
        "ipmi_monitor": IpmiMonitorReader(),
        "clock": SystemClock(),
    }
    ports.update(overrides)
    return Deps(**ports)  # type: ignore[arg-type]
