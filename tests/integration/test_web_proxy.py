"""The web app behind a real nginx at /dc/, as in the stack: the proxy strips
the prefix and says so in X-Forwarded-Prefix, and every link, redirect,
form, static file, cookie and job stream works through it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from dc_overview.frontends.web_app import create_app
from dc_overview.frontends.web_context import WebConfig

from tests.support.web import PASSWORD, alerts, links, open_fleet
from tests.support.web_stack import PROXY_PEER, start_nginx, stop

pytestmark = pytest.mark.integration

@pytest.fixture
async def through_proxy(tmp_path) -> AsyncIterator[tuple[aiohttp.ClientSession, str, object]]:
    fleet = open_fleet(tmp_path / "data")
    await fleet.add_user("admin", PASSWORD, "admin")
    # nginx reaches the app from PROXY_PEER, the only trusted proxy; clients come from other addresses
    server = TestServer(create_app(fleet, WebConfig(trusted_proxies=(PROXY_PEER,))), host="127.0.0.1")
    await server.start_server()
    nginx, port = start_nginx(tmp_path / "nginx", server.port)
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        yield session, f"http://127.0.0.1:{port}/dc", fleet
    finally:
        await session.close()
        stop(nginx)
        await server.close()
        await fleet.close()


def csrf(page: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


async def test_everything_works_under_the_prefix(through_proxy):
    session, base, _fleet = through_proxy
    first = await session.get(f"{base}/servers")
    assert first.status == 200 and first.url.path == "/dc/login" and first.url.query["next"] == "/servers"
    page = await first.text()
    own = [link for link in links(page) if link.startswith("/")]
    assert own and all(link.startswith("/dc/") for link in own), own
    assert (await session.get(f"{base}/static/app.css")).status == 200
    cookie = [c for r in (*first.history, first) for c in r.headers.getall("Set-Cookie", []) if "dc_overview_session" in c]
    assert cookie and all("Path=/dc/" in c for c in cookie)

    logged = await session.post(f"{base}/login", data={"name": "admin", "password": PASSWORD, "csrf_token": csrf(page),
                                                       "next": "/servers"})
    assert logged.status == 200 and logged.url.path == "/dc/servers"
    servers_page = await logged.text()
    added = await session.post(f"{base}/servers", data={"name": "gpu-01", "address": "127.0.0.1", "ssh_port": "1",
                                                        "csrf_token": csrf(servers_page)})
    assert added.url.path == "/dc/servers" and "Added gpu-01 (127.0.0.1)." in alerts(await added.text())

    api = await session.get(f"{base}/api/servers")
    assert api.status == 200 and [s["name"] for s in await api.json()] == ["gpu-01"]
    created = await session.post(f"{base}/api/servers", json={"name": "gpu-02", "address": "127.0.0.2", "ssh_port": 1},
                                 headers={"X-CSRF-Token": csrf(servers_page)})
    assert created.status == 201 and created.headers["Location"].startswith("/dc/api/servers/")

    job = await session.post(f"{base}/api/jobs", json={"action": "check"}, headers={"X-CSRF-Token": csrf(servers_page)})
    assert job.status == 202
    body = await job.json()
    assert body["url"].startswith("/dc/api/jobs/")
    stream = await session.get(f"http://{job.url.host}:{job.url.port}{body['url']}/events")
    assert stream.status == 200 and stream.content_type == "text/event-stream"
    assert '"finished": true' in await stream.text()


def client_from(address: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)),
                                 cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_the_throttle_sees_each_real_client_through_the_proxy_and_no_forged_one(through_proxy):
    _, base, _fleet = through_proxy
    async with client_from("127.0.0.4") as attacker, client_from("127.0.0.5") as colleague:
        token = csrf(await (await attacker.get(f"{base}/login")).text())
        for claimed in ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5"):
            failed = await attacker.post(f"{base}/login", data={"name": "admin", "password": "wrong wrong",
                                                                "csrf_token": token},
                                         headers={"X-Forwarded-For": claimed})  # forged: nginx appends the real peer
            assert failed.status == 401
        locked = await attacker.post(f"{base}/login", data={"name": "admin", "password": PASSWORD, "csrf_token": token},
                                     headers={"X-Forwarded-For": "198.51.100.77"})
        assert locked.status == 429
        other = csrf(await (await colleague.get(f"{base}/login")).text())
        fine = await colleague.post(f"{base}/login", data={"name": "admin", "password": PASSWORD, "csrf_token": other},
                                    allow_redirects=False)
        assert fine.status == 303  # the proxy's own address is not what the app throttles
