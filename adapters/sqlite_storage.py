"""The Storage port on a SQLite file, through sqlite-utils.

``<data>/dc-overview.db`` in WAL mode with foreign keys on; the schema
version lives in ``PRAGMA user_version`` and forward migrations run on open.
Rows are turned into domain values by one cattrs converter, here at the edge.
Reads, deletes and batch updates are plain SQL on the sqlite3 connection;
sqlite-utils (slow to import) creates and upgrades the schema and does the
inserts and single-row updates, loaded on the first of those, so commands
that only read start without it.
Private keys live beside it in ``<data>/ssh_keys/`` with mode 0600.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import cattrs

from dc_overview import errors
from dc_overview.domain import Server, SshKey
from dc_overview.fsutil import atomic_write

if TYPE_CHECKING:
    import sqlite_utils

DB_FILE = "dc-overview.db"
KEYS_DIR = "ssh_keys"


def _v1(db: sqlite_utils.Database) -> None:
    db["ssh_keys"].create(
        {"id": int, "name": str, "public_key": str, "fingerprint": str, "private_key_path": str, "created_at": str},
        pk="id",
        not_null={"name", "public_key", "fingerprint", "private_key_path"},
    )
    db["ssh_keys"].create_index(["name"], unique=True)
    db["servers"].create(
        {
            "id": int, "name": str, "address": str, "ssh_user": str, "ssh_port": int, "ssh_key_id": int,
            "bmc_ip": str, "labels": str, "gpu_count": int, "exporters": str, "status": str,
            "last_seen": str, "host_key": str, "created_at": str, "updated_at": str,
        },
        pk="id",
        not_null={"name", "address", "ssh_user", "ssh_port", "status"},
        foreign_keys=[("ssh_key_id", "ssh_keys", "id")],
    )
    db["servers"].create_index(["name"], unique=True)
    db["servers"].create_index(["address"], unique=True)
    db["settings"].create({"name": str, "value": str}, pk="name")


def _v2(db: sqlite_utils.Database) -> None:
    """Accounts for the web app and the API (used through adapters/sqlite_accounts.py)."""
    for statement in (
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
        " role TEXT NOT NULL, password_hash TEXT NOT NULL, created_at TEXT, updated_at TEXT)",
        "CREATE TABLE api_tokens (id INTEGER PRIMARY KEY,"
        " user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, label TEXT NOT NULL,"
        " token_hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, created_at TEXT, last_used_at TEXT)",
        "CREATE TABLE sessions (id INTEGER PRIMARY KEY,"
        " user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, token_hash TEXT NOT NULL UNIQUE,"
        " created_at TEXT NOT NULL, expires_at TEXT NOT NULL, last_seen_at TEXT NOT NULL)",
        "CREATE INDEX api_tokens_user ON api_tokens(user_id)",
        "CREATE INDEX sessions_user ON sessions(user_id)",
    ):
        db.execute(statement)


# Append only: MIGRATIONS[n] takes the schema from version n to n + 1.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2]
SCHEMA_VERSION = len(MIGRATIONS)


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    conv.register_unstructure_hook(datetime, lambda v: v.isoformat())
    return conv


def _rows(conn: sqlite3.Connection, sql: str, parameters: Any = ()) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, parameters)
    columns = [c[0] for c in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


class SqliteStorage:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_FILE
        self._depth = 0
        self._servers_cache: tuple[tuple[int, int], list[Server]] | None = None
        self._conv = _converter()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_mode = WAL")
            self.conn = conn
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise errors.StorageError(
                f"{self.path} is not a usable dc-overview database ({exc})",
                "restore it from a backup (`dc-overview backup` makes one) or move it away to start afresh",
            ) from None
        except OSError as exc:
            raise errors.StorageError(f"cannot open the data dir {self.data_dir}: {exc.strerror}",
                                      "choose another with --data-dir or DC_OVERVIEW_DATA") from None

    @functools.cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils on the same connection, for the schema and for inserts
        and updates. Loaded on first use (it is slow to import), so commands
        that only read never load it; reads are plain SQL on ``conn``."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    def close(self) -> None:
        self.conn.close()

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone():
            raise sqlite3.DatabaseError("it holds tables but no dc-overview schema version")
        if version > SCHEMA_VERSION:
            raise errors.StorageError(
                f"{self.path} has schema version {version}, newer than this dc-overview knows ({SCHEMA_VERSION})",
                "upgrade dc-overview",
            )
        if version == SCHEMA_VERSION:
            return
        for number in range(version, SCHEMA_VERSION):
            with self.transaction():
                MIGRATIONS[number](self.db)
                self.conn.execute(f"PRAGMA user_version = {number + 1}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One SQLite transaction; nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0

    # -- servers ----------------------------------------------------------------------

    _SELECT = "SELECT s.*, k.name AS key_name FROM servers s LEFT JOIN ssh_keys k ON k.id = s.ssh_key_id"

    def _server(self, row: Mapping[str, Any]) -> Server:
        fields = {
            "id": row["id"], "name": row["name"], "address": row["address"], "ssh_user": row["ssh_user"],
            "ssh_port": row["ssh_port"], "ssh_key": row["key_name"], "bmc_ip": row["bmc_ip"],
            "labels": json.loads(row["labels"] or "{}"), "gpu_count": row["gpu_count"],
            "exporters": json.loads(row["exporters"] or "{}"), "status": row["status"],
            "last_seen": row["last_seen"], "host_key": row["host_key"],
        }
        return self._conv.structure(fields, Server)

    def _server_row(self, server: Server) -> dict[str, Any]:
        key_id = None
        if server.ssh_key is not None:
            found = self.conn.execute("SELECT id FROM ssh_keys WHERE name = ?", [server.ssh_key]).fetchone()
            if found is None:
                raise errors.KeyNotFound(server.ssh_key)
            key_id = found[0]
        return {
            "name": server.name, "address": server.address, "ssh_user": server.ssh_user,
            "ssh_port": server.ssh_port, "ssh_key_id": key_id, "bmc_ip": server.bmc_ip,
            "labels": json.dumps(dict(server.labels), sort_keys=True), "gpu_count": server.gpu_count,
            "exporters": json.dumps(self._conv.unstructure(dict(server.exporters)), sort_keys=True),
            "status": server.status.value,
            "last_seen": server.last_seen.isoformat() if server.last_seen else None,
            "host_key": server.host_key, "updated_at": _now(),
        }

    def _query(self, where: str = "", args: list[Any] | None = None) -> list[Server]:
        cursor = self.conn.execute(f"{self._SELECT} {where}", args or [])
        columns = [c[0] for c in cursor.description]
        return [self._server(dict(zip(columns, row))) for row in cursor.fetchall()]

    def _one(self, where: str, args: list[Any]) -> Server | None:
        found = self._query(f"WHERE s.{where} LIMIT 1", args)
        return found[0] if found else None

    def revision(self) -> tuple[int, int]:
        """Changes whenever anything stored changes: servers, keys, settings,
        and the accounts tables that share this connection. ``PRAGMA
        data_version`` moves when another connection (another process)
        commits; ``total_changes`` counts every row this connection has
        written. One cheap query, no table read."""
        conn = self.conn
        return conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes

    def list_servers(self) -> list[Server]:
        """Every server by name. Kept between calls until the database changes
        (through this connection, or any other: ``revision()``), so
        dashboards and Prometheus' http_sd polls do not rebuild 5,000 values."""
        if self._depth:  # inside a transaction: see its own changes
            return self._query("ORDER BY s.name")
        version = self.revision()
        if self._servers_cache is None or self._servers_cache[0] != version:
            self._servers_cache = (version, self._query("ORDER BY s.name"))
        return list(self._servers_cache[1])

    def get_server(self, name: str) -> Server | None:
        return self._one("name = ?", [name])

    def get_server_by_id(self, server_id: int) -> Server | None:
        return self._one("id = ?", [server_id])

    def find_server_by_address(self, address: str) -> Server | None:
        return self._one("address = ?", [address])

    def add_server(self, server: Server) -> Server:
        row = self._server_row(server) | {"created_at": _now()}
        with self.transaction(), _unique_as(errors.DuplicateServer, "name or address", server.name):
            new_id = self.db["servers"].insert(row).last_pk
        return self.get_server_by_id(new_id)  # type: ignore[return-value]

    def update_server(self, server: Server) -> Server:
        assert server.id is not None, "update needs a stored server"
        with self.transaction(), _unique_as(errors.DuplicateServer, "name or address", server.name):
            table = self.db["servers"]
            from sqlite_utils.db import NotFoundError  # loaded with self.db

            try:
                table.update(server.id, self._server_row(server))
            except NotFoundError:  # removed meanwhile
                raise errors.ServerNotFound(server.name) from None
        return self.get_server_by_id(server.id)  # type: ignore[return-value]

    def update_servers(self, servers: Sequence[Server]) -> None:
        if not servers:
            return
        with self.transaction():
            rows = [(self._server_row(server), server.id) for server in servers]
            changes = ", ".join(f"[{name}] = ?" for name in rows[0][0])
            with _unique_as(errors.DuplicateServer, "name or address", servers[0].name):
                self.conn.executemany(f"UPDATE servers SET {changes} WHERE id = ?",
                                      [[*row.values(), server_id] for row, server_id in rows])

    def remove_server(self, server_id: int) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM servers WHERE id = ?", [server_id])

    # -- SSH keys ---------------------------------------------------------------------------

    def _key(self, row: Mapping[str, Any]) -> SshKey:
        fields = {k: row[k] for k in ("id", "name", "public_key", "fingerprint", "private_key_path")}
        return self._conv.structure(fields | {"private_key_path": self._key_path(row["private_key_path"])}, SshKey)

    # A key file in <data>/ssh_keys is stored by its path in the data dir and
    # handed out where the data dir is seen now: the stack's app container
    # sees the host's /etc/dc-overview at /data. Absolute paths stored by
    # earlier versions are found there too.
    def _stored_key_path(self, path: str) -> str:
        if Path(path).parent.resolve() == (self.data_dir / KEYS_DIR).resolve():
            return f"{KEYS_DIR}/{Path(path).name}"
        return path

    def _key_path(self, stored: str) -> str:
        path = Path(stored)
        if not path.is_absolute():
            return str(self.data_dir / path)
        here = self.data_dir / KEYS_DIR / path.name
        if path.parent.name == KEYS_DIR and not path.exists() and here.exists():
            return str(here)
        return stored

    def list_keys(self) -> list[SshKey]:
        return [self._key(r) for r in _rows(self.conn, "SELECT * FROM ssh_keys ORDER BY name")]

    def get_key(self, name: str) -> SshKey | None:
        rows = _rows(self.conn, "SELECT * FROM ssh_keys WHERE name = ? LIMIT 1", [name])
        return self._key(rows[0]) if rows else None

    def get_key_by_id(self, key_id: int) -> SshKey | None:
        rows = _rows(self.conn, "SELECT * FROM ssh_keys WHERE id = ? LIMIT 1", [key_id])
        return self._key(rows[0]) if rows else None

    def add_key(self, key: SshKey) -> SshKey:
        row = self._conv.unstructure(key)
        row.pop("id")
        row["private_key_path"] = self._stored_key_path(key.private_key_path)
        with self.transaction(), _unique_as(errors.DuplicateKey, None, key.name):
            new_id = self.db["ssh_keys"].insert(row | {"created_at": _now()}).last_pk
        return self.get_key_by_id(new_id)  # type: ignore[return-value]

    def remove_key(self, key_id: int) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM ssh_keys WHERE id = ?", [key_id])

    def write_private_key(self, name: str, text: str) -> Path:
        """Write a new 0600 key file; never replaces an existing one."""
        folder = self.data_dir / KEYS_DIR
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        path = folder / name
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".new-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text if text.endswith("\n") else text + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)  # atomic and exclusive
            except FileExistsError:
                raise errors.DuplicateKey(name) from None
        finally:
            os.unlink(tmp)
        return path

    def delete_private_key(self, path: str) -> None:
        key_path = Path(path)
        if key_path.parent.resolve() == (self.data_dir / KEYS_DIR).resolve():
            key_path.unlink(missing_ok=True)

    # -- settings and files -------------------------------------------------------------------

    def load_settings(self) -> dict[str, object]:
        return {name: json.loads(value) for name, value in self.conn.execute("SELECT name, value FROM settings")}

    def save_setting(self, name: str, value: object) -> None:
        with self.transaction():
            self.conn.execute("INSERT INTO settings (name, value) VALUES (?, ?)"
                              " ON CONFLICT (name) DO UPDATE SET value = excluded.value", [name, json.dumps(value)])

    def write_file_atomically(self, relative: str, content: str, mode: int = 0o644) -> Path:
        return atomic_write(self.data_dir / relative, content, mode)

    def backup(self, destination: Path) -> None:
        """A consistent copy through SQLite's online backup API."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".partial")
        target = sqlite3.connect(partial)
        try:
            self.conn.backup(target)
        finally:
            target.close()
        os.chmod(partial, 0o600)
        os.replace(partial, destination)


@contextlib.contextmanager
def _unique_as(error: type, field: str | None, value: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" not in str(exc):
            raise
        if error is errors.DuplicateKey:
            raise errors.DuplicateKey(value) from None
        column = str(exc).rsplit(".", 1)[-1]
        raise errors.DuplicateServer(column, value, "already stored") from None


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")
