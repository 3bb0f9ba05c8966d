"""The JSON API (documented in docs/openapi.yaml; a test keeps the two equal).

Errors are JSON ``{"error", "message", "field"?, "hint"?}`` with the status
of their family (400 bad input, 401/403 auth, 404, 409, 501); see web_app.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import dc_overview
from dc_overview import errors
from dc_overview.stack_names import APP

from . import web_json as body_of
from .web_auth import public
from .web_cache import answer
from .web_context import BODIES, CONFIG, JOBS, METRICS, fleet, identity, revision, scrape_token, url
from .web_jobs import ACTIONS, Job, fleet_operation, job_view
from .web_json import json_response, key_view, path_id, server_view

routes = web.RouteTableDef()

ADD_FIELDS = ("name", "address", "ssh_user", "ssh_port", "ssh_key", "bmc_ip", "labels")
EDIT_FIELDS = ADD_FIELDS
KEY_FIELDS = ("name", "generate", "private_key", "passphrase", "comment")


@routes.get("/api/health")
@public
async def health(request: web.Request) -> web.Response:
    """Liveness and the database: 200 when both answer, 503 otherwise."""
    try:
        await fleet(request).settings()
    except errors.DcOverviewError as exc:
        return json_response({"status": "failing", "version": dc_overview.__version__, "database": str(exc)}, 503)
    return json_response({"status": "ok", "version": dc_overview.__version__, "database": "ok"})


# -- servers ----------------------------------------------------------------------------------


async def kept_body(request: web.Request, name: str, build: Callable[[], Awaitable[Any]]) -> web.Response:
    """A body rendered once per database revision (see web_cache)."""
    return answer(request, await request.app[BODIES].get(name, await revision(request), build))


@routes.get("/api/servers")
async def list_servers(request: web.Request) -> web.Response:
    async def build() -> list[dict[str, Any]]:
        return [server_view(s) for s in await fleet(request).servers()]

    return await kept_body(request, "servers", build)


@routes.post("/api/servers")
async def add_server(request: web.Request) -> web.Response:
    body = await body_of.json_body(request, ADD_FIELDS)
    port = body_of.port(body, "ssh_port")
    server = await fleet(request).add_server(
        body_of.text(body, "name", required=True),  # type: ignore[arg-type]
        body_of.text(body, "address", required=True),  # type: ignore[arg-type]
        ssh_user=body_of.text(body, "ssh_user"),
        ssh_port=22 if port is None else port,
        ssh_key=body_of.text(body, "ssh_key"),
        bmc_ip=body_of.text(body, "bmc_ip"),
        labels=body_of.string_map(body, "labels"),
    )
    return json_response(server_view(server), 201, {"Location": url(request, f"/api/servers/{server.id}")})


@routes.post("/api/servers/import")
async def import_servers(request: web.Request) -> web.Response:
    """Bulk add: CSV or pasted lines, all or nothing (400 lists every problem)."""
    body = await body_of.json_body(request, ("text",))
    report = await fleet(request).import_servers(body_of.text(body, "text", required=True) or "", source="pasted text")
    return json_response(body_of.jsonable(report))


@routes.get(r"/api/servers/{id:\d+}")
async def show_server(request: web.Request) -> web.Response:
    return json_response(server_view(await fleet(request).server_by_id(path_id(request, "server"))))


@routes.patch(r"/api/servers/{id:\d+}")
async def update_server(request: web.Request) -> web.Response:
    server = await fleet(request).server_by_id(path_id(request, "server"))
    body = await body_of.json_body(request, EDIT_FIELDS)
    changes: dict[str, Any] = {}
    for field in ("name", "address", "ssh_user"):
        if field in body:
            changes[field] = body_of.text(body, field, required=True)
    if "ssh_port" in body:
        changes["ssh_port"] = body_of.port(body, "ssh_port")
        if changes["ssh_port"] is None:
            raise errors.InvalidInput("ssh_port", "must be an integer")
    for field in ("ssh_key", "bmc_ip"):  # null clears them
        if field in body:
            changes[field] = body_of.text(body, field) or None
    if "labels" in body:
        changes["labels"] = body_of.string_map(body, "labels") or {}
    if not changes:
        raise errors.InvalidInput("body", "nothing to change", "editable: " + ", ".join(EDIT_FIELDS))
    updated = await fleet(request).update_server(server.name, **changes)
    return json_response(server_view(updated))


@routes.delete(r"/api/servers/{id:\d+}")
async def remove_server(request: web.Request) -> web.Response:
    """Remove from the inventory (nothing changes on the server itself)."""
    server = await fleet(request).server_by_id(path_id(request, "server"))
    return json_response(server_view(await fleet(request).remove_server(server.name)))


# -- long operations as jobs -------------------------------------------------------------------


def start_job(request: web.Request, action: str, servers: list[str]) -> Job:
    operation = fleet_operation(fleet(request), action, servers)
    who = identity(request).user
    return request.app[JOBS].start(action, servers, operation, user=who.name if who else None)


def _job_response(request: web.Request, job: Job) -> web.Response:
    location = url(request, f"/api/jobs/{job.id}")
    return json_response(job_view(job, location), 202, {"Location": location})


async def _server_action(request: web.Request, action: str) -> web.Response:
    server = await fleet(request).server_by_id(path_id(request, "server"))
    return _job_response(request, start_job(request, action, [server.name]))


@routes.post(r"/api/servers/{id:\d+}/check")
async def check_server(request: web.Request) -> web.Response:
    return await _server_action(request, "check")


@routes.post(r"/api/servers/{id:\d+}/install-exporters")
async def install_exporters(request: web.Request) -> web.Response:
    return await _server_action(request, "install-exporters")


@routes.post(r"/api/servers/{id:\d+}/remove-exporters")
async def remove_exporters(request: web.Request) -> web.Response:
    return await _server_action(request, "remove-exporters")


@routes.post("/api/jobs")
async def start_fleet_job(request: web.Request) -> web.Response:
    """``{"action": "check", "servers": [1, 2]}``; without ``servers``, every server."""
    body = await body_of.json_body(request, ("action", "servers"))
    action = body_of.text(body, "action", required=True)
    if action not in ACTIONS:
        raise errors.InvalidInput("action", f"{action!r} is not an action", "actions: " + ", ".join(ACTIONS))
    names = await server_names(request, body_of.id_list(body, "servers"))
    return _job_response(request, start_job(request, action, names))


async def server_names(request: web.Request, ids: list[int] | None) -> list[str]:
    if ids is None:
        names = [s.name for s in await fleet(request).servers()]
    else:
        names = [(await fleet(request).server_by_id(i)).name for i in dict.fromkeys(ids)]
    if not names:
        raise errors.InvalidInput("servers", "there are no servers to act on")
    return names


@routes.get("/api/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    return json_response([job_view(j, url(request, f"/api/jobs/{j.id}")) for j in request.app[JOBS].list()])


def _job(request: web.Request) -> Job:
    job = request.app[JOBS].get(request.match_info["id"])
    if job is None:
        raise errors.NoSuchRecord("job", request.match_info["id"])
    return job


@routes.get("/api/jobs/{id}")
async def show_job(request: web.Request) -> web.Response:
    job = _job(request)
    return json_response(job_view(job, url(request, f"/api/jobs/{job.id}")))


@routes.get("/api/jobs/{id}/events")
async def job_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``progress`` event per change, until the job ends."""
    job = _job(request)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    seen = -1
    while True:
        if job.version != seen:
            seen = job.version
            data = json.dumps(job_view(job, url(request, f"/api/jobs/{job.id}")), default=str)
            await response.write(f"event: progress\ndata: {data}\n\n".encode())
        if job.finished:
            break
        before = job.version
        await job.wait(seen, 15.0)
        if job.version == before and not job.finished:
            await response.write(b": still running\n\n")
    await response.write_eof()
    return response


