"""What every part of the web app shares: its configuration, the typed keys
under which the app and each request keep their state, and the client as
seen through a trusted reverse proxy (address, scheme, path prefix)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

from dc_overview import AsyncFleet, errors
from dc_overview.identity import User

if TYPE_CHECKING:  # imported for annotations only; these modules import this one
    import jinja2

    from .web_auth import AuthState
    from .web_cache import BodyCache, PerTurn
    from .web_jobs import JobRunner
    from .web_metrics import WebMetrics

_PREFIX = re.compile(r"^(/[A-Za-z0-9._~%-]+)*$")


def normalize_prefix(value: str | None) -> str | None:
    """``/dc/`` -> ``/dc``; ``/`` or empty -> ``""``; None when it is not a plain path."""
    if value is None:
        return None
    value = value.strip()
    if value in ("", "/"):
        return ""
    value = "/" + value.strip("/")
    return value if _PREFIX.match(value) and "/../" not in value + "/" else None


def parse_networks(values: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Addresses and CIDR networks, given as repeated options or comma-separated."""
    networks = []
    for value in values:
        for item in str(value).split(","):
            if item.strip():
                try:
                    networks.append(ipaddress.ip_network(item.strip(), strict=False))
                except ValueError:
                    raise errors.InvalidInput("trusted_proxies", f"{item.strip()!r} is not an address or network") from None
    return tuple(networks)


def _base_path(value: str) -> str:
    normalized = normalize_prefix(value)
    if normalized is None:
        raise errors.InvalidInput("base_path", f"{value!r} is not a path like /dc", "give it as /dc (or leave it empty)")
    return normalized


@attrs.frozen
class WebConfig:
    """How the web app is served. ``base_path`` is the prefix under which a
    reverse proxy publishes it (``/dc``); ``trusted_proxies`` are the only
    peers whose X-Forwarded-For/-Proto/-Prefix headers are believed.
    ``prometheus_api`` is where this process reaches Prometheus (the
    ``prometheus_url`` setting is used when it is an absolute URL).
    ``secure_cookies``: None sets Secure when the request came over HTTPS."""

    host: str = "127.0.0.1"
    port: int = 5001
    base_path: str = attrs.field(default="", converter=_base_path)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = attrs.field(
        default=(), converter=parse_networks
    )
    prometheus_api: str | None = None
    secure_cookies: bool | None = None
    login_failures: int = 5  # failed logins per name and address before a pause
    login_window: float = 300.0  # seconds over which failures count, and the pause


@attrs.frozen
class ClientInfo:
    """The client as far as it can be trusted."""

    address: str
    scheme: str
    prefix: str


@attrs.frozen
class Identity:
    """Who is asking: a user through a session or an API token, or nobody."""

    user: User | None = None
    via: str | None = None  # "session" | "token"
    bearer: str | None = attrs.field(default=None, repr=False)  # a Bearer credential that is not a user token

    @property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.is_admin


FLEET = web.AppKey("fleet", AsyncFleet)
CONFIG = web.AppKey("config", WebConfig)
JOBS: web.AppKey[JobRunner] = web.AppKey("jobs")
AUTH: web.AppKey[AuthState] = web.AppKey("auth")
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates")
METRICS: web.AppKey[WebMetrics] = web.AppKey("metrics")
BODIES: web.AppKey[BodyCache] = web.AppKey("bodies")
REVISION: web.AppKey[PerTurn] = web.AppKey("revision")  # the database's (AsyncFleet.revision)
SCRAPE: web.AppKey[PerTurn] = web.AppKey("scrape")  # the scrape token Prometheus sends, or None

# request keys (typed, as the app's are)
CLIENT = web.RequestKey("dc_overview.client", ClientInfo)
IDENTITY = web.RequestKey("dc_overview.identity", Identity)
COOKIE: web.RequestKey[dict[str, Any]] = web.RequestKey("dc_overview.cookie")  # the decoded cookie payload
# the cookie payload to write back with the response; None: unchanged
COOKIE_OUT: web.RequestKey[dict[str, Any] | None] = web.RequestKey("dc_overview.cookie_out")


def fleet(request: web.Request) -> AsyncFleet:
    return request.app[FLEET]


async def revision(request: web.Request) -> Hashable:
    """The database revision (``AsyncFleet.revision``), read at most once
    per turn of the event loop (``web_cache.PerTurn``)."""
    return await request.app[REVISION].get()


async def scrape_token(request: web.Request) -> str | None:
    """The scrape token (None when none is set), read as ``revision`` is."""
    return await request.app[SCRAPE].get()


def client(request: web.Request) -> ClientInfo:
    return request[CLIENT]


def identity(request: web.Request) -> Identity:
    return request.get(IDENTITY) or Identity()


def url(request: web.Request, path: str) -> str:
    """``path`` (``/servers``) under the prefix the client sees (``/dc/servers``)."""
    return client(request).prefix + path


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path == "/metrics"
