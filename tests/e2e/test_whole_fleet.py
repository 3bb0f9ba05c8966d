"""A whole fleet, set up by quickstart, on real parts.

Five worker machines (containers with systemd and sshd, each with its own
address: tests/support/worker_lab.py), a master set up by a real
``dc-overview quickstart --config answers.yaml`` subprocess, the stack on
the real Docker engine with its images pulled from a loopback registry (the
locally built images of scripts/build-stack-images, standing in for the
published ones), Prometheus scraping every worker, the web app behind the
proxy. Then faults: a worker stops, the app container restarts, quickstart
runs again; and the stack's own stop, start and upgrade.

The tests below are the scenario's steps, in order, sharing one fleet (a
module fixture). A step that needs an earlier step that failed fails at
once, naming it. Each step prints its time; the summary is printed at the
end. Everything the test made is removed afterwards, also on failure.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.image_registry import registry
from tests.support.require import missing
from tests.support.stack_lab import (
    APP_IMAGE, NGINX_IMAGE, PROMETHEUS_IMAGE, container_state, docker, free_port, need_images, prometheus_query,
    remove_stack, tls_context,
)
from tests.support.whole_fleet import (
    RECENT, Fleet, Steps, WebClient, container_id, new_prefix, reap_stale_stacks, volume_names, wait_for,
)
from tests.support.worker_lab import WorkerLab, make_ssh_key, require_lab

pytestmark = pytest.mark.e2e

WORKERS = 5
DEBIAN_NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")
ADMIN, ADMIN_PASSWORD = "admin", "whole-fleet-admin-pw"
UNITS = ("dc-node-exporter.service", "dc-gpu-exporter.service")
SERVICES = ("prometheus", "dc-overview", "cryptolabs-proxy")
RELEASE_LABEL = "org.dc-overview.test.release"
SCRAPE_INTERVAL = "5s"  # also how often the rules are evaluated


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    started = time.monotonic()
    require_lab()
    need_images(PROMETHEUS_IMAGE, NGINX_IMAGE, APP_IMAGE)
    if not DEBIAN_NODE_EXPORTER.exists():
        missing("Debian's node_exporter", "apt-get install -y prometheus-node-exporter")
    reap_stale_stacks()
    root = tmp_path_factory.mktemp("whole-fleet")
    (root / "key").mkdir(mode=0o700)
    prefix = new_prefix()
    ports = {"http": free_port(), "https": free_port(), "prometheus": free_port()}
    steps = Steps()
    lab = WorkerLab()
    try:
        with registry(root / "registry") as images:
            steps.timings.append(("setup: parts checked, registry up", time.monotonic() - started))
            yield Fleet(root=root, data=root / "data", key=make_ssh_key(root / "key"), lab=lab, registry=images,
                        prefix=prefix, ports=ports, steps=steps)
    finally:
        print("\n" + steps.summary())
        remove_stack(prefix, f"{prefix}cryptolabs")
        lab.close()
        docker("image", "rm", f"{prefix}app-release-2", check=False)


# -- 1. the machines ----------------------------------------------------------------------------


def test_01_five_workers_boot_with_systemd_and_sshd(fleet: Fleet):
    with fleet.steps.step("workers boot"):
        fleet.workers = fleet.lab.start(WORKERS, authorized_key=fleet.key.public)
        addresses = [w.ip for w in fleet.workers]
        assert len(set(addresses)) == WORKERS, addresses
        for worker in fleet.workers:
            state = worker.exec("systemctl is-system-running", check=False).stdout.strip()
            assert state in ("running", "degraded"), f"{worker.name}: systemd is {state!r}"


def test_02_the_stack_images_are_published(fleet: Fleet):
    """What a user pulls from the release registry; here a loopback one."""
    with fleet.steps.step("images published"):
        fleet.images = {
            "prometheus": fleet.registry.push(PROMETHEUS_IMAGE, "stack/prometheus"),
            "proxy": fleet.registry.push(NGINX_IMAGE, "stack/nginx"),
            "app": fleet.registry.push(APP_IMAGE, "cryptolabsza/dc-overview"),
        }


# -- 2. quickstart --------------------------------------------------------------------------------


def answers_text(fleet: Fleet) -> str:
    workers = "\n".join(f"  - {{name: {name}, address: {w.ip}}}" for name, w in zip(fleet.names, fleet.workers))
    images = "\n".join(f"    {service}: {image}" for service, image in fleet.images.items())
    return f"""\
