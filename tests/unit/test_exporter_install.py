"""install-exporters / remove-exporters over the fake SSH: what is pushed
and restarted (and what not on a re-run), GPUs, conflicts, failures."""

import io
import zipfile

import pytest

from dc_overview import exporter_install, inventory, keys, settings
from dc_overview.exporter_install import InstallOptions
from dc_overview.exporter_units import GPU_SPEC, NODE_SPEC, node_exporter_unit
from tests.fakes import FakeLocalHost, FakeSsh, FakeWorker, fake_deps, fake_elf


@pytest.fixture
def ssh():
    return FakeSsh()


@pytest.fixture
def deps(ssh, tmp_path):
    return fake_deps(tmp_path / "data", ssh=ssh)


@pytest.fixture
def node_binary(tmp_path):
    path = tmp_path / "node_exporter"
    path.write_bytes(fake_elf("x86_64", "1.5.0"))
    return path


@pytest.fixture
def gpu_zipapp(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("__main__.py", "print('version=2.0.0')\n")
    path = tmp_path / "dc-gpu-exporter.pyz"
    path.write_bytes(b"#!/usr/bin/env python3\n" + buffer.getvalue() + b" version=2.0.0")
    return path


async def add_fleet(deps, ssh, workers):
    await keys.generate_key(deps, "fleet")
    await settings.set_setting(deps, "default_ssh_key", "fleet")
    for i, worker in enumerate(workers, 1):
        ssh.add(worker)
        await inventory.add_server(deps, f"gpu-{i:02d}", worker.address)


async def test_install_then_a_rerun_changes_nothing(deps, ssh, node_binary):
    worker = FakeWorker("10.0.0.1")
    await add_fleet(deps, ssh, [worker])
    options = InstallOptions(node_exporter_binary=node_binary)

    (first,) = await exporter_install.install_exporters(deps, options=options)
    assert first.ok and first.result == "changed"
    assert first.changes == ("node_exporter: installed",)
    assert worker.files[NODE_SPEC.binary] == node_binary.read_bytes()
    assert worker.files[NODE_SPEC.unit_path] == node_exporter_unit().encode()
    assert worker.units[NODE_SPEC.unit] == {"active": "active", "enabled": "enabled"}
    assert not [p for p in worker.files if p.startswith("/tmp/")]  # the staging folder is gone
    stored = deps.storage.get_server("gpu-01")
    assert stored.exporter("node_exporter").installed and stored.exporter("node_exporter").version == "1.5.0"
    assert "gpu_exporter: no GPU found" in first.detail

    uploads, runs = len(worker.uploads), len(worker.runs)
    (second,) = await exporter_install.install_exporters(deps, options=options)
    assert second.ok and second.result == "unchanged" and second.changes == ()
    assert second.detail.startswith("nothing to change")
    assert len(worker.uploads) == uploads  # nothing pushed
    assert len(worker.runs) == runs + 1  # only the probe ran


async def test_only_what_differs_is_pushed_and_a_stopped_unit_is_started(deps, ssh, node_binary):
    worker = FakeWorker("10.0.0.1")
    await add_fleet(deps, ssh, [worker])
    options = InstallOptions(node_exporter_binary=node_binary)
    await exporter_install.install_exporters(deps, options=options)

    node_binary.write_bytes(fake_elf("x86_64", "1.8.2"))
    worker.uploads.clear()
    (updated,) = await exporter_install.install_exporters(deps, options=options)
    assert updated.changes == ("node_exporter: updated binary",)
    assert len(worker.uploads) == 1 and updated.exporters["node_exporter"].version == "1.8.2"

    worker.units[NODE_SPEC.unit]["active"] = "failed"
    worker.uploads.clear()
    (started,) = await exporter_install.install_exporters(deps, options=options)
    assert started.changes == ("node_exporter: was failed",) and worker.uploads == []
    assert worker.units[NODE_SPEC.unit]["active"] == "active"


async def test_gpu_exporter_where_gpus_are_or_everywhere_when_simulated(deps, ssh, node_binary, gpu_zipapp):
    with_gpus, without = FakeWorker("10.0.0.1", gpu_smi=4, gpu_pci=4), FakeWorker("10.0.0.2")
    await add_fleet(deps, ssh, [with_gpus, without])
    options = InstallOptions(node_exporter_binary=node_binary, gpu_exporter_artifact=gpu_zipapp)
    first, second = await exporter_install.install_exporters(deps, options=options)
    assert "gpu_exporter: installed" in first.changes and GPU_SPEC.binary in with_gpus.files
    assert GPU_SPEC.binary not in without.files
    unit = with_gpus.files[GPU_SPEC.unit_path].decode()
    assert f"ExecStart=/usr/bin/python3 {GPU_SPEC.binary} --port 9835\n" in unit
    assert deps.storage.get_server("gpu-01").gpu_count == 4

    simulated = InstallOptions(node_exporter_binary=node_binary, gpu_exporter_artifact=gpu_zipapp,
                               gpu_exporter_simulate=2)
    first, second = await exporter_install.install_exporters(deps, options=simulated)
    assert first.changes == ("gpu_exporter: updated unit",)  # the --simulate flag is new
    assert "--simulate 2" in without.files[GPU_SPEC.unit_path].decode()
    assert second.exporters["gpu_exporter"].installed


async def test_one_bad_host_does_not_stop_the_others(deps, ssh, node_binary):
    workers = [
        FakeWorker("10.0.0.1"),
        FakeWorker("10.0.0.2", systemd=False),
        FakeWorker("10.0.0.3", foreign_ports={9100}),
        FakeWorker("10.0.0.4", arch="aarch64"),
        FakeWorker("10.0.0.5", uid=1000, sudo_ok=False),
        FakeWorker("10.0.0.6", down=True),
    ]
    await add_fleet(deps, ssh, workers)
    results = await exporter_install.install_exporters(deps, options=InstallOptions(node_exporter_binary=node_binary))
    assert [(r.name, r.ok) for r in results] == [
        ("gpu-01", True), ("gpu-02", False), ("gpu-03", False), ("gpu-04", False), ("gpu-05", False), ("gpu-06", False)]
    details = [r.detail for r in results]
    assert "systemd is not running" in details[1]
    assert "port 9100 already answers" in details[2] and NODE_SPEC.binary not in workers[2].files
    assert "built for x86_64, the worker is aarch64" in details[3]
    assert "cannot use sudo without a password" in details[4]
    assert results[5].result == "unreachable"


async def test_a_plain_user_installs_through_sudo(deps, ssh, node_binary):
    worker = FakeWorker("10.0.0.1", uid=1000)
    await add_fleet(deps, ssh, [worker])
    (result,) = await exporter_install.install_exporters(deps, options=InstallOptions(node_exporter_binary=node_binary))
    assert result.ok
    assert "sudo -n sh -s" in worker.runs and worker.units[NODE_SPEC.unit]["active"] == "active"


async def test_remove_cleans_up_and_a_second_remove_has_nothing_to_do(deps, ssh, node_binary, gpu_zipapp):
    worker = FakeWorker("10.0.0.1", gpu_smi=1, gpu_pci=1)
    await add_fleet(deps, ssh, [worker])
    await exporter_install.install_exporters(
        deps, options=InstallOptions(node_exporter_binary=node_binary, gpu_exporter_artifact=gpu_zipapp))
    (removed,) = await exporter_install.remove_exporters(deps)
    assert removed.ok and removed.result == "changed"
    assert removed.detail == "removed node_exporter, gpu_exporter"
    assert worker.files == {}
    assert worker.units[NODE_SPEC.unit]["active"] == "inactive"
    stored = deps.storage.get_server("gpu-01")
    assert not stored.exporter("node_exporter").installed and not stored.exporter("gpu_exporter").installed

    (again,) = await exporter_install.remove_exporters(deps)
    assert again.ok and again.result == "unchanged" and again.detail == "nothing to remove"


async def test_local_install_applies_the_same_plan(tmp_path, node_binary):
    worker = FakeWorker("localhost")
    deps = fake_deps(tmp_path / "data", local=FakeLocalHost(worker))
    result = await exporter_install.install_exporters_local(deps, InstallOptions(node_exporter_binary=node_binary))
    assert result.ok and result.changes == ("node_exporter: installed",)
    assert worker.units[NODE_SPEC.unit]["active"] == "active"
    again = await exporter_install.install_exporters_local(deps, InstallOptions(node_exporter_binary=node_binary))
    assert again.result == "unchanged"
    removed = await exporter_install.remove_exporters_local(deps)
    assert removed.result == "changed" and worker.files == {}


async def test_a_file_that_is_not_an_executable_is_refused_for_each_host(deps, ssh, tmp_path):
    await add_fleet(deps, ssh, [FakeWorker("10.0.0.1")])
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    (result,) = await exporter_install.install_exporters(deps, options=InstallOptions(node_exporter_binary=text))
    assert not result.ok and "not a Linux executable" in result.detail
