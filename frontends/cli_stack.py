"""CLI: the monitoring stack on this host — ``status``, ``logs``, ``stop``,
``start``, ``restart``, ``upgrade`` and the ``stack`` group (``apply``,
``render``, ``compose``, ``options``, ``set``, ``secret``, ``routes``,
``route add``/``route remove``, ``reload-prometheus``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dc_overview import Fleet
from dc_overview.fsutil import atomic_write

from . import output
from .cli import Group, emit, json_option, pass_fleet

SERVICE = click.argument("service", required=False)


def _progress(as_json: bool):
    """Progress lines go to stderr, keeping stdout for the report (or its JSON)."""
    return lambda line: click.echo(line, err=True)


def status_table(rows: list) -> str:
    if not rows:
        return "The stack has no services."
    table = output.table(
        [(r.service, r.container, r.state if r.in_stack else f"{r.state} (not in the stack)", r.health,
          ", ".join(r.ports), r.version, r.image) for r in rows],
        ("SERVICE", "CONTAINER", "STATE", "HEALTH", "PORTS", "VERSION", "IMAGE"),
    )
    missing = [r.service for r in rows if r.state == "missing"]
    return table + (f"\n\nNot running: {', '.join(missing)} — `dc-overview stack apply` creates them." if missing else "")


def report_text(report) -> str:
    lines = [f"{c.service}: {c.action}" + (f" ({c.detail})" if c.detail else "") for c in report.changes]
    if "grafana_admin_password" in report.generated_secrets:
        lines.append("Grafana's admin password was made and stored; replace it with "
                     "`dc-overview stack secret grafana_admin_password`.")
    changed = [c for c in report.changes if c.action != "unchanged"]
    lines.append("Nothing needed changing." if not changed else f"{len(changed)} service(s) changed.")
    return "\n".join(lines)


@click.command()
@json_option
@pass_fleet
def status(fleet: Fleet, as_json: bool) -> None:
    """Show the stack's containers: state, health, ports and versions."""
    emit(fleet.stack_status(), as_json, status_table)


@click.command()
@SERVICE
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("-n", "--tail", "tail", type=click.IntRange(min=0), default=100, show_default=True,
              help="How many of the last lines to show first.")
@pass_fleet
def logs(fleet: Fleet, service: str | None, follow: bool, tail: int) -> None:
    """Print the output of one service, or of all (each line prefixed by its service)."""
    fleet.stack_logs(service, tail=tail, follow=follow, on_line=click.echo)


@click.command()
@SERVICE
@pass_fleet
def stop(fleet: Fleet, service: str | None) -> None:
    """Stop the stack (or one service). Its data stays; `start` brings it back."""
    for name in fleet.stop_stack(service):
        click.echo(f"stopped {name}")


@click.command()
@SERVICE
@pass_fleet
def start(fleet: Fleet, service: str | None) -> None:
    """Start the stack (or one service) as it was, and wait until it is healthy."""
    for name in fleet.start_stack(service):
        click.echo(f"started {name}")


@click.command()
@SERVICE
@pass_fleet
def restart(fleet: Fleet, service: str | None) -> None:
    """Restart the stack (or one service) and wait until it is healthy."""
    for name in fleet.restart_stack(service):
        click.echo(f"restarted {name}")


@click.command()
@click.option("--timeout", type=click.FloatRange(min=1), default=180, show_default=True,
              help="Seconds each container may take to become healthy.")
@json_option
@pass_fleet
def upgrade(fleet: Fleet, timeout: float, as_json: bool) -> None:
    """Pull newer images and recreate the containers that changed; data volumes are kept.

    Every pull happens before anything is changed: if one fails, the running
    stack stays as it is.
    """
    emit(fleet.upgrade_stack(progress=_progress(as_json), timeout_s=timeout), as_json, report_text)


@click.group(cls=Group)
def stack() -> None:
    """The monitoring stack on this host: Prometheus, Grafana, the reverse proxy and the web app."""


@stack.command("apply")
@click.option("--timeout", type=click.FloatRange(min=1), default=180, show_default=True,
              help="Seconds each container may take to become healthy.")
@json_option
@pass_fleet
def stack_apply(fleet: Fleet, timeout: float, as_json: bool) -> None:
    """Create or update the stack to match its options.

    Writes the config files, pulls missing images, and recreates only the
    containers whose configuration changed; Prometheus and the proxy reload
    when their files changed. Safe to run again at any time.
    """
    emit(fleet.apply_stack(progress=_progress(as_json), timeout_s=timeout), as_json, report_text)


