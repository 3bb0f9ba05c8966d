"""The web app: ``create_app(fleet, config)`` builds the aiohttp application
(pages, JSON API, static files) and ``serve`` runs it until SIGINT/SIGTERM.

Every request goes through one middleware, ``request_pipeline``, which in
this order:
1. times it, for the latency metric (web_metrics);
2. finds the client's address, scheme and path prefix, taken from
   X-Forwarded-For/-Proto/-Prefix only when the peer is a trusted proxy;
3. admits it or not: cookie, session or token, roles, CSRF (web_auth);
4. runs the route's handler;
5. answers domain errors as HTTP (InvalidInput 400 naming the field,
   AuthenticationFailed 401, PermissionDenied 403, NotFound 404,
   Conflict 409, OperationUnavailable 501), JSON for the API, pages else.
Security headers (CSP, frame, nosniff, referrer) and the session cookie,
when it changed, go on every response (``_finish_headers``).
Requests are logged by web_access_log (one line each, written in batches).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import signal
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from aiohttp import web

from dc_overview import AsyncFleet, errors
from dc_overview.credentials import SCRAPE_TOKEN

from . import web_api, web_pages, web_settings
from .web_access_log import AccessLogBatch, batched_access_log
from .web_auth import (
    AuthState,
    CookieCodec,
    Handler,
    LoginThrottle,
    admit,
    write_cookie,
)
from .web_cache import BodyCache, PerTurn
from .web_context import (
    AUTH,
    BODIES,
    CLIENT,
    CONFIG,
    FLEET,
    JOBS,
    METRICS,
    REVISION,
    SCRAPE,
    TEMPLATES,
    ClientInfo,
    WebConfig,
    is_api,
    normalize_prefix,
)
from .web_jobs import JobRunner
from .web_json import json_response
from .web_metrics import WebMetrics, observe_request
from .web_render import STATIC_ROUTE, render_error, template_env

log = logging.getLogger("dc_overview.web")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
MAX_BODY = 2 * 1024 * 1024


def static_dir() -> Path:
    return Path(str(resources.files("dc_overview.templates") / "web" / "static"))


# -- the client through a trusted proxy ---------------------------------------------------------


def _trusted(config: WebConfig, address: str | None) -> bool:
    if not address or not config.trusted_proxies:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in network for network in config.trusted_proxies)


def client_info(config: WebConfig, peer: str | None, scheme: str, headers: web.BaseRequest.headers) -> ClientInfo:
    """Forwarded headers count only from a trusted peer; the client address
    is the right-most X-Forwarded-For entry that is not itself a trusted proxy."""
    address, prefix = peer or "", config.base_path
    if _trusted(config, peer):
        hops = [h.strip() for h in ",".join(headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
        for hop in reversed(hops):
            address = hop
            if not _trusted(config, hop):
                break
        proto = headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            scheme = proto
        forwarded = normalize_prefix(headers.get("X-Forwarded-Prefix"))
        if forwarded is not None and "X-Forwarded-Prefix" in headers:
            prefix = forwarded
    return ClientInfo(address=address, scheme=scheme, prefix=prefix)


@functools.lru_cache(maxsize=256)
def _direct_client(address: str, scheme: str, prefix: str) -> ClientInfo:
    return ClientInfo(address=address, scheme=scheme, prefix=prefix)  # frozen: safe to share


def _client(request: web.Request) -> ClientInfo:
    config = request.app[CONFIG]
    if config.trusted_proxies:
        return client_info(config, request.remote, request.scheme, request.headers)
    # no proxy to believe: the peer as it is, the same few values again and again
    return _direct_client(request.remote or "", request.scheme, config.base_path)


# -- errors ----------------------------------------------------------------------------------------------

_STATUS: tuple[tuple[type[errors.DcOverviewError], int, str], ...] = (
    (errors.InvalidInput, 400, "invalid_input"),
    (errors.AuthenticationFailed, 401, "unauthorized"),
    (errors.PermissionDenied, 403, "forbidden"),
    (errors.NotFound, 404, "not_found"),
    (errors.Conflict, 409, "conflict"),
    (errors.OperationUnavailable, 501, "not_implemented"),
    (errors.MetricsUnavailable, 503, "unavailable"),
    (errors.StorageError, 503, "unavailable"),
)


def error_status(exc: errors.DcOverviewError) -> tuple[int, str]:
    for family, status, code in _STATUS:
        if isinstance(exc, family):
            return status, code
    return 500, "failed"


def _error_response(request: web.Request, status: int, code: str, message: str, *, field: str | None = None,
                    hint: str | None = None, problems: list | None = None) -> web.Response:
    if is_api(request):
        body: dict[str, object] = {"error": code, "message": message}
        if field is not None:
            body["field"] = field
        if hint:
            body["hint"] = hint
        if problems:
            body["problems"] = [{"where": w, "field": f, "message": m} for w, f, m in problems]
        return json_response(body, status)
    titles = {400: "That did not work", 401: "Log in first", 403: "Not allowed", 404: "Not found",
              405: "Not allowed here", 409: "Conflict", 413: "Too large", 501: "Not available"}
    return render_error(request, status, titles.get(status, "Something went wrong"), message, hint)


def _domain_error(request: web.Request, exc: errors.DcOverviewError) -> web.Response:
    status, code = error_status(exc)
    if status >= 500 and status != 501:
        log.warning("%s %s: %s", request.method, request.path, exc)
    return _error_response(request, status, code, exc.message, field=getattr(exc, "field", None),
                           hint=exc.hint, problems=getattr(exc, "problems", None))


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response | None:
    """An HTTP error as our page or JSON; None where aiohttp's own answer
    is right (redirects, and errors that already are JSON)."""
    if exc.status < 400 or exc.content_type == "application/json" or exc.status == 401 and is_api(request):
        return None
    response = _error_response(request, exc.status, exc.reason.lower().replace(" ", "_"),
                               exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason)
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


# -- the request pipeline ------------------------------------------------------------------------------


@web.middleware
async def request_pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The steps every request goes through, in order (see the module's doc)."""
    started = time.perf_counter()
    status = 500
    try:
        request[CLIENT] = _client(request)
        try:
            await admit(request)
            response = await handler(request)
        except errors.DcOverviewError as exc:
            response = _domain_error(request, exc)
        except web.HTTPException as exc:
            if (mapped := _http_error(request, exc)) is None:
                raise
            response = mapped
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = _error_response(request, 500, "internal", "internal error; the server log has the details")
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        observe_request(request, status, time.perf_counter() - started)


