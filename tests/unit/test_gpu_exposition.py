"""The exporter's exposition, checked as exact text, over a hand-written
fake GPU source: several GPUs, unsupported readings, a GPU disappearing,
XID events, a failing collection."""

from __future__ import annotations

import platform
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from dc_overview.gpu_exporter.metrics import SnapshotCollector
from dc_overview.gpu_exporter.model import STATE_OK, STATE_VM, GpuIdentity, GpuSample, Snapshot
from dc_overview.gpu_exporter.server import Exposition
from dc_overview.gpu_exporter.source import GpuSource, HostOnlySource, Sampler
from dc_overview.gpu_exporter.xid import XidTally

PY = platform.python_version()
GPU0 = GpuIdentity(0, "GPU-aaaa", "00000000:01:00.0", "NVIDIA H100 80GB HBM3", minor_number=0)
GPU1 = GpuIdentity(1, "GPU-bbbb", "00000000:41:00.0", "NVIDIA H100 80GB HBM3", minor_number=3)


def labels(identity: GpuIdentity, driver: str = "550.54.15") -> str:
    return (
        f'DCGM_FI_DRIVER_VERSION="{driver}",Hostname="node7",UUID="{identity.uuid}",'
        f'device="nvidia{identity.minor_number}",gpu="{identity.index}",'
        f'modelName="{identity.model_name}",pci_bus_id="{identity.pci_bus_id}"'
    )


L0, L1 = labels(GPU0), labels(GPU1)


class FakeGpuSource:
    """Hands out the snapshots (or exceptions) it was given, one per collection."""

    name = "nvml"

    def __init__(self, *results: Snapshot | Exception) -> None:
        self.results = list(results)
        self.tally = XidTally()

    def start(self) -> None:
        pass

    def collect(self) -> Snapshot:
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        pass


def sampler_for(source: GpuSource) -> Sampler:
    ticks = iter(range(100))
    return Sampler(source, interval=5, wall_clock=lambda: 1_700_000_000.0, timer=lambda: next(ticks) * 0.25)


def scrape(sampler: Sampler, source_name: str = "nvml") -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: sampler.latest, source_name, "2.0.0", hostname="node7"))
    return generate_latest(registry).decode()


def self_metrics(errors_total: float, duration: str = "0.25") -> str:
    return f"""\
# HELP dc_exporter_last_collect_timestamp_seconds When the last collection finished (Unix time).
# TYPE dc_exporter_last_collect_timestamp_seconds gauge
dc_exporter_last_collect_timestamp_seconds 1.7e+09
# HELP dc_exporter_collect_duration_seconds How long the last collection took.
# TYPE dc_exporter_collect_duration_seconds gauge
dc_exporter_collect_duration_seconds {duration}
# HELP dc_exporter_collect_errors_total Failed GPU reads since start (unsupported readings do not count).
# TYPE dc_exporter_collect_errors_total counter
dc_exporter_collect_errors_total {errors_total}
"""


def build_info(source: str = "nvml") -> str:
    return f"""\
# HELP dc_exporter_build_info Exporter version and where its GPU readings come from.
# TYPE dc_exporter_build_info gauge
dc_exporter_build_info{{python="{PY}",source="{source}",version="2.0.0"}} 1.0
"""


