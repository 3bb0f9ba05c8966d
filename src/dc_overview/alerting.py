"""Alerts: the packaged Prometheus alert rules, and the Alertmanager
configuration that delivers them to a webhook and/or by e-mail.

The stack ships ``alert_rules()`` as ``<data>/prometheus/rules/dc-overview-alerts.yml``
(Prometheus loads ``/etc/prometheus/rules/*.yml``) and, when Alertmanager
runs, writes ``render_alertmanager_config(...)`` as its ``alertmanager.yml``.
Secrets never go into that file: the SMTP password and the webhook's bearer
token are read by Alertmanager from files (``*_file`` paths as seen by it).
The webhook URL itself is in the file (Alertmanager 0.25 cannot read it from
one), so the file is written readable by its owner only.
"""

from __future__ import annotations

import importlib.resources
import re

import attrs

from . import errors
from .stack_templates import render

RULES_FILE = "dc-overview-alerts.yml"
ALERTMANAGER_TEMPLATE = "alertmanager.yml.j2"

_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_URL = re.compile(r"^https?://[^\s\"'\\<>]+$")
_EMAIL = re.compile(r"^[^\s@,<>\"'\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_SMARTHOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})$")
_USERNAME = re.compile(r"^[^\s\"'\\]{1,256}$")
_PATH = re.compile(r"^/[^\s\"'\\]*$")


def _fail(field: str, message: str, hint: str | None = None) -> None:
    raise errors.InvalidAlerting(field, message, hint)


def _optional_text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _addresses(value: object) -> tuple[str, ...]:
    """``a@x, b@y`` as typed, or a list."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[arg-type]
    return tuple(item.strip() for item in items if str(item).strip())


def _check(pattern: re.Pattern[str], hint: str):
    def validator(instance: object, attribute: attrs.Attribute, value: str | None) -> None:
        if value is not None and not pattern.match(value):
            _fail(attribute.name, f"{value!r} is not valid", hint)

    return validator


@attrs.frozen
class AlertRouting:
    """Where alerts go and how often. No webhook and no e-mail is allowed:
    alerts are then only seen in Alertmanager's and Prometheus' web pages."""

    webhook_url: str | None = attrs.field(
        default=None, converter=_optional_text,
        validator=_check(_URL, "an http(s) URL, e.g. https://hooks.example.net/alerts"))
    # a file holding a bearer token for the webhook, as Alertmanager sees it
    webhook_token_file: str | None = attrs.field(
        default=None, converter=_optional_text, validator=_check(_PATH, "an absolute path"))
    email_to: tuple[str, ...] = attrs.field(default=(), converter=_addresses)
    email_from: str | None = attrs.field(
        default=None, converter=_optional_text, validator=_check(_EMAIL, "an address, e.g. alerts@example.net"))
    smtp_smarthost: str | None = attrs.field(
        default=None, converter=_optional_text, validator=_check(_SMARTHOST, "host:port, e.g. smtp.example.net:587"))
    smtp_username: str | None = attrs.field(
        default=None, converter=_optional_text, validator=_check(_USERNAME, "one word"))
    # a file holding the SMTP password, as Alertmanager sees it
    smtp_password_file: str | None = attrs.field(
        default=None, converter=_optional_text, validator=_check(_PATH, "an absolute path"))
    smtp_require_tls: bool = True
    send_resolved: bool = True
    group_wait: str = attrs.field(default="30s", validator=_check(_DURATION, "e.g. 30s, 1m"))
    group_interval: str = attrs.field(default="5m", validator=_check(_DURATION, "e.g. 5m"))
    repeat_interval: str = attrs.field(default="4h", validator=_check(_DURATION, "e.g. 4h, 1d"))
    critical_repeat_interval: str = attrs.field(default="1h", validator=_check(_DURATION, "e.g. 1h"))

    @email_to.validator
    def _email_to(self, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
        for address in value:
            if not _EMAIL.match(address):
                _fail("email_to", f"{address!r} is not an e-mail address", "give addresses separated by commas")

    def __attrs_post_init__(self) -> None:
        if self.email_to:
            if not self.smtp_smarthost:
                _fail("smtp_smarthost", "e-mail alerts need the SMTP server to send through",
                      "give it as host:port, e.g. smtp.example.net:587")
            if not self.email_from:
                _fail("email_from", "e-mail alerts need a sender address")
        if self.smtp_password_file and not self.smtp_username:
            _fail("smtp_username", "an SMTP password needs the user name it belongs to")
        if self.webhook_token_file and not self.webhook_url:
            _fail("webhook_url", "a webhook token needs the webhook's URL")

    @property
    def receivers(self) -> tuple[str, ...]:
        """What delivers: ``webhook``, ``email`` (none: nothing is sent)."""
        return tuple(name for name, on in (("webhook", self.webhook_url), ("email", self.email_to)) if on)


def check_routing_value(field: str, value: object) -> object:
    """One field of ``AlertRouting`` checked on its own (its form, not how it
    goes with the others), converted as the field converts it. Raises
    InvalidAlerting naming ``field``."""
    attribute = attrs.fields_dict(AlertRouting)[field]
    converted = attribute.converter(value) if attribute.converter is not None else value  # type: ignore[operator,misc]
    if attribute.validator is not None:
        attribute.validator(None, attribute, converted)  # type: ignore[arg-type]
    return converted


def render_alertmanager_config(routing: AlertRouting) -> str:
    """Alertmanager's configuration (YAML) for ``routing``: one receiver for
    the whole fleet, alerts grouped per alert and server, critical ones
    repeated more often, and the alerts a down server explains inhibited.
    Every value goes in as a JSON string, which YAML reads as it is."""
    return render(ALERTMANAGER_TEMPLATE, routing=routing)


def alert_rules() -> str:
    """The packaged Prometheus alert rules (``templates/rules/dc-overview-alerts.yml``)."""
    return importlib.resources.files("dc_overview.templates").joinpath("rules", RULES_FILE).read_text()


__all__ = ["AlertRouting", "RULES_FILE", "alert_rules", "check_routing_value", "render_alertmanager_config"]
