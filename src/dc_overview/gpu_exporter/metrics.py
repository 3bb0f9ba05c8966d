"""The exposition: a prometheus-client Collector that turns the latest
snapshot into metric families with DCGM-compatible names and labels.

Series whose names are fixed by DCGM or dc-exporter but hold running totals
(energy, ECC, replays, ...) are exposed as ``untyped``: prometheus-client
would append ``_total`` to a counter's name, and that would break the
dashboards that use the DCGM names. PromQL's rate() and increase() work on
them all the same.
"""

from __future__ import annotations

import platform
import socket
from dataclasses import dataclass
from typing import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, UnknownMetricFamily

from .model import GpuSample, Snapshot

GPU_LABELS = ("gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION")


@dataclass(frozen=True)
class Series:
    name: str
    attribute: str  # the GpuSample field it shows
    help: str
    cumulative: bool = False  # a running total: exposed untyped, see above


GPU_SERIES = (
    Series("DCGM_FI_DEV_GPU_TEMP", "gpu_temp", "GPU temperature (in C)."),
    Series("DCGM_FI_DEV_MEMORY_TEMP", "memory_temp", "Memory temperature (in C), HBM cards."),
    Series(
        "DCGM_FI_DEV_VRAM_TEMP",
        "vram_temp",
        "VRAM temperature (in C): NVML on HBM, GPU register on GDDR6/6X.",
    ),
    Series("DCGM_FI_DEV_HOT_SPOT_TEMP", "hotspot_temp", "GPU hotspot temperature (in C), GPU register."),
    Series("DCGM_FI_DEV_POWER_USAGE", "power_w", "Power draw (in W)."),
    Series(
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "energy_mj",
        "Total energy consumption since the driver was loaded (in mJ).",
        cumulative=True,
    ),
    Series("DCGM_FI_DEV_GPU_UTIL", "gpu_util", "GPU utilization (in %)."),
    Series("DCGM_FI_DEV_MEM_COPY_UTIL", "mem_copy_util", "Memory utilization (in %)."),
    Series("DCGM_FI_DEV_ENC_UTIL", "enc_util", "Encoder utilization (in %)."),
    Series("DCGM_FI_DEV_DEC_UTIL", "dec_util", "Decoder utilization (in %)."),
    Series("DCGM_FI_DEV_FB_USED", "fb_used_mib", "Framebuffer memory used (in MiB)."),
    Series("DCGM_FI_DEV_FB_FREE", "fb_free_mib", "Framebuffer memory free (in MiB)."),
    Series("DCGM_FI_DEV_SM_CLOCK", "sm_clock_mhz", "SM clock frequency (in MHz)."),
    Series("DCGM_FI_DEV_MEM_CLOCK", "mem_clock_mhz", "Memory clock frequency (in MHz)."),
    Series("DCGM_FI_DEV_FAN_SPEED", "fan_speed_pct", "Fan speed (in %)."),
    Series(
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "pcie_replays", "Total number of PCIe retries.", cumulative=True
    ),
    Series("GPU_AER_TOTAL_ERRORS", "aer_errors", "PCIe AER errors reported by the kernel.", cumulative=True),
    Series(
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "throttle_reasons", "Clock throttle reasons (NVML bitmask)."
    ),
    Series(
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "ecc_corrected_volatile",
        "Corrected (single-bit) ECC errors since the driver was loaded.",
        cumulative=True,
    ),
    Series(
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "ecc_uncorrected_volatile",
        "Uncorrected (double-bit) ECC errors since the driver was loaded.",
        cumulative=True,
    ),
    Series(
        "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
        "ecc_corrected_aggregate",
        "Corrected (single-bit) ECC errors over the board's life.",
        cumulative=True,
    ),
    Series(
        "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
        "ecc_uncorrected_aggregate",
        "Uncorrected (double-bit) ECC errors over the board's life.",
        cumulative=True,
    ),
    Series(
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "remapped_rows_correctable",
        "Rows remapped for correctable errors.",
        cumulative=True,
    ),
    Series(
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "remapped_rows_uncorrectable",
        "Rows remapped for uncorrectable errors.",
        cumulative=True,
    ),
    Series("DCGM_FI_DEV_ROW_REMAP_PENDING", "row_remap_pending", "1 if a row remap waits for a GPU reset."),
    Series("DCGM_FI_DEV_ROW_REMAP_FAILURE", "row_remap_failure", "1 if remapping rows has failed."),
    Series("DCGM_FI_DEV_XID_ERRORS", "last_xid", "Value of the last XID error seen (0: none since start)."),
)

# NVML clock throttle ("clocks event") reason bits, one series each.
THROTTLE_REASONS = (
    ("gpu_idle", 0x1),
    ("applications_clocks_setting", 0x2),
    ("sw_power_cap", 0x4),
    ("hw_slowdown", 0x8),
    ("sync_boost", 0x10),
    ("sw_thermal_slowdown", 0x20),
    ("hw_thermal_slowdown", 0x40),
    ("hw_power_brake_slowdown", 0x80),
    ("display_clock_setting", 0x100),
)


