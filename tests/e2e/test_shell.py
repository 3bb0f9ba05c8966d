"""The shell driven through prompt-toolkit's pipe input, on a real data dir:
what the operator types goes in as keys, what the prompt draws is captured
as plain text, what the commands print is captured from stdout/stderr."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.plain_text import PlainTextOutput

import dc_overview
from dc_overview.frontends.cli import Group, cli, pass_fleet
from dc_overview.frontends.shell import Shell, ShellContext

CTRL_D = "\x04"
TAB = "\t"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    with dc_overview.open(data) as fleet:
        fleet.generate_key("fleet-key")
        fleet.add_server("gpu-01", "10.0.0.11", ssh_key="fleet-key")
        fleet.add_server("gpu-02", "10.0.0.12")
        fleet.add_server("db-store-01", "10.0.0.21")
    return data


@pytest.fixture
def fleet(data_dir: Path):
    with dc_overview.open(data_dir) as fleet:
        yield fleet


class Session:
    def __init__(self, shell: Shell, status: int, screen: str, out: str, err: str) -> None:
        self.shell, self.status, self.screen, self.out, self.err = shell, status, screen, out, err

    def completions(self, text: str) -> list[str]:
        """What Tab offers after ``text``, as the prompt asks for it: in the fleet's loop."""
        async def collect() -> list[str]:
            found = self.shell.completer.get_completions_async(
                Document(text), CompleteEvent(completion_requested=True))
            return [c.text async for c in found]

        return self.shell.app.fleet.run(collect())


class Shown(str):
    """In the keys given to ``drive``: wait until the prompt shows this text."""


def drive(fleet, capsys, keys: str | list[str], root: click.Group = cli) -> Session:
    """Type ``keys`` into a shell on ``fleet``, then Ctrl-D. A list is typed
    piece by piece; a ``Shown`` in it waits until the prompt has drawn that
    text (as a person waits to see what Tab did before pressing Enter)."""
    capsys.readouterr()
    pieces = [keys] if isinstance(keys, str) else keys
    screen = io.StringIO()
    with create_pipe_input() as pipe:
        def type_pieces() -> None:
            for piece in pieces:
                if isinstance(piece, Shown):
                    deadline = time.monotonic() + 30
                    while piece not in screen.getvalue() and time.monotonic() < deadline:
                        time.sleep(0.02)
                else:
                    pipe.send_text(piece)
            pipe.send_text(CTRL_D)

        typist = threading.Thread(target=type_pieces, daemon=True)
        typist.start()
        shell = Shell(ShellContext(fleet), root, input=pipe, output=PlainTextOutput(screen))
        status = shell.run_interactive()
        typist.join(10)
    captured = capsys.readouterr()
    return Session(shell, status, screen.getvalue(), captured.out, captured.err)


def test_commands_print_what_the_cli_prints(fleet, data_dir, capsys):
    session = drive(fleet, capsys, "servers list\nkeys list --json\n")
    for args in (["servers", "list"], ["keys", "list", "--json"]):
        expected = CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args])
        assert expected.exit_code == 0
        assert expected.output in session.out
    assert session.err == ""
    assert session.status == 0


def test_tab_completes_a_server_name_then_the_command_runs(fleet, capsys):
    session = drive(fleet, capsys, [f"servers show db{TAB}", Shown("servers show db-store-01"), "\n"])
    assert "dc-overview> servers show db-store-01" in session.screen
    assert "address:    10.0.0.21" in session.out


def test_completion_candidates_come_from_the_fleet(fleet, capsys):
    session = drive(fleet, capsys, "")
    assert session.completions("servers show ") == ["db-store-01", "gpu-01", "gpu-02"]
    assert session.completions("servers add new 10.0.0.9 --key ") == ["fleet-key"]
    assert session.completions("use g") == ["gpu-01", "gpu-02"]
    assert "--label" in session.completions("servers update gpu-01 --")
    assert {"servers", "keys", "use", "help", "exit"} <= set(session.completions(""))


def test_names_are_read_again_after_a_command_changes_them(fleet, capsys):
    session = drive(fleet, capsys, "keys generate spare-key\nservers remove gpu-02\n")
    assert "Generated key spare-key" in session.out
    assert session.completions("keys show ") == ["fleet-key", "spare-key"]
    assert session.completions("servers show ") == ["db-store-01", "gpu-01"]


