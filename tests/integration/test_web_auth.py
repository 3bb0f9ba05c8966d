"""Logging in and out, first-run setup, sessions that survive a restart,
CSRF, throttling, roles, cookies and the trusted-proxy headers — through the
real forms and a real SQLite data dir."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import CookieJar
from dc_overview.frontends.web_app import create_app
from dc_overview.frontends.web_auth import COOKIE_NAME
from dc_overview.frontends.web_context import WebConfig
from yarl import URL

from tests.support.web import PASSWORD, Web, alerts, links, make_web, open_fleet

pytestmark = pytest.mark.integration


@pytest.fixture
async def web(aiohttp_client, tmp_path):
    made = await make_web(aiohttp_client, tmp_path)
    yield made
    await made.fleet.close()


def set_cookie(response) -> str:  # type: ignore[no-untyped-def]
    found = [v for v in response.headers.getall("Set-Cookie", []) if v.startswith(COOKIE_NAME + "=")]
    assert found, "no session cookie set"
    return found[-1]


async def test_first_run_offers_a_one_time_setup(aiohttp_client, tmp_path):
    fleet = open_fleet(tmp_path)
    client = await aiohttp_client(create_app(fleet))
    home = await client.get("/")
    assert home.url.path == "/setup" and "Create the first admin" in await home.text()
    web = Web(client, fleet, "", "")
    token = await web.csrf("/setup")
    mismatch = await client.post("/setup", data={"csrf_token": token, "name": "boss", "password": PASSWORD,
                                                 "password2": PASSWORD + "x"})
    assert mismatch.status == 400 and "differ" in await mismatch.text()
    short = await client.post("/setup", data={"csrf_token": token, "name": "boss", "password": "short",
                                              "password2": "short"})
    assert short.status == 400 and "too short" in await short.text()
    made = await client.post("/setup", data={"csrf_token": token, "name": "boss", "password": PASSWORD,
                                             "password2": PASSWORD})
    assert made.status == 200 and made.url.path == "/"
    assert any("Welcome, boss" in a for a in alerts(await made.text()))
    assert [(u.name, u.role.value) for u in await fleet.users()] == [("boss", "admin")]
    # the form is gone for good, for everyone
    other = await aiohttp_client(create_app(fleet))
    assert (await other.get("/setup")).url.path == "/login"
    again = await other.post("/setup", data={"csrf_token": await Web(other, fleet, "", "").csrf("/login"),
                                             "name": "intruder", "password": PASSWORD, "password2": PASSWORD},
                             allow_redirects=False)
    assert again.status == 303 and [u.name for u in await fleet.users()] == ["boss"]
    await fleet.close()


async def test_pages_send_a_stranger_to_the_login_form_and_back(web):
    response = await web.client.get("/servers?x=1", allow_redirects=False)
    location = URL(response.headers["Location"])
    assert response.status == 302 and location.path == "/login" and location.query["next"] == "/servers?x=1"
    token = await web.csrf("/login")
    logged = await web.client.post("/login", data={"name": "admin", "password": PASSWORD, "csrf_token": token,
                                                   "next": "/servers?x=1"}, allow_redirects=False)
    assert logged.status == 303 and logged.headers["Location"] == "/servers?x=1"


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil", "javascript:alert(1)", "/logout"])
async def test_after_login_only_paths_of_this_app_are_followed(web, target):
    token = await web.csrf("/login")
    logged = await web.client.post("/login", data={"name": "admin", "password": PASSWORD, "csrf_token": token,
                                                   "next": target}, allow_redirects=False)
    assert logged.status == 303 and logged.headers["Location"] == "/"


async def test_the_session_cookie_is_signed_httponly_lax_and_scoped(web):
    token = await web.csrf("/login")
    logged = await web.client.post("/login", data={"name": "admin", "password": PASSWORD, "csrf_token": token},
                                   allow_redirects=False)
    cookie = set_cookie(logged)
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "SameSite=Lax" in cookie and "Path=/" in cookie and "secure" not in attributes  # plain http here
    assert PASSWORD not in cookie


async def test_wrong_passwords_fail_and_are_throttled(web):
    token = await web.csrf("/login")
    for _ in range(5):
        failed = await web.client.post("/login", data={"name": "admin", "password": "nope nope nope", "csrf_token": token})
        assert failed.status == 401
        assert "wrong user name or password" in " ".join(alerts(await failed.text()))
    locked = await web.client.post("/login", data={"name": "admin", "password": PASSWORD, "csrf_token": token})
    assert locked.status == 429 and int(locked.headers["Retry-After"]) > 0
    assert "Too many failed logins" in await locked.text()
    # another name from the same address is not locked by these five
    assert (await web.client.post("/login", data={"name": "viewer", "password": PASSWORD, "csrf_token": token},
                                  allow_redirects=False)).status == 303


async def test_the_login_form_and_every_change_need_the_csrf_token(web):
    assert (await web.client.post("/login", data={"name": "admin", "password": PASSWORD})).status == 403
    await web.login()
    for data in ({}, {"csrf_token": "forged"}):
        response = await web.client.post("/servers", data={"name": "a", "address": "10.0.0.1", **data})
        assert response.status == 403 and "CSRF" in await response.text()
    api = await web.client.post("/api/servers", json={"name": "a", "address": "10.0.0.1"})
    assert api.status == 403 and (await api.json())["error"] == "csrf"
    token = await web.csrf("/")
    ok = await web.client.post("/api/servers", json={"name": "a", "address": "10.0.0.1"},
                               headers={"X-CSRF-Token": token})
    assert ok.status == 201
    # a Bearer token needs no CSRF token, and a cookie does not stand in for one
    assert (await web.client.post("/api/servers", json={"name": "b", "address": "10.0.0.2"}, headers=web.admin)).status == 201
    assert (await web.client.post("/logout", data={})).status == 403


async def test_a_restart_keeps_people_logged_in_and_logout_ends_the_session(aiohttp_client, tmp_path):
    first = await make_web(aiohttp_client, tmp_path)
    await first.login()
    cookie = first.client.session.cookie_jar.filter_cookies(first.client.make_url("/"))[COOKIE_NAME].value
    await first.fleet.close()

    fleet = open_fleet(tmp_path)  # a new process: new app, same data dir
    jar = CookieJar(unsafe=True)
    client = await aiohttp_client(create_app(fleet), cookie_jar=jar)
    client.session.cookie_jar.update_cookies({COOKIE_NAME: cookie}, client.make_url("/"))
    page = await client.get("/settings/account")
    assert page.status == 200 and page.url.path == "/settings/account" and ">admin<" in await page.text()

    second = Web(client, fleet, "", "")
    await second.post_form("/logout", {})
    assert (await client.get("/servers")).url.path == "/login"
    replay = await aiohttp_client(create_app(fleet), cookie_jar=CookieJar(unsafe=True))
    replay.session.cookie_jar.update_cookies({COOKIE_NAME: cookie}, replay.make_url("/"))
    assert (await replay.get("/servers")).url.path == "/login"  # the old cookie is worthless now
    await fleet.close()


async def test_a_tampered_cookie_is_ignored(web):
    await web.login()
    jar = web.client.session.cookie_jar
    value = jar.filter_cookies(web.client.make_url("/"))[COOKIE_NAME].value
    data, _, signature = value.partition(".")
    jar.update_cookies({COOKIE_NAME: data[:-2] + "AA." + signature}, web.client.make_url("/"))
    assert (await web.client.get("/servers")).url.path == "/login"


async def test_a_viewer_sees_pages_but_changes_nothing(web):
    await web.login("viewer")
    for path in ("/", "/servers", "/settings", "/settings/keys", "/settings/account", "/services"):
        assert (await web.client.get(path)).status == 200, path
    users = await web.client.get("/settings/users")
    assert users.status == 403 and "admin role" in await users.text()
    refused = await web.post_form("/servers", {"name": "a", "address": "10.0.0.1"})
    assert refused.status == 403
    assert await web.fleet.servers() == []
    page = await (await web.client.get("/servers")).text()
    assert 'action="/servers"' not in page  # no add form for a viewer


async def test_any_user_manages_their_own_tokens_and_password(web):
    await web.login("viewer")
    made = await web.post_form("/settings/tokens", {"label": "grafana"})
    assert made.status == 201
    page = await made.text()
    secret = page.split("data-new-token>")[1].split("<")[0]
    assert secret.startswith("dco_")
    assert (await web.client.get("/api/servers", headers=Web.bearer(secret))).status == 200
    assert secret not in await (await web.client.get("/settings/account")).text()  # shown once only
    token = next(t for t in await web.fleet.tokens("viewer") if t.label == "grafana")
    revoked = await web.post_form(f"/settings/tokens/{token.id}/revoke", {})
    assert revoked.status == 200 and "Revoked" in " ".join(alerts(await revoked.text()))
    assert (await web.client.get("/api/servers", headers=Web.bearer(secret))).status == 401

    admins = next(iter(await web.fleet.tokens("admin")))
    other = await web.post_form(f"/settings/tokens/{admins.id}/revoke", {})
    assert other.status == 404  # not the viewer's token

    wrong = await web.post_form("/settings/account/password", {"current": "nope", "password": "a new password!",
                                                               "password2": "a new password!"})
    assert wrong.status == 400 and "current password is wrong" in await wrong.text()
    changed = await web.post_form("/settings/account/password", {"current": PASSWORD, "password": "a new password!",
                                                                 "password2": "a new password!"})
    assert changed.status == 200 and changed.url.path == "/settings/account"
    await web.fleet.authenticate("viewer", "a new password!")


async def test_forwarded_headers_count_only_from_a_trusted_proxy(aiohttp_client, tmp_path):
    untrusted = await make_web(aiohttp_client, tmp_path / "a")
    page = await untrusted.client.get("/login", headers={"X-Forwarded-Prefix": "/evil", "X-Forwarded-Proto": "https"})
    text = await page.text()
    assert 'action="/login"' in text and "/evil" not in text
    assert "Secure" not in set_cookie(page)

    trusted = await make_web(aiohttp_client, tmp_path / "b", WebConfig(trusted_proxies=("127.0.0.0/8",)))
    page = await trusted.client.get("/login", headers={"X-Forwarded-Prefix": "/dc/", "X-Forwarded-Proto": "https",
                                                       "X-Forwarded-For": "203.0.113.9, 127.0.0.1"})
    text = await page.text()
    assert 'action="/dc/login"' in text and 'href="/dc/static/app.css?v=' in text
    cookie = set_cookie(page)
    assert "Path=/dc/" in cookie and "Secure" in cookie
    bad = await trusted.client.get("/login", headers={"X-Forwarded-Prefix": "/dc/../x y"})
    assert 'action="/login"' in await bad.text()  # not a plain path: ignored
    await untrusted.fleet.close()
    await trusted.fleet.close()


async def test_a_base_path_prefixes_every_link_and_redirect(aiohttp_client, tmp_path):
    web = await make_web(aiohttp_client, tmp_path, WebConfig(base_path="/dc/"))
    response = await web.client.get("/servers", allow_redirects=False)
    location = URL(response.headers["Location"])
    assert location.path == "/dc/login" and location.query["next"] == "/servers"
    page = await (await web.client.get("/login")).text()
    own = [link for link in links(page) if link.startswith("/")]
    assert own and all(link.startswith("/dc/") for link in own), own
    await web.fleet.close()


async def test_the_throttle_tracks_failures_by_client_address_behind_a_proxy(aiohttp_client, tmp_path):
    web = await make_web(aiohttp_client, tmp_path, WebConfig(trusted_proxies=("127.0.0.1",)))
    token = await web.csrf("/login")
    for _ in range(5):
        await web.client.post("/login", data={"name": "admin", "password": "wrong wrong", "csrf_token": token},
                              headers={"X-Forwarded-For": "198.51.100.7"})
    locked = await web.client.post("/login", data={"name": "admin", "password": PASSWORD, "csrf_token": token},
                                   headers={"X-Forwarded-For": "198.51.100.7"})
    assert locked.status == 429
    elsewhere = await web.client.post("/login", data={"name": "admin", "password": PASSWORD, "csrf_token": token},
                                      headers={"X-Forwarded-For": "198.51.100.8"}, allow_redirects=False)
    assert elsewhere.status == 303
    await web.fleet.close()


async def test_a_burst_of_logins_queues_for_the_kdf_while_the_app_keeps_answering(aiohttp_client, tmp_path):
    from dc_overview.passwords import ScryptHasher

    web = await make_web(aiohttp_client, tmp_path, WebConfig(trusted_proxies=("127.0.0.1",)),
                         passwords=ScryptHasher())  # the real cost
    token = await web.csrf("/login")

    async def attempt(n: int) -> int:
        response = await web.client.post("/login", data={"name": f"user{n}", "password": "wrong wrong",
                                                         "csrf_token": token},
                                         headers={"X-Forwarded-For": f"198.51.100.{n}"})
        return response.status

    started = time.monotonic()
    burst = asyncio.gather(*(attempt(n) for n in range(6)))
    await asyncio.sleep(0.05)
    health_started = time.monotonic()
    health = await web.client.get("/api/health")
    health_seconds = time.monotonic() - health_started
    statuses = await burst
    print(f"6 logins at the real scrypt cost took {time.monotonic() - started:.2f} s; "
          f"/api/health answered in {health_seconds * 1000:.0f} ms meanwhile")
    assert health.status == 200 and statuses == [401] * 6
    await web.fleet.close()
