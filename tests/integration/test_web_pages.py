"""The HTML pages and their forms, as a browser without JavaScript uses them:
a mistake shows the form again naming the field; a success redirects with
a one-time message. Nothing shown ever contains a private key or a secret."""

from __future__ import annotations

import asyncssh
import attrs
import pytest

from tests.support.web import PASSWORD, alerts, make_web

pytestmark = pytest.mark.integration


@pytest.fixture
async def web(aiohttp_client, tmp_path):
    made = await make_web(aiohttp_client, tmp_path)
    await made.login()
    yield made
    await made.fleet.close()


async def test_the_dashboard_shows_totals_and_a_tile_per_server(web):
    empty = await (await web.client.get("/")).text()
    assert "No servers yet." in empty and 'data-overview-url="/api/overview"' in empty
    await web.fleet.add_server("gpu-01", "10.0.0.11")
    page = await (await web.client.get("/")).text()
    assert 'class="tile tile-unknown"' in page and ">gpu-01<" in page and "not checked yet" in page
    assert 'data-stat="servers_total">1<' in page
    assert 'href="/grafana/"' in page and 'href="/prometheus/"' in page and 'href="/ipmi/"' in page


async def test_adding_a_server_by_form(web):
    bad = await web.post_form("/servers", {"name": "gpu-01", "address": "10.0.0.999", "ssh_port": "22"})
    assert bad.status == 400
    text = await bad.text()
    assert "address: &#39;10.0.0.999&#39; is not an IP address or hostname" in text
    assert 'value="gpu-01"' in text  # what was typed is kept
    bad_port = await web.post_form("/servers", {"name": "gpu-01", "address": "10.0.0.11", "ssh_port": "22x"})
    assert bad_port.status == 400 and "ssh_port" in await bad_port.text()
    ok = await web.post_form("/servers", {"name": "gpu-01", "address": "10.0.0.11", "ssh_user": "ubuntu",
                                          "ssh_port": "2222", "labels": "rack=b2, site=jhb"})
    assert ok.status == 200 and ok.url.path == "/servers"
    assert "Added gpu-01 (10.0.0.11)." in alerts(await ok.text())
    server = await web.fleet.server("gpu-01")
    assert (server.ssh_user, server.ssh_port, dict(server.labels)) == ("ubuntu", 2222, {"rack": "b2", "site": "jhb"})
    again = await (await web.client.get("/servers")).text()
    assert "Added gpu-01" not in again  # the message shows once


async def test_pasting_many_servers(web):
    ok = await web.post_form("/servers/import", {"text": "gpu-01,10.0.0.11\ngpu-02,10.0.0.12\n"})
    assert ok.status == 200 and "Imported 2 server(s): gpu-01, gpu-02." in alerts(await ok.text())
    bad = await web.post_form("/servers/import", {"text": "gpu-03,10.0.0.13\ngpu-04,no such host!\n"})
    assert bad.status == 400
    text = await bad.text()
    assert "pasted text line 2" in text and "gpu-04,no such host!" in text
    assert [s.name for s in await web.fleet.servers()] == ["gpu-01", "gpu-02"]


async def test_editing_and_removing_a_server_with_confirmation(web):
    server = await web.fleet.add_server("gpu-01", "10.0.0.11")
    page = await (await web.client.get(f"/servers/{server.id}")).text()
    assert 'value="gpu-01"' in page and "Remove…" in page
    bad = await web.post_form(f"/servers/{server.id}", {"name": "gpu-01", "address": "10.0.0.11", "ssh_user": "root",
                                                        "ssh_port": "99999"})
    assert bad.status == 400 and "out of range" in await bad.text()
    ok = await web.post_form(f"/servers/{server.id}", {"name": "gpu-1a", "address": "10.0.0.12", "ssh_user": "root",
                                                       "ssh_port": "22", "labels": ""})
    assert ok.status == 200 and "Saved gpu-1a." in alerts(await ok.text())
    confirm = await (await web.client.get(f"/servers/{server.id}/remove")).text()
    assert "Remove gpu-1a?" in confirm and "Nothing is changed on the server itself" in confirm
    assert await web.fleet.server("gpu-1a")  # looking at the confirmation removes nothing
    removed = await web.post_form(f"/servers/{server.id}/remove", {})
    assert removed.url.path == "/servers" and "Removed gpu-1a." in alerts(await removed.text())
    assert await web.fleet.servers() == []
    gone = await web.client.get(f"/servers/{server.id}")
    assert gone.status == 404 and "no server with id" in await gone.text()


