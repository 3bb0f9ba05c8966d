"""HTML pages: login and first-run setup, the dashboard, servers and jobs,
and the services landing page. Forms post back here; on a mistake the form
is shown again with the field named, on success the browser is redirected
(post/redirect/get) with a one-time message."""

from __future__ import annotations

from aiohttp import web

from dc_overview import errors
from dc_overview.domain import check_port, parse_label
from dc_overview.services import CATALOG

from . import web_api
from .web_auth import any_user, flash, log_in, log_out, login_limits, public
from .web_context import AUTH, CONFIG, JOBS, fleet, identity
from .web_jobs import ACTIONS, job_view
from .web_json import path_id
from .web_render import form_fields, problem, redirect, render, safe_next

routes = web.RouteTableDef()


# -- logging in --------------------------------------------------------------------------------


@routes.get("/login")
@public
async def login_page(request: web.Request) -> web.StreamResponse:
    if await fleet(request).needs_setup():
        raise redirect(request, "/setup")
    target = safe_next(request.query.get("next"))
    if identity(request).user is not None:
        raise redirect(request, target)
    return render(request, "login.html", next=target)


@routes.post("/login")
@public
async def login(request: web.Request) -> web.StreamResponse:
    form = await form_fields(request)
    name, password, target = form.get("name", "").strip(), form.get("password", ""), safe_next(form.get("next"))
    throttle = request.app[AUTH].throttle
    limits = login_limits(request, name)
    wait = throttle.retry_after(limits)
    if wait > 0:
        response = render(request, "login.html", 429, next=target, values={"name": name},
                          error={"field": None, "message": f"Too many failed logins. Try again in {int(wait) + 1} s.",
                                 "hint": None, "problems": None})
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    try:
        await log_in(request, name, password)
    except errors.AuthenticationFailed as exc:
        throttle.failed(key for key, _ in limits)
        return render(request, "login.html", 401, next=target, values={"name": name}, error=problem(exc))
    throttle.succeeded(key for key, _ in limits[:1])
    raise redirect(request, target)


@routes.post("/logout")
@public
async def logout(request: web.Request) -> web.StreamResponse:
    await log_out(request)
    flash(request, "You are logged out.")
    raise redirect(request, "/login")


@routes.get("/setup")
@public
async def setup_page(request: web.Request) -> web.StreamResponse:
    if not await fleet(request).needs_setup():
        raise redirect(request, "/login")
    return render(request, "setup.html")


@routes.post("/setup")
@public
async def setup(request: web.Request) -> web.StreamResponse:
    """The first admin, once: refused as soon as any admin exists."""
    if not await fleet(request).needs_setup():
        raise redirect(request, "/login")
    form = await form_fields(request)
    name, password = form.get("name", "").strip(), form.get("password", "")
    try:
        if password != form.get("password2", ""):
            raise errors.InvalidInput("password2", "the two passwords differ")
        await fleet(request).setup_admin(name, password)
        await log_in(request, name, password)
    except (errors.InvalidInput, errors.Conflict) as exc:
        return render(request, "setup.html", 400, values={"name": name}, error=problem(exc))
    flash(request, f"Welcome, {name}. Add your servers to get started.")
    raise redirect(request, "/")


# -- the dashboard and the landing page -----------------------------------------------------------


@routes.get("/")
async def dashboard(request: web.Request) -> web.StreamResponse:
    overview = await fleet(request).overview(request.app[CONFIG].prometheus_api)
    settings = await fleet(request).settings()
    return render(request, "dashboard.html", active="dashboard", overview=overview, settings=settings)


@routes.get("/services")
@public
async def services_page(request: web.Request) -> web.StreamResponse:
    states = await web_api.service_states(request)
    described = [(service, states[service.name]) for service in CATALOG]
    running = [(s, st) for s, st in described if st["running"]]
    missing = [(s, st) for s, st in described if not st["running"]]
    return render(request, "services.html", active="services", running=running, missing=missing)


# -- servers -----------------------------------------------------------------------------------------


async def _servers_page(request: web.Request, status: int = 200, **context: object) -> web.Response:
    return render(request, "servers.html", status, active="servers", servers=await fleet(request).servers(),
                  keys=await fleet(request).keys(), actions=ACTIONS, **context)


@routes.get("/servers")
async def servers_page(request: web.Request) -> web.StreamResponse:
    return await _servers_page(request)


def _labels(text: str) -> dict[str, str]:
    return dict(parse_label(line.strip()) for line in text.replace(",", "\n").splitlines() if line.strip())


def _port(text: str) -> int:
    if not text.strip().isdigit() or len(text.strip()) > 5:
        raise errors.InvalidPort("ssh_port", f"{text!r} is not a port number")
    return check_port(int(text), "ssh_port")


@routes.post("/servers")
async def add_server(request: web.Request) -> web.StreamResponse:
    form = await form_fields(request)
    try:
        server = await fleet(request).add_server(
            form.get("name", "").strip(), form.get("address", "").strip(),
            ssh_user=form.get("ssh_user", "").strip() or None, ssh_port=_port(form.get("ssh_port") or "22"),
            ssh_key=form.get("ssh_key") or None, bmc_ip=form.get("bmc_ip", "").strip() or None,
            labels=_labels(form.get("labels", "")),
        )
    except (errors.InvalidInput, errors.Conflict) as exc:
        return await _servers_page(request, 400, values=form, error=problem(exc), form="add")
    flash(request, f"Added {server.name} ({server.address}).")
    raise redirect(request, "/servers")


