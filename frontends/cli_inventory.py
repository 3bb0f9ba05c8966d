"""CLI: ``servers`` and ``keys``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dc_overview import Fleet, ImportReport
from dc_overview.domain import GPU_EXPORTER, NODE_EXPORTER, Server, fingerprint, parse_label

from . import output
from .cli import Group, emit, json_option, pass_fleet


def _labels(values: tuple[str, ...]) -> dict[str, str] | None:
    return dict(parse_label(v) for v in values) if values else None


def _exporters(server: Server) -> str:
    shown = []
    for exporter, short in ((NODE_EXPORTER, "node"), (GPU_EXPORTER, "gpu")):
        state = server.exporter(exporter)
        if state.installed:
            shown.append(f"{short} {state.version}" if state.version else short)
    return ", ".join(shown)


def servers_table(servers: list[Server]) -> str:
    if not servers:
        return "No servers yet. Add one with `dc-overview servers add NAME ADDRESS`."
    rows = [
        (s.name, s.address, f"{s.ssh_user}:{s.ssh_port}", s.ssh_key, s.status.value,
         s.gpu_count, _exporters(s), output.ago(s.last_seen))
        for s in servers
    ]
    return output.table(rows, ("NAME", "ADDRESS", "SSH", "KEY", "STATUS", "GPUS", "EXPORTERS", "LAST SEEN"))


def server_details(server: Server) -> str:
    lines = [
        f"name:       {server.name}",
        f"address:    {server.address}",
        f"bmc_ip:     {server.bmc_ip or '-'}",
        f"ssh:        {server.ssh_user}@{server.address}:{server.ssh_port} key={server.ssh_key or '-'}",
        f"labels:     {', '.join(f'{k}={v}' for k, v in server.labels.items()) or '-'}",
        f"status:     {server.status.value} (last seen {output.ago(server.last_seen)})",
        f"gpus:       {'unknown' if server.gpu_count is None else server.gpu_count}",
        f"exporters:  {_exporters(server) or 'none installed'}",
        f"host key:   {server.host_key.split()[0] + ' (pinned)' if server.host_key else 'not pinned yet'}",
    ]
    return "\n".join(lines)


@click.group(cls=Group)
def servers() -> None:
    """The fleet's servers: add, list, change, remove, import."""


@servers.command("list")
@json_option
@pass_fleet
def servers_list(fleet: Fleet, as_json: bool) -> None:
    """List every server."""
    emit(fleet.servers(), as_json, servers_table)


@servers.command("show")
@click.argument("name")
@json_option
@pass_fleet
def servers_show(fleet: Fleet, name: str, as_json: bool) -> None:
    """Show one server in full."""
    emit(fleet.server(name), as_json, server_details)


@servers.command("add")
@click.argument("name")
@click.argument("address")
@click.option("--user", "ssh_user", help="SSH user [default: the default_ssh_user setting, root].")
@click.option("--port", "ssh_port", type=int, default=22, show_default=True, help="SSH port.")
@click.option("--key", "ssh_key", metavar="KEYNAME", help="SSH key by name (see `keys list`).")
@click.option("--bmc-ip", help="The BMC's address, kept for ipmi-monitor.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A Prometheus label; repeatable.")
@json_option
@pass_fleet
def servers_add(fleet: Fleet, name: str, address: str, ssh_user: str | None, ssh_port: int,
                ssh_key: str | None, bmc_ip: str | None, labels: tuple[str, ...], as_json: bool) -> None:
    """Add a server NAME reachable at ADDRESS (its OS IP or hostname)."""
    server = fleet.add_server(name, address, ssh_user=ssh_user, ssh_port=ssh_port, ssh_key=ssh_key,
                              bmc_ip=bmc_ip, labels=_labels(labels))
    emit(server, as_json, f"Added {server.name} ({server.address}).")


@servers.command("update")
@click.argument("name")
@click.option("--name", "new_name", help="A new name.")
@click.option("--address", help="A new OS address (the pinned host key is forgotten).")
@click.option("--user", "ssh_user", help="SSH user.")
@click.option("--port", "ssh_port", type=int, help="SSH port.")
@click.option("--key", "ssh_key", metavar="KEYNAME", help="SSH key by name; '' for none.")
@click.option("--bmc-ip", help="BMC address; '' for none.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Replace the labels; repeatable.")
@json_option
@pass_fleet
def servers_update(fleet: Fleet, name: str, new_name: str | None, as_json: bool, labels: tuple[str, ...],
                   **fields: object) -> None:
    """Change a server's settings."""
    changes = {k: v for k, v in fields.items() if v is not None}
    if "ssh_key" in changes and changes["ssh_key"] == "":
        changes["ssh_key"] = None
    if new_name:
        changes["name"] = new_name
    if labels:
        changes["labels"] = _labels(labels)
    if not changes:
        raise click.UsageError("nothing to change; give at least one option (see --help)")
    server = fleet.update_server(name, **changes)
    emit(server, as_json, f"Updated {server.name}.")