async def test_actions_start_jobs_and_the_job_page_shows_them(web):
    one = await web.fleet.add_server("gpu-01", "127.0.0.1", ssh_port=1)
    await web.fleet.add_server("gpu-02", "127.0.0.2", ssh_port=1)
    started = await web.post_form(f"/servers/{one.id}/jobs", {"action": "check"})
    assert started.status == 200 and started.url.path.startswith("/jobs/")
    page = await started.text()
    assert "Check servers" in page and "gpu-01" in page and "data-events-url=" in page
    bulk = await web.post_form("/jobs", {"action": "check"})  # nothing ticked: every server
    text = await bulk.text()
    assert "gpu-01" in text and "gpu-02" in text and "on 2 server(s)" in text
    unknown = await web.post_form(f"/servers/{one.id}/jobs", {"action": "format-disks"})
    assert unknown.status == 400 and "is not an action" in await unknown.text()
    assert (await web.client.get("/jobs/ffffffffffffffff")).status == 404


async def test_integration_links_and_write_only_secrets(web):
    page = await (await web.client.get("/settings")).text()
    assert 'value="/grafana/"' in page and "not set" in page
    bad = await web.post_form("/settings/integrations", {"grafana_url": "", "prometheus_url": "/prometheus/",
                                                         "ipmi_monitor_url": "/ipmi/"})
    assert bad.status == 400 and "a link is required" in await bad.text()
    ok = await web.post_form("/settings/integrations", {"grafana_url": "https://grafana.example/",
                                                        "prometheus_url": "http://127.0.0.1:9090/",
                                                        "ipmi_monitor_url": "/ipmi/"})
    assert "Saved the integration links." in alerts(await ok.text())
    assert (await web.fleet.settings()).grafana_url == "https://grafana.example/"

    secret = "vast-key-1234567890abcdef"
    saved = await web.post_form("/settings/secrets", {"name": "vastai_api_key", "op": "set", "value": secret})
    text = await saved.text()
    assert "Saved the Vast.ai API key" in text and secret not in text
    assert secret not in await (await web.client.get("/settings")).text()
    path = web.fleet.data_dir / "secrets" / "vastai_api_key"
    assert path.read_text().strip() == secret and path.stat().st_mode & 0o777 == 0o600
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    spaced = await web.post_form("/settings/secrets", {"name": "runpod_api_key", "op": "set", "value": "a b"})
    assert spaced.status == 400 and "one word" in await spaced.text()
    unknown = await web.post_form("/settings/secrets", {"name": "session_key", "op": "set", "value": "x"})
    assert unknown.status == 400 and "is not a known secret" in await unknown.text()
    cleared = await web.post_form("/settings/secrets", {"name": "vastai_api_key", "op": "clear"})
    assert "Cleared" in await cleared.text() and not path.exists()

    generated = await web.post_form("/settings/secrets", {"name": "scrape_token", "op": "generate"})
    token = (await web.fleet.read_secret("scrape_token"))
    assert token and token in await generated.text()  # shown once, on the page that made it
    assert token not in await (await web.client.get("/settings")).text()


async def test_ssh_keys_page_generates_uploads_and_deletes(web):
    made = await web.post_form("/settings/keys/generate", {"name": "fleet", "comment": ""})
    assert "Generated fleet." in " ".join(alerts(await made.text()))
    private = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    uploaded = await web.post_form("/settings/keys/upload", {"name": "mine", "private_key": private, "passphrase": ""})
    assert uploaded.status == 200 and "Stored mine (SHA256:" in " ".join(alerts(await uploaded.text()))
    page = await (await web.client.get("/settings/keys")).text()
    for stored in (web.fleet.data_dir / "ssh_keys").iterdir():  # no line of any private key is shown
        body = [line for line in stored.read_text().splitlines() if line and "-----" not in line]
        assert body and not any(line in page for line in body)
    assert "ssh_keys/" not in page
    assert page.count("ssh-ed25519 AAAA") == 2 and "SHA256:" in page
    empty = await web.post_form("/settings/keys/upload", {"name": "none", "private_key": ""})
    assert empty.status == 400 and "paste a private key" in await empty.text()
    junk = await web.post_form("/settings/keys/upload", {"name": "junk", "private_key": "not a key"})
    assert junk.status == 400 and "not a private key" in await junk.text()
    key = await web.fleet.key("mine")
    assert "Delete SSH key mine?" in await (await web.client.get(f"/settings/keys/{key.id}/remove")).text()
    deleted = await web.post_form(f"/settings/keys/{key.id}/remove", {})
    assert "Deleted mine." in alerts(await deleted.text())
    await web.fleet.add_server("gpu-01", "10.0.0.11", ssh_key="fleet")
    fleet_key = await web.fleet.key("fleet")
    in_use = await web.post_form(f"/settings/keys/{fleet_key.id}/remove", {})
    assert in_use.status == 409 and "is used by 1 server(s): gpu-01" in await in_use.text()


