"""Where the exporters live on a worker, and their hardened systemd units.

    /opt/dc-overview/exporters/node_exporter     node_exporter (port 9100)
    /opt/dc-overview/exporters/dc-gpu-exporter   the GPU exporter (port 9835):
                                                a zipapp run by python3, or an executable
    /etc/systemd/system/dc-node-exporter.service
    /etc/systemd/system/dc-gpu-exporter.service
    /var/cache/dc-gpu-exporter/                  the GPU exporter's compiled modules (its boot.py)

The units are ours alone (``dc-`` prefix): a distribution's own
``prometheus-node-exporter.service`` is never touched.
"""

from __future__ import annotations

import attrs

from .domain import EXPORTER_PORTS, GPU_EXPORTER, NODE_EXPORTER

BASE_DIR = "/opt/dc-overview"
BIN_DIR = f"{BASE_DIR}/exporters"  # not bin/: a venv of dc-overview itself may live in /opt/dc-overview
UNIT_DIR = "/etc/systemd/system"


@attrs.frozen
class ExporterSpec:
    name: str
    port: int
    unit: str
    binary: str
    description: str
    cache_dir: str | None = None  # systemd's CacheDirectory=, under /var/cache

    @property
    def unit_path(self) -> str:
        return f"{UNIT_DIR}/{self.unit}"

    @property
    def version_path(self) -> str:
        """The first line of the binary's ``--version``, written by the
        install beside the binary, so that a check need not start it."""
        return f"{self.binary}.version"


NODE_SPEC = ExporterSpec(
    name=NODE_EXPORTER, port=EXPORTER_PORTS[NODE_EXPORTER], unit="dc-node-exporter.service",
    binary=f"{BIN_DIR}/node_exporter", description="Prometheus node_exporter",
)
GPU_SPEC = ExporterSpec(
    name=GPU_EXPORTER, port=EXPORTER_PORTS[GPU_EXPORTER], unit="dc-gpu-exporter.service",
    binary=f"{BIN_DIR}/dc-gpu-exporter", description="dc-overview GPU exporter",
    cache_dir="/var/cache/dc-gpu-exporter",
)
SPECS = (NODE_SPEC, GPU_SPEC)
SPEC_BY_NAME = {spec.name: spec for spec in SPECS}

# Shared by both units: no writable file system, no home directories, no
# privilege gain, a private /tmp, no kernel tunables/modules/logs, native
# system calls of ordinary services only, restarted when it fails.
_COMMON_HARDENING = """\
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
UMask=0077
Restart=on-failure
RestartSec=5s
"""


def _unit(spec: ExporterSpec, exec_start: str, service_lines: str) -> str:
    return f"""\
# Installed by dc-overview (`dc-overview install-exporters`); changes here are replaced.
[Unit]
Description={spec.description} (port {spec.port}, installed by dc-overview)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
{service_lines}{_COMMON_HARDENING}
[Install]
WantedBy=multi-user.target
"""


def node_exporter_unit(spec: ExporterSpec = NODE_SPEC) -> str:
    """node_exporter as a throw-away user with no capabilities and no devices."""
    return _unit(
        spec,
        f"{spec.binary} --web.listen-address=:{spec.port}",
        "DynamicUser=yes\n"
        "CapabilityBoundingSet=\n"
        "AmbientCapabilities=\n"
        "PrivateDevices=yes\n"
        "ProtectProc=invisible\n"
        "MemoryDenyWriteExecute=yes\n"
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK\n"
        "SystemCallFilter=~@privileged @resources\n",
    )


def gpu_exporter_unit(spec: ExporterSpec = GPU_SPEC, *, zipapp: bool = True, simulate: int | None = None) -> str:
    """The GPU exporter needs the NVIDIA device nodes (so no PrivateDevices)
    and, for the VRAM/hotspot register reads through /dev/mem, root with the
    one capability CAP_SYS_RAWIO; every other capability is dropped. Its
    one writable folder is the cache of its compiled modules (the install's
    ``--version`` run usually fills it first)."""
    command = f"/usr/bin/python3 {spec.binary}" if zipapp else spec.binary
    command += f" --port {spec.port}"
    if simulate:
        command += f" --simulate {int(simulate)}"
    return _unit(
        spec,
        command,
        "CapabilityBoundingSet=CAP_SYS_RAWIO\n"
        "AmbientCapabilities=\n"
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK\n"
        + (f"CacheDirectory={spec.cache_dir.removeprefix('/var/cache/')}\n" if spec.cache_dir else ""),
    )

