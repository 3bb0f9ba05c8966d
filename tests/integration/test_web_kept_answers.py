"""The kept (rendered once per database revision) answers of the JSON API,
on a real SQLite data dir: they follow every write, from this app, from
another connection to the same file (what the CLI in another process is),
and after settings change; gzip and plain decode to the same JSON; ETag and
304; and API tokens stop working the moment they are revoked."""

from __future__ import annotations

import gzip
import json

import attrs
import pytest
from dc_overview.adapters.sqlite_storage import SqliteStorage
from dc_overview.frontends.web_context import BODIES

from dc_overview.domain import Server
from tests.support.web import Web, make_web, open_fleet

# string keys on the app or a request would warn; the app uses typed keys only
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("error::aiohttp.web.NotAppKeyWarning")]

KEPT = ["/api/servers", "/api/prometheus/targets", "/api/prometheus/targets.json"]


@pytest.fixture
async def web(aiohttp_client, tmp_path):
    made = await make_web(aiohttp_client, tmp_path)
    yield made
    await made.fleet.close()


async def raw(web: Web, path: str, **headers: str):  # type: ignore[no-untyped-def]
    """Status, headers and the body as sent (not decompressed); plain unless
    ``Accept-Encoding`` is given (aiohttp's client would ask for gzip)."""
    response = await web.client.get(path, headers={"Accept-Encoding": "identity", **web.viewer, **headers},
                                    auto_decompress=False)
    return response.status, response.headers, await response.read()


async def names_in_targets(web: Web) -> set[str]:
    status, _, body = await raw(web, "/api/prometheus/targets.json")
    assert status == 200
    return {group["labels"]["server"] for group in json.loads(body)}


async def test_targets_follow_adds_edits_and_removals_through_the_api(web):
    assert await names_in_targets(web) == set()
    added = await web.client.post("/api/servers", headers=web.admin, json={"name": "gpu-01", "address": "10.0.0.1"})
    assert added.status == 201
    server_id = (await added.json())["id"]
    assert await names_in_targets(web) == {"gpu-01"}

    edited = await web.client.patch(f"/api/servers/{server_id}", headers=web.admin, json={"name": "gpu-1a"})
    assert edited.status == 200
    assert await names_in_targets(web) == {"gpu-1a"}
    listed = await (await web.client.get("/api/servers", headers=web.viewer)).json()
    assert [s["name"] for s in listed] == ["gpu-1a"]

    removed = await web.client.delete(f"/api/servers/{server_id}", headers=web.admin)
    assert removed.status == 200
    assert await names_in_targets(web) == set()
    assert await (await web.client.get("/api/servers", headers=web.viewer)).json() == []


async def test_a_write_by_another_connection_to_the_same_file_is_seen_at_once(web):
    await web.fleet.add_server("gpu-01", "10.0.0.1")
    assert await names_in_targets(web) == {"gpu-01"}
    other = open_fleet(web.fleet.data_dir)  # its own SQLite connection, as the CLI in another process has
    try:
        await other.add_server("gpu-02", "10.0.0.2")
        assert await names_in_targets(web) == {"gpu-01", "gpu-02"}
        await other.update_server("gpu-01", address="10.0.0.11")
        status, _, body = await raw(web, "/api/servers")
        assert status == 200
        assert {s["name"]: s["address"] for s in json.loads(body)} == {"gpu-01": "10.0.0.11", "gpu-02": "10.0.0.2"}
        await other.remove_server("gpu-02")
        assert await names_in_targets(web) == {"gpu-01"}
    finally:
        await other.close()


async def test_a_settings_change_renders_the_body_again(web):
    await web.fleet.add_server("gpu-01", "10.0.0.1")
    await raw(web, "/api/prometheus/targets.json")
    kept = web.client.app[BODIES].entry("targets")
    assert kept is not None
    await web.fleet.set_setting("ssh_concurrency", 20)
    await raw(web, "/api/prometheus/targets.json")
    after_own = web.client.app[BODIES].entry("targets")
    assert after_own is not None and after_own.revision != kept.revision

    other = open_fleet(web.fleet.data_dir)
    try:
        await other.set_setting("ssh_concurrency", 30)
    finally:
        await other.close()
    await raw(web, "/api/prometheus/targets.json")
    after_other = web.client.app[BODIES].entry("targets")
    assert after_other is not None and after_other.revision != after_own.revision


