"""Every rendered config is accepted by the real tool: ``promtool check
config`` for Prometheus (with the packaged alert rules it loads), ``amtool
check-config`` for Alertmanager and ``nginx -t`` for the proxy, for each
combination of the options that change them (Debian's prometheus,
prometheus-alertmanager and nginx-light)."""

from __future__ import annotations

import itertools
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import attrs
import pytest
import yaml

from dc_overview.alerting import render_alertmanager_config
from dc_overview.ports import ServiceRoute
from dc_overview.proxy_routes import route_config
from dc_overview.stack import PROXY_DIR, StackOptions, alert_routing, build_stack
from dc_overview.stack_render import (
    ALERT_RULES, ALERTMANAGER_YML, PrometheusPaths, ProxyPaths, render_alertmanager, render_prometheus, render_proxy,
    render_rules,
)
from dc_overview.stack_tls import certificate_names, self_signed_certificate
from tests.support.require import need_executable

SECRETS = frozenset({"vastai_api_key", "runpod_api_key"})

PROMETHEUS_CASES = [
    dict(targets_source=source, token=token, remote=remote, ipmi=ipmi, web_app=web_app, exporters=exporters,
         alertmanager=alertmanager)
    for source, token, remote, ipmi, web_app, exporters, alertmanager in itertools.product(
        ("file", "http"), (False, True), ("none", "url", "auth"), (False, True), (True, False), (False, True),
        (False, True))
]
RULES = render_rules()[ALERT_RULES]
ALERT_COUNT = sum(1 for group in yaml.safe_load(RULES)["groups"] for rule in group["rules"] if "alert" in rule)


def _id(case: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in case.items())


@pytest.mark.parametrize("case", PROMETHEUS_CASES, ids=_id)
def test_prometheus_config_passes_promtool(case, tmp_path):
    promtool = need_executable("promtool", "apt-get install prometheus")
    secrets = set(SECRETS)
    options: dict = {"targets_source": case["targets_source"], "web_app": case["web_app"],
                     "vastai_exporter": case["exporters"], "runpod_exporter": case["exporters"],
                     "alertmanager": case["alertmanager"]}
    if case["token"]:
        secrets.add("scrape_token")
    if case["remote"] != "none":
        options["remote_write_url"] = "http://victoria:8428/api/v1/write"
    if case["remote"] == "auth":
        options["remote_write_username"] = "fleet"
        secrets.add("remote_write_password")
    spec = build_stack(StackOptions(**options), frozenset(secrets), ipmi_monitor_present=case["ipmi"])
    paths = PrometheusPaths(rules_dir=str(tmp_path / "rules"), targets_dir=str(tmp_path / "targets"),
                            secrets_dir=str(tmp_path / "secrets"))
    for folder in ("rules", "targets", "secrets"):
        (tmp_path / folder).mkdir()
    for name in secrets:
        (tmp_path / "secrets" / name).write_text("value\n")
    # the packaged rules as the stack writes them, so that the rule_files glob is followed and checked too
    (tmp_path / "rules" / Path(ALERT_RULES).name).write_text(RULES)
    config = tmp_path / "prometheus.yml"
    text = render_prometheus(spec, frozenset(secrets), paths)
    config.write_text(text)
    assert yaml.safe_load(text)["rule_files"] == [f"{tmp_path / 'rules'}/*.yml"]
    assert ("alerting" in yaml.safe_load(text)) is case["alertmanager"]

    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {ALERT_COUNT} rules found" in result.stdout + result.stderr


EMAIL = dict(alert_email_to="ops@example.net, oncall@example.net", alert_email_from="dc@example.net",
             alert_smtp_smarthost="smtp.example.net:587")
ALERTMANAGER_CASES = {
    "nothing": {},
    "webhook": dict(alert_webhook_url="https://hooks.example.net/alerts?team=gpu"),
    "webhook-token": dict(alert_webhook_url="http://10.0.0.9:9000/hook"),
    "email": EMAIL,
    "email-login": dict(EMAIL, alert_smtp_username="dc", alert_smtp_require_tls="no"),
    "both": dict(EMAIL, alert_webhook_url="https://hooks.example.net/a", alert_send_resolved="no",
                 alert_repeat_interval="1d", alert_critical_repeat_interval="30m"),
}


