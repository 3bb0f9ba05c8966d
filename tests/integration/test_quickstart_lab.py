"""Unattended quickstart of a master on real parts: the stack on the real
Docker engine (local images from scripts/build-stack-images), workers that
are real systemd machines (the worker lab, reached over SSH), exporters
pushed from Debian's node_exporter (offline) and a simulated GPU exporter,
and Prometheus scraping them. A dead worker is reported; the rest proceeds.
The same answers again change nothing."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

import dc_overview
from tests.support.require import missing
from tests.support.stack_lab import (
    NGINX_IMAGE, PROMETHEUS_IMAGE, container_ids, container_state, free_port, http, need_images, new_prefix,
    prometheus_query, remove_stack, tls_context, wait_until,
)
from tests.support.worker_lab import SshKey, WorkerLab
from tests.support.worker_lab import lab_ssh_key_fixture, worker_lab_fixture  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

DEBIAN_NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_master_with_its_stack_and_workers_from_one_answers_file(
        tmp_path: Path, worker_lab: WorkerLab, lab_ssh_key: SshKey):
    need_images(PROMETHEUS_IMAGE, NGINX_IMAGE)
    if not DEBIAN_NODE_EXPORTER.exists():
        missing("Debian's node_exporter", "apt-get install -y prometheus-node-exporter")
    w1, w2 = worker_lab.start(2, authorized_key=lab_ssh_key.public)
    prefix = new_prefix()
    ports = {"http": free_port(), "https": free_port(), "prometheus": free_port()}
    answers = tmp_path / "answers.yaml"
    answers.write_text(f"""\
role: master
ssh_key:
  name: lab
  path: {lab_ssh_key.private}
workers:
  - {{name: w1, address: {w1.ip}}}
  - {{name: w2, address: {w2.ip}}}
  - {{name: dead, address: 127.0.0.1, port: {closed_port()}}}
exporters:
  node_exporter_binary: {DEBIAN_NODE_EXPORTER}
  gpu_simulate: 2
grafana:
  enabled: no
proxy:
  https_port: {ports['https']}
  http_port: {ports['http']}
ipmi_monitor:
  import_servers: no
stack:
  images:
    prometheus: {PROMETHEUS_IMAGE}
    proxy: {NGINX_IMAGE}
  options:
    name_prefix: {prefix}
    network: {prefix}cryptolabs
    web_app: no
    bind_address: 127.0.0.1
    prometheus_local_port: {ports['prometheus']}
    scrape_interval: 2s
""")
    data = tmp_path / "data"
    try:
        with dc_overview.open(data) as fleet:
            steps: list[str] = []
            progress = dc_overview.quickstart.QuickstartProgress(step=lambda s: steps.append(f"{s.step}: {s.result}"))
            started = time.monotonic()
            report = fleet.quickstart(answers, progress=progress)
            first = time.monotonic() - started
            assert steps[:6] == ["ssh key: changed", "settings: unchanged", "workers: changed", "secrets: unchanged",
                                 "web admin: changed", "stack options: changed"], steps  # no Grafana: no secret
            assert [(r.name, r.ok, r.result) for r in report.workers] == [
                ("w1", True, "changed"), ("w2", True, "changed"), ("dead", False, "unreachable")], \
                [r.detail for r in report.workers]
            assert "stack: changed" in steps and report.failed  # the dead worker, and only it
            assert [(c.service, c.action) for c in report.stack.changes] == [
                ("prometheus", "created"), ("cryptolabs-proxy", "created")]
            for service in ("prometheus", "cryptolabs-proxy"):
                assert container_state(prefix + service) == ("running", "healthy")

            # Prometheus scrapes both workers' node_exporter; the simulated GPU exporter answers on each.
            base = f"http://127.0.0.1:{ports['prometheus']}/prometheus"
            up = wait_until(lambda: prometheus_query(base, 'up{job="node"} == 1'), 90, "the workers scraped",
                            interval=2)
            wait_until(lambda: len(prometheus_query(base, 'up{job="node"} == 1')) == 2, 30, "both workers scraped")
            up = prometheus_query(base, 'up{job="node"} == 1')
            assert sorted(r["metric"]["server"] for r in up) == ["w1", "w2"]
            for worker in (w1, w2):
                status, _, body = http(f"http://{worker.ip}:9835/metrics")
                assert status == 200 and b"DCGM_FI_DEV_GPU_TEMP" in body and b'gpu="1"' in body
            # The landing page answers over HTTPS with the certificate quickstart made.
            context = tls_context(data / "stack" / "proxy" / "certs" / "selfsigned.crt")
            status, _, _ = http(f"https://127.0.0.1:{ports['https']}/", context=context)
            assert status == 200
            assert (f"Prometheus", f"https://{report.urls[0][1].split('//')[1].split('/')[0]}/prometheus/") \
                in report.urls
            assert all(c.value is None for c in report.credentials)

            ids = container_ids(prefix)
            started = time.monotonic()
            again = fleet.quickstart(answers)
            second = time.monotonic() - started
            assert not again.changed, [s for s in again.steps if s.result == "changed"]
            assert [(r.name, r.result) for r in again.workers] == [
                ("w1", "unchanged"), ("w2", "unchanged"), ("dead", "unreachable")]
            assert container_ids(prefix) == ids  # not one container recreated
        print(f"\nquickstart of a master with 2 lab workers: {first:.1f}s; unchanged re-run: {second:.1f}s")
    finally:
        remove_stack(prefix, f"{prefix}cryptolabs")