async def test_a_key_file_can_be_uploaded(web):
    from aiohttp import FormData

    private = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    form = FormData()
    form.add_field("csrf_token", await web.csrf("/"))
    form.add_field("name", "from-file")
    form.add_field("private_key_file", private.encode(), filename="id_ed25519", content_type="application/octet-stream")
    response = await web.client.post("/settings/keys/upload", data=form)
    assert response.status == 200 and "Stored from-file" in " ".join(alerts(await response.text()))


async def test_users_are_added_given_roles_and_removed(web):
    page = await (await web.client.get("/settings/users")).text()
    assert ">admin" in page and ">viewer" in page
    short = await web.post_form("/settings/users", {"name": "carol", "password": "short", "role": "viewer"})
    assert short.status == 400 and "too short" in await short.text()
    added = await web.post_form("/settings/users", {"name": "carol", "password": PASSWORD, "role": "viewer"})
    assert "Added carol (viewer)." in alerts(await added.text())
    duplicate = await web.post_form("/settings/users", {"name": "Carol", "password": PASSWORD, "role": "viewer"})
    assert duplicate.status == 400 and "already exists" in await duplicate.text()
    promoted = await web.post_form("/settings/users/carol/role", {"role": "admin"})
    assert "carol is now admin." in alerts(await promoted.text())
    assert "Remove user carol?" in await (await web.client.get("/settings/users/carol/remove")).text()
    removed = await web.post_form("/settings/users/carol/remove", {})
    assert "Removed carol." in alerts(await removed.text())
    last = await web.post_form("/settings/users/admin/role", {"role": "viewer"})
    assert last.status == 400 and "last admin" in await last.text()
    missing = await web.client.get("/settings/users/nobody/remove")
    assert missing.status == 404


async def test_the_services_landing_page_needs_no_login(aiohttp_client, tmp_path):
    web = await make_web(aiohttp_client, tmp_path)
    page = await web.client.get("/services")
    assert page.status == 200
    text = await page.text()
    running, available = text.split("<h2>Available</h2>")
    assert "DC Overview" in running and 'href="/dc/"' in running
    for title in ("Grafana", "Prometheus", "IPMI Monitor", "Vast.ai exporter", "RunPod exporter"):
        assert title in available
    assert "How to get it:" in available
    await web.fleet.close()


async def test_error_pages_and_static_files(web):
    missing = await web.client.get("/no/such/page")
    assert missing.status == 404 and "Not found" in await missing.text()
    css = await web.client.get("/static/app.css")
    assert css.status == 200 and ".fleet-grid" in await css.text()
    page = await (await web.client.get("/")).text()
    assert '<script src="/static/app.js?v=' in page
    for name in ("app.js", "favicon.svg"):
        assert (await web.client.get(f"/static/{name}")).status == 200
    assert (await web.client.get("/static/../pyproject.toml")).status in (403, 404)


async def test_a_pinned_host_key_is_forgotten_only_after_confirmation(web):
    server = await web.fleet.add_server("gpu-01", "10.0.0.11")
    pinned = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    web.fleet.deps.storage.update_server(attrs.evolve(server, host_key=pinned))  # as a first connection pins it
    page = await (await web.client.get(f"/servers/{server.id}")).text()
    assert "ssh-ed25519 (pinned)" in page and f"/servers/{server.id}/trust" in page
    confirm = await (await web.client.get(f"/servers/{server.id}/trust")).text()
    assert "Trust a new host key for gpu-01?" in confirm
    assert (await web.fleet.server("gpu-01")).host_key == pinned
    done = await web.post_form(f"/servers/{server.id}/trust", {})
    assert done.url.path == f"/servers/{server.id}" and "Forgot the host key of gpu-01" in " ".join(alerts(await done.text()))
    assert (await web.fleet.server("gpu-01")).host_key is None
