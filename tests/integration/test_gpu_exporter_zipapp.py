"""The exporter as a worker runs it: the zipapp, started by a bare python3
(no site-packages: everything it needs must be inside), scraped over HTTP on
loopback, stopped with SIGTERM."""

from __future__ import annotations

import ctypes.util
import hashlib
import importlib.util
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dc_overview.gpu_exporter import build_zipapp
from tests.support.sshd import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def zipapp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zipapp(tmp_path_factory.mktemp("zipapp"))


@pytest.fixture(autouse=True)
def byte_code_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the exporters started here keep their byte-code (not /var/cache)."""
    folder = tmp_path / "byte-code"
    monkeypatch.setenv("DC_GPU_EXPORTER_CACHE", str(folder))
    return folder


class Exporter:
    def __init__(self, zipapp: Path, *args: str) -> None:
        self.port = free_port(["127.0.0.1"])
        command = [
            sys.executable,
            "-I",
            "-S",
            str(zipapp),
            "--port",
            str(self.port),
            "--listen",
            "127.0.0.1",
            *args,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def scrape(self, path: str = "/metrics", timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                    return response.read().decode()
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"exporter not serving; its output:\n{self.stop()[1]}") from None
                time.sleep(0.05)

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
            return -9, output
        return self.process.returncode, output


def samples(text: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def test_the_zipapp_carries_its_dependencies(zipapp_path: Path) -> None:
    names = zipfile.ZipFile(zipapp_path).namelist()
    assert "__main__.py" in names
    assert "dc_gpu_exporter/server.py" in names and "dc_gpu_exporter/nvml.py" in names
    assert "prometheus_client/__init__.py" in names
    assert ("pynvml.py" in names) == (importlib.util.find_spec("pynvml") is not None)
    assert not [name for name in names if "__pycache__" in name]
    assert "dc_gpu_exporter_boot.py" in names
    assert zipapp_path.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def served_version(zipapp: Path) -> tuple[str, str]:
    """(the version in build_info, the exporter's output) of one start."""
    exporter = Exporter(zipapp, "--simulate", "1")
    try:
        [build] = samples(exporter.scrape())["dc_exporter_build_info"]
    finally:
        code, output = exporter.stop()
    assert code == 0, output
    return build.labels["version"], output


def test_the_modules_are_compiled_once_and_imported_from_their_folder(zipapp_path: Path,
                                                                       byte_code_cache: Path) -> None:
    assert served_version(zipapp_path)[0] == "2.0.0"
    digest = hashlib.sha256(str(zipapp_path.resolve()).encode() + b"\0" + zipapp_path.read_bytes()).hexdigest()[:16]
    folder = byte_code_cache / f"{digest}-{sys.implementation.cache_tag}"
    assert list(byte_code_cache.iterdir()) == [folder]
    assert stat.S_IMODE(byte_code_cache.stat().st_mode) == 0o700 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    compiled = {path.name.split(".")[0] for path in folder.rglob("__pycache__/*.pyc")}
    assert {"server", "nvml", "metrics", "exposition"} <= compiled  # the exporter's and prometheus_client's
    assert ("pynvml" in compiled) == (importlib.util.find_spec("pynvml") is not None)
    assert not (folder / "__main__.py").exists() and not (folder / "dc_gpu_exporter_boot.py").exists()

    # The next start imports from that folder: a change made there shows.
    ready = (folder / "READY").stat().st_mtime_ns
    init = folder / "dc_gpu_exporter" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "2.0.0"', '__version__ = "2.0.0+kept"'))
    assert served_version(zipapp_path)[0] == "2.0.0+kept"
    assert list(byte_code_cache.iterdir()) == [folder] and (folder / "READY").stat().st_mtime_ns == ready


def test_a_zipapp_replaced_at_its_path_gets_a_new_folder_and_the_old_one_goes(
        zipapp_path: Path, byte_code_cache: Path, tmp_path: Path) -> None:
    installed = tmp_path / "opt" / "dc-gpu-exporter.pyz"
    installed.parent.mkdir()
    shutil.copy(zipapp_path, installed)
    served_version(installed)
    served_version(zipapp_path)  # the same bytes elsewhere: a folder of its own, which stays
    [old] = [f for f in byte_code_cache.iterdir() if (f / "READY").read_text().strip() == str(installed)]

    with zipfile.ZipFile(installed, "a") as zipped:  # an upgrade: other bytes at the same path
        zipped.comment = b"another build"
    assert served_version(installed)[0] == "2.0.0"
    made_for = sorted((f / "READY").read_text().strip() for f in byte_code_cache.iterdir())
    assert made_for == sorted([str(installed), str(zipapp_path.resolve())])
    assert not old.exists()


def test_a_folder_others_may_write_to_is_not_used(zipapp_path: Path, byte_code_cache: Path) -> None:
    byte_code_cache.mkdir()
    byte_code_cache.chmod(0o777)
    version, output = served_version(zipapp_path)
    assert version == "2.0.0"
    assert f"not using {byte_code_cache} (not private to this user)" in output
    assert list(byte_code_cache.iterdir()) == []


def test_keeping_byte_code_can_be_turned_off(zipapp_path: Path, byte_code_cache: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DC_GPU_EXPORTER_CACHE", "off")
    assert served_version(zipapp_path)[0] == "2.0.0"
    assert not byte_code_cache.exists()


def test_simulated_gpus_are_served_and_sigterm_exits_cleanly(zipapp_path: Path) -> None:
    exporter = Exporter(zipapp_path, "--simulate", "2", "--interval", "0.2")
    try:
        first = samples(exporter.scrape())
        time.sleep(0.5)
        second = samples(exporter.scrape())
    finally:
        code, output = exporter.stop()

    assert code == 0, output
    assert "SIMULATED: serving 2 simulated GPUs" in output
    [build] = first["dc_exporter_build_info"]
    assert build.labels["source"] == "simulated" and build.labels["version"] == "2.0.0"

    temps = first["DCGM_FI_DEV_GPU_TEMP"]
    assert sorted(sample.labels["gpu"] for sample in temps) == ["0", "1"]
    labels = temps[0].labels
    assert set(labels) == {
        "gpu",
        "UUID",
        "pci_bus_id",
        "device",
        "modelName",
        "Hostname",
        "DCGM_FI_DRIVER_VERSION",
    }
    assert labels["device"] == f"nvidia{labels['gpu']}" and labels["UUID"].startswith("GPU-")
    for name in (
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_SM_CLOCK",
        "DCGM_FI_DEV_VRAM_TEMP",
        "DCGM_FI_DEV_HOT_SPOT_TEMP",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        "GPU_ERROR_STATE",
        "dc_exporter_gpu_up",
    ):
        assert len(first[name]) == 2, name
    assert len(first["DCGM_FI_DEV_CLOCKS_THROTTLE_REASON"]) == 2 * 9
    assert {sample.labels["type"]: sample.value for sample in first["DCXP_GPU_COUNT"]} == {
        "pcie": 2,
        "nvml": 2,
    }
    assert first["process_resident_memory_bytes"][0].value > 0
    # collections go on in the background between scrapes
    [before] = first["dc_exporter_last_collect_timestamp_seconds"]
    [after] = second["dc_exporter_last_collect_timestamp_seconds"]
    assert after.value > before.value


@pytest.mark.skipif(bool(ctypes.util.find_library("nvidia-ml")), reason="an NVIDIA driver is installed here")
def test_without_nvml_only_host_level_series_are_served(zipapp_path: Path) -> None:
    exporter = Exporter(zipapp_path)
    try:
        found = samples(exporter.scrape())
    finally:
        code, output = exporter.stop()

    assert code == 0, output
    assert "NVML is not available" in output and "host-level series only" in output
    assert found["dc_exporter_build_info"][0].labels["source"] == "none"
    assert not [name for name in found if name.startswith("DCGM_FI_DEV_")]
    assert "dc_exporter_gpu_up" not in found
    assert [sample.labels["type"] for sample in found.get("DCXP_GPU_COUNT", [])] in ([], ["pcie"])


def test_a_port_in_use_is_a_one_line_error(zipapp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-I",
                "-S",
                str(zipapp_path),
                "--simulate",
                "1",
                "--listen",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1 port {port}" in result.stderr
    assert "Traceback" not in result.stderr
