"""What apply writes for alerting and dashboards, and what it does about it:
the packaged alert rules (rewritten and Prometheus reloaded only when they
change), the dashboards (removed ones removed), Alertmanager's private
config and its service. Over the fakes; files also land in tmp_path."""

import os
import stat

import pytest
import yaml

from dc_overview import errors
from dc_overview.alerting import alert_rules
from dc_overview.stack import StackOptions
from dc_overview.stack_apply import apply_stack, render_stack_files
from dc_overview.stack_files import write_stack_files
from dc_overview.stack_options import set_stack_option
from dc_overview.stack_render import ALERT_RULES, ALERTMANAGER_YML, packaged_dashboards
from tests.fakes import (
    DiskFakeStorage, FakePrometheusControl, FakeProxyRegistry, FakeRuntime, FakeSecretStore, fake_deps,
)

DEFAULTS = StackOptions()
IMAGES = {getattr(DEFAULTS, f): f"sha256:{f}-1" for f in
          ("app_image", "prometheus_image", "grafana_image", "proxy_image", "alertmanager_image")}
DASHBOARDS = "stack/grafana/dashboards"


@pytest.fixture
def deps(tmp_path):
    return fake_deps(tmp_path, storage=DiskFakeStorage(tmp_path), runtime=FakeRuntime(images=IMAGES),
                     proxy=FakeProxyRegistry(), prometheus=FakePrometheusControl(), secrets=FakeSecretStore())


def actions(report) -> dict[str, str]:
    return {c.service: c.action for c in report.changes}


def written(deps) -> set[str]:
    """Files written through the storage port since the last call."""
    paths = set(deps.storage.files)
    deps.storage.files.clear()
    return paths


# -- alert rules ------------------------------------------------------------------------------


async def test_apply_writes_the_packaged_rules_where_prometheus_reads_them(deps):
    await apply_stack(deps)
    assert (deps.storage.data_dir / "prometheus" / "rules" / "dc-overview-alerts.yml").read_text() == alert_rules()
    prometheus = deps.runtime.specs["prometheus"]
    rules_mount = next(m for m in prometheus.mounts if m.target == "/etc/prometheus/rules")
    assert rules_mount.source == str(deps.storage.data_dir / "prometheus" / "rules")


async def test_unchanged_rules_are_left_alone_and_prometheus_not_reloaded(deps):
    await apply_stack(deps)
    rules = deps.storage.data_dir / ALERT_RULES
    before = rules.stat().st_mtime_ns
    written(deps)
    report = await apply_stack(deps)
    assert set(actions(report).values()) == {"unchanged"}
    assert deps.prometheus.reloads == []
    assert ALERT_RULES not in written(deps) and rules.stat().st_mtime_ns == before
    assert not [p for p in written(deps) if p.startswith("stack/")]  # nothing else rewritten either


async def test_rules_that_differ_from_the_package_are_rewritten_and_prometheus_reloaded(deps):
    """An upgrade: the rules on disk are the previous package's."""
    await apply_stack(deps)
    rules = deps.storage.data_dir / ALERT_RULES
    rules.write_text(alert_rules().replace("DCGM_FI_DEV_GPU_TEMP > 85", "DCGM_FI_DEV_GPU_TEMP > 90"))
    written(deps)
    report = await apply_stack(deps)
    assert actions(report)["prometheus"] == "reloaded"
    assert {k: v for k, v in actions(report).items() if k != "prometheus"} == {
        "grafana": "unchanged", "dc-overview": "unchanged", "cryptolabs-proxy": "unchanged"}
    assert deps.prometheus.reloads == ["http://127.0.0.1:9090/prometheus"]
    assert rules.read_text() == alert_rules()
    assert ALERT_RULES in written(deps)


async def test_rules_written_by_render_are_loaded_by_the_next_apply(deps):
    await apply_stack(deps)
    state = dict(deps.storage.settings["stack.applied"])
    state["prometheus"] = "digest of the rules the previous version applied"
    deps.storage.settings["stack.applied"] = state
    await render_stack_files(deps)  # the files are current now; Prometheus has not read them
    report = await apply_stack(deps)
    assert actions(report)["prometheus"] == "reloaded"
    await apply_stack(deps)  # and once only
    assert deps.prometheus.reloads == ["http://127.0.0.1:9090/prometheus"]