def test_two_gpus_with_some_readings_unsupported_exact_text() -> None:
    busy = GpuSample(
        GPU0,
        error_state=STATE_OK,
        gpu_temp=61,
        memory_temp=70,
        vram_temp=70,
        power_w=312.5,
        energy_mj=123456789012,
        gpu_util=97,
        fb_used_mib=40960,
        fb_free_mib=40000,
        ecc_uncorrected_volatile=0,
        remapped_rows_correctable=2,
        throttle_reasons=0x4 | 0x40,
        last_xid=0,
    )
    # GPU 1 supports far less: everything it does not report is simply absent.
    sparse = GpuSample(GPU1, error_state=STATE_VM, gpu_temp=35, fan_speed_pct=30)
    source = FakeGpuSource(
        Snapshot(
            gpus=(busy, sparse), driver_version="550.54.15", nvml_gpu_count=2, pcie_gpu_count=2, errors=1
        )
    )
    sampler = sampler_for(source)
    sampler.collect_once()

    expected = f"""\
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{{{L0}}} 61.0
DCGM_FI_DEV_GPU_TEMP{{{L1}}} 35.0
# HELP DCGM_FI_DEV_MEMORY_TEMP Memory temperature (in C), HBM cards.
# TYPE DCGM_FI_DEV_MEMORY_TEMP gauge
DCGM_FI_DEV_MEMORY_TEMP{{{L0}}} 70.0
# HELP DCGM_FI_DEV_VRAM_TEMP VRAM temperature (in C): NVML on HBM, GPU register on GDDR6/6X.
# TYPE DCGM_FI_DEV_VRAM_TEMP gauge
DCGM_FI_DEV_VRAM_TEMP{{{L0}}} 70.0
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{{{L0}}} 312.5
# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since the driver was loaded (in mJ).
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION untyped
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{L0}}} 1.23456789012e+11
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{{{L0}}} 97.0
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{{{L0}}} 40960.0
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{{{L0}}} 40000.0
# HELP DCGM_FI_DEV_FAN_SPEED Fan speed (in %).
# TYPE DCGM_FI_DEV_FAN_SPEED gauge
DCGM_FI_DEV_FAN_SPEED{{{L1}}} 30.0
# HELP DCGM_FI_DEV_CLOCK_THROTTLE_REASONS Clock throttle reasons (NVML bitmask).
# TYPE DCGM_FI_DEV_CLOCK_THROTTLE_REASONS gauge
DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{{{L0}}} 68.0
# HELP DCGM_FI_DEV_ECC_DBE_VOL_TOTAL Uncorrected (double-bit) ECC errors since the driver was loaded.
# TYPE DCGM_FI_DEV_ECC_DBE_VOL_TOTAL untyped
DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{L0}}} 0.0
# HELP DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS Rows remapped for correctable errors.
# TYPE DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS untyped
DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS{{{L0}}} 2.0
# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error seen (0: none since start).
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{{{L0}}} 0.0
# HELP DCGM_FI_DEV_CLOCKS_THROTTLE_REASON 1 if the clocks are held back for this reason.
# TYPE DCGM_FI_DEV_CLOCKS_THROTTLE_REASON gauge
DCGM_FI_DEV_CLOCKS_THROTTLE_REASON{{{L0},reason="gpu_idle"}} 0.0
DCGM_FI_DEV_CLOCKS_THROTTLE_REASON{{{L0},reason="applications_clocks_setting"}} 0.0
DCGM_FI_DEV_CLOCKS_THROTTLE_REASON{{{L0},reason="sw_power_cap"}} 1.0
DCGM_FI_DEV_CLOCKS_THROTTLE_REASON{{{L0},reason="hw_slowdown"}} 0.0
DCGM_FI_DEV_CLOCKS_THROTTLE_REASON{{{L0},reason="sync_boost"}} 0.0
DCGM_FI_DEV_CLOCKS_THROTTLE_REASON{{{L0},reason="sw_thermal_slowdown"}} 0.0
DCGM_FI_DEV_CLOCKS_THROTTLE_REASON{{{L0},reason="hw_thermal_slowdown"}} 1.0
DCGM_FI_DEV_CLOCKS_THROTTLE_REASON{{{L0},reason="hw_power_brake_slowdown"}} 0.0
DCGM_FI_DEV_CLOCKS_THROTTLE_REASON{{{L0},reason="display_clock_setting"}} 0.0
# HELP GPU_ERROR_STATE GPU state: 1 OK, 2 error, 0 unknown, 3 in a VM.
# TYPE GPU_ERROR_STATE gauge
GPU_ERROR_STATE{{{L0}}} 1.0
GPU_ERROR_STATE{{{L1}}} 3.0
# HELP dc_exporter_gpu_up 1 if the GPU answered the last collection.
# TYPE dc_exporter_gpu_up gauge
dc_exporter_gpu_up{{{L0}}} 1.0
dc_exporter_gpu_up{{{L1}}} 1.0
# HELP DCXP_GPU_COUNT NVIDIA GPUs seen on the PCI bus (pcie) and through the driver (nvml).
# TYPE DCXP_GPU_COUNT gauge
DCXP_GPU_COUNT{{Hostname="node7",type="pcie"}} 2.0
DCXP_GPU_COUNT{{Hostname="node7",type="nvml"}} 2.0
{build_info()}{self_metrics(1.0)}"""
    assert scrape(sampler) == expected


