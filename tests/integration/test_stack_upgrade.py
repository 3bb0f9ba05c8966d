"""``upgrade`` against a real registry: Debian's docker-registry on a loopback
port (the engine trusts 127.0.0.0/8 registries over plain HTTP). The stack's
images are pushed there; a newer Prometheus image is pushed under the same
tag; upgrade pulls it, recreates Prometheus only, and its data volume stays."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.support.require import need_executable
from tests.support.stack_lab import (
    NGINX_IMAGE, PROMETHEUS_IMAGE, container_state, docker, free_port, http, need_images, stack_lab, wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(tmp_path):  # type: ignore[no-untyped-def]
    binary = need_executable("docker-registry", "apt-get install docker-registry")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'blobs'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: http(f"http://127.0.0.1:{port}/v2/")[0] == 200, 30, "the registry answering")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def push(source: str, target: str) -> None:
    docker("tag", source, target)
    docker("push", target, timeout=300)
    docker("image", "rm", target)  # only the registry has it now: apply must pull it


def test_upgrade_pulls_newer_images_and_recreates_only_what_changed(registry, tmp_path):
    need_images(PROMETHEUS_IMAGE, NGINX_IMAGE)
    prometheus, proxy = f"{registry}/stack/prometheus:live", f"{registry}/stack/nginx:live"
    push(PROMETHEUS_IMAGE, prometheus)
    push(NGINX_IMAGE, proxy)
    newer = f"{registry}/stack/prometheus:newer"
    try:
        with stack_lab(tmp_path / "data", prometheus_image=prometheus, proxy_image=proxy) as lab:
            lines: list[str] = []
            report = lab.fleet.apply_stack(progress=lines.append, timeout_s=90)
            assert {c.action for c in report.changes} == {"created"}
            assert f"pulling {prometheus}" in lines and any(prometheus in line and ":" in line for line in lines[1:])
            name = f"{lab.prefix}prometheus"
            docker("exec", name, "touch", "/prometheus/kept-across-upgrades")
            before = lab.ids()

            # nothing newer yet: upgrade pulls, finds the same images, changes nothing
            report = lab.fleet.upgrade_stack(timeout_s=90)
            assert {c.action for c in report.changes} == {"unchanged"}
            assert lab.ids() == before

            # a newer Prometheus image under the same tag
            subprocess.run(["docker", "build", "-q", "-t", newer, "-"], check=True, capture_output=True, text=True,
                           input=f"FROM {PROMETHEUS_IMAGE}\nLABEL org.dc-overview.test.release=2\n")
            push(newer, prometheus)
            started = time.monotonic()
            report = lab.fleet.upgrade_stack(timeout_s=90)
            took = time.monotonic() - started
            assert {c.service: (c.action, c.detail) for c in report.changes} == {
                "prometheus": ("recreated", "new image"), "cryptolabs-proxy": ("unchanged", "")}
            after = lab.ids()
            assert after[name] != before[name]
            assert after[f"{lab.prefix}cryptolabs-proxy"] == before[f"{lab.prefix}cryptolabs-proxy"]
            label = docker("inspect", "-f", '{{ index .Config.Labels "org.dc-overview.test.release" }}', name).stdout
            assert label.strip() == "2"
            assert container_state(name) == ("running", "healthy")
            assert docker("exec", name, "ls", "/prometheus/kept-across-upgrades", check=False).returncode == 0
            print(f"upgrade with one new image: {took:.1f} s")
    finally:
        for image in (newer, prometheus, proxy):
            docker("image", "rm", image, check=False)
