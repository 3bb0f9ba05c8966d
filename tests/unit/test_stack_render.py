"""Config files rendered from the stack's description: what is in them, and
what can never get in (secrets, directives smuggled through a route)."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from dc_overview import errors
from dc_overview.ports import ServiceRoute
from dc_overview.proxy_routes import check_route, parse_route, route_config, services_json
from dc_overview.stack import StackOptions, build_stack
from dc_overview.stack_render import (
    compose_document, expand_command, render_grafana, render_prometheus, render_proxy, render_stack,
)
from dc_overview.stack_tls import certificate_is_usable, certificate_names, self_signed_certificate

ALL_SECRETS = frozenset({"vastai_api_key", "runpod_api_key", "scrape_token", "remote_write_password",
                         "grafana_admin_password"})


def prometheus_config(secrets=frozenset(), ipmi=False, **options) -> dict:
    spec = build_stack(StackOptions(**options), ALL_SECRETS, ipmi_monitor_present=ipmi)
    return yaml.safe_load(render_prometheus(spec, secrets))


def jobs(config: dict) -> dict:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_rule_files_are_always_kept():
    for options in ({}, {"targets_source": "http"}, {"remote_write_url": "http://vm:8428/api/v1/write"}):
        assert prometheus_config(**options)["rule_files"] == ["/etc/prometheus/rules/*.yml"]


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
    assert render_grafana(build_stack(StackOptions(grafana=False))) == {}


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


def test_render_stack_gives_every_file_under_stack():
    files = render_stack(build_stack(StackOptions()))
    assert all(path.startswith("stack/") for path in files)
    assert "stack/prometheus/prometheus.yml" in files and "stack/proxy/html/index.html" in files


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