async def _finish_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, as it is sent: the security headers, and the
    session cookie when it changed (web_auth.write_cookie)."""
    headers = response.headers
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if is_api(request):
        headers.setdefault("Cache-Control", "no-store")
    write_cookie(request, response)


# -- the app -----------------------------------------------------------------------------------------------


def create_app(fleet: AsyncFleet, config: WebConfig | None = None) -> web.Application:
    config = config or WebConfig()
    app = web.Application(
        middlewares=[request_pipeline],
        client_max_size=MAX_BODY,
    )
    app[FLEET] = fleet
    app[CONFIG] = config
    app[TEMPLATES] = template_env()
    app[METRICS] = WebMetrics()
    app[BODIES] = BodyCache()
    app[REVISION] = PerTurn(fleet.revision)
    app[SCRAPE] = PerTurn(functools.partial(fleet.read_secret, SCRAPE_TOKEN))
    app.on_response_prepare.append(_finish_headers)
    app.cleanup_ctx.append(_auth_ctx)
    app.cleanup_ctx.append(_jobs_ctx)
    app.router.add_routes(web_api.routes)
    app.router.add_routes(web_pages.routes)
    app.router.add_routes(web_settings.routes)
    app.router.add_static("/static", static_dir(), name=STATIC_ROUTE, append_version=True)
    return app


async def _auth_ctx(app: web.Application) -> AsyncIterator[None]:
    key = await app[FLEET].session_key()
    app[AUTH] = AuthState(CookieCodec(key), LoginThrottle(app[CONFIG].login_window))
    yield


async def _jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    app[JOBS] = JobRunner()
    yield
    await app[JOBS].close()


async def serve(app: web.Application, host: str, port: int, *, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then finish requests and stop jobs."""
    access = AccessLogBatch(logging.getLogger("dc_overview.web.access"))
    runner = web.AppRunner(app, access_log=access.logger, access_log_class=batched_access_log(access))
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    try:
        site = web.TCPSite(runner, host, port, shutdown_timeout=5.0)
        try:
            await site.start()
        except OSError as exc:
            raise errors.DcOverviewError(f"cannot listen on {host}:{port}: {exc.strerror}",
                                         "choose another --port or stop what uses it") from None
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        await runner.cleanup()
        access.flush()
