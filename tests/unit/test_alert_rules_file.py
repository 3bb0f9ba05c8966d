"""The alert rules file is complete: every alert is labelled, annotated,
documented, and has promtool cases where it fires and where it stays silent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = yaml.safe_load((ROOT / "templates" / "rules" / "dc-overview-alerts.yml").read_text())
ALERTS = {rule["alert"]: rule for group in RULES["groups"] for rule in group["rules"] if "alert" in rule}
DOCS = (ROOT / "docs" / "dashboards-and-alerts.md").read_text()
REQUIRED = {
    "WorkerDown", "ExporterDown", "GpuTemperatureHigh", "GpuVramTemperatureHigh", "GpuHotspotTemperatureHigh",
    "GpuHardwareSlowdown", "GpuCriticalXid", "GpuUncorrectableEccErrors", "GpuRowRemapFailure",
    "GpuFellOffTheBus", "DiskAlmostFull", "MemoryPressure",
}


def promtool_cases() -> dict[str, dict[str, int]]:
    """Per alert: how many promtool evaluations expect it to fire / be silent."""
    cases: dict[str, dict[str, int]] = {}
    for path in sorted((ROOT / "tests" / "promtool").glob("*.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                kind = "fires" if case.get("exp_alerts") else "silent"
                counts = cases.setdefault(case["alertname"], {"fires": 0, "silent": 0})
                counts[kind] += 1
    return cases


def test_the_required_alerts_exist():
    assert REQUIRED <= set(ALERTS)
    names = [rule["alert"] for group in RULES["groups"] for rule in group["rules"] if "alert" in rule]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_has_severity_and_annotations(name):
    rule = ALERTS[name]
    assert rule["labels"]["severity"] in ("critical", "warning")
    for annotation in ("summary", "description", "runbook"):
        assert rule["annotations"].get(annotation, "").strip(), f"{name}: {annotation} is missing"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_fires_and_stays_silent_in_promtool_tests(name):
    counts = promtool_cases().get(name, {"fires": 0, "silent": 0})
    assert counts["fires"] >= 1, f"{name}: no promtool case where it fires"
    assert counts["silent"] >= 1, f"{name}: no promtool case where it stays silent"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_is_documented(name):
    assert re.search(rf"^### {name}$", DOCS, re.M), f"docs/dashboards-and-alerts.md has no section for {name}"


def test_promtool_cases_name_only_real_alerts():
    assert set(promtool_cases()) <= set(ALERTS)


def test_critical_xids_are_the_known_set():
    codes = re.search(r'xid=~"([\d|]+)"', ALERTS["GpuCriticalXid"]["expr"]).group(1)
    assert set(codes.split("|")) == {"48", "62", "64", "74", "79", "95", "119", "120"}


def test_thresholds_and_durations_as_documented():
    assert "DCGM_FI_DEV_GPU_TEMP > 85" in ALERTS["GpuTemperatureHigh"]["expr"]
    assert ALERTS["GpuTemperatureHigh"]["for"] == "10m"
    assert ALERTS["GpuHardwareSlowdown"]["for"] == "5m"
    assert "[6h]" in ALERTS["GpuFellOffTheBus"]["expr"]


def test_every_dashboard_is_documented():
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        assert f"`{path.name}`" in DOCS, path.name
