"""Settings pages: integration links and write-only secrets, SSH keys,
users (admins only), and each person's own password and API tokens.
Secrets and private keys are accepted here and never shown again; a new
API token or scrape token is shown once, on the page that made it."""

from __future__ import annotations

from aiohttp import web

from dc_overview import errors
from dc_overview.credentials import SCRAPE_TOKEN, SECRETS
from dc_overview.identity import ROLE_NAMES

from .web_auth import admin, any_user, flash, log_in
from .web_context import fleet, identity
from .web_json import path_id
from .web_render import form_fields, problem, redirect, render

routes = web.RouteTableDef()

INTEGRATIONS = (
    ("grafana_url", "Grafana", "Link to Grafana, e.g. /grafana/ behind the proxy"),
    ("prometheus_url", "Prometheus", "Link to Prometheus, e.g. /prometheus/; an http:// URL is also queried for live GPU data"),
    ("ipmi_monitor_url", "IPMI Monitor", "Link to ipmi-monitor, e.g. /ipmi/"),
)


SECRET_SHORT = {"vastai_api_key": "Vast.ai API key", "runpod_api_key": "RunPod API key",
                "scrape_token": "Scrape token", "grafana_admin_password": "Grafana admin password",
                "remote_write_password": "Remote-write password", "alert_webhook_token": "Alert webhook token",
                "smtp_password": "SMTP password"}
SECRET_ABOUT = {"vastai_api_key": "Used by the vastai-exporter.", "runpod_api_key": "Used by the runpod-exporter.",
                "scrape_token": "When set, Prometheus must send it for targets.json and /metrics.",
                "grafana_admin_password": "Made on the first stack apply when not set; Grafana reads it "
                                          "only when it first starts with an empty database.",
                "remote_write_password": "Prometheus' basic-auth password for remote_write; "
                                         "takes effect on the next stack apply.",
                "alert_webhook_token": "Bearer token Alertmanager sends to the alert webhook; "
                                       "takes effect on the next stack apply.",
                "smtp_password": "Alertmanager's password for the SMTP server; takes effect on the next stack apply."}


async def _general(request: web.Request, status: int = 200, **context: object) -> web.Response:
    return render(request, "settings.html", status, active="settings", tab="general",
                  settings=await fleet(request).settings(), integrations=INTEGRATIONS,
                  secrets=await fleet(request).secret_status(), secret_titles=SECRETS,
                  secret_short=SECRET_SHORT, secret_about=SECRET_ABOUT, **context)


@routes.get("/settings")
async def settings_page(request: web.Request) -> web.StreamResponse:
    return await _general(request)


@routes.post("/settings/integrations")
async def save_integrations(request: web.Request) -> web.StreamResponse:
    form = await form_fields(request)
    current = await fleet(request).settings()
    try:
        for name, _, _ in INTEGRATIONS:
            value = form.get(name, "").strip()
            if not value:
                raise errors.InvalidSetting(name, "a link is required")
            if value != getattr(current, name):
                await fleet(request).set_setting(name, value)
    except errors.InvalidInput as exc:
        return await _general(request, 400, values=form, error=problem(exc))
    flash(request, "Saved the integration links.")
    raise redirect(request, "/settings")


@routes.post("/settings/secrets")
async def save_secret(request: web.Request) -> web.StreamResponse:
    """``op``: ``set`` (with ``value``), ``clear``, or ``generate`` (the scrape token)."""
    form = await form_fields(request)
    name, op = form.get("name", ""), form.get("op", "set")
    try:
        if op == "generate" and name == SCRAPE_TOKEN:
            token = await fleet(request).generate_scrape_token()
            return await _general(request, new_scrape_token=token)
        if op == "clear":
            await fleet(request).clear_secret(name)
            flash(request, f"Cleared the {SECRET_SHORT.get(name, name)}.")
        elif op == "set":
            await fleet(request).set_secret(name, form.get("value", ""))
            flash(request, f"Saved the {SECRET_SHORT.get(name, name)}.")
        else:
            raise errors.InvalidInput("op", f"{op!r} is not set, clear or generate")
    except errors.InvalidInput as exc:
        return await _general(request, 400, error=problem(exc), secret_form=name)
    raise redirect(request, "/settings")


