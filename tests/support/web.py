"""Helpers for the web app's tests: a fleet with users and tokens, a client
that logs in through the real forms and carries the CSRF token, and small
HTML readers. Password hashing is real scrypt at a low cost (the cost is a
parameter of the hasher), so that logging in many times stays quick."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import attrs
from aiohttp.test_utils import TestClient
from dc_overview.frontends.web_app import create_app
from dc_overview.frontends.web_context import WebConfig

import dc_overview
from dc_overview.passwords import ScryptHasher

CHEAP = ScryptHasher(n=2**10, r=8, p=1)
PASSWORD = "correct horse battery"
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def open_fleet(data_dir: Path, **overrides: Any) -> dc_overview.AsyncFleet:
    overrides.setdefault("passwords", CHEAP)
    return dc_overview.open_async(data_dir, **overrides)


@attrs.define
class Web:
    """A test client on a fleet with an admin and a viewer, and a token for each."""

    client: TestClient
    fleet: dc_overview.AsyncFleet
    admin_token: str
    viewer_token: str

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.bearer(self.admin_token)

    @property
    def viewer(self) -> dict[str, str]:
        return self.bearer(self.viewer_token)

    async def csrf(self, path: str = "/login") -> str:
        """The CSRF token of the client's cookie, as a page shows it."""
        text = await (await self.client.get(path)).text()
        found = _META.search(text) or _FIELD.search(text)
        assert found, f"no CSRF token on {path}"
        return html.unescape(found.group(1))

    async def login(self, name: str = "admin", password: str = PASSWORD, expect: int = 200) -> str:
        token = await self.csrf("/login")
        response = await self.client.post("/login", data={"name": name, "password": password, "csrf_token": token})
        assert response.status == expect, await response.text()
        return await self.csrf("/")

    async def post_form(self, path: str, data: dict[str, Any], **kwargs: Any):  # type: ignore[no-untyped-def]
        token = await self.csrf("/")
        return await self.client.post(path, data={**data, "csrf_token": token}, **kwargs)


async def make_web(aiohttp_client, data_dir: Path, config: WebConfig | None = None, **overrides: Any) -> Web:  # type: ignore[no-untyped-def]
    fleet = open_fleet(data_dir, **overrides)
    await fleet.add_user("admin", PASSWORD, "admin")
    await fleet.add_user("viewer", PASSWORD, "viewer")
    admin_token = (await fleet.create_token("admin", "tests")).secret
    viewer_token = (await fleet.create_token("viewer", "tests")).secret
    client = await aiohttp_client(create_app(fleet, config or WebConfig()))
    return Web(client, fleet, admin_token, viewer_token)


def alerts(page: str) -> list[str]:
    """The texts of the page's alert boxes."""
    found = re.findall(r'<div class="alert[^"]*"[^>]*>(.*?)</div>', page, re.DOTALL)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", f)).split()) for f in found]


def links(page: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(r'(?:href|src|action)="([^"]*)"', page)]
