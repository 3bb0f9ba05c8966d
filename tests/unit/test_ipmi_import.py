from pathlib import Path

import pytest

from dc_overview import errors, inventory, ipmi_import, keys
from dc_overview.ports import IpmiKey, IpmiMonitorData, IpmiServer
from tests.fakes import FakeIpmiSource, fake_deps

DB = Path("/etc/ipmi-monitor/data/ipmi_events.db")


def source(servers, key_list=()):
    return FakeIpmiSource({DB: IpmiMonitorData(str(DB), tuple(servers), tuple(key_list))}, where=[DB])


def srv(name, bmc, ip, key_id=None, **kw):
    return IpmiServer(name=name, bmc_ip=bmc, server_ip=ip, ssh_user=kw.get("user"), ssh_port=kw.get("port"),
                      ssh_key_id=key_id, inline_key=kw.get("inline"), status=kw.get("status", "active"))


async def test_imports_servers_by_os_address_and_keys():
    deps = fake_deps(ipmi_monitor=source(
        [srv("gpu 01", "10.1.0.1", "10.0.0.1", key_id=7, user="ubuntu", port=2222),
         srv("gpu-02", "10.1.0.2", "10.0.0.2", inline="FAKE-PRIVATE inline")],
        [IpmiKey(7, "Fleet Key", "FAKE-PRIVATE seven")],
    ))
    report = await ipmi_import.import_ipmi_monitor(deps, DB)
    servers = {s.name: s for s in await inventory.list_servers(deps)}
    assert servers["gpu-01"].address == "10.0.0.1" and servers["gpu-01"].bmc_ip == "10.1.0.1"
    assert (servers["gpu-01"].ssh_user, servers["gpu-01"].ssh_port, servers["gpu-01"].ssh_key) == ("ubuntu", 2222, "Fleet-Key")
    assert servers["gpu-02"].ssh_key == "gpu-02-key"
    assert report.keys_added == ("Fleet-Key", "gpu-02-key")
    again = await ipmi_import.import_ipmi_monitor(deps, DB)
    assert again.added == () and set(again.unchanged) == {"gpu-01", "gpu-02"}
    assert set(again.keys_unchanged) == {"Fleet-Key", "gpu-02-key"}
    assert len(await keys.list_keys(deps)) == 2


async def test_skips_what_cannot_be_monitored_and_reports_it():
    deps = fake_deps(ipmi_monitor=source([
        srv("no-os", "10.1.0.3", None),
        srv("old", "10.1.0.4", "10.0.0.4", status="deprecated"),
    ]))
    report = await ipmi_import.import_ipmi_monitor(deps)
    assert report.added == ()
    assert [what for what, _ in report.skipped] == ["no-os", "old"]
    assert "server_ip" in report.skipped[0][1]


async def test_a_bad_key_imports_nothing():
    deps = fake_deps(ipmi_monitor=source([srv("gpu-01", "10.1.0.1", "10.0.0.1", key_id=1)],
                                         [IpmiKey(1, "ok", "FAKE-PRIVATE a"), IpmiKey(2, "broken", "garbage")]))
    with pytest.raises(errors.ImportProblem, match="ssh_key id 2"):
        await ipmi_import.import_ipmi_monitor(deps, DB)
    assert await inventory.list_servers(deps) == [] and await keys.list_keys(deps) == []
    assert deps.storage.private_keys == {}


async def test_name_clash_is_reported_not_doubled():
    deps = fake_deps(ipmi_monitor=source([srv("gpu-01", "10.1.0.1", "10.0.0.1")]))
    await inventory.add_server(deps, "gpu-01", "10.0.0.99")
    report = await ipmi_import.import_ipmi_monitor(deps, DB)
    assert report.added == () and "taken" in report.skipped[0][1]


async def test_not_found_lists_where_it_looked():
    deps = fake_deps(ipmi_monitor=FakeIpmiSource(where=[Path("/nowhere/ipmi_events.db")]))
    with pytest.raises(errors.IpmiMonitorNotFound, match="/nowhere/ipmi_events.db"):
        await ipmi_import.import_ipmi_monitor(deps)