def test_use_sets_the_current_server_for_commands_and_the_prompt(fleet, capsys):
    session = drive(fleet, capsys, "use gpu-02\nservers show\nservers update --port 2222\nuse\n")
    assert "dc-overview (gpu-02)> servers show" in session.screen
    assert "name:       gpu-02" in session.out
    assert "Updated gpu-02." in session.out
    assert fleet.server("gpu-02").ssh_port == 2222
    assert "Current server: gpu-02." in session.out
    assert session.err == ""


def test_given_names_win_over_the_current_server(fleet, capsys):
    session = drive(fleet, capsys, "use gpu-02\nservers show gpu-01\nservers add web-01 10.0.0.31\n")
    assert "name:       gpu-01" in session.out
    assert "Added web-01 (10.0.0.31)." in session.out
    assert fleet.server("gpu-02").name == "gpu-02"


def test_use_dash_clears_and_a_removed_current_server_is_dropped(fleet, capsys):
    session = drive(fleet, capsys, "use gpu-01\nuse -\nservers show\nuse gpu-02\nservers remove\nservers list\n")
    assert "Error: Missing argument 'NAME'. (see `help servers show`)" in session.err
    assert "Removed gpu-02." in session.out
    assert "gpu-02 is no longer in the inventory; no current server now." in session.err
    assert session.screen.rstrip().endswith("dc-overview>")


def test_use_of_an_unknown_server_is_one_error_line(fleet, capsys):
    session = drive(fleet, capsys, "use nope\nservers list\n")
    [error] = session.err.splitlines()
    assert error.startswith("Error: no server named 'nope'")
    assert "gpu-01" in session.out
    assert "dc-overview (nope)" not in session.screen


# Click words some of its messages differently from version to version, and the
# domain errors' hints are theirs to change: the expected line is a pattern.
@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("servers show nope", r"Error: no server named 'nope'.*"),
        ("servers add", r"Error: Missing argument 'NAME'\. \(see `help servers add`\)"),
        ("servers add x 10.0.0.99 --port notaport",
         r"Error: Invalid value for '--port': 'notaport' is not a valid integer\. \(see `help servers add`\)"),
        ("servers list --bogus", r"Error: No such option:? '?--bogus'?\.? \(see `help servers list`\)"),
        ("frobnicate", r"Error: No such command 'frobnicate'\. \(see `help`\)"),
        ("servers add gpu-09 10.0.0.11", r"Error: a server with address '10\.0\.0\.11' already exists .*gpu-01.*"),
        ("settings set ssh_concurrency 0", r"Error: ssh_concurrency: 0 is out of range.*"),
        ("servers show 'unclosed", r"Error: cannot read that line: No closing quotation"),
        ("shell", r"Error: already in the shell"),
    ],
)
def test_a_failing_command_is_one_line_and_the_shell_goes_on(fleet, capsys, line, error):
    session = drive(fleet, capsys, f"{line}\nservers list\n")
    assert len(session.err.splitlines()) == 1, session.err
    assert re.fullmatch(error, session.err.rstrip("\n")), session.err
    assert "db-store-01  10.0.0.21" in session.out
    assert session.status == 0


def test_another_data_dir_is_refused(fleet, capsys, tmp_path):
    session = drive(fleet, capsys, f"--data-dir {tmp_path / 'other'} servers list\nservers list\n")
    assert session.err.startswith("Error: this shell works on ")
    assert not (tmp_path / "other").exists()
    assert "gpu-01" in session.out


def test_help_lists_commands_and_the_shells_own(fleet, capsys):
    session = drive(fleet, capsys, "help\nhelp servers add\nhelp use\n")
    assert "Commands:" in session.out and "servers" in session.out
    assert "Shell commands:" in session.out
    assert "Usage: dc-overview servers add [OPTIONS] NAME ADDRESS" in session.out
    assert "Set the current server" in session.out
    assert session.err == ""


@pytest.mark.parametrize("word", ["exit", "quit", "dc-overview exit"])
def test_exit_and_quit_leave(fleet, capsys, word):
    session = drive(fleet, capsys, f"{word}\nservers remove gpu-01\n")
    assert session.status == 0
    assert fleet.server("gpu-01").name == "gpu-01"


