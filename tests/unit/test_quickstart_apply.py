"""Quickstart's use cases over fakes of every port: the plan refuses before
anything changes, the apply is idempotent, a dead worker stays its own
problem, and no password is ever in the report unless asked for."""

import copy

import pytest

from dc_overview import errors
from dc_overview.exporter_units import GPU_SPEC, NODE_SPEC
from dc_overview.ports import IpmiKey, IpmiMonitorData, IpmiServer
from dc_overview.quickstart import run_quickstart, QuickstartProgress
from dc_overview.quickstart_answers import ANSWERS_FILE
from dc_overview.quickstart_answers_file import answers_from_mapping, parse_answers
from dc_overview.quickstart_plan import plan_quickstart
from dc_overview.quickstart_steps import ADMIN_PASSWORD_SECRET, DOCKER_INSTALL
from dc_overview.passwords import ScryptHasher
from dc_overview.stack import GRAFANA_PASSWORD, VASTAI_KEY, StackOptions
from tests.fakes import (
    FakeAccountStore, FakeHostProbe, FakeIpmiSource, FakeLocalHost, FakePrometheusControl, FakeProxyRegistry,
    DiskFakeStorage, FakeRuntime, FakeSecretStore, FakeSsh, FakeWorker, RecordingLocalHost, fake_deps, fake_elf,
)

CHEAP = ScryptHasher(n=2**10, r=8, p=1)  # real scrypt, at a cost that keeps these tests quick
DEFAULTS = StackOptions()
IMAGES = {getattr(DEFAULTS, f): f"sha256:{f}-1" for f in
          ("app_image", "prometheus_image", "grafana_image", "proxy_image", "watchtower_image",
           "vastai_exporter_image")}


@pytest.fixture
def node_binary(tmp_path):
    path = tmp_path / "node_exporter"
    path.write_bytes(fake_elf("x86_64", "1.5.0"))
    return path


@pytest.fixture
def ssh():
    return FakeSsh([FakeWorker("10.0.0.11"), FakeWorker("10.0.0.12")])


@pytest.fixture
def deps(tmp_path, ssh):
    data = tmp_path / "data"
    data.mkdir()
    return fake_deps(data, storage=DiskFakeStorage(data), runtime=FakeRuntime(images=IMAGES), proxy=FakeProxyRegistry(),
                     prometheus=FakePrometheusControl(), secrets=FakeSecretStore(), accounts=FakeAccountStore(),
                     passwords=CHEAP,
                     host=FakeHostProbe(), ssh=ssh, local=FakeLocalHost(FakeWorker("localhost")))


def master(node_binary, **more):
    data = {"role": "master", "ssh_key": {"name": "fleet", "generate": True},
            "workers": [{"address": "10.0.0.11", "name": "gpu-01"}, {"address": "10.0.0.12", "name": "gpu-02"}],
            "exporters": {"node_exporter_binary": str(node_binary)}}
    data.update(more)
    return answers_from_mapping(data)


def snapshot(deps):
    storage = deps.storage
    return copy.deepcopy((storage.servers, storage.keys, storage.settings, storage.files, storage.private_keys,
                          deps.secrets.values, deps.accounts.users, deps.runtime.infos))


async def test_a_master_is_set_up_from_answers(deps, node_binary, ssh):
    steps = []
    report = await run_quickstart(deps, master(node_binary), progress=QuickstartProgress(step=steps.append))
    assert report.changed and not report.failed
    assert [s.step for s in steps] == ["ssh key", "settings", "workers", "secrets", "web admin", "stack options",
                                       "stack", "worker exporters", "answers"]
    assert {s.step for s in steps if s.result == "unchanged"} == {"settings", "stack options"}  # the defaults
    assert deps.storage.load_settings()["default_ssh_key"] == "fleet"
    assert [s.name for s in deps.storage.list_servers()] == ["gpu-01", "gpu-02"]
    assert all(s.ssh_key == "fleet" for s in deps.storage.list_servers())
    assert sorted(deps.runtime.infos) == ["cryptolabs-proxy", "dc-overview", "grafana", "prometheus"]
    assert [(r.name, r.result) for r in report.workers] == [("gpu-01", "changed"), ("gpu-02", "changed")]
    assert all(NODE_SPEC.binary in w.files for w in ssh.workers.values())
    assert deps.accounts.get_user("admin").is_admin
    assert ANSWERS_FILE in deps.storage.files
    assert report.public_key and report.public_key.startswith("ssh-ed25519 ")
    assert ("Grafana", "https://192.0.2.10/grafana/") in report.urls