# -- SSH keys ----------------------------------------------------------------------------------------


async def _keys(request: web.Request, status: int = 200, **context: object) -> web.Response:
    keys = await fleet(request).keys()
    used = {}
    for server in await fleet(request).servers():
        if server.ssh_key:
            used[server.ssh_key] = used.get(server.ssh_key, 0) + 1
    return render(request, "settings_keys.html", status, active="settings", tab="keys", keys=keys, used=used,
                  **context)


@routes.get("/settings/keys")
async def keys_page(request: web.Request) -> web.StreamResponse:
    return await _keys(request)


@routes.post("/settings/keys/generate")
async def generate_key(request: web.Request) -> web.StreamResponse:
    form = await form_fields(request)
    try:
        key = await fleet(request).generate_key(form.get("name", "").strip(), form.get("comment", "").strip() or None)
    except (errors.InvalidInput, errors.Conflict) as exc:
        return await _keys(request, 400, values=form, error=problem(exc), form="generate")
    flash(request, f"Generated {key.name}. Add its public key to each worker's authorized_keys.")
    raise redirect(request, "/settings/keys")


@routes.post("/settings/keys/upload")
async def upload_key(request: web.Request) -> web.StreamResponse:
    data = await request.post()
    text = data.get("private_key")
    upload = data.get("private_key_file")
    if upload is not None and not isinstance(upload, str) and upload.filename:
        text = upload.file.read(65536).decode("utf-8", "replace")
    values = {"name": str(data.get("name", ""))}
    try:
        if not isinstance(text, str) or not text.strip():
            raise errors.InvalidKey("private_key", "paste a private key or choose its file")
        passphrase = data.get("passphrase")
        key = await fleet(request).add_key_text(
            values["name"].strip(), text, passphrase if isinstance(passphrase, str) and passphrase else None
        )
    except (errors.InvalidInput, errors.Conflict) as exc:
        return await _keys(request, 400, values=values, error=problem(exc), form="upload")
    flash(request, f"Stored {key.name} ({key.fingerprint}).")
    raise redirect(request, "/settings/keys")


@routes.get(r"/settings/keys/{id:\d+}/remove")
async def confirm_remove_key(request: web.Request) -> web.StreamResponse:
    key = await fleet(request).key_by_id(path_id(request, "SSH key"))
    return render(request, "confirm.html", active="settings", title=f"Delete SSH key {key.name}?",
                  message=f"{key.name} ({key.fingerprint}) and its private key file are deleted. "
                  "Servers that use it must get another key first.",
                  action=f"/settings/keys/{key.id}/remove", button="Delete key", back="/settings/keys")


@routes.post(r"/settings/keys/{id:\d+}/remove")
async def remove_key(request: web.Request) -> web.StreamResponse:
    key = await fleet(request).key_by_id(path_id(request, "SSH key"))
    try:
        await fleet(request).remove_key(key.name)
    except errors.Conflict as exc:
        return await _keys(request, 409, error=problem(exc))
    flash(request, f"Deleted {key.name}.")
    raise redirect(request, "/settings/keys")


# -- users (admins) -------------------------------------------------------------------------------------


async def _users(request: web.Request, status: int = 200, **context: object) -> web.Response:
    return render(request, "settings_users.html", status, active="settings", tab="users",
                  users=await fleet(request).users(), roles=ROLE_NAMES, **context)


@routes.get("/settings/users")
@admin
async def users_page(request: web.Request) -> web.StreamResponse:
    return await _users(request)


