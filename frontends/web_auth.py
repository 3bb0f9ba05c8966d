"""Who is asking, and may they: signed cookies, sessions, Bearer tokens,
roles, CSRF protection and login throttling.

- The cookie ``dc_overview_session`` holds a small JSON payload signed with
  HMAC-SHA256 under a key kept in the data dir (0600), so a restart keeps
  people logged in: ``c`` the CSRF token, ``s`` the session secret (the
  session itself, hashed, is in the database and can be ended), ``f`` a
  one-time message. HttpOnly, SameSite=Lax, Secure over HTTPS, and its path
  is the app's prefix, so other apps behind the same proxy never see it.
- ``Authorization: Bearer dco_...`` (an API token) authenticates a request
  without a cookie; such requests need no CSRF token.
- Every request with an unsafe method that is not token-authenticated must
  carry the CSRF token: form field ``csrf_token`` or header ``X-CSRF-Token``.
- Routes declare who may use them with ``public``, ``any_user`` or
  ``admin``; undeclared routes need a login for safe methods and the admin
  role for the others.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

import attrs
from aiohttp import web

from dc_overview.accounts import SESSION_LIFETIME

from .web_context import (
    AUTH,
    CONFIG,
    COOKIE,
    COOKIE_OUT,
    IDENTITY,
    Identity,
    client,
    fleet,
    is_api,
    revision,
    url,
)

COOKIE_NAME = "dc_overview_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- declaring access ----------------------------------------------------------------------


def _access(level: str) -> Callable[[Handler], Handler]:
    def mark(handler: Handler) -> Handler:
        handler.dc_access = level  # type: ignore[attr-defined]
        return handler

    return mark


public = _access("public")  # anyone, logged in or not
any_user = _access("user")  # any logged-in user, whatever the method
admin = _access("admin")  # admins only


def required_level(request: web.Request) -> str:
    match = request.match_info
    if match.http_exception is not None or isinstance(match.route.resource, web.StaticResource):
        return "public"  # unknown URLs are 404 for everyone; static files are public
    declared = getattr(match.handler, "dc_access", None)
    if declared:
        return declared
    return "user" if request.method in SAFE_METHODS else "admin"


# -- the signed cookie -------------------------------------------------------------------------


class CookieCodec:
    """``base64(json).base64(hmac)``; anything altered or malformed decodes to None."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, data: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, data, hashlib.sha256).digest()).decode().rstrip("=")

    def encode(self, payload: dict[str, Any]) -> str:
        data = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{data}.{self._sign(data.encode())}"

    def decode(self, value: str) -> dict[str, Any] | None:
        data, _, signature = value.partition(".")
        if not data or not hmac.compare_digest(signature.encode(), self._sign(data.encode()).encode()):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
            return None
        return payload


# -- login throttling ------------------------------------------------------------------------


class LoginThrottle:
    """Counts failed logins per key (a user name, a client address) over a
    sliding window; a key with too many failures waits until the oldest
    falls out of the window. Memory stays bounded."""

    MAX_KEYS = 10_000

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._failures: dict[str, collections.deque[float]] = {}

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        stamps = self._failures.get(key, collections.deque())
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        return stamps

    def retry_after(self, limits: Iterable[tuple[str, int]]) -> float:
        """Seconds to wait before another try (0 when a try is allowed)."""
        now = self._clock()
        wait = 0.0
        for key, limit in limits:
            stamps = self._recent(key, now)
            if len(stamps) >= limit:
                wait = max(wait, stamps[-limit] + self.window - now)
        return wait

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        if len(self._failures) > self.MAX_KEYS:
            self._failures = {k: v for k, v in self._failures.items() if self._recent(k, now)}
        for key in keys:
            stamps = self._recent(key, now)
            stamps.append(now)
            self._failures[key] = stamps

    def succeeded(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)


class TokenCache:
    """Bearer tokens looked up lately, by their SHA-256, with the database
    revision they were looked up at and who they make the request: an API
    token's user, or for a token that is no API token (the scrape token
    Prometheus sends) nobody but that bearer. An entry counts only while the
    revision is unchanged (making or revoking a token, removing its user or
    changing a role is a write, here or in another process; so is the
    token's last use, when the look-up records it) and for ``ttl`` seconds,
    so that a token's last use is still recorded about once a minute.
    Bounded."""

    MAX_ENTRIES = 1024

    def __init__(self, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[bytes, tuple[Hashable, float, Identity]] = {}

    def get(self, digest: bytes, at: Hashable) -> Identity | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] != at or self._clock() - entry[1] >= self.ttl:
            del self._entries[digest]
            return None
        return entry[2]

    def put(self, digest: bytes, at: Hashable, who: Identity) -> None:
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (at, self._clock(), who)


@attrs.define
class AuthState:
    codec: CookieCodec
    throttle: LoginThrottle
    tokens: TokenCache = attrs.Factory(TokenCache)


def login_limits(request: web.Request, name: str) -> list[tuple[str, int]]:
    """Per name+address, and (looser, against spraying many names) per address."""
    limit = request.app[CONFIG].login_failures
    address = client(request).address
    return [(f"name:{name.lower()}|{address}", limit), (f"addr:{address}", limit * 4)]


# -- cookie payload helpers ------------------------------------------------------------------------