async def test_a_second_run_with_the_same_answers_changes_nothing_and_says_so(deps, node_binary):
    answers = master(node_binary)
    await run_quickstart(deps, answers)
    deps.runtime.changes()
    before = snapshot(deps)
    again = await run_quickstart(deps, answers)
    assert not again.changed, [s for s in again.steps if s.result != "unchanged"]
    assert {s.result for s in again.steps} == {"unchanged"}
    assert [c for c in deps.runtime.changes() if c[0] != "exec"] == []
    after = snapshot(deps)
    assert after[:4] == before[:4] or _same_but_contact(before, after)
    assert after[4:] == before[4:]
    assert again.public_key is None  # made on the first run only


def _same_but_contact(before, after) -> bool:
    """Servers differ only in when they were last seen."""
    strip = lambda servers: {k: (v.name, v.address, v.ssh_key, dict(v.exporters)) for k, v in servers.items()}  # noqa: E731
    return strip(before[0]) == strip(after[0]) and before[1:4] == after[1:4]


async def test_the_kept_answers_run_again_unattended_unchanged(deps, node_binary):
    await run_quickstart(deps, master(node_binary, vastai={"api_key": "vast-123"}))
    kept = parse_answers(deps.storage.files[ANSWERS_FILE], check_paths=False)
    assert kept.ssh_key.generate is False and kept.vastai.enabled is True and kept.vastai.api_key is None
    again = await run_quickstart(deps, kept)
    assert not again.changed
    assert "vastai-exporter" in deps.runtime.infos


async def test_docker_absent_is_a_clear_error_and_nothing_changes(deps, node_binary):
    deps.runtime.down = True
    deps.host.docker = False
    before = snapshot(deps)
    with pytest.raises(errors.DockerMissing) as info:
        await run_quickstart(deps, master(node_binary))
    assert "it is not installed; nothing was changed" in str(info.value)
    assert "apt-get install docker.io" in info.value.hint
    assert snapshot(deps) == before


async def test_docker_installed_but_stopped_says_why(deps, node_binary):
    deps.runtime.down = True
    with pytest.raises(errors.DockerMissing, match="it does not answer .*no Docker engine here"):
        await run_quickstart(deps, master(node_binary))


async def test_docker_is_installed_when_the_answers_say_so(deps, node_binary):
    deps.runtime.down = True

    def engine_appears(command: str) -> None:
        if command == DOCKER_INSTALL:
            deps.runtime.down = False

    runner = RecordingLocalHost(on_run=engine_appears)
    deps = type(deps)(**{**_fields(deps), "local": runner})
    report = await run_quickstart(deps, master(node_binary, docker={"install": True}))
    assert report.steps[0].step == "docker" and report.steps[0].result == "changed"
    assert runner.commands[:2] == [DOCKER_INSTALL, "systemctl enable --now docker 2>/dev/null || service docker start"]
    assert "prometheus" in deps.runtime.infos


def _fields(deps):
    return {a.name: getattr(deps, a.name) for a in deps.__attrs_attrs__}


async def test_a_failed_docker_install_says_what_apt_get_said(deps, node_binary):
    deps.runtime.down = True
    runner = RecordingLocalHost({DOCKER_INSTALL: (100, "", "E: Unable to locate package docker.io\n")})
    deps = type(deps)(**{**_fields(deps), "local": runner})
    with pytest.raises(errors.DockerMissing, match="apt-get exit 100: E: Unable to locate package docker.io"):
        await run_quickstart(deps, master(node_binary, docker={"install": True}))


async def test_an_unreachable_worker_is_reported_and_the_others_proceed(deps, node_binary, ssh):
    ssh.workers["10.0.0.12"].down = True
    answers = master(node_binary, workers=[{"address": "10.0.0.11"}, {"address": "10.0.0.12"},
                                           {"address": "10.0.0.13"}])
    report = await run_quickstart(deps, answers)
    assert [(r.name, r.ok, r.result) for r in report.workers] == [
        ("10.0.0.11", True, "changed"), ("10.0.0.12", False, "unreachable"), ("10.0.0.13", False, "unreachable")]
    step = next(s for s in report.steps if s.step == "worker exporters")
    assert step.result == "failed" and step.detail.startswith("2 of 3 failed: 10.0.0.12 (unreachable)")
    assert report.failed and NODE_SPEC.binary in ssh.workers["10.0.0.11"].files
    assert next(s for s in report.steps if s.step == "stack").result == "changed"  # the rest went on


