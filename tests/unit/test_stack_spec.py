"""The stack's description: options, their checks, and what build_stack makes of them."""

import attrs
import pytest

from dc_overview import errors
from dc_overview.stack import (
    ALERTMANAGER, APP, GRAFANA, PROMETHEUS, PROXY, RUNPOD, VASTAI, WATCHTOWER, StackOptions, alert_routing,
    build_stack, change_option, find_service, service_names,
)


def test_the_default_stack_is_prometheus_grafana_the_app_and_the_proxy_last():
    spec = build_stack(StackOptions())
    assert service_names(spec) == (PROMETHEUS, GRAFANA, APP, PROXY)
    assert spec.network == "cryptolabs"
    assert [r.path for r in spec.routes] == ["/prometheus/", "/grafana/", "/dc/"]
    assert [r.container for r in spec.routes] == ["prometheus", "grafana", "dc-overview"]


def test_prometheus_keeps_its_lifecycle_api_off_the_public_proxy_and_on_loopback():
    prometheus = find_service(build_stack(StackOptions()), PROMETHEUS)
    assert "--web.enable-lifecycle" in prometheus.command
    assert [(p.host_ip, p.host_port) for p in prometheus.ports] == [("127.0.0.1", 9090)]
    assert prometheus.route.read_only_paths == ("-/",)
    assert not find_service(build_stack(StackOptions(prometheus_local_port="0")), PROMETHEUS).ports


def test_config_is_mounted_as_folders_and_the_app_gets_the_data_dir_read_write():
    spec = build_stack(StackOptions())
    prometheus, app = find_service(spec, PROMETHEUS), find_service(spec, APP)
    binds = {m.target: m for m in prometheus.mounts if not m.volume}
    assert binds["/etc/prometheus/config"].source == "stack/prometheus"
    assert binds["/etc/prometheus/rules"].source == "prometheus/rules"
    assert binds["/etc/prometheus/targets"].source == "prometheus/targets"
    data = next(m for m in app.mounts if m.target == "/data")
    assert data.source == "." and not data.read_only


def test_optional_services_come_and_go_with_their_options():
    spec = build_stack(StackOptions(grafana=False, web_app="no", watchtower="yes", vastai_exporter=True,
                                    runpod_exporter="on"),
                       frozenset({"vastai_api_key", "runpod_api_key"}))
    assert service_names(spec) == (PROMETHEUS, VASTAI, RUNPOD, WATCHTOWER, PROXY)
    assert spec.volumes == ("dc-overview-prometheus-data",)
    vastai = find_service(spec, VASTAI)
    assert vastai.internal_port == 8622 and vastai.secret_env == {"VASTAI_API_KEY": "vastai_api_key"}
    assert find_service(spec, RUNPOD).internal_port == 8623


@pytest.mark.parametrize("option, secret", [("vastai_exporter", "vastai_api_key"), ("runpod_exporter", "runpod_api_key")])
def test_an_exporter_without_its_api_key_is_refused_naming_the_option(option, secret):
    with pytest.raises(errors.InvalidStackOption) as caught:
        build_stack(StackOptions(**{option: True}))
    assert caught.value.field == option and secret in str(caught.value)


def test_ipmi_monitor_is_routed_when_present_or_forced():
    assert not [r for r in build_stack(StackOptions()).routes if r.name == "ipmi-monitor"]
    present = build_stack(StackOptions(), ipmi_monitor_present=True)
    assert [(r.path, r.upstream) for r in present.routes if r.name == "ipmi-monitor"] == [("/ipmi/", "ipmi-monitor:5000")]
    assert any(r.name == "ipmi-monitor" for r in build_stack(StackOptions(ipmi_monitor="on")).routes)
    assert not any(r.name == "ipmi-monitor" for r in
                   build_stack(StackOptions(ipmi_monitor="off"), ipmi_monitor_present=True).routes)


def test_a_prefix_renames_containers_and_volumes_but_not_the_names_on_the_network():
    spec = build_stack(StackOptions(name_prefix="t1-", network="t1-net"))
    assert spec.prefix == "t1-" and spec.network == "t1-net"
    assert [r.container for r in spec.routes] == ["t1-prometheus", "t1-grafana", "t1-dc-overview"]
    assert [r.upstream for r in spec.routes] == ["prometheus:9090", "grafana:3000", "dc-overview:5001"]


def test_tls_off_publishes_only_http():
    proxy = find_service(build_stack(StackOptions(tls="off", http_port=8080)), PROXY)
    assert [(p.container_port, p.host_port) for p in proxy.ports] == [(80, 8080)]
    proxy = find_service(build_stack(StackOptions()), PROXY)
    assert [(p.container_port, p.host_port) for p in proxy.ports] == [(80, 80), (443, 443)]