def _outgoing(request: web.Request) -> dict[str, Any]:
    payload = request.get(COOKIE_OUT)
    if payload is None:
        payload = request[COOKIE_OUT] = dict(request[COOKIE])
    return payload


def csrf_token(request: web.Request) -> str:
    return (request.get(COOKIE_OUT) or request[COOKIE])["c"]


def flash(request: web.Request, message: str) -> None:
    """A message for the next page shown (after a redirect)."""
    _outgoing(request)["f"] = message


def take_flash(request: web.Request) -> str | None:
    message = request[COOKIE].get("f")
    if message:
        _outgoing(request).pop("f", None)
    return message if isinstance(message, str) else None


async def log_in(request: web.Request, name: str, password: str) -> None:
    """Check the password and start a session; a new CSRF token with it."""
    user = await fleet(request).authenticate(name, password)
    started = await fleet(request).start_session(user)
    request[COOKIE_OUT] = {"c": secrets.token_urlsafe(24), "s": started.secret}


async def log_out(request: web.Request) -> None:
    secret = request[COOKIE].get("s")
    if isinstance(secret, str):
        await fleet(request).end_session(secret)
    request[COOKIE_OUT] = {"c": secrets.token_urlsafe(24)}


def write_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """The cookie, when it changed: called on every response as it is sent."""
    payload = request.get(COOKIE_OUT)
    if payload is None or AUTH not in request.app:
        return
    config = request.app[CONFIG]
    cookie: SimpleCookie = SimpleCookie()
    cookie[COOKIE_NAME] = request.app[AUTH].codec.encode(payload)
    morsel = cookie[COOKIE_NAME]
    morsel["path"] = url(request, "/")
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    if config.secure_cookies if config.secure_cookies is not None else client(request).scheme == "https":
        morsel["secure"] = True
    if payload.get("s"):
        morsel["max-age"] = str(int(SESSION_LIFETIME.total_seconds()))
    # aiohttp has already turned response.cookies into headers when this hook runs
    response.headers.add("Set-Cookie", morsel.OutputString())


# -- admitting a request -----------------------------------------------------------------------------


async def _bearer(request: web.Request, secret: str) -> Identity:
    """Who a Bearer token makes the request, from the cache while the
    database is unchanged."""
    cache = request.app[AUTH].tokens
    digest = hashlib.sha256(secret.encode(errors="surrogatepass")).digest()
    at = await revision(request)
    who = cache.get(digest, at)
    if who is None:
        user = await fleet(request).user_for_token(secret)
        who = Identity(user, "token") if user else Identity(bearer=secret)
        cache.put(digest, at, who)
    return who


async def _identify(request: web.Request) -> Identity:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return await _bearer(request, credential.strip())
    secret = request[COOKIE].get("s")
    if isinstance(secret, str) and secret:
        user = await fleet(request).session_user(secret)
        if user is not None:
            return Identity(user, "session")
        _outgoing(request).pop("s", None)  # ended or expired: forget it
    return Identity()


def _denied(request: web.Request, status: type[web.HTTPException], code: str, message: str) -> web.HTTPException:
    """JSON for the API; for pages a redirect to the login form, or a plain
    error that the request pipeline shows as a page."""
    if is_api(request):
        headers = {"WWW-Authenticate": 'Bearer realm="dc-overview"'} if status is web.HTTPUnauthorized else None
        return status(text=json.dumps({"error": code, "message": message}), content_type="application/json",
                      headers=headers)
    if status is web.HTTPUnauthorized and request.method in SAFE_METHODS:
        return web.HTTPFound(url(request, "/login") + "?" + urlencode({"next": request.path_qs}))
    if status is web.HTTPUnauthorized:
        message = "your session has ended; log in again"
    return status(text=message)


async def _check_csrf(request: web.Request) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected = request[COOKIE]["c"]
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise _denied(request, web.HTTPForbidden, "csrf",
                      "the CSRF token is missing or wrong; reload the page and try again")


async def admit(request: web.Request) -> None:
    """Who is asking (cookie, session or token) and whether the route lets
    them; raises the HTTP error to answer with when not. The request
    pipeline (web_app) calls this before every handler."""
    raw = request.cookies.get(COOKIE_NAME)
    payload = request.app[AUTH].codec.decode(raw) if raw else None
    request[COOKIE_OUT] = None  # unchanged, so far
    if payload is None:
        # Pages get a cookie (their forms need its CSRF token). The API does
        # not: behind the proxy its public status is also served at the root,
        # where a cookie would be kept for Path=/ and shadow the /dc/ session.
        # Without a cookie there is no CSRF token to match ("" never does), so
        # such an API request may change things only with an API token.
        if is_api(request):
            payload = {"c": ""}
        else:
            payload = request[COOKIE_OUT] = {"c": secrets.token_urlsafe(24)}
    request[COOKIE] = payload
    who = await _identify(request)
    request[IDENTITY] = who
    level = required_level(request)
    if level != "public" and who.user is None:
        message = "the API token is not valid" if who.bearer else "log in first (or send an API token)"
        raise _denied(request, web.HTTPUnauthorized, "unauthorized", message)
    if level == "admin" and not who.is_admin:
        raise _denied(request, web.HTTPForbidden, "forbidden", "this needs the admin role")
    if request.method not in SAFE_METHODS and who.via != "token":
        await _check_csrf(request)
