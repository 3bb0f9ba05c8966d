"""The stack on a real Docker engine, through the aiodocker adapter and the
Python API: apply, re-apply, change one setting, reload, stop/start, logs,
status, routes validated by the proxy's own nginx, upgrade with an image that
cannot be pulled, a replacement that fails and is rolled back, and a real
Prometheus scraping a real node_exporter through the generated config.

Images: scripts/build-stack-images (Debian's prometheus and nginx-light on
the debootstrap base). One stack per module (it takes ~10 s to come up);
each test leaves it applied and healthy.
"""

from __future__ import annotations

import asyncio
import json

import attrs
import pytest

from dc_overview import errors
from dc_overview.adapters.docker_runtime import DockerRuntime
from tests.support.stack_lab import (
    NGINX_IMAGE, PROMETHEUS_IMAGE, container_state, docker, http, need_images, prometheus_query, stack_lab,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(tmp_path_factory):  # type: ignore[no-untyped-def]
    need_images(PROMETHEUS_IMAGE, NGINX_IMAGE)
    with stack_lab(tmp_path_factory.mktemp("stack") / "data") as lab:
        report, _ = lab.apply()
        assert [(c.service, c.action) for c in report.changes] == [
            ("prometheus", "created"), ("cryptolabs-proxy", "created")]
        yield lab


def test_apply_brings_up_healthy_containers_labelled_as_ours(lab):
    for service in ("prometheus", "cryptolabs-proxy"):
        assert container_state(lab.prefix + service) == ("running", "healthy")
    labels = json.loads(docker("inspect", "-f", "{{json .Config.Labels}}", f"{lab.prefix}prometheus").stdout)
    assert labels["io.cryptolabs.dc-overview.managed"] == "true"
    assert labels["io.cryptolabs.dc-overview.service"] == "prometheus"
    assert len(labels["io.cryptolabs.dc-overview.config-hash"]) == 64
    networks = docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", f"{lab.prefix}prometheus").stdout
    assert lab.network in json.loads(networks)
    assert docker("volume", "inspect", f"{lab.prefix}dc-overview-prometheus-data", check=False).returncode == 0


def test_status_and_api_services_report_the_running_stack(lab):
    rows = {r.service: r for r in lab.fleet.stack_status()}
    assert rows["prometheus"].state == "running" and rows["prometheus"].health == "healthy"
    assert set(rows["cryptolabs-proxy"].ports) == {f"127.0.0.1:{lab.ports['http']}->80/tcp",
                                                   f"127.0.0.1:{lab.ports['https']}->443/tcp"}
    assert rows["prometheus"].version == "bookworm"
    services = lab.fleet.services()
    assert attrs.asdict(services["prometheus"]) == {
        "running": True, "healthy": True, "container": f"{lab.prefix}prometheus", "port": 9090,
        "image": PROMETHEUS_IMAGE}
    assert services["grafana"].running is False


def test_applying_again_changes_nothing(lab):
    before = lab.ids()
    report, _ = lab.apply()
    assert {c.action for c in report.changes} == {"unchanged"}
    assert lab.ids() == before


def test_the_proxy_serves_https_redirects_http_and_keeps_prometheus_lifecycle_private(lab):
    status, headers, _ = http(f"http://127.0.0.1:{lab.ports['http']}/prometheus/graph")
    assert status == 301 and headers["Location"] == f"https://127.0.0.1:{lab.ports['https']}/prometheus/graph"
    status, _, body = http(f"{lab.https}/", context=lab.tls)  # the certificate names 127.0.0.1
    assert status == 200 and b"Fleet services" in body
    status, _, body = http(f"{lab.https}/services.json", context=lab.tls)
    assert [s["path"] for s in json.loads(body)] == ["/prometheus/"]
    assert prometheus_query(f"{lab.https}/prometheus", 'up{job="prometheus"}', lab.tls)
    assert http(f"{lab.https}/prometheus/-/reload", method="POST", context=lab.tls)[0] == 403
    assert http(f"{lab.https}/prometheus/-/healthy", context=lab.tls)[0] == 200


def test_prometheus_scrapes_a_real_node_exporter_through_the_generated_config(lab):
    # a node_exporter on the stack's network, as a worker would be on the LAN
    docker("run", "-d", "--name", f"{lab.prefix}node1", "--network", lab.network, "--network-alias", "node1",
           "--entrypoint", "prometheus-node-exporter", PROMETHEUS_IMAGE)
    lab.fleet.add_server("node1", "node1")  # writes <data>/prometheus/targets/fleet.json
    up = wait_until(lambda: prometheus_query(lab.prometheus, 'up{job="node",server="node1"} == 1'), 60,
                    "node1's node_exporter scraped")
    assert up[0]["metric"]["instance"] == "node1:9100" and up[0]["metric"]["exporter"] == "node_exporter"
    assert prometheus_query(lab.prometheus, 'node_cpu_seconds_total{server="node1"}')


def test_changing_one_setting_recreates_only_that_container(lab):
    before = lab.ids()
    lab.fleet.set_stack_option("retention", "3d")
    report, _ = lab.apply()
    assert {c.service: c.action for c in report.changes} == {"prometheus": "recreated", "cryptolabs-proxy": "unchanged"}
    after = lab.ids()
    assert after[f"{lab.prefix}prometheus"] != before[f"{lab.prefix}prometheus"]
    assert after[f"{lab.prefix}cryptolabs-proxy"] == before[f"{lab.prefix}cryptolabs-proxy"]
    assert set(after) == set(before)  # no "-previous" left behind
    args = json.loads(docker("inspect", "-f", "{{json .Args}}", f"{lab.prefix}prometheus").stdout)
    assert "--storage.tsdb.retention.time=3d" in args


def test_changed_config_files_reload_prometheus_and_the_proxy_in_place(lab):
    before = lab.ids()
    lab.fleet.set_stack_option("scrape_interval", "3s")
    lab.fleet.set_stack_option("domain", "mon.example.net")
    report, _ = lab.apply()
    assert {c.service: c.action for c in report.changes} == {"prometheus": "reloaded", "cryptolabs-proxy": "reloaded"}
    assert lab.ids() == before
    config = json.loads(http(f"{lab.prometheus}/api/v1/status/config")[2])["data"]["yaml"]
    assert "scrape_interval: 3s" in config
    # the proxy now answers for the domain (and its certificate names it)
    served = docker("exec", f"{lab.prefix}cryptolabs-proxy", "cat", "/etc/dc-proxy/nginx.conf").stdout
    assert "server_name mon.example.net;" in served


def test_routes_are_checked_by_the_proxys_nginx_and_a_refused_one_is_undone(lab):
    lab.fleet.register_route("ipmi-monitor", "/ipmi/", "ipmi-monitor:5000", container="ipmi-monitor")
    # routed (nothing runs there: 502), no longer 404; nginx reloads its workers in the background
    wait_until(lambda: http(f"{lab.https}/ipmi/", context=lab.tls)[0] == 502, 10, "/ipmi/ routed")
    conf_d = lab.data / "stack" / "proxy" / "conf.d"
    (conf_d / "handmade.conf").write_text("location ^~ /other/ { return 204; }\n")  # someone's own file
    try:
        with pytest.raises(errors.ProxyConfigInvalid, match="duplicate location"):
            lab.fleet.register_route("other", "/other/", "other:80")
        assert not (conf_d / "other.conf").exists()
        # the proxy still serves its previous configuration
        assert http(f"{lab.https}/ipmi/", context=lab.tls)[0] == 502
        assert http(f"{lab.https}/other/", context=lab.tls)[0] == 404
    finally:
        (conf_d / "handmade.conf").unlink()
    lab.fleet.unregister_route("ipmi-monitor")
    wait_until(lambda: http(f"{lab.https}/ipmi/", context=lab.tls)[0] == 404, 10, "/ipmi/ gone")
    assert [r.name for r in lab.fleet.proxy_routes()] == ["prometheus"]


def test_logs_of_one_service_and_of_all(lab):
    lines: list[str] = []
    lab.fleet.stack_logs("prometheus", tail=200, on_line=lines.append)
    assert any("Server is ready to receive web requests" in line for line in lines)
    lines.clear()
    lab.fleet.stack_logs(tail=5, on_line=lines.append)
    assert {line.split(" | ", 1)[0] for line in lines} == {"prometheus", "cryptolabs-proxy"}


def test_stop_and_start_keep_the_containers(lab):
    before = lab.ids()
    lab.fleet.stop_stack()
    assert {container_state(n)[0] for n in before} == {"exited"}
    assert {r.state for r in lab.fleet.stack_status()} == {"exited"}
    lab.fleet.start_stack()
    assert {container_state(n) for n in before} == {("running", "healthy")}
    assert lab.ids() == before
    lab.fleet.restart_stack("cryptolabs-proxy")
    assert container_state(f"{lab.prefix}cryptolabs-proxy") == ("running", "healthy")


def test_an_image_that_cannot_be_pulled_leaves_the_running_stack_untouched(lab):
    before = lab.ids()
    # upgrade pulls every image first; these exist only on this host, so the pull fails
    with pytest.raises(errors.ImagePullFailed) as caught:
        lab.fleet.upgrade_stack(timeout_s=60)
    assert caught.value.image == PROMETHEUS_IMAGE and "running stack is as it was" in caught.value.hint
    assert lab.ids() == before
    # a new image nobody can pull: nothing is stopped for it
    lab.fleet.set_stack_option("proxy_image", "127.0.0.1:1/nowhere/nginx:9")
    try:
        with pytest.raises(errors.ImagePullFailed) as caught:
            lab.apply()
        assert caught.value.image == "127.0.0.1:1/nowhere/nginx:9" and "connection refused" in str(caught.value)
    finally:
        lab.fleet.set_stack_option("proxy_image", NGINX_IMAGE)
    assert lab.ids() == before
    assert {container_state(n) for n in before} == {("running", "healthy")}


def test_a_replacement_that_cannot_start_is_rolled_back(lab):
    before = lab.ids()
    lab.fleet.set_stack_option("proxy_image", PROMETHEUS_IMAGE)  # has no nginx: the new container cannot start
    try:
        with pytest.raises(errors.ContainerFailed, match="previous one runs again"):
            lab.apply()
        assert lab.ids() == before
        wait_until(lambda: container_state(f"{lab.prefix}cryptolabs-proxy") == ("running", "healthy"), 60,
                   "the previous proxy healthy again")
    finally:
        lab.fleet.set_stack_option("proxy_image", NGINX_IMAGE)
    report, _ = lab.apply()
    assert {c.action for c in report.changes} == {"unchanged"}


def test_secrets_reach_prometheus_as_files_inside_the_container_only(lab, tmp_path):
    # an endpoint that answers at once (404), so that dropping the queue on reload is quick
    lab.fleet.set_stack_option("remote_write_url", "http://localhost:9090/prometheus/api/v1/write")
    lab.fleet.set_stack_secret("remote_write_password", "rw-S3CRET")  # before the user name that needs it
    lab.fleet.set_stack_option("remote_write_username", "fleet")
    try:
        report, _ = lab.apply()
        assert {c.service: c.action for c in report.changes}["prometheus"] == "recreated"  # a new secret file
        inside = docker("exec", f"{lab.prefix}prometheus", "cat", "/run/secrets/remote_write_password").stdout
        assert inside == "rw-S3CRET"
        on_disk = [p for p in (lab.data / "stack").rglob("*") if p.is_file() and b"rw-S3CRET" in p.read_bytes()]
        assert on_disk == []
        config = json.loads(http(f"{lab.prometheus}/api/v1/status/config")[2])["data"]["yaml"]
        assert "password_file: /run/secrets/remote_write_password" in config and "rw-S3CRET" not in config
    finally:
        lab.fleet.set_stack_option("remote_write_url", "")
        lab.fleet.set_stack_option("remote_write_username", "")
        lab.apply()


def test_no_engine_is_a_clear_error(tmp_path):
    runtime = DockerRuntime(url=f"unix://{tmp_path}/docker.sock")
    with pytest.raises(errors.EngineUnavailable) as caught:
        asyncio.run(runtime.version())
    assert "does not exist" in str(caught.value) and "install Docker" in caught.value.hint
    assert asyncio.run(runtime.available()) is False
