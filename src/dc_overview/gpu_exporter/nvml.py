"""The NVML adapter: readings from the NVIDIA driver through ``pynvml``
(package nvidia-ml-py), imported only when this source starts.

NVML is initialised once and the device handles are cached. A reading the
GPU does not support is remembered and never asked for again; its series is
simply absent. XIDs arrive as NVML events, waited for in a thread of their own.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from . import pcie
from .bar0 import DEV_MEM, GddrThermals
from .model import STATE_ERROR, STATE_OK, STATE_VM, GpuIdentity, GpuSample, Snapshot
from .xid import XID_WAIT_MS, NvmlXidWatcher, XidTally

log = logging.getLogger(__name__)

MIB = 1024 * 1024
ARCH_AMPERE, ARCH_ADA = 7, 8  # the GDDR6/6X generations whose registers are known
IN_VM = (1, 2)  # virtualization modes: passthrough, vGPU guest
# nvmlFieldValue_t.valueType -> the member of the value union holding it
FIELD_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


class NvmlUnavailable(Exception):
    """NVML cannot be used here (no pynvml, no driver, no library)."""


class _GpuGone(Exception):
    pass


@dataclass
class _Gpu:
    identity: GpuIdentity
    handle: Any
    pci_device_id: int
    in_vm: bool
    reads_registers: bool  # VRAM/hotspot from BAR0 (GDDR6/6X)
    unsupported: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)
    lost: bool = False


class NvmlSource:
    name = "nvml"

    def __init__(
        self,
        nvml: ModuleType | None = None,
        sysfs_root: Path = pcie.SYSFS,
        mem_path: Path = DEV_MEM,
        xid_wait_ms: int = XID_WAIT_MS,
    ) -> None:
        self._nv: Any = nvml  # the pynvml module; tests hand in a fake one
        self._xid_wait_ms = xid_wait_ms
        self._sysfs_root = sysfs_root
        self._mem_path = mem_path
        self._gpus: list[_Gpu] = []
        self._driver_version = ""
        self._tally = XidTally()
        self._thermals: GddrThermals | None = None
        self._xids: NvmlXidWatcher | None = None
        self._started = False

    # -- start and stop ------------------------------------------------------------

    def start(self) -> None:
        if self._nv is None:
            try:
                self._nv = importlib.import_module("pynvml")
            except ImportError as error:
                raise NvmlUnavailable("the pynvml module (package nvidia-ml-py) is not installed") from error
        nv = self._nv
        try:
            nv.nvmlInit()
        except nv.NVMLError as error:
            raise NvmlUnavailable(f"nvmlInit failed: {error}") from error
        self._started = True
        try:
            self._driver_version = _text(nv.nvmlSystemGetDriverVersion())
            count = nv.nvmlDeviceGetCount()
        except nv.NVMLError as error:
            self.close()
            raise NvmlUnavailable(f"NVML does not list the GPUs: {error}") from error
        for index in range(count):
            try:
                self._gpus.append(self._open(index))
            except nv.NVMLError as error:
                log.warning("GPU %d cannot be opened (%s); it is left out", index, error)
        if any(gpu.reads_registers for gpu in self._gpus):
            self._thermals = GddrThermals(self._mem_path, self._sysfs_root)
        gpus = [(gpu.identity.index, gpu.handle) for gpu in self._gpus]
        try:
            self._xids = NvmlXidWatcher(nv, gpus, self._tally, self._xid_wait_ms)
        except nv.NVMLError as error:
            log.warning("XID events cannot be watched (%s)", error)
        log.info("NVML: driver %s, %d GPU(s)", self._driver_version, count)

    def _open(self, index: int) -> _Gpu:
        nv = self._nv
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        pci = nv.nvmlDeviceGetPciInfo(handle)
        identity = GpuIdentity(
            index=index,
            uuid=_text(nv.nvmlDeviceGetUUID(handle)),
            pci_bus_id=_text(pci.busId),
            model_name=_text(nv.nvmlDeviceGetName(handle)),
            minor_number=self._or_default(lambda: nv.nvmlDeviceGetMinorNumber(handle), index),
        )
        has_memory_temp = self._or_default(lambda: _memory_temperature(nv, handle), None) is not None
        architecture = self._or_default(lambda: nv.nvmlDeviceGetArchitecture(handle), None)
        return _Gpu(
            identity=identity,
            handle=handle,
            pci_device_id=pci.pciDeviceId >> 16,  # high half: device id, low half: vendor
            in_vm=self._or_default(lambda: nv.nvmlDeviceGetVirtualizationMode(handle), 0) in IN_VM,
            reads_registers=not has_memory_temp and architecture in (ARCH_AMPERE, ARCH_ADA),
        )

    def _or_default(self, call: Callable[[], Any], default: Any) -> Any:
        """For facts read once at start: what the GPU cannot tell is the default."""
        try:
            return call()
        except self._nv.NVMLError:
            return default

    def close(self) -> None:
        if self._xids is not None:
            self._xids.close()
        if self._thermals is not None:
            self._thermals.close()
        if self._started:
            self._started = False
            try:
                self._nv.nvmlShutdown()
            except self._nv.NVMLError:
                pass

    # -- collection ----------------------------------------------------------------

    def collect(self) -> Snapshot:
        samples, errors = [], 0
        for gpu in self._gpus:
            reads = _Reads(self._nv, gpu)
            try:
                sample = self._sample(gpu, reads)
                if gpu.lost:
                    log.info("GPU %d answers again", gpu.identity.index)
                gpu.lost = False
            except _GpuGone as gone:
                if not gpu.lost:
                    log.error(
                        "GPU %d (%s) stopped answering: %s", gpu.identity.index, gpu.identity.uuid, gone
                    )
                gpu.lost = True
                reads.errors += 1
                sample = GpuSample(gpu.identity, up=False, error_state=STATE_ERROR)
            samples.append(sample)
            errors += reads.errors
        return Snapshot(
            gpus=tuple(samples),
            driver_version=self._driver_version,
            nvml_gpu_count=sum(sample.up for sample in samples),
            pcie_gpu_count=pcie.count_nvidia_gpus(self._sysfs_root),
            errors=errors,
        )

    def _watches_xids(self, gpu: _Gpu) -> bool:
        return self._xids is not None and gpu.identity.index in self._xids.watched

    def _sample(self, gpu: _Gpu, read: _Reads) -> GpuSample:
        nv = self._nv
        utilization = read("utilization", nv.nvmlDeviceGetUtilizationRates)
        memory = read("memory", nv.nvmlDeviceGetMemoryInfo)
        ecc = {
            (error_type, counter): read(
                f"ecc{error_type}{counter}", nv.nvmlDeviceGetTotalEccErrors, error_type, counter
            )
            for error_type in (nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)
            for counter in (nv.NVML_VOLATILE_ECC, nv.NVML_AGGREGATE_ECC)
        }
        # (correctable rows, uncorrectable rows, remap pending, remap failed)
        remap = read("remapped_rows", nv.nvmlDeviceGetRemappedRows) or (None,) * 4
        memory_temp = read("memory_temp", lambda handle: _memory_temperature(nv, handle))
        vram_temp, hotspot_temp = memory_temp, None
        if gpu.reads_registers and self._thermals is not None:
            vram_temp, hotspot_temp = self._thermals.read(gpu.identity.pci_bus_id, gpu.pci_device_id)
        power_mw = read("power", nv.nvmlDeviceGetPowerUsage)

        if remap[2] or remap[3]:
            state = STATE_ERROR
        else:
            state = STATE_VM if gpu.in_vm else STATE_OK
        return GpuSample(
            identity=gpu.identity,
            error_state=state,
            gpu_temp=read("temperature", nv.nvmlDeviceGetTemperature, nv.NVML_TEMPERATURE_GPU),
            memory_temp=memory_temp,
            vram_temp=vram_temp,
            hotspot_temp=hotspot_temp,
            power_w=None if power_mw is None else power_mw / 1000,
            energy_mj=read("energy", nv.nvmlDeviceGetTotalEnergyConsumption),
            gpu_util=None if utilization is None else utilization.gpu,
            mem_copy_util=None if utilization is None else utilization.memory,
            enc_util=_first(read("encoder", nv.nvmlDeviceGetEncoderUtilization)),
            dec_util=_first(read("decoder", nv.nvmlDeviceGetDecoderUtilization)),
            fb_used_mib=None if memory is None else memory.used // MIB,
            fb_free_mib=None if memory is None else memory.free // MIB,
            sm_clock_mhz=read("sm_clock", nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_SM),
            mem_clock_mhz=read("mem_clock", nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_MEM),
            fan_speed_pct=read("fan", nv.nvmlDeviceGetFanSpeed),
            pcie_replays=read("pcie_replays", nv.nvmlDeviceGetPcieReplayCounter),
            aer_errors=pcie.aer_total_errors(gpu.identity.pci_bus_id, self._sysfs_root),
            throttle_reasons=read("throttle", lambda handle: _throttle_reasons(nv, handle)),
            ecc_corrected_volatile=ecc[nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, nv.NVML_VOLATILE_ECC],
            ecc_uncorrected_volatile=ecc[nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC],
            ecc_corrected_aggregate=ecc[nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, nv.NVML_AGGREGATE_ECC],
            ecc_uncorrected_aggregate=ecc[nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_AGGREGATE_ECC],
            remapped_rows_correctable=remap[0],
            remapped_rows_uncorrectable=remap[1],
            row_remap_pending=remap[2],
            row_remap_failure=remap[3],
            last_xid=self._tally.last(gpu.identity.index) if self._watches_xids(gpu) else None,
            xid_counts=self._tally.counts(gpu.identity.index),
        )


class _Reads:
    """The NVML calls for one GPU in one collection.

    ``read(key, call, *args)`` returns ``call(handle, *args)``, or None when
    the GPU does not support it (remembered under ``key``) or the call failed
    (counted in ``errors``). A GPU that is lost raises ``_GpuGone``."""

    def __init__(self, nv: Any, gpu: _Gpu) -> None:
        self._nv = nv
        self._gpu = gpu
        self.errors = 0

    def __call__(self, key: str, call: Callable[..., Any], *args: Any) -> Any:
        nv, gpu = self._nv, self._gpu
        if key in gpu.unsupported:
            return None
        try:
            value = call(gpu.handle, *args)
        except nv.NVMLError as error:
            if error.value in (nv.NVML_ERROR_NOT_SUPPORTED, nv.NVML_ERROR_FUNCTION_NOT_FOUND):
                gpu.unsupported.add(key)
                return None
            if error.value in (nv.NVML_ERROR_GPU_IS_LOST, nv.NVML_ERROR_RESET_REQUIRED):
                raise _GpuGone(str(error)) from error
            self.errors += 1
            if key not in gpu.failing:
                log.warning("GPU %d: reading %s failed: %s", gpu.identity.index, key, error)
                gpu.failing.add(key)
            return None
        gpu.failing.discard(key)
        return value


def _memory_temperature(nv: Any, handle: Any) -> float | None:
    """NVML field 82, reported by HBM cards."""
    value = nv.nvmlDeviceGetFieldValues(handle, [nv.NVML_FI_DEV_MEMORY_TEMP])[0]
    if value.nvmlReturn != nv.NVML_SUCCESS:
        raise nv.NVMLError(value.nvmlReturn)
    celsius = getattr(value.value, FIELD_VALUE_MEMBERS[value.valueType])
    return celsius or None  # 0 is what boards without the sensor fill in


def _throttle_reasons(nv: Any, handle: Any) -> int:
    """The "clocks event reasons" call of drivers from 535 on, else the older name."""
    current = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)  # absent from old pynvml
    if current is not None:
        try:
            return current(handle)
        except nv.NVMLError as error:
            if error.value != nv.NVML_ERROR_FUNCTION_NOT_FOUND:
                raise
    return nv.nvmlDeviceGetCurrentClocksThrottleReasons(handle)


def _first(pair: list[int] | None) -> int | None:
    """Encoder/decoder utilisation come as [percent, sampling period]."""
    return None if pair is None else pair[0]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
