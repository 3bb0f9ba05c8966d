"""The JSON API through aiohttp's test client, on a real SQLite data dir:
every route, its status codes and its errors."""

from __future__ import annotations

import asyncio
import json

import asyncssh
import pytest

from dc_overview import AsyncFleet
from tests.support.web import Web, make_web

pytestmark = pytest.mark.integration


@pytest.fixture
async def web(aiohttp_client, tmp_path):
    made = await make_web(aiohttp_client, tmp_path)
    yield made
    await made.fleet.close()


async def add(web: Web, **body) -> dict:  # type: ignore[no-untyped-def]
    response = await web.client.post("/api/servers", json=body, headers=web.admin)
    assert response.status == 201, await response.text()
    return await response.json()


def no_secrets(text: str) -> None:
    for forbidden in ("PRIVATE KEY", "private_key_path", "password_hash", "token_hash", "ssh_keys/"):
        assert forbidden not in text


async def test_health_needs_no_login(web):
    response = await web.client.get("/api/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["version"]


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/servers"), ("POST", "/api/servers"), ("GET", "/api/servers/1"), ("PATCH", "/api/servers/1"),
    ("DELETE", "/api/servers/1"), ("POST", "/api/servers/1/check"), ("POST", "/api/servers/1/install-exporters"),
    ("POST", "/api/servers/1/remove-exporters"), ("GET", "/api/prometheus/targets"), ("GET", "/api/ssh-keys"),
    ("POST", "/api/ssh-keys"), ("DELETE", "/api/ssh-keys/1"), ("GET", "/api/overview"), ("GET", "/api/jobs"),
    ("POST", "/api/jobs"), ("GET", "/api/jobs/abc"), ("POST", "/api/servers/import"),
])
async def test_the_api_needs_a_login_or_a_token(web, method, path):
    for headers in ({}, Web.bearer("dco_not-a-real-token"), {"Authorization": "Basic YWRtaW46eA=="}):
        response = await web.client.request(method, path, headers=headers)
        assert response.status == 401, (method, path, headers)
        assert response.content_type == "application/json"
        assert (await response.json())["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_servers_can_be_added_read_changed_and_removed(web):
    created = await web.client.post("/api/servers", headers=web.admin, json={
        "name": "gpu-01", "address": "10.0.0.11", "ssh_user": "ubuntu", "ssh_port": 2222,
        "bmc_ip": "10.1.0.11", "labels": {"rack": "b2"},
    })
    assert created.status == 201
    server = await created.json()
    assert created.headers["Location"] == f"/api/servers/{server['id']}"
    assert (server["name"], server["ssh_user"], server["ssh_port"], server["labels"]) == ("gpu-01", "ubuntu", 2222, {"rack": "b2"})
    assert server["status"] == "unknown" and server["bmc_ip"] == "10.1.0.11"

    listed = await (await web.client.get("/api/servers", headers=web.viewer)).json()
    assert [s["name"] for s in listed] == ["gpu-01"]
    one = await web.client.get(f"/api/servers/{server['id']}", headers=web.viewer)
    assert (await one.json())["address"] == "10.0.0.11"

    changed = await web.client.patch(f"/api/servers/{server['id']}", headers=web.admin,
                                     json={"name": "gpu-1a", "ssh_port": 22, "bmc_ip": None, "labels": {}})
    assert changed.status == 200
    after = await changed.json()
    assert (after["name"], after["ssh_port"], after["bmc_ip"], after["labels"]) == ("gpu-1a", 22, None, {})

    removed = await web.client.delete(f"/api/servers/{server['id']}", headers=web.admin)
    assert removed.status == 200 and (await removed.json())["name"] == "gpu-1a"
    assert (await web.client.get(f"/api/servers/{server['id']}", headers=web.admin)).status == 404
    assert await (await web.client.get("/api/servers", headers=web.admin)).json() == []


@pytest.mark.parametrize("body, field", [
    ({"address": "10.0.0.1"}, "name"),
    ({"name": "a"}, "address"),
    ({"name": "bad name", "address": "10.0.0.1"}, "name"),
    ({"name": 7, "address": "10.0.0.1"}, "name"),
    ({"name": "a", "address": "10.0.0.999"}, "address"),
    ({"name": "a", "address": "10.0.0.1", "ssh_port": 0}, "ssh_port"),
    ({"name": "a", "address": "10.0.0.1", "ssh_port": 70000}, "ssh_port"),
    ({"name": "a", "address": "10.0.0.1", "ssh_port": True}, "ssh_port"),
    ({"name": "a", "address": "10.0.0.1", "ssh_port": "22"}, "ssh_port"),
    ({"name": "a", "address": "10.0.0.1", "ssh_user": "Root!"}, "ssh_user"),
    ({"name": "a", "address": "10.0.0.1", "ssh_key": "missing"}, "ssh_key"),
    ({"name": "a", "address": "10.0.0.1", "bmc_ip": "bmc.local"}, "bmc_ip"),
    ({"name": "a", "address": "10.0.0.1", "labels": ["rack"]}, "labels"),
    ({"name": "a", "address": "10.0.0.1", "labels": {"job": "x"}}, "labels"),
    ({"name": "a", "address": "10.0.0.1", "labels": {"rack": 3}}, "labels"),
    ({"name": "a", "address": "10.0.0.1", "colour": "red"}, "colour"),
    ({"name": "a\ud800", "address": "10.0.0.1"}, "name"),
    ({"name": "a\x00", "address": "10.0.0.1"}, "name"),
])
async def test_bad_server_input_is_a_400_naming_the_field(web, body, field):
    response = await web.client.post("/api/servers", headers=web.admin, json=body)
    assert response.status == 400, await response.text()
    error = await response.json()
    assert error["error"] == "invalid_input" and error["field"] == field and error["message"]
    assert await (await web.client.get("/api/servers", headers=web.admin)).json() == []


@pytest.mark.parametrize("data, content_type, field", [
    ("{not json", "application/json", "body"),
    ("[1, 2]", "application/json", "body"),
    ('{"name": "a"}', "text/plain", "body"),
    ("name=a&address=10.0.0.1", "application/x-www-form-urlencoded", "body"),
])
async def test_a_body_that_is_not_a_json_object_is_a_400(web, data, content_type, field):
    response = await web.client.post("/api/servers", data=data, headers={**web.admin, "Content-Type": content_type})
    assert response.status == 400
    assert (await response.json())["field"] == field


async def test_duplicates_are_409_and_unknown_ids_404(web):
    first = await add(web, name="gpu-01", address="10.0.0.11")
    clash = await web.client.post("/api/servers", headers=web.admin, json={"name": "gpu-02", "address": "10.0.0.11"})
    assert clash.status == 409
    body = await clash.json()
    assert body["error"] == "conflict" and "10.0.0.11" in body["message"] and body["hint"]
    for path in ("/api/servers/999", "/api/servers/0", "/api/servers/99999999999999999999999", "/api/servers/x"):
        for method in ("GET", "PATCH", "DELETE"):
            response = await web.client.request(method, path, headers=web.admin, json={"name": "z"})
            assert response.status == 404, (method, path)
            assert response.content_type == "application/json"
    empty = await web.client.patch(f"/api/servers/{first['id']}", headers=web.admin, json={})
    assert empty.status == 400 and (await empty.json())["field"] == "body"
    renamed = await web.client.patch(f"/api/servers/{first['id']}", headers=web.admin, json={"ssh_port": None})
    assert renamed.status == 400 and (await renamed.json())["field"] == "ssh_port"


async def test_a_viewer_may_read_but_not_change(web):
    server = await add(web, name="gpu-01", address="10.0.0.11")
    assert (await web.client.get("/api/servers", headers=web.viewer)).status == 200
    for method, path, body in (
        ("POST", "/api/servers", {"name": "b", "address": "10.0.0.2"}),
        ("PATCH", f"/api/servers/{server['id']}", {"name": "c"}),
        ("DELETE", f"/api/servers/{server['id']}", None),
        ("POST", f"/api/servers/{server['id']}/check", None),
        ("POST", "/api/ssh-keys", {"name": "k", "generate": True}),
        ("POST", "/api/jobs", {"action": "check"}),
        ("POST", "/api/servers/import", {"text": "x,10.0.0.9"}),
    ):
        response = await web.client.request(method, path, headers=web.viewer, json=body)
        assert response.status == 403, (method, path)
        assert (await response.json())["error"] == "forbidden"
    assert [s["name"] for s in await (await web.client.get("/api/servers", headers=web.admin)).json()] == ["gpu-01"]


async def test_bulk_import_is_all_or_nothing(web):
    good = await web.client.post("/api/servers/import", headers=web.admin,
                                 json={"text": "name,ip\ngpu-01,10.0.0.11\ngpu-02,10.0.0.12,ubuntu,2222\n"})
    assert good.status == 200
    report = await good.json()
    assert [s["name"] for s in report["added"]] == ["gpu-01", "gpu-02"] and report["unchanged"] == []
    bad = await web.client.post("/api/servers/import", headers=web.admin,
                                json={"text": "gpu-03,10.0.0.13\ngpu-04,not an address\ngpu-05,10.0.0.15,root,99999\n"})
    assert bad.status == 400
    problem = await bad.json()
    assert problem["field"] == "ip" and len(problem["problems"]) == 2
    assert problem["problems"][0]["where"].endswith("line 2")
    names = [s["name"] for s in await (await web.client.get("/api/servers", headers=web.admin)).json()]
    assert names == ["gpu-01", "gpu-02"]


async def test_prometheus_targets_need_a_login_and_the_http_sd_list_does_not(web):
    sd = await web.client.get("/api/prometheus/targets.json")
    assert sd.status == 200 and sd.content_type == "application/json" and await sd.json() == []
    await add(web, name="gpu-01", address="10.0.0.11", labels={"rack": "b2"})
    groups = await (await web.client.get("/api/prometheus/targets.json")).json()
    assert {tuple(g["targets"]) for g in groups} == {("10.0.0.11:9100",), ("10.0.0.11:9835",)}
    assert all(g["labels"]["server"] == "gpu-01" and g["labels"]["rack"] == "b2" for g in groups)
    assert (await web.client.get("/api/prometheus/targets")).status == 401
    assert await (await web.client.get("/api/prometheus/targets", headers=web.viewer)).json() == groups


async def test_a_scrape_token_guards_the_http_sd_list_and_the_metrics(web):
    token = await web.fleet.generate_scrape_token()
    for path in ("/api/prometheus/targets.json", "/metrics"):
        assert (await web.client.get(path)).status == 401
        assert (await web.client.get(path, headers=Web.bearer("wrong"))).status == 401
        assert (await web.client.get(path, headers=Web.bearer(token))).status == 200
        assert (await web.client.get(path, headers=web.viewer)).status == 200


async def test_ssh_keys_are_generated_uploaded_listed_and_deleted_without_their_private_parts(web):
    generated = await web.client.post("/api/ssh-keys", headers=web.admin, json={"name": "fleet", "generate": True})
    assert generated.status == 201
    key = await generated.json()
    assert key["public_key"].startswith("ssh-ed25519 ") and key["fingerprint"].startswith("SHA256:")
    assert generated.headers["Location"] == f"/api/ssh-keys/{key['id']}"
    private = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    uploaded = await web.client.post("/api/ssh-keys", headers=web.admin, json={"name": "mine", "private_key": private})
    assert uploaded.status == 201
    listing = await web.client.get("/api/ssh-keys", headers=web.viewer)
    text = await listing.text()
    assert sorted(k["name"] for k in json.loads(text)) == ["fleet", "mine"]
    no_secrets(text + await generated.text() + await uploaded.text())
    assert (web.fleet.data_dir / "ssh_keys" / "fleet").stat().st_mode & 0o777 == 0o600

    await add(web, name="gpu-01", address="10.0.0.11", ssh_key="fleet")
    in_use = await web.client.delete(f"/api/ssh-keys/{key['id']}", headers=web.admin)
    assert in_use.status == 409 and "gpu-01" in (await in_use.json())["message"]
    mine = (await uploaded.json())["id"]
    deleted = await web.client.delete(f"/api/ssh-keys/{mine}", headers=web.admin)
    assert deleted.status == 200 and (await deleted.json())["name"] == "mine"
    assert (await web.client.delete(f"/api/ssh-keys/{mine}", headers=web.admin)).status == 404


@pytest.mark.parametrize("body, field", [
    ({"generate": True}, "name"),
    ({"name": "k"}, "private_key"),
    ({"name": "k", "private_key": "ssh-ed25519 AAAA not private"}, "private_key"),
    ({"name": "k", "generate": True, "private_key": "x"}, "private_key"),
    ({"name": "k", "generate": "yes"}, "generate"),
    ({"name": "bad name", "generate": True}, "name"),
    ({"name": "k", "generate": True, "extra": 1}, "extra"),
])
async def test_bad_key_input_is_a_400_naming_the_field(web, body, field):
    response = await web.client.post("/api/ssh-keys", headers=web.admin, json=body)
    assert response.status == 400, await response.text()
    assert (await response.json())["field"] == field
    no_secrets(await response.text())


async def test_a_duplicate_key_name_is_a_conflict(web):
    assert (await web.client.post("/api/ssh-keys", headers=web.admin, json={"name": "k", "generate": True})).status == 201
    again = await web.client.post("/api/ssh-keys", headers=web.admin, json={"name": "k", "generate": True})
    assert again.status == 409


async def test_services_answer_without_login_in_the_proxy_shape(web):
    response = await web.client.get("/api/services")
    assert response.status == 200
    services = await response.json()
    assert {"cryptolabs-proxy", "ipmi-monitor", "dc-overview", "grafana", "prometheus", "vastai-exporter",
            "runpod-exporter"} <= set(services)
    for state in services.values():
        assert set(state) == {"running", "healthy", "container", "port", "image"}
        assert isinstance(state["running"], bool) and isinstance(state["port"], int)
    assert services["dc-overview"]["running"] is True


async def test_the_overview_has_totals_and_tiles(web):
    await add(web, name="gpu-01", address="10.0.0.11")
    response = await web.client.get("/api/overview", headers=web.viewer)
    assert response.status == 200
    found = await response.json()
    assert (found["servers_total"], found["servers_unknown"]) == (1, 1)
    assert found["tiles"][0]["name"] == "gpu-01" and found["tiles"][0]["health"] == "unknown"
    assert found["prometheus"]["reachable"] is False  # /prometheus/ is a browser link, not an API


async def test_metrics_report_the_fleet_and_request_latency(web):
    await add(web, name="gpu-01", address="10.0.0.11")
    await web.client.get("/api/servers/77", headers=web.admin)
    response = await web.client.get("/metrics")
    assert response.status == 200 and response.content_type == "text/plain"
    text = await response.text()
    assert "dc_overview_servers_total 1.0" in text
    assert "dc_overview_servers_online 0.0" in text and "dc_overview_gpu_total 0.0" in text
    assert 'dc_overview_exporters_installed{exporter="node_exporter",server="gpu-01"} 0.0' in text
    assert 'dc_overview_http_request_duration_seconds_count{method="GET",route="/api/servers/{id}",status="404"} 1.0' in text
    assert 'dc_overview_http_request_duration_seconds_count{method="POST",route="/api/servers",status="201"} 1.0' in text
    assert "python_gc" not in text  # its own registry, not the process-global one


async def test_security_headers_are_on_every_response(web):
    for path in ("/api/health", "/api/nothing-here", "/login", "/static/app.css"):
        response = await web.client.get(path)
        headers = response.headers
        assert "default-src 'self'" in headers["Content-Security-Policy"], path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


async def test_unknown_api_paths_and_methods_answer_json(web):
    missing = await web.client.get("/api/nothing", headers=web.admin)
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"
    wrong = await web.client.put("/api/servers", headers=web.admin, json={})
    assert wrong.status == 405 and "GET" in wrong.headers["Allow"]


# -- long operations as jobs ------------------------------------------------------------------------


async def wait_finished(web: Web, url: str) -> dict:
    for _ in range(200):
        job = await (await web.client.get(url, headers=web.admin)).json()
        if job["finished"]:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {url} did not finish")


async def test_a_check_runs_as_a_job_with_per_host_progress(web):
    server = await add(web, name="gpu-01", address="127.0.0.1", ssh_port=1)  # nothing listens on port 1
    started = await web.client.post(f"/api/servers/{server['id']}/check", headers=web.admin)
    assert started.status == 202
    job = await started.json()
    assert started.headers["Location"] == job["url"] == f"/api/jobs/{job['id']}"
    assert (job["action"], job["servers"], job["user"], job["total"]) == ("check", ["gpu-01"], "admin", 1)
    done = await wait_finished(web, job["url"])
    assert done["state"] == "succeeded" and done["done"] == 1 and done["failed_hosts"] == 1
    assert done["headline"] == "1 of 1 failed"
    host = done["hosts"][0]
    assert host["host"] == "gpu-01" and host["ok"] is False and host["state"] != "pending" and host["message"]
    listed = await (await web.client.get("/api/jobs", headers=web.viewer)).json()
    assert [j["id"] for j in listed] == [job["id"]]


async def test_job_progress_streams_as_server_sent_events(web):
    await add(web, name="gpu-01", address="127.0.0.1", ssh_port=1)
    await add(web, name="gpu-02", address="127.0.0.2", ssh_port=1)
    started = await web.client.post("/api/jobs", headers=web.admin, json={"action": "check"})
    assert started.status == 202
    job = await started.json()
    assert job["servers"] == ["gpu-01", "gpu-02"]
    stream = await web.client.get(f"/api/jobs/{job['id']}/events", headers=web.viewer)
    assert stream.status == 200 and stream.content_type == "text/event-stream"
    events = [json.loads(line[len("data: "):]) for line in (await stream.text()).splitlines() if line.startswith("data: ")]
    assert events and events[-1]["finished"] and events[-1]["done"] == 2
    assert {h["host"] for h in events[-1]["hosts"]} == {"gpu-01", "gpu-02"}


@pytest.mark.parametrize("body, status, field", [
    ({"action": "reboot"}, 400, "action"),
    ({}, 400, "action"),
    ({"action": "check", "servers": "all"}, 400, "servers"),
    ({"action": "check", "servers": [True]}, 400, "servers"),
    ({"action": "check", "servers": [12345]}, 404, None),
])
async def test_bad_job_requests(web, body, status, field):
    await add(web, name="gpu-01", address="127.0.0.1", ssh_port=1)
    response = await web.client.post("/api/jobs", headers=web.admin, json=body)
    assert response.status == status
    if field:
        assert (await response.json())["field"] == field


async def test_no_servers_no_job_and_unknown_jobs_are_404(web):
    response = await web.client.post("/api/jobs", headers=web.admin, json={"action": "check"})
    assert response.status == 400 and (await response.json())["field"] == "servers"
    for path in ("/api/jobs/0123456789abcdef", "/api/jobs/0123456789abcdef/events"):
        assert (await web.client.get(path, headers=web.admin)).status == 404


class FleetWithoutSsh(AsyncFleet):
    """A fleet of a build that cannot reach servers: no SSH operations."""

    check = install_exporters = remove_exporters = None  # type: ignore[assignment]


async def test_operations_a_build_lacks_are_501_and_do_nothing(aiohttp_client, tmp_path):
    from dc_overview.frontends.web_app import create_app

    from tests.support.web import open_fleet

    plain = open_fleet(tmp_path)
    fleet = FleetWithoutSsh(plain.deps)
    await fleet.add_user("admin", "correct horse battery", "admin")
    token = (await fleet.create_token("admin", "t")).secret
    client = await aiohttp_client(create_app(fleet))
    server = await fleet.add_server("gpu-01", "10.0.0.11")
    for action in ("check", "install-exporters", "remove-exporters"):
        response = await client.post(f"/api/servers/{server.id}/{action}", headers=Web.bearer(token))
        assert response.status == 501
        body = await response.json()
        assert body["error"] == "not_implemented" and "nothing was done" in body["hint"]
    assert await (await client.get("/api/jobs", headers=Web.bearer(token))).json() == []
    await fleet.close()
