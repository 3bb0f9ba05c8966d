"""install-exporters / remove-exporters on real systemd workers (containers
from the worker lab, tests/support/worker_lab.py), reached over SSH from here."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import dc_overview
from dc_overview.domain import ServerStatus
from dc_overview.exporter_units import GPU_SPEC, NODE_SPEC
from dc_overview.worker_probe import parse_version
from tests.support.require import missing
from tests.support.worker_lab import (  # noqa: F401  (fixtures)
    SshKey,
    WorkerLab,
    lab_ssh_key_fixture,
    worker_lab_fixture,
)

pytestmark = pytest.mark.integration

DEBIAN_NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")


def node_exporter_binary() -> Path:
    if not DEBIAN_NODE_EXPORTER.exists():
        missing("Debian's node_exporter", "apt-get install -y prometheus-node-exporter")
    return DEBIAN_NODE_EXPORTER


def metrics(ip: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        return response.read().decode()


def port_closed(ip: str, port: int) -> bool:
    try:
        metrics(ip, port)
    except (urllib.error.URLError, ConnectionError, OSError):
        return True
    return False


@pytest.fixture
def fleet(tmp_path: Path, lab_ssh_key: SshKey):
    with dc_overview.open(tmp_path / "data") as fleet:
        fleet.add_key("lab", lab_ssh_key.private)
        fleet.set_setting("default_ssh_key", "lab")
        yield fleet


def test_install_rerun_and_remove_on_systemd_workers(fleet, worker_lab: WorkerLab, lab_ssh_key: SshKey):
    binary = node_exporter_binary()
    as_root, as_sudoer = worker_lab.start(2, authorized_key=lab_ssh_key.public)
    fleet.add_server("w-root", as_root.ip, ssh_user="root")
    fleet.add_server("w-sudo", as_sudoer.ip, ssh_user="lab")  # a plain user with passwordless sudo

    started = time.monotonic()
    results = fleet.install_exporters(None, node_exporter_binary=binary)
    first_seconds = time.monotonic() - started
    assert [(r.name, r.ok, r.result) for r in results] == [("w-root", True, "changed"), ("w-sudo", True, "changed")], \
        [r.detail for r in results]
    for result, worker in zip(results, (as_root, as_sudoer), strict=True):
        assert result.changes == ("node_exporter: installed",)
        assert "gpu_exporter: no GPU found" in result.detail
        body = metrics(worker.ip, 9100)  # from this host, over the lab network
        assert "# TYPE node_cpu_seconds_total counter" in body
        assert worker.exec(["systemctl", "is-active", NODE_SPEC.unit]).stdout.strip() == "active"
        assert worker.exec(["systemctl", "is-enabled", NODE_SPEC.unit]).stdout.strip() == "enabled"
        # Hardened: a dynamic non-root user, no privileges to gain, read-only system.
        shown = worker.exec(["systemctl", "show", NODE_SPEC.unit, "-p", "DynamicUser", "-p", "NoNewPrivileges",
                             "-p", "ProtectSystem", "-p", "PrivateTmp"]).stdout.split()
        assert sorted(shown) == ["DynamicUser=yes", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict"]
        owner = worker.exec("ps -o user= -C node_exporter").stdout.strip()
        assert owner and owner != "root"
        assert "dc-overview." not in worker.exec("ls /tmp").stdout  # the staging folder is gone
    stored = {s.name: s for s in fleet.servers()}
    version = stored["w-root"].exporter("node_exporter").version
    assert stored["w-root"].exporter("node_exporter").installed and version and version[0].isdigit()
    # its --version, kept beside it, so that checks read it instead of starting the binary
    assert parse_version(as_root.exec(["cat", NODE_SPEC.version_path]).stdout.strip()) == version
    assert stored["w-root"].status == ServerStatus.ONLINE and stored["w-root"].gpu_count == 0

    started = time.monotonic()
    again = fleet.install_exporters(None, node_exporter_binary=binary)
    rerun_seconds = time.monotonic() - started
    assert [(r.ok, r.result, r.changes) for r in again] == [(True, "unchanged", ())] * 2, [r.detail for r in again]
    assert all(r.detail.startswith("nothing to change") for r in again)

    # A stopped exporter is noticed by check and started again by install.
    as_root.exec(["systemctl", "stop", NODE_SPEC.unit])
    checked = {r.name: r for r in fleet.check(None)}
    assert checked["w-root"].result == "exporter_down" and checked["w-sudo"].ok
    (restarted,) = fleet.install_exporters(["w-root"], node_exporter_binary=binary)
    assert restarted.changes == ("node_exporter: was inactive",) and "# TYPE" in metrics(as_root.ip, 9100)

    removed = fleet.remove_exporters(None)
    assert [(r.ok, r.result) for r in removed] == [(True, "changed")] * 2, [r.detail for r in removed]
    for worker in (as_root, as_sudoer):
        assert port_closed(worker.ip, 9100)
        gone = worker.exec(f"test ! -e {NODE_SPEC.unit_path} && test ! -e {NODE_SPEC.binary} && "
                           f"test ! -e /opt/dc-overview && echo gone", check=False)
        assert gone.stdout.strip() == "gone", gone.stderr
        assert worker.exec(["systemctl", "is-active", NODE_SPEC.unit], check=False).stdout.strip() == "inactive"
    assert not any(s.exporter("node_exporter").installed for s in fleet.servers())
    assert [r.detail for r in fleet.remove_exporters(None)] == ["nothing to remove"] * 2
    print(f"\ninstall on 2 lab workers: {first_seconds:.1f}s, unchanged re-run: {rerun_seconds:.1f}s")


def test_gpu_exporter_with_simulated_gpus(fleet, worker_lab: WorkerLab, lab_ssh_key: SshKey):
    binary = node_exporter_binary()
    (worker,) = worker_lab.start(1, authorized_key=lab_ssh_key.public)
    fleet.add_server("w1", worker.ip)
    (result,) = fleet.install_exporters(["w1"], node_exporter_binary=binary, gpu_exporter_simulate=2)
    assert result.ok, result.detail
    assert set(result.changes) == {"node_exporter: installed", "gpu_exporter: installed"}
    body = metrics(worker.ip, 9835)
    assert "DCGM_FI_DEV_GPU_TEMP" in body and 'gpu="1"' in body
    assert worker.exec(["systemctl", "show", GPU_SPEC.unit, "-p", "CapabilityBoundingSet"]).stdout.strip() \
        == "CapabilityBoundingSet=cap_sys_rawio"
    version = fleet.server("w1").exporter("gpu_exporter").version
    assert version == dc_overview.gpu_exporter.__version__
    assert parse_version(worker.exec(["cat", GPU_SPEC.version_path]).stdout.strip()) == version
    (checked,) = fleet.check(["w1"])
    assert checked.ok and fleet.server("w1").exporter("gpu_exporter").version == version
    # its modules' byte-code, made by the install's --version run, used by the hardened unit
    ready = worker.exec(["sh", "-c", f"ls {GPU_SPEC.cache_dir}/*/READY"]).stdout.split()
    assert len(ready) == 1 and worker.exec(["cat", ready[0]]).stdout.strip() == GPU_SPEC.binary
    journal = worker.exec(["journalctl", "-u", GPU_SPEC.unit, "-o", "cat", "--no-pager"]).stdout
    assert "dc-overview GPU exporter" in journal and "dc-gpu-exporter:" not in journal  # no fallback, no warning

    (again,) = fleet.install_exporters(["w1"], node_exporter_binary=binary, gpu_exporter_simulate=2)
    assert again.result == "unchanged", again.detail
    (removed,) = fleet.remove_exporters(["w1"])
    assert removed.detail == "removed node_exporter, gpu_exporter"
    assert port_closed(worker.ip, 9835) and port_closed(worker.ip, 9100)
    assert worker.exec(["test", "-e", GPU_SPEC.cache_dir], check=False).returncode == 1


def test_an_exporter_that_never_answers_fails_with_its_journal(fleet, worker_lab: WorkerLab, lab_ssh_key: SshKey):
    """/bin/false stands in for a broken node_exporter: it starts and exits.
    The install waits for port 9100, then fails that server with the unit's
    state and last journal lines; the right binary then repairs it."""
    (worker,) = worker_lab.start(1, authorized_key=lab_ssh_key.public)
    fleet.add_server("w1", worker.ip)
    (broken,) = fleet.install_exporters(["w1"], node_exporter_binary="/bin/false", gpu_exporter=False)
    assert not broken.ok and broken.result == "failed"
    assert "does not answer on port 9100 after 20s" in broken.detail, broken.detail
    (repaired,) = fleet.install_exporters(["w1"], node_exporter_binary=node_exporter_binary(), gpu_exporter=False)
    assert repaired.ok and repaired.changes == ("node_exporter: updated binary",), repaired.detail
    assert "# TYPE" in metrics(worker.ip, 9100)