def test_a_gpu_that_disappears_stays_listed_as_down_without_readings() -> None:
    both = Snapshot(
        gpus=(
            GpuSample(GPU0, error_state=STATE_OK, gpu_temp=50),
            GpuSample(GPU1, error_state=STATE_OK, gpu_temp=52),
        ),
        driver_version="550.54.15",
        nvml_gpu_count=2,
        pcie_gpu_count=2,
    )
    one_left = Snapshot(
        gpus=(GpuSample(GPU0, error_state=STATE_OK, gpu_temp=51),),
        driver_version="550.54.15",
        nvml_gpu_count=1,
        pcie_gpu_count=2,
    )
    sampler = sampler_for(FakeGpuSource(both, one_left))
    sampler.collect_once()
    sampler.collect_once()

    expected = f"""\
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{{{L0}}} 51.0
# HELP GPU_ERROR_STATE GPU state: 1 OK, 2 error, 0 unknown, 3 in a VM.
# TYPE GPU_ERROR_STATE gauge
GPU_ERROR_STATE{{{L0}}} 1.0
GPU_ERROR_STATE{{{L1}}} 0.0
# HELP dc_exporter_gpu_up 1 if the GPU answered the last collection.
# TYPE dc_exporter_gpu_up gauge
dc_exporter_gpu_up{{{L0}}} 1.0
dc_exporter_gpu_up{{{L1}}} 0.0
# HELP DCXP_GPU_COUNT NVIDIA GPUs seen on the PCI bus (pcie) and through the driver (nvml).
# TYPE DCXP_GPU_COUNT gauge
DCXP_GPU_COUNT{{Hostname="node7",type="pcie"}} 2.0
DCXP_GPU_COUNT{{Hostname="node7",type="nvml"}} 1.0
{build_info()}{self_metrics(0.0)}"""
    assert scrape(sampler) == expected


def test_repeated_xids_are_counted_per_code() -> None:
    source = FakeGpuSource()
    for xid in (79, 13, 79):
        source.tally.record(1, xid)

    def snapshot() -> Snapshot:
        gpus = tuple(
            GpuSample(
                gpu,
                error_state=STATE_OK,
                last_xid=source.tally.last(gpu.index),
                xid_counts=source.tally.counts(gpu.index),
            )
            for gpu in (GPU0, GPU1)
        )
        return Snapshot(gpus=gpus, driver_version="550.54.15")

    source.results = [snapshot()]
    sampler = sampler_for(source)
    sampler.collect_once()

    expected = f"""\
# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error seen (0: none since start).
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{{{L0}}} 0.0
DCGM_FI_DEV_XID_ERRORS{{{L1}}} 79.0
# HELP DCGM_FI_DEV_XID_ERRORS_TOTAL XID errors seen since the exporter started, per XID code.
# TYPE DCGM_FI_DEV_XID_ERRORS_TOTAL untyped
DCGM_FI_DEV_XID_ERRORS_TOTAL{{{L1},xid="13"}} 1.0
DCGM_FI_DEV_XID_ERRORS_TOTAL{{{L1},xid="79"}} 2.0
# HELP GPU_ERROR_STATE GPU state: 1 OK, 2 error, 0 unknown, 3 in a VM.
# TYPE GPU_ERROR_STATE gauge
GPU_ERROR_STATE{{{L0}}} 1.0
GPU_ERROR_STATE{{{L1}}} 1.0
# HELP dc_exporter_gpu_up 1 if the GPU answered the last collection.
# TYPE dc_exporter_gpu_up gauge
dc_exporter_gpu_up{{{L0}}} 1.0
dc_exporter_gpu_up{{{L1}}} 1.0
{build_info()}{self_metrics(0.0)}"""
    assert scrape(sampler) == expected


