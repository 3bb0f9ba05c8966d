"""Storage.update_servers on a real SQLite file: many rows in one statement
and one transaction, what fleet operations store after contacting workers."""

from datetime import datetime, timezone

import attrs
import pytest

from dc_overview.adapters.sqlite_storage import SqliteStorage
from dc_overview.domain import NODE_EXPORTER, ExporterState, Server, ServerStatus, SshKey


@pytest.fixture
def store(tmp_path):
    s = SqliteStorage(tmp_path / "data")
    yield s
    s.close()


def fleet(store, n):
    path = store.write_private_key("fleet", "PRIVATE")
    store.add_key(SshKey(name="fleet", public_key="ssh-ed25519 AAAA x", fingerprint="SHA256:x",
                         private_key_path=str(path)))
    return [store.add_server(Server(name=f"gpu-{i:03d}", address=f"10.0.{i // 250}.{i % 250 + 1}",
                                    ssh_key="fleet" if i % 2 else None, labels={"rack": str(i % 7)}))
            for i in range(n)]


def test_many_servers_are_stored_in_one_commit_with_every_field(store, tmp_path):
    servers = fleet(store, 300)
    seen = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    changed = [attrs.evolve(s, status=ServerStatus.ONLINE, last_seen=seen, gpu_count=i % 9, host_key=f"ssh-ed25519 K{i}",
                            exporters={NODE_EXPORTER: ExporterState(installed=True, version="1.8.2")})
               for i, s in enumerate(servers)]
    commits = []
    store.conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    store.update_servers(changed)
    store.conn.set_trace_callback(None)

    assert commits == ["COMMIT"]
    assert store.list_servers() == changed  # every field, the key by name, the labels untouched
    other = SqliteStorage(tmp_path / "data")  # and on disk, for another process
    try:
        assert other.list_servers() == changed
    finally:
        other.close()


def test_a_server_removed_meanwhile_is_skipped_and_an_empty_batch_writes_nothing(store):
    first, second = fleet(store, 2)
    store.remove_server(second.id)
    store.update_servers([attrs.evolve(first, status=ServerStatus.OFFLINE),
                          attrs.evolve(second, status=ServerStatus.OFFLINE)])
    assert [(s.name, s.status) for s in store.list_servers()] == [("gpu-000", ServerStatus.OFFLINE)]
    before = store.revision()
    store.update_servers([])
    assert store.revision() == before


def test_a_batch_inside_a_transaction_is_undone_with_it(store):
    (server,) = fleet(store, 1)
    with pytest.raises(RuntimeError), store.transaction():
        store.update_servers([attrs.evolve(server, status=ServerStatus.ONLINE)])
        raise RuntimeError("something after it failed")
    assert store.get_server_by_id(server.id).status == ServerStatus.UNKNOWN
