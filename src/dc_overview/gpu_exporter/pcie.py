"""What the kernel knows about the GPUs on the PCI bus, read from sysfs.

Counting NVIDIA display devices here, independently of NVML, is what shows a
GPU that "fell off the bus": the PCI count stays, the NVML count drops (or
the other way round after a hot reset). The sysfs root is a parameter so
tests can build a fake tree.
"""

from __future__ import annotations

from pathlib import Path

NVIDIA_VENDOR = 0x10DE
DISPLAY_CLASS = 0x03  # PCI base class "display controller" (VGA 0x0300, 3D 0x0302)
SYSFS = Path("/sys")

AER_FILES = ("aer_dev_correctable", "aer_dev_nonfatal", "aer_dev_fatal")


def pci_devices(sysfs_root: Path = SYSFS) -> Path:
    return sysfs_root / "bus" / "pci" / "devices"


def sysfs_address(bus_id: str) -> str:
    """NVML's "00000000:3B:00.0" -> sysfs' "0000:3b:00.0"."""
    domain, bus, device_function = bus_id.strip().lower().split(":")
    return f"{domain[-4:].rjust(4, '0')}:{bus}:{device_function}"


def device_dir(bus_id: str, sysfs_root: Path = SYSFS) -> Path:
    return pci_devices(sysfs_root) / sysfs_address(bus_id)


def _read_hex(path: Path) -> int | None:
    try:
        return int(path.read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def count_nvidia_gpus(sysfs_root: Path = SYSFS) -> int | None:
    """NVIDIA display-class functions on the PCI bus; None if sysfs is unreadable."""
    try:
        entries = list(pci_devices(sysfs_root).iterdir())
    except OSError:
        return None
    count = 0
    for entry in entries:
        vendor = _read_hex(entry / "vendor")
        pci_class = _read_hex(entry / "class")
        if vendor == NVIDIA_VENDOR and pci_class is not None and pci_class >> 16 == DISPLAY_CLASS:
            count += 1
    return count


def aer_total_errors(bus_id: str, sysfs_root: Path = SYSFS) -> int | None:
    """Sum of the TOTAL_ERR_* lines of the device's AER counters.

    None where the kernel exposes no AER counters for the device (AER off,
    or no such device)."""
    total = 0
    found = False
    directory = device_dir(bus_id, sysfs_root)
    for name in AER_FILES:
        try:
            text = (directory / name).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key.startswith("TOTAL_ERR_"):
                try:
                    total += int(value)
                    found = True
                except ValueError:
                    pass
    return total if found else None
