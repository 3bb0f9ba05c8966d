"""The interactive shell (``dc-overview shell``): the CLI's own commands at a
prompt, on one open fleet, with completion, a history file and a current
server (``use NAME``).

Each line runs the CLI's click group with ``standalone_mode=False``, so the
commands, options and output are the CLI's. A command runs in the main
thread with the terminal in its normal mode: Ctrl-C raises KeyboardInterrupt
inside it (a coroutine running under ``Fleet.run`` is cancelled first), the
command stops, and the shell goes on. No error leaves the shell.

The prompt itself runs in the fleet's event loop (``Fleet.run``), so that the
completer can read server and key names from the fleet when Tab needs them.
"""

from __future__ import annotations

import os
import shlex
import sys
import traceback
from pathlib import Path
from typing import AsyncGenerator, Iterable

import click
from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output

import dc_overview
from dc_overview.errors import DcOverviewError, ServerNotFound

from .cli import AppContext, cli
from .shell_completion import BUILTINS, KEY, PROG_NAME, SERVER, CommandCompleter, with_current_server

HISTORY_FILE = "shell_history"


class ShellContext(AppContext):
    """The CLI's context over the shell's one open fleet, plus the current server."""

    def __init__(self, fleet: dc_overview.Fleet) -> None:
        super().__init__(fleet.data_dir, fleet)
        self.current_server: str | None = None


class FleetNames:
    """Server and SSH key names for completion, read from the fleet when Tab
    first needs them after a command (any command may change them)."""

    def __init__(self, fleet: dc_overview.Fleet) -> None:
        self.fleet = fleet
        self.stale = True
        self._names: dict[str, list[str]] = {SERVER: [], KEY: []}

    def names(self, kind: str) -> list[str]:
        return self._names.get(kind, [])

    async def load(self) -> None:
        """Read the names again if a command ran since; in the fleet's event loop."""
        if not self.stale:
            return
        self.stale = False
        try:
            self._names = {SERVER: [s.name for s in await self.fleet.aio.servers()],
                           KEY: [k.name for k in await self.fleet.aio.keys()]}
        except DcOverviewError:
            pass  # complete what was known; the next command reports the problem itself


class FleetCompleter(CommandCompleter):
    """The completer as the prompt calls it: names read first if a command ran since."""

    names: FleetNames

    async def get_completions_async(
        self, document: Document, complete_event: CompleteEvent
    ) -> AsyncGenerator[Completion, None]:
        await self.names.load()
        for completion in self.get_completions(document, complete_event):
            yield completion


