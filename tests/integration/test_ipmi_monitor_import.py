"""Import from a real database with ipmi-monitor's schema, through the real
adapters (SQLite storage, asyncssh key parsing)."""

import os
import shutil
import sqlite3
import stat
import subprocess

import asyncssh
import pytest

import dc_overview
from dc_overview import errors
from tests.support.ipmi_monitor_db import make_ipmi_monitor_db


def ed25519() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()


@pytest.fixture
def ipmi_db(tmp_path):
    shared = ed25519()
    return make_ipmi_monitor_db(
        tmp_path / "ipmi" / "ipmi_events.db",
        servers=[
            {"bmc_ip": "10.1.0.1", "server_name": "gpu-01", "server_ip": "10.0.0.1", "ssh_key_id": 1},
            {"bmc_ip": "10.1.0.2", "server_name": "gpu 02 (rack B)", "server_ip": "10.0.0.2",
             "ssh_user": "ubuntu", "ssh_port": 2222, "ssh_key_id": 1},
            {"bmc_ip": "10.1.0.3", "server_name": "bmc-only", "server_ip": None},
            {"bmc_ip": "10.1.0.4", "server_name": "retired", "server_ip": "10.0.0.4", "status": "deprecated"},
            {"bmc_ip": "10.1.0.5", "server_name": "gpu-05", "server_ip": "10.0.0.5", "ssh_key": ed25519()},
        ],
        keys=[{"id": 1, "name": "fleet key", "key_content": shared}],
    )


def test_import_from_a_real_ipmi_monitor_database(tmp_path, ipmi_db):
    before = ipmi_db.read_bytes()
    with dc_overview.open(tmp_path / "dc") as fleet:
        report = fleet.import_ipmi_monitor(ipmi_db)
        servers = {s.name: s for s in fleet.servers()}
        assert set(servers) == {"gpu-01", "gpu-02-rack-B", "gpu-05"}
        assert servers["gpu-01"].address == "10.0.0.1" and servers["gpu-01"].bmc_ip == "10.1.0.1"
        assert (servers["gpu-02-rack-B"].ssh_user, servers["gpu-02-rack-B"].ssh_port) == ("ubuntu", 2222)
        assert servers["gpu-05"].ssh_key == "gpu-05-key"
        assert sorted(what for what, _ in report.skipped) == ["bmc-only", "retired"]
        for key in fleet.keys():
            assert stat.S_IMODE(os.stat(key.private_key_path).st_mode) == 0o600
            assert asyncssh.import_private_key(open(key.private_key_path).read())
        again = fleet.import_ipmi_monitor(ipmi_db)
        assert again.added == () and len(fleet.servers()) == 3 and len(fleet.keys()) == 2
    assert ipmi_db.read_bytes() == before  # read-only


def test_detects_the_database_in_its_data_dir(tmp_path, ipmi_db, monkeypatch):
    monkeypatch.setenv("IPMI_MONITOR_DATA", str(ipmi_db.parent))
    with dc_overview.open(tmp_path / "dc") as fleet:
        assert fleet.detect_ipmi_monitor() == ipmi_db
        assert len(fleet.import_ipmi_monitor().added) == 3


@pytest.mark.parametrize("make", ["empty", "truncated", "foreign", "missing"])
def test_corrupt_or_foreign_database_changes_nothing(tmp_path, ipmi_db, make):
    bad = tmp_path / "bad.db"
    if make == "empty":
        bad.write_bytes(b"")
    elif make == "truncated":
        bad.write_bytes(ipmi_db.read_bytes()[:1500])
    elif make == "foreign":
        conn = sqlite3.connect(bad)
        conn.execute("CREATE TABLE servers (name, bmc_ip)")
        conn.commit()
        conn.close()
    with dc_overview.open(tmp_path / "dc") as fleet:
        fleet.add_server("keep", "10.9.9.9")
        with pytest.raises((errors.ForeignDatabase, errors.IpmiMonitorNotFound)) as info:
            fleet.import_ipmi_monitor(bad)
        assert str(bad) in str(info.value)
        assert [s.name for s in fleet.servers()] == ["keep"] and fleet.keys() == []
    assert not (tmp_path / "dc" / "ssh_keys").exists() or not any((tmp_path / "dc" / "ssh_keys").iterdir())


def test_an_unreadable_key_imports_nothing(tmp_path):
    db = make_ipmi_monitor_db(tmp_path / "ipmi_events.db",
                              servers=[{"bmc_ip": "10.1.0.1", "server_name": "a", "server_ip": "10.0.0.1", "ssh_key_id": 2}],
                              keys=[{"id": 1, "name": "good", "key_content": ed25519()},
                                    {"id": 2, "name": "bad", "key_content": "not a key"}])
    with dc_overview.open(tmp_path / "dc") as fleet:
        with pytest.raises(errors.ImportProblem, match="ssh_key id 2"):
            fleet.import_ipmi_monitor(db)
        assert fleet.servers() == [] and fleet.keys() == []


def test_keys_made_by_ssh_keygen_and_encrypted_keys(tmp_path):
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen not installed")
    plain, secret = tmp_path / "plain", tmp_path / "secret"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(plain)], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(secret)], check=True)
    with dc_overview.open(tmp_path / "dc") as fleet:
        key = fleet.add_key("rsa", plain)
        expected = subprocess.run(["ssh-keygen", "-lf", str(plain) + ".pub"], capture_output=True, text=True).stdout
        assert key.fingerprint in expected
        with pytest.raises(errors.InvalidKey, match="encrypted"):
            fleet.add_key("enc", secret)
        with pytest.raises(errors.InvalidKey, match="passphrase"):
            fleet.add_key("enc", secret, "wrong")
        stored = fleet.add_key("enc", secret, "pass phrase")
        assert asyncssh.import_private_key(open(stored.private_key_path).read())  # stored decrypted, 0600
        with pytest.raises(errors.InvalidKey, match="not the .pub"):
            fleet.add_key("pub", str(plain) + ".pub")
        assert [k.name for k in fleet.keys()] == ["enc", "rsa"]
