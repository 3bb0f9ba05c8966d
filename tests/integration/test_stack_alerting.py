"""Alerting in the stack on a real Docker engine: after apply, the real
Prometheus has loaded the packaged dc-overview alert rules from the file the
stack wrote, sends to the stack's real Alertmanager (listed as active, and a
firing alert arrives there), reloads when the rules on disk are not the
package's (an upgrade) and is left alone when they are; Alertmanager runs on
its 0600 config, is recreated when the routing changes and removed (with
Prometheus told) when turned off.

Images: scripts/build-stack-images (Debian's prometheus and
prometheus-alertmanager stand in for prom/prometheus and prom/alertmanager).
"""

from __future__ import annotations

import json
import stat

import pytest
import yaml

from dc_overview.alerting import alert_rules
from tests.support.stack_lab import (
    NGINX_IMAGE, PROMETHEUS_IMAGE, container_state, docker, free_port, http, need_images, stack_lab, wait_until,
)

pytestmark = pytest.mark.integration

RULES_IN_CONTAINER = "/etc/prometheus/rules/dc-overview-alerts.yml"
OUR_GROUPS = sorted(group["name"] for group in yaml.safe_load(alert_rules())["groups"])
OUR_ALERTS = {rule["alert"] for group in yaml.safe_load(alert_rules())["groups"] for rule in group["rules"]}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):  # type: ignore[no-untyped-def]
    need_images(PROMETHEUS_IMAGE, NGINX_IMAGE)
    with stack_lab(tmp_path_factory.mktemp("alerting") / "data", alertmanager="yes",
                   alertmanager_local_port=free_port()) as lab:
        report, _ = lab.apply()
        assert [(c.service, c.action) for c in report.changes] == [
            ("prometheus", "created"), ("alertmanager", "created"), ("cryptolabs-proxy", "created")]
        lab.alertmanager = f"http://127.0.0.1:{lab.fleet.stack_options().alertmanager_local_port}"
        yield lab


def api(base: str, path: str) -> dict:
    status, _, body = http(f"{base}{path}")
    if status != 200:
        raise ValueError(f"{path}: HTTP {status}: {body[:200]!r}")
    return json.loads(body)


def rule_groups(lab) -> list[dict]:
    return api(lab.prometheus, "/api/v1/rules")["data"]["groups"]


def active_alertmanagers(lab) -> list[str]:
    return [a["url"] for a in api(lab.prometheus, "/api/v1/alertmanagers")["data"]["activeAlertmanagers"]]


def test_prometheus_has_loaded_the_dc_overview_alert_rules(lab):
    ours = [g for g in rule_groups(lab) if g["file"] == RULES_IN_CONTAINER]
    assert sorted(g["name"] for g in ours) == OUR_GROUPS
    assert {r["name"] for g in ours for r in g["rules"] if r["type"] == "alerting"} == OUR_ALERTS
    # the file Prometheus reads is the one the stack wrote from the package
    inside = docker("exec", f"{lab.prefix}prometheus", "cat", RULES_IN_CONTAINER).stdout
    assert inside == alert_rules() == (lab.data / "prometheus" / "rules" / "dc-overview-alerts.yml").read_text()
    evaluated = wait_until(lambda: [r for g in rule_groups(lab) if g["file"] == RULES_IN_CONTAINER
                                    for r in g["rules"] if not r["lastEvaluation"].startswith("0001")], 30,
                           "the rules evaluated")
    assert {r["health"] for r in evaluated} == {"ok"}, [r.get("lastError") for r in evaluated]


def test_prometheus_lists_the_stacks_alertmanager_as_active(lab):
    urls = wait_until(lambda: active_alertmanagers(lab), 30, "an active Alertmanager")
    assert urls == ["http://alertmanager:9093/api/v2/alerts"]
    assert container_state(f"{lab.prefix}alertmanager") == ("running", "healthy")
    assert api(lab.alertmanager, "/api/v2/status")["cluster"]["status"] == "disabled"