@routes.post("/servers/import")
async def import_servers(request: web.Request) -> web.StreamResponse:
    form = await form_fields(request)
    try:
        report = await fleet(request).import_servers(form.get("text", ""), source="pasted text")
    except errors.InvalidInput as exc:
        return await _servers_page(request, 400, values=form, error=problem(exc), form="import")
    added = ", ".join(s.name for s in report.added) or "none"
    unchanged = f"; already present: {', '.join(report.unchanged)}" if report.unchanged else ""
    flash(request, f"Imported {len(report.added)} server(s): {added}{unchanged}.")
    raise redirect(request, "/servers")


@routes.get(r"/servers/{id:\d+}")
async def server_page(request: web.Request) -> web.StreamResponse:
    server = await fleet(request).server_by_id(path_id(request, "server"))
    return render(request, "server.html", active="servers", server=server, keys=await fleet(request).keys(),
                  actions=ACTIONS)


@routes.post(r"/servers/{id:\d+}")
async def update_server(request: web.Request) -> web.StreamResponse:
    server = await fleet(request).server_by_id(path_id(request, "server"))
    form = await form_fields(request)
    try:
        updated = await fleet(request).update_server(
            server.name, name=form.get("name", "").strip(), address=form.get("address", "").strip(),
            ssh_user=form.get("ssh_user", "").strip(), ssh_port=_port(form.get("ssh_port", "")),
            ssh_key=form.get("ssh_key") or None, bmc_ip=form.get("bmc_ip", "").strip() or None,
            labels=_labels(form.get("labels", "")),
        )
    except (errors.InvalidInput, errors.Conflict) as exc:
        return render(request, "server.html", 400, active="servers", server=server, values=form,
                      keys=await fleet(request).keys(), actions=ACTIONS, error=problem(exc))
    flash(request, f"Saved {updated.name}.")
    raise redirect(request, f"/servers/{updated.id}")


@routes.get(r"/servers/{id:\d+}/remove")
async def confirm_remove_server(request: web.Request) -> web.StreamResponse:
    server = await fleet(request).server_by_id(path_id(request, "server"))
    return render(request, "confirm.html", active="servers", title=f"Remove {server.name}?",
                  message=f"{server.name} ({server.address}) leaves the inventory and Prometheus stops "
                  "scraping it. Nothing is changed on the server itself.",
                  action=f"/servers/{server.id}/remove", button="Remove server", back=f"/servers/{server.id}")


@routes.post(r"/servers/{id:\d+}/remove")
async def remove_server(request: web.Request) -> web.StreamResponse:
    server = await fleet(request).server_by_id(path_id(request, "server"))
    await fleet(request).remove_server(server.name)
    flash(request, f"Removed {server.name}.")
    raise redirect(request, "/servers")


@routes.get(r"/servers/{id:\d+}/trust")
async def confirm_trust_host(request: web.Request) -> web.StreamResponse:
    server = await fleet(request).server_by_id(path_id(request, "server"))
    return render(request, "confirm.html", active="servers", title=f"Trust a new host key for {server.name}?",
                  message="Do this only when you know the machine was reinstalled or its SSH host key was "
                  "rotated: the pinned key is forgotten and the next connection trusts whatever key "
                  f"{server.address} offers.",
                  action=f"/servers/{server.id}/trust", button="Forget the pinned key", back=f"/servers/{server.id}")


@routes.post(r"/servers/{id:\d+}/trust")
async def trust_host(request: web.Request) -> web.StreamResponse:
    server = await fleet(request).server_by_id(path_id(request, "server"))
    forget = getattr(fleet(request), "trust_host", None)
    if forget is None:
        raise errors.OperationUnavailable("re-trusting host keys", "this build of dc-overview has no SSH client")
    report = await forget(server.name)
    was = getattr(report, "forgotten_fingerprint", None)
    flash(request, f"Forgot the host key of {server.name}{f' ({was})' if was else ''}; the next connection pins anew.")
    raise redirect(request, f"/servers/{server.id}")


@routes.post(r"/servers/{id:\d+}/jobs")
async def server_job(request: web.Request) -> web.StreamResponse:
    server = await fleet(request).server_by_id(path_id(request, "server"))
    form = await form_fields(request)
    job = web_api.start_job(request, form.get("action", ""), [server.name])
    raise redirect(request, f"/jobs/{job.id}")


@routes.post("/jobs")
async def fleet_job(request: web.Request) -> web.StreamResponse:
    """The servers list's bulk actions: the ticked servers, or all when none are."""
    data = await request.post()
    ids = [int(v) for v in data.getall("server", []) if isinstance(v, str) and v.isdigit() and len(v) < 19]
    action = data.get("action")
    names = await web_api.server_names(request, ids or None)
    job = web_api.start_job(request, action if isinstance(action, str) else "", names)
    raise redirect(request, f"/jobs/{job.id}")


@routes.get("/jobs/{id}")
@any_user
async def job_page(request: web.Request) -> web.StreamResponse:
    job = request.app[JOBS].get(request.match_info["id"])
    if job is None:
        raise errors.NoSuchRecord("job", request.match_info["id"])
    view = job_view(job, "")
    return render(request, "job.html", active="servers", job=view)
