"""XIDs: the driver's error reports. Counted per GPU and per XID code, so a
repeated XID stays visible (a last-value gauge hides it).

``NvmlXidWatcher`` waits for NVML's XID events in a thread of its own;
the simulator records into the same ``XidTally``.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any, Sequence

log = logging.getLogger(__name__)

XID_WAIT_MS = 500


class XidTally:
    """XIDs per GPU since start: how often each code happened, and the last one.

    Written by an event thread, read by the sampler thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[int, dict[int, int]] = {}
        self._last: dict[int, int] = {}

    def record(self, gpu_index: int, xid: int) -> None:
        with self._lock:
            per_gpu = self._counts.setdefault(gpu_index, {})
            per_gpu[xid] = per_gpu.get(xid, 0) + 1
            self._last[gpu_index] = xid

    def counts(self, gpu_index: int) -> dict[int, int]:
        with self._lock:
            return dict(self._counts.get(gpu_index, {}))

    def last(self, gpu_index: int) -> int:
        with self._lock:
            return self._last.get(gpu_index, 0)


def _handle_address(handle: Any) -> int | None:
    """NVML device handles are pointers: the same device, the same address."""
    return ctypes.cast(handle, ctypes.c_void_p).value


class NvmlXidWatcher:
    """Registers every GPU that allows it for XID events (nvmlEventSetCreate,
    nvmlDeviceRegisterEvents) and waits for them (nvmlEventSetWait) in its
    own thread, recording each into the tally. ``watched`` holds the indexes
    of the GPUs it listens to."""

    def __init__(
        self, nv: Any, gpus: Sequence[tuple[int, Any]], tally: XidTally, wait_ms: int = XID_WAIT_MS
    ) -> None:
        self._nv = nv
        self._tally = tally
        self._wait_ms = wait_ms  # also bounds how long close() waits for the thread
        self._index_by_handle: dict[int | None, int] = {}
        self._stop = threading.Event()
        self._event_set = nv.nvmlEventSetCreate()
        for index, handle in gpus:
            try:
                nv.nvmlDeviceRegisterEvents(handle, nv.nvmlEventTypeXidCriticalError, self._event_set)
            except nv.NVMLError as error:
                log.info("GPU %d: XID events cannot be watched (%s)", index, error)
                continue
            self._index_by_handle[_handle_address(handle)] = index
        self.watched = frozenset(self._index_by_handle.values())
        self._thread = threading.Thread(target=self._run, name="gpu-xid-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        nv = self._nv
        failing = False
        while not self._stop.is_set():
            try:
                event = nv.nvmlEventSetWait(self._event_set, self._wait_ms)
            except nv.NVMLError as error:
                if error.value != nv.NVML_ERROR_TIMEOUT:
                    if not failing:
                        log.warning("waiting for XID events failed: %s; retrying every second", error)
                    failing = True
                    self._stop.wait(1.0)
                continue
            failing = False
            if not event.eventType & nv.nvmlEventTypeXidCriticalError:
                continue
            index = self._index_by_handle.get(_handle_address(event.device))
            if index is not None:
                log.warning("GPU %d: XID %d", index, event.eventData)
                self._tally.record(index, int(event.eventData))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2 * self._wait_ms / 1000)
        try:
            self._nv.nvmlEventSetFree(self._event_set)
        except self._nv.NVMLError:
            pass
