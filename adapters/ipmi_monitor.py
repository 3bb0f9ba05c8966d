"""The IpmiMonitorSource port: read ipmi-monitor's own SQLite database
(``ipmi_events.db``; tables ``server``, ``server_config``, ``ssh_key``),
read-only, never changing it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from dc_overview import errors
from dc_overview.ports import IpmiKey, IpmiMonitorData, IpmiServer

DB_NAME = "ipmi_events.db"
REQUIRED = {
    "server": {"bmc_ip", "server_name", "server_ip"},
    "server_config": {"bmc_ip", "ssh_user", "ssh_port", "ssh_key_id"},
    "ssh_key": {"id", "name", "key_content"},
}


class IpmiMonitorReader:
    def __init__(self, extra_dirs: list[Path] | None = None) -> None:
        self.extra_dirs = list(extra_dirs or [])

    def candidates(self) -> list[Path]:
        dirs = [*self.extra_dirs]
        if env := os.environ.get("IPMI_MONITOR_DATA") or os.environ.get("DATA_DIR"):
            dirs.append(Path(env))
        dirs += [
            Path("/etc/ipmi-monitor/data"),
            Path("/etc/ipmi-monitor"),
            Path("/var/lib/ipmi-monitor"),
            Path.home() / ".config" / "ipmi-monitor",
        ]
        return [d / DB_NAME for d in dirs]

    def locate(self) -> Path | None:
        return next((p for p in self.candidates() if p.is_file()), None)

    def read(self, path: Path) -> IpmiMonitorData:
        if not path.is_file():
            raise errors.ForeignDatabase(f"{path} does not exist or is not a file", "give the path to ipmi_events.db")
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise errors.ForeignDatabase(f"cannot open {path}: {exc}") from None
        try:
            conn.row_factory = sqlite3.Row
            self._check_schema(conn, path)
            keys = tuple(
                IpmiKey(id=r["id"], name=r["name"], private_key=r["key_content"] or "")
                for r in conn.execute("SELECT id, name, key_content FROM ssh_key ORDER BY id")
            )
            has_status = "status" in _columns(conn, "server")
            has_inline = "ssh_key" in _columns(conn, "server_config")
            rows = conn.execute(
                f"""SELECT s.server_name, s.bmc_ip, COALESCE(s.server_ip, c.server_ip) AS server_ip,
                       c.ssh_user, c.ssh_port, c.ssh_key_id,
                       {'c.ssh_key' if has_inline else 'NULL'} AS inline_key,
                       {'s.status' if has_status else 'NULL'} AS status
                    FROM server s LEFT JOIN server_config c ON c.bmc_ip = s.bmc_ip
                    ORDER BY s.id"""
            )
            servers = tuple(
                IpmiServer(
                    name=r["server_name"], bmc_ip=r["bmc_ip"], server_ip=r["server_ip"] or None,
                    ssh_user=r["ssh_user"] or None, ssh_port=_int(r["ssh_port"]),
                    ssh_key_id=_int(r["ssh_key_id"]), inline_key=r["inline_key"] or None, status=r["status"],
                )
                for r in rows
            )
        except sqlite3.DatabaseError as exc:
            raise errors.ForeignDatabase(
                f"{path} is not a readable ipmi-monitor database ({exc})", "check the file, or restore it from a backup"
            ) from None
        finally:
            conn.close()
        return IpmiMonitorData(path=str(path), servers=servers, keys=keys)

    def _check_schema(self, conn: sqlite3.Connection, path: Path) -> None:
        for table, needed in REQUIRED.items():
            missing = needed - _columns(conn, table)
            if missing:
                what = f"table {table!r}" if missing == needed else f"columns {sorted(missing)} in {table!r}"
                raise errors.ForeignDatabase(
                    f"{path} is not an ipmi-monitor database: {what} missing",
                    "point --path at ipmi-monitor's ipmi_events.db",
                )


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _int(value: object) -> int | None:
    try:
        return int(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
