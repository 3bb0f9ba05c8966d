"""``check`` over the fake SSH: per-host isolation, stored results, host-key
pinning and refusal, the concurrency bound, MaxStartups retries."""

import asyncio
import json

import pytest

from dc_overview import errors, fleet_check, inventory, keys, settings
from dc_overview.domain import ServerStatus
from dc_overview.targets import TARGETS_FILE
from dc_overview.worker_session import RetryPolicy, trust_host
from tests.fakes import FakeSsh, FakeWorker, fake_deps, fake_host_key

FAST = RetryPolicy(attempts=4, first_delay=0.001, max_delay=0.002)


@pytest.fixture
def ssh():
    return FakeSsh()


@pytest.fixture
def deps(ssh):
    return fake_deps(ssh=ssh)


async def add_fleet(deps, ssh, workers):
    key = await keys.generate_key(deps, "fleet")
    await settings.set_setting(deps, "default_ssh_key", "fleet")
    for i, worker in enumerate(workers, 1):
        ssh.add(worker)
        await inventory.add_server(deps, f"gpu-{i:02d}", worker.address)
    return key


async def test_each_host_gets_its_own_result_and_the_good_ones_are_stored(deps, ssh):
    key = await add_fleet(deps, ssh, [
        FakeWorker("10.0.0.1", gpu_smi=8, gpu_pci=8),
        FakeWorker("10.0.0.2", down=True),
        FakeWorker("10.0.0.3", authorized_keys={"/somewhere/else"}),
        FakeWorker("10.0.0.4", hang=True),
        FakeWorker("10.0.0.5", gpu_pci=2),  # no nvidia-smi: counted on the PCI bus
    ])
    await settings.set_setting(deps, "ssh_command_timeout", 0.05)
    results = await fleet_check.check(deps, retry=FAST)

    assert [(r.name, r.ok, r.result) for r in results] == [
        ("gpu-01", True, "ok"), ("gpu-02", False, "unreachable"), ("gpu-03", False, "auth_failed"),
        ("gpu-04", False, "timeout"), ("gpu-05", True, "ok"),
    ]
    assert "connection refused" in results[1].detail
    assert "refused the login" in results[2].detail
    assert "did not finish within 0.05s" in results[3].detail
    assert results[0].facts.gpu_count == 8 and results[0].facts.os.startswith("Debian")
    assert results[4].facts.gpu_source == "pci" and results[4].facts.gpu_count == 2

    stored = {s.name: s for s in deps.storage.list_servers()}
    assert stored["gpu-01"].status == ServerStatus.ONLINE and stored["gpu-01"].gpu_count == 8
    assert stored["gpu-01"].last_seen == deps.clock.now()
    assert stored["gpu-02"].status == ServerStatus.OFFLINE and stored["gpu-02"].last_seen is None
    assert stored["gpu-03"].status == ServerStatus.AUTH_FAILED
    assert stored["gpu-04"].status == ServerStatus.ERROR
    # The key used was the fleet's default key.
    assert {t.private_key_path for t in ssh.targets} == {key.private_key_path}
    # Prometheus targets were regenerated: a GPU target where GPUs were found, none where none were.
    await settings.set_setting(deps, "ssh_command_timeout", 5)
    ssh.workers["10.0.0.5"].gpu_pci = 0
    await fleet_check.check(deps, ["gpu-05"])
    targets = {t for g in json.loads(deps.storage.files[TARGETS_FILE]) for t in g["targets"]}
    assert "10.0.0.1:9835" in targets and "10.0.0.5:9100" in targets and "10.0.0.5:9835" not in targets


async def test_a_slow_host_does_not_hold_up_the_others(deps, ssh):
    await add_fleet(deps, ssh, [FakeWorker("10.0.0.1", connect_delay=0.3)] +
                    [FakeWorker(f"10.0.0.{i}") for i in range(2, 8)])
    await settings.set_setting(deps, "ssh_concurrency", 2)
    order = []
    results = await fleet_check.check(deps, progress=lambda r, done, total: order.append((r.name, done, total)))
    assert all(r.ok for r in results)
    assert order[-1] == ("gpu-01", 7, 7)  # finished last, while the others went through the other slot


