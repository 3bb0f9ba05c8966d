"""The app container is configured through environment variables that
``dc-overview serve`` (and the root command) actually read: a misspelt name
is silently ignored by the app, so every one is checked against the CLI."""

import click

from dc_overview.frontends.cli import cli
from dc_overview.stack import APP, StackOptions, build_stack, find_service


def _envvars(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        value = getattr(param, "envvar", None)
        names |= {value} if isinstance(value, str) else set(value or ())
    return names


def test_every_variable_the_stack_gives_the_app_is_read_by_serve():
    app = find_service(build_stack(StackOptions()), APP)
    serve = cli.get_command(click.Context(cli), "serve")
    assert serve is not None
    read = _envvars(cli) | _envvars(serve)
    given = {*app.env, app.network_env} - {None}
    assert given - read == set(), f"the app never reads {sorted(given - read)} (it reads {sorted(read)})"


def test_the_app_asks_prometheus_on_the_stack_network():
    app = find_service(build_stack(StackOptions()), APP)
    assert app.env["DC_OVERVIEW_PROMETHEUS_API"] == "http://prometheus:9090/prometheus"
