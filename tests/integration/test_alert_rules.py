"""The packaged alert rules (templates/rules/dc-overview-alerts.yml) checked
by the real promtool, their unit tests in tests/promtool/*.yml run by it,
and the rules loaded and evaluated by a real Prometheus against real data."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.support.prometheus_lab import PrometheusLab, prometheus_lab  # noqa: F401 (the fixture)
from tests.support.require import need_executable

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "templates" / "rules" / "dc-overview-alerts.yml"
PROMTOOL_TESTS = sorted((ROOT / "tests" / "promtool").glob("*.yml"))


def alert_names() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = need_executable("promtool", "apt-get install prometheus")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_promtool_accepts_the_rules_file():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def test_promtool_rejects_a_broken_rule(tmp_path):
    """The check above can fail: a rule with a PromQL error is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text(RULES.read_text().replace("max by (server) (up", "max by (server) up(", 1))
    result = promtool("check", "rules", str(broken))
    assert result.returncode != 0


def test_every_alert_fires_and_stays_silent_under_promtool():
    assert PROMTOOL_TESTS, "no tests/promtool/*.yml"
    result = promtool("test", "rules", *map(str, PROMTOOL_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(PROMTOOL_TESTS), result.stdout


def test_promtool_unit_tests_catch_a_wrong_threshold(tmp_path):
    """The unit tests can fail: with the temperature threshold moved, they do."""
    rules = tmp_path / "templates" / "rules" / RULES.name
    rules.parent.mkdir(parents=True)
    rules.write_text(RULES.read_text().replace("DCGM_FI_DEV_GPU_TEMP > 85", "DCGM_FI_DEV_GPU_TEMP > 90"))
    tests = tmp_path / "tests" / "promtool"
    tests.mkdir(parents=True)
    thermal = tests / "gpu-thermal.yml"
    thermal.write_text((ROOT / "tests" / "promtool" / "gpu-thermal.yml").read_text())
    result = promtool("test", "rules", str(thermal))
    assert result.returncode != 0
    assert "GpuTemperatureHigh" in result.stdout + result.stderr


def test_prometheus_loads_and_evaluates_every_rule(prometheus_lab: PrometheusLab):
    """In a real Prometheus scraping real exporters, every rule evaluates
    without error (label clashes, many-to-many matches ...)."""
    deadline = time.monotonic() + 30
    while True:
        groups = prometheus_lab.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = [rule for rule in rules if not rule.get("lastEvaluation", "0001").startswith("0001")]
        if len(evaluated) == len(rules) == len(alert_names()):
            break
        assert time.monotonic() < deadline, f"rules not all evaluated: {len(evaluated)} of {len(rules)}"
        time.sleep(1)
    unhealthy = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not unhealthy, unhealthy
    assert {rule["name"] for rule in rules} == set(alert_names())


def test_a_dead_server_raises_worker_down_in_prometheus(prometheus_lab: PrometheusLab):
    """The lab's gpu-dead server has nothing behind its targets: WorkerDown is
    pending (its 3 minutes have not passed) for it, and for nothing else."""
    deadline = time.monotonic() + 30
    while True:
        alerts = prometheus_lab.api("alerts")["alerts"]
        worker_down = {a["labels"]["server"] for a in alerts if a["labels"]["alertname"] == "WorkerDown"}
        if worker_down:
            break
        assert time.monotonic() < deadline, "WorkerDown never became pending"
        time.sleep(1)
    assert worker_down == {"gpu-dead"}
