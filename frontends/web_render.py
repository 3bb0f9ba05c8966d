"""HTML pages from the Jinja2 templates in ``templates/web/``, with what
every page needs: the user, the CSRF token, links under the client's
prefix, versioned static files and a one-time message."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

import dc_overview
from dc_overview import errors

from . import output
from .web_auth import csrf_token, take_flash
from .web_context import TEMPLATES, client, identity

STATIC_ROUTE = "static"


def template_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dc_overview.templates", "web"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ago"] = lambda moment: output.ago(moment) if isinstance(moment, datetime) else "never"
    env.filters["num"] = lambda value, digits=0: "–" if value is None else f"{value:.{digits}f}"
    return env


def static_url(request: web.Request, name: str) -> str:
    return client(request).prefix + str(request.app.router[STATIC_ROUTE].url_for(filename=name))


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    prefix = client(request).prefix
    who = identity(request).user
    values = {
        "user": who,
        "is_admin": bool(who and who.is_admin),
        "csrf_token": csrf_token(request),
        "prefix": prefix,
        "url": lambda path: prefix + path,
        "static": lambda name: static_url(request, name),
        "flash": take_flash(request),
        "version": dc_overview.__version__,
        "active": context.pop("active", ""),
        "error": None,
        "values": {},
    }
    values.update(context)
    html = request.app[TEMPLATES].get_template(template).render(values)
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def render_error(request: web.Request, status: int, title: str, message: str, hint: str | None = None) -> web.Response:
    return render(request, "error.html", status=status, title=title, message=message, hint=hint)


def problem(exc: errors.DcOverviewError) -> dict[str, Any]:
    """An error as a form shows it: the field it concerns, what and what to do."""
    return {
        "field": getattr(exc, "field", None), "message": exc.message, "hint": exc.hint,
        "problems": getattr(exc, "problems", None),
    }


def safe_next(value: object) -> str:
    """A path inside this app to go to after logging in; anything else is ``/``."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or len(value) > 2000 or parts.path in ("/login", "/logout", "/setup"):
        return "/"
    return value


async def form_fields(request: web.Request) -> dict[str, str]:
    """The text fields of a submitted form (files are left out)."""
    data = await request.post()
    return {key: value for key, value in data.items() if isinstance(value, str)}


def redirect(request: web.Request, path: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(client(request).prefix + path)
