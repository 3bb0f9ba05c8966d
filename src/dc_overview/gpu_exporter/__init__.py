"""dc-overview's GPU exporter: DCGM-compatible Prometheus metrics for NVIDIA
GPUs on port 9835, read through NVML (or simulated), plus VRAM/hotspot
temperatures, XID counters and PCIe/NVML GPU counts.

This package is self-contained (standard library, prometheus_client, and
pynvml imported lazily) and uses relative imports only, because it is also
shipped on its own inside a zipapp (see ``build.py``).
"""

__version__ = "2.0.0"

from .build import build_zipapp, systemd_unit  # noqa: E402 (needs __version__)

__all__ = ["__version__", "build_zipapp", "systemd_unit"]
