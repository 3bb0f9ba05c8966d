"""Config files rendered from the stack's description: what is in them, and
what can never get in (secrets, directives smuggled through a route)."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from dc_overview import errors
from dc_overview.ports import ServiceRoute
from dc_overview.proxy_routes import check_route, parse_route, route_config, services_json
from dc_overview.stack import StackOptions, build_stack
from dc_overview.alerting import alert_rules
from dc_overview.stack_render import (
    ALERT_RULES, ALERTMANAGER_YML, PRIVATE_FILES, compose_document, expand_command, packaged_dashboards,
    pruned_folders, render_alertmanager, render_grafana, render_prometheus, render_proxy, render_stack,
)
from dc_overview.stack_tls import certificate_is_usable, certificate_names, self_signed_certificate

ROOT = Path(__file__).resolve().parents[2]
ALL_SECRETS = frozenset({"vastai_api_key", "runpod_api_key", "scrape_token", "remote_write_password",
                         "grafana_admin_password"})


def prometheus_config(secrets=frozenset(), ipmi=False, **options) -> dict:
    spec = build_stack(StackOptions(**options), ALL_SECRETS, ipmi_monitor_present=ipmi)
    return yaml.safe_load(render_prometheus(spec, secrets))


def jobs(config: dict) -> dict:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_rule_files_are_always_kept():
    for options in ({}, {"targets_source": "http"}, {"remote_write_url": "http://vm:8428/api/v1/write"},
                    {"alertmanager": True}, {"alertmanager": True, "web_app": False, "grafana": False},
                    {"alertmanager": True, "vastai_exporter": True, "remote_write_url": "http://vm:8428/w"}):
        assert prometheus_config(**options)["rule_files"] == ["/etc/prometheus/rules/*.yml"]
        assert prometheus_config(ipmi=True, **options)["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def test_the_packaged_alert_rules_are_written_where_rule_files_looks():
    files = render_stack(build_stack(StackOptions(grafana=False, web_app=False)))
    assert files[ALERT_RULES] == alert_rules()
    assert ALERT_RULES == "prometheus/rules/dc-overview-alerts.yml"  # <data>/prometheus/rules, mounted as the glob's folder
    prometheus = build_stack(StackOptions()).services[0]
    assert ALERT_RULES in prometheus.config_files  # a change of the rules reloads Prometheus


def test_prometheus_sends_alerts_to_alertmanager_only_when_it_runs():
    assert "alerting" not in prometheus_config()
    assert "alertmanager" not in jobs(prometheus_config())
    config = prometheus_config(alertmanager=True)
    assert config["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]}
    assert jobs(config)["alertmanager"]["static_configs"] == [{"targets": ["alertmanager:9093"]}]


def test_alertmanagers_config_comes_from_the_alert_options_and_is_private():
    options = StackOptions(alertmanager=True, alert_webhook_url="https://hooks.example.net/a?k=v",
                           alert_email_to="ops@example.net, oncall@example.net", alert_email_from="dc@example.net",
                           alert_smtp_smarthost="smtp.example.net:587", alert_smtp_username="dc",
                           alert_repeat_interval="12h", alert_send_resolved="no")
    secrets = frozenset({"alert_webhook_token", "smtp_password"})
    config = yaml.safe_load(render_alertmanager(build_stack(options, secrets), secrets)[ALERTMANAGER_YML])
    assert config["global"]["smtp_smarthost"] == "smtp.example.net:587"
    assert config["global"]["smtp_auth_password_file"] == "/run/secrets/smtp_password"
    receiver = config["receivers"][0]
    assert receiver["webhook_configs"][0]["url"] == "https://hooks.example.net/a?k=v"
    assert receiver["webhook_configs"][0]["send_resolved"] is False
    assert receiver["webhook_configs"][0]["http_config"]["authorization"]["credentials_file"] == (
        "/run/secrets/alert_webhook_token")
    assert receiver["email_configs"][0]["to"] == "ops@example.net, oncall@example.net"
    assert config["route"]["repeat_interval"] == "12h"
    assert ALERTMANAGER_YML == "stack/alertmanager/alertmanager.yml" and ALERTMANAGER_YML in PRIVATE_FILES
    assert render_alertmanager(build_stack(StackOptions(alert_webhook_url="https://x.example/h"))) == {}
    assert ALERTMANAGER_YML not in render_stack(build_stack(StackOptions()))


def test_alertmanager_without_a_webhook_or_email_still_renders_its_receiver():
    config = yaml.safe_load(render_alertmanager(build_stack(StackOptions(alertmanager=True)))[ALERTMANAGER_YML])
    assert config["receivers"] == [{"name": "fleet"}]


def test_the_fleet_comes_from_the_targets_file_or_from_the_app():
    fleet = jobs(prometheus_config())["fleet"]
    assert fleet["file_sd_configs"] == [{"files": ["/etc/prometheus/targets/*.json"], "refresh_interval": "1m"}]
    fleet = jobs(prometheus_config(frozenset({"scrape_token"}), targets_source="http"))["fleet"]
    assert fleet["http_sd_configs"][0]["url"] == "http://dc-overview:5001/api/prometheus/targets.json"
    assert fleet["http_sd_configs"][0]["authorization"] == {"type": "Bearer",
                                                             "credentials_file": "/run/secrets/scrape_token"}


def test_jobs_follow_the_services():
    assert set(jobs(prometheus_config())) == {"prometheus", "fleet", "dc-overview"}
    assert set(jobs(prometheus_config(ipmi=True, web_app=False, vastai_exporter=True, runpod_exporter=True))) == {
        "prometheus", "fleet", "ipmi-monitor", "vastai", "runpod"}
    assert jobs(prometheus_config(ipmi=True))["ipmi-monitor"]["static_configs"] == [{"targets": ["ipmi-monitor:5000"]}]
    assert jobs(prometheus_config())["prometheus"]["metrics_path"] == "/prometheus/metrics"


def test_remote_write_with_its_password_in_a_file_never_in_the_config():
    config = prometheus_config(frozenset({"remote_write_password"}), remote_write_url="https://mimir.example/api/v1/push",
                               remote_write_username="fleet")
    assert config["remote_write"] == [{"url": "https://mimir.example/api/v1/push", "basic_auth": {
        "username": "fleet", "password_file": "/run/secrets/remote_write_password"}}]
    assert "remote_write" not in prometheus_config()


def test_values_are_quoted_so_they_cannot_break_the_yaml():
    config = prometheus_config(frozenset({"remote_write_password"}), remote_write_url="http://vm:8428/w?t=a&x=#b:c",
                               remote_write_username='x: y "z" # w')
    assert config["remote_write"][0]["url"] == "http://vm:8428/w?t=a&x=#b:c"
    assert config["remote_write"][0]["basic_auth"]["username"] == 'x: y "z" # w'


def test_grafana_gets_a_fixed_datasource_uid_and_the_dashboards_folder():
    files = render_grafana(build_stack(StackOptions()))
    datasource = yaml.safe_load(files["stack/grafana/provisioning/datasources/prometheus.yml"])["datasources"][0]
    assert (datasource["uid"], datasource["url"]) == ("prometheus", "http://prometheus:9090/prometheus")
    provider = yaml.safe_load(files["stack/grafana/provisioning/dashboards/dc-overview.yml"])["providers"][0]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    assert provider["disableDeletion"] is False  # a dashboard file removed is a dashboard removed
    assert render_grafana(build_stack(StackOptions(grafana=False))) == {}


def test_the_provider_serves_every_packaged_dashboard_from_the_mounted_folder():
    spec = build_stack(StackOptions())
    files = render_grafana(spec)
    grafana = next(s for s in spec.services if s.name == "grafana")
    mount = next(m for m in grafana.mounts if m.target == "/etc/grafana/dashboards")
    provider = yaml.safe_load(files["stack/grafana/provisioning/dashboards/dc-overview.yml"])["providers"][0]
    assert provider["options"]["path"] == mount.target
    shipped = {f"{mount.source}/{name}": text for name, text in packaged_dashboards().items()}
    assert shipped and {p: t for p, t in files.items() if p.startswith(mount.source + "/")} == shipped
    assert set(packaged_dashboards()) == {p.name for p in (ROOT / "dashboards").glob("*.json")}
    assert pruned_folders(spec) == {mount.source: ".json"}
    assert pruned_folders(build_stack(StackOptions(grafana=False))) == {}


def _datasources(node, found):
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            found.add((node["datasource"].get("type"), node["datasource"].get("uid")))
        for value in node.values():
            _datasources(value, found)
    elif isinstance(node, list):
        for value in node:
            _datasources(value, found)
    return found


def test_every_data_source_a_dashboard_uses_is_defined_by_the_rendered_provisioning():
    files = render_grafana(build_stack(StackOptions()))
    defined = {(d["type"], d["uid"]) for path, text in files.items() if "/provisioning/datasources/" in path
               for d in yaml.safe_load(text)["datasources"]}
    builtin = {("grafana", "-- Grafana --")}  # Grafana's own annotations source
    for name, text in packaged_dashboards().items():
        used = _datasources(json.loads(text), set())
        assert used - builtin, f"{name} uses no data source"
        assert used - builtin <= defined, f"{name} uses {sorted(used - builtin - defined)}, not provisioned"


def test_a_dashboard_naming_another_uid_would_be_caught():
    dashboard = {"panels": [{"datasource": {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}}]}
    assert _datasources(dashboard, set()) == {("prometheus", "P1809F7CD0C75ACF3")}


def test_the_proxy_redirects_http_and_routes_each_service_under_its_path():
    files = render_proxy(build_stack(StackOptions(https_port=8443), ipmi_monitor_present=True))
    nginx = files["stack/proxy/nginx.conf"]
    assert "return 301 https://$host:8443$request_uri;" in nginx
    assert "include /etc/dc-proxy/conf.d/*.conf;" in nginx
    assert {p.rsplit("/", 1)[-1] for p in files if "/conf.d/" in p} == {
        "prometheus.conf", "grafana.conf", "dc-overview.conf", "ipmi-monitor.conf"}
    assert "rewrite ^/ipmi/(.*)$ /$1 break;" in files["stack/proxy/conf.d/ipmi-monitor.conf"]
    assert "rewrite" not in files["stack/proxy/conf.d/grafana.conf"]  # Grafana serves its own sub-path
    assert "limit_except GET" in files["stack/proxy/conf.d/prometheus.conf"]  # no /-/reload from outside
    plain = render_proxy(build_stack(StackOptions(tls="off")))["stack/proxy/nginx.conf"]
    assert "ssl_certificate" not in plain and "return 301" not in plain


def test_lets_encrypt_certificates_are_read_from_the_live_folder():
    nginx = render_proxy(build_stack(StackOptions(tls="letsencrypt", domain="mon.example.net")))["stack/proxy/nginx.conf"]
    assert "ssl_certificate /etc/letsencrypt/live/mon.example.net/fullchain.pem;" in nginx
    assert "server_name mon.example.net;" in nginx and "Strict-Transport-Security" in nginx


@pytest.mark.parametrize("field, route", [
    ("name", ServiceRoute("x;y", "/x/", "x:1")),
    ("path", ServiceRoute("x", "/x/ { return 200; } location /", "x:1")),
    ("path", ServiceRoute("x", "/api/", "x:1")),
    ("upstream", ServiceRoute("x", "/x/", "x:1;\n}")),
    ("upstream", ServiceRoute("x", "/x/", "x:70000")),
    ("read_only_paths", ServiceRoute("x", "/x/", "x:1", read_only_paths=("../y",))),
    ("container", ServiceRoute("x", "/x/", "x:1", container="a b")),
])
def test_a_route_that_would_inject_nginx_directives_is_refused(field, route):
    with pytest.raises(errors.InvalidRoute) as caught:
        check_route(route)
    assert caught.value.field == field


def test_a_route_file_says_which_route_it_is():
    route = ServiceRoute("ipmi-monitor", "/ipmi/", "ipmi-monitor:5000", container="ipmi-monitor", read_only_paths=("-/",))
    assert parse_route(route_config(route, "/etc/dc-proxy")) == route
    assert parse_route("location / { }") is None
    assert parse_route('# dc-overview-route: {"name": "x"}') is None


def test_the_services_list_is_sorted_by_path():
    listed = services_json([ServiceRoute("b", "/b/", "b:1"), ServiceRoute("a", "/a/", "a:1", container="a1")])
    assert yaml.safe_load(listed) == [{"name": "a", "path": "/a/", "container": "a1"},
                                      {"name": "b", "path": "/b/", "container": None}]


def test_render_stack_gives_every_file_under_stack_and_the_rules_where_prometheus_reads_them():
    files = render_stack(build_stack(StackOptions(alertmanager=True)))
    assert all(path.startswith("stack/") for path in files if path != ALERT_RULES)
    assert "stack/prometheus/prometheus.yml" in files and "stack/proxy/html/index.html" in files
    assert ALERT_RULES in files and ALERTMANAGER_YML in files


def test_the_compose_export_runs_the_same_stack_without_secrets():
    spec = build_stack(StackOptions(vastai_exporter=True), ALL_SECRETS)
    text = compose_document(spec, Path("/etc/dc-overview"), data_owner="0:0", socket_group=998)
    document = yaml.safe_load(text)
    services = document["services"]
    assert list(services) == ["prometheus", "grafana", "dc-overview", "vastai-exporter", "cryptolabs-proxy"]
    assert services["vastai-exporter"]["command"][0] == "--key=${VASTAI_API_KEY}"
    assert services["prometheus"]["volumes"][1] == "/etc/dc-overview/stack/prometheus:/etc/prometheus/config:ro"
    assert services["dc-overview"]["volumes"][0] == "/etc/dc-overview:/data"
    assert services["dc-overview"]["group_add"] == [998] and services["dc-overview"]["user"] == "0:0"
    assert services["grafana"]["secrets"] == [{"source": "grafana_admin_password", "target": "grafana_admin_password"}]
    assert document["networks"] == {"cryptolabs": {"name": "cryptolabs"}}
    assert set(document["volumes"]) == {"dc-overview-prometheus-data", "dc-overview-grafana-data"}
    assert text.startswith("# The dc-overview monitoring stack")


def test_secret_references_in_commands_are_filled_only_for_the_container():
    assert expand_command(("--key=$(KEY)", "-v"), {"KEY": "s3cret"}) == ("--key=s3cret", "-v")
    assert expand_command(("--key=$(KEY)",), {}, compose=True) == ("--key=${KEY}",)


def test_the_self_signed_certificate_is_kept_until_it_nears_expiry_or_the_names_change():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    names = certificate_names("mon.example.net")
    cert, key = self_signed_certificate(names, now)
    assert b"PRIVATE KEY" in key
    assert certificate_is_usable(cert, names, now)
    assert not certificate_is_usable(cert, names, now + timedelta(days=800))
    assert not certificate_is_usable(cert, certificate_names("other.example.net"), now)
    assert not certificate_is_usable(b"garbage", names, now) and not certificate_is_usable(None, names, now)
