"""The accounts and secrets adapters on real files: the SQLite database
(migrated forward from an older schema), and 0600 secret files."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlite_utils
from dc_overview.adapters import sqlite_storage
from dc_overview.adapters.secret_files import FileSecretStore
from dc_overview.adapters.sqlite_accounts import SqliteAccounts

import dc_overview
from dc_overview import errors
from dc_overview.identity import ApiToken, LoginSession, Role, User
from tests.support.web import CHEAP, PASSWORD, open_fleet

pytestmark = pytest.mark.integration
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    storage = sqlite_storage.SqliteStorage(tmp_path)
    yield SqliteAccounts(storage.conn)
    storage.close()


def test_a_database_of_the_first_schema_gains_the_account_tables(tmp_path):
    path = tmp_path / sqlite_storage.DB_FILE
    db = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
    sqlite_storage.MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db["servers"].insert({"name": "gpu-01", "address": "10.0.0.11", "ssh_user": "root", "ssh_port": 22,
                          "status": "unknown", "labels": "{}", "exporters": "{}"})
    db.conn.close()
    with dc_overview.open(tmp_path) as fleet:
        assert [s.name for s in fleet.servers()] == ["gpu-01"]
        user = fleet.add_user("admin", PASSWORD, "admin")
        assert user.id == 1 and fleet.needs_setup() is False
    tables = set(sqlite_utils.Database(path).table_names())
    assert {"users", "api_tokens", "sessions", "servers"} <= tables
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == sqlite_storage.SCHEMA_VERSION


def test_users_are_unique_whatever_the_case_and_roles_and_hashes_round_trip(store):
    alice = store.add_user(User(name="Alice", role=Role.ADMIN, password_hash="scrypt$x", created_at=NOW))
    assert (alice.id, alice.role, alice.created_at) == (1, Role.ADMIN, NOW)
    assert store.get_user("alice").name == "Alice"
    with pytest.raises(errors.DuplicateUser):
        store.add_user(User(name="ALICE", role="viewer", password_hash="h"))
    changed = store.update_user(User(name="Alice", role="viewer", password_hash="scrypt$y", id=alice.id))
    assert (changed.role, changed.password_hash) == (Role.VIEWER, "scrypt$y")
    assert [u.name for u in store.list_users()] == ["Alice"]


def test_removing_a_user_cascades_to_tokens_and_sessions(store):
    user = store.add_user(User(name="bob", role="viewer", password_hash="h"))
    token = store.add_token(ApiToken(user_id=user.id, label="ci", token_hash="t1", prefix="dco_abc", created_at=NOW))
    assert (token.user_name, token.label) == ("bob", "ci")
    store.touch_token(token.id, NOW + timedelta(hours=1))
    assert store.find_token("t1").last_used_at == NOW + timedelta(hours=1)
    session = store.add_session(LoginSession(user_id=user.id, token_hash="s1", created_at=NOW,
                                             expires_at=NOW + timedelta(days=7), last_seen_at=NOW))
    assert store.find_session("s1").id == session.id
    store.remove_user(user.id)
    assert store.find_token("t1") is None and store.find_session("s1") is None
    assert store.list_tokens() == []


def test_sessions_are_pruned_by_expiry_and_idleness_and_times_compare_across_zones(store):
    user = store.add_user(User(name="bob", role="viewer", password_hash="h"))
    plus2 = timezone(timedelta(hours=2))

    def session(hash_: str, created: datetime, expires: datetime, seen: datetime) -> None:
        store.add_session(LoginSession(user_id=user.id, token_hash=hash_, created_at=created, expires_at=expires,
                                       last_seen_at=seen))

    session("fresh", NOW, NOW + timedelta(days=7), NOW.astimezone(plus2))
    session("idle", NOW, NOW + timedelta(days=7), NOW - timedelta(hours=25))
    session("old", NOW - timedelta(days=8), NOW - timedelta(days=1), NOW.astimezone(plus2))
    pruned = store.prune_sessions(NOW, NOW - timedelta(hours=24))
    assert pruned == 2
    assert store.find_session("fresh").last_seen_at == NOW
    store.remove_user_sessions(user.id)
    assert store.find_session("fresh") is None


def test_a_failed_transaction_leaves_nothing_behind_even_inside_another(store):
    with pytest.raises(RuntimeError), store.transaction():
        store.add_user(User(name="ghost", role="viewer", password_hash="h"))
        raise RuntimeError("boom")
    assert store.get_user("ghost") is None
    with store.transaction():
        store.add_user(User(name="kept", role="viewer", password_hash="h"))
        with pytest.raises(RuntimeError), store.transaction():
            store.add_user(User(name="inner", role="viewer", password_hash="h"))
            raise RuntimeError("boom")
    assert store.get_user("kept") is not None and store.get_user("inner") is None


def test_secret_files_are_0600_in_a_0700_folder_and_names_stay_inside(tmp_path):
    secrets = FileSecretStore(tmp_path)
    assert secrets.names() == [] and secrets.get("vastai_api_key") is None
    secrets.put("vastai_api_key", "abc")
    path = tmp_path / "secrets" / "vastai_api_key"
    assert path.stat().st_mode & 0o777 == 0o600 and (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    assert secrets.get("vastai_api_key") == "abc" and secrets.names() == ["vastai_api_key"]
    secrets.put("vastai_api_key", "def")
    assert secrets.get("vastai_api_key") == "def"
    secrets.delete("vastai_api_key")
    secrets.delete("vastai_api_key")
    assert secrets.names() == []
    for bad in ("../escape", "a/b", "", "UPPER"):
        with pytest.raises(errors.InvalidInput):
            secrets.put(bad, "x")


def test_a_secret_kept_after_reading_follows_every_change_by_another_process(tmp_path):
    """Values are kept between reads, yet a write, replacement or removal
    through another store (another process) is seen on the next read; so
    is a file changed in place, even to a value of the same length."""
    mine, theirs = FileSecretStore(tmp_path), FileSecretStore(tmp_path)
    assert mine.get("scrape_token") is None
    theirs.put("scrape_token", "first-token")
    assert mine.get("scrape_token") == "first-token" and mine.get("scrape_token") == "first-token"
    theirs.put("scrape_token", "other-token")  # same length, a new file
    assert mine.get("scrape_token") == "other-token"
    path = tmp_path / "secrets" / "scrape_token"
    stamp = path.stat().st_mtime_ns
    path.write_text("third-token\n")  # in place: same inode
    os.utime(path, ns=(stamp + 1_000_000, stamp + 1_000_000))
    assert mine.get("scrape_token") == "third-token"
    theirs.delete("scrape_token")
    assert mine.get("scrape_token") is None


async def test_the_real_fleet_keeps_users_tokens_and_the_cookie_key_across_opens(tmp_path):
    fleet = open_fleet(tmp_path)
    await fleet.add_user("admin", PASSWORD, "admin")
    made = await fleet.create_token("admin", "ci")
    key = await fleet.session_key()
    await fleet.close()
    again = open_fleet(tmp_path)
    assert (await again.user_for_token(made.secret)).name == "admin"
    assert await again.session_key() == key
    assert (tmp_path / "secrets" / "session_key").stat().st_mode & 0o777 == 0o600
    assert (await again.authenticate("admin", PASSWORD)).is_admin
    assert CHEAP.verify(PASSWORD, (await again.user("admin")).password_hash)
    await again.close()