@servers.command("remove")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@json_option
@pass_fleet
def servers_remove(fleet: Fleet, names: tuple[str, ...], as_json: bool) -> None:
    """Remove servers from the inventory (nothing is changed on them)."""
    for name in names:
        fleet.server(name)  # all exist, or nothing is removed
    removed = [fleet.remove_server(name) for name in names]
    emit(removed, as_json, "Removed " + ", ".join(s.name for s in removed) + ".")


@servers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@json_option
@pass_fleet
def servers_import(fleet: Fleet, file: Path, as_json: bool) -> None:
    """Import servers from FILE ('-' for stdin): CSV or pasted lines.

    \b
    Each line: ip | name,ip | name,ip,user | name,ip,user,port[,key]
    A header line and '#' comments are allowed. All lines are checked
    first; if any is wrong nothing is imported and each problem is listed.
    """
    if str(file) == "-":
        report = fleet.import_servers(sys.stdin.read(), source="stdin")
    else:
        report = fleet.import_servers_file(file)
    emit(report, as_json, import_summary)


@servers.command("trust")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_fleet
def servers_trust(fleet: Fleet, name: str, yes: bool, as_json: bool) -> None:
    """Forget NAME's pinned SSH host key; the next connection pins the key it offers.

    Do this only when you know why the key changed (the machine was
    reinstalled, its keys rotated); otherwise someone may be in the middle.
    """
    pinned = fleet.server(name).host_key
    if pinned and not yes and not as_json:
        click.echo(f"Pinned host key of {name}: {pinned.split()[0]} {fingerprint(pinned)}")
        click.confirm("Forget it and trust whatever key the next connection offers?", abort=True)
    report = fleet.trust_host(name)
    emit(report, as_json, f"Forgot the host key of {name} ({report.forgotten_fingerprint}); the next "
         f"connection (e.g. `dc-overview check {name}`) pins the key it offers."
         if report.forgotten_key else f"No host key was pinned for {name}; the next connection pins one.")


def import_summary(report: ImportReport) -> str:
    lines = [f"Imported {len(report.added)} server(s)."]
    for server in report.added:
        lines.append(f"  + {server.name} ({server.address})")
    if report.unchanged:
        lines.append(f"Already present, unchanged: {', '.join(report.unchanged)}")
    if report.keys_added:
        lines.append(f"SSH keys added: {', '.join(report.keys_added)}")
    if report.keys_unchanged:
        lines.append(f"SSH keys already present: {', '.join(report.keys_unchanged)}")
    for what, why in report.skipped:
        lines.append(f"  skipped {what}: {why}")
    return "\n".join(lines)


@click.group(cls=Group)
def keys() -> None:
    """SSH keys used to reach the workers (private keys stay in the data dir, mode 0600)."""


def keys_table(items: list) -> str:
    if not items:
        return "No SSH keys yet. Add one with `dc-overview keys generate NAME` or `keys add NAME PATH`."
    return output.table([(k.name, k.public_key.split()[0], k.fingerprint) for k in items],
                        ("NAME", "TYPE", "FINGERPRINT"))


@keys.command("list")
@json_option
@pass_fleet
def keys_list(fleet: Fleet, as_json: bool) -> None:
    """List SSH keys with their fingerprints."""
    emit(fleet.keys(), as_json, keys_table)


@keys.command("show")
@click.argument("name")
@json_option
@pass_fleet
def keys_show(fleet: Fleet, name: str, as_json: bool) -> None:
    """Print a key's public key (for a worker's authorized_keys)."""
    key = fleet.key(name)
    emit(key, as_json, key.public_key)


@keys.command("add")
@click.argument("name")
@click.argument("private_key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--passphrase", is_flag=True, help="Ask for the key's passphrase (a decrypted copy is stored).")
@json_option
@pass_fleet
def keys_add(fleet: Fleet, name: str, private_key_path: Path, passphrase: bool, as_json: bool) -> None:
    """Store an existing private key as NAME."""
    secret = click.prompt("Passphrase", hide_input=True) if passphrase else None
    key = fleet.add_key(name, private_key_path, secret)
    emit(key, as_json, f"Added key {key.name} ({key.fingerprint}).")


@keys.command("generate")
@click.argument("name")
@click.option("--comment", help="Comment in the public key [default: dc-overview:NAME].")
@json_option
@pass_fleet
def keys_generate(fleet: Fleet, name: str, comment: str | None, as_json: bool) -> None:
    """Generate a new ed25519 key NAME and print its public key."""
    key = fleet.generate_key(name, comment)
    emit(key, as_json, f"Generated key {key.name} ({key.fingerprint}). Public key for authorized_keys:\n"
         f"{key.public_key}")


@keys.command("remove")
@click.argument("name")
@json_option
@pass_fleet
def keys_remove(fleet: Fleet, name: str, as_json: bool) -> None:
    """Remove a key that no server uses, and its private key file."""
    key = fleet.remove_key(name)
    emit(key, as_json, f"Removed key {key.name}.")


COMMANDS = (servers, keys)
