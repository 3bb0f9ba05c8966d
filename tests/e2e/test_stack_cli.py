"""The stack's commands through click's runner (over fakes of the engine, the
proxy and Prometheus) and one as a real subprocess without an engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from dc_overview.api import AsyncFleet, Fleet
from dc_overview.frontends.cli import AppContext, cli
from dc_overview.ports import CommandResult
from tests.fakes import (
    DiskFakeStorage, FakePrometheusControl, FakeProxyRegistry, FakeRuntime, FakeSecretStore, fake_deps,
)
from tests.unit.test_stack_apply import IMAGES


@pytest.fixture
def run(tmp_path):
    # files land in tmp_path too: apply rewrites (and reloads for) only what differs on disk
    deps = fake_deps(tmp_path, storage=DiskFakeStorage(tmp_path), runtime=FakeRuntime(images=IMAGES),
                     proxy=FakeProxyRegistry(), prometheus=FakePrometheusControl(), secrets=FakeSecretStore())
    fleet = Fleet(AsyncFleet(deps))
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args), obj=AppContext(fleet=fleet), input=input, catch_exceptions=False)

    invoke.deps = deps  # type: ignore[attr-defined]
    yield invoke
    fleet.close()


def test_apply_then_status_and_apply_again(run):
    result = run("stack", "apply")
    assert result.exit_code == 0, result.output
    assert "prometheus: created" in result.stdout and "4 service(s) changed." in result.stdout
    assert "prometheus: creating" in result.stderr  # progress stays off stdout
    assert "Grafana's admin password was made" in result.stdout
    rows = json.loads(run("status", "--json").stdout)
    assert [(r["service"], r["state"], r["health"]) for r in rows] == [
        ("prometheus", "running", "healthy"), ("grafana", "running", "healthy"),
        ("dc-overview", "running", "healthy"), ("cryptolabs-proxy", "running", "healthy")]
    table = run("status").stdout
    assert table.splitlines()[0].split() == ["SERVICE", "CONTAINER", "STATE", "HEALTH", "PORTS", "VERSION", "IMAGE"]
    again = json.loads(run("stack", "apply", "--json").stdout)
    assert {c["action"] for c in again["changes"]} == {"unchanged"}
    assert "Nothing needed changing." in run("stack", "apply").stdout


def test_status_before_apply_says_what_to_run(run):
    out = run("status").stdout
    assert "missing" in out and "`dc-overview stack apply` creates them" in out


def test_options_set_and_secrets_never_printed(run):
    assert run("stack", "set", "http_port", "8080").stdout.startswith("http_port = 8080")
    result = run("stack", "set", "http_port", "70000")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: http_port: 70000 is out of range (ports are 1-65535)"]
    assert run("stack", "set", "bogus", "1").exit_code == 1
    assert run("stack", "secret", "grafana_admin_password", "--stdin", input="hunter2-long\n").exit_code == 0
    shown = run("stack", "options", "--json").stdout
    data = json.loads(shown)
    assert data["options"]["http_port"] == 8080 and data["secrets"]["grafana_admin_password"] is True
    assert "hunter2-long" not in shown and "hunter2-long" not in run("stack", "options").stdout


def test_logs_stop_start_restart(run):
    run("stack", "apply")
    run.deps.runtime.lines["prometheus"] = ["first", "second"]
    assert run("logs", "-n", "1", "prometheus").stdout == "second\n"
    assert "prometheus | second" in run("logs").stdout
    assert run("stop").stdout.splitlines()[0] == "stopped cryptolabs-proxy"
    assert run("start", "prometheus").stdout == "started prometheus\n"
    assert run("restart").exit_code == 0
    result = run("logs", "mysql")
    assert result.exit_code == 1 and "no service named 'mysql'" in result.output


def test_a_failed_pull_is_one_line_and_exit_1(run):
    run("stack", "apply")
    run.deps.runtime.registry = {}
    result = run("upgrade")
    assert result.exit_code == 1
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "cannot pull image" in error[0] and "running stack is as it was" in error[0]
    assert "Traceback" not in result.output


def test_render_compose_routes_and_reload(run, tmp_path):
    rendered = json.loads(run("stack", "render", "--json").stdout)
    assert "stack/prometheus/prometheus.yml" in rendered
    target = tmp_path / "out" / "docker-compose.yml"
    assert run("stack", "compose", "-o", str(target)).exit_code == 0
    assert "services:" in target.read_text()
    assert run("stack", "compose").stdout.startswith("# The dc-overview monitoring stack")
    assert run("stack", "route", "add", "ipmi-monitor", "/ipmi/", "ipmi-monitor:5000").stdout == \
        "ipmi-monitor: /ipmi/ -> ipmi-monitor:5000\n"
    assert [r["name"] for r in json.loads(run("stack", "routes", "--json").stdout)] == ["ipmi-monitor"]
    assert run("stack", "route", "add", "x", "/x/", "x:1;").exit_code == 1
    assert run("stack", "route", "remove", "ipmi-monitor").exit_code == 0
    assert run("stack", "reload-prometheus").stdout == "Prometheus reloaded its configuration\n"
    assert run.deps.prometheus.reloads == ["http://127.0.0.1:9090/prometheus"]


def test_a_proxy_config_nginx_refuses_is_reported_with_nginxs_reason(run):
    run("stack", "apply")
    run.deps.runtime.exec_results[("nginx", "-t")] = CommandResult(
        1, "", "nginx: [emerg] unknown directive \"bogus\" in /etc/dc-proxy/conf.d/x.conf:3\n"
               "nginx: configuration file /etc/dc-proxy/nginx.conf test failed\n")
    run("stack", "set", "domain", "mon.example.net")
    result = run("stack", "apply")
    assert result.exit_code == 1 and 'unknown directive "bogus"' in result.output


def test_without_an_engine_the_cli_says_what_to_do(tmp_path):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/docker.sock", "DC_OVERVIEW_DATA": str(tmp_path / "d")}
    result = subprocess.run([sys.executable, "-m", "dc_overview", "status"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: no Docker engine here: {tmp_path}/docker.sock does not exist (install Docker "
        "(Debian: apt-get install docker.io) and start it (systemctl start docker))"]


def test_alertmanager_is_turned_on_with_its_routing_through_stack_set(run):
    assert run("stack", "set", "alert_email_to", "ops@example.net, oncall@example.net").stdout.startswith(
        "alert_email_to = ops@example.net, oncall@example.net")
    refused = run("stack", "set", "alertmanager", "yes")
    assert refused.exit_code == 1 and "alert_smtp_smarthost" in refused.output
    for name, value in [("alert_smtp_smarthost", "smtp.example.net:587"), ("alert_email_from", "dc@example.net"),
                        ("alertmanager", "yes")]:
        assert run("stack", "set", name, value).exit_code == 0
    assert run("stack", "secret", "smtp_password", "--stdin", input="mail-pass\n").exit_code == 0
    data = json.loads(run("stack", "options", "--json").stdout)
    assert data["options"]["alert_email_to"] == ["ops@example.net", "oncall@example.net"]
    assert data["secrets"]["smtp_password"] is True and "mail-pass" not in json.dumps(data)
    result = run("stack", "apply")
    assert result.exit_code == 0, result.output
    assert "alertmanager: created" in result.stdout
