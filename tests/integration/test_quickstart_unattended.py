"""Unattended quickstart through the Python API on real parts: a real data
dir (SQLite, key files, secrets), a real OpenSSH sshd on loopback for the
workers, and a Docker engine that is not there (a socket that does not
exist). Failures must leave an existing installation exactly as it was."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

import dc_overview
from dc_overview import errors
from dc_overview.adapters.docker_runtime import DockerRuntime
from tests.support.sshd import LoopbackSshd
from tests.support.sshd import sshd_fixture  # noqa: F401  (the sshd fixture)

pytestmark = pytest.mark.integration

NO_DOCKER = "unix:///nonexistent/dc-overview-test/docker.sock"


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: its sha256 and mode."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            found[str(path.relative_to(folder))] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                    path.stat().st_mode & 0o777)
    return found


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A data dir with an earlier installation in it: servers, a key, settings."""
    data = tmp_path / "data"
    with dc_overview.open(data) as fleet:
        fleet.generate_key("old")
        fleet.set_setting("default_ssh_key", "old")
        fleet.add_server("gpu-01", "10.0.0.11")
        fleet.set_setting("dc_port", 5002)
    return data


def test_docker_absent_is_a_clear_message_and_the_installation_is_untouched(installed: Path):
    before = snapshot(installed)
    with dc_overview.open(installed, runtime=DockerRuntime(NO_DOCKER)) as fleet:
        with pytest.raises(errors.DockerMissing) as info:
            fleet.quickstart({"role": "master", "workers": [{"address": "10.0.0.12"}], "dc_port": 5003})
        assert [s.name for s in fleet.servers()] == ["gpu-01"] and fleet.get_setting("dc_port") == 5002
    message = str(info.value)
    assert "Docker is needed to run the monitoring stack on this host" in message
    assert "/nonexistent/dc-overview-test/docker.sock does not exist" in message
    assert "nothing was changed" in message and "apt-get install docker.io" in message
    assert snapshot(installed) == before


def test_a_bad_answers_file_names_each_line_and_changes_nothing(installed: Path, tmp_path: Path):
    answers = tmp_path / "answers.yaml"
    answers.write_text("role: master\n"
                       "workers:\n"
                       "  - address: 10.0.0.12\n"
                       "  - address: 10.0.0.13\n"
                       "  - address: 10.0.0.14\n"
                       "    port: 70000\n"
                       "proxy:\n"
                       "  tls: letsencrypt\n"
                       "  domian: monitor.example.net\n")
    before = snapshot(installed)
    with dc_overview.open(installed, runtime=DockerRuntime(NO_DOCKER)) as fleet:
        with pytest.raises(errors.AnswersInvalid) as info:
            fleet.quickstart(answers)
    assert [f"{where}: {field}: {message}" for where, field, message in info.value.problems] == [
        f"{answers} line 6: workers[2].port: 70000 is out of range (ports are 1-65535)",
        f"{answers} line 9: proxy.domian: unknown key 'domian' (did you mean 'domain'?)",
    ]
    assert snapshot(installed) == before


def test_answers_that_do_not_fit_this_host_are_refused_before_any_change(installed: Path, tmp_path: Path):
    not_a_key = tmp_path / "id_ed25519"
    not_a_key.write_text("this is not a key\n")
    before = snapshot(installed)
    with dc_overview.open(installed, runtime=DockerRuntime(NO_DOCKER)) as fleet:
        with pytest.raises(errors.AnswersInvalid) as info:
            fleet.quickstart({"role": "master", "ssh_key": {"name": "old", "path": str(not_a_key)},
                              "workers": [{"address": "10.0.0.12", "key": "missing"}]})
    assert [field for _, field, _ in info.value.problems] == ["ssh_key.path", "workers[0].key"]
    assert snapshot(installed) == before


def test_workers_on_a_real_sshd_are_checked_and_a_dead_one_reported(sshd: LoopbackSshd, tmp_path: Path):
    data = tmp_path / "data"
    dead_port = closed_port()
    answers = {
        "role": "master",
        "ssh_key": {"name": "lab", "path": str(sshd.client_key)},
        "workers": [
            {"name": "w1", "address": sshd.addresses[0], "user": sshd.user, "port": sshd.port},
            {"name": "w2", "address": sshd.addresses[1], "user": sshd.user, "port": sshd.port},
            {"name": "dead", "address": "127.0.0.1", "user": sshd.user, "port": dead_port},
        ],
        "exporters": {"install": False},  # these loopback hosts have no systemd: check only
        "stack": {"start": False},  # the stack needs Docker, which this test leaves out
        "admin": {"password": "a-long-admin-password"},
    }
    with dc_overview.open(data, runtime=DockerRuntime(NO_DOCKER)) as fleet:
        report = fleet.quickstart(answers)
        assert [(r.name, r.ok, r.result) for r in report.workers] == [
            ("w1", True, "ok"), ("w2", True, "ok"), ("dead", False, "unreachable")]
        assert "refused" in report.workers[2].detail or "127.0.0.1" in report.workers[2].detail
        assert report.failed and report.changed
        servers = {s.name: s for s in fleet.servers()}
        assert servers["w1"].host_key and servers["w1"].status.value == "online"  # pinned on first contact
        assert servers["dead"].status.value == "offline"
        assert fleet.key("lab").fingerprint and fleet.get_setting("default_ssh_key") == "lab"
        assert fleet.authenticate("admin", "a-long-admin-password").is_admin
        again = fleet.quickstart(answers)
    assert not again.changed, [s for s in again.steps if s.result == "changed"]
    assert [(r.name, r.result) for r in again.workers] == [("w1", "ok"), ("w2", "ok"), ("dead", "unreachable")]
    secrets = data / "secrets"
    assert (secrets / "grafana_admin_password").stat().st_mode & 0o777 == 0o600
    kept = (data / "quickstart.yaml").read_text()
    assert "a-long-admin-password" not in kept and (data / "quickstart.yaml").stat().st_mode & 0o777 == 0o600
    assert os.stat(secrets).st_mode & 0o777 == 0o700