@pytest.mark.parametrize("path", KEPT)
async def test_gzip_and_plain_bodies_are_the_same_json_as_the_fleet_gives(web, path):
    await web.fleet.add_server("gpu-01", "10.0.0.1", labels={"rack": "ü-7"})
    await web.fleet.add_server("gpu-02", "10.0.0.2")
    expected = await web.fleet.targets() if "targets" in path else None

    status, headers, plain = await raw(web, path)
    assert status == 200 and "Content-Encoding" not in headers
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Vary"] == "Accept-Encoding" and headers["Cache-Control"] == "no-store"
    status, packed_headers, packed = await raw(web, path, **{"Accept-Encoding": "gzip"})
    assert status == 200 and packed_headers["Content-Encoding"] == "gzip"
    assert packed_headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(packed) == plain
    assert len(packed) < len(plain)
    value = json.loads(plain)
    if expected is not None:
        assert value == expected
    else:
        assert [s["name"] for s in value] == ["gpu-01", "gpu-02"] and value[0]["labels"] == {"rack": "ü-7"}
    assert headers["ETag"] != packed_headers["ETag"]


@pytest.mark.parametrize("accept, compressed", [
    ("gzip", True), ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.5", True), ("*", True), ("x-gzip", True),
    ("gzip;q=0", False), ("identity", False), ("br", False), ("*;q=0", False), ("", False),
])
async def test_accept_encoding_is_read_with_its_qualities(web, accept, compressed):
    status, headers, _ = await raw(web, "/api/prometheus/targets.json", **{"Accept-Encoding": accept})
    assert status == 200
    assert (headers.get("Content-Encoding") == "gzip") is compressed


async def test_a_matching_etag_answers_304_and_a_change_gives_a_new_one(web):
    await web.fleet.add_server("gpu-01", "10.0.0.1")
    _, headers, _ = await raw(web, "/api/prometheus/targets.json")
    _, packed_headers, _ = await raw(web, "/api/prometheus/targets.json", **{"Accept-Encoding": "gzip"})
    plain_tag, packed_tag = headers["ETag"], packed_headers["ETag"]

    for sent in (plain_tag, packed_tag, f"W/{plain_tag}", f'"other", {packed_tag}', "*"):
        status, answered, body = await raw(web, "/api/prometheus/targets.json", **{"If-None-Match": sent})
        assert status == 304 and body == b"", sent
        assert answered["ETag"] == plain_tag
    status, _, body = await raw(web, "/api/prometheus/targets.json", **{"If-None-Match": '"stale"'})
    assert status == 200 and body

    await web.fleet.add_server("gpu-02", "10.0.0.2")
    status, headers, body = await raw(web, "/api/prometheus/targets.json", **{"If-None-Match": plain_tag})
    assert status == 200 and headers["ETag"] != plain_tag and b"gpu-02" in body


async def test_the_etag_is_the_same_in_another_process_serving_the_same_data(web, aiohttp_client):
    await web.fleet.add_server("gpu-01", "10.0.0.1")
    second = await make_web(aiohttp_client, web.fleet.data_dir / "second")
    try:
        await second.fleet.add_server("gpu-01", "10.0.0.1")
        _, second_headers, _ = await raw(second, "/api/prometheus/targets.json")
        _, first_headers, _ = await raw(web, "/api/prometheus/targets.json")
        assert second_headers["ETag"] == first_headers["ETag"]
    finally:
        await second.fleet.close()


