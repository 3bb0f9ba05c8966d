"""The data dir is seen under another path by the stack's app container
(``/data``) than on the host (``/etc/dc-overview``): a key kept in it must be
found from either, also one stored by a version that kept the host's path."""

import shutil
from pathlib import Path

from dc_overview.adapters.sqlite_storage import SqliteStorage
from dc_overview.domain import SshKey


def add_key(store: SqliteStorage, name: str = "fleet") -> SshKey:
    path = store.write_private_key(name, "PRIVATE")
    return store.add_key(SshKey(name=name, public_key="ssh-ed25519 AAAA x", fingerprint="SHA256:x",
                                private_key_path=str(path)))


def reopened_elsewhere(old: Path, new: Path) -> SqliteStorage:
    """The same files under another path, the old one gone: as the app
    container sees the host's data dir."""
    shutil.move(old, new)
    return SqliteStorage(new)


def test_a_key_is_found_where_the_data_dir_is_seen_now(tmp_path: Path):
    host = SqliteStorage(tmp_path / "host")
    added = add_key(host)
    assert Path(added.private_key_path).read_text() == "PRIVATE\n"
    host.close()
    container = reopened_elsewhere(tmp_path / "host", tmp_path / "container")
    try:
        key = container.get_key("fleet")
        assert key is not None and Path(key.private_key_path) == tmp_path / "container" / "ssh_keys" / "fleet"
        assert [k.private_key_path for k in container.list_keys()] == [key.private_key_path]
        assert Path(key.private_key_path).read_text() == "PRIVATE\n"
    finally:
        container.close()


def test_a_key_stored_with_the_hosts_absolute_path_is_found_too(tmp_path: Path):
    host = SqliteStorage(tmp_path / "host")
    added = add_key(host)
    host.db.execute("UPDATE ssh_keys SET private_key_path = ?", [str(tmp_path / "host" / "ssh_keys" / "fleet")])
    host.close()
    container = reopened_elsewhere(tmp_path / "host", tmp_path / "container")
    try:
        key = container.get_key("fleet")
        assert key is not None and Path(key.private_key_path) == tmp_path / "container" / "ssh_keys" / "fleet"
        assert key.fingerprint == added.fingerprint
    finally:
        container.close()


def test_a_key_file_outside_the_data_dir_keeps_its_path(tmp_path: Path):
    store = SqliteStorage(tmp_path / "data")
    elsewhere = tmp_path / "elsewhere" / "id_ed25519"
    elsewhere.parent.mkdir()
    elsewhere.write_text("PRIVATE\n")
    try:
        store.add_key(SshKey(name="outside", public_key="ssh-ed25519 AAAA x", fingerprint="SHA256:x",
                             private_key_path=str(elsewhere)))
        assert store.get_key("outside").private_key_path == str(elsewhere)  # type: ignore[union-attr]
    finally:
        store.close()


def test_removing_a_key_file_still_works_on_the_path_handed_out(tmp_path: Path):
    store = SqliteStorage(tmp_path / "data")
    try:
        key = add_key(store)
        store.delete_private_key(store.get_key("fleet").private_key_path)  # type: ignore[union-attr]
        assert not Path(key.private_key_path).exists()
    finally:
        store.close()