class SnapshotCollector:
    """Yields the latest snapshot as metric families. Never talks to a GPU."""

    def __init__(
        self,
        latest: Callable[[], Snapshot],
        source_name: str,
        version: str,
        hostname: str | None = None,
    ) -> None:
        self._latest = latest
        self._source_name = source_name
        self._version = version
        self._hostname = hostname if hostname is not None else socket.gethostname()

    def describe(self) -> list[Metric]:
        return []  # nothing fixed to declare; also keeps registration from collecting

    def collect(self) -> Iterator[Metric]:
        snapshot = self._latest()
        gpus = [(gpu, self._labels(gpu, snapshot)) for gpu in snapshot.gpus]
        up_gpus = [(gpu, labels) for gpu, labels in gpus if gpu.up]

        for series in GPU_SERIES:
            family_type = UnknownMetricFamily if series.cumulative else GaugeMetricFamily
            family = family_type(series.name, series.help, labels=GPU_LABELS)
            for gpu, labels in up_gpus:
                value = getattr(gpu, series.attribute)
                if value is not None:
                    family.add_metric(labels, value)
            if family.samples:
                yield family

        yield from self._throttle_reasons(up_gpus)
        yield from self._xid_counts(up_gpus)

        state = GaugeMetricFamily(
            "GPU_ERROR_STATE", "GPU state: 1 OK, 2 error, 0 unknown, 3 in a VM.", labels=GPU_LABELS
        )
        up = GaugeMetricFamily(
            "dc_exporter_gpu_up", "1 if the GPU answered the last collection.", labels=GPU_LABELS
        )
        for gpu, labels in gpus:
            state.add_metric(labels, gpu.error_state)
            up.add_metric(labels, 1 if gpu.up else 0)
        if gpus:
            yield state
            yield up

        yield from self._host_series(snapshot)

    def _labels(self, gpu: GpuSample, snapshot: Snapshot) -> list[str]:
        identity = gpu.identity
        return [
            str(identity.index),
            identity.uuid,
            identity.pci_bus_id,
            f"nvidia{identity.minor_number}",
            identity.model_name,
            self._hostname,
            snapshot.driver_version,
        ]

    def _throttle_reasons(self, gpus: list[tuple[GpuSample, list[str]]]) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "DCGM_FI_DEV_CLOCKS_THROTTLE_REASON",
            "1 if the clocks are held back for this reason.",
            labels=GPU_LABELS + ("reason",),
        )
        for gpu, labels in gpus:
            if gpu.throttle_reasons is None:
                continue
            for reason, bit in THROTTLE_REASONS:
                family.add_metric(labels + [reason], 1 if gpu.throttle_reasons & bit else 0)
        if family.samples:
            yield family

    def _xid_counts(self, gpus: list[tuple[GpuSample, list[str]]]) -> Iterator[Metric]:
        family = UnknownMetricFamily(
            "DCGM_FI_DEV_XID_ERRORS_TOTAL",
            "XID errors seen since the exporter started, per XID code.",
            labels=GPU_LABELS + ("xid",),
        )
        for gpu, labels in gpus:
            for xid, count in sorted(gpu.xid_counts.items()):
                family.add_metric(labels + [str(xid)], count)
        if family.samples:
            yield family

    def _host_series(self, snapshot: Snapshot) -> Iterator[Metric]:
        counts = GaugeMetricFamily(
            "DCXP_GPU_COUNT",
            "NVIDIA GPUs seen on the PCI bus (pcie) and through the driver (nvml).",
            labels=("type", "Hostname"),
        )
        if snapshot.pcie_gpu_count is not None:
            counts.add_metric(["pcie", self._hostname], snapshot.pcie_gpu_count)
        if snapshot.nvml_gpu_count is not None:
            counts.add_metric(["nvml", self._hostname], snapshot.nvml_gpu_count)
        if counts.samples:
            yield counts

        build = GaugeMetricFamily(
            "dc_exporter_build_info",
            "Exporter version and where its GPU readings come from.",
            labels=("version", "source", "python"),
        )
        build.add_metric([self._version, self._source_name, platform.python_version()], 1)
        yield build

        if snapshot.collected_at is not None:
            yield GaugeMetricFamily(
                "dc_exporter_last_collect_timestamp_seconds",
                "When the last collection finished (Unix time).",
                value=snapshot.collected_at,
            )
        if snapshot.duration_s is not None:
            yield GaugeMetricFamily(
                "dc_exporter_collect_duration_seconds",
                "How long the last collection took.",
                value=snapshot.duration_s,
            )
        yield CounterMetricFamily(
            "dc_exporter_collect_errors",
            "Failed GPU reads since start (unsupported readings do not count).",
            value=snapshot.errors_total,
        )
