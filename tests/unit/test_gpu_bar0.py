"""The BAR0 register reader, on a regular file standing in for /dev/mem."""

from __future__ import annotations

import logging
import mmap
import struct
from pathlib import Path

import pytest

from dc_overview.gpu_exporter.bar0 import (
    HOTSPOT_OFFSET,
    VRAM_OFFSET,
    VRAM_OFFSET_GA104,
    GddrThermals,
    RegisterReader,
    bar0_address,
    hotspot_celsius,
    vram_celsius,
    vram_offset,
)

BUS_ID = "00000000:2B:00.0"
BAR0 = 16 * mmap.PAGESIZE  # not at the start of the file: the mapping needs the right offset
RTX_3090 = 0x2204
RTX_3070 = 0x2484  # GA104


def fake_dev_mem(path: Path, registers: dict[int, int]) -> Path:
    size = BAR0 + HOTSPOT_OFFSET + mmap.PAGESIZE
    data = bytearray(size)
    for address, value in registers.items():
        struct.pack_into("<I", data, address, value)
    path.write_bytes(bytes(data))
    return path


def fake_sysfs(root: Path, bar0: int = BAR0) -> Path:
    device = root / "bus/pci/devices/0000:2b:00.0"
    device.mkdir(parents=True)
    (device / "resource").write_text(
        f"0x{bar0:016x} 0x{bar0 + 0xFFFFFF:016x} 0x0000000000040200\n"
        "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
    )
    return root


def test_reads_32_bit_words_at_page_aligned_mappings_of_the_offset(tmp_path: Path) -> None:
    mem = fake_dev_mem(tmp_path / "mem", {BAR0 + VRAM_OFFSET: 0xDEADBEEF, BAR0 + HOTSPOT_OFFSET: 0x00004A00})
    reader = RegisterReader(mem)
    try:
        assert reader.read_u32(BAR0 + VRAM_OFFSET) == 0xDEADBEEF
        assert reader.read_u32(BAR0 + HOTSPOT_OFFSET) == 0x4A00
        assert reader.read_u32(BAR0 + VRAM_OFFSET + 4) == 0
        with pytest.raises(ValueError):
            reader.read_u32(BAR0 + VRAM_OFFSET + 2)
    finally:
        reader.close()


def test_temperature_formulas() -> None:
    assert vram_celsius(0x00000A80) == 84.0  # 0xA80 / 0x20
    assert vram_celsius(0x1234_5A90) == 0xA90 / 0x20  # only the low 12 bits count
    assert vram_celsius(0xFFFFFFFF) is None  # a device that no longer answers
    assert vram_celsius(0) is None
    assert hotspot_celsius(0x00005100) == 81.0
    assert hotspot_celsius(0x00007F00) is None  # 0x7f and above are not readings
    assert hotspot_celsius(0xFFFFFFFF) is None
    assert vram_offset(RTX_3070) == VRAM_OFFSET_GA104
    assert vram_offset(RTX_3090) == VRAM_OFFSET


def test_bar0_address_comes_from_the_first_resource_line(tmp_path: Path) -> None:
    assert bar0_address(BUS_ID, fake_sysfs(tmp_path, bar0=0xFB000000)) == 0xFB000000
    assert bar0_address("00000000:99:00.0", tmp_path) is None


def test_gddr_thermals_read_vram_and_hotspot(tmp_path: Path) -> None:
    mem = fake_dev_mem(tmp_path / "mem", {BAR0 + VRAM_OFFSET: 0xA80, BAR0 + HOTSPOT_OFFSET: 0x5100})
    thermals = GddrThermals(mem, fake_sysfs(tmp_path / "sys"))
    try:
        assert thermals.read(BUS_ID, RTX_3090) == (84.0, 81.0)
        assert thermals.active
    finally:
        thermals.close()


def test_ga104_uses_its_own_vram_offset(tmp_path: Path) -> None:
    mem = fake_dev_mem(tmp_path / "mem", {BAR0 + VRAM_OFFSET_GA104: 0x8C0, BAR0 + VRAM_OFFSET: 0xA80})
    thermals = GddrThermals(mem, fake_sysfs(tmp_path / "sys"))
    try:
        vram, hotspot = thermals.read(BUS_ID, RTX_3070)
        assert (vram, hotspot) == (0x8C0 / 0x20, None)
    finally:
        thermals.close()


def test_unreadable_memory_device_switches_off_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        thermals = GddrThermals(tmp_path / "no-such-mem", fake_sysfs(tmp_path / "sys"))
    assert not thermals.active
    assert thermals.read(BUS_ID, RTX_3090) == (None, None)
    assert "VRAM and hotspot register reads are off" in caplog.text


def test_a_refused_mapping_switches_off_for_good(tmp_path: Path) -> None:
    too_short = tmp_path / "mem"
    too_short.write_bytes(bytes(mmap.PAGESIZE))  # BAR0 lies beyond its end: mapping fails
    thermals = GddrThermals(too_short, fake_sysfs(tmp_path / "sys"))
    assert thermals.read(BUS_ID, RTX_3090) == (None, None)
    assert not thermals.active
