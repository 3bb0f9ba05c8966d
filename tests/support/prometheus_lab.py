"""A real Prometheus scraping real exporters on loopback, for proving the
dashboards' queries and the alert rules against data.

What runs (all on 127.0.0.1, free ports):

- Debian's ``prometheus-node-exporter`` (server ``gpu-sim``'s node target);
- dc-overview's GPU exporter as a subprocess, ``--simulate 4`` (server
  ``gpu-sim``: four GeForce-like GPUs, no ECC, no HBM);
- the same exporter's exposition (``SnapshotCollector`` served by its own
  HTTP server) fed a fixed snapshot of two HBM datacenter GPUs with every
  reading set: ECC, row remapping, HBM temperature, XIDs (server ``gpu-hbm``);
- a stand-in for the Vast.ai exporter serving the metric names and labels of
  the public vastai-exporter (500farm/prometheus-vastai) -- a test double of
  an external service;
- nothing at all behind server ``gpu-dead``'s two targets, so "down" panels
  have something to show.

Prometheus scrapes every second, reads its targets from a file_sd file made
by dc-overview's own ``build_targets`` (so the labels are the real ones:
job, server, exporter) and loads the packaged alert rules. The fixture waits
until every target has at least ``MIN_SAMPLES`` samples, enough for rate().
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from dc_overview.domain import GPU_EXPORTER, NODE_EXPORTER, ExporterState, Server
from dc_overview.targets import build_targets
from tests.support.require import need_executable

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "templates" / "rules" / "dc-overview-alerts.yml"
MIN_SAMPLES = 12
READY_TIMEOUT = 180.0  # generous: a loaded CI machine scrapes late


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:g} s")
        time.sleep(0.2)


# -- an HBM datacenter server: the real exposition, a fixed snapshot -------------------


def datacenter_snapshot():
    from dc_overview.gpu_exporter.model import STATE_OK, GpuIdentity, GpuSample, Snapshot

    def gpu(index: int, load: float, xids: dict[int, int]) -> GpuSample:
        return GpuSample(
            identity=GpuIdentity(index, f"GPU-hbm-{index}", f"00000000:{0x18 + 0x20 * index:02X}:00.0",
                                 "NVIDIA H100 80GB HBM3", index),
            error_state=STATE_OK, gpu_temp=55 + 20 * load, memory_temp=60 + 20 * load, vram_temp=60 + 20 * load,
            hotspot_temp=65 + 22 * load, power_w=90 + 600 * load, energy_mj=4.2e9 + index * 1e8,
            gpu_util=100 * load, mem_copy_util=60 * load, enc_util=0, dec_util=3, fb_used_mib=1000 + 70000 * load,
            fb_free_mib=81559 - (1000 + 70000 * load), sm_clock_mhz=1980, mem_clock_mhz=2619, fan_speed_pct=None,
            pcie_replays=2, aer_errors=1, throttle_reasons=0x4 | 0x40 if load > 0.5 else 0x1,
            ecc_corrected_volatile=3, ecc_uncorrected_volatile=0, ecc_corrected_aggregate=41,
            ecc_uncorrected_aggregate=0, remapped_rows_correctable=1, remapped_rows_uncorrectable=0,
            row_remap_pending=0, row_remap_failure=0, last_xid=max(xids, default=0), xid_counts=xids,
        )

    return Snapshot(gpus=(gpu(0, 0.97, {79: 1}), gpu(1, 0.2, {13: 2})), driver_version="550.127.05",
                    nvml_gpu_count=2, pcie_gpu_count=2, collected_at=time.time(), duration_s=0.004)


def serve_datacenter_gpus(port: int) -> Callable[[], None]:
    """Serve the snapshot through the GPU exporter's own collector (plus the
    process series it also serves); returns a function that stops it."""
    from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

    from dc_overview.gpu_exporter import __version__
    from dc_overview.gpu_exporter.metrics import SnapshotCollector

    snapshot = datacenter_snapshot()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot, "fixed", __version__, hostname="gpu-hbm"))
    ProcessCollector(registry=registry)
    return serve_text(port, lambda: generate_latest(registry).decode())


# -- the Vast.ai exporter's stand-in --------------------------------------------------


def vastai_exposition(started: float) -> str:
    """The account, machine and rental series of 500farm/vastai-exporter
    (src/collector_account.go), for two machines. Pending payout grows."""
    pending = 28.23 + (time.time() - started) * 0.01
    lines = [
        f"vastai_pending_payout_dollars {pending:.4f}",
        "vastai_paid_out_dollars 303.34",
        "vastai_last_payout_time 1700000000",
    ]
    machines = {"2100": ("gpu-sim", "RTX 4090", 4, 0.45), "3100": ("gpu-hbm", "H100 SXM", 2, 2.10)}
    used = {"2100": {"ondemand": 2, "bid": 1, "reserved": 0, "default": 1, "my": 0},
            "3100": {"ondemand": 0, "bid": 0, "reserved": 2, "default": 0, "my": 0}}
    for mid, (hostname, gpu_name, gpus, price) in machines.items():
        m = f'machine_id="{mid}"'
        lines += [
            f'vastai_machine_info{{{m},gpu_name="{gpu_name}",hostname="{hostname}"}} 1',
            f"vastai_machine_is_verified{{{m}}} 1",
            f"vastai_machine_is_listed{{{m}}} 1",
            f"vastai_machine_is_online{{{m}}} 1",
            f"vastai_machine_reliability{{{m}}} 0.9934",
            f'vastai_machine_inet_bps{{{m},ip_address="203.0.113.{mid[0]}",direction="up"}} 4.1e+08',
            f'vastai_machine_inet_bps{{{m},ip_address="203.0.113.{mid[0]}",direction="down"}} 8.2e+08',
            f"vastai_machine_ondemand_price_per_gpu_dollars{{{m}}} {price}",
            f"vastai_machine_gpu_count{{{m}}} {gpus}",
        ]
        for rental_type in ("ondemand", "bid", "default", "my"):
            for status, count in (("running", used[mid][rental_type]), ("stopped", 1)):
                lines.append(f'vastai_machine_rentals_count{{{m},rental_type="{rental_type}",'
                             f'rental_status="{status}"}} {count}')
        for rental_type, count in used[mid].items():
            lines.append(f'vastai_machine_used_gpu_count{{{m},rental_type="{rental_type}"}} {count}')
    return "\n".join(lines) + "\n"


def serve_vastai(port: int) -> Callable[[], None]:
    started = time.time()
    return serve_text(port, lambda: vastai_exposition(started))


def serve_text(port: int, body: Callable[[], str]) -> Callable[[], None]:
    """Serve ``body()`` as a Prometheus text exposition on every GET."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            data = body().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return _serve_in_thread(ThreadingHTTPServer(("127.0.0.1", port), Handler))