def test_a_firing_alert_reaches_alertmanager(lab):
    site_rules = lab.data / "prometheus" / "rules" / "site-test.yml"  # a rule file of the operator's own
    # firing after 10 s: a reload re-discovers the Alertmanagers (a few seconds), and an alert that fires
    # before they are known is only sent again after Prometheus' resend delay (1 minute)
    site_rules.write_text(yaml.safe_dump({"groups": [{"name": "site", "interval": "1s", "rules": [
        {"alert": "StackAlertingTest", "expr": "vector(1)", "for": "10s",
         "labels": {"severity": "warning", "server": "lab"}}]}]}))
    try:
        lab.fleet.reload_prometheus()
        received = wait_until(
            lambda: [a for a in api(lab.alertmanager, "/api/v2/alerts") if a["labels"]["alertname"] == "StackAlertingTest"],
            60, "the alert in Alertmanager")
        assert received[0]["labels"]["server"] == "lab" and received[0]["status"]["state"] == "active"
        # our rules are still there beside the operator's
        assert {g["file"] for g in rule_groups(lab)} == {RULES_IN_CONTAINER, "/etc/prometheus/rules/site-test.yml"}
    finally:
        site_rules.unlink()
        lab.fleet.reload_prometheus()


def test_applying_again_leaves_the_rules_file_and_prometheus_alone(lab):
    rules = lab.data / "prometheus" / "rules" / "dc-overview-alerts.yml"
    before, ids = rules.stat().st_mtime_ns, lab.ids()
    loaded = api(lab.prometheus, "/api/v1/status/runtimeinfo")["data"]["lastConfigTime"]
    report, _ = lab.apply()
    assert {c.action for c in report.changes} == {"unchanged"}
    assert rules.stat().st_mtime_ns == before and lab.ids() == ids
    assert api(lab.prometheus, "/api/v1/status/runtimeinfo")["data"]["lastConfigTime"] == loaded  # not reloaded


def test_rules_from_an_older_package_are_replaced_and_reloaded(lab):
    rules = lab.data / "prometheus" / "rules" / "dc-overview-alerts.yml"
    older = alert_rules().replace("DCGM_FI_DEV_GPU_TEMP > 85", "DCGM_FI_DEV_GPU_TEMP > 90")
    assert older != alert_rules()
    rules.write_text(older)
    lab.fleet.reload_prometheus()  # Prometheus runs the older rules, as before an upgrade

    def temperature_query() -> str:
        return next(r["query"] for g in rule_groups(lab) for r in g["rules"] if r["name"] == "GpuTemperatureHigh")

    wait_until(lambda: "> 90" in temperature_query(), 30, "the older rules loaded")
    ids = lab.ids()
    report, _ = lab.apply()
    assert {c.service: c.action for c in report.changes}["prometheus"] == "reloaded"
    assert lab.ids() == ids
    assert rules.read_text() == alert_rules()
    assert "> 85" in temperature_query()


def test_alertmanager_runs_on_its_private_config_and_is_recreated_when_routing_changes(lab):
    config = lab.data / "stack" / "alertmanager" / "alertmanager.yml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "repeat_interval: 4h" in api(lab.alertmanager, "/api/v2/status")["config"]["original"]
    ids = lab.ids()
    lab.fleet.set_stack_option("alert_repeat_interval", "2h")
    report, _ = lab.apply()
    assert {c.service: c.action for c in report.changes} == {
        "prometheus": "unchanged", "alertmanager": "recreated", "cryptolabs-proxy": "unchanged"}
    after = lab.ids()
    assert after[f"{lab.prefix}alertmanager"] != ids[f"{lab.prefix}alertmanager"]
    assert after[f"{lab.prefix}prometheus"] == ids[f"{lab.prefix}prometheus"]
    assert "repeat_interval: 2h" in api(lab.alertmanager, "/api/v2/status")["config"]["original"]
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert wait_until(lambda: active_alertmanagers(lab), 30, "Alertmanager active again") == [
        "http://alertmanager:9093/api/v2/alerts"]


def test_alertmanager_turned_off_is_removed_and_prometheus_stops_sending(lab):
    lab.fleet.set_stack_option("alertmanager", "no")
    try:
        report, _ = lab.apply()
        actions = {c.service: c.action for c in report.changes}
        assert actions["prometheus"] == "reloaded" and actions["alertmanager"] == "removed"
        assert f"{lab.prefix}alertmanager" not in lab.ids()
        assert active_alertmanagers(lab) == []
        assert sorted(g["name"] for g in rule_groups(lab)) == OUR_GROUPS  # the rules stay
        assert docker("volume", "inspect", f"{lab.prefix}dc-overview-alertmanager-data", check=False).returncode == 0
    finally:
        lab.fleet.set_stack_option("alertmanager", "yes")
    report, _ = lab.apply()
    assert {c.service: c.action for c in report.changes}["alertmanager"] == "created"
