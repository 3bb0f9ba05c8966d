"""`dc-overview users`, `secrets` and `serve`: through click's runner, and the
server as a real subprocess answering HTTP and stopping on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from click.testing import CliRunner
from dc_overview.frontends.cli import cli

import dc_overview

PASSWORD = "correct horse battery"


@pytest.fixture
def run(tmp_path):
    runner = CliRunner()
    data = tmp_path / "data"

    def invoke(*args, input=None):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, ["--data-dir", str(data), *args], input=input, catch_exceptions=False)

    invoke.data = data  # type: ignore[attr-defined]
    return invoke


def test_users_are_managed_from_the_command_line(run):
    added = run("users", "add", "admin", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")
    assert added.exit_code == 0 and added.output.strip() == "Added admin (admin)."
    prompted = run("users", "add", "ops", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.exit_code == 0 and "Added ops (viewer)." in prompted.output and PASSWORD not in prompted.output
    listed = json.loads(run("users", "list", "--json").output)
    assert [(u["name"], u["role"]) for u in listed] == [("admin", "admin"), ("ops", "viewer")]
    assert "password" not in json.dumps(listed)
    table = run("users", "list").output
    assert "NAME" in table and "admin" in table and "viewer" in table

    duplicate = run("users", "add", "Admin", "--password-stdin", input=PASSWORD + "\n")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output and "Traceback" not in duplicate.output
    short = run("users", "add", "x", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "password: is too short" in short.output
    assert run("users", "add", "y", "--role", "root", "--password-stdin", input=PASSWORD).exit_code == 2

    last = run("users", "remove", "admin")
    assert last.exit_code == 1 and "last admin" in last.output
    assert run("users", "role", "ops", "admin").output.strip() == "ops is now admin."
    assert run("users", "passwd", "ops", "--password-stdin", input="another long one\n").exit_code == 0
    assert run("users", "remove", "admin").exit_code == 0
    missing = run("users", "passwd", "nobody", "--password-stdin", input=PASSWORD + "\n")
    assert missing.exit_code == 1 and "no user named 'nobody'" in missing.output
    with dc_overview.open(run.data) as fleet:
        assert fleet.authenticate("ops", "another long one").is_admin


def test_api_tokens_are_printed_once_and_listed_without_their_secret(run):
    run("users", "add", "bot", "--password-stdin", input=PASSWORD + "\n")
    made = run("users", "token", "bot", "--label", "ansible")
    assert made.exit_code == 0
    token = made.stdout.strip()
    assert token.startswith("dco_") and "not shown again" in made.stderr
    as_json = json.loads(run("users", "token", "bot", "--json").output)
    assert as_json["token"].startswith("dco_") and as_json["label"] == "cli"
    listed = run("users", "tokens", "--json").output
    assert token not in listed and as_json["token"] not in listed
    rows = json.loads(listed)
    assert [(r["user"], r["label"]) for r in rows] == [("bot", "ansible"), ("bot", "cli")]
    assert rows[0]["prefix"] == token[:10]
    with dc_overview.open(run.data) as fleet:
        assert fleet.user_for_token(token).name == "bot"
    revoked = run("users", "revoke", str(rows[0]["id"]))
    assert revoked.exit_code == 0 and "Revoked token" in revoked.output
    with dc_overview.open(run.data) as fleet:
        assert fleet.user_for_token(token) is None
    assert run("users", "revoke", "9999").exit_code == 1


def test_secrets_are_set_listed_and_cleared_never_printed(run):
    status = json.loads(run("secrets", "list", "--json").output)
    assert status == {"vastai_api_key": False, "runpod_api_key": False, "scrape_token": False,
                      "grafana_admin_password": False, "remote_write_password": False, "alert_webhook_token": False,
                      "smtp_password": False}
    saved = run("secrets", "set", "vastai_api_key", input="vast-secret-123\n")
    assert saved.exit_code == 0 and "vast-secret-123" not in saved.output
    assert run("secrets", "set", "runpod_api_key", "--value-stdin", input="rp-456\n").exit_code == 0
    listing = run("secrets", "list").output
    assert "vast-secret-123" not in listing and "rp-456" not in listing and listing.count(" set ") >= 2
    key_file = run.data / "secrets" / "vastai_api_key"
    assert key_file.read_text().strip() == "vast-secret-123" and key_file.stat().st_mode & 0o777 == 0o600
    token = run("secrets", "scrape-token").output.strip()
    assert len(token) >= 40 and json.loads(run("secrets", "list", "--json").output)["scrape_token"] is True
    assert run("secrets", "clear", "vastai_api_key").exit_code == 0 and not key_file.exists()
    assert run("secrets", "set", "session_key", input="x\n").exit_code == 2  # not a secret people set
    # the stack's secrets are set the same way, and `stack secret` sets the same file
    assert run("secrets", "set", "smtp_password", "--value-stdin", input="mail-789\n").exit_code == 0
    assert run("stack", "secret", "remote_write_password", "--stdin", input="rw-000\n").exit_code == 0
    status = json.loads(run("secrets", "list", "--json").output)
    assert status["smtp_password"] is True and status["remote_write_password"] is True
    assert (run.data / "secrets" / "remote_write_password").stat().st_mode & 0o777 == 0o600


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_answers_http_and_stops_on_sigterm(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dc_overview", "--data-dir", str(tmp_path), "serve", "--port", str(port),
         "--base-path", "/dc"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as response:
                    health = json.load(response)
                break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "serve did not answer"
                time.sleep(0.1)
        assert health["status"] == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/setup", timeout=5) as response:
            page = response.read().decode()
        assert 'action="/dc/setup"' in page  # the base path builds the links
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
        print(f"serve stopped {time.monotonic() - started:.2f} s after SIGTERM")
        assert process.returncode == 0, output
        assert f"http://127.0.0.1:{port}/" in output and "published under /dc" in output
        assert "No admin yet" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_on_a_busy_port_is_one_clear_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "dc_overview", "--data-dir", str(tmp_path), "serve", "--port",
                               str(port)], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr
