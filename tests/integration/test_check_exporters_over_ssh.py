"""``check`` asks the exporters through the SSH connection (direct-tcpip to
the worker's own 127.0.0.1), against a real OpenSSH sshd on loopback and
real HTTP servers: metrics are yes, a 404 or a web page bad, a closed or
silent port no; and where sshd forwards nothing (``AllowTcpForwarding no``)
a second small script on the worker gives the same answers."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from dc_overview.adapters.asyncssh_client import AsyncsshClient

import dc_overview
from dc_overview.exporter_units import ExporterSpec
from dc_overview.fleet_check import ask_exporters
from dc_overview.ports import SshTarget
from dc_overview.worker_probe import HTTP_END, http_answer
from tests.integration.test_worker_probe_script import EXPECTED, ports  # noqa: F401  (the ports fixture)
from tests.support.sshd import (  # noqa: F401
    LoopbackSshd,
    ensure_test_user,
    require_sshd,
    sshd_fixture,
)

pytestmark = pytest.mark.integration


def target(server: LoopbackSshd) -> SshTarget:
    return SshTarget(name="w", host=server.addresses[0], port=server.port, user=server.user,
                     private_key_path=str(server.client_key))


@pytest.fixture(scope="module")
def no_forwarding(tmp_path_factory: pytest.TempPathFactory):
    """An sshd with ``AllowTcpForwarding no``."""
    require_sshd()
    ensure_test_user()
    server = LoopbackSshd(tmp_path_factory.mktemp("sshd-nofwd"), ["127.0.0.45"], tcp_forwarding=False).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def silent_port():
    """A port that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def specs_for(found: dict[str, int], tmp_path: Path) -> list[ExporterSpec]:
    return [ExporterSpec(kind, port, f"dc-test-{kind}.service", str(tmp_path / kind), "test")
            for kind, port in found.items()]


async def test_the_ports_answer_through_the_connection(sshd: LoopbackSshd, ports: dict[str, int]):  # noqa: F811
    async with AsyncsshClient().connect(target(sshd), timeout=10) as conn:
        replies = {kind: await conn.http_get_local(port, "/metrics", timeout=3, until=HTTP_END)
                   for kind, port in ports.items()}
    assert {kind: http_answer(reply.data) for kind, reply in replies.items()} == EXPECTED
    assert all(reply.forwarded for reply in replies.values())
    assert replies["metrics"].connected and replies["missing"].data.startswith(b"HTTP/1.0 404 ")
    assert not replies["closed"].connected and replies["closed"].data == b""  # "Connection refused"
    # the metrics server sends ~120 KB; reading stops at the first "# TYPE "
    assert HTTP_END in replies["metrics"].data and len(replies["metrics"].data) < 65536


async def test_a_silent_port_is_given_up_on_after_the_timeout(sshd: LoopbackSshd, silent_port: int):
    async with AsyncsshClient().connect(target(sshd), timeout=10) as conn:
        started = time.monotonic()
        reply = await conn.http_get_local(silent_port, "/metrics", timeout=0.5, until=HTTP_END)
        took = time.monotonic() - started
        assert (await conn.run("echo still usable", timeout=10)).stdout == "still usable\n"
    assert reply.forwarded and reply.connected and reply.data == b"" and http_answer(reply.data) == "no"
    assert 0.5 <= took < 5


async def test_without_forwarding_every_port_says_so_open_or_closed(no_forwarding: LoopbackSshd,
                                                                   ports: dict[str, int]):  # noqa: F811
    async with AsyncsshClient().connect(target(no_forwarding), timeout=10) as conn:
        for port in (ports["metrics"], ports["closed"]):
            reply = await conn.http_get_local(port, "/metrics", timeout=3, until=HTTP_END)
            assert not reply.forwarded and not reply.connected and reply.data == b""


@pytest.mark.parametrize("forwarding", [True, False], ids=["forwarded", "script on the worker"])
async def test_the_answers_are_the_same_with_and_without_forwarding(
        forwarding: bool, sshd: LoopbackSshd, no_forwarding: LoopbackSshd, ports: dict[str, int],  # noqa: F811
        silent_port: int, tmp_path: Path):
    found = {**ports, "silent": silent_port}
    async with AsyncsshClient().connect(target(sshd if forwarding else no_forwarding), timeout=10) as conn:
        answers = await ask_exporters(conn, specs_for(found, tmp_path), 30)
    assert answers == {**EXPECTED, "silent": "no"}


def test_check_on_a_worker_whose_sshd_forwards_nothing(no_forwarding: LoopbackSshd, tmp_path: Path):
    """The whole check, through the API: the facts as ever, the exporters'
    ports (nothing listens on 9100 or 9835 here) asked by the second script."""
    with dc_overview.open(tmp_path / "data") as fleet:
        fleet.add_key("fleet", no_forwarding.client_key)
        fleet.set_setting("default_ssh_key", "fleet")
        fleet.add_server("w1", no_forwarding.addresses[0], ssh_user=no_forwarding.user, ssh_port=no_forwarding.port)
        (result,) = fleet.check(None)
    assert result.ok and result.facts.kernel and result.facts.user == no_forwarding.user
    assert [e.answering for e in result.facts.exporters] == ["no", "no"]
    log = no_forwarding.log_tail(200)
    assert "refused local port forward: originator  port 0, target 127.0.0.1 port 9100" in log, log
