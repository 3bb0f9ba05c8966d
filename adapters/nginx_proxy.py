"""The ProxyRegistry port on the stack's nginx proxy.

Each service is one include file in ``<data>/stack/proxy/conf.d/`` (mounted
into the proxy) and one entry in ``html/services.json``. A change is put in
place, checked with ``nginx -t`` inside the proxy container (through the
container runtime), and only then does the proxy reload; a change nginx
refuses is undone. Without a running proxy the files are written and are
read when it starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from dc_overview import errors
from dc_overview.fsutil import atomic_write
from dc_overview.ports import ContainerRuntime, ServiceRoute
from dc_overview.proxy_routes import check_route, parse_route, route_config, route_file, services_json
from dc_overview.stack_names import LABEL, PROXY, PROXY_CONF, PROXY_DIR


class NginxProxyRegistry:
    def __init__(self, runtime: ContainerRuntime, data_dir: Path) -> None:
        self.runtime = runtime
        self.data_dir = Path(data_dir).resolve()  # as the stack labels its containers
        self.folder = self.data_dir / PROXY_DIR

    async def routes(self) -> list[ServiceRoute]:
        found = []
        for path in sorted((self.folder / "conf.d").glob("*.conf")):
            try:
                route = parse_route(path.read_text())
            except (OSError, UnicodeDecodeError):
                continue
            if route is not None:
                found.append(route)
        return found

    async def register(self, route: ServiceRoute) -> None:
        route = check_route(route)
        for other in await self.routes():
            if other.path == route.path and other.name != route.name:
                raise errors.Conflict(f"{route.path} is already served for {other.name!r}",
                                      f"choose another path, or unregister {other.name} first")
        await self._change(route.name, route_config(route, PROXY_CONF), f"the route for {route.name}")

    async def unregister(self, name: str) -> None:
        if not (self.folder / route_file(name)).exists():
            raise errors.NotFound(f"no route named {name!r} in the proxy", "see `dc-overview stack routes`")
        await self._change(name, None, f"removing the route for {name}")

    async def _change(self, name: str, text: str | None, what: str) -> None:
        path = self.folder / route_file(name)
        try:
            before = path.read_text()
        except FileNotFoundError:
            before = None
        self._put(path, text)
        proxy = await self._proxy()
        if proxy is not None:
            try:
                from dc_overview.stack_control import check_and_reload_proxy  # the stack's modules load when used

                await check_and_reload_proxy(self.runtime, proxy)
            except errors.ProxyConfigInvalid as exc:
                self._put(path, before)
                raise errors.ProxyConfigInvalid(what, exc.output) from None
        atomic_write(self.folder / "html" / "services.json", services_json(await self.routes()))

    @staticmethod
    def _put(path: Path, text: str | None) -> None:
        if text is None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        else:
            atomic_write(path, text)

    async def _proxy(self) -> str | None:
        """The running proxy container of the stack on this data dir, if any."""
        found = await self.runtime.containers([
            f"{LABEL}.managed=true", f"{LABEL}.service={PROXY}", f"{LABEL}.data-dir={self.data_dir}",
        ])
        running = [c for c in found if c.state == "running" and not c.name.endswith("-previous")]
        return running[0].name if running else None
