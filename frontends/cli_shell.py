"""CLI: ``shell``. The shell itself (and prompt-toolkit) loads only when it is
run, so other commands start no slower for it."""

from __future__ import annotations

import click

from .cli import AppContext


@click.command("shell")
@click.pass_context
def shell(ctx: click.Context) -> None:
    """Work on the fleet at a prompt: every command, with completion and history.

    \b
    Tab completes commands, options, server and SSH key names.
    `use NAME` sets a current server: commands that take server names
    get it when none is given, and the prompt shows it.
    `help [COMMAND]`, `exit` or Ctrl-D to leave; Ctrl-C cancels a command.
    History: DATA_DIR/shell_history (mode 0600).

    Without a terminal on stdin, runs the lines it reads there, one command
    each, and exits 1 if any failed.
    """
    from .shell import ShellContext, run_shell

    app: AppContext = ctx.obj
    if isinstance(app, ShellContext):
        raise click.ClickException("already in the shell")
    ctx.exit(run_shell(app.fleet))


COMMANDS = (shell,)
