"""The HostProbe adapter on this machine: its real name, addresses (from
iproute2) and Docker binaries; GPUs from a sysfs tree and stand-in
nvidia-smi programs made here (this machine has no NVIDIA GPU)."""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from dc_overview.adapters.host_probe import LocalHostProbe
from tests.support.require import need_executable

pytestmark = pytest.mark.integration


def pci_device(root: Path, address: str, vendor: str, kind: str) -> None:
    device = root / "sys" / "bus" / "pci" / "devices" / address
    device.mkdir(parents=True)
    (device / "vendor").write_text(vendor + "\n")
    (device / "class").write_text(kind + "\n")


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    pci_device(tmp_path, "0000:01:00.0", "0x10de", "0x030200")  # an NVIDIA 3D controller (H100-like)
    pci_device(tmp_path, "0000:02:00.0", "0x10de", "0x030000")  # an NVIDIA VGA controller (RTX-like)
    pci_device(tmp_path, "0000:02:00.1", "0x10de", "0x040300")  # its HDMI audio function: not a GPU
    pci_device(tmp_path, "0000:03:00.0", "0x1a03", "0x030000")  # the BMC's VGA: not NVIDIA
    pci_device(tmp_path, "0000:04:00.0", "0x8086", "0x020000")  # a NIC
    return tmp_path


def program(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_gpus_are_counted_by_nvidia_smi_when_it_works(sysfs: Path, tmp_path: Path):
    smi = program(tmp_path / "nvidia-smi", 'echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)"\n'
                                           'echo "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-2)"\n'
                                           'echo "GPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-3)"')
    gpus = LocalHostProbe(sys_root=sysfs, nvidia_smi=smi).gpus()
    assert (gpus.count, gpus.source, gpus.note) == (3, "nvidia-smi", None)


def test_a_failing_nvidia_smi_falls_back_to_the_pci_bus_and_says_why(sysfs: Path, tmp_path: Path):
    smi = program(tmp_path / "nvidia-smi", "echo \"NVIDIA-SMI has failed because it couldn't communicate with the "
                                           "NVIDIA driver.\" >&2; exit 9")
    gpus = LocalHostProbe(sys_root=sysfs, nvidia_smi=smi).gpus()
    assert (gpus.count, gpus.source) == (2, "pci")
    assert gpus.note == ("nvidia-smi failed (NVIDIA-SMI has failed because it couldn't communicate with the "
                         "NVIDIA driver.); counted on the PCI bus")


def test_without_nvidia_smi_the_pci_bus_is_read(sysfs: Path, tmp_path: Path):
    gpus = LocalHostProbe(sys_root=sysfs, nvidia_smi=str(tmp_path / "absent")).gpus()
    assert (gpus.count, gpus.source) == (2, "pci")
    assert gpus.note.startswith("nvidia-smi could not run")


def test_no_pci_bus_at_all_means_unknown(tmp_path: Path):
    gpus = LocalHostProbe(sys_root=tmp_path, nvidia_smi=str(tmp_path / "absent")).gpus()
    assert gpus.count is None and gpus.source == "none"


def test_this_machines_own_pci_bus_is_read():
    if not Path("/sys/bus/pci/devices").is_dir():
        pytest.skip("this machine shows no PCI bus in /sys")
    gpus = LocalHostProbe().gpus()
    assert gpus.count is not None and gpus.count >= 0
    assert gpus.source == ("nvidia-smi" if shutil.which("nvidia-smi") and gpus.note is None else "pci")


def test_addresses_are_this_machines_own_without_loopback_or_bridges():
    ip = need_executable("ip", "apt-get install -y iproute2")
    found = LocalHostProbe().addresses()
    listed = json.loads(subprocess.run([ip, "-j", "address", "show"], capture_output=True, text=True,
                                       check=True).stdout)
    everything = {info["local"] for interface in listed for info in interface.get("addr_info", [])}
    bridges = {info["local"] for interface in listed if interface["ifname"].startswith(("docker", "br-", "veth"))
               for info in interface.get("addr_info", [])}
    assert set(found) <= everything - bridges
    for text in found:
        address = ipaddress.ip_address(text)
        assert not address.is_loopback and not address.is_link_local
    versions = [ipaddress.ip_address(a).version for a in found]
    assert versions == sorted(versions)  # IPv4 first


def test_hostname_and_docker_are_as_the_system_says():
    probe = LocalHostProbe()
    assert probe.hostname() == socket.gethostname()
    assert probe.docker_installed() == bool(shutil.which("dockerd") or shutil.which("docker")
                                            or Path("/usr/bin/dockerd").exists() or Path("/usr/sbin/dockerd").exists())