def open_history(path: Path) -> History:
    """The history file, created (or narrowed) to mode 0600: typed commands stay private."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    except OSError as exc:
        click.echo(f"Warning: history is not kept: cannot write {path} ({exc.strerror}).", err=True)
        return InMemoryHistory()
    return FileHistory(str(path))


class Shell:
    """Reads lines and runs them as CLI commands against ``app``'s fleet.
    ``input``/``output`` replace the terminal (tests give a pipe)."""

    def __init__(self, app: ShellContext, root: click.Group = cli, *,
                 input: Input | None = None, output: Output | None = None) -> None:
        self.app = app
        self.root = root
        self.names = FleetNames(app.fleet)
        self.completer = FleetCompleter(root, self.names, exclude=("shell",))
        self.failures = 0
        self._input, self._output = input, output

    # -- the two ways in --------------------------------------------------------------

    def run_interactive(self) -> int:
        session: PromptSession[str] = PromptSession(
            history=open_history(self.app.fleet.data_dir / HISTORY_FILE),
            completer=self.completer, complete_while_typing=False,
            auto_suggest=AutoSuggestFromHistory(), input=self._input, output=self._output,
        )
        click.echo(f"dc-overview {dc_overview.__version__} on {self.app.fleet.data_dir}. "
                   "Tab completes, `help` lists the commands, Ctrl-D leaves.")
        while True:
            try:
                line = self.app.fleet.run(session.prompt_async(self.prompt()))
            except KeyboardInterrupt:  # Ctrl-C at the prompt: drop the line
                continue
            except EOFError:  # Ctrl-D
                return 0
            try:
                if not self.run_line(line):
                    return 0
            except KeyboardInterrupt:  # between a command's end and the next prompt
                self._cancelled()

    def run_lines(self, lines: Iterable[str]) -> int:
        """Lines from a file or a pipe, without a prompt; 1 when any failed."""
        try:
            for line in lines:
                if not self.run_line(line):
                    break
        except KeyboardInterrupt:
            self._cancelled()
        return 1 if self.failures else 0

    # -- one line -----------------------------------------------------------------------

    def prompt(self) -> str:
        current = self.app.current_server
        return f"{PROG_NAME} ({current})> " if current else f"{PROG_NAME}> "

    def run_line(self, line: str) -> bool:
        """Run one line; False when it asks to leave."""
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            self._error(f"cannot read that line: {exc}")
            return True
        if tokens[:1] == [PROG_NAME]:  # typed from habit
            tokens = tokens[1:]
        if not tokens:
            return True
        name, rest = tokens[0], tokens[1:]
        if name in ("exit", "quit"):
            return False
        if name == "use":
            self._use(rest)
        elif name == "help":
            self._help(rest)
        elif name.split("=", 1)[0] == "--data-dir":
            self._error(f"this shell works on {self.app.fleet.data_dir}; for another data dir "
                        "start another shell: dc-overview --data-dir DIR shell")
        else:
            self.run_command(with_current_server(self.root, tokens, self.app.current_server))
            self.names.stale = True
            self._check_current_server()
        return True

    def run_command(self, args: list[str]) -> None:
        """Run ``args`` as the CLI would, with every way it can end turned into
        at most one line of error."""
        try:
            status = self.root.main(args=args, prog_name=PROG_NAME, standalone_mode=False, obj=self.app)
        except (click.Abort, KeyboardInterrupt):  # Ctrl-C (the CLI's groups make it Abort), or a "no"
            self._cancelled()
        except click.UsageError as exc:
            where = exc.ctx.command_path.split(" ", 1)[1:] if exc.ctx else []
            self._error(f"{exc.format_message()} (see `help{' ' + where[0] if where else ''}`)")
        except click.ClickException as exc:
            self._error(exc.format_message())
        except DcOverviewError as exc:
            self._error(str(exc))
        except SystemExit as exc:
            if exc.code not in (0, None):
                self.failures += 1
        except Exception:  # a defect: show where, and keep the operator's shell
            click.echo(traceback.format_exc().rstrip(), err=True)
            self._error("the command failed unexpectedly (above); the shell goes on")
        else:
            if isinstance(status, int) and status != 0:  # ctx.exit(N) from a command
                self.failures += 1

    # -- the shell's own commands ---------------------------------------------------

    def _use(self, args: list[str]) -> None:
        if not args:
            current = self.app.current_server
            click.echo(f"Current server: {current}." if current else "No current server; `use NAME` sets one.")
        elif args == ["-"]:
            self.app.current_server = None
        elif len(args) > 1:
            self._error("use takes one server name (`use NAME`), or `use -` to clear it")
        else:
            try:
                self.app.current_server = self.app.fleet.server(args[0]).name
            except DcOverviewError as exc:
                self._error(str(exc))

    def _help(self, args: list[str]) -> None:
        if args and args[0] in BUILTINS:
            click.echo(BUILTINS[args[0]])
            return
        self.run_command([*args, "--help"])
        if not args:
            click.echo("\nShell commands:")
            for name, text in BUILTINS.items():
                click.echo(f"  {name:<9} {text}")
            click.echo("\nWith a current server set, commands that take server names get it when "
                       "none is given.\nCtrl-C cancels a running command; Ctrl-D leaves.")

    # -- around the commands -----------------------------------------------------------

    def _check_current_server(self) -> None:
        """A command may have removed or renamed the current server: say so and drop it."""
        current = self.app.current_server
        if current is None:
            return
        try:
            self.app.fleet.server(current)
        except ServerNotFound:
            self.app.current_server = None
            click.echo(f"{current} is no longer in the inventory; no current server now.", err=True)
        except DcOverviewError:
            pass  # the inventory cannot be read now; the next command will say why

    def _error(self, message: str) -> None:
        self.failures += 1
        click.echo(f"Error: {message}", err=True)

    def _cancelled(self) -> None:
        self.failures += 1
        click.echo("Cancelled.", err=True)


def run_shell(fleet: dc_overview.Fleet) -> int:
    """The shell on ``fleet``: interactive on a terminal, else lines from stdin."""
    shell = Shell(ShellContext(fleet))
    if sys.stdin.isatty():
        return shell.run_interactive()
    return shell.run_lines(sys.stdin)