async def test_bad_answers_are_refused_before_anything_changes(deps, node_binary, tmp_path):
    not_a_key = tmp_path / "id_rsa"
    not_a_key.write_text("hello\n")
    answers = answers_from_mapping({
        "role": "master", "ssh_key": {"name": "fleet", "path": str(not_a_key)},
        "workers": [{"address": "10.0.0.11", "key": "other"}],
        "vastai": {"enabled": True},
    })
    before = snapshot(deps)
    with pytest.raises(errors.AnswersInvalid) as info:
        await run_quickstart(deps, answers)
    fields = [field for _, field, _ in info.value.problems]
    assert fields == ["ssh_key.path", "workers[0].key", "vastai.enabled"]
    assert "vastai.enabled: needs the Vast.ai API key: give vastai.api_key" in info.value.details()
    assert snapshot(deps) == before


async def test_a_key_file_whose_name_is_taken_by_another_key_is_refused(deps, tmp_path):
    from dc_overview.keys import generate_key

    await generate_key(deps, "fleet")
    other = tmp_path / "other_key"
    other.write_text("FAKE-PRIVATE another")
    with pytest.raises(errors.AnswersInvalid) as info:
        await plan_quickstart(deps, answers_from_mapping({"ssh_key": {"path": str(other)}}))
    ((where, field, message),) = info.value.problems
    assert (where, field) == ("answers", "ssh_key.name")
    assert message.startswith("the fleet has another key named 'fleet' (SHA256:")
    assert message.endswith("(give this one another name)")


async def test_a_worker_installs_its_own_exporters_and_nothing_else(deps, node_binary):
    answers = answers_from_mapping({"role": "worker", "exporters": {"node_exporter_binary": str(node_binary)}})
    report = await run_quickstart(deps, answers)
    assert [s.step for s in report.steps] == ["exporters here", "answers"]
    assert report.local.result == "changed" and report.urls == ()
    assert deps.storage.list_servers() == [] and deps.runtime.infos == {}
    assert "on the master" in report.next_commands[0]
    again = await run_quickstart(deps, answers)
    assert not again.changed


async def test_both_roles_add_this_host_to_the_fleet_with_its_exporters(deps, node_binary):
    answers = answers_from_mapping({"role": "both", "exporters": {"node_exporter_binary": str(node_binary),
                                                                  "gpu_simulate": 2}})
    report = await run_quickstart(deps, answers)
    (me,) = deps.storage.list_servers()
    assert (me.name, me.address) == ("master-01", "192.0.2.10")
    assert me.exporter("node_exporter").installed and me.exporter("gpu_exporter").installed
    assert GPU_SPEC.binary in deps.local.worker.files
    assert not report.failed and report.workers == ()  # this host is not reached over SSH


async def test_ipmi_monitor_servers_are_imported_and_get_exporters(deps, node_binary, ssh, tmp_path):
    db = tmp_path / "ipmi_events.db"
    deps = type(deps)(**{**_fields(deps), "ipmi_monitor": FakeIpmiSource({db: IpmiMonitorData(
        str(db), (IpmiServer("node 7", "10.1.0.7", "10.0.0.12", "root", 22, 1),),
        (IpmiKey(1, "ipmi key", "FAKE-PRIVATE ipmi"),))}, where=[db])})
    answers = answers_from_mapping({"role": "master", "exporters": {"node_exporter_binary": str(node_binary)}})
    report = await run_quickstart(deps, answers)
    step = next(s for s in report.steps if s.step == "ipmi-monitor import")
    assert step.result == "changed" and "added 1 server(s)" in step.detail
    assert [(r.name, r.result) for r in report.workers] == [("node-7", "changed")]