async def test_at_most_ssh_concurrency_connections_at_once(deps, ssh):
    await add_fleet(deps, ssh, [FakeWorker(f"10.0.1.{i}", connect_delay=0.01) for i in range(1, 41)])
    await settings.set_setting(deps, "ssh_concurrency", 7)
    results = await fleet_check.check(deps)
    assert len(results) == 40 and all(r.ok for r in results)
    assert ssh.max_open == 7


async def test_logins_dropped_by_sshd_are_retried(deps, ssh):
    workers = [FakeWorker("10.0.0.1", drops=2), FakeWorker("10.0.0.2", drops=99)]
    await add_fleet(deps, ssh, workers)
    ok, dropped = await fleet_check.check(deps, retry=FAST)
    assert ok.ok and ok.attempts == 3 and workers[0].connects == 3
    assert not dropped.ok and dropped.result == "dropped" and workers[1].connects == FAST.attempts
    assert "4 attempts" in dropped.detail


async def test_host_key_is_pinned_on_first_use_and_a_changed_one_refused(deps, ssh):
    worker = FakeWorker("10.0.0.1")
    await add_fleet(deps, ssh, [worker])
    (first,) = await fleet_check.check(deps)
    assert first.ok
    assert deps.storage.get_server("gpu-01").host_key == worker.host_key

    worker.host_key = fake_host_key("reinstalled")
    (second,) = await fleet_check.check(deps)
    assert not second.ok and second.result == "host_key_changed"
    assert "dc-overview servers trust gpu-01" in second.detail
    assert deps.storage.get_server("gpu-01").status == ServerStatus.ERROR
    assert deps.storage.get_server("gpu-01").host_key != worker.host_key  # the old pin stays

    report = await trust_host(deps, "gpu-01")
    assert report.forgotten_fingerprint.startswith("SHA256:")
    assert deps.storage.get_server("gpu-01").host_key is None
    (third,) = await fleet_check.check(deps)
    assert third.ok and deps.storage.get_server("gpu-01").host_key == worker.host_key


async def test_named_servers_only_and_unknown_names_refused_up_front(deps, ssh):
    workers = [FakeWorker("10.0.0.1"), FakeWorker("10.0.0.2")]
    await add_fleet(deps, ssh, workers)
    results = await fleet_check.check(deps, ["gpu-02", "gpu-02"])
    assert [r.name for r in results] == ["gpu-02"] and workers[0].connects == 0
    with pytest.raises(errors.ServerNotFound):
        await fleet_check.check(deps, ["gpu-02", "nope"])
    assert workers[1].connects == 1  # nothing was done for the bad request


async def test_a_server_without_any_key_fails_alone_with_what_to_do(deps, ssh):
    ssh.add(FakeWorker("10.0.0.1"))
    await inventory.add_server(deps, "lonely", "10.0.0.1")
    (result,) = await fleet_check.check(deps)
    assert result.result == "no_key" and "default_ssh_key" in result.detail


async def test_an_installed_exporter_that_is_down_fails_the_host(deps, ssh):
    from dc_overview.exporter_units import NODE_SPEC

    worker = FakeWorker("10.0.0.1", files={NODE_SPEC.unit_path: b"unit", NODE_SPEC.binary: b"version=1.8.2"},
                        units={NODE_SPEC.unit: {"active": "failed", "enabled": "enabled"}})
    await add_fleet(deps, ssh, [worker])
    (result,) = await fleet_check.check(deps)
    assert not result.ok and result.result == "exporter_down"
    assert "node_exporter 1.8.2 DOWN (failed, not answering on :9100)" in result.detail
    stored = deps.storage.get_server("gpu-01").exporter("node_exporter")
    assert stored.installed and stored.version == "1.8.2"

    worker.units[NODE_SPEC.unit]["active"] = "active"
    (again,) = await fleet_check.check(deps)
    assert again.ok and "node_exporter 1.8.2 up" in again.detail


