"""``dc-overview quickstart`` through the CLI: unattended (click's runner,
``--config``/``--yes``, a real sshd for the workers, no Docker) and
interactive in a real pseudo-terminal (keys typed, the screen read)."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import dc_overview
from dc_overview.frontends.cli import cli
from tests.support.require import need_executable
from tests.support.sshd import LoopbackSshd
from tests.support.sshd import sshd_fixture  # noqa: F401  (the sshd fixture)

pytestmark = pytest.mark.e2e

NO_DOCKER = "unix:///nonexistent/dc-overview-test/docker.sock"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\r")


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def invoke(data: Path, *args: str, input: str | None = None):
    """The command, with Docker pointed at a socket that does not exist."""
    return CliRunner().invoke(cli, ["--data-dir", str(data), "quickstart", *args], input=input,
                              env={"DOCKER_HOST": NO_DOCKER}, catch_exceptions=False)


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    with dc_overview.open(data) as fleet:
        fleet.add_server("gpu-01", "10.0.0.11")
        fleet.set_setting("dc_port", 5002)
    return data


def test_a_bad_answers_file_is_one_clear_message_with_lines_and_exit_1(installed: Path, tmp_path: Path):
    answers = tmp_path / "answers.yaml"
    answers.write_text("role: master\nworkers:\n  - address: 10.0.0.12\n    prot: 22\n  - address: 10.0.0.13\n"
                       "    port: 70000\n")
    before = snapshot(installed)
    result = invoke(installed, "--config", str(answers))
    assert result.exit_code == 1
    assert f"Error: 2 problem(s) in {answers}; nothing was changed:" in result.stderr
    assert f"{answers} line 4: workers[0].prot: unknown key 'prot' (did you mean 'port'?)" in result.stderr
    assert f"{answers} line 6: workers[1].port: 70000 is out of range" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert snapshot(installed) == before


def test_docker_absent_is_one_line_and_nothing_changes(installed: Path):
    before = snapshot(installed)
    result = invoke(installed, "--yes", "--role", "master")
    assert result.exit_code == 1
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "Docker is needed to run the monitoring stack on this host" in error
    assert "nothing was changed" in error and "Traceback" not in result.stderr
    assert snapshot(installed) == before


def test_check_shows_what_would_be_done_and_changes_nothing(installed: Path, tmp_path: Path):
    answers = tmp_path / "answers.yaml"
    answers.write_text("role: master\nstack:\n  start: no\nssh_key:\n  generate: yes\nworkers:\n  - address: 10.0.0.12\n")
    before = snapshot(installed)
    result = invoke(installed, "--config", str(answers), "--check")
    assert result.exit_code == 0, result.stderr
    assert "The answers are fit for this host" in result.stdout and "Nothing was changed." in result.stdout
    assert "10.0.0.12" in result.stdout
    as_json = json.loads(invoke(installed, "--config", str(answers), "--check", "--json").stdout)
    assert as_json["ok"] and as_json["answers"]["workers"][0]["address"] == "10.0.0.12"
    assert as_json["environment"]["docker_running"] is False
    assert snapshot(installed) == before


def test_without_a_terminal_it_asks_for_yes_or_config(tmp_path: Path):
    result = invoke(tmp_path / "data", input="")
    assert result.exit_code == 2 and "give --yes (every default) or --config answers.yaml" in result.stderr


def test_a_master_from_an_answers_file_then_again_unchanged(sshd: LoopbackSshd, tmp_path: Path):
    answers = tmp_path / "answers.yaml"
    answers.write_text(f"""\
role: master
ssh_key:
  name: lab
  path: {sshd.client_key}
workers:
  - {{name: w1, address: {sshd.addresses[0]}, user: {sshd.user}, port: {sshd.port}}}
  - {{name: w2, address: {sshd.addresses[1]}, user: {sshd.user}, port: {sshd.port}}}
exporters:
  install: no
stack:
  start: no
vastai:
  api_key: vast-secret-key-1