@pytest.mark.parametrize("name, value, field", [
    ("http_port", "70000", "http_port"),
    ("https_port", "http", "https_port"),
    ("tls", "maybe", "tls"),
    ("targets_source", "dns", "targets_source"),
    ("scrape_interval", "30 seconds", "scrape_interval"),
    ("remote_write_url", "ftp://x", "remote_write_url"),
    ("proxy_image", "nginx latest", "proxy_image"),
    ("bind_address", "everywhere", "bind_address"),
    ("grafana", "perhaps", "grafana"),
    ("name_prefix", "UPPER", "name_prefix"),
    ("nonsense", "1", "nonsense"),
    ("alertmanager", "sometimes", "alertmanager"),
    ("alertmanager_local_port", "99999", "alertmanager_local_port"),
    ("alert_webhook_url", "hooks.example.net/a", "alert_webhook_url"),
    ("alert_email_to", "ops@example.net, not-an-address", "alert_email_to"),
    ("alert_email_from", "dc at example.net", "alert_email_from"),
    ("alert_smtp_smarthost", "smtp.example.net", "alert_smtp_smarthost"),
    ("alert_smtp_username", "two words", "alert_smtp_username"),
    ("alert_repeat_interval", "4 hours", "alert_repeat_interval"),
    ("alert_critical_repeat_interval", "", "alert_critical_repeat_interval"),
    ("alertmanager_image", "prom/alertmanager latest", "alertmanager_image"),
])
def test_a_bad_option_is_refused_naming_it(name, value, field):
    with pytest.raises(errors.InvalidInput) as caught:
        change_option(StackOptions(), name, value)
    assert caught.value.field == field


def test_lets_encrypt_needs_a_domain_and_http_and_https_ports_differ():
    with pytest.raises(errors.InvalidStackOption) as caught:
        change_option(StackOptions(), "tls", "letsencrypt")
    assert caught.value.field == "domain"
    with_domain = change_option(change_option(StackOptions(), "domain", "mon.example.net"), "tls", "letsencrypt")
    proxy = find_service(build_stack(with_domain), PROXY)
    assert any(m.target == "/etc/letsencrypt" and m.read_only for m in proxy.mounts)
    with pytest.raises(errors.InvalidStackOption):
        StackOptions(http_port=8443, https_port=8443)


def test_options_change_by_evolving_and_text_is_converted():
    options = change_option(StackOptions(), "http_port", "8080")
    assert options.http_port == 8080 and StackOptions().http_port == 80
    assert change_option(options, "remote_write_url", "").remote_write_url is None
    assert attrs.evolve(options, watchtower="true").watchtower is True


def test_alertmanager_is_off_by_default_and_runs_beside_prometheus_when_on():
    assert ALERTMANAGER not in service_names(build_stack(StackOptions()))
    spec = build_stack(StackOptions(alertmanager="yes"))
    assert service_names(spec) == (PROMETHEUS, ALERTMANAGER, GRAFANA, APP, PROXY)
    assert "dc-overview-alertmanager-data" in spec.volumes
    am = find_service(spec, ALERTMANAGER)
    assert am.internal_port == 9093 and am.reload is None  # read at start: a changed config recreates it
    assert am.config_files == ("stack/alertmanager/alertmanager.yml",)
    assert {m.target: m.source for m in am.mounts if not m.volume} == {"/etc/alertmanager/config": "stack/alertmanager"}
    assert am.run_as_data_owner  # reads its 0600 config as the data dir's owner
    assert "--cluster.listen-address=" in am.command
    assert [(p.host_ip, p.host_port) for p in am.ports] == [("127.0.0.1", 9093)]
    assert am.route is None  # not served through the proxy
    assert not find_service(build_stack(StackOptions(alertmanager=True, alertmanager_local_port=0)), ALERTMANAGER).ports
    assert PROXY in service_names(spec) and ALERTMANAGER in find_service(spec, PROXY).depends_on


def test_alert_secrets_reach_alertmanager_as_files_only_where_they_are_used():
    secrets = frozenset({"alert_webhook_token", "smtp_password"})
    email = dict(alert_email_to="ops@example.net", alert_email_from="dc@example.net",
                 alert_smtp_smarthost="smtp.example.net:587")
    am = find_service(build_stack(StackOptions(alertmanager=True, alert_webhook_url="https://h.example/a",
                                               alert_smtp_username="dc", **email), secrets), ALERTMANAGER)
    assert am.secret_files == {"/run/secrets/alert_webhook_token": "alert_webhook_token",
                               "/run/secrets/smtp_password": "smtp_password"}
    # no webhook and no SMTP login: the secrets are not used (nor refused)
    am = find_service(build_stack(StackOptions(alertmanager=True, **email), secrets), ALERTMANAGER)
    assert am.secret_files == {}
    routing = alert_routing(StackOptions(alert_webhook_url="https://h.example/a"), secrets)
    assert routing.webhook_token_file == "/run/secrets/alert_webhook_token" and routing.smtp_password_file is None


@pytest.mark.parametrize("options, field", [
    (dict(alert_email_to="ops@example.net"), "alert_smtp_smarthost"),
    (dict(alert_email_to="ops@example.net", alert_smtp_smarthost="smtp.example.net:25"), "alert_email_from"),
])
def test_alert_routing_that_cannot_deliver_is_refused_when_alertmanager_is_on(options, field):
    build_stack(StackOptions(**options))  # off: nothing to deliver yet
    with pytest.raises(errors.InvalidStackOption) as caught:
        build_stack(StackOptions(alertmanager=True, **options))
    assert caught.value.field == field


def test_alert_options_convert_text_and_lists():
    options = change_option(StackOptions(), "alert_email_to", " a@example.net,b@example.net ")
    assert options.alert_email_to == ("a@example.net", "b@example.net")
    assert change_option(options, "alert_email_to", ["c@example.net"]).alert_email_to == ("c@example.net",)
    assert change_option(options, "alert_email_to", "").alert_email_to == ()
    assert change_option(options, "alert_smtp_require_tls", "no").alert_smtp_require_tls is False
    assert change_option(options, "alert_webhook_url", "").alert_webhook_url is None
