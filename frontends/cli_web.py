"""CLI: ``serve`` (the web UI and JSON API), ``users`` (who may log in, and
their API tokens) and ``secrets`` (write-only API keys and tokens)."""

from __future__ import annotations

import logging
import sys

import click

from dc_overview import Fleet
from dc_overview.credentials import SECRETS
from dc_overview.identity import ROLE_NAMES

from . import output
from .cli import Group, emit, json_option, pass_fleet


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="DC_OVERVIEW_HOST",
              help="Address to listen on; 0.0.0.0 in a container. [env DC_OVERVIEW_HOST]")
@click.option("--port", type=click.IntRange(1, 65535), envvar="DC_OVERVIEW_PORT",
              help="Port to listen on. [env DC_OVERVIEW_PORT; default: the dc_port setting, 5001]")
@click.option("--base-path", default="", envvar="DC_OVERVIEW_BASE_PATH", metavar="PATH",
              help="Prefix the reverse proxy publishes the app under, e.g. /dc; X-Forwarded-Prefix from a "
                   "trusted proxy overrides it. [env DC_OVERVIEW_BASE_PATH]")
@click.option("--trusted-proxy", "trusted", multiple=True, envvar="DC_OVERVIEW_TRUSTED_PROXIES", metavar="ADDR",
              help="Address or network (CIDR) of a reverse proxy whose X-Forwarded-For/-Proto/-Prefix "
                   "headers are believed; repeatable. [env DC_OVERVIEW_TRUSTED_PROXIES, comma-separated]")
@click.option("--prometheus-api", envvar="DC_OVERVIEW_PROMETHEUS_API", metavar="URL",
              help="Where this process reaches Prometheus for live GPU data, e.g. http://prometheus:9090/prometheus/ "
                   "[env DC_OVERVIEW_PROMETHEUS_API; default: the prometheus_url setting when it is an http URL]")
@click.option("--secure-cookies/--no-secure-cookies", default=None,
              help="Force the Secure flag on cookies on or off [default: on when the request came over HTTPS].")
@pass_fleet
def serve(fleet: Fleet, host: str, port: int | None, base_path: str, trusted: tuple[str, ...],
          prometheus_api: str | None, secure_cookies: bool | None) -> None:
    """Serve the web UI and the JSON API until Ctrl-C or SIGTERM."""
    from .web_app import create_app
    from .web_app import serve as run_server
    from .web_context import WebConfig

    config = WebConfig(host=host, port=port or int(fleet.get_setting("dc_port")), base_path=base_path,
                       trusted_proxies=trusted, prometheus_api=prometheus_api or None,
                       secure_cookies=secure_cookies)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(fleet.aio, config)
    click.echo(f"dc-overview web UI on http://{config.host}:{config.port}/ "
               f"(published under {config.base_path or '/'}); Ctrl-C to stop.")
    if fleet.needs_setup():
        click.echo("No admin yet: open the page to create one, or run `dc-overview users add NAME --role admin`.")
    fleet.run(run_server(app, config.host, config.port))


# -- users ----------------------------------------------------------------------------------------


def _password(from_stdin: bool, prompt: str = "Password") -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@click.group(cls=Group)
def users() -> None:
    """Who may log in to the web UI, with which role, and their API tokens."""


@users.command("list")
@json_option
@pass_fleet
def users_list(fleet: Fleet, as_json: bool) -> None:
    """List users and their roles."""
    found = fleet.users()
    rows = [{"id": u.id, "name": u.name, "role": u.role.value, "created_at": u.created_at} for u in found]
    emit(rows, as_json, lambda _: output.table([(u.name, u.role.value, output.ago(u.created_at)) for u in found],
                                               ("NAME", "ROLE", "CREATED")) if found else
         "No users yet. Add an admin with `dc-overview users add NAME --role admin`.")


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLE_NAMES), default="viewer", show_default=True,
              help="admin may change anything; viewer may only look.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@json_option