async def test_other_rule_files_beside_ours_are_kept(deps):
    own = deps.storage.data_dir / "prometheus" / "rules" / "site.yml"
    own.parent.mkdir(parents=True)
    own.write_text("groups: []\n")
    await apply_stack(deps)
    assert own.read_text() == "groups: []\n"


async def test_render_writes_the_rules_without_a_running_stack(deps):
    files = await render_stack_files(deps)
    assert files[ALERT_RULES] == alert_rules()
    assert (deps.storage.data_dir / ALERT_RULES).read_text() == alert_rules()
    assert deps.prometheus.reloads == [] and deps.runtime.calls == []


# -- dashboards -------------------------------------------------------------------------------


async def test_dashboards_are_copied_and_ones_no_longer_shipped_are_removed(deps):
    folder = deps.storage.data_dir / DASHBOARDS
    folder.mkdir(parents=True)
    (folder / "retired.json").write_text("{}")  # shipped by an earlier version
    (folder / "notes.txt").write_text("kept")  # not a dashboard
    await apply_stack(deps)
    assert {p.name for p in folder.glob("*.json")} == set(packaged_dashboards())
    assert (folder / "notes.txt").exists()
    for name, text in packaged_dashboards().items():
        assert (folder / name).read_text() == text


async def test_a_changed_dashboard_is_rewritten_without_recreating_grafana(deps):
    await apply_stack(deps)
    name = sorted(packaged_dashboards())[0]
    (deps.storage.data_dir / DASHBOARDS / name).write_text("{}")
    written(deps)
    report = await apply_stack(deps)
    assert set(actions(report).values()) == {"unchanged"}  # Grafana rescans the folder by itself
    assert written(deps) >= {f"{DASHBOARDS}/{name}"}
    assert (deps.storage.data_dir / DASHBOARDS / name).read_text() == packaged_dashboards()[name]


async def test_dashboards_are_left_alone_with_grafana_off(deps):
    await set_stack_option(deps, "grafana", "no")
    folder = deps.storage.data_dir / DASHBOARDS
    folder.mkdir(parents=True)
    (folder / "mine.json").write_text("{}")
    await apply_stack(deps)
    assert [p.name for p in folder.iterdir()] == ["mine.json"]


# -- Alertmanager -----------------------------------------------------------------------------


