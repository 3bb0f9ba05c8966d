"""The ``dc-overview`` command line (click). Every command is a thin shell
over ``dc_overview.Fleet``; the interactive shell runs these same commands.

Exit codes: 0 ok, 1 a user error (one line on stderr, no traceback),
2 a usage error (click's own).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable

import click

import dc_overview
from dc_overview.errors import DcOverviewError

from . import output

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class AppContext:
    """What every command needs: the data dir and, once asked for, the fleet."""

    def __init__(self, data_dir: Path | None = None, fleet: dc_overview.Fleet | None = None) -> None:
        self.data_dir = data_dir
        self._fleet = fleet
        self.owns_fleet = fleet is None

    @property
    def fleet(self) -> dc_overview.Fleet:
        if self._fleet is None:
            self._fleet = dc_overview.open(self.data_dir)
        return self._fleet

    def close(self) -> None:
        if self._fleet is not None and self.owns_fleet:
            self._fleet.close()
            self._fleet = None


class UserError(click.ClickException):
    """A DcOverviewError, shown as one line; exit code 1."""

    exit_code = 1

    def __init__(self, error: DcOverviewError) -> None:
        details = getattr(error, "details", None)
        super().__init__(details() if details else str(error))
        self.error = error


class Group(click.Group):
    """Turns domain errors into one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DcOverviewError as exc:
            raise UserError(exc) from None
        except KeyboardInterrupt:
            raise click.Abort() from None


def pass_fleet(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the fleet as its first argument."""

    @click.pass_obj
    @functools.wraps(command)
    def wrapper(app: AppContext, *args: Any, **kwargs: Any) -> Any:
        return command(app.fleet, *args, **kwargs)

    return wrapper


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of text.")


def emit(value: Any, as_json: bool, text: Callable[[Any], str] | str | None = None) -> None:
    """Print ``value`` as JSON, or as the given text (a string or a function of the value)."""
    if as_json:
        click.echo(output.dumps(value))
    elif callable(text):
        click.echo(text(value))
    elif text is not None:
        click.echo(text)


@click.group(cls=Group, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DC_OVERVIEW_DATA",
    help="Where the inventory, keys and configs live. [env DC_OVERVIEW_DATA; "
    "default /etc/dc-overview as root, else ~/.local/share/dc-overview]",
)
@click.version_option(dc_overview.__version__, "-V", "--version", prog_name="dc-overview")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None) -> None:
    """See and run a fleet of GPU servers.

    Keep an inventory of servers and SSH keys, put their exporters under
    systemd over SSH, and run Prometheus, Grafana, a proxy and the web UI in
    Docker. Start with `dc-overview quickstart`; then `servers import FILE`,
    `check --all`, `install-exporters --all`, `status`, or `shell`.
    """
    if ctx.obj is None:
        ctx.obj = AppContext(data_dir)
        ctx.call_on_close(ctx.obj.close)
    elif data_dir is not None:
        ctx.obj.data_dir = data_dir


def _register() -> None:
    from . import (
        cli_config, cli_exporter, cli_fleet_ops, cli_inventory, cli_quickstart, cli_shell, cli_stack, cli_web,
    )

    for module in (cli_quickstart, cli_inventory, cli_fleet_ops, cli_config, cli_stack, cli_web, cli_shell):
        for command in module.COMMANDS:
            cli.add_command(command)
    cli.add_command(cli_exporter.exporter)


_register()


# Enough for ssh_concurrency in the thousands; never above the hard limit.
OPEN_FILES_WANTED = 65536


def raise_open_files_limit(wanted: int = OPEN_FILES_WANTED) -> int:
    """Lift this process's soft limit on open files towards the hard limit,
    as a fleet operation holds one socket per server in flight (a login
    shell or a unit often starts with a soft limit of 1024). Returns the
    soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (OSError, ValueError):
            pass
    return soft


def main(argv: list[str] | None = None) -> None:
    raise_open_files_limit()
    cli.main(args=argv, prog_name="dc-overview")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
