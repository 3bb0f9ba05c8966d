import pytest
import yaml

from dc_overview import errors, fleet_config, inventory, keys, settings
from dc_overview.domain import ExporterState, GPU_EXPORTER, Server
from dc_overview.targets import build_targets
from tests.fakes import fake_deps


@pytest.fixture
def deps():
    return fake_deps()


async def test_generate_add_list_remove_keys(deps):
    generated = await keys.generate_key(deps, "fleet")
    assert generated.fingerprint.startswith("SHA256:")
    added = await keys.add_key(deps, "old", "FAKE-PRIVATE imported")
    assert deps.storage.private_keys[added.private_key_path] == "FAKE-PRIVATE imported"
    assert [k.name for k in await keys.list_keys(deps)] == ["fleet", "old"]
    await keys.remove_key(deps, "old")
    assert added.private_key_path not in deps.storage.private_keys
    with pytest.raises(errors.KeyNotFound):
        await keys.remove_key(deps, "old")


async def test_bad_or_duplicate_key_leaves_nothing_behind(deps):
    with pytest.raises(errors.InvalidKey):
        await keys.add_key(deps, "bad", "-----BEGIN NOTHING-----")
    await keys.generate_key(deps, "fleet")
    with pytest.raises(errors.DuplicateKey):
        await keys.generate_key(deps, "fleet")
    assert len(deps.storage.private_keys) == 1
    with pytest.raises(errors.InvalidName):
        await keys.generate_key(deps, "../etc/passwd")


async def test_key_in_use_cannot_be_removed(deps):
    await keys.generate_key(deps, "fleet")
    await inventory.add_server(deps, "gpu-01", "10.0.0.1", ssh_key="fleet")
    with pytest.raises(errors.KeyInUse, match="gpu-01"):
        await keys.remove_key(deps, "fleet")


async def test_settings_get_set(deps):
    assert (await settings.get_settings(deps)).dc_port == 5001
    await settings.set_setting(deps, "dc_port", "5101")
    assert await settings.get_setting(deps, "dc_port") == 5101
    with pytest.raises(errors.InvalidSetting):
        await settings.set_setting(deps, "default_ssh_key", "missing")
    with pytest.raises(errors.InvalidSetting):
        await settings.get_setting(deps, "nope")


def test_targets_shape_and_gpu_rules():
    servers = [
        Server(name="b", address="10.0.0.2", gpu_count=0, labels={"rack": "r2"}),
        Server(name="a", address="2001:db8::1"),
        Server(name="c", address="10.0.0.3", exporters={GPU_EXPORTER: ExporterState(enabled=False)}),
        Server(name="d", address="10.0.0.4", gpu_count=0, exporters={GPU_EXPORTER: ExporterState(installed=True)}),
    ]
    groups = build_targets(servers)
    assert groups == [
        {"targets": ["[2001:db8::1]:9100"], "labels": {"job": "node", "server": "a", "exporter": "node_exporter"}},
        {"targets": ["[2001:db8::1]:9835"], "labels": {"job": "gpu", "server": "a", "exporter": "gpu_exporter"}},
        {"targets": ["10.0.0.2:9100"], "labels": {"rack": "r2", "job": "node", "server": "b", "exporter": "node_exporter"}},
        {"targets": ["10.0.0.3:9100"], "labels": {"job": "node", "server": "c", "exporter": "node_exporter"}},
        {"targets": ["10.0.0.4:9100"], "labels": {"job": "node", "server": "d", "exporter": "node_exporter"}},
        {"targets": ["10.0.0.4:9835"], "labels": {"job": "gpu", "server": "d", "exporter": "gpu_exporter"}},
    ]
    assert build_targets([]) == []


async def test_fleet_config_has_the_shape_ipmi_monitor_reads(deps):
    key = await keys.generate_key(deps, "fleet")
    await inventory.add_server(deps, "gpu-01", "10.0.0.1", ssh_key="fleet", bmc_ip="10.0.1.1")
    await inventory.add_server(deps, "gpu-02", "10.0.0.2", ssh_user="ubuntu", ssh_port=2222)
    doc = yaml.safe_load(await fleet_config.export_fleet_config(deps))
    assert doc["ssh"] == {"username": "root", "port": 22, "key_path": key.private_key_path}
    assert doc["servers"][0] == {
        "name": "gpu-01", "server_ip": "10.0.0.1", "bmc_ip": "10.0.1.1",
        "ssh_user": "root", "ssh_port": 22, "key_path": key.private_key_path,
    }
    assert doc["servers"][1]["ssh_user"] == "ubuntu" and "key_path" not in doc["servers"][1]
