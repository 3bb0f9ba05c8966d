"""CLI: ``settings``, ``targets``, ``export``, ``import``, ``backup``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dc_overview import Fleet

from . import output
from .cli import Group, emit, json_option, pass_fleet
from .cli_inventory import import_summary


@click.group(cls=Group)
def settings() -> None:
    """Fleet-wide settings (SSH defaults and timeouts, ports, URLs)."""


@settings.command("list")
@json_option
@pass_fleet
def settings_list(fleet: Fleet, as_json: bool) -> None:
    """Show every setting and its value."""
    values = output.to_jsonable(fleet.settings())
    emit(values, as_json, lambda v: output.table(sorted(v.items()), ("SETTING", "VALUE")))


@settings.command("get")
@click.argument("name")
@json_option
@pass_fleet
def settings_get(fleet: Fleet, name: str, as_json: bool) -> None:
    """Print one setting."""
    value = fleet.get_setting(name)
    emit(value, as_json, "" if value is None else str(value))


@settings.command("set")
@click.argument("name")
@click.argument("value")
@pass_fleet
def settings_set(fleet: Fleet, name: str, value: str) -> None:
    """Change one setting (checked before it is stored)."""
    updated = fleet.set_setting(name, value)
    click.echo(f"{name} = {getattr(updated, name)}")


@click.command()
@click.option("--write", is_flag=True, help="Also regenerate the file_sd file in the data dir.")
@pass_fleet
def targets(fleet: Fleet, write: bool) -> None:
    """Print the Prometheus targets as file_sd / http_sd JSON."""
    click.echo(json.dumps(fleet.targets(), indent=2))
    if write:
        click.echo(f"Wrote {fleet.write_targets()}", err=True)


@click.group(cls=Group, name="export")
def export() -> None:
    """Export the fleet for other tools."""


@export.command("fleet-config")
@click.option("-o", "--output", "destination", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (atomically) instead of stdout.")
@pass_fleet
def export_fleet_config(fleet: Fleet, destination: Path | None) -> None:
    """The fleet as fleet_config.yaml, the file ipmi-monitor imports from."""
    text = fleet.export_fleet_config(destination)
    if destination is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"Wrote {destination}")


@click.group(cls=Group, name="import")
def import_() -> None:
    """Import servers and keys from other tools."""


@import_.command("ipmi-monitor")
@click.option("--path", type=click.Path(dir_okay=False, path_type=Path),
              help="ipmi-monitor's ipmi_events.db [default: found on this host].")
@json_option
@pass_fleet
def import_ipmi_monitor(fleet: Fleet, path: Path | None, as_json: bool) -> None:
    """Import servers (by OS address) and SSH keys from ipmi-monitor.

    All or nothing; what is already here is reported, not doubled.
    """
    report = fleet.import_ipmi_monitor(path)
    emit(report, as_json, import_summary)


@click.command()
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@pass_fleet
def backup(fleet: Fleet, destination: Path) -> None:
    """Write a consistent copy of the inventory database to DESTINATION."""
    fleet.backup(destination)
    click.echo(f"Backed up to {destination} (SSH private keys stay in {fleet.data_dir / 'ssh_keys'}).")


COMMANDS = (settings, targets, export, import_, backup)
