"""The NVML adapter against a hand-written fake of the ``pynvml`` module.

The fake keeps to pynvml's names, constants and return shapes; the last test
checks that against the real module where it is installed."""

from __future__ import annotations

import ctypes
import mmap
import queue
import struct
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dc_overview.gpu_exporter.bar0 import HOTSPOT_OFFSET, VRAM_OFFSET
from dc_overview.gpu_exporter.model import STATE_ERROR, STATE_OK, STATE_VM
from dc_overview.gpu_exporter.nvml import NvmlSource, NvmlUnavailable
from tests.support.require import missing

SUCCESS, NOT_SUPPORTED, TIMEOUT, LIBRARY_NOT_FOUND = 0, 3, 10, 12
FUNCTION_NOT_FOUND, GPU_IS_LOST, UNKNOWN = 13, 15, 999
XID_EVENT = 0x8
MIB = 1024 * 1024


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return f"NVML error {self.value}"


# Per-device calls answered from a FakeGpu's ``values``/``errors`` by name.
DEVICE_CALLS = (
    "nvmlDeviceGetPciInfo",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetName",
    "nvmlDeviceGetMinorNumber",
    "nvmlDeviceGetArchitecture",
    "nvmlDeviceGetVirtualizationMode",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetEncoderUtilization",
    "nvmlDeviceGetDecoderUtilization",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetFanSpeed",
    "nvmlDeviceGetPcieReplayCounter",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
    "nvmlDeviceGetTotalEccErrors",
    "nvmlDeviceGetRemappedRows",
    "nvmlDeviceGetFieldValues",
)
OTHER_CALLS = (
    "nvmlInit",
    "nvmlShutdown",
    "nvmlSystemGetDriverVersion",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlEventSetCreate",
    "nvmlDeviceRegisterEvents",
    "nvmlEventSetWait",
    "nvmlEventSetFree",
)
CONSTANTS = {
    "NVML_SUCCESS": SUCCESS,
    "NVML_ERROR_NOT_SUPPORTED": NOT_SUPPORTED,
    "NVML_ERROR_FUNCTION_NOT_FOUND": FUNCTION_NOT_FOUND,
    "NVML_ERROR_GPU_IS_LOST": GPU_IS_LOST,
    "NVML_ERROR_RESET_REQUIRED": 16,
    "NVML_ERROR_TIMEOUT": TIMEOUT,
    "NVML_TEMPERATURE_GPU": 0,
    "NVML_CLOCK_SM": 1,
    "NVML_CLOCK_MEM": 2,
    "NVML_MEMORY_ERROR_TYPE_CORRECTED": 0,
    "NVML_MEMORY_ERROR_TYPE_UNCORRECTED": 1,
    "NVML_VOLATILE_ECC": 0,
    "NVML_AGGREGATE_ECC": 1,
    "NVML_FI_DEV_MEMORY_TEMP": 82,
    "nvmlEventTypeXidCriticalError": XID_EVENT,
}


def field_value(celsius: float | None) -> list[SimpleNamespace]:
    if celsius is None:
        return [SimpleNamespace(nvmlReturn=NOT_SUPPORTED, valueType=1, value=SimpleNamespace(uiVal=0))]
    return [SimpleNamespace(nvmlReturn=SUCCESS, valueType=1, value=SimpleNamespace(uiVal=celsius))]


