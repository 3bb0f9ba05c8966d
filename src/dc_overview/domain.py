"""The fleet's value objects. Frozen, validated on construction, changed with
``attrs.evolve``. Nothing here does I/O or knows how it is stored."""

from __future__ import annotations

import base64
import enum
import hashlib
import ipaddress
import re
from datetime import datetime
from typing import Any, Mapping

import attrs

from . import errors

NODE_EXPORTER = "node_exporter"
GPU_EXPORTER = "gpu_exporter"
HOST_ROLES = ("worker", "master", "both")  # what quickstart makes of a host
EXPORTER_PORTS: Mapping[str, int] = {NODE_EXPORTER: 9100, GPU_EXPORTER: 9835}

_NAME = re.compile(r"^[^\W][\w.\-]{0,63}$")  # letters (any script), digits, _ . -
_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")
_LABEL_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_LABELS = frozenset({"job", "instance", "server", "exporter"})


class ServerStatus(str, enum.Enum):
    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"
    AUTH_FAILED = "auth_failed"
    ERROR = "error"


# -- validators (also used by use cases for single fields) --------------------


def check_name(value: str, field: str = "name") -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise errors.InvalidName(
            field,
            f"{value!r} is not a valid name",
            "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value


def check_address(value: str, field: str = "address") -> str:
    """An OS address: an IPv4/IPv6 address or a DNS hostname."""
    if not isinstance(value, str) or not value:
        raise errors.InvalidAddress(field, "an address is required")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    host = value.rstrip(".")
    labels = host.split(".")
    looks_numeric = sum(part.isdigit() for part in labels) >= 3  # a mistyped IP, not a name
    if looks_numeric or len(host) > 253 or not all(_HOSTNAME_LABEL.match(p) for p in labels):
        raise errors.InvalidAddress(
            field,
            f"{value!r} is not an IP address or hostname",
            "give an IPv4/IPv6 address like 10.0.0.5 or a hostname like gpu-01.example.net",
        )
    return host.lower()


def check_ip(value: str, field: str = "bmc_ip") -> str:
    try:
        return str(ipaddress.ip_address(value))
    except (ValueError, TypeError):
        raise errors.InvalidAddress(field, f"{value!r} is not an IP address") from None


def check_port(value: Any, field: str = "port") -> int:
    try:
        port = int(value)
        if str(value).strip() != str(port) and not isinstance(value, int):
            raise ValueError
    except (ValueError, TypeError):
        raise errors.InvalidPort(field, f"{value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise errors.InvalidPort(field, f"{port} is out of range", "ports are 1-65535")
    return port


def check_user(value: str, field: str = "ssh_user") -> str:
    if not isinstance(value, str) or not _USER.match(value):
        raise errors.InvalidInput(field, f"{value!r} is not a valid Unix user name")
    return value


def check_labels(value: Mapping[str, str], field: str = "labels") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, val in dict(value).items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key) or key.startswith("__"):
            raise errors.InvalidLabel(
                field, f"{key!r} is not a valid label name", "use letters, digits and '_'"
            )
        if key in RESERVED_LABELS:
            raise errors.InvalidLabel(field, f"{key!r} is reserved", "choose another label name")
        if not isinstance(val, str) or len(val) > 256 or "\n" in val:
            raise errors.InvalidLabel(field, f"value of {key!r} must be one line of text")
        out[key] = val
    return out


def parse_label(text: str) -> tuple[str, str]:
    """``key=value`` as typed on a command line."""
    key, sep, val = text.partition("=")
    if not sep:
        raise errors.InvalidLabel("labels", f"{text!r} is not key=value")
    check_labels({key: val})
    return key, val


def _attrs_check(check):
    def validator(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        check(value, attribute.name)

    return validator


def _optional(check):
    def validator(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None:
            check(value, attribute.name)

    return validator


# -- value objects ---------------------------------------------------------------


@attrs.frozen
class ExporterState:
    installed: bool = False
    version: str | None = None
    enabled: bool = True


@attrs.frozen
class Server:
    name: str = attrs.field(validator=_attrs_check(check_name))
    address: str = attrs.field(converter=check_address)
    ssh_user: str = attrs.field(default="root", validator=_attrs_check(check_user))
    ssh_port: int = attrs.field(default=22, converter=check_port)
    ssh_key: str | None = attrs.field(default=None, validator=_optional(check_name))
    bmc_ip: str | None = attrs.field(
        default=None, converter=lambda v: None if v in (None, "") else check_ip(v)
    )
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=check_labels)
    gpu_count: int | None = None
    exporters: Mapping[str, ExporterState] = attrs.field(factory=dict)
    status: ServerStatus = ServerStatus.UNKNOWN
    last_seen: datetime | None = None
    host_key: str | None = None
    id: int | None = None

    def exporter(self, name: str) -> ExporterState:
        return self.exporters.get(name, ExporterState(installed=False))

    @property
    def may_have_gpu(self) -> bool:
        """Unknown until checked: only a check that found none rules GPUs out."""
        return self.gpu_count is None or self.gpu_count > 0


@attrs.frozen
class SshKey:
    name: str = attrs.field(validator=_attrs_check(check_name))
    public_key: str
    fingerprint: str
    private_key_path: str
    id: int | None = None


def fingerprint(public_key: str) -> str:
    """OpenSSH's SHA256 fingerprint of an ``ssh-xxx BASE64 [comment]`` line."""
    parts = public_key.split()
    if len(parts) < 2:
        raise errors.InvalidKey("public_key", "not an OpenSSH public key line")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise errors.InvalidKey("public_key", "the key data is not base64") from None
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


@attrs.frozen
class Settings:
    """Fleet-wide settings with their defaults. Each field is settable by name."""

    dc_port: int = attrs.field(default=5001, converter=check_port)
    ssh_concurrency: int = attrs.field(default=50, converter=int)
    ssh_connect_timeout: float = attrs.field(default=10.0, converter=float)
    ssh_command_timeout: float = attrs.field(default=60.0, converter=float)
    default_ssh_user: str = attrs.field(default="root", validator=_attrs_check(check_user))
    default_ssh_key: str | None = None
    grafana_url: str = "/grafana/"
    prometheus_url: str = "/prometheus/"
    ipmi_monitor_url: str = "/ipmi/"

    @ssh_concurrency.validator
    def _concurrency(self, attribute: attrs.Attribute, value: int) -> None:
        if not 1 <= value <= 2000:
            raise errors.InvalidSetting(attribute.name, f"{value} is out of range 1-2000")

    @ssh_connect_timeout.validator
    @ssh_command_timeout.validator
    def _timeout(self, attribute: attrs.Attribute, value: float) -> None:
        if not 0 < value <= 3600:
            raise errors.InvalidSetting(attribute.name, f"{value} is out of range (0, 3600]")


SETTING_NAMES = tuple(a.name for a in attrs.fields(Settings))


def change_setting(settings: Settings, name: str, value: Any) -> Settings:
    """Settings with ``name`` set to ``value`` (text as typed is accepted)."""
    if name not in SETTING_NAMES:
        raise errors.InvalidSetting(
            name, "unknown setting", "known settings: " + ", ".join(SETTING_NAMES)
        )
    if value in ("", None) and name == "default_ssh_key":
        value = None
    try:
        return attrs.evolve(settings, **{name: value})
    except errors.DcOverviewError:
        raise
    except (TypeError, ValueError) as exc:
        raise errors.InvalidSetting(name, f"{value!r} is not valid: {exc}") from None