@stack.command("render")
@json_option
@pass_fleet
def stack_render(fleet: Fleet, as_json: bool) -> None:
    """Write the config files (Prometheus, proxy, Grafana) without touching containers."""
    files = fleet.render_stack()
    emit(files, as_json, lambda f: "\n".join(str(fleet.data_dir / p) for p in f))


@stack.command("compose")
@click.option("-o", "--output", "destination", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (atomically) instead of stdout.")
@pass_fleet
def stack_compose(fleet: Fleet, destination: Path | None) -> None:
    """Print the stack as a docker-compose.yml, to read or to run by hand (no secrets in it)."""
    text = fleet.stack_compose()
    if destination is None:
        click.echo(text, nl=False)
    else:
        atomic_write(destination, text)
        click.echo(f"Wrote {destination}")


@stack.command("options")
@json_option
@pass_fleet
def stack_options(fleet: Fleet, as_json: bool) -> None:
    """Show the stack's options and which of its secrets are set."""
    values = output.to_jsonable(fleet.stack_options())
    secrets = fleet.secret_status()
    if as_json:
        emit({"options": values, "secrets": secrets}, True)
        return
    values["app_port (the dc_port setting)"] = values.pop("app_port")
    rows = sorted(values.items()) + [(f"secret {k}", "set" if v else "not set") for k, v in sorted(secrets.items())]
    click.echo(output.table(rows, ("OPTION", "VALUE")))


@stack.command("set")
@click.argument("name")
@click.argument("value")
@pass_fleet
def stack_set(fleet: Fleet, name: str, value: str) -> None:
    """Change one option (checked before it is stored); `stack apply` puts it into effect."""
    updated = fleet.set_stack_option(name, value)
    shown = getattr(updated, name)
    shown = ", ".join(shown) if isinstance(shown, tuple) else shown  # e.g. alert_email_to
    click.echo(f"{name} = {shown}  (run `dc-overview stack apply` to put it into effect)")


@stack.command("secret")
@click.argument("name")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the value from stdin instead of a prompt.")
@pass_fleet
def stack_secret(fleet: Fleet, name: str, from_stdin: bool) -> None:
    """Set a secret of the stack (grafana_admin_password, remote_write_password, alert_webhook_token, smtp_password).

    The value is asked for without echo and never shown again. `dc-overview
    secrets` lists, sets and clears these and every other secret.
    """
    value = sys.stdin.readline().strip() if from_stdin else click.prompt(
        f"{name}", hide_input=True, confirmation_prompt=True)
    fleet.set_stack_secret(name, value)
    click.echo(f"{name} set (run `dc-overview stack apply` to put it into effect)")


@stack.command("routes")
@json_option
@pass_fleet
def stack_routes(fleet: Fleet, as_json: bool) -> None:
    """List the services the shared reverse proxy serves."""
    emit(fleet.proxy_routes(), as_json, lambda routes: output.table(
        [(r.name, r.path, r.upstream, r.container) for r in routes], ("NAME", "PATH", "UPSTREAM", "CONTAINER")))


@stack.group("route", cls=Group)
def route() -> None:
    """Add or remove a service in the shared reverse proxy."""


@route.command("add")
@click.argument("name")
@click.argument("path")
@click.argument("upstream")
@click.option("--container", help="The container serving it (for the landing page's status).")
@click.option("--keep-prefix", is_flag=True, help="Pass PATH on to the service instead of stripping it.")
@pass_fleet
def route_add(fleet: Fleet, name: str, path: str, upstream: str, container: str | None, keep_prefix: bool) -> None:
    """Serve UPSTREAM (host:port on the stack's network) under PATH, e.g. `ipmi /ipmi/ ipmi-monitor:5000`."""
    added = fleet.register_route(name, path, upstream, container=container, strip_prefix=not keep_prefix)
    click.echo(f"{added.name}: {added.path} -> {added.upstream}")


@route.command("remove")
@click.argument("name")
@pass_fleet
def route_remove(fleet: Fleet, name: str) -> None:
    """Stop serving the service NAME through the proxy."""
    fleet.unregister_route(name)
    click.echo(f"removed the route for {name}")


@stack.command("reload-prometheus")
@pass_fleet
def stack_reload_prometheus(fleet: Fleet) -> None:
    """Have Prometheus re-read its configuration and rules now."""
    fleet.reload_prometheus()
    click.echo("Prometheus reloaded its configuration")


COMMANDS = (status, logs, stop, start, restart, upgrade, stack)
