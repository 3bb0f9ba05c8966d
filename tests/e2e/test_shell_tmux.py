"""The shell in a real terminal (tmux), used as a person would: typing,
Tab, Enter, Ctrl-C, Ctrl-D, and reading the screen."""

from __future__ import annotations

import re
import shlex
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

import dc_overview
from tests.support.require import need_executable

pytestmark = pytest.mark.e2e


def dc_overview_command() -> list[str]:
    """``dc-overview`` as installed beside this Python, else ``python -m dc_overview``."""
    script = Path(sys.executable).parent / "dc-overview"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dc_overview"]


class Terminal:
    """A 200x50 tmux window running one command, on a tmux server of its own."""

    def __init__(self, tmux: str, socket_path: Path, command: str) -> None:
        self.base = [tmux, "-S", str(socket_path), "-f", "/dev/null"]
        self.tmux("new-session", "-d", "-x", "200", "-y", "50", "-s", "shell", command)

    def tmux(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], check=True, capture_output=True, text=True, timeout=10).stdout

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "shell", "-l", text)

    def press(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "shell", *keys)

    def screen(self) -> str:
        """What the window shows, its scrollback included, without the empty rows below."""
        return self.tmux("capture-pane", "-p", "-t", "shell", "-S", "-1000").rstrip("\n")

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if found := re.search(pattern, screen, re.MULTILINE):
                return found
            if time.monotonic() > deadline:
                pytest.fail(f"{pattern!r} did not appear within {timeout}s; the screen:\n{screen}")
            time.sleep(0.1)

    def run(self, line: str, expect: str) -> None:
        """Type ``line``, Enter, and wait for ``expect`` after it on the screen."""
        before = len(self.screen().splitlines())  # the prompt's row is the last
        self.type(line)
        self.press("Enter")
        deadline = time.monotonic() + 30
        while not re.search(expect, "\n".join(self.screen().splitlines()[before:]), re.MULTILINE):
            if time.monotonic() > deadline:
                pytest.fail(f"after {line!r}, {expect!r} did not appear; the screen:\n{self.screen()}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10, check=False)


@pytest.fixture
def tmux() -> str:
    return need_executable("tmux", "apt-get install -y tmux")


@pytest.fixture
def open_terminal(tmux: str, tmp_path: Path) -> Iterator:
    opened: list[Terminal] = []

    def open_shell(data_dir: Path) -> Terminal:
        shell = shlex.join([*dc_overview_command(), "--data-dir", str(data_dir), "shell"])
        # after the shell ends, its exit status stays on the screen
        terminal = Terminal(tmux, tmp_path / "tmux.sock", f"{shell}; echo \"[shell exited $?]\"; sleep 600")
        opened.append(terminal)
        return terminal

    yield open_shell
    for terminal in opened:
        terminal.close()


PROMPT = r"^dc-overview>\s*$"


def test_a_session_typing_tab_use_ctrl_c_and_ctrl_d(open_terminal, tmp_path: Path):
    data = tmp_path / "data"
    with dc_overview.open(data) as fleet:
        fleet.generate_key("fleet-key")
        fleet.add_server("gpu-01", "10.0.0.11", ssh_key="fleet-key")
        fleet.add_server("gpu-02", "10.0.0.12")
        fleet.add_server("db-store-01", "10.0.0.21")
    some_file = tmp_path / "id_other"
    some_file.write_text("not read before the passphrase is given\n")

    term = open_terminal(data)
    term.wait_for(PROMPT)
    term.run("servers list", r"^db-store-01\s+10\.0\.0\.21\s+root:22")

    # Tab completes a server name on the line
    term.type("servers show db-s")
    term.press("Tab")
    term.wait_for(r"^dc-overview> servers show db-store-01\s*$")
    term.press("Enter")
    term.wait_for(r"^address:    10\.0\.0\.21$")

    # a current server: the prompt shows it, commands get it
    term.run("use gpu-02", r"^dc-overview \(gpu-02\)>\s*$")
    term.run("servers show", r"^name:       gpu-02$")

    # Ctrl-C at the prompt drops the line; nothing is run
    term.type("servers remove gpu-01")
    term.press("C-c")
    term.run("servers list", r"^gpu-01\s+10\.0\.0\.11")
    assert "Removed" not in term.screen()

    # Ctrl-C in a running command (waiting for a passphrase) cancels it; the shell goes on
    term.type(f"keys add other-key {some_file} --passphrase")
    term.press("Enter")
    term.wait_for(r"^Passphrase: ?$")
    term.press("C-c")
    term.wait_for(r"^Cancelled\.$")
    term.run("keys list", r"^fleet-key\s+ssh-ed25519")
    assert "other-key" not in term.screen().split("keys list")[-1]

    # a mistake is one line, and the shell goes on
    term.run("frobnicate", r"^Error: No such command 'frobnicate'\. \(see `help`\)$")
    term.run("use", r"^Current server: gpu-02\.$")

    term.press("C-d")
    term.wait_for(r"^\[shell exited 0\]$")

    history = data / "shell_history"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert "+servers show db-store-01" in history.read_text()


def test_ctrl_c_cancels_a_long_check_and_finished_servers_keep_their_result(open_terminal, tmp_path: Path):
    # "silent" accepts TCP and never speaks SSH: its check waits for the
    # connect timeout (10 minutes here). "closed" refuses at once.
    silent = socket.socket()
    silent.bind(("127.0.0.2", 0))
    silent.listen(16)
    with socket.socket() as probe:
        probe.bind(("127.0.0.3", 0))
        closed_port = probe.getsockname()[1]
    data = tmp_path / "data"
    with dc_overview.open(data) as fleet:
        fleet.generate_key("fleet-key")
        fleet.add_server("silent", "127.0.0.2", ssh_port=silent.getsockname()[1], ssh_key="fleet-key")
        fleet.add_server("closed", "127.0.0.3", ssh_port=closed_port, ssh_key="fleet-key")
        fleet.set_setting("ssh_connect_timeout", 600)
    try:
        term = open_terminal(data)
        term.wait_for(PROMPT)
        term.type("check closed sil")
        term.press("Tab")
        term.wait_for(r"^dc-overview> check closed silent\s*$")
        term.press("Enter")
        term.wait_for(r"Checking.*1/2")  # the progress bar: "closed" is done, "silent" hangs
        term.press("C-c")
        term.wait_for(r"^Cancelled\.$")
        term.run("servers list", r"^silent\s+127\.0\.0\.2\s+\S+\s+fleet-key\s+unknown")
        assert re.search(r"^closed\s+127\.0\.0\.3\s+\S+\s+fleet-key\s+offline", term.screen(), re.MULTILINE)
        term.press("C-d")
        term.wait_for(r"^\[shell exited 0\]$")
    finally:
        silent.close()