async def test_alertmanager_turned_on_is_created_and_prometheus_reloaded_to_send_to_it(deps):
    await apply_stack(deps)
    await set_stack_option(deps, "alertmanager", "yes")
    report = await apply_stack(deps)
    assert actions(report) == {"prometheus": "reloaded", "alertmanager": "created", "grafana": "unchanged",
                               "dc-overview": "unchanged", "cryptolabs-proxy": "unchanged"}
    prometheus_yml = yaml.safe_load((deps.storage.data_dir / "stack/prometheus/prometheus.yml").read_text())
    assert prometheus_yml["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    assert prometheus_yml["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    am = deps.runtime.specs["alertmanager"]
    assert am.run_as_owner_of == str(deps.storage.data_dir)
    assert "dc-overview-alertmanager-data" in deps.runtime.volumes
    config = next(m for m in am.mounts if m.target == "/etc/alertmanager/config")
    assert config.source == str(deps.storage.data_dir / "stack" / "alertmanager") and config.read_only

    await set_stack_option(deps, "alertmanager", "no")
    report = await apply_stack(deps)
    assert actions(report)["prometheus"] == "reloaded" and actions(report)["alertmanager"] == "removed"
    assert "alerting" not in yaml.safe_load((deps.storage.data_dir / "stack/prometheus/prometheus.yml").read_text())
    assert "dc-overview-alertmanager-data" in deps.runtime.volumes  # silences kept


async def test_alertmanagers_config_is_readable_by_its_owner_only(deps):
    await set_stack_option(deps, "alert_webhook_url", "https://hooks.example.net/T0/B1/secret-path")
    await set_stack_option(deps, "alertmanager", "yes")
    await apply_stack(deps)
    path = deps.storage.data_dir / ALERTMANAGER_YML
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "https://hooks.example.net/T0/B1/secret-path" in path.read_text()
    assert stat.S_IMODE((deps.storage.data_dir / "stack/prometheus/prometheus.yml").stat().st_mode) == 0o644


async def test_a_readable_alertmanager_config_left_by_hand_is_made_private_again(deps):
    await set_stack_option(deps, "alertmanager", "yes")
    await apply_stack(deps)
    path = deps.storage.data_dir / ALERTMANAGER_YML
    os.chmod(path, 0o644)
    written(deps)
    await apply_stack(deps)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and ALERTMANAGER_YML in written(deps)


async def test_changed_alert_routing_recreates_alertmanager_only(deps):
    await set_stack_option(deps, "alertmanager", "yes")
    await apply_stack(deps)
    await set_stack_option(deps, "alert_repeat_interval", "12h")
    report = await apply_stack(deps)
    assert {k: v for k, v in actions(report).items() if v != "unchanged"} == {"alertmanager": "recreated"}
    assert "repeat_interval: 12h" in (deps.storage.data_dir / ALERTMANAGER_YML).read_text()
    assert deps.prometheus.reloads == []


async def test_alert_secrets_reach_alertmanager_as_files_and_never_its_config(deps):
    deps.secrets.put("smtp_password", "SMTP-S3CRET")
    for name, value in [("alert_email_to", "ops@example.net"), ("alert_email_from", "dc@example.net"),
                        ("alert_smtp_smarthost", "smtp.example.net:587"), ("alert_smtp_username", "dc"),
                        ("alertmanager", "yes")]:
        await set_stack_option(deps, name, value)
    await apply_stack(deps)
    am = deps.runtime.specs["alertmanager"]
    assert [(f.path, f.content) for f in am.files] == [("/run/secrets/smtp_password", "SMTP-S3CRET")]
    text = (deps.storage.data_dir / ALERTMANAGER_YML).read_text()
    assert "smtp_auth_password_file: \"/run/secrets/smtp_password\"" in text and "SMTP-S3CRET" not in text
    on_disk = [p for p in deps.storage.data_dir.rglob("*") if p.is_file() and b"SMTP-S3CRET" in p.read_bytes()]
    assert on_disk == []


async def test_turning_alertmanager_on_with_routing_that_cannot_deliver_is_refused(deps):
    await set_stack_option(deps, "alert_email_to", "ops@example.net")  # stored: Alertmanager is off
    with pytest.raises(errors.InvalidStackOption) as caught:
        await set_stack_option(deps, "alertmanager", "yes")
    assert caught.value.field == "alert_smtp_smarthost"
    assert "stack.alertmanager" not in deps.storage.settings


# -- the writer itself ------------------------------------------------------------------------


def test_the_writer_reports_what_it_wrote_and_removed(tmp_path):
    deps = fake_deps(tmp_path, storage=DiskFakeStorage(tmp_path))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "old.json").write_text("{}")
    changed = write_stack_files(deps, {"d/a.json": "1", "p.yml": "x"}, private=frozenset({"p.yml"}),
                                pruned={"d": ".json"})
    assert changed == {"d/a.json", "p.yml", "d/old.json"}
    assert not (tmp_path / "d" / "old.json").exists()
    assert write_stack_files(deps, {"d/a.json": "1", "p.yml": "x"}, private=frozenset({"p.yml"}),
                             pruned={"d": ".json"}) == frozenset()
    assert write_stack_files(deps, {"d/a.json": "2", "p.yml": "x"}) == {"d/a.json", "p.yml"}  # p.yml: 0644 now
    assert stat.S_IMODE((tmp_path / "p.yml").stat().st_mode) == 0o644


@pytest.mark.skipif(os.geteuid() != 0, reason="only root writes into a data dir someone else owns")
def test_a_private_file_root_writes_goes_to_the_data_dirs_owner(tmp_path):
    """Alertmanager runs as the data dir's owner and must read its 0600 config."""
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 4321, 4321)
    deps = fake_deps(data, storage=DiskFakeStorage(data))
    write_stack_files(deps, {"am/alertmanager.yml": "x", "pub.yml": "y"}, private=frozenset({"am/alertmanager.yml"}))
    private = (data / "am" / "alertmanager.yml").stat()
    assert (private.st_uid, private.st_gid, stat.S_IMODE(private.st_mode)) == (4321, 4321, 0o600)
    assert (data / "pub.yml").stat().st_uid == 0  # readable by all anyway