@pytest.mark.parametrize("name", ALERTMANAGER_CASES)
def test_alertmanager_config_from_the_stack_options_passes_amtool(name, tmp_path):
    amtool = need_executable("amtool", "apt-get install prometheus-alertmanager")
    secrets = frozenset({"alert_webhook_token", "smtp_password"})
    spec = build_stack(StackOptions(alertmanager=True, **ALERTMANAGER_CASES[name]), secrets)
    rendered = render_alertmanager(spec, secrets)[ALERTMANAGER_YML]
    # the same config with the secret files where amtool finds them (they are /run/secrets/* in the container)
    routing = alert_routing(spec.options, secrets)
    moved = {}
    for field in ("webhook_token_file", "smtp_password_file"):
        if getattr(routing, field):
            target = tmp_path / Path(getattr(routing, field)).name
            target.write_text("not-a-real-secret\n")
            moved[field] = str(target)
    assert render_alertmanager_config(routing) == rendered
    config = tmp_path / "alertmanager.yml"
    config.write_text(render_alertmanager_config(attrs.evolve(routing, **moved)))
    result = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "2 inhibit rules" in result.stdout


PROXY_CASES = [
    dict(tls=tls, https_port=port, web_app=web_app, grafana=grafana, ipmi=ipmi)
    for tls, port, web_app, grafana, ipmi in itertools.product(
        ("self-signed", "letsencrypt", "off"), (443, 8443), (True, False), (True, False), (False, True))
]


@pytest.mark.parametrize("case", PROXY_CASES, ids=_id)
def test_proxy_config_passes_nginx_t(case, tmp_path):
    nginx = need_executable("nginx", "apt-get install nginx-light")
    options = StackOptions(tls=case["tls"], https_port=case["https_port"], web_app=case["web_app"],
                           grafana=case["grafana"], domain="mon.example.net" if case["tls"] == "letsencrypt" else None)
    spec = build_stack(options, ipmi_monitor_present=case["ipmi"])
    paths = ProxyPaths(conf_dir=str(tmp_path), mime_types="/etc/nginx/mime.types", pid=str(tmp_path / "nginx.pid"),
                       letsencrypt_dir=str(tmp_path / "letsencrypt"))
    for relative, text in render_proxy(spec, paths).items():
        target = tmp_path / Path(relative).relative_to(PROXY_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    # one route registered by another product, as the registry writes it
    (tmp_path / "conf.d" / "other.conf").write_text(
        route_config(ServiceRoute("other", "/other/", "other:8080", read_only_paths=("admin/",)), str(tmp_path)))
    cert, key = self_signed_certificate(certificate_names(options.domain), datetime.now(timezone.utc))
    for folder in (tmp_path / "certs", tmp_path / "letsencrypt" / "live" / "mon.example.net"):
        folder.mkdir(parents=True)
    (tmp_path / "certs" / "selfsigned.crt").write_bytes(cert)
    (tmp_path / "certs" / "selfsigned.key").write_bytes(key)
    (tmp_path / "letsencrypt" / "live" / "mon.example.net" / "fullchain.pem").write_bytes(cert)
    (tmp_path / "letsencrypt" / "live" / "mon.example.net" / "privkey.pem").write_bytes(key)

    result = subprocess.run([nginx, "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


COMPOSE_CASES = [
    dict(grafana=True, web_app=True, watchtower=False, vastai_exporter=False, tls="self-signed"),
    dict(grafana=True, web_app=True, alertmanager=True, alert_webhook_url="https://hooks.example.net/a",
         alert_email_to="ops@example.net", alert_email_from="dc@example.net",
         alert_smtp_smarthost="smtp.example.net:587", alert_smtp_username="dc"),
    dict(grafana=False, web_app=True, watchtower=True, vastai_exporter=True, runpod_exporter=True, tls="off"),
    dict(grafana=True, web_app=False, tls="letsencrypt", domain="mon.example.net", remote_write_url="http://vm:8428/api/v1/write",
         remote_write_username="fleet"),
]


@pytest.mark.parametrize("options", COMPOSE_CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items())[:80])
def test_the_compose_export_is_a_valid_compose_file(options, tmp_path):
    compose = need_executable("docker-compose", "apt-get install docker-compose")
    from dc_overview.stack_render import compose_document

    spec = build_stack(StackOptions(**options), SECRETS | {"remote_write_password", "grafana_admin_password",
                                                           "alert_webhook_token", "smtp_password"})
    path = tmp_path / "docker-compose.yml"
    path.write_text(compose_document(spec, tmp_path / "data", data_owner="0:0", socket_group=0))
    result = subprocess.run([compose, "-f", str(path), "config"], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "VASTAI_API_KEY": "k", "RUNPOD_API_KEY": "k"})
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == {s.name for s in spec.services}
