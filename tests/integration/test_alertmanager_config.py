"""Alertmanager configurations rendered by dc-overview, checked by Debian's
``amtool check-config`` and run by a real Alertmanager on loopback that
delivers to a webhook receiver of the test and inhibits what a down server
explains."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dc_overview.alerting import AlertRouting, render_alertmanager_config
from tests.support.prometheus_lab import free_port, wait_for_http
from tests.support.require import need_executable

pytestmark = pytest.mark.integration

EMAIL = dict(email_to="ops@example.net, oncall@example.net", email_from="dc@example.net",
             smtp_smarthost="smtp.example.net:587")


def amtool_check(path: Path) -> subprocess.CompletedProcess:
    amtool = need_executable("amtool", "apt-get install prometheus-alertmanager")
    return subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("settings", [
    {},
    {"webhook_url": "https://hooks.example.net/alerts?team=gpu&x=1"},
    {"webhook_url": "http://10.0.0.9:9000/hook", "webhook_token_file": "SECRET/hook_token"},
    EMAIL,
    {**EMAIL, "smtp_username": "dc", "smtp_password_file": "SECRET/smtp_password", "smtp_require_tls": False},
    {**EMAIL, "webhook_url": "https://hooks.example.net/a", "send_resolved": False, "group_wait": "10s",
     "repeat_interval": "1d"},
], ids=["nothing", "webhook", "webhook-token", "email", "email-login", "both"])
def test_amtool_accepts_the_rendered_config(tmp_path, settings):
    for name in ("hook_token", "smtp_password"):
        (tmp_path / name).write_text("not-a-real-secret\n")
    settings = {k: v.replace("SECRET", str(tmp_path)) if isinstance(v, str) else v for k, v in settings.items()}
    config = tmp_path / "alertmanager.yml"
    config.write_text(render_alertmanager_config(AlertRouting(**settings)))
    result = amtool_check(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "2 inhibit rules" in result.stdout


def test_amtool_refuses_a_broken_config(tmp_path):
    """The check above can fail."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(render_alertmanager_config(AlertRouting()).replace("receiver: fleet", "receiver: nobody", 1))
    assert amtool_check(config).returncode != 0


class WebhookSink:
    """An HTTP receiver that keeps what Alertmanager posts."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.posts.append({"auth": self.headers.get("Authorization"), "body": json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alert_names(self) -> set[str]:
        return {a["labels"]["alertname"] for post in self.posts for a in post["body"]["alerts"]}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def post_alerts(url: str, alerts: list[dict]) -> None:
    request = urllib.request.Request(f"{url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_alertmanager_delivers_to_the_webhook_and_inhibits(tmp_path):
    binary = need_executable("prometheus-alertmanager", "apt-get install prometheus-alertmanager")
    sink = WebhookSink()
    (tmp_path / "token").write_text("s3cret-token\n")
    routing = AlertRouting(webhook_url=sink.url, webhook_token_file=str(tmp_path / "token"),
                           group_wait="1s", group_interval="1s")
    config = tmp_path / "alertmanager.yml"
    config.write_text(render_alertmanager_config(routing))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen([binary, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
                                f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"{url}/-/ready", 30, process)
        post_alerts(url, [
            {"labels": {"alertname": "WorkerDown", "server": "gpu-07", "severity": "critical"}},
            {"labels": {"alertname": "ExporterDown", "server": "gpu-07", "job": "gpu", "severity": "warning"}},
            {"labels": {"alertname": "ExporterDown", "server": "gpu-08", "job": "gpu", "severity": "warning"}},
            {"labels": {"alertname": "DiskFull", "server": "gpu-09", "mountpoint": "/", "severity": "critical"}},
            {"labels": {"alertname": "DiskAlmostFull", "server": "gpu-09", "mountpoint": "/", "severity": "warning"}},
        ])
        deadline = time.monotonic() + 30
        while sink.alert_names() != {"WorkerDown", "ExporterDown", "DiskFull"}:
            assert time.monotonic() < deadline, f"delivered so far: {sink.alert_names()}"
            time.sleep(0.3)
        delivered = {(a["labels"]["alertname"], a["labels"]["server"])
                     for post in sink.posts for a in post["body"]["alerts"]}
        assert ("ExporterDown", "gpu-07") not in delivered  # its server is down: inhibited
        assert ("ExporterDown", "gpu-08") in delivered
        assert ("DiskAlmostFull", "gpu-09") not in delivered
        assert {post["auth"] for post in sink.posts} == {"Bearer s3cret-token"}

        with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=10) as response:
            states = {(a["labels"]["alertname"], a["labels"]["server"]): a["status"] for a in json.load(response)}
        assert states[("ExporterDown", "gpu-07")]["state"] == "suppressed"
        assert states[("ExporterDown", "gpu-07")]["inhibitedBy"]
        assert states[("WorkerDown", "gpu-07")]["state"] == "active"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        sink.close()
