"""What fleet operations learn about servers is stored in batches (one
transaction for many servers), on the rows as they are when stored, soon
after each result and in full when the operation ends or is cancelled."""

import asyncio

import attrs
import pytest

from dc_overview import errors, exporter_install, fleet_check, inventory, settings
from dc_overview.domain import ServerStatus
from dc_overview.worker_session import ContactLog, pin_host_key
from tests.fakes import FakeStorage, FakeWorker, fake_deps, fake_elf
from tests.unit.test_fleet_check import FAST, add_fleet, deps, ssh  # noqa: F401 (fixtures)


def stored(deps):
    return {s.name: s for s in deps.storage.list_servers()}


async def test_a_check_of_many_servers_stores_them_in_one_batch(deps, ssh):
    await add_fleet(deps, ssh, [FakeWorker(f"10.0.{i // 200}.{i % 200 + 1}", gpu_smi=1) for i in range(120)]
                    + [FakeWorker("10.9.9.9", down=True)])
    before = deps.storage.transactions
    results = await fleet_check.check(deps, retry=FAST)

    assert len(results) == 121
    # one batch: the contacts and the host keys pinned on first use, 121 servers in one write
    assert deps.storage.batch_updates == [121]
    assert deps.storage.transactions - before < 5
    servers = stored(deps)
    assert all(s.status == ServerStatus.ONLINE and s.host_key and s.gpu_count == 1
               for name, s in servers.items() if name != "gpu-121")
    assert servers["gpu-121"].status == ServerStatus.OFFLINE and servers["gpu-121"].host_key is None


async def test_edits_made_during_a_check_are_kept_and_removed_servers_stay_removed(deps, ssh):
    await add_fleet(deps, ssh, [FakeWorker("10.0.0.1", connect_delay=0.2), FakeWorker("10.0.0.2", connect_delay=0.2),
                                FakeWorker("10.0.0.3", connect_delay=0.2)])
    running = asyncio.create_task(fleet_check.check(deps, retry=FAST))
    await asyncio.sleep(0.05)  # connected to none yet
    await inventory.update_server(deps, "gpu-01", labels={"rack": "b7"}, bmc_ip="10.1.0.1")
    await inventory.remove_server(deps, "gpu-02")
    results = await running

    assert [r.result for r in results] == ["ok", "ok", "ok"]
    servers = stored(deps)
    assert set(servers) == {"gpu-01", "gpu-03"}
    assert dict(servers["gpu-01"].labels) == {"rack": "b7"} and servers["gpu-01"].bmc_ip == "10.1.0.1"
    assert servers["gpu-01"].status == ServerStatus.ONLINE and servers["gpu-01"].host_key


async def test_a_host_key_pinned_meanwhile_by_another_connection_is_not_replaced(deps, ssh):
    await add_fleet(deps, ssh, [FakeWorker("10.0.0.1")])
    async with asyncio.timeout(5):
        with ContactLog(deps) as log:
            server = stored(deps)["gpu-01"]
            log.pin(server, "ssh-ed25519 AAAAfirst")
            pin_host_key(deps, server, "ssh-ed25519 AAAAother")  # another operation's connection
    assert stored(deps)["gpu-01"].host_key == "ssh-ed25519 AAAAother"


async def test_results_are_stored_while_a_slow_host_keeps_the_check_running(deps, ssh):
    await add_fleet(deps, ssh, [FakeWorker("10.0.0.1"), FakeWorker("10.0.0.2", hang=True)])
    await settings.set_setting(deps, "ssh_command_timeout", 3)
    running = asyncio.create_task(fleet_check.check(deps, retry=FAST))
    try:
        await asyncio.sleep(1.0)  # gpu-01 is done; gpu-02 waits for its timeout
        assert not running.done()
        assert stored(deps)["gpu-01"].status == ServerStatus.ONLINE
        assert stored(deps)["gpu-02"].status == ServerStatus.UNKNOWN
    finally:
        running.cancel()


async def test_a_cancelled_check_keeps_the_servers_that_finished(deps, ssh):
    await add_fleet(deps, ssh, [FakeWorker("10.0.0.1"), FakeWorker("10.0.0.2", down=True),
                                FakeWorker("10.0.0.3", hang=True)])
    await settings.set_setting(deps, "ssh_command_timeout", 600)
    finished = []
    running = asyncio.create_task(fleet_check.check(
        deps, retry=FAST, progress=lambda r, done, total: finished.append(r.name)))
    while len(finished) < 2:
        await asyncio.sleep(0.01)
    running.cancel()  # well within the batch interval: only the final store can have kept them
    with pytest.raises(asyncio.CancelledError):
        await running

    servers = stored(deps)
    assert servers["gpu-01"].status == ServerStatus.ONLINE and servers["gpu-01"].host_key
    assert servers["gpu-02"].status == ServerStatus.OFFLINE
    assert servers["gpu-03"].status == ServerStatus.UNKNOWN


async def test_install_results_are_stored_in_one_batch_too(deps, ssh, tmp_path):
    await add_fleet(deps, ssh, [FakeWorker(f"10.0.0.{i}") for i in range(1, 6)])
    binary = tmp_path / "node_exporter"
    binary.write_bytes(fake_elf())
    deps = attrs.evolve(deps, local=None)
    options = exporter_install.InstallOptions(node_exporter_binary=binary, gpu_exporter=False)
    await exporter_install.install_exporters(deps, options=options, retry=FAST)
    assert deps.storage.batch_updates == [5]
    assert all(s.exporter("node_exporter").installed for s in stored(deps).values())


class FailingOnce(FakeStorage):
    def __init__(self, data_dir) -> None:  # type: ignore[no-untyped-def]
        super().__init__(data_dir)
        self.fail = False

    def update_servers(self, servers) -> None:  # type: ignore[no-untyped-def]
        if self.fail:
            self.fail = False
            raise errors.StorageError("database is locked", "try again")
        super().update_servers(servers)


async def test_a_batch_that_cannot_be_stored_is_kept_for_the_next_try(tmp_path):
    deps = fake_deps(storage=FailingOnce(tmp_path))
    first = await inventory.add_server(deps, "gpu-01", "10.0.0.1")
    second = await inventory.add_server(deps, "gpu-02", "10.0.0.2")
    log = ContactLog(deps, interval=0.01)
    log.record(first, status=ServerStatus.ONLINE, seen=None)
    deps.storage.fail = True
    with pytest.raises(errors.StorageError):
        log.flush()
    log.record(second, status=ServerStatus.OFFLINE, seen=None)
    log.flush()
    assert stored(deps)["gpu-01"].status == ServerStatus.ONLINE
    assert stored(deps)["gpu-02"].status == ServerStatus.OFFLINE
