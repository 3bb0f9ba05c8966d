"""Fleet operations through the real ``dc-overview`` command: a fleet of 100
loopback hosts (127.0.0.2..127.0.0.101, real sshd) checked in one command,
the summary table, --json, exit codes, servers trust, --local."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.sshd import (
    LoopbackSshd,
    ensure_test_user,
    loopback_addresses,
    require_sshd,
)

pytestmark = pytest.mark.e2e

FLEET_SIZE = 100


def dc(data: Path, *args: str, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DC_OVERVIEW_DATA=str(data), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "dc_overview", *args], env=env, input=input, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def hundred(tmp_path_factory: pytest.TempPathFactory):
    """100 hosts on sshd's default MaxStartups (10:30:100), and an inventory of them."""
    require_sshd()
    ensure_test_user()
    work = tmp_path_factory.mktemp("fleet100")
    sshd = LoopbackSshd(work / "sshd", loopback_addresses(FLEET_SIZE), max_startups="10:30:100").start()
    data = work / "data"
    try:
        assert dc(data, "keys", "add", "fleet", str(sshd.client_key)).returncode == 0
        lines = ["name,ip,user,port,key"] + [f"h{i:03d},{address},{sshd.user},{sshd.port},fleet"
                                             for i, address in enumerate(sshd.addresses, 1)]
        imported = dc(data, "servers", "import", "-", input="\n".join(lines) + "\n")
        assert imported.returncode == 0, imported.stderr
        yield sshd, data
    finally:
        sshd.close()


def test_a_hundred_hosts_checked_in_one_command(hundred):
    sshd, data = hundred
    started = time.monotonic()
    done = dc(data, "check", "--all", "--json")
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert len(results) == FLEET_SIZE
    assert sorted(r["name"] for r in results) == [f"h{i:03d}" for i in range(1, FLEET_SIZE + 1)]
    assert all(r["ok"] and r["result"] == "ok" and r["status"] == "online" for r in results)
    assert all(r["facts"]["kernel"] == os.uname().release for r in results)
    retries = sum(r["attempts"] - 1 for r in results)
    print(f"\ncheck --all of {FLEET_SIZE} loopback hosts: {seconds:.1f}s wall, {retries} login retries")

    listed = json.loads(dc(data, "servers", "list", "--json").stdout)
    assert all(s["status"] == "online" and s["gpu_count"] == 0 and s["host_key"] for s in listed)


def test_the_table_and_the_exit_code_when_a_host_fails(hundred):
    sshd, data = hundred
    assert dc(data, "servers", "add", "dead", "127.0.0.200", "--port", "1", "--key", "fleet").returncode == 0
    try:
        done = dc(data, "check", "h001", "h002", "dead")
        assert done.returncode == 1
        rows = done.stdout.splitlines()
        assert rows[0].split() == ["NAME", "RESULT", "DETAIL", "TIME"]
        assert [r.split()[:2] for r in rows[2:5]] == [["h001", "ok"], ["h002", "ok"], ["dead", "unreachable"]]
        assert "connection refused by 127.0.0.200:1" in rows[4]
        assert rows[-1].startswith("1 of 3 failed (2 ok, 1 unreachable) in ")
        assert "Checking" in done.stderr  # the progress display goes to stderr

        as_json = dc(data, "check", "dead", "--json")
        assert as_json.returncode == 1 and json.loads(as_json.stdout)[0]["result"] == "unreachable"
    finally:
        dc(data, "servers", "remove", "dead")


def test_usage_errors(hundred):
    _, data = hundred
    for args in (["check"], ["check", "h001", "--all"], ["install-exporters", "--local", "h001"]):
        done = dc(data, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Error:" in done.stderr
    unknown = dc(data, "check", "h001", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "Error: no server named 'nope' (see `dc-overview servers list`)"


def test_servers_trust_forgets_the_pin_and_the_next_check_pins_again(hundred):
    sshd, data = hundred
    assert dc(data, "check", "h007").returncode == 0
    pinned = json.loads(dc(data, "servers", "show", "h007", "--json").stdout)["host_key"]
    assert pinned.split() == sshd.host_public_key().split()[:2]

    declined = dc(data, "servers", "trust", "h007", input="n\n")
    assert declined.returncode == 1 and "Pinned host key of h007: ssh-ed25519 SHA256:" in declined.stdout
    assert json.loads(dc(data, "servers", "show", "h007", "--json").stdout)["host_key"] == pinned

    trusted = dc(data, "servers", "trust", "h007", "--yes")
    assert trusted.returncode == 0 and "Forgot the host key of h007 (SHA256:" in trusted.stdout
    assert json.loads(dc(data, "servers", "show", "h007", "--json").stdout)["host_key"] is None
    assert dc(data, "check", "h007").returncode == 0
    assert json.loads(dc(data, "servers", "show", "h007", "--json").stdout)["host_key"] == pinned

    again = dc(data, "servers", "trust", "h007", "--yes", "--json")
    assert json.loads(again.stdout)["forgotten_fingerprint"].startswith("SHA256:")


def test_install_exporters_local_needs_systemd(tmp_path: Path):
    """This machine has no systemd as PID 1: the local install stops before
    changing anything, and says why."""
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("this machine runs systemd; the local install would really install")
    done = dc(tmp_path / "data", "install-exporters", "--local", "--node-exporter-binary",
              "/usr/bin/prometheus-node-exporter", "--json")
    assert done.returncode == 1, done.stderr
    (result,) = json.loads(done.stdout)
    assert result["result"] == "failed" and "systemd is not running" in result["detail"]
    assert not Path("/etc/systemd/system/dc-node-exporter.service").exists()
