"""The worker lab itself: real systemd hosts reachable over SSH from here.
Every other test that deploys to workers stands on these facts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.require import need_executable
from tests.support.worker_lab import (  # noqa: F401  (the two fixtures)
    LABEL,
    SshKey,
    WorkerLab,
    docker,
    lab_ssh_key_fixture,
    require_lab,
    worker_lab_fixture,
)

pytestmark = pytest.mark.integration


def _ssh(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_three_workers_boot_systemd_and_answer_ssh_from_the_host(
    worker_lab: WorkerLab, lab_ssh_key: SshKey, tmp_path: Path
) -> None:
    need_executable("ssh", "apt-get install openssh-client")
    workers = worker_lab.start(3, authorized_key=lab_ssh_key.public)

    assert len({w.ip for w in workers}) == 3
    assert len({w.name for w in workers}) == 3
    known_hosts = tmp_path / "known_hosts"
    for w in workers:
        assert w.exec(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
        state = w.exec(["systemctl", "is-system-running"], check=False).stdout.strip()
        assert state in ("running", "degraded"), state
        assert w.exec(["systemctl", "is-active", "ssh"]).stdout.strip() == "active"

        done = _ssh(w.ssh_argv(lab_ssh_key.private, known_hosts, "true"))
        assert done.returncode == 0, done.stderr
        seen = _ssh(w.ssh_argv(lab_ssh_key.private, known_hosts, "hostname; id -u; ps -o comm= -p 1"))
        assert seen.returncode == 0, seen.stderr
        assert seen.stdout.split() == [w.name, "0", "systemd"]
        # The plain user logs in with the same key and may use sudo.
        lab = _ssh(w.ssh_argv(lab_ssh_key.private, known_hosts, "id -un; sudo -n id -u", user="lab"))
        assert lab.stdout.split() == ["lab", "0"], lab.stderr

    # Each worker has its own host key, learned once and then checked.
    host_keys = [line.split()[2] for line in known_hosts.read_text().splitlines() if "ssh-ed25519" in line]
    assert len(host_keys) == 3 and len(set(host_keys)) == 3


def test_a_key_that_was_not_injected_is_refused(
    worker_lab: WorkerLab, lab_ssh_key: SshKey, tmp_path: Path
) -> None:
    need_executable("ssh", "apt-get install openssh-client")
    (w,) = worker_lab.start(1, authorized_key=lab_ssh_key.private)  # private key: its .pub is used
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    refused = _ssh(w.ssh_argv(stranger, tmp_path / "known_hosts", "true"))
    assert refused.returncode == 255
    assert "Permission denied" in refused.stderr

    w.add_authorized_key(Path(f"{stranger}.pub").read_text())
    assert _ssh(w.ssh_argv(stranger, tmp_path / "known_hosts", "true")).returncode == 0


def test_systemd_runs_units_and_keeps_state_across_a_restart(
    worker_lab: WorkerLab, lab_ssh_key: SshKey, tmp_path: Path
) -> None:
    (w,) = worker_lab.start(1, authorized_key=lab_ssh_key.public)

    w.exec(["systemd-run", "--unit=lab-sleeper", "sleep", "300"])
    assert w.exec(["systemctl", "is-active", "lab-sleeper"]).stdout.strip() == "active"
    w.exec(["systemctl", "stop", "lab-sleeper"])
    assert w.exec(["systemctl", "is-active", "lab-sleeper"], check=False).stdout.strip() != "active"

    # An installed, enabled unit comes back after a reboot at the same address.
    unit = "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"
    w.exec(["sh", "-c", "cat > /etc/systemd/system/lab-demo.service"], input=unit)
    w.exec("systemctl daemon-reload && systemctl enable --now lab-demo")
    ip, host_key = w.ip, w.exec(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout
    w.stop()
    assert not w.running()
    w.start()
    assert w.ip == ip
    assert w.exec(["systemctl", "is-active", "lab-demo"]).stdout.strip() == "active"
    assert w.exec(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout == host_key
    need_executable("ssh", "apt-get install openssh-client")
    assert _ssh(w.ssh_argv(lab_ssh_key.private, tmp_path / "known_hosts", "true")).returncode == 0


def test_workers_reach_each_other_and_the_host(worker_lab: WorkerLab, lab_ssh_key: SshKey) -> None:
    a, b = worker_lab.start(2, authorized_key=lab_ssh_key.public)
    probe = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()"
    a.exec(["python3", "-c", probe, b.ip, "22"])
    # The host answers at the gateway address (refused or accepted: either way reached).
    knock = (
        "import socket, sys\n"
        "try:\n"
        "    socket.create_connection((sys.argv[1], 1), timeout=5).close()\n"
        "except ConnectionRefusedError:\n"
        "    pass\n"
    )
    assert a.exec(["python3", "-c", knock, worker_lab.gateway]).returncode == 0


def test_closing_the_lab_leaves_nothing_behind(lab_ssh_key: SshKey) -> None:
    require_lab()
    with WorkerLab() as lab:
        workers = lab.start(2, authorized_key=lab_ssh_key.public, wait=False)
        names, network = [w.name for w in workers], lab.network
        assert docker("network", "inspect", network, check=False).returncode == 0
    left = docker("ps", "--all", "--filter", f"label={LABEL}={lab.lab_id}", "--format", "{{.Names}}").stdout.split()
    assert left == []
    for name in names:
        assert docker("inspect", name, check=False).returncode != 0
    assert docker("network", "inspect", network, check=False).returncode != 0
