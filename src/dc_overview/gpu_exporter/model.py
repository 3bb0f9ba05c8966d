"""The values a GPU source hands to the exporter: one sample per GPU, bundled
into a snapshot. Frozen, so a snapshot can be shared between the collecting
thread and the HTTP threads without locks.

A reading that is ``None`` means "this GPU does not report it": the series is
left out of the exposition, never replaced by a made-up value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

# GPU_ERROR_STATE values (the dc-exporter convention).
STATE_UNKNOWN = 0
STATE_OK = 1
STATE_ERROR = 2
STATE_VM = 3


@dataclass(frozen=True)
class GpuIdentity:
    """What names a GPU in every series (the DCGM labels)."""

    index: int  # NVML index: label gpu="N"
    uuid: str  # label UUID
    pci_bus_id: str  # NVML form, e.g. "00000000:3B:00.0"
    model_name: str  # label modelName
    minor_number: int  # /dev/nvidiaN: label device="nvidiaN"


@dataclass(frozen=True)
class GpuSample:
    identity: GpuIdentity
    up: bool = True  # False: the GPU stopped answering; only up and error state are shown
    error_state: int = STATE_UNKNOWN

    # temperatures, degrees C
    gpu_temp: float | None = None
    memory_temp: float | None = None  # NVML field 82 (HBM cards)
    vram_temp: float | None = None  # field 82, else the BAR0 register (GDDR6/6X)
    hotspot_temp: float | None = None  # BAR0 register only

    # power and energy
    power_w: float | None = None
    energy_mj: float | None = None  # since the driver was loaded

    # utilisation, percent
    gpu_util: float | None = None
    mem_copy_util: float | None = None
    enc_util: float | None = None
    dec_util: float | None = None

    # framebuffer, MiB
    fb_used_mib: float | None = None
    fb_free_mib: float | None = None

    # clocks (MHz) and fan (percent)
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    fan_speed_pct: float | None = None

    # PCIe
    pcie_replays: float | None = None
    aer_errors: float | None = None  # sum of the kernel's AER totals for the device

    # clock throttle (event) reasons: NVML bitmask
    throttle_reasons: int | None = None

    # ECC: since driver load (volatile) and over the board's life (aggregate)
    ecc_corrected_volatile: float | None = None
    ecc_uncorrected_volatile: float | None = None
    ecc_corrected_aggregate: float | None = None
    ecc_uncorrected_aggregate: float | None = None

    # row remapping (Ampere and later datacenter cards)
    remapped_rows_correctable: float | None = None
    remapped_rows_uncorrectable: float | None = None
    row_remap_pending: float | None = None
    row_remap_failure: float | None = None

    # XIDs seen since the exporter started. last_xid is None where XID events
    # cannot be watched on this GPU, 0 while none has been seen.
    last_xid: int | None = None
    xid_counts: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """One collection: what every scrape serves until the next one lands.

    A source fills the GPU part; the sampler adds the timing and error totals.
    """

    gpus: tuple[GpuSample, ...] = ()
    driver_version: str = ""
    nvml_gpu_count: int | None = None  # GPUs answering through the driver; None: no NVML
    pcie_gpu_count: int | None = None  # None: /sys/bus/pci could not be read
    errors: int = 0  # failed reads in this collection ("not supported" is no error)

    # filled in by the sampler
    collected_at: float | None = None  # Unix time
    duration_s: float | None = None
    errors_total: int = 0
