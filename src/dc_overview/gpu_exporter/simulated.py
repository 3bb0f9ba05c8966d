"""A simulated source: N RTX 4090-like GPUs with plausible, moving readings.

For labs, demos and checking dashboards and alerts on machines without
GPUs. The load of each GPU drifts between idle and busy; temperatures,
power, clocks and fan follow it. The last GPU throws an XID now and then.
It is only ever used when asked for (``--simulate N``) and says so in
``dc_exporter_build_info{source="simulated"}``.
"""

from __future__ import annotations

import random
import socket
import time
import uuid
from typing import Callable

from .model import STATE_OK, GpuIdentity, GpuSample, Snapshot
from .xid import XidTally

MODEL = "NVIDIA GeForce RTX 4090"
DRIVER_VERSION = "550.127.05"
MEMORY_MIB = 24564
XIDS = (13, 31, 43, 45, 79, 94)  # common application faults, and a "fell off the bus"
IDLE_POWER_W, MAX_POWER_W = 25.0, 450.0


class _SimulatedGpu:
    def __init__(self, identity: GpuIdentity, rng: random.Random) -> None:
        self.identity = identity
        self.rng = rng
        self.load = rng.random()
        self.target = rng.random()
        self.temp = 30.0 + 40.0 * self.load
        self.energy_mj = rng.uniform(1e8, 1e9)
        self.pcie_replays = 0

    def step(self, elapsed: float) -> None:
        rng = self.rng
        if rng.random() < 0.1:  # a new job starts, or the old one ends
            self.target = rng.choice((0.0, rng.uniform(0.3, 1.0)))
        self.load += (self.target - self.load) * 0.5 + rng.uniform(-0.05, 0.05)
        self.load = min(1.0, max(0.0, self.load))
        self.temp += ((30.0 + 55.0 * self.load) - self.temp) * 0.3
        self.energy_mj += self.power_w * elapsed * 1000.0
        if rng.random() < 0.01:
            self.pcie_replays += 1

    @property
    def power_w(self) -> float:
        return IDLE_POWER_W + (MAX_POWER_W - IDLE_POWER_W) * self.load

    def sample(self, tally: XidTally) -> GpuSample:
        rng, load = self.rng, self.load
        busy = load > 0.05
        util = round(min(100.0, max(0.0, 100.0 * load + rng.uniform(-3, 3))))
        fb_used = 400 + round((MEMORY_MIB - 2000) * load) if busy else 400
        throttle = 0x1 if not busy else 0
        if self.power_w > 440:
            throttle |= 0x4  # software power cap
        if self.temp > 83:
            throttle |= 0x20  # software thermal slowdown
        index = self.identity.index
        return GpuSample(
            identity=self.identity,
            error_state=STATE_OK,
            gpu_temp=round(self.temp),
            vram_temp=round(self.temp + 8 + 14 * load, 1),
            hotspot_temp=round(self.temp + 11 + 4 * load),
            power_w=round(self.power_w + rng.uniform(-2, 2), 3),
            energy_mj=round(self.energy_mj),
            gpu_util=util,
            mem_copy_util=round(util * 0.6),
            enc_util=0,
            dec_util=0,
            fb_used_mib=fb_used,
            fb_free_mib=MEMORY_MIB - fb_used,
            sm_clock_mhz=rng.choice((2520, 2535, 2550)) if busy else 210,
            mem_clock_mhz=10501 if busy else 405,
            fan_speed_pct=round(min(100.0, 30 + max(0.0, self.temp - 40) * 1.5)),
            pcie_replays=self.pcie_replays,
            aer_errors=0,
            throttle_reasons=throttle,
            last_xid=tally.last(index),
            xid_counts=tally.counts(index),
        )


class SimulatedSource:
    name = "simulated"

    def __init__(
        self,
        count: int,
        seed: int | None = None,
        xid_probability: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        hostname: str | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("simulate at least one GPU")
        self._count = count
        self._rng = random.Random(seed)
        self._xid_probability = xid_probability
        self._clock = clock
        self._hostname = hostname if hostname is not None else socket.gethostname()
        self._tally = XidTally()
        self._gpus: list[_SimulatedGpu] = []
        self._last_step = 0.0

    def start(self) -> None:
        self._gpus = [_SimulatedGpu(self._identity(index), self._rng) for index in range(self._count)]
        self._last_step = self._clock()

    def _identity(self, index: int) -> GpuIdentity:
        # Stable per host and index, different between hosts of a lab.
        name = uuid.uuid5(uuid.NAMESPACE_DNS, f"{self._hostname}.gpu{index}.simulated")
        return GpuIdentity(
            index=index,
            uuid=f"GPU-{name}",
            pci_bus_id=f"00000000:{0x01 + 0x10 * index:02X}:00.0",
            model_name=MODEL,
            minor_number=index,
        )

    def collect(self) -> Snapshot:
        now = self._clock()
        elapsed, self._last_step = now - self._last_step, now
        xid_thrower = self._gpus[-1]
        if self._rng.random() < self._xid_probability:
            self._tally.record(xid_thrower.identity.index, self._rng.choice(XIDS))
        samples = []
        for gpu in self._gpus:
            gpu.step(elapsed)
            samples.append(gpu.sample(self._tally))
        return Snapshot(
            gpus=tuple(samples),
            driver_version=DRIVER_VERSION,
            nvml_gpu_count=self._count,
            pcie_gpu_count=self._count,
        )

    def close(self) -> None:
        pass
