"""The AccountStore port on the fleet's SQLite database: tables ``users``,
``api_tokens`` and ``sessions`` (made by the storage adapter's migration
``_v2``). It shares the storage adapter's connection, handed over by the
composition root, so both see one database and one transaction at a time.

Times are stored as UTC ISO-8601 text, so they compare as strings.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import cattrs

from dc_overview import errors
from dc_overview.identity import ApiToken, LoginSession, Role, User

_savepoints = itertools.count(1)


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    conv.register_structure_hook(Role, lambda v, _: Role(v))
    return conv


def _when(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SqliteAccounts:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.conn = connection
        self._conv = _converter()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE, or a savepoint inside a transaction already open."""
        if self.conn.in_transaction:
            name = f"accounts_{next(_savepoints)}"
            self.conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
                raise
            self.conn.execute(f"RELEASE {name}")
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, args)
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]

    # -- users ------------------------------------------------------------------------------

    def _user(self, row: dict[str, Any]) -> User:
        return self._conv.structure(
            {k: row[k] for k in ("id", "name", "role", "password_hash", "created_at")}, User
        )

    def list_users(self) -> list[User]:
        return [self._user(r) for r in self._rows("SELECT * FROM users ORDER BY name")]

    def get_user(self, name: str) -> User | None:
        rows = self._rows("SELECT * FROM users WHERE name = ?", (name,))
        return self._user(rows[0]) if rows else None

    def get_user_by_id(self, user_id: int) -> User | None:
        rows = self._rows("SELECT * FROM users WHERE id = ?", (user_id,))
        return self._user(rows[0]) if rows else None

    def add_user(self, user: User) -> User:
        try:
            cursor = self.conn.execute(
                "INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (user.name, user.role.value, user.password_hash, _when(user.created_at) or _now(), _now()),
            )
        except sqlite3.IntegrityError:
            raise errors.DuplicateUser(user.name) from None
        return self.get_user_by_id(cursor.lastrowid)  # type: ignore[arg-type,return-value]

    def update_user(self, user: User) -> User:
        assert user.id is not None, "update needs a stored user"
        try:
            self.conn.execute(
                "UPDATE users SET name = ?, role = ?, password_hash = ?, updated_at = ? WHERE id = ?",
                (user.name, user.role.value, user.password_hash, _now(), user.id),
            )
        except sqlite3.IntegrityError:
            raise errors.DuplicateUser(user.name) from None
        return self.get_user_by_id(user.id)  # type: ignore[return-value]

    def remove_user(self, user_id: int) -> None:
        self.conn.execute("DELETE FROM users WHERE id = ?", (user_id,))

    # -- API tokens ---------------------------------------------------------------------------

    _TOKENS = "SELECT t.*, u.name AS user_name FROM api_tokens t JOIN users u ON u.id = t.user_id"

    def _token(self, row: dict[str, Any]) -> ApiToken:
        fields = ("id", "user_id", "label", "token_hash", "prefix", "created_at", "last_used_at", "user_name")
        return self._conv.structure({k: row[k] for k in fields}, ApiToken)

    def add_token(self, token: ApiToken) -> ApiToken:
        cursor = self.conn.execute(
            "INSERT INTO api_tokens (user_id, label, token_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)",
            (token.user_id, token.label, token.token_hash, token.prefix, _when(token.created_at) or _now()),
        )
        return self.get_token(cursor.lastrowid)  # type: ignore[arg-type,return-value]

    def list_tokens(self, user_id: int | None = None) -> list[ApiToken]:
        if user_id is None:
            return [self._token(r) for r in self._rows(f"{self._TOKENS} ORDER BY u.name, t.id")]
        return [self._token(r) for r in self._rows(f"{self._TOKENS} WHERE t.user_id = ? ORDER BY t.id", (user_id,))]

    def get_token(self, token_id: int) -> ApiToken | None:
        rows = self._rows(f"{self._TOKENS} WHERE t.id = ?", (token_id,))
        return self._token(rows[0]) if rows else None

    def find_token(self, token_hash: str) -> ApiToken | None:
        rows = self._rows(f"{self._TOKENS} WHERE t.token_hash = ?", (token_hash,))
        return self._token(rows[0]) if rows else None

    def touch_token(self, token_id: int, when: datetime) -> None:
        self.conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (_when(when), token_id))

    def remove_token(self, token_id: int) -> None:
        self.conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,))

    # -- sessions -------------------------------------------------------------------------------

    def _session(self, row: dict[str, Any]) -> LoginSession:
        fields = ("id", "user_id", "token_hash", "created_at", "expires_at", "last_seen_at")
        return self._conv.structure({k: row[k] for k in fields}, LoginSession)

    def add_session(self, session: LoginSession) -> LoginSession:
        cursor = self.conn.execute(
            "INSERT INTO sessions (user_id, token_hash, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?)",
            (session.user_id, session.token_hash, _when(session.created_at), _when(session.expires_at),
             _when(session.last_seen_at)),
        )
        rows = self._rows("SELECT * FROM sessions WHERE id = ?", (cursor.lastrowid,))
        return self._session(rows[0])

    def find_session(self, token_hash: str) -> LoginSession | None:
        rows = self._rows("SELECT * FROM sessions WHERE token_hash = ?", (token_hash,))
        return self._session(rows[0]) if rows else None

    def touch_session(self, session_id: int, when: datetime) -> None:
        self.conn.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (_when(when), session_id))

    def remove_session(self, token_hash: str) -> None:
        self.conn.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    def remove_user_sessions(self, user_id: int) -> None:
        self.conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))

    def prune_sessions(self, now: datetime, idle_since: datetime) -> int:
        cursor = self.conn.execute(
            "DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?", (_when(now), _when(idle_since))
        )
        return cursor.rowcount