@pass_fleet
def users_add(fleet: Fleet, name: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Add a user NAME who logs in with a password (asked for twice)."""
    user = fleet.add_user(name, _password(password_stdin), role)
    emit({"id": user.id, "name": user.name, "role": user.role.value}, as_json, f"Added {user.name} ({user.role.value}).")


@users.command("remove")
@click.argument("name")
@pass_fleet
def users_remove(fleet: Fleet, name: str) -> None:
    """Remove a user with their API tokens and sessions (never the last admin)."""
    user = fleet.remove_user(name)
    click.echo(f"Removed {user.name}.")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@pass_fleet
def users_passwd(fleet: Fleet, name: str, password_stdin: bool) -> None:
    """Set a user's password; their sessions end (API tokens stay)."""
    fleet.user(name)
    user = fleet.set_password(name, _password(password_stdin, "New password"))
    click.echo(f"Changed the password of {user.name}.")


@users.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLE_NAMES))
@pass_fleet
def users_role(fleet: Fleet, name: str, role: str) -> None:
    """Give a user the role admin or viewer."""
    user = fleet.set_role(name, role)
    click.echo(f"{user.name} is now {user.role.value}.")


@users.command("token")
@click.argument("name")
@click.option("--label", default="cli", show_default=True, help="What the token is for.")
@json_option
@pass_fleet
def users_token(fleet: Fleet, name: str, label: str, as_json: bool) -> None:
    """Make an API token for NAME and print it — this once only.

    Send it as `Authorization: Bearer TOKEN`; it acts with NAME's role.
    """
    made = fleet.create_token(name, label)
    emit({"id": made.token.id, "label": made.token.label, "user": name, "token": made.secret}, as_json,
         made.secret)
    if not as_json:
        click.echo(f"API token {made.token.id} ({made.token.label}) for {name}; it is not shown again.", err=True)


@users.command("tokens")
@click.argument("name", required=False)
@json_option
@pass_fleet
def users_tokens(fleet: Fleet, name: str | None, as_json: bool) -> None:
    """List API tokens (of NAME, or everyone's); never the tokens themselves."""
    found = fleet.tokens(name)
    rows = [{"id": t.id, "label": t.label, "prefix": t.prefix, "user": t.user_name,
             "created_at": t.created_at, "last_used_at": t.last_used_at} for t in found]
    emit(rows, as_json, lambda _: output.table(
        [(t.id, t.user_name, t.label, t.prefix + "…", output.ago(t.last_used_at)) for t in found],
        ("ID", "USER", "LABEL", "STARTS WITH", "LAST USED")) if found else "No API tokens.")


@users.command("revoke")
@click.argument("token_id", type=int)
@pass_fleet
def users_revoke(fleet: Fleet, token_id: int) -> None:
    """Revoke the API token with id TOKEN_ID (see `users tokens`)."""
    token = fleet.revoke_token(token_id)
    click.echo(f"Revoked token {token.id} ({token.label}) of {token.user_name}.")


# -- secrets ----------------------------------------------------------------------------------------------


@click.group(cls=Group)
def secrets() -> None:
    """Write-only secrets: provider API keys, the scrape token and the stack's passwords (0600 files; never printed back)."""


@secrets.command("list")
@json_option
@pass_fleet
def secrets_list(fleet: Fleet, as_json: bool) -> None:
    """Which secrets are set (never their values)."""
    status = fleet.secret_status()
    emit(status, as_json, lambda s: output.table(
        [(n, "set" if s[n] else "not set", SECRETS[n]) for n in s], ("NAME", "STATE", "WHAT")))


@secrets.command("set")
@click.argument("name", type=click.Choice(tuple(SECRETS)))
@click.option("--value-stdin", is_flag=True, help="Read the value from the first line of stdin.")
@pass_fleet
def secrets_set(fleet: Fleet, name: str, value_stdin: bool) -> None:
    """Set or replace the secret NAME (asked for, not echoed)."""
    value = sys.stdin.readline().strip() if value_stdin else click.prompt(SECRETS[name], hide_input=True)
    fleet.set_secret(name, value)
    click.echo(f"Saved {name}.")


@secrets.command("clear")
@click.argument("name", type=click.Choice(tuple(SECRETS)))
@pass_fleet
def secrets_clear(fleet: Fleet, name: str) -> None:
    """Delete the secret NAME."""
    fleet.clear_secret(name)
    click.echo(f"Cleared {name}.")


@secrets.command("scrape-token")
@pass_fleet
def secrets_scrape_token(fleet: Fleet) -> None:
    """Make a new scrape token and print it once: Prometheus must then send it
    for /api/prometheus/targets.json and /metrics."""
    click.echo(fleet.generate_scrape_token())


COMMANDS = (serve, users, secrets)
