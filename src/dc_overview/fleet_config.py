"""Export the fleet as ``fleet_config.yaml``, the file ipmi-monitor's
quickstart reads to import servers and SSH credentials from dc-overview.

Shape (compatible with its reader, which uses ``ssh`` and ``servers[].name``
/ ``server_ip``; the other per-server keys are extra detail)::

    ssh:
      username: root
      port: 22
      key_path: /etc/dc-overview/ssh_keys/fleet
    servers:
      - name: gpu-01
        server_ip: 10.0.0.11
        bmc_ip: 10.0.1.11
        ssh_user: root
        ssh_port: 22
        key_path: /etc/dc-overview/ssh_keys/fleet
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import yaml

from .fsutil import atomic_write
from .ports import Deps

FLEET_CONFIG_FILE = "fleet_config.yaml"


async def fleet_config(deps: Deps) -> dict:
    servers = deps.storage.list_servers()
    keys = {k.name: k.private_key_path for k in deps.storage.list_keys()}
    settings = deps.storage.load_settings()
    common_user = Counter(s.ssh_user for s in servers).most_common(1)
    common_port = Counter(s.ssh_port for s in servers).most_common(1)
    default_key = settings.get("default_ssh_key") or next(
        (name for name, _ in Counter(s.ssh_key for s in servers if s.ssh_key).most_common(1)), None
    )
    ssh: dict = {
        "username": common_user[0][0] if common_user else settings.get("default_ssh_user", "root"),
        "port": common_port[0][0] if common_port else 22,
    }
    if default_key in keys:
        ssh["key_path"] = keys[default_key]
    entries = []
    for server in servers:
        entry: dict = {"name": server.name, "server_ip": server.address}
        if server.bmc_ip:
            entry["bmc_ip"] = server.bmc_ip
        entry["ssh_user"] = server.ssh_user
        entry["ssh_port"] = server.ssh_port
        if server.ssh_key in keys:
            entry["key_path"] = keys[server.ssh_key]
        if server.labels:
            entry["labels"] = dict(server.labels)
        entries.append(entry)
    return {"ssh": ssh, "servers": entries}


async def export_fleet_config(deps: Deps, destination: Path | None = None) -> str:
    """The YAML text; also written atomically to ``destination`` when given."""
    text = yaml.safe_dump(await fleet_config(deps), sort_keys=False, allow_unicode=True)
    if destination is not None:
        atomic_write(Path(destination), text, mode=0o640)
    return text
