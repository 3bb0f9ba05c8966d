import os
import sqlite3
import stat
from datetime import datetime, timezone

import attrs
import pytest

from dc_overview import errors
from dc_overview.adapters.sqlite_storage import DB_FILE, SCHEMA_VERSION, SqliteStorage
from dc_overview.domain import ExporterState, NODE_EXPORTER, Server, ServerStatus, SshKey


@pytest.fixture
def store(tmp_path):
    s = SqliteStorage(tmp_path / "data")
    yield s
    s.close()


def key(store, name="fleet"):
    path = store.write_private_key(name, "PRIVATE")
    return store.add_key(SshKey(name=name, public_key="ssh-ed25519 AAAA x", fingerprint="SHA256:x",
                                private_key_path=str(path)))


def test_new_database_is_wal_with_foreign_keys_and_versioned(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert {"servers", "ssh_keys", "settings"} <= set(store.db.table_names())


def test_server_round_trip_keeps_every_field(store, tmp_path):
    key(store)
    seen = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    server = Server(name="ñandú-01", address="10.0.0.1", ssh_user="ops", ssh_port=2222, ssh_key="fleet",
                    bmc_ip="10.1.0.1", labels={"rack": "r1"}, gpu_count=8,
                    exporters={NODE_EXPORTER: ExporterState(installed=True, version="1.5.0")},
                    status=ServerStatus.ONLINE, last_seen=seen, host_key="ssh-ed25519 AAAAhost")
    stored = store.add_server(server)
    assert stored == attrs.evolve(server, id=stored.id)
    store.close()
    reopened = SqliteStorage(tmp_path / "data")
    assert reopened.get_server("ñandú-01") == stored
    reopened.close()


def test_unique_names_and_addresses_enforced_by_the_database(store):
    store.add_server(Server(name="a", address="10.0.0.1"))
    with pytest.raises(errors.DuplicateServer):
        store.add_server(Server(name="a", address="10.0.0.2"))
    with pytest.raises(errors.DuplicateServer):
        store.add_server(Server(name="b", address="10.0.0.1"))
    assert [s.name for s in store.list_servers()] == ["a"]


def test_transaction_rolls_back_everything(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_server(Server(name="a", address="10.0.0.1"))
            store.save_setting("dc_port", 6000)
            raise RuntimeError("boom")
    assert store.list_servers() == [] and store.load_settings() == {}


def test_a_key_in_use_is_protected_by_the_foreign_key(store):
    k = key(store)
    store.add_server(Server(name="a", address="10.0.0.1", ssh_key="fleet"))
    with pytest.raises(sqlite3.IntegrityError):
        store.remove_key(k.id)


def test_private_keys_are_0600_in_a_0700_folder_and_never_overwritten(store):
    path = store.write_private_key("fleet", "SECRET")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    with pytest.raises(errors.DuplicateKey):
        store.write_private_key("fleet", "OTHER")
    assert path.read_text() == "SECRET\n"
    assert [p.name for p in path.parent.iterdir()] == ["fleet"]  # no temporary files left


def test_names_with_quotes_unicode_and_sql_are_stored_verbatim_as_labels(store):
    label = "x'); DROP TABLE servers; --"
    store.add_server(Server(name="节点-1", address="10.0.0.1", labels={"note": label}))
    assert store.get_server("节点-1").labels["note"] == label
    assert "servers" in store.db.table_names()


@pytest.mark.parametrize("content", [b"", b"SQLite format 3\x00" + b"\x00" * 50, b"this is not a database" * 100])
def test_empty_truncated_or_foreign_files(tmp_path, content):
    data = tmp_path / "data"
    data.mkdir()
    (data / DB_FILE).write_bytes(content)
    if content == b"":
        SqliteStorage(data).close()  # an empty file is a new database, as for SQLite itself
        return
    with pytest.raises(errors.StorageError, match="not a usable dc-overview database"):
        SqliteStorage(data)


def test_truncated_real_database_is_refused(tmp_path):
    data = tmp_path / "data"
    store = SqliteStorage(data)
    for i in range(200):
        store.add_server(Server(name=f"gpu-{i}", address=f"10.0.{i // 250}.{i % 250 + 1}"))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    raw = (data / DB_FILE).read_bytes()
    (data / DB_FILE).write_bytes(raw[: len(raw) // 3])
    with pytest.raises(errors.StorageError):
        s = SqliteStorage(data)
        s.list_servers()


def test_another_applications_database_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / DB_FILE)
    conn.execute("CREATE TABLE other (x)")
    conn.commit()
    conn.close()
    with pytest.raises(errors.StorageError, match="no dc-overview schema version"):
        SqliteStorage(data)


def test_newer_schema_is_refused(tmp_path):
    data = tmp_path / "data"
    SqliteStorage(data).close()
    conn = sqlite3.connect(data / DB_FILE)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(errors.StorageError, match="upgrade dc-overview"):
        SqliteStorage(data)


def test_backup_is_a_consistent_openable_copy(store, tmp_path):
    store.add_server(Server(name="a", address="10.0.0.1"))
    target = tmp_path / "backups" / "copy.db"
    store.backup(target)
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT name FROM servers").fetchall() == [("a",)]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_atomic_file_write_leaves_no_partial_files(store):
    path = store.write_file_atomically("prometheus/targets/fleet.json", "[]\n")
    assert path.read_text() == "[]\n"
    store.write_file_atomically("prometheus/targets/fleet.json", "[1]\n")
    assert path.read_text() == "[1]\n"
    assert [p.name for p in path.parent.iterdir()] == ["fleet.json"]


def test_server_list_is_reused_until_the_database_changes(store, tmp_path):
    store.add_server(Server(name="a", address="10.0.0.1"))
    first = store.list_servers()
    assert store.list_servers() == first
    store.add_server(Server(name="b", address="10.0.0.2"))
    assert [s.name for s in store.list_servers()] == ["a", "b"]
    other = SqliteStorage(tmp_path / "data")  # another process's connection
    other.remove_server(other.get_server("a").id)
    other.close()
    assert [s.name for s in store.list_servers()] == ["b"]
    with store.transaction():
        store.add_server(Server(name="c", address="10.0.0.3"))
        assert [s.name for s in store.list_servers()] == ["b", "c"]
    returned = store.list_servers()
    returned.clear()
    assert len(store.list_servers()) == 2
