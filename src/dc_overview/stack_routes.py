"""Use cases for the shared reverse proxy's routes (the ProxyRegistry port):
dc-overview's own services are put there by ``apply``; these add, list and
remove others, e.g. an ipmi-monitor installed later."""

from __future__ import annotations

from . import errors
from .ports import Deps, ProxyRegistry, ServiceRoute
from .proxy_routes import check_route


def _registry(deps: Deps) -> ProxyRegistry:
    if deps.proxy is None:
        raise errors.OperationUnavailable("the proxy's routes", "open the fleet with dc_overview.open()")
    return deps.proxy


async def proxy_routes(deps: Deps) -> list[ServiceRoute]:
    return sorted(await _registry(deps).routes(), key=lambda r: r.path)


async def register_route(deps: Deps, name: str, path: str, upstream: str, *, container: str | None = None,
                         strip_prefix: bool = True) -> ServiceRoute:
    if not path.startswith("/"):
        path = "/" + path
    if not path.endswith("/"):
        path += "/"
    route = check_route(ServiceRoute(name=name, path=path, upstream=upstream, container=container,
                                     strip_prefix=strip_prefix))
    await _registry(deps).register(route)
    return route


async def unregister_route(deps: Deps, name: str) -> None:
    await _registry(deps).unregister(name)