def _serve_in_thread(server: ThreadingHTTPServer) -> Callable[[], None]:
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop


# -- the lab --------------------------------------------------------------------------


@dataclass
class PrometheusLab:
    url: str
    ports: dict[str, int]
    folder: Path
    stops: list[Callable[[], None]] = field(default_factory=list)

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=60) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def metric_names(self) -> set[str]:
        return set(self.api("label/__name__/values"))


def fleet_targets(ports: dict[str, int]) -> list[dict]:
    """dc-overview's own target groups, pointed at the lab's ports."""
    servers = [
        Server(name="gpu-sim", address="127.0.0.1"),
        Server(name="gpu-hbm", address="127.0.0.1", exporters={NODE_EXPORTER: ExporterState(enabled=False)}),
        Server(name="gpu-dead", address="127.0.0.1"),
    ]
    groups = build_targets(servers)
    for group in groups:
        key = f"{group['labels']['server']}/{group['labels']['exporter']}"
        group["targets"] = [f"127.0.0.1:{ports[key]}"]
    return groups


def prometheus_config(folder: Path, ports: dict[str, int]) -> Path:
    targets = folder / "fleet.json"
    targets.write_text(json.dumps(fleet_targets(ports), indent=2))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "fleet", "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}]},
            {"job_name": "vastai", "static_configs": [{"targets": [f"127.0.0.1:{ports['vastai']}"]}]},
        ],
    }
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _start(command: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


@pytest.fixture(scope="session")
def prometheus_lab(tmp_path_factory) -> Iterator[PrometheusLab]:
    prometheus = need_executable("prometheus", "apt-get install prometheus")
    node_exporter = need_executable("prometheus-node-exporter", "apt-get install prometheus-node-exporter")
    folder = tmp_path_factory.mktemp("prometheus-lab")
    ports = {name: free_port() for name in (
        f"gpu-sim/{NODE_EXPORTER}", f"gpu-sim/{GPU_EXPORTER}", f"gpu-hbm/{GPU_EXPORTER}",
        f"gpu-dead/{NODE_EXPORTER}", f"gpu-dead/{GPU_EXPORTER}", "vastai", "prometheus")}
    lab = PrometheusLab(f"http://127.0.0.1:{ports['prometheus']}", ports, folder)
    processes: list[subprocess.Popen] = []
    try:
        processes.append(_start([node_exporter, f"--web.listen-address=127.0.0.1:{ports[f'gpu-sim/{NODE_EXPORTER}']}"],
                                folder / "node-exporter.log"))
        processes.append(_start([sys.executable, "-m", "dc_overview.gpu_exporter", "--simulate", "4",
                                 "--listen", "127.0.0.1", "--port", str(ports[f"gpu-sim/{GPU_EXPORTER}"]),
                                 "--interval", "1"], folder / "gpu-exporter.log"))
        lab.stops.append(serve_datacenter_gpus(ports[f"gpu-hbm/{GPU_EXPORTER}"]))
        lab.stops.append(serve_vastai(ports["vastai"]))
        for key, process in ((f"gpu-sim/{NODE_EXPORTER}", processes[0]), (f"gpu-sim/{GPU_EXPORTER}", processes[1])):
            wait_for_http(f"http://127.0.0.1:{ports[key]}/metrics", 60, process)

        config = prometheus_config(folder, ports)
        processes.append(_start([prometheus, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{ports['prometheus']}", "--log.level=warn"],
                                folder / "prometheus.log"))
        wait_for_http(f"{lab.url}/-/ready", 60, processes[-1])
        _wait_for_samples(lab, processes[-1])
        yield lab
    except RuntimeError as error:
        logs = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in folder.glob("*.log"))
        raise RuntimeError(f"{error}\n{logs}") from None
    finally:
        for stop in lab.stops:
            stop()
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_for_samples(lab: PrometheusLab, prometheus: subprocess.Popen) -> None:
    expected = 6  # five fleet targets and the Vast.ai one
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if prometheus.poll() is not None:
            raise RuntimeError(f"prometheus exited with {prometheus.returncode}")
        counts = [float(r["value"][1]) for r in lab.query("count_over_time(up[1m])")]
        if len(counts) >= expected and min(counts) >= MIN_SAMPLES:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"targets did not reach {MIN_SAMPLES} samples in {READY_TIMEOUT:g} s: {counts}")
        time.sleep(0.5)