async def test_the_scrape_token_still_guards_targets_json(web):
    await web.fleet.add_server("gpu-01", "10.0.0.1")
    token = await web.fleet.generate_scrape_token()
    anonymous = await web.client.get("/api/prometheus/targets.json", headers={"Accept-Encoding": "gzip"})
    assert anonymous.status == 401
    scraper = await web.client.get("/api/prometheus/targets.json",
                                   headers={**Web.bearer(token), "Accept-Encoding": "gzip"})
    assert scraper.status == 200 and [g["labels"]["server"] for g in await scraper.json()] == ["gpu-01", "gpu-01"]


async def test_a_scrape_token_replaced_by_another_process_counts_at_once(web):
    token = await web.fleet.generate_scrape_token()
    for _ in range(3):  # known by now as no API token, and the scrape token's value kept
        assert (await web.client.get("/api/prometheus/targets.json", headers=Web.bearer(token))).status == 200
    other = open_fleet(web.fleet.data_dir)
    try:
        replaced = await other.generate_scrape_token()
    finally:
        await other.close()
    assert (await web.client.get("/api/prometheus/targets.json", headers=Web.bearer(token))).status == 401
    assert (await web.client.get("/api/prometheus/targets.json", headers=Web.bearer(replaced))).status == 200
    assert (await web.client.get("/api/servers", headers=Web.bearer(replaced))).status == 401  # no API token


# -- tokens ------------------------------------------------------------------------------------------


async def _token_id(web: Web, user: str) -> int:
    return next(t.id for t in await web.fleet.tokens(user) if t.label == "tests")


async def test_a_revoked_token_is_refused_at_once(web):
    for _ in range(3):  # checked, then remembered
        assert (await web.client.get("/api/servers", headers=web.viewer)).status == 200
    await web.fleet.revoke_token(await _token_id(web, "viewer"))
    refused = await web.client.get("/api/servers", headers=web.viewer)
    assert refused.status == 401


async def test_a_token_revoked_by_another_process_is_refused_at_once(web):
    for _ in range(3):
        assert (await web.client.get("/api/prometheus/targets", headers=web.viewer)).status == 200
    other = open_fleet(web.fleet.data_dir)
    try:
        await other.revoke_token(await _token_id(web, "viewer"))
    finally:
        await other.close()
    assert (await web.client.get("/api/prometheus/targets", headers=web.viewer)).status == 401


async def test_a_role_change_or_a_removed_user_counts_at_once(web):
    body = {"name": "gpu-01", "address": "10.0.0.1"}
    for _ in range(2):
        assert (await web.client.get("/api/servers", headers=web.viewer)).status == 200
    assert (await web.client.post("/api/servers", headers=web.viewer, json=body)).status == 403
    other = open_fleet(web.fleet.data_dir)
    try:
        await other.set_role("viewer", "admin")
        assert (await web.client.post("/api/servers", headers=web.viewer, json=body)).status == 201
        await other.set_role("viewer", "viewer")
        assert (await web.client.delete("/api/servers/1", headers=web.viewer)).status == 403
        await other.remove_user("viewer")
    finally:
        await other.close()
    assert (await web.client.get("/api/servers", headers=web.viewer)).status == 401


def test_the_revision_moves_with_every_kind_of_write(tmp_path):
    storage = SqliteStorage(tmp_path)
    other = SqliteStorage(tmp_path)
    try:
        seen = [storage.revision()]
        assert storage.revision() == seen[-1]  # reading changes nothing

        def moved() -> None:
            now = storage.revision()
            assert now not in seen
            seen.append(now)

        added = storage.add_server(Server(name="gpu-01", address="10.0.0.1"))
        moved()
        storage.save_setting("ssh_concurrency", 5)
        moved()
        other.update_server(attrs.evolve(added, address="10.0.0.2"))
        moved()
        other.save_setting("ssh_concurrency", 6)
        moved()
        other.conn.execute("DELETE FROM servers")  # any write, even one no method of ours makes
        moved()
        storage.conn.execute("UPDATE settings SET value = '7'")
        moved()
    finally:
        storage.close()
        other.close()
