"""VRAM and hotspot temperatures of GDDR6/6X cards, read from GPU registers.

NVML reports a memory temperature only for HBM cards (field 82). On GDDR6/6X
cards (Ampere and Ada) the VRAM and hotspot temperatures sit in registers of
the GPU's first PCI region, BAR0. A root process can map that region through
/dev/mem when the kernel allows it (boot option ``iomem=relaxed``). When it
cannot, these readings are simply off: the series are left out.

Register layout (from public reverse engineering):
- VRAM: BAR0 + 0xE2A8 (0xEE50 on GA104), degrees C = (reg & 0xfff) / 0x20
- hotspot: BAR0 + 0x2046C, degrees C = (reg >> 8) & 0xff, valid below 0x7f
"""

from __future__ import annotations

import logging
import mmap
import os
from pathlib import Path

from .pcie import SYSFS, device_dir

log = logging.getLogger(__name__)

DEV_MEM = Path("/dev/mem")
VRAM_OFFSET = 0xE2A8
VRAM_OFFSET_GA104 = 0xEE50
HOTSPOT_OFFSET = 0x2046C
GA104_DEVICE_IDS = range(0x2480, 0x2500)  # PCI device ids of the GA104 chip family
ALL_ONES = 0xFFFFFFFF  # what a read returns from a device that no longer answers


def bar0_address(bus_id: str, sysfs_root: Path = SYSFS) -> int | None:
    """Physical start of BAR0: the first field of the first line of the
    device's sysfs ``resource`` file."""
    try:
        first_line = (device_dir(bus_id, sysfs_root) / "resource").read_text().splitlines()[0]
        start = int(first_line.split()[0], 16)
    except (OSError, IndexError, ValueError):
        return None
    return start or None


def vram_offset(pci_device_id: int) -> int:
    return VRAM_OFFSET_GA104 if pci_device_id in GA104_DEVICE_IDS else VRAM_OFFSET


def vram_celsius(register: int) -> float | None:
    if register == ALL_ONES:
        return None
    celsius = (register & 0xFFF) / 0x20
    return celsius if 0 < celsius < 0x7F else None


def hotspot_celsius(register: int) -> float | None:
    if register == ALL_ONES:
        return None
    celsius = (register >> 8) & 0xFF
    return float(celsius) if 0 < celsius < 0x7F else None


class RegisterReader:
    """32-bit reads of physical memory through a memory device such as /dev/mem.

    Each page is mapped once and kept. Used from one thread only."""

    def __init__(self, path: Path = DEV_MEM) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_SYNC)
        self._pages: dict[int, mmap.mmap] = {}

    def read_u32(self, address: int) -> int:
        if address % 4:
            raise ValueError(f"register address {address:#x} is not 32-bit aligned")
        page = address - address % mmap.PAGESIZE
        mapped = self._pages.get(page)
        if mapped is None:
            mapped = mmap.mmap(self._fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
            self._pages[page] = mapped
        offset = address - page
        # A cast to unsigned int reads the register as one 32-bit word (native
        # byte order, little-endian like the GPU) instead of byte by byte.
        with memoryview(mapped) as view, view[offset : offset + 4] as chunk, chunk.cast("I") as word:
            return word[0]

    def close(self) -> None:
        for mapped in self._pages.values():
            mapped.close()
        self._pages.clear()
        os.close(self._fd)


class GddrThermals:
    """VRAM and hotspot temperatures for GDDR cards, or nothing.

    Opens the memory device once. The first failure (no root, /dev/mem
    missing, mapping refused by the kernel) is logged once and switches the
    register reads off for good."""

    def __init__(self, mem_path: Path = DEV_MEM, sysfs_root: Path = SYSFS) -> None:
        self._sysfs_root = sysfs_root
        self._mem_path = mem_path
        self._reader: RegisterReader | None = None
        try:
            self._reader = RegisterReader(mem_path)
        except OSError as error:
            self._switch_off(f"cannot open {mem_path}: {error.strerror}")

    @property
    def active(self) -> bool:
        return self._reader is not None

    def read(self, bus_id: str, pci_device_id: int) -> tuple[float | None, float | None]:
        """(vram, hotspot) in degrees C; None for what cannot be read."""
        if self._reader is None:
            return None, None
        base = bar0_address(bus_id, self._sysfs_root)
        if base is None:
            return None, None
        try:
            vram = vram_celsius(self._reader.read_u32(base + vram_offset(pci_device_id)))
            hotspot = hotspot_celsius(self._reader.read_u32(base + HOTSPOT_OFFSET))
        except (OSError, ValueError) as error:
            self._switch_off(f"cannot map {self._mem_path} at BAR0 of {bus_id}: {error}")
            return None, None
        return vram, hotspot

    def _switch_off(self, reason: str) -> None:
        log.info(
            "VRAM and hotspot register reads are off (%s); they need root and kernel option iomem=relaxed",
            reason,
        )
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
