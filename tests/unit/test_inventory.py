import json

import pytest

from dc_overview import errors, inventory, keys, settings
from dc_overview.targets import TARGETS_FILE
from tests.fakes import fake_deps


@pytest.fixture
def deps():
    return fake_deps()


async def test_add_list_show_remove(deps):
    added = await inventory.add_server(deps, "gpu-01", "10.0.0.1", bmc_ip="10.0.1.1", labels={"rack": "a"})
    assert added.id is not None and added.bmc_ip == "10.0.1.1"
    assert [s.name for s in await inventory.list_servers(deps)] == ["gpu-01"]
    assert (await inventory.show_server(deps, "gpu-01")).labels == {"rack": "a"}
    await inventory.remove_server(deps, "gpu-01")
    assert await inventory.list_servers(deps) == []
    with pytest.raises(errors.ServerNotFound, match="servers list"):
        await inventory.show_server(deps, "gpu-01")


async def test_targets_file_follows_every_change(deps):
    await inventory.add_server(deps, "gpu-01", "10.0.0.1")
    written = json.loads(deps.storage.files[TARGETS_FILE])
    assert [g["targets"] for g in written] == [["10.0.0.1:9100"], ["10.0.0.1:9835"]]
    await inventory.update_server(deps, "gpu-01", address="10.0.0.9")
    assert "10.0.0.9:9100" in deps.storage.files[TARGETS_FILE]
    await inventory.remove_server(deps, "gpu-01")
    assert json.loads(deps.storage.files[TARGETS_FILE]) == []


async def test_duplicates_are_refused(deps):
    await inventory.add_server(deps, "gpu-01", "10.0.0.1")
    with pytest.raises(errors.DuplicateServer) as info:
        await inventory.add_server(deps, "gpu-01", "10.0.0.2")
    assert info.value.field == "name"
    with pytest.raises(errors.DuplicateServer) as info:
        await inventory.add_server(deps, "gpu-02", "10.0.0.1")
    assert info.value.field == "address"
    assert len(await inventory.list_servers(deps)) == 1


async def test_defaults_come_from_settings(deps):
    await keys.generate_key(deps, "fleet")
    await settings.set_setting(deps, "default_ssh_user", "ops")
    await settings.set_setting(deps, "default_ssh_key", "fleet")
    server = await inventory.add_server(deps, "gpu-01", "10.0.0.1")
    assert (server.ssh_user, server.ssh_key) == ("ops", "fleet")


async def test_unknown_key_is_refused(deps):
    with pytest.raises(errors.InvalidInput) as info:
        await inventory.add_server(deps, "gpu-01", "10.0.0.1", ssh_key="nokey")
    assert info.value.field == "ssh_key"


async def test_update_checks_fields_and_forgets_host_key_on_move(deps):
    import attrs
    server = await inventory.add_server(deps, "gpu-01", "10.0.0.1")
    deps.storage.update_server(attrs.evolve(server, host_key="ssh-ed25519 AAAA"))
    renamed = await inventory.update_server(deps, "gpu-01", name="gpu-one", ssh_port=2222)
    assert (renamed.name, renamed.ssh_port, renamed.host_key) == ("gpu-one", 2222, "ssh-ed25519 AAAA")
    moved = await inventory.update_server(deps, "gpu-one", address="10.0.0.2")
    assert moved.host_key is None
    with pytest.raises(errors.InvalidInput) as info:
        await inventory.update_server(deps, "gpu-one", status="online")
    assert info.value.field == "status"
    with pytest.raises(errors.InvalidPort):
        await inventory.update_server(deps, "gpu-one", ssh_port=0)


async def test_import_is_all_or_nothing(deps):
    await inventory.add_server(deps, "taken", "10.0.0.50")
    text = "gpu-01,10.0.0.1\ngpu-02,10.0.0.50\n"
    with pytest.raises(errors.ImportProblem) as info:
        await inventory.import_servers(deps, text, source="f.csv")
    assert info.value.problems[0][:2] == ("f.csv line 2", "address")
    assert [s.name for s in await inventory.list_servers(deps)] == ["taken"]


async def test_import_again_changes_nothing(deps):
    text = "gpu-01,10.0.0.1\ngpu-02,10.0.0.2\ngpu-03,10.0.0.3\n"
    first = await inventory.import_servers(deps, text)
    assert len(first.added) == 3
    second = await inventory.import_servers(deps, text)
    assert second.added == () and second.unchanged == ("gpu-01", "gpu-02", "gpu-03")
    assert len(await inventory.list_servers(deps)) == 3
