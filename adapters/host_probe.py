"""The HostProbe port on this machine: its name, addresses, GPUs and whether
Docker is installed. ``sys_root`` and ``nvidia_smi`` can point elsewhere
(tests give a sysfs tree of their own and a stand-in nvidia-smi)."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

from dc_overview.ports import GpuInfo

NVIDIA_VENDOR = "0x10de"
DISPLAY_CLASS = "0x03"  # VGA (0x0300) and 3D controllers (0x0302): the GPUs, not their audio functions
COMMAND_TIMEOUT_S = 15.0
# container and VM bridges: not where other machines reach this one
_VIRTUAL = ("docker", "br-", "veth", "virbr", "cni", "flannel", "cali", "vxlan")
_DOCKER_PLACES = ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/snap/bin")


class LocalHostProbe:
    def __init__(self, *, sys_root: str | Path = "/", nvidia_smi: str | None = None,
                 ip_command: str | None = None) -> None:
        self.sys_root = Path(sys_root)
        self.nvidia_smi = nvidia_smi
        self.ip_command = ip_command

    def hostname(self) -> str:
        return socket.gethostname()

    def addresses(self) -> list[str]:
        found = self._ip_addresses()
        if not found:
            try:
                found = [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)]
            except OSError:
                found = []
        usable = []
        for text in dict.fromkeys(found):
            try:
                address = ipaddress.ip_address(text.split("%")[0])
            except ValueError:
                continue
            if not (address.is_loopback or address.is_link_local or address.is_unspecified):
                usable.append(address)
        usable.sort(key=lambda a: a.version)
        return [str(a) for a in usable]

    def _ip_addresses(self) -> list[str]:
        ip = self.ip_command or shutil.which("ip") or ("/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else None)
        if not ip:
            return []
        try:
            done = subprocess.run([ip, "-j", "address", "show"], capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT_S, check=False)
            interfaces = json.loads(done.stdout) if done.returncode == 0 else []
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return []
        found = []
        for interface in interfaces:
            if "LOOPBACK" in interface.get("flags", []) or str(interface.get("ifname", "")).startswith(_VIRTUAL):
                continue
            for info in interface.get("addr_info", []):
                if info.get("local"):
                    found.append(str(info["local"]))
        return found

    def gpus(self) -> GpuInfo:
        smi = self.nvidia_smi or shutil.which("nvidia-smi")
        note = None
        if smi:
            try:
                done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                                      check=False)
                if done.returncode == 0:
                    return GpuInfo(sum(1 for line in done.stdout.splitlines() if line.startswith("GPU ")),
                                   "nvidia-smi")
                first = (done.stderr or done.stdout).strip().splitlines()[:1]
                note = f"nvidia-smi failed ({first[0][:120] if first else f'exit {done.returncode}'})"
            except subprocess.TimeoutExpired:
                note = f"nvidia-smi did not answer within {COMMAND_TIMEOUT_S:g}s"
            except OSError as exc:
                note = f"nvidia-smi could not run ({exc.strerror})"
        count = self._pci_gpus()
        if count is None:
            return GpuInfo(None, "none", note or "no nvidia-smi and no PCI device list")
        return GpuInfo(count, "pci", note + "; counted on the PCI bus" if note else None)

    def _pci_gpus(self) -> int | None:
        devices = self.sys_root / "sys" / "bus" / "pci" / "devices"
        if not devices.is_dir():
            return None
        count = 0
        for device in devices.iterdir():
            try:
                vendor = (device / "vendor").read_text().strip().lower()
                kind = (device / "class").read_text().strip().lower()
            except OSError:
                continue
            if vendor == NVIDIA_VENDOR and kind.startswith(DISPLAY_CLASS):
                count += 1
        return count

    def docker_installed(self) -> bool:
        if shutil.which("dockerd") or shutil.which("docker"):
            return True
        return any(os.access(f"{place}/{name}", os.X_OK) for place in _DOCKER_PLACES for name in ("dockerd", "docker"))


__all__ = ["LocalHostProbe"]
