"""Packs the exporter into one file the master can copy to a worker.

The result is a zipapp holding this package (as the top-level package
``dc_gpu_exporter``), prometheus_client and, when installed here, pynvml,
and ``boot.py`` at the top level, which has the worker keep the modules'
byte-code between starts.
All pure Python: the worker runs it with its own python3 (Debian 12's 3.11
is enough), nothing to pip install there::

    python3 dc-gpu-exporter.pyz --port 9835
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import zipapp
from pathlib import Path

from . import __version__

PACKAGE_NAME = "dc_gpu_exporter"
FILE_NAME = "dc-gpu-exporter.pyz"
INSTALL_PATH = "/opt/dc-overview/" + FILE_NAME
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc")
PACKAGE_SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "boot.py")  # boot.py: at the top level only

BOOT_NAME = "dc_gpu_exporter_boot"  # boot.py, at the top level: see there
MAIN = f"""\
# dc-overview GPU exporter {__version__}
import os
import {BOOT_NAME}

{BOOT_NAME}.prefer_bytecode(os.path.dirname(__file__))
from {PACKAGE_NAME}.server import main

raise SystemExit(main())
"""


def _module_location(name: str) -> Path | None:
    """The package folder or module file of an importable module, else None."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin) if spec.origin else None


def build_zipapp(destination: Path) -> Path:
    """Write the exporter zipapp to ``destination`` (a file, or a folder to
    put ``dc-gpu-exporter.pyz`` in) and return its path."""
    destination = Path(destination)
    if destination.is_dir():
        destination = destination / FILE_NAME
    prometheus_client = _module_location("prometheus_client")
    if prometheus_client is None:
        raise RuntimeError("prometheus_client is not installed here; it has to go into the zipapp")
    pynvml = _module_location("pynvml")  # optional: without it the exporter runs host-level only

    with tempfile.TemporaryDirectory() as staging_name:
        staging = Path(staging_name)
        shutil.copytree(Path(__file__).parent, staging / PACKAGE_NAME, ignore=PACKAGE_SKIPPED)
        shutil.copytree(prometheus_client, staging / "prometheus_client", ignore=SKIPPED)
        if pynvml is not None:
            shutil.copy2(pynvml, staging / pynvml.name)
        shutil.copy2(Path(__file__).parent / "boot.py", staging / f"{BOOT_NAME}.py")
        (staging / "__main__.py").write_text(MAIN)
        destination.parent.mkdir(parents=True, exist_ok=True)
        zipapp.create_archive(staging, destination, interpreter="/usr/bin/env python3", compressed=True)
    return destination


def systemd_unit(path: str = INSTALL_PATH, port: int = 9835, interval: float = 5.0) -> str:
    """A unit that runs the zipapp with the system's python3. It runs as root
    so the VRAM/hotspot register reads can work (NVML alone needs no root)."""
    return f"""\
[Unit]
Description=dc-overview GPU exporter (port {port})
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/bin/python3 {path} --port {port} --interval {interval:g}
Restart=always
RestartSec=5
KillSignal=SIGTERM

[Install]
WantedBy=multi-user.target
"""