async def test_trust_of_an_unknown_server():
    deps = fake_deps()
    with pytest.raises(errors.ServerNotFound):
        await trust_host(deps, "nope")


async def test_no_ssh_configured_is_a_per_host_failure():
    deps = fake_deps()
    await inventory.add_server(deps, "gpu-01", "10.0.0.1")
    (result,) = await fleet_check.check(deps, password="x")
    assert not result.ok and "no SSH client" in result.detail


def test_retry_delays_grow_and_are_jittered():
    policy = RetryPolicy(attempts=6, first_delay=0.2, max_delay=1.0)
    for retry, base in ((1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (5, 1.0)):
        delays = {policy.delay(retry) for _ in range(50)}
        assert all(base / 2 <= d <= base for d in delays)
        assert len(delays) > 1


async def test_concurrent_checks_of_many_hosts_finish_together(deps, ssh):
    await add_fleet(deps, ssh, [FakeWorker(f"10.0.2.{i}", connect_delay=0.05) for i in range(1, 101)])
    started = asyncio.get_running_loop().time()
    results = await fleet_check.check(deps)
    assert len(results) == 100 and all(r.ok for r in results)
    print(f"\n100 fake hosts with 50 ms logins, concurrency 50: {asyncio.get_running_loop().time() - started:.2f}s")


# -- whether the exporters answer: asked through the connection -----------------------------


def exporter_worker(address: str, **changes) -> FakeWorker:
    """node_exporter installed and running (answers with metrics); the GPU
    exporter's port answers 404."""
    from dc_overview.exporter_units import GPU_SPEC, NODE_SPEC

    fields: dict = {"files": {NODE_SPEC.unit_path: b"unit", NODE_SPEC.binary: b"version=1.8.2"},
                    "units": {NODE_SPEC.unit: {"active": "active", "enabled": "enabled"}},
                    "http_replies": {GPU_SPEC.port: b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"}}
    return FakeWorker(address, **{**fields, **changes})


async def test_exporters_are_asked_through_the_connection_in_one_command(deps, ssh):
    worker = exporter_worker("10.0.0.1")
    await add_fleet(deps, ssh, [worker])
    (result,) = await fleet_check.check(deps)
    assert result.ok and "node_exporter 1.8.2 up" in result.detail
    assert [(e.name, e.answering) for e in result.facts.exporters] == [("node_exporter", "yes"), ("gpu_exporter", "bad")]
    assert "gpu_exporter not installed" in result.detail
    assert sorted(worker.forwards) == [9100, 9835] and worker.runs == ["sh -s"]


async def test_a_closed_port_and_a_silent_one_are_not_answering(deps, ssh):
    from dc_overview.exporter_units import NODE_SPEC

    silent = exporter_worker("10.0.0.1", http_replies={}, silent_ports={NODE_SPEC.port})
    closed = exporter_worker("10.0.0.2", http_replies={}, units={NODE_SPEC.unit: {"active": "active"}},
                             files={NODE_SPEC.unit_path: b"unit"})  # no binary: nothing listens
    await add_fleet(deps, ssh, [silent, closed])
    results = await fleet_check.check(deps)
    for result in results:
        assert [e.answering for e in result.facts.exporters] == ["no", "no"]
        assert not result.ok and "node_exporter" in result.detail and "not answering on :9100" in result.detail


async def test_without_forwarding_a_second_small_command_asks_and_the_answer_is_the_same(deps, ssh):
    forwarding = exporter_worker("10.0.0.1")
    refused = exporter_worker("10.0.0.2", tcp_forwarding=False)
    await add_fleet(deps, ssh, [forwarding, refused])
    first, second = await fleet_check.check(deps)
    assert [e.answering for e in second.facts.exporters] == [e.answering for e in first.facts.exporters] == [
        "yes", "bad"]
    assert second.ok and second.detail == first.detail.replace("10.0.0.1", "10.0.0.2")
    assert forwarding.runs == ["sh -s"] and refused.runs == ["sh -s", "sh -s"]