""")
    data = tmp_path / "data"
    first = invoke(data, "--config", str(answers))
    assert first.exit_code == 0, first.stdout + first.stderr
    assert "+ ssh key: changed - added the key 'lab'" in first.stderr
    assert "Checking workers" in first.stderr  # the progress bar
    assert re.search(r"^w1\s+ok\s+\S", first.stdout, re.M) and re.search(r"^w2\s+ok\s+\S", first.stdout, re.M)
    assert "Credentials (passwords are not printed; --show-passwords prints them):" in first.stdout
    password = (data / "secrets" / "grafana_admin_password").read_text().strip()
    admin_password = (data / "secrets" / "web_admin_password").read_text().strip()
    for secret in (password, admin_password, "vast-secret-key-1"):
        assert secret not in first.stdout and secret not in first.stderr
    assert f"{data}/secrets/grafana_admin_password (mode 0600)" in first.stdout
    assert "Done:" in first.stdout

    again = invoke(data, "--config", str(answers))
    assert again.exit_code == 0
    assert again.stdout.rstrip().endswith("Nothing changed: this host already matches the answers.")

    shown = invoke(data, "--yes", "--show-passwords", "--json")  # the kept answers, unattended
    report = json.loads(shown.stdout)
    assert report["changed"] is False and [w["name"] for w in report["workers"]] == ["w1", "w2"]
    values = {c["what"].split(" ")[0]: c["value"] for c in report["credentials"]}
    assert values["Grafana"] == password and values["web"] == admin_password
    assert "vast-secret-key-1" not in shown.stdout  # API keys are never printed


# -- interactive, in a real pseudo-terminal -------------------------------------------------------


class Terminal:
    """``dc-overview quickstart`` on a pty: type keys, wait for text on the screen."""

    def __init__(self, data: Path, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dc_overview", "--data-dir", str(data), "quickstart"],
            stdin=slave, stdout=slave, stderr=slave, close_fds=True,
            env={**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1", "COLUMNS": "120", **env})
        os.close(slave)
        self.screen = ""

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} did not appear; the screen shows:\n{self.screen[-2000:]}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                self.screen += ANSI.sub("", chunk.decode(errors="replace"))
        if text not in self.screen:
            raise AssertionError(f"{text!r} did not appear; the screen shows:\n{self.screen[-2000:]}")

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def finish(self, timeout: float = 30) -> int:
        """Read the rest of the screen until the program exits; its exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            chunk = b""
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the program closed the terminal
                    chunk = b""
                self.screen += ANSI.sub("", chunk.decode(errors="replace"))
            if not chunk and self.process.poll() is not None:
                break
        code = self.process.wait(timeout=5)
        os.close(self.master)
        return code


def test_interactive_worker_declined_at_the_end_changes_nothing(tmp_path: Path):
    data = tmp_path / "data"
    term = Terminal(data, {"DOCKER_HOST": NO_DOCKER})
    term.wait_for("Role of this machine")
    assert "This host:" in term.screen and "Docker: " in term.screen
    term.type("worker\r")
    term.wait_for("Apply these answers now?")
    assert "exporters on this host: node_exporter :9100" in term.screen
    term.type("n\r")
    term.wait_for("Quickstart stopped: nothing was changed.")
    assert term.finish() == 1
    assert not (data / "quickstart.yaml").exists() and not (data / "secrets").exists()


def test_interactive_ctrl_c_stops_with_nothing_changed(tmp_path: Path):
    data = tmp_path / "data"
    term = Terminal(data, {"DOCKER_HOST": NO_DOCKER})
    term.wait_for("Role of this machine")
    term.type("wor")  # half an answer, then Ctrl-C
    time.sleep(0.3)
    term.type("\x03")
    term.wait_for("Quickstart stopped: nothing was changed.")
    assert term.finish() == 1
    assert "Traceback" not in term.screen and not (data / "quickstart.yaml").exists()


def test_interactive_master_without_docker_says_what_to_do(tmp_path: Path):
    need_executable("dockerd", "apt-get install -y docker.io")  # installed, but its socket is not there
    data = tmp_path / "data"
    term = Terminal(data, {"DOCKER_HOST": NO_DOCKER})
    term.wait_for("Role of this machine")
    term.type("master\r")
    term.wait_for("nothing was changed")
    assert term.finish() == 1
    screen = " ".join(term.screen.split())
    assert "Docker is needed to run the monitoring stack on this host" in screen
    assert "/nonexistent/dc-overview-test/docker.sock does not exist" in screen
    assert "Traceback" not in screen and not (data / "quickstart.yaml").exists()
