"""The simulated source: plausible, moving values, and XIDs now and then."""

from __future__ import annotations

import pytest

from dc_overview.gpu_exporter.model import STATE_OK
from dc_overview.gpu_exporter.simulated import MEMORY_MIB, XIDS, SimulatedSource


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def started(count: int, **kwargs: object) -> tuple[SimulatedSource, Clock]:
    clock = Clock()
    source = SimulatedSource(count, seed=7, clock=clock, hostname="lab1", **kwargs)  # type: ignore[arg-type]
    source.start()
    return source, clock


def test_every_reading_is_plausible_over_many_collections() -> None:
    source, clock = started(8, xid_probability=0.0)
    for _ in range(200):
        clock.now += 5
        snapshot = source.collect()
        assert (snapshot.nvml_gpu_count, snapshot.pcie_gpu_count, len(snapshot.gpus)) == (8, 8, 8)
        for gpu in snapshot.gpus:
            assert gpu.up and gpu.error_state == STATE_OK
            assert 25 <= gpu.gpu_temp <= 90
            assert gpu.gpu_temp < gpu.vram_temp <= 110
            assert gpu.gpu_temp < gpu.hotspot_temp <= 105
            assert 20 <= gpu.power_w <= 455
            assert 0 <= gpu.gpu_util <= 100 and 0 <= gpu.mem_copy_util <= 100
            assert gpu.fb_used_mib + gpu.fb_free_mib == MEMORY_MIB
            assert 0 <= gpu.fan_speed_pct <= 100
            assert gpu.sm_clock_mhz in (210, 2520, 2535, 2550)
            assert gpu.memory_temp is None  # a GDDR6X card has no NVML memory sensor
            assert gpu.xid_counts == {} and gpu.last_xid == 0


def test_values_move_and_energy_only_grows() -> None:
    source, clock = started(2, xid_probability=0.0)
    utils, energies = set(), []
    for _ in range(60):
        clock.now += 5
        gpu = source.collect().gpus[0]
        utils.add(gpu.gpu_util)
        energies.append(gpu.energy_mj)
    assert len(utils) > 5
    assert energies == sorted(energies) and energies[-1] > energies[0]


def test_the_last_gpu_throws_xids() -> None:
    source, clock = started(3, xid_probability=1.0)
    for _ in range(4):
        clock.now += 5
        snapshot = source.collect()
    first, _, last = snapshot.gpus
    assert sum(last.xid_counts.values()) == 4
    assert set(last.xid_counts) <= set(XIDS)
    assert last.last_xid in last.xid_counts
    assert first.xid_counts == {} and first.last_xid == 0


def test_identities_are_stable_per_host_and_distinct() -> None:
    source, _ = started(4)
    again, _ = started(4)
    elsewhere = SimulatedSource(4, seed=7, hostname="lab2")
    elsewhere.start()
    uuids = [gpu.identity.uuid for gpu in source.collect().gpus]
    assert len(set(uuids)) == 4 and all(uuid.startswith("GPU-") for uuid in uuids)
    assert uuids == [gpu.identity.uuid for gpu in again.collect().gpus]
    assert not set(uuids) & {gpu.identity.uuid for gpu in elsewhere.collect().gpus}


def test_at_least_one_gpu() -> None:
    with pytest.raises(ValueError):
        SimulatedSource(0)