def test_a_failing_collection_counts_an_error_marks_gpus_down_and_recovers() -> None:
    good = Snapshot(gpus=(GpuSample(GPU0, error_state=STATE_OK, gpu_temp=40),), driver_version="550.54.15")
    sampler = sampler_for(FakeGpuSource(good, RuntimeError("driver went away"), good))

    sampler.collect_once()
    failed = sampler.collect_once()
    assert [(gpu.identity, gpu.up, gpu.gpu_temp) for gpu in failed.gpus] == [(GPU0, False, None)]
    assert failed.errors_total == 1
    assert "dc_exporter_gpu_up{" + L0 + "} 0.0" in scrape(sampler)
    assert "DCGM_FI_DEV_GPU_TEMP" not in scrape(sampler)

    recovered = sampler.collect_once()
    assert [(gpu.up, gpu.gpu_temp) for gpu in recovered.gpus] == [(True, 40)]
    assert "dc_exporter_collect_errors_total 1.0" in scrape(sampler)


def test_host_without_nvml_serves_only_host_level_series(tmp_path: Path) -> None:
    gpu = tmp_path / "bus/pci/devices/0000:01:00.0"
    gpu.mkdir(parents=True)
    (gpu / "vendor").write_text("0x10de\n")
    (gpu / "class").write_text("0x030200\n")
    sampler = sampler_for(HostOnlySource(sysfs_root=tmp_path))
    sampler.collect_once()

    expected = f"""\
# HELP DCXP_GPU_COUNT NVIDIA GPUs seen on the PCI bus (pcie) and through the driver (nvml).
# TYPE DCXP_GPU_COUNT gauge
DCXP_GPU_COUNT{{Hostname="node7",type="pcie"}} 1.0
{build_info("none")}{self_metrics(0.0)}"""
    assert scrape(sampler, source_name="none") == expected


def test_scrapes_serve_the_last_snapshot_while_a_collection_hangs() -> None:
    release = threading.Event()
    entered = threading.Event()

    class SlowSource(FakeGpuSource):
        def collect(self) -> Snapshot:
            if not self.results:
                entered.set()
                release.wait(10)
                return Snapshot()
            return super().collect()

    first = Snapshot(gpus=(GpuSample(GPU0, error_state=STATE_OK, gpu_temp=44),), driver_version="550.54.15")
    sampler = Sampler(SlowSource(first), interval=0.01)
    sampler.collect_once()
    sampler.start()
    try:
        assert entered.wait(5), "the sampler thread never started a second collection"
        assert f"DCGM_FI_DEV_GPU_TEMP{{{L0}}} 44.0" in scrape(sampler)
    finally:
        release.set()
        sampler.stop()


def test_the_served_body_is_the_latest_snapshot_plus_process_metrics() -> None:
    exposition = Exposition("nvml")
    snapshots = [
        Snapshot(gpus=(GpuSample(GPU0, error_state=STATE_OK, gpu_temp=temp),), driver_version="550.54.15")
        for temp in (44, 45)
    ]
    sampler = Sampler(FakeGpuSource(*snapshots), interval=5, on_snapshot=exposition.update)

    assert b"DCGM_FI_DEV_GPU_TEMP" not in exposition.body()
    sampler.collect_once()
    first = exposition.body().decode()
    sampler.collect_once()
    second = exposition.body().decode()

    assert 'gpu="0"' in first and "} 44.0\n" in first and "} 45.0\n" in second
    assert 'dc_exporter_build_info{python="' in second
    assert "\nprocess_resident_memory_bytes " in second