def h100(index: int, **changes: Any) -> dict[str, Any]:
    """The readings of a healthy HBM datacenter GPU, by NVML call."""
    values: dict[str, Any] = {
        "nvmlDeviceGetPciInfo": SimpleNamespace(
            busId=f"00000000:{0x19 + index:02X}:00.0".encode(), pciDeviceId=0x233010DE
        ),
        "nvmlDeviceGetUUID": f"GPU-{index:04d}",
        "nvmlDeviceGetName": "NVIDIA H100 80GB HBM3",
        "nvmlDeviceGetMinorNumber": index + 4,
        "nvmlDeviceGetArchitecture": 9,
        "nvmlDeviceGetVirtualizationMode": 0,
        "nvmlDeviceGetFieldValues": field_value(48),
        "nvmlDeviceGetTemperature": 41,
        "nvmlDeviceGetPowerUsage": 312_500,  # mW
        "nvmlDeviceGetTotalEnergyConsumption": 9_876_543_210,  # mJ
        "nvmlDeviceGetUtilizationRates": SimpleNamespace(gpu=88, memory=35),
        "nvmlDeviceGetEncoderUtilization": [3, 167000],
        "nvmlDeviceGetDecoderUtilization": [5, 167000],
        "nvmlDeviceGetMemoryInfo": SimpleNamespace(total=81559 * MIB, used=1024 * MIB + 5, free=80535 * MIB),
        "nvmlDeviceGetClockInfo": lambda clock: {1: 1980, 2: 2619}[clock],
        "nvmlDeviceGetFanSpeed": 0,
        "nvmlDeviceGetPcieReplayCounter": 7,
        "nvmlDeviceGetCurrentClocksEventReasons": 0x4,
        "nvmlDeviceGetCurrentClocksThrottleReasons": 0x4,
        # (error type, counter type): corrected/uncorrected x volatile/aggregate
        "nvmlDeviceGetTotalEccErrors": lambda kind, counter: {(0, 0): 11, (1, 0): 1, (0, 1): 222, (1, 1): 3}[
            kind, counter
        ],
        "nvmlDeviceGetRemappedRows": (2, 1, 0, 0),  # correctable, uncorrectable, pending, failure
    }
    values.update(changes)
    return values


class FakeNvml:
    NVMLError = FakeNVMLError
    locals().update(CONSTANTS)

    def __init__(self, *gpus: dict[str, Any], init_error: int | None = None) -> None:
        self.gpus = list(gpus)
        self.errors: list[dict[str, int]] = [{} for _ in gpus]
        self.calls: list[str] = []
        self.events: queue.Queue[SimpleNamespace] = queue.Queue()
        self.no_events: set[int] = set()  # GPUs whose XID events cannot be registered
        self.init_error = init_error
        self.shut_down = False
        self.event_set_freed = False

    def fail(self, index: int, call: str, code: int | None) -> None:
        if code is None:
            self.errors[index].pop(call, None)
        else:
            self.errors[index][call] = code

    def __getattr__(self, name: str) -> Any:
        if name not in DEVICE_CALLS:
            raise AttributeError(name)

        def call(handle: ctypes.c_void_p, *args: Any) -> Any:
            index = self._index(handle)
            self.calls.append(name)
            if name in self.errors[index]:
                raise FakeNVMLError(self.errors[index][name])
            value = self.gpus[index][name]
            return value(*args) if callable(value) else value

        return call

    def _index(self, handle: ctypes.c_void_p) -> int:
        return handle.value - 0x1000  # type: ignore[operator]

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise FakeNVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> ctypes.c_void_p:
        return ctypes.c_void_p(0x1000 + index)  # handles are pointers in pynvml too

    def nvmlEventSetCreate(self) -> object:
        return object()

    def nvmlDeviceRegisterEvents(self, handle: ctypes.c_void_p, event_types: int, event_set: object) -> None:
        assert event_types == XID_EVENT
        if self._index(handle) in self.no_events:
            raise FakeNVMLError(NOT_SUPPORTED)

    def nvmlEventSetWait(self, event_set: object, timeout_ms: int) -> SimpleNamespace:
        try:
            return self.events.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            raise FakeNVMLError(TIMEOUT) from None

    def nvmlEventSetFree(self, event_set: object) -> None:
        self.event_set_freed = True

    def xid(self, index: int, code: int) -> None:
        self.events.put(
            SimpleNamespace(
                device=self.nvmlDeviceGetHandleByIndex(index), eventType=XID_EVENT, eventData=code
            )
        )


@pytest.fixture
def sources():
    started: list[NvmlSource] = []

    def start(fake: FakeNvml, tmp_path: Path | None = None, mem: Path | None = None) -> NvmlSource:
        root = tmp_path or Path("/nonexistent-sysfs")
        source = NvmlSource(
            nvml=fake, sysfs_root=root, mem_path=mem or Path("/nonexistent-mem"), xid_wait_ms=20
        )  # type: ignore[arg-type]
        source.start()
        started.append(source)
        return source

    yield start
    for source in started:
        source.close()