role: master
ssh_key:
  name: lab
  path: {fleet.key.private}
admin:
  name: {ADMIN}
  password: {ADMIN_PASSWORD}
grafana:
  enabled: no
ipmi_monitor:
  import_servers: no
proxy:
  https_port: {fleet.ports['https']}
  http_port: {fleet.ports['http']}
workers:
{workers}
exporters:
  node_exporter_binary: {DEBIAN_NODE_EXPORTER}
  gpu_simulate: 2
stack:
  images:
{images}
  options:
    name_prefix: {fleet.prefix}
    network: {fleet.prefix}cryptolabs
    bind_address: 127.0.0.1
    prometheus_local_port: {fleet.ports['prometheus']}
    scrape_interval: {SCRAPE_INTERVAL}
"""


def test_03_quickstart_sets_up_the_master_and_every_worker(fleet: Fleet):
    with fleet.steps.step("quickstart", "workers boot", "images published"):
        fleet.answers.write_text(answers_text(fleet))
        run = fleet.cli("quickstart", "--config", str(fleet.answers), "--json")
        assert run.returncode == 0, run.explain()
        report = run.json()
        assert report["changed"] is True
        failed = [s for s in report["steps"] if s["result"] == "failed"]
        assert not failed, run.explain()
        assert [(w["name"], w["ok"], w["result"]) for w in report["workers"]] == [
            (name, True, "changed") for name in fleet.names], run.explain()
        assert {c["service"]: c["action"] for c in report["stack"]["changes"]} == {
            service: "created" for service in SERVICES}, run.explain()
        for service in SERVICES:
            assert container_state(fleet.container(service)) == ("running", "healthy"), service
        fleet.web = WebClient(f"https://127.0.0.1:{fleet.ports['https']}",
                              tls_context(fleet.data / "stack" / "proxy" / "certs" / "selfsigned.crt"))


# -- 3. everything runs ------------------------------------------------------------------------------


def test_04_each_worker_runs_both_exporters_under_systemd(fleet: Fleet):
    with fleet.steps.step("exporters under systemd", "quickstart"):
        for worker in fleet.workers:
            states = worker.exec(["systemctl", "is-active", *UNITS], check=False).stdout.split()
            assert states == ["active", "active"], f"{worker.name}: {dict(zip(UNITS, states))}"
            enabled = worker.exec(["systemctl", "is-enabled", *UNITS], check=False).stdout.split()
            assert enabled == ["enabled", "enabled"], f"{worker.name}: {dict(zip(UNITS, enabled))}"


def test_05_prometheus_scrapes_every_target(fleet: Fleet):
    with fleet.steps.step("every target up", "quickstart"):
        wait_for(fleet.all_up, 120, f"up == 1 for all {2 * WORKERS} targets", interval=2)
        gpus = prometheus_query(fleet.prometheus, "count by (server) (DCGM_FI_DEV_GPU_TEMP)")
        assert {r["metric"]["server"]: r["value"][1] for r in gpus} == {name: "2" for name in fleet.names}


def test_06_the_web_app_answers_behind_the_proxy(fleet: Fleet):
    with fleet.steps.step("web app", "quickstart"):
        web = fleet.web
        assert web is not None
        health = web.get("/dc/api/health")
        assert health.status == 200 and health.json()["status"] == "ok", health.text
        assert web.get("/dc/api/servers").status == 401  # not logged in yet

        logged = web.log_in(ADMIN, ADMIN_PASSWORD)
        assert logged.status in (302, 303) and web.cookie, (logged.status, logged.text[:300])
        servers = web.get("/dc/api/servers")
        assert servers.status == 200, servers.text
        assert sorted((s["name"], s["status"]) for s in servers.json()) == [
            (name, "online") for name in fleet.names]

        page = web.get("/dc/")
        assert page.status == 200, page.text[:300]
        for name in fleet.names:
            assert f'data-name="{name}"' in page.text, f"{name} is not on the dashboard"
        assert 'data-stat="servers_online">5<' in page.text
        wait_for(lambda: _overview_with_live_data(web, fleet.names), 60, "the dashboard's live data, all green")

        services = web.get("/api/services")
        assert services.status == 200, services.text
        running = {name for name, s in services.json().items() if s["running"]}
        assert set(SERVICES) <= running, services.json()


def _overview_with_live_data(web: WebClient, names: list[str]) -> dict:
    overview = web.get("/dc/api/overview").ok()
    assert overview["prometheus"]["reachable"], overview["prometheus"]
    assert overview["exporters_up"] == 2 * WORKERS, overview["exporters_up"]
    assert _liveness(overview) == {name: "green" for name in names}, overview["tiles"]
    return overview


def test_07_the_alert_rules_are_loaded_in_prometheus(fleet: Fleet):
    with fleet.steps.step("alert rules loaded", "quickstart"):
        rules = json.loads(urlget(f"{fleet.prometheus}/api/v1/rules"))["data"]["groups"]
        names = {rule["name"] for group in rules for rule in group["rules"]}
        rule_files = sorted(p.name for p in (fleet.data / "prometheus" / "rules").glob("*"))
        assert "WorkerDown" in names, (
            f"Prometheus has no WorkerDown rule (rules loaded: {sorted(names) or 'none'}; files in "
            f"<data>/prometheus/rules: {rule_files or 'none'}): the stack does not provide the alert rules")
        unhealthy = [(r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r.get("health") == "err"]
        assert not unhealthy, unhealthy


# -- 4. faults --------------------------------------------------------------------------------------


def test_08_a_stopped_worker_goes_down_and_offline(fleet: Fleet):
    with fleet.steps.step("worker stopped", "every target up", "web app"):
        web, victim, name = fleet.web, fleet.workers[-1], fleet.names[-1]
        assert web is not None
        victim.stop()
        wait_for(lambda: all(v == "0" for (s, _), v in fleet.up().items() if s == name), 60,
                 f"{name}'s targets going down", interval=2)
        assert all(v == "1" for (s, _), v in fleet.up(RECENT).items() if s != name), fleet.up(RECENT)
        # the dashboard's own health source (Prometheus) shows it down at once
        wanted = {n: ("red" if n == name else "green") for n in fleet.names}
        wait_for(lambda: _tiles(web, wanted), 60, f"{name}'s tile turning red, the others staying green")

        # a check, as the dashboard's button starts it, marks it offline
        job = _run_check(web)
        assert {h["host"]: h["state"] for h in job["hosts"]} == {
            n: ("unreachable" if n == name else "ok") for n in fleet.names}, _job_text(job)
        servers = {s["name"]: s["status"] for s in web.get("/dc/api/servers").ok()}
        assert servers == {n: ("offline" if n == name else "online") for n in fleet.names}
        page = web.get("/dc/").text
        assert 'data-stat="servers_offline">1<' in page and 'data-stat="servers_online">4<' in page


def _liveness(overview: dict) -> dict[str, str]:
    """Each tile as "green" (answering: ``ok``, or ``warn`` only because a
    simulated GPU runs hot, which it does now and then at full load), "red"
    (``critical`` because its exporters are down) or its health and reason."""
    def judge(tile: dict) -> str:
        if tile["health"] == "ok" or (tile["health"] == "warn" and tile["reason"].startswith("GPU at")):
            return "green"
        if tile["health"] == "critical" and tile["reason"] == "exporters down":
            return "red"
        return f"{tile['health']}: {tile['reason']}"
    return {t["name"]: judge(t) for t in overview["tiles"]}


def _tiles(web: WebClient, wanted: dict[str, str]) -> dict[str, str]:
    """The tiles' liveness when it is ``wanted``; else an AssertionError
    that shows what the overview said, for the wait's last answer."""
    found = web.get("/dc/api/overview").ok()
    tiles = _liveness(found)
    assert tiles == wanted, {"prometheus": found["prometheus"], "tiles": tiles}
    return tiles


