"""Import servers and SSH keys from ipmi-monitor, the sister product.

Servers are monitored at their OS address (``server_ip``); the BMC address is
kept as ``bmc_ip``. The import is all or nothing: every key is parsed and
every server checked before anything is written. What is already here is
reported, never doubled.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import errors
from .domain import Server, SshKey, check_name, fingerprint
from .inventory import ImportReport
from .ports import Deps, KeyMaterial
from .targets import write_targets


async def detect_ipmi_monitor(deps: Deps) -> Path | None:
    """The first ipmi-monitor database found on this host, if any."""
    return deps.ipmi_monitor.locate()


def safe_name(text: str, fallback: str) -> str:
    """A valid dc-overview name made from a name typed into ipmi-monitor."""
    slug = re.sub(r"[^\w.\-]+", "-", text.strip(), flags=re.UNICODE).strip("-._")[:64]
    try:
        return check_name(slug)
    except errors.InvalidName:
        return fallback


async def import_ipmi_monitor(deps: Deps, path: Path | None = None) -> ImportReport:
    if path is None:
        path = await detect_ipmi_monitor(deps)
        if path is None:
            raise errors.IpmiMonitorNotFound([str(p) for p in deps.ipmi_monitor.candidates()])
    data = deps.ipmi_monitor.read(Path(path))
    source = str(path)

    existing_keys = {k.fingerprint: k for k in deps.storage.list_keys()}
    taken_key_names = {k.name for k in existing_keys.values()}
    new_keys: list[tuple[str, KeyMaterial, str]] = []  # (name, material, fingerprint)
    key_name_by_id: dict[int, str] = {}
    keys_unchanged: list[str] = []
    problems: list[tuple[str, str, str]] = []

    def take_key(label: str, fallback: str, private_key: str, where: str) -> str | None:
        try:
            material = deps.keys.load(private_key)
        except errors.InvalidInput as exc:
            problems.append((where, "key_content", exc.message.split(": ", 1)[-1]))
            return None
        print_ = fingerprint(material.public_key)
        if print_ in existing_keys:
            keys_unchanged.append(existing_keys[print_].name)
            return existing_keys[print_].name
        for name, _, known in new_keys:
            if known == print_:
                return name
        name = base = safe_name(label, fallback)
        n = 2
        while name in taken_key_names:
            name, n = f"{base[:60]}-{n}", n + 1
        taken_key_names.add(name)
        new_keys.append((name, material, print_))
        return name

    for key in data.keys:
        name = take_key(key.name, f"ipmi-key-{key.id}", key.private_key, f"{source}: ssh_key id {key.id}")
        if name:
            key_name_by_id[key.id] = name

    report_skipped: list[tuple[str, str]] = []
    to_add: list[Server] = []
    unchanged: list[str] = []
    names_here = {s.name: s for s in deps.storage.list_servers()}
    for item in data.servers:
        where = f"{source}: server {item.name!r} (bmc_ip {item.bmc_ip})"
        if item.status == "deprecated":
            report_skipped.append((item.name, "deprecated in ipmi-monitor"))
            continue
        if not item.server_ip:
            report_skipped.append((item.name, "no OS address (server_ip) in ipmi-monitor"))
            continue
        key_name = None
        if item.ssh_key_id is not None:
            key_name = key_name_by_id.get(item.ssh_key_id)
        elif item.inline_key:
            key_name = take_key(f"{item.name}-key", f"ipmi-server-key-{len(new_keys)}", item.inline_key, where)
        try:
            server = Server(
                name=safe_name(item.name, "ipmi-" + item.bmc_ip.replace(":", "-").replace(".", "-")),
                address=item.server_ip,
                ssh_user=item.ssh_user or "root",
                ssh_port=item.ssh_port or 22,
                ssh_key=key_name,
                bmc_ip=item.bmc_ip,
            )
        except errors.InvalidInput as exc:
            problems.append((where, exc.field, exc.message.split(": ", 1)[-1]))
            continue
        same_address = deps.storage.find_server_by_address(server.address)
        if same_address is not None:
            unchanged.append(same_address.name)
            continue
        if server.name in names_here or any(s.name == server.name for s in to_add):
            report_skipped.append((item.name, f"the name {server.name!r} is taken by a server at another address"))
            continue
        to_add.append(server)
    if problems:
        raise errors.ImportProblem(source, problems)

    written: list[str] = []
    added: list[Server] = []
    try:
        with deps.storage.transaction():
            for name, material, print_ in new_keys:
                path = deps.storage.write_private_key(name, material.private_key)
                written.append(str(path))
                deps.storage.add_key(
                    SshKey(name=name, public_key=material.public_key, fingerprint=print_, private_key_path=str(path))
                )
            for server in to_add:
                added.append(deps.storage.add_server(server))
    except BaseException:
        for file in written:
            deps.storage.delete_private_key(file)
        raise
    if added:
        write_targets(deps)
    return ImportReport(
        added=tuple(added),
        unchanged=tuple(unchanged),
        keys_added=tuple(n for n, _, _ in new_keys),
        keys_unchanged=tuple(sorted(set(keys_unchanged))),
        skipped=tuple(report_skipped),
    )
