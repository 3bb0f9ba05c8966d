"""The operator's choices for the monitoring stack: ``StackOptions``, each
checked when it is set (stored as ``stack.<name>`` settings), and
``change_option``. ``stack.build_stack`` turns them into the stack's
description. Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import attrs

from . import errors
from .alerting import check_routing_value
from .domain import check_address, check_port

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,40}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_URL = re.compile(r"^https?://[^\s\"'\\]+$")


# -- validators -----------------------------------------------------------------


def _fail(field: str, message: str, hint: str | None = None) -> None:
    raise errors.InvalidStackOption(field, message, hint)


def _choice(*allowed: str):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in allowed:
            _fail(attribute.name, f"{value!r} is not one of {', '.join(allowed)}")

    return check


def _matches(pattern: re.Pattern[str], hint: str, optional: bool = False):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if optional and value is None:
            return
        if not isinstance(value, str) or not pattern.match(value):
            _fail(attribute.name, f"{value!r} is not valid", hint)

    return check


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not yes or no")


def _as_int(value: Any) -> Any:
    try:
        return int(str(value).strip()) if not isinstance(value, bool) else value
    except ValueError:
        return value


def _port(default: int, allow_zero: bool = False) -> Any:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if allow_zero and value == 0:
            return
        try:
            check_port(value, attribute.name)
        except errors.InvalidPort as exc:
            _fail(attribute.name, exc.message.split(": ", 1)[-1], exc.hint or ("0 turns it off" if allow_zero else None))

    return attrs.field(default=default, converter=_as_int, validator=check)


def _optional_text(value: Any) -> str | None:
    return None if value in (None, "") else str(value).strip()


def _domain(value: Any) -> str | None:
    value = _optional_text(value)
    return None if value is None else check_address(value, "domain")


def _ip(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        _fail(attribute.name, f"{value!r} is not an IP address", "e.g. 0.0.0.0 for every address")


def _routing(field: str):
    """Checked as ``AlertRouting.<field>`` checks it (its form only: how the
    routing fits together is checked when Alertmanager is on)."""

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        try:
            check_routing_value(field, value)
        except errors.InvalidAlerting as exc:
            _fail(attribute.name, exc.message.split(": ", 1)[-1], exc.hint)

    return check


def _addresses(value: Any) -> tuple[str, ...]:
    """``a@x, b@y`` as typed, or a list (as stored)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(item).strip() for item in items if str(item).strip())


def _routing_text(field: str, default: str | None = None) -> Any:
    return attrs.field(default=default, converter=_optional_text if default is None else str,
                       validator=_routing(field))


# -- the operator's choices -------------------------------------------------------