def test_readings_identity_and_units(sources) -> None:
    fake = FakeNvml(h100(0), h100(1, nvmlDeviceGetTemperature=43))
    snapshot = sources(fake).collect()

    assert (snapshot.driver_version, snapshot.nvml_gpu_count, snapshot.errors) == ("550.54.15", 2, 0)
    gpu = snapshot.gpus[0]
    assert (gpu.identity.uuid, gpu.identity.pci_bus_id, gpu.identity.minor_number) == (
        "GPU-0000",
        "00000000:19:00.0",
        4,
    )
    assert gpu.identity.model_name == "NVIDIA H100 80GB HBM3"
    assert (gpu.up, gpu.error_state) == (True, STATE_OK)
    assert (gpu.gpu_temp, gpu.memory_temp, gpu.vram_temp, gpu.hotspot_temp) == (41, 48, 48, None)
    assert (gpu.power_w, gpu.energy_mj) == (312.5, 9_876_543_210)
    assert (gpu.gpu_util, gpu.mem_copy_util, gpu.enc_util, gpu.dec_util) == (88, 35, 3, 5)
    assert (gpu.fb_used_mib, gpu.fb_free_mib) == (1024, 80535)
    assert (gpu.sm_clock_mhz, gpu.mem_clock_mhz, gpu.fan_speed_pct, gpu.pcie_replays) == (1980, 2619, 0, 7)
    assert gpu.throttle_reasons == 0x4
    assert (gpu.ecc_corrected_volatile, gpu.ecc_uncorrected_volatile) == (11, 1)
    assert (gpu.ecc_corrected_aggregate, gpu.ecc_uncorrected_aggregate) == (222, 3)
    assert (gpu.remapped_rows_correctable, gpu.remapped_rows_uncorrectable) == (2, 1)
    assert (gpu.row_remap_pending, gpu.row_remap_failure) == (0, 0)
    assert (gpu.last_xid, gpu.xid_counts) == (0, {})
    assert snapshot.gpus[1].gpu_temp == 43


def test_unsupported_readings_are_absent_and_not_asked_for_again(sources) -> None:
    fake = FakeNvml(h100(0))
    for call in ("nvmlDeviceGetFanSpeed", "nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetRemappedRows"):
        fake.fail(0, call, NOT_SUPPORTED)
    source = sources(fake)

    gpu = source.collect().gpus[0]
    assert (
        gpu.fan_speed_pct is None
        and gpu.ecc_uncorrected_volatile is None
        and gpu.remapped_rows_correctable is None
    )
    assert gpu.gpu_temp == 41 and gpu.error_state == STATE_OK

    fake.calls.clear()
    snapshot = source.collect()
    assert snapshot.errors == 0
    assert not {"nvmlDeviceGetFanSpeed", "nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetRemappedRows"} & set(
        fake.calls
    )
    assert "nvmlDeviceGetTemperature" in fake.calls


def test_a_failing_reading_counts_as_an_error_and_is_tried_again(sources) -> None:
    fake = FakeNvml(h100(0))
    fake.fail(0, "nvmlDeviceGetTemperature", UNKNOWN)
    source = sources(fake)

    snapshot = source.collect()
    assert (snapshot.errors, snapshot.gpus[0].gpu_temp, snapshot.gpus[0].power_w) == (1, None, 312.5)
    fake.fail(0, "nvmlDeviceGetTemperature", None)
    snapshot = source.collect()
    assert (snapshot.errors, snapshot.gpus[0].gpu_temp) == (0, 41)


def test_a_lost_gpu_is_down_and_comes_back(sources) -> None:
    fake = FakeNvml(h100(0), h100(1))
    source = sources(fake)
    fake.fail(1, "nvmlDeviceGetPowerUsage", GPU_IS_LOST)

    lost = source.collect()
    assert [(gpu.up, gpu.error_state) for gpu in lost.gpus] == [(True, STATE_OK), (False, STATE_ERROR)]
    assert lost.gpus[1].gpu_temp is None and lost.errors == 1
    assert lost.nvml_gpu_count == 1  # against the PCI count, this shows the GPU that fell off

    fake.fail(1, "nvmlDeviceGetPowerUsage", None)
    back = source.collect()
    assert [gpu.up for gpu in back.gpus] == [True, True] and back.nvml_gpu_count == 2


def test_older_drivers_use_the_throttle_reasons_call(sources) -> None:
    fake = FakeNvml(h100(0, nvmlDeviceGetCurrentClocksThrottleReasons=0x40))
    fake.fail(0, "nvmlDeviceGetCurrentClocksEventReasons", FUNCTION_NOT_FOUND)
    assert sources(fake).collect().gpus[0].throttle_reasons == 0x40


