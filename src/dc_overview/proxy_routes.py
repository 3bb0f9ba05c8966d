"""Routes of the shared reverse proxy: one nginx include file per service in
the proxy's ``conf.d/``, whose first line carries the route as JSON, and the
services list (``services.json``) the landing page reads.

dc-overview writes the routes of its own stack; other products (ipmi-monitor)
add theirs through the ProxyRegistry port. Everything put in nginx's
configuration is checked here first, so a route cannot inject directives.
"""

from __future__ import annotations

import json
import re

import attrs

from . import errors
from .ports import ServiceRoute
from .stack_templates import render

HEADER = "# dc-overview-route: "
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PATH = re.compile(r"^/[A-Za-z0-9][A-Za-z0-9._-]{0,62}/$")
_UPSTREAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}:[0-9]{1,5}$")
_SUB_PATH = re.compile(r"^[A-Za-z0-9._-][A-Za-z0-9._/-]{0,127}$")
_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
RESERVED_PATHS = ("/api/", "/healthz/", "/.well-known/")


def check_route(route: ServiceRoute) -> ServiceRoute:
    """The route, if nginx can be given it as it is; else InvalidRoute naming the field."""
    if not _NAME.match(route.name):
        raise errors.InvalidRoute("name", f"{route.name!r} is not a valid service name",
                                  "lower-case letters, digits, '-' and '_'")
    if not _PATH.match(route.path) or route.path in RESERVED_PATHS:
        raise errors.InvalidRoute("path", f"{route.path!r} is not a valid route path",
                                  "one segment between slashes, e.g. /ipmi/")
    if not _UPSTREAM.match(route.upstream) or not 1 <= int(route.upstream.rsplit(":", 1)[1]) <= 65535:
        raise errors.InvalidRoute("upstream", f"{route.upstream!r} is not host:port", "e.g. ipmi-monitor:5000")
    if route.container is not None and not _CONTAINER.match(route.container):
        raise errors.InvalidRoute("container", f"{route.container!r} is not a container name")
    for sub in route.read_only_paths:
        if not _SUB_PATH.match(sub) or ".." in sub:
            raise errors.InvalidRoute("read_only_paths", f"{sub!r} is not a path below {route.path}")
    return route


def route_file(name: str) -> str:
    """Its include file, relative to the proxy's config folder."""
    return f"conf.d/{name}.conf"


def route_config(route: ServiceRoute, conf_dir: str) -> str:
    route = check_route(route)
    header = json.dumps(attrs.asdict(route), sort_keys=True)
    return render(
        "proxy/route.conf.j2", route=route, header=header, bare=route.path.rstrip("/"),
        variable="upstream_" + route.name.replace("-", "_"), conf_dir=conf_dir,
    )


def parse_route(text: str) -> ServiceRoute | None:
    """The route an include file was written for; None for a file not made this way."""
    first = text.split("\n", 1)[0]
    if not first.startswith(HEADER):
        return None
    try:
        data = json.loads(first[len(HEADER):])
        data["read_only_paths"] = tuple(data.get("read_only_paths") or ())
        return check_route(ServiceRoute(**data))
    except (ValueError, TypeError, errors.InvalidRoute):
        return None


def services_json(routes: list[ServiceRoute]) -> str:
    """The landing page's list: name, path and container of each route, by path."""
    entries = [{"name": r.name, "path": r.path, "container": r.container} for r in sorted(routes, key=lambda r: r.path)]
    return json.dumps(entries, indent=2) + "\n"