def _run_check(web: WebClient) -> dict:
    csrf = web.csrf("/dc/")
    started = web.post_json("/dc/api/jobs", {"action": "check"}, csrf)
    assert started.status == 202, started.text
    location = started.headers["Location"]
    return wait_for(lambda: (job := web.get(location).ok())["finished"] and job, 90, "the check job", interval=1)


def _job_text(job: dict) -> str:
    return f"job {job['state']}: " + "; ".join(f"{h['host']} {h['state']}: {h['message']}" for h in job["hosts"])


def test_09_its_alert_goes_pending(fleet: Fleet):
    with fleet.steps.step("WorkerDown pending", "worker stopped", "alert rules loaded"):
        name = fleet.names[-1]
        alerts = wait_for(lambda: _worker_down_alerts(fleet), 60, "WorkerDown in /api/v1/alerts", interval=2)
        # the rule waits minutes (for: 3m) before firing; pending shows as soon as its expression holds
        assert [(a["labels"].get("server"), a["state"] in ("pending", "firing")) for a in alerts] == [(name, True)]


def _worker_down_alerts(fleet: Fleet) -> list[dict]:
    alerts = json.loads(urlget(f"{fleet.prometheus}/api/v1/alerts"))["data"]["alerts"]
    return [a for a in alerts if a["labels"].get("alertname") == "WorkerDown"]