def test_state_vm_and_row_remap_trouble(sources) -> None:
    fake = FakeNvml(
        h100(0, nvmlDeviceGetVirtualizationMode=1),
        h100(1, nvmlDeviceGetRemappedRows=(0, 2, 1, 0)),
        h100(2, nvmlDeviceGetRemappedRows=(0, 9, 0, 1)),
    )
    assert [gpu.error_state for gpu in sources(fake).collect().gpus] == [STATE_VM, STATE_ERROR, STATE_ERROR]


def wait_for(condition, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_xid_events_are_counted_per_gpu_and_code(sources) -> None:
    fake = FakeNvml(h100(0), h100(1), h100(2))
    fake.no_events.add(2)
    source = sources(fake)
    for code in (79, 79, 13):
        fake.xid(1, code)
    wait_for(lambda: fake.events.empty())
    wait_for(lambda: sum(source.collect().gpus[1].xid_counts.values()) == 3)

    gpus = source.collect().gpus
    assert (gpus[1].xid_counts, gpus[1].last_xid) == ({79: 2, 13: 1}, 13)
    assert (gpus[0].xid_counts, gpus[0].last_xid) == ({}, 0)
    assert gpus[2].last_xid is None  # not watched: no last-XID gauge rather than a false 0


def test_gddr_cards_read_vram_and_hotspot_from_bar0(sources, tmp_path: Path) -> None:
    bar0 = 4 * mmap.PAGESIZE
    mem = bytearray(bar0 + HOTSPOT_OFFSET + mmap.PAGESIZE)
    struct.pack_into("<I", mem, bar0 + VRAM_OFFSET, 0xB40)  # 90 C
    struct.pack_into("<I", mem, bar0 + HOTSPOT_OFFSET, 0x4C00)  # 76 C
    (tmp_path / "mem").write_bytes(bytes(mem))
    device = tmp_path / "bus/pci/devices/0000:19:00.0"
    device.mkdir(parents=True)
    (device / "resource").write_text(f"0x{bar0:016x} 0x{bar0 + 0xFFFFFF:016x} 0x0000000000040200\n")

    rtx_3090 = h100(
        0,
        nvmlDeviceGetName="NVIDIA GeForce RTX 3090",
        nvmlDeviceGetArchitecture=7,
        nvmlDeviceGetFieldValues=field_value(None),
        nvmlDeviceGetPciInfo=SimpleNamespace(busId=b"00000000:19:00.0", pciDeviceId=0x220410DE),
    )
    gpu = sources(FakeNvml(rtx_3090, h100(1)), tmp_path, tmp_path / "mem").collect().gpus[0]
    assert (gpu.memory_temp, gpu.vram_temp, gpu.hotspot_temp) == (None, 90.0, 76.0)


def test_no_driver_means_nvml_unavailable() -> None:
    with pytest.raises(NvmlUnavailable, match="nvmlInit failed"):
        NvmlSource(nvml=FakeNvml(init_error=LIBRARY_NOT_FOUND)).start()  # type: ignore[arg-type]


def test_close_stops_the_event_thread_and_shuts_nvml_down() -> None:
    fake = FakeNvml(h100(0))
    source = NvmlSource(nvml=fake, sysfs_root=Path("/nonexistent"), xid_wait_ms=20)  # type: ignore[arg-type]
    source.start()
    source.close()
    assert fake.shut_down and fake.event_set_freed


def test_the_fake_keeps_to_the_real_pynvml() -> None:
    try:
        import pynvml
    except ImportError:
        missing("pynvml", "pip install -e '.[gpu]'")
    for name, value in CONSTANTS.items():
        assert getattr(pynvml, name) == value, name
    for name in DEVICE_CALLS + OTHER_CALLS:
        assert callable(getattr(pynvml, name)), name
    for code in (NOT_SUPPORTED, GPU_IS_LOST, TIMEOUT, FUNCTION_NOT_FOUND):
        assert pynvml.NVMLError(code).value == code
    assert pynvml.NVML_ERROR_LIBRARY_NOT_FOUND == LIBRARY_NOT_FOUND
    assert {name for name, _ in pynvml.c_nvmlEventData_t._fields_} >= {"device", "eventType", "eventData"}
    assert {name for name, _ in pynvml.c_nvmlFieldValue_t._fields_} >= {"nvmlReturn", "valueType", "value"}
