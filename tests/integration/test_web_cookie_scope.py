"""Behind the stack's proxy the app is at /dc/, but its public status API is
also published at the proxy's root (/api/services, /api/health), which the
landing page polls. Answers there must not set a session cookie: a browser
would keep it for Path=/ beside the /dc/ one, send both to /dc/, and the
user would be logged out after opening the landing page."""

from __future__ import annotations

import re

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from dc_overview.frontends.web_app import create_app
from dc_overview.frontends.web_auth import COOKIE_NAME
from dc_overview.frontends.web_context import WebConfig

from tests.support.web import PASSWORD, open_fleet

pytestmark = pytest.mark.integration
UNDER_DC = {"X-Forwarded-Prefix": "/dc"}  # what the proxy sends for /dc/...


def cookie_of(response: aiohttp.ClientResponse) -> str:
    (line,) = [c for c in response.headers.getall("Set-Cookie", []) if c.startswith(COOKIE_NAME + "=")]
    return line.split(";", 1)[0]


@pytest.fixture
async def app_url(tmp_path):  # type: ignore[no-untyped-def]
    fleet = open_fleet(tmp_path / "data")
    await fleet.add_user("admin", PASSWORD, "admin")
    server = TestServer(create_app(fleet, WebConfig(trusted_proxies=("127.0.0.1",))), host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()
    await fleet.close()


async def test_public_status_answers_set_no_cookie(app_url: str):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        for path in ("/api/services", "/api/health"):
            answer = await http.get(app_url + path)
            assert answer.status == 200
            assert answer.headers.getall("Set-Cookie", []) == [], path


async def test_the_landing_page_polling_the_status_api_does_not_log_anyone_out(app_url: str):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        form = await http.get(app_url + "/login", headers=UNDER_DC)
        first = cookie_of(form)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', await form.text()).group(1)  # type: ignore[union-attr]
        login = await http.post(app_url + "/login", headers={**UNDER_DC, "Cookie": first}, allow_redirects=False,
                                data={"name": "admin", "password": PASSWORD, "csrf_token": csrf})
        assert login.status == 303
        session = cookie_of(login)
        # the landing page at / asks /api/services (no /dc/ cookie goes there) ...
        polled = await http.get(app_url + "/api/services")
        browser = [session] + [c.split(";", 1)[0] for c in polled.headers.getall("Set-Cookie", [])]
        # ... and the browser sends what it holds for /dc/ (the longest path first) with the next request
        servers = await http.get(app_url + "/api/servers", headers={**UNDER_DC, "Cookie": "; ".join(browser)})
        assert servers.status == 200, await servers.text()