def test_10_the_app_container_restarts_and_loses_nothing(fleet: Fleet):
    with fleet.steps.step("app restarted", "web app"):
        web = fleet.web
        assert web is not None
        csrf = web.csrf("/dc/settings")
        links = {"grafana_url": "/grafana/", "prometheus_url": "/prometheus/",
                 "ipmi_monitor_url": "https://ipmi.example.net/"}
        saved = web.post_form("/dc/settings/integrations", links, csrf)
        assert saved.status in (302, 303), saved.text[:300]
        servers_before = web.get("/dc/api/servers").ok()
        cookie = web.cookie
        app = fleet.container("dc-overview")
        before = container_id(app)

        run = fleet.cli("restart", "dc-overview")
        assert run.returncode == 0 and f"restarted {app}" in run.stdout, run.explain()
        assert container_id(app) == before and container_state(app) == ("running", "healthy")

        assert web.cookie == cookie
        servers_after = web.get("/dc/api/servers")
        assert servers_after.status == 200, f"the session did not survive: {servers_after.text}"
        assert servers_after.json() == servers_before
        assert "https://ipmi.example.net/" in web.get("/dc/settings").text
        shown = fleet.cli("settings", "get", "ipmi_monitor_url", "--json")
        assert "https://ipmi.example.net/" in shown.stdout, shown.explain()


def test_11_the_worker_comes_back(fleet: Fleet):
    with fleet.steps.step("worker back", "worker stopped"):
        web, name = fleet.web, fleet.names[-1]
        assert web is not None
        fleet.workers[-1].start()
        states = fleet.workers[-1].exec(["systemctl", "is-active", *UNITS], check=False).stdout.split()
        assert states == ["active", "active"], states  # enabled units start at boot
        wait_for(lambda: fleet.up()[(name, "node")] == "1" and fleet.up()[(name, "gpu")] == "1", 90,
                 f"{name}'s targets up again", interval=2)
        fleet.all_up()
        job = _run_check(web)
        assert all(h["state"] == "ok" for h in job["hosts"]), _job_text(job)
        assert {s["status"] for s in web.get("/dc/api/servers").ok()} == {"online"}
        if "WorkerDown pending" in fleet.steps.passed:
            wait_for(lambda: not _worker_down_alerts(fleet), 60, "WorkerDown resolving", interval=2)