def test_history_is_written_to_the_data_dir_with_mode_0600(fleet, data_dir, capsys):
    (data_dir / "shell_history").write_text("")
    (data_dir / "shell_history").chmod(0o644)
    drive(fleet, capsys, "servers list\nuse gpu-01\n")
    history = data_dir / "shell_history"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert "+servers list" in history.read_text()
    assert "+use gpu-01" in history.read_text()


def test_history_is_offered_again_in_the_next_shell(fleet, capsys):
    drive(fleet, capsys, "servers show gpu-02\n")
    session = drive(fleet, capsys, "\x1b[A\n")  # up arrow, Enter
    assert "name:       gpu-02" in session.out


# -- commands that end badly in ways the CLI's commands rarely do ---------------------


def with_commands(*commands: click.Command) -> click.Group:
    root = Group(commands=dict(cli.commands), context_settings=cli.context_settings)
    for command in commands:
        root.add_command(command)
    return root


@pytest.fixture
def ctrl_c_as_on_a_terminal():
    """SIGINT handled as Python does for a program started on a terminal. A
    process started in the background by a non-interactive shell (`cmd &`)
    inherits SIGINT ignored, and Python then leaves it ignored."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def interrupt_main_thread_when(event: threading.Event) -> threading.Thread:
    def interrupt() -> None:
        if event.wait(10):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_cancels_a_running_coroutine_and_finished_work_stays(fleet, capsys, ctrl_c_as_on_a_terminal):
    finished: list[str] = []
    seen: list[str] = []
    two_done = threading.Event()

    @click.command("visit")
    @pass_fleet
    def visit(fleet: dc_overview.Fleet) -> None:
        async def host(name: str, seconds: float) -> None:
            await asyncio.sleep(seconds)
            finished.append(name)
            if len(finished) == 2:
                two_done.set()

        async def all_hosts() -> None:
            try:
                await asyncio.gather(host("a", 0), host("b", 0.01), host("slow", 60))
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        fleet.run(all_hosts())

    interrupter = interrupt_main_thread_when(two_done)
    started = time.monotonic()
    session = drive(fleet, capsys, "visit\nservers list\n", with_commands(visit))
    interrupter.join(5)
    assert time.monotonic() - started < 30
    assert seen == ["cancelled"]
    assert finished == ["a", "b"]
    assert session.err.splitlines() == ["Cancelled."]
    assert "db-store-01" in session.out  # the fleet still answers after the interrupt


def test_ctrl_c_interrupts_blocking_work_too(fleet, capsys, ctrl_c_as_on_a_terminal):
    running = threading.Event()

    @click.command("block")
    def block() -> None:
        running.set()
        for _ in range(1200):  # work in short steps: a signal that lands between two
            time.sleep(0.05)   # of them still interrupts the next one

    interrupt_main_thread_when(running)
    session = drive(fleet, capsys, "block\nservers list\n", with_commands(block))
    assert session.err.splitlines() == ["Cancelled."]
    assert "gpu-01" in session.out


def test_system_exit_and_defects_do_not_leave_the_shell(fleet, capsys):
    @click.command("leave")
    def leave() -> None:
        sys.exit(3)

    @click.command("defect")
    def defect() -> None:
        raise RuntimeError("a defect")

    session = drive(fleet, capsys, "leave\ndefect\nservers list\n", with_commands(leave, defect))
    assert "RuntimeError: a defect" in session.err
    assert session.err.rstrip().endswith("Error: the command failed unexpectedly (above); the shell goes on")
    assert "gpu-01" in session.out
    assert session.shell.failures == 2


# -- without a terminal: lines from stdin ---------------------------------------------


def run_cli(data_dir: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dc_overview", "--data-dir", str(data_dir), "shell"],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "DC_OVERVIEW_DATA": ""},
    )


def test_lines_on_stdin_run_one_by_one_and_failures_set_the_exit_status(data_dir):
    ok = run_cli(data_dir, "use gpu-01\nservers show\n")
    assert (ok.returncode, ok.stderr) == (0, "")
    assert "name:       gpu-01" in ok.stdout
    failed = run_cli(data_dir, "servers show nope\nservers list\n")
    assert failed.returncode == 1
    [error] = failed.stderr.splitlines()
    assert error.startswith("Error: no server named 'nope'")
    assert "db-store-01" in failed.stdout
