"""Alert routing settings and the Alertmanager configuration rendered from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dc_overview import errors
from dc_overview.alerting import AlertRouting, alert_rules, render_alertmanager_config

ROOT = Path(__file__).resolve().parents[2]
EMAIL = dict(email_to="ops@example.net, oncall@example.net", email_from="dc@example.net",
             smtp_smarthost="smtp.example.net:587")


def rendered(**settings) -> dict:
    return yaml.safe_load(render_alertmanager_config(AlertRouting(**settings)))


def test_no_receiver_is_a_valid_silent_setup():
    config = rendered()
    assert config["receivers"] == [{"name": "fleet"}]
    assert config["route"]["receiver"] == "fleet"
    assert "smtp_smarthost" not in config["global"]


def test_webhook_receiver():
    config = rendered(webhook_url="https://hooks.example.net/alerts?team=gpu&x=1")
    webhook = config["receivers"][0]["webhook_configs"][0]
    assert webhook == {"url": "https://hooks.example.net/alerts?team=gpu&x=1", "send_resolved": True}


def test_webhook_token_is_read_from_a_file():
    config = rendered(webhook_url="https://hooks.example.net/a", webhook_token_file="/run/secrets/hook_token")
    auth = config["receivers"][0]["webhook_configs"][0]["http_config"]["authorization"]
    assert auth == {"type": "Bearer", "credentials_file": "/run/secrets/hook_token"}


def test_email_receiver_with_smtp_login():
    config = rendered(**EMAIL, smtp_username="dc", smtp_password_file="/run/secrets/smtp_password",
                      smtp_require_tls=False, send_resolved=False)
    assert config["global"] == {
        "resolve_timeout": "5m", "smtp_smarthost": "smtp.example.net:587", "smtp_from": "dc@example.net",
        "smtp_require_tls": False, "smtp_auth_username": "dc", "smtp_auth_password_file": "/run/secrets/smtp_password",
    }
    assert config["receivers"][0]["email_configs"] == [
        {"to": "ops@example.net, oncall@example.net", "send_resolved": False}]


def test_both_receivers_and_timings():
    routing = AlertRouting(webhook_url="http://10.0.0.9:9000/hook", **EMAIL, group_wait="10s",
                           group_interval="2m", repeat_interval="12h", critical_repeat_interval="30m")
    config = yaml.safe_load(render_alertmanager_config(routing))
    assert routing.receivers == ("webhook", "email")
    assert set(config["receivers"][0]) == {"name", "webhook_configs", "email_configs"}
    route = config["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("10s", "2m", "12h")
    assert route["group_by"] == ["alertname", "server"]
    assert route["routes"] == [{"receiver": "fleet", "matchers": ['severity="critical"'], "repeat_interval": "30m"}]


def test_a_down_server_inhibits_what_it_explains():
    rules = rendered()["inhibit_rules"]
    worker = next(r for r in rules if r["source_matchers"] == ['alertname="WorkerDown"'])
    assert worker["equal"] == ["server"]
    assert "ExporterDown" in worker["target_matchers"][0]


def test_email_addresses_as_a_list():
    assert AlertRouting(**{**EMAIL, "email_to": ["a@example.net", " b@example.net "]}).email_to == (
        "a@example.net", "b@example.net")


@pytest.mark.parametrize("settings, field", [
    ({"webhook_url": "ftp://example.net/x"}, "webhook_url"),
    ({"webhook_url": "https://example.net/a b"}, "webhook_url"),
    ({"webhook_url": 'https://example.net/"\nurl: x'}, "webhook_url"),
    ({**EMAIL, "email_to": "ops@example.net, not an address"}, "email_to"),
    ({**EMAIL, "email_from": "dc@example.net\nsmtp_from: evil@example.net"}, "email_from"),
    ({**EMAIL, "smtp_smarthost": "smtp.example.net"}, "smtp_smarthost"),
    ({"email_to": "ops@example.net", "email_from": "dc@example.net"}, "smtp_smarthost"),
    ({"email_to": "ops@example.net", "smtp_smarthost": "smtp.example.net:25"}, "email_from"),
    ({**EMAIL, "smtp_password_file": "/run/secrets/smtp"}, "smtp_username"),
    ({**EMAIL, "smtp_username": "dc", "smtp_password_file": "secrets/smtp"}, "smtp_password_file"),
    ({"webhook_token_file": "/run/secrets/hook"}, "webhook_url"),
    ({"group_wait": "soon"}, "group_wait"),
    ({"repeat_interval": "4 h"}, "repeat_interval"),
])
def test_bad_settings_are_refused_naming_the_field(settings, field):
    with pytest.raises(errors.InvalidAlerting) as caught:
        AlertRouting(**settings)
    assert caught.value.field == field


def test_blank_text_means_not_set():
    routing = AlertRouting(webhook_url="  ", email_to="", email_from=" ")
    assert routing.webhook_url is None and routing.email_to == () and routing.receivers == ()


def test_alert_rules_are_the_packaged_file():
    assert alert_rules() == (ROOT / "templates" / "rules" / "dc-overview-alerts.yml").read_text()
    assert yaml.safe_load(alert_rules())["groups"]
