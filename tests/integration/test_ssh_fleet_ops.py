"""The asyncssh adapter and the fleet operations against a real OpenSSH sshd
on loopback (tests/support/sshd.py): logins, host-key pinning and refusal,
dead hosts, timeouts, SFTP, and sshd's MaxStartups drops under load."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from dc_overview.adapters.asyncssh_client import AsyncsshClient
from dc_overview.frontends import output

import dc_overview
from dc_overview import errors
from dc_overview.domain import Server, ServerStatus, fingerprint
from dc_overview.fanout import for_each_server
from dc_overview.ports import FileUpload, SshTarget
from dc_overview.worker_session import RetryPolicy, SshOptions, open_session
from tests.support.sshd import (
    DEFAULT_MAX_STARTUPS,
    LoopbackSshd,
    ensure_test_user,
    keygen,
    require_sshd,
    set_password,
    sshd_fixture,  # noqa: F401  (the sshd fixture)
)

pytestmark = pytest.mark.integration


def target(server: LoopbackSshd, address: str | None = None, **changes) -> SshTarget:
    fields = dict(name="w", host=address or server.addresses[0], port=server.port, user=server.user,
                  private_key_path=str(server.client_key))
    fields.update(changes)
    return SshTarget(**fields)


@pytest.fixture
def fleet(sshd: LoopbackSshd, tmp_path: Path):
    with dc_overview.open(tmp_path / "data") as fleet:
        fleet.add_key("fleet", sshd.client_key)
        fleet.set_setting("default_ssh_key", "fleet")
        for i, address in enumerate(sshd.addresses, 1):
            fleet.add_server(f"w{i}", address, ssh_user=sshd.user, ssh_port=sshd.port)
        yield fleet


# -- the adapter --------------------------------------------------------------------------


async def test_connect_run_and_report_the_host_key(sshd: LoopbackSshd):
    client = AsyncsshClient()
    async with client.connect(target(sshd), timeout=10) as conn:
        assert conn.host_key.split() == sshd.host_public_key().split()[:2]
        done = await conn.run("id -un; cat; exit 3", timeout=10, input="from stdin\n")
    assert (done.exit_status, done.stdout) == (3, f"{sshd.user}\nfrom stdin\n")


@pytest.fixture
def drop_folder(sshd: LoopbackSshd):
    """A folder the test user may write to (pytest's own temp dirs are root's, 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="dc-overview-sftp-"))
    shutil.chown(folder, sshd.user)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def test_files_go_over_sftp_with_their_mode(sshd: LoopbackSshd, drop_folder: Path):
    folder = drop_folder
    client = AsyncsshClient()
    payload = os.urandom(3 << 20)
    async with client.connect(target(sshd), timeout=10) as conn:
        await conn.put([FileUpload(f"{folder}/sub/blob", payload, 0o750), FileUpload(f"{folder}/note", b"hi\n")])
        await conn.put([FileUpload(f"{folder}/note", b"replaced\n", 0o600)])
    assert (folder / "sub" / "blob").read_bytes() == payload
    assert (folder / "sub" / "blob").stat().st_mode & 0o777 == 0o750
    assert (folder / "note").read_text() == "replaced\n" and (folder / "note").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in folder.rglob("*")) == ["blob", "note", "sub"]  # no temporary files left


async def test_a_pinned_key_is_required_and_a_wrong_pin_refused_before_login(sshd: LoopbackSshd, tmp_path):
    client = AsyncsshClient()
    real = sshd.host_public_key()
    async with client.connect(target(sshd, pinned_host_key=real), timeout=10) as conn:
        assert (await conn.run("true", timeout=10)).exit_status == 0
    other = keygen(tmp_path / "other")
    wrong = Path(f"{other}.pub").read_text()
    with pytest.raises(errors.HostKeyChanged) as info:
        async with client.connect(target(sshd, pinned_host_key=wrong), timeout=10):
            pass
    assert info.value.offered == fingerprint(real) and info.value.pinned == fingerprint(wrong)
    assert "dc-overview servers trust w" in str(info.value)