# -- Prometheus --------------------------------------------------------------------------------


@routes.get("/api/prometheus/targets")
async def prometheus_targets(request: web.Request) -> web.Response:
    return await kept_body(request, "targets", fleet(request).targets)


async def _allow_scraper(request: web.Request) -> None:
    """Open unless a scrape token is set; then that token, or any logged-in user."""
    who = identity(request)
    if who.user is not None:
        return
    token = await scrape_token(request)
    if token is None:
        return
    if who.bearer and hmac.compare_digest(who.bearer.encode(), token.encode()):
        return
    raise web.HTTPUnauthorized(
        text=json.dumps({"error": "unauthorized", "message": "send the scrape token as a Bearer token"}),
        content_type="application/json", headers={"WWW-Authenticate": 'Bearer realm="dc-overview"'},
    )


@routes.get("/api/prometheus/targets.json")
@public
async def prometheus_http_sd(request: web.Request) -> web.Response:
    """For Prometheus' http_sd_configs: always the whole list, ``[]`` when empty."""
    await _allow_scraper(request)
    return await kept_body(request, "targets", fleet(request).targets)


@routes.get("/metrics")
@public
async def metrics(request: web.Request) -> web.Response:
    await _allow_scraper(request)
    collected = request.app[METRICS]
    collected.fleet.update(await fleet(request).servers())
    response = web.Response(body=generate_latest(collected.registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


# -- SSH keys ---------------------------------------------------------------------------------------


@routes.get("/api/ssh-keys")
async def list_keys(request: web.Request) -> web.Response:
    return json_response([key_view(k) for k in await fleet(request).keys()])


@routes.post("/api/ssh-keys")
async def add_key(request: web.Request) -> web.Response:
    """``{"name", "generate": true}`` or ``{"name", "private_key", "passphrase"?}``."""
    body = await body_of.json_body(request, KEY_FIELDS)
    name = body_of.text(body, "name", required=True) or ""
    private_key = body_of.text(body, "private_key")
    if body_of.boolean(body, "generate"):
        if private_key is not None:
            raise errors.InvalidInput("private_key", "give a private key or generate: true, not both")
        key = await fleet(request).generate_key(name, body_of.text(body, "comment"))
    elif private_key is not None:
        key = await fleet(request).add_key_text(name, private_key, body_of.text(body, "passphrase"))
    else:
        raise errors.InvalidInput("private_key", "is required unless generate is true")
    return json_response(key_view(key), 201, {"Location": url(request, f"/api/ssh-keys/{key.id}")})


@routes.delete(r"/api/ssh-keys/{id:\d+}")
async def remove_key(request: web.Request) -> web.Response:
    key = await fleet(request).key_by_id(path_id(request, "SSH key"))
    return json_response(key_view(await fleet(request).remove_key(key.name)))


# -- the control node's services and the dashboard ------------------------------------------------------


async def service_states(request: web.Request) -> dict[str, dict[str, Any]]:
    """Each service of this host as ``/api/services`` shows it. This app is
    answering, so it runs, whatever a container engine says."""
    states = {name: body_of.jsonable(state) for name, state in (await fleet(request).services()).items()}
    if not states[APP]["running"]:
        states[APP].update(running=True, healthy=True)
    return states


@routes.get("/api/services")
@public
async def services(request: web.Request) -> web.Response:
    """For the proxy's landing page: every known service, running or not."""
    return json_response(await service_states(request))


@routes.get("/api/overview")
async def overview(request: web.Request) -> web.Response:
    """The dashboard's data: totals, one tile per server, and Prometheus' state."""
    found = await fleet(request).overview(request.app[CONFIG].prometheus_api)
    return json_response(body_of.jsonable(found))
