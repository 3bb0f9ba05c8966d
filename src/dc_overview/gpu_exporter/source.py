"""Where GPU readings come from, and the thread that collects them.

A ``GpuSource`` (NVML, the simulator, or nothing at all) is asked for a
snapshot every few seconds by the ``Sampler``'s own thread. Scrapes never
call the source: they read ``Sampler.latest``, the last finished snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Protocol

from . import pcie
from .model import GpuIdentity, GpuSample, Snapshot

log = logging.getLogger(__name__)


class GpuSource(Protocol):
    """A provider of GPU snapshots. ``collect`` may block (it talks to the
    driver); it is only ever called from the sampler thread."""

    name: str  # "nvml", "simulated" or "none": shown in dc_exporter_build_info

    def start(self) -> None:
        """Open the driver, cache what does not change. Raise if unusable."""

    def collect(self) -> Snapshot: ...

    def close(self) -> None: ...


class HostOnlySource:
    """No GPU library: only what the host itself can tell (PCI device count)."""

    name = "none"

    def __init__(self, sysfs_root: Path = pcie.SYSFS) -> None:
        self._sysfs_root = sysfs_root

    def start(self) -> None:
        pass

    def collect(self) -> Snapshot:
        return Snapshot(pcie_gpu_count=pcie.count_nvidia_gpus(self._sysfs_root))

    def close(self) -> None:
        pass


class Sampler:
    """Collects from a source every ``interval`` seconds and keeps the latest
    snapshot; ``on_snapshot`` (if given) is called with each one, in the same thread.

    A GPU that was seen once and is missing from a later snapshot stays
    listed as down (``up=False``), so it never silently vanishes from the
    exposition. A collection that raises counts as an error and marks every
    known GPU down until the next good one."""

    def __init__(
        self,
        source: GpuSource,
        interval: float,
        wall_clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
        on_snapshot: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self._source = source
        self._on_snapshot = on_snapshot
        self._interval = interval
        self._wall_clock = wall_clock
        self._timer = timer
        self._known: dict[str, GpuIdentity] = {}
        self._errors_total = 0
        self._failing = False
        self._latest = Snapshot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def latest(self) -> Snapshot:
        return self._latest  # replaced whole, never changed in place

    def collect_once(self) -> Snapshot:
        started = self._timer()
        try:
            snapshot = self._source.collect()
            if self._failing:
                log.info("collection from %s works again", self._source.name)
            self._failing = False
        except Exception:
            if not self._failing:
                log.exception("collection from %s failed; known GPUs are shown as down", self._source.name)
            self._failing = True
            snapshot = Snapshot(driver_version=self._latest.driver_version, errors=1)
        self._errors_total += snapshot.errors
        snapshot = replace(
            self._with_missing_gpus_down(snapshot),
            collected_at=self._wall_clock(),
            duration_s=self._timer() - started,
            errors_total=self._errors_total,
        )
        self._latest = snapshot
        if self._on_snapshot is not None:
            try:
                self._on_snapshot(snapshot)
            except Exception:
                log.exception("handling a new snapshot failed")
        return snapshot

    def _with_missing_gpus_down(self, snapshot: Snapshot) -> Snapshot:
        present = {gpu.identity.uuid for gpu in snapshot.gpus}
        for gpu in snapshot.gpus:
            self._known[gpu.identity.uuid] = gpu.identity
        missing = [
            GpuSample(identity, up=False) for uuid, identity in self._known.items() if uuid not in present
        ]
        if not missing:
            return snapshot
        gpus = sorted(snapshot.gpus + tuple(missing), key=lambda gpu: gpu.identity.index)
        return replace(snapshot, gpus=tuple(gpus))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gpu-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.collect_once()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
