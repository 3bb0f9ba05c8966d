"""The app image (top-level Dockerfile), built FROM a local Debian python base
by scripts/build-stack-images: small and non-root, its health check on
/api/health, and the web app running in the stack behind the proxy."""

from __future__ import annotations

import json
import os

import pytest

from tests.support.stack_lab import (
    APP_IMAGE, NGINX_IMAGE, PROMETHEUS_IMAGE, container_state, docker, http, need_images, stack_lab, wait_until,
)

pytestmark = pytest.mark.integration


def image_config(image: str) -> dict:
    return json.loads(docker("image", "inspect", "-f", "{{json .Config}}", image).stdout)


def test_the_image_runs_as_its_own_user_and_checks_api_health():
    need_images(APP_IMAGE)
    config = image_config(APP_IMAGE)
    assert config["User"] == "dc-overview"
    assert any("/api/health" in part for part in config["Healthcheck"]["Test"])
    assert config["Cmd"] == ["dc-overview", "serve"]
    assert "DC_OVERVIEW_DATA=/data" in config["Env"] and "DC_OVERVIEW_HOST=0.0.0.0" in config["Env"]
    assert docker("run", "--rm", APP_IMAGE, "id", "-u").stdout.strip() == "10001"
    version = docker("run", "--rm", APP_IMAGE, "dc-overview", "--version").stdout
    assert "2.0.0" in version
    # the templates and dashboards are package data inside the image
    listed = docker("run", "--rm", APP_IMAGE, "python3", "-c",
                    "import importlib.resources as r; print(sorted(p.name for p in "
                    "r.files('dc_overview.templates').joinpath('stack').iterdir()))").stdout
    assert "prometheus.yml.j2" in listed
    size = int(docker("image", "inspect", "-f", "{{.Size}}", APP_IMAGE).stdout)
    base = int(docker("image", "inspect", "-f", "{{.Size}}", "local/dc-python:bookworm").stdout)
    print(f"app image {size / 1e6:.0f} MB, of which the python base {base / 1e6:.0f} MB")


def test_the_app_runs_in_the_stack_behind_the_proxy(tmp_path):
    need_images(APP_IMAGE, PROMETHEUS_IMAGE, NGINX_IMAGE)
    data = tmp_path / "data"
    with stack_lab(data, web_app="yes", app_image=APP_IMAGE) as lab:
        report, _ = lab.apply()
        assert {c.service: c.action for c in report.changes}["dc-overview"] == "created"
        app = f"{lab.prefix}dc-overview"
        assert container_state(app) == ("running", "healthy")
        # it runs as the data dir's owner, with the data dir read-write
        owner = os.stat(data)
        assert docker("exec", app, "id", "-u").stdout.strip() == str(owner.st_uid)
        docker("exec", app, "touch", "/data/written-by-the-app")
        assert (data / "written-by-the-app").stat().st_uid == owner.st_uid

        status, _, body = http(f"{lab.https}/api/services", context=lab.tls)
        assert status == 200, body[:300]
        services = json.loads(body)
        assert {"cryptolabs-proxy", "dc-overview", "grafana", "prometheus"} <= set(services)
        assert set(services["dc-overview"]) == {"running", "healthy", "container", "port", "image"}
        assert services["dc-overview"]["running"] is True
        assert http(f"{lab.https}/api/health", context=lab.tls)[0] == 200
        status, _, _ = wait_until(lambda: (r := http(f"{lab.https}/dc/", context=lab.tls)) and r[0] < 500 and r,
                                  30, "the app under /dc/")
        assert status in (200, 302, 303)
        # the app sees the stack through the engine's socket
        rows = {r.service: r for r in lab.fleet.stack_status()}
        assert rows["dc-overview"].health == "healthy"