async def test_a_pinned_key_type_the_server_no_longer_has_is_a_changed_key(sshd: LoopbackSshd, tmp_path):
    ecdsa = tmp_path / "ecdsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(ecdsa)], check=True)
    pinned = Path(f"{ecdsa}.pub").read_text()  # the sshd has only an ed25519 host key
    with pytest.raises(errors.HostKeyChanged) as info:
        async with AsyncsshClient().connect(target(sshd, pinned_host_key=pinned), timeout=10):
            pass
    assert info.value.offered == fingerprint(sshd.host_public_key())


async def test_a_key_the_server_does_not_know_is_refused(sshd: LoopbackSshd, tmp_path: Path):
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(errors.SshAuthFailed, match="refused the login as 'dcotest'"):
        async with AsyncsshClient().connect(target(sshd, private_key_path=str(stranger)), timeout=10):
            pass


async def test_a_closed_port_and_a_silent_one_are_unreachable(sshd: LoopbackSshd):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(errors.HostUnreachable, match="connection refused"):
        async with AsyncsshClient().connect(target(sshd, host="127.0.0.1", port=closed), timeout=5):
            pass
    with socket.socket() as silent:  # accepts TCP (backlog) but never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        with pytest.raises(errors.HostUnreachable, match="no SSH answer .* within 1s"):
            async with AsyncsshClient().connect(target(sshd, host="127.0.0.1", port=silent.getsockname()[1]),
                                                timeout=1):
                pass
        assert time.monotonic() - started < 5


async def test_a_command_that_runs_too_long_times_out_and_is_killed(sshd: LoopbackSshd):
    marker = f"{time.monotonic_ns()}"
    async with AsyncsshClient().connect(target(sshd), timeout=10) as conn:
        started = time.monotonic()
        with pytest.raises(errors.CommandTimeout, match="did not finish within 0.5s"):
            await conn.run(f"sleep 30 # {marker}", timeout=0.5)
        assert time.monotonic() - started < 3
        # The connection is still usable after a timed-out command.
        assert (await conn.run("echo ok", timeout=10)).stdout == "ok\n"
    await asyncio.sleep(0.5)
    left = subprocess.run(["pgrep", "-u", sshd.user, "-f", marker], capture_output=True, text=True)
    assert left.stdout.strip() == "", "the timed-out command was left running on the worker"


# -- the fleet operations through the Python API -------------------------------------------------


def test_check_reports_facts_stores_them_and_pins_host_keys(fleet, sshd: LoopbackSshd):
    results = fleet.check(None)
    assert [(r.name, r.ok, r.result) for r in results] == [("w1", True, "ok"), ("w2", True, "ok"), ("w3", True, "ok")]
    facts = results[0].facts
    assert facts.user == sshd.user and facts.kernel == os.uname().release and facts.arch == os.uname().machine
    assert facts.cpus == len(os.sched_getaffinity(0)) and facts.memory_mb > 0
    assert facts.os and facts.gpu_count == 0 and facts.gpu_source == "pci" and facts.systemd is False
    assert [e.answering for e in facts.exporters] == ["no", "no"]
    for server in fleet.servers():
        assert server.status == ServerStatus.ONLINE and server.last_seen is not None and server.gpu_count == 0
        assert server.host_key.split() == sshd.host_public_key().split()[:2]
    assert (fleet.data_dir / "prometheus/targets/fleet.json").exists()


def test_one_good_one_wrong_key_one_dead(fleet, sshd: LoopbackSshd, tmp_path: Path):
    fleet.add_key("stranger", keygen(tmp_path / "stranger"))
    fleet.update_server("w2", ssh_key="stranger")
    fleet.update_server("w3", ssh_port=1)
    results = {r.name: r for r in fleet.check(["w1", "w2", "w3"])}
    assert results["w1"].ok
    assert results["w2"].result == "auth_failed" and "authorized_keys" in results["w2"].detail
    assert results["w3"].result == "unreachable" and "connection refused" in results["w3"].detail
    statuses = {s.name: s.status for s in fleet.servers()}
    assert statuses == {"w1": ServerStatus.ONLINE, "w2": ServerStatus.AUTH_FAILED, "w3": ServerStatus.OFFLINE}