async def test_passwords_are_only_in_the_report_when_asked_for(deps, node_binary):
    hidden = await run_quickstart(deps, master(node_binary))
    assert all(c.value is None for c in hidden.credentials)
    generated = deps.secrets.values[ADMIN_PASSWORD_SECRET]
    assert generated not in repr(hidden) and deps.secrets.values[GRAFANA_PASSWORD] not in repr(hidden)
    shown = await run_quickstart(deps, master(node_binary), show_passwords=True)
    values = {c.what.split(" ")[0]: c.value for c in shown.credentials}
    assert values["web"] == generated and values["Grafana"] == deps.secrets.values[GRAFANA_PASSWORD]


async def test_given_passwords_and_keys_are_stored_and_not_regenerated(deps, node_binary):
    answers = master(node_binary, grafana={"admin_password": "grafana-pass-1"}, admin={"password": "long-enough-1"},
                     vastai={"api_key": "vast-123"})
    report = await run_quickstart(deps, answers)
    assert deps.secrets.values[GRAFANA_PASSWORD] == "grafana-pass-1" and deps.secrets.values[VASTAI_KEY] == "vast-123"
    assert ADMIN_PASSWORD_SECRET not in deps.secrets.values
    assert "vastai-exporter" in deps.runtime.infos
    assert "job_name: vastai" in deps.storage.files["stack/prometheus/prometheus.yml"]  # and it is scraped
    assert ("web UI (admin 'admin')", "the password you gave (kept only hashed)") in \
        [(c.what, c.where) for c in report.credentials]


async def test_a_worker_already_known_under_another_name_is_not_doubled(deps, node_binary):
    from dc_overview.inventory import add_server

    await add_server(deps, "old-name", "10.0.0.11")
    report = await run_quickstart(deps, master(node_binary))
    assert sorted(s.name for s in deps.storage.list_servers()) == ["gpu-02", "old-name"]
    assert {r.name for r in report.workers} == {"old-name", "gpu-02"}


async def test_workers_without_any_key_or_clashing_with_the_fleet_are_refused(deps, node_binary):
    from dc_overview.inventory import add_server

    await add_server(deps, "gpu-01", "10.0.0.11")
    await add_server(deps, "gpu-09", "10.0.0.19")
    answers = answers_from_mapping({"role": "master", "workers": [
        {"address": "10.0.0.12"},  # no key anywhere
        {"name": "gpu-01", "address": "10.0.0.19", "key": "fleet"},  # gpu-09's address under gpu-01's name
    ], "ssh_key": None})
    before = snapshot(deps)
    with pytest.raises(errors.AnswersInvalid) as info:
        await plan_quickstart(deps, answers)
    assert info.value.problems == [
        ("answers", "workers[0]", "no SSH key to log in to 10.0.0.12 with (give ssh_key (a path, or generate: yes) "
                                  "or this worker's key)"),
        ("answers", "workers[1].key", "the fleet has no SSH key named 'fleet'"),
        ("answers", "workers[1].address", "10.0.0.19 is the address of the fleet's server 'gpu-09', not of 'gpu-01'"),
    ]
    assert snapshot(deps) == before


async def test_this_hosts_name_taken_by_another_server_is_refused_not_taken_over(deps, node_binary):
    from dc_overview.inventory import add_server

    await add_server(deps, "master-01", "10.0.0.50")
    answers = answers_from_mapping({"role": "both", "exporters": {"node_exporter_binary": str(node_binary)}})
    with pytest.raises(errors.AnswersInvalid) as info:
        await plan_quickstart(deps, answers)
    (problem,) = info.value.problems
    assert problem[1] == "host.name" and "dc-overview servers update master-01 --address 192.0.2.10" in problem[2]
    assert deps.storage.get_server("master-01").address == "10.0.0.50"


async def test_workers_from_a_file_are_kept_by_name_so_the_file_may_go(deps, node_binary, tmp_path):
    listed = tmp_path / "workers.csv"
    listed.write_text("name,ip\ngpu-01,10.0.0.11\ngpu-02,10.0.0.12\n")
    answers = master(node_binary, workers=[], workers_file=str(listed))
    first = await run_quickstart(deps, answers)
    assert [(r.name, r.result) for r in first.workers] == [("gpu-01", "changed"), ("gpu-02", "changed")]
    listed.unlink()
    kept = parse_answers(deps.storage.files[ANSWERS_FILE], check_paths=False)
    assert kept.workers_file is None and [w.name for w in kept.workers] == ["gpu-01", "gpu-02"]
    again = await run_quickstart(deps, kept)
    assert not again.changed