@attrs.frozen
class StackOptions:
    """What runs and how. Text as typed on a command line is accepted."""

    # which services run
    grafana: bool = attrs.field(default=True, converter=_boolean)
    web_app: bool = attrs.field(default=True, converter=_boolean)
    watchtower: bool = attrs.field(default=False, converter=_boolean)
    vastai_exporter: bool = attrs.field(default=False, converter=_boolean)
    runpod_exporter: bool = attrs.field(default=False, converter=_boolean)
    ipmi_monitor: str = attrs.field(default="auto", validator=_choice("auto", "on", "off"))
    # the proxy
    domain: str | None = attrs.field(default=None, converter=_domain)
    tls: str = attrs.field(default="self-signed", validator=_choice("self-signed", "letsencrypt", "off"))
    http_port: int = _port(80)
    https_port: int = _port(443)
    bind_address: str = attrs.field(default="0.0.0.0", validator=_ip)
    letsencrypt_dir: str = "/etc/letsencrypt"
    # Prometheus
    targets_source: str = attrs.field(default="file", validator=_choice("file", "http"))
    scrape_interval: str = attrs.field(default="30s", validator=_matches(_DURATION, "e.g. 15s, 1m"))
    retention: str = attrs.field(default="30d", validator=_matches(_DURATION, "e.g. 15d, 26w"))
    prometheus_local_port: int = _port(9090, allow_zero=True)
    remote_write_url: str | None = attrs.field(
        default=None, converter=_optional_text,
        validator=_matches(_URL, "an http(s) URL, e.g. http://victoria:8428/api/v1/write", optional=True))
    remote_write_username: str | None = attrs.field(default=None, converter=_optional_text)
    # Alertmanager, and where it sends the alerts (dc_overview.alerting.AlertRouting)
    alertmanager: bool = attrs.field(default=False, converter=_boolean)
    alertmanager_local_port: int = _port(9093, allow_zero=True)
    alert_webhook_url: str | None = _routing_text("webhook_url")
    alert_email_to: tuple[str, ...] = attrs.field(default=(), converter=_addresses, validator=_routing("email_to"))
    alert_email_from: str | None = _routing_text("email_from")
    alert_smtp_smarthost: str | None = _routing_text("smtp_smarthost")
    alert_smtp_username: str | None = _routing_text("smtp_username")
    alert_smtp_require_tls: bool = attrs.field(default=True, converter=_boolean)
    alert_send_resolved: bool = attrs.field(default=True, converter=_boolean)
    alert_repeat_interval: str = _routing_text("repeat_interval", "4h")
    alert_critical_repeat_interval: str = _routing_text("critical_repeat_interval", "1h")
    # images
    app_image: str = attrs.field(default="ghcr.io/cryptolabsza/dc-overview:2.0.0", validator=_matches(_IMAGE, "an image reference"))
    prometheus_image: str = attrs.field(default="prom/prometheus:v2.55.1", validator=_matches(_IMAGE, "an image reference"))
    grafana_image: str = attrs.field(default="grafana/grafana-oss:11.4.0", validator=_matches(_IMAGE, "an image reference"))
    proxy_image: str = attrs.field(default="nginx:1.27-alpine", validator=_matches(_IMAGE, "an image reference"))
    watchtower_image: str = attrs.field(default="containrrr/watchtower:1.7.1", validator=_matches(_IMAGE, "an image reference"))
    vastai_exporter_image: str = attrs.field(default="500farm/vastai-exporter:latest", validator=_matches(_IMAGE, "an image reference"))
    runpod_exporter_image: str = attrs.field(default="ghcr.io/cryptolabsza/runpod-exporter:latest", validator=_matches(_IMAGE, "an image reference"))
    alertmanager_image: str = attrs.field(default="prom/alertmanager:v0.27.0", validator=_matches(_IMAGE, "an image reference"))
    # naming (a second stack on one engine, e.g. for tests, takes a prefix and its own network)
    name_prefix: str = attrs.field(default="", validator=lambda i, a, v: v == "" or _matches(_SLUG, "lower-case letters, digits, '-', '_' or '.'")(i, a, v))
    network: str = attrs.field(default="cryptolabs", validator=_matches(_SLUG, "lower-case letters, digits, '-', '_' or '.'"))
    # from the fleet settings (dc_port), not set here
    app_port: int = _port(5001)

    def __attrs_post_init__(self) -> None:
        if self.tls == "letsencrypt" and not self.domain:
            _fail("domain", "Let's Encrypt needs the domain the certificate is for",
                  "set it with `dc-overview stack set domain monitor.example.net`")
        if self.tls != "off" and self.http_port == self.https_port:
            _fail("https_port", f"{self.https_port} is also the HTTP port")


STACK_OPTION_NAMES = tuple(a.name for a in attrs.fields(StackOptions) if a.name != "app_port")


def change_option(options: StackOptions, name: str, value: Any) -> StackOptions:
    if name not in STACK_OPTION_NAMES:
        _fail(name, "unknown stack option", "options: " + ", ".join(STACK_OPTION_NAMES))
    try:
        return attrs.evolve(options, **{name: value})
    except errors.DcOverviewError:
        raise
    except (TypeError, ValueError) as exc:
        raise errors.InvalidStackOption(name, f"{value!r} is not valid: {exc}") from None