def test_12_quickstart_again_changes_nothing(fleet: Fleet):
    with fleet.steps.step("quickstart again", "quickstart", "worker back"):
        ids = fleet.ids()
        run = fleet.cli("quickstart", "--config", str(fleet.answers))
        assert run.returncode == 0, run.explain()
        assert "Nothing changed: this host already matches the answers." in run.stdout, run.explain()
        changed = [line for line in run.stderr.splitlines() if line.lstrip().startswith(("+ ", "! "))]
        assert not changed, run.explain()
        for name in fleet.names:
            assert re.search(rf"^{name}\s+unchanged\s", run.stdout, re.M), f"{name} not unchanged:\n{run.explain()}"
        assert fleet.ids() == ids, "quickstart recreated containers"
        # a link set in the web app is not put back by quickstart
        assert "https://ipmi.example.net/" in fleet.cli("settings", "get", "ipmi_monitor_url").stdout


# -- 5. the stack's own lifecycle -----------------------------------------------------------------------


def test_13_stop_then_start(fleet: Fleet):
    with fleet.steps.step("stop and start", "quickstart"):
        web = fleet.web
        assert web is not None
        ids = fleet.ids()
        run = fleet.cli("stop")
        assert run.returncode == 0, run.explain()
        assert run.stdout.splitlines()[0] == f"stopped {fleet.container('cryptolabs-proxy')}", run.explain()  # the proxy first
        for service in SERVICES:
            assert container_state(fleet.container(service))[0] == "exited", service
        with pytest.raises(OSError):
            web.get("/dc/api/health", timeout=5)

        run = fleet.cli("start")
        assert run.returncode == 0, run.explain()
        assert run.stdout.splitlines()[-1] == f"started {fleet.container('cryptolabs-proxy')}", run.explain()  # the proxy last
        for service in SERVICES:
            assert container_state(fleet.container(service)) == ("running", "healthy"), service
        assert fleet.ids() == ids
        assert web.get("/dc/api/servers").status == 200  # still logged in
        # a worker an earlier step stopped and could not bring back stays out of it
        running = fleet.running_names()
        wait_for(lambda: fleet.all_up(running), 90, f"every target of {running} up after start", interval=2)


def test_14_upgrade_recreates_only_the_service_whose_image_changed(fleet: Fleet):
    with fleet.steps.step("upgrade", "stop and start"):
        web = fleet.web
        assert web is not None
        ids, volumes = fleet.ids(), volume_names(fleet.prefix)
        assert volumes, "the stack has no data volumes"
        prometheus = fleet.container("prometheus")
        docker("exec", prometheus, "touch", "/prometheus/kept-across-upgrades")

        # a new release of the app image, published under the same tag
        newer = f"{fleet.prefix}app-release-2"
        subprocess.run(["docker", "build", "-q", "-t", newer, "-"], check=True, capture_output=True, text=True,
                       input=f"FROM {APP_IMAGE}\nLABEL {RELEASE_LABEL}=2\n")
        fleet.registry.push(newer, "cryptolabsza/dc-overview")

        started = time.monotonic()
        run = fleet.cli("upgrade", "--json")
        took = time.monotonic() - started
        assert run.returncode == 0, run.explain()
        assert {c["service"]: c["action"] for c in run.json()["changes"]} == {
            "prometheus": "unchanged", "dc-overview": "recreated", "cryptolabs-proxy": "unchanged"}, run.explain()
        after = fleet.ids()
        app = fleet.container("dc-overview")
        assert after[app] != ids[app]
        assert {n: i for n, i in after.items() if n != app} == {n: i for n, i in ids.items() if n != app}
        label = docker("inspect", "-f", f'{{{{ index .Config.Labels "{RELEASE_LABEL}" }}}}', app).stdout.strip()
        assert label == "2", "the app does not run the new image"
        assert container_state(app) == ("running", "healthy")
        assert volume_names(fleet.prefix) == volumes
        assert docker("exec", prometheus, "ls", "/prometheus/kept-across-upgrades", check=False).returncode == 0

        servers = web.get("/dc/api/servers")  # the same session, on the new container
        assert servers.status == 200 and len(servers.json()) == WORKERS, servers.text
        print(f"\n[whole fleet] upgrade with one new image: {took:.1f}s")


def urlget(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read()