@routes.post("/settings/users")
@admin
async def add_user(request: web.Request) -> web.StreamResponse:
    form = await form_fields(request)
    try:
        user = await fleet(request).add_user(form.get("name", "").strip(), form.get("password", ""),
                                             form.get("role", "viewer"))
    except (errors.InvalidInput, errors.Conflict) as exc:
        return await _users(request, 400, values=form, error=problem(exc))
    flash(request, f"Added {user.name} ({user.role.value}).")
    raise redirect(request, "/settings/users")


@routes.post("/settings/users/{name}/role")
@admin
async def set_role(request: web.Request) -> web.StreamResponse:
    form = await form_fields(request)
    try:
        user = await fleet(request).set_role(request.match_info["name"], form.get("role", ""))
    except (errors.InvalidInput, errors.Conflict) as exc:
        return await _users(request, 400, error=problem(exc))
    flash(request, f"{user.name} is now {user.role.value}.")
    raise redirect(request, "/settings/users")


@routes.get("/settings/users/{name}/remove")
@admin
async def confirm_remove_user(request: web.Request) -> web.StreamResponse:
    user = await fleet(request).user(request.match_info["name"])
    return render(request, "confirm.html", active="settings", title=f"Remove user {user.name}?",
                  message=f"{user.name} can no longer log in; their API tokens stop working.",
                  action=f"/settings/users/{user.name}/remove", button="Remove user", back="/settings/users")


@routes.post("/settings/users/{name}/remove")
@admin
async def remove_user(request: web.Request) -> web.StreamResponse:
    try:
        user = await fleet(request).remove_user(request.match_info["name"])
    except errors.Conflict as exc:
        return await _users(request, 409, error=problem(exc))
    flash(request, f"Removed {user.name}.")
    raise redirect(request, "/settings/users")


# -- one's own account: password and API tokens ------------------------------------------------------------


async def _account(request: web.Request, status: int = 200, **context: object) -> web.Response:
    who = identity(request).user
    assert who is not None
    tokens = await fleet(request).tokens(None if who.is_admin else who.name)
    return render(request, "settings_account.html", status, active="settings", tab="account", tokens=tokens,
                  **context)


@routes.get("/settings/account")
@any_user
async def account_page(request: web.Request) -> web.StreamResponse:
    return await _account(request)


@routes.post("/settings/account/password")
@any_user
async def change_password(request: web.Request) -> web.StreamResponse:
    """Needs the current password; every other session of the user ends."""
    who = identity(request).user
    assert who is not None
    form = await form_fields(request)
    try:
        await fleet(request).authenticate(who.name, form.get("current", ""))
    except errors.AuthenticationFailed:
        return await _account(request, 400, error={"field": "current", "message": "the current password is wrong",
                                                    "hint": None, "problems": None})
    try:
        if form.get("password", "") != form.get("password2", ""):
            raise errors.InvalidInput("password2", "the two new passwords differ")
        await fleet(request).set_password(who.name, form.get("password", ""))
    except errors.InvalidInput as exc:
        return await _account(request, 400, error=problem(exc))
    await log_in(request, who.name, form.get("password", ""))
    flash(request, "Password changed; other sessions were logged out.")
    raise redirect(request, "/settings/account")


@routes.post("/settings/tokens")
@any_user
async def create_token(request: web.Request) -> web.StreamResponse:
    who = identity(request).user
    assert who is not None
    form = await form_fields(request)
    try:
        made = await fleet(request).create_token(who.name, form.get("label", "").strip())
    except errors.InvalidInput as exc:
        return await _account(request, 400, values=form, error=problem(exc))
    return await _account(request, 201, new_token=made.secret, new_token_label=made.token.label)


@routes.post(r"/settings/tokens/{id:\d+}/revoke")
@any_user
async def revoke_token(request: web.Request) -> web.StreamResponse:
    who = identity(request).user
    assert who is not None
    token = await fleet(request).revoke_token(path_id(request, "API token"),
                                              user_name=None if who.is_admin else who.name)
    flash(request, f"Revoked the token {token.label!r} ({token.prefix}…).")
    raise redirect(request, "/settings/account")
