"""PCI facts from a fake sysfs tree: the NVIDIA GPU count and AER totals."""

from __future__ import annotations

from pathlib import Path

from dc_overview.gpu_exporter.pcie import aer_total_errors, count_nvidia_gpus, sysfs_address


def add_device(root: Path, address: str, vendor: str, pci_class: str, **files: str) -> Path:
    device = root / "bus/pci/devices" / address
    device.mkdir(parents=True)
    (device / "vendor").write_text(vendor + "\n")
    (device / "class").write_text(pci_class + "\n")
    for name, text in files.items():
        (device / name).write_text(text)
    return device


def test_counts_nvidia_display_functions_only(tmp_path: Path) -> None:
    add_device(tmp_path, "0000:01:00.0", "0x10de", "0x030000")  # VGA GPU
    add_device(tmp_path, "0000:01:00.1", "0x10de", "0x040300")  # its HDMI audio function
    add_device(tmp_path, "0000:41:00.0", "0x10de", "0x030200")  # 3D controller (datacenter GPU)
    add_device(tmp_path, "0000:02:00.0", "0x1a03", "0x030000")  # the BMC's VGA
    add_device(tmp_path, "0000:03:00.0", "0x10de", "0x068000")  # an NVIDIA bridge
    assert count_nvidia_gpus(tmp_path) == 2


def test_no_pci_tree_means_unknown_not_zero(tmp_path: Path) -> None:
    assert count_nvidia_gpus(tmp_path) is None
    (tmp_path / "bus/pci/devices").mkdir(parents=True)
    assert count_nvidia_gpus(tmp_path) == 0


def test_nvml_bus_ids_map_to_sysfs_addresses() -> None:
    assert sysfs_address("00000000:3B:00.0") == "0000:3b:00.0"
    assert sysfs_address("00000001:C1:00.0") == "0001:c1:00.0"
    assert sysfs_address("0000:3b:00.0") == "0000:3b:00.0"


def test_aer_totals_are_summed_over_the_three_kinds(tmp_path: Path) -> None:
    add_device(
        tmp_path,
        "0000:3b:00.0",
        "0x10de",
        "0x030200",
        aer_dev_correctable="RxErr 3\nBadTLP 1\nTOTAL_ERR_COR 4\n",
        aer_dev_nonfatal="Undefined 0\nTOTAL_ERR_NONFATAL 2\n",
        aer_dev_fatal="Undefined 0\nTOTAL_ERR_FATAL 0\n",
    )
    assert aer_total_errors("00000000:3B:00.0", tmp_path) == 6


def test_no_aer_counters_means_no_reading(tmp_path: Path) -> None:
    add_device(tmp_path, "0000:3b:00.0", "0x10de", "0x030200")
    assert aer_total_errors("00000000:3B:00.0", tmp_path) is None
