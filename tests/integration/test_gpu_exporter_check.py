"""scripts/gpu-check end to end, in its dry-run mode (no GPU here): it builds
the zipapp, runs it, scrapes it, reports every series and stops it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu-check"


def test_dry_run_reports_every_series_and_passes() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--simulate", "2"], capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "source: simulated" in out
    assert "GPUs: 2 listed; counted by NVML: 2.0, on the PCI bus: 2.0" in out
    assert "DCGM_FI_DEV_GPU_TEMP                     2/2  0=" in out
    assert "missing, expected on every GPU: none" in out
    assert "DCGM_FI_DEV_MEMORY_TEMP (GPUs 0,1): HBM cards only" in out
    assert "RESULT: OK" in out