def test_a_reinstalled_host_is_refused_until_trusted_again(tmp_path: Path):
    require_sshd()
    ensure_test_user()
    own = LoopbackSshd(tmp_path / "sshd", ["127.0.0.40"]).start()
    try:
        with dc_overview.open(tmp_path / "data") as fleet:
            fleet.add_key("fleet", own.client_key)
            fleet.add_server("w1", "127.0.0.40", ssh_user=own.user, ssh_port=own.port, ssh_key="fleet")
            assert fleet.check(["w1"])[0].ok
            before = fleet.server("w1").host_key

            new_key = own.replace_host_key()
            (refused,) = fleet.check(["w1"])
            assert refused.result == "host_key_changed"
            assert f"offered {fingerprint(new_key)}" in refused.detail
            assert "dc-overview servers trust w1" in refused.detail
            assert fleet.server("w1").host_key == before

            report = fleet.trust_host("w1")
            assert report.forgotten_fingerprint == fingerprint(before)
            assert fleet.check(["w1"])[0].ok
            assert fleet.server("w1").host_key.split() == new_key.split()[:2]
    finally:
        own.close()


def test_many_logins_at_once_against_default_max_startups_are_retried(tmp_path: Path):
    """sshd's default MaxStartups 10:30:100 drops logins beyond 10 at once;
    80 sessions to one sshd all succeed through the retries."""
    require_sshd()
    ensure_test_user()
    own = LoopbackSshd(tmp_path / "sshd", ["127.0.0.41"], max_startups=DEFAULT_MAX_STARTUPS).start()
    try:
        deps = dc_overview.bootstrap.bootstrap(tmp_path / "data")
        deps.storage.add_key(dc_overview.SshKey(name="k", public_key="ssh-ed25519 AAAA", fingerprint="x",
                                                private_key_path=str(own.client_key)))
        server = Server(name="w1", address="127.0.0.41", ssh_user=own.user, ssh_port=own.port, ssh_key="k")
        options = SshOptions(concurrency=80, connect_timeout=20, command_timeout=20,
                             retry=RetryPolicy(attempts=10, first_delay=0.2, max_delay=2.0))

        async def work(s: Server):
            async with open_session(deps, s, options) as session:
                done = await session.conn.run("echo ok", timeout=20)
                return (done.stdout, session.attempts)

        started = time.monotonic()
        results = asyncio.run(for_each_server([server] * 80, work, concurrency=80,
                                              failed=lambda s, e, t: (repr(e), 0)))
        seconds = time.monotonic() - started
        assert [out for out, _ in results] == ["ok\n"] * 80
        retried = sum(attempts - 1 for _, attempts in results)
        assert retried > 0, "no login was dropped: the test did not exercise MaxStartups"
        print(f"\n80 logins at once, MaxStartups {DEFAULT_MAX_STARTUPS}: {retried} retries, {seconds:.1f}s")
        deps.storage.close()
    finally:
        own.close()


def test_password_logins_for_servers_without_a_key(tmp_path: Path):
    """--ask-password: the password is used for servers with no key, and
    never stored: not in the database, not in the results."""
    require_sshd()
    user, secret = "dcopass", "correct-horse-7f3a"
    ensure_test_user(user)
    set_password(user, secret)
    own = LoopbackSshd(tmp_path / "sshd", ["127.0.0.43"], user=user, password_auth=True).start()
    try:
        with dc_overview.open(tmp_path / "data") as fleet:
            fleet.add_server("w1", "127.0.0.43", ssh_user=user, ssh_port=own.port)
            (no_key,) = fleet.check(["w1"])
            assert no_key.result == "no_key" and "default_ssh_key" in no_key.detail
            (wrong,) = fleet.check(["w1"], password="not-it")
            assert wrong.result == "auth_failed" and "with the server's password" in wrong.detail
            (ok,) = fleet.check(["w1"], password=secret)
            assert ok.ok and ok.facts.user == user
            assert secret not in output.dumps([no_key, wrong, ok]) and secret not in repr(ok)
        stored = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
        assert secret.encode() not in stored
    finally:
        own.close()
