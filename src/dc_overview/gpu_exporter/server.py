"""The exporter process: pick a source, start the sampler, serve /metrics
over HTTP until SIGTERM or SIGINT, then shut down cleanly.

The sampler thread renders each new snapshot into exposition text right
after collecting it; HTTP requests (each in its own thread) only send that
text plus the exporter's own process metrics. A slow driver never slows a
scrape, and a scrape costs next to nothing.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Sequence

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from . import __version__
from .metrics import SnapshotCollector
from .model import Snapshot
from .nvml import NvmlSource, NvmlUnavailable
from .simulated import SimulatedSource
from .source import GpuSource, HostOnlySource, Sampler

log = logging.getLogger("dc_gpu_exporter")

DEFAULT_PORT = 9835
DEFAULT_INTERVAL = 5.0
DEFAULT_LISTEN = "0.0.0.0"


@dataclass(frozen=True)
class Options:
    port: int = DEFAULT_PORT
    listen: str = DEFAULT_LISTEN
    interval: float = DEFAULT_INTERVAL
    simulate: int = 0  # 0: real GPUs through NVML
    log_level: str = "INFO"


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="dc-gpu-exporter", description="Prometheus exporter for NVIDIA GPUs."
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default %(default)s)")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="address to listen on (default %(default)s)")
    parser.add_argument(
        "--interval", type=float, default=DEFAULT_INTERVAL, help="seconds between collections"
    )
    parser.add_argument(
        "--simulate", type=int, default=0, metavar="N", help="simulate N GPUs instead of NVML"
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--version", action="version", version=__version__)
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    if args.interval <= 0:
        parser.error("--interval must be above 0")
    if args.simulate < 0:
        parser.error("--simulate must be 0 or more")
    return Options(args.port, args.listen, args.interval, args.simulate, args.log_level)


def open_source(options: Options) -> GpuSource:
    """The simulator when asked for, else NVML, else host-level series only."""
    if options.simulate:
        log.warning("SIMULATED: serving %d simulated GPUs, not real hardware", options.simulate)
        source: GpuSource = SimulatedSource(options.simulate)
        source.start()
        return source
    nvml = NvmlSource()
    try:
        nvml.start()
        return nvml
    except NvmlUnavailable as error:
        log.warning("NVML is not available (%s): serving host-level series only, no GPU readings", error)
    return HostOnlySource()


class Exposition:
    """The /metrics body: the latest snapshot, rendered once when it lands,
    followed by this process's own metrics (memory, CPU), read per scrape."""

    def __init__(self, source_name: str) -> None:
        self._snapshot = Snapshot()
        self._snapshot_registry = CollectorRegistry(auto_describe=False)
        self._snapshot_registry.register(SnapshotCollector(lambda: self._snapshot, source_name, __version__))
        self._process_registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process_registry)
        self._rendered = generate_latest(self._snapshot_registry)

    def update(self, snapshot: Snapshot) -> None:
        """Called by the sampler with each new snapshot (one thread at a time)."""
        self._snapshot = snapshot
        self._rendered = generate_latest(self._snapshot_registry)

    def body(self) -> bytes:
        return self._rendered + generate_latest(self._process_registry)


class _MetricsHandler(BaseHTTPRequestHandler):
    exposition: Exposition  # set on a subclass per server
    protocol_version = "HTTP/1.1"  # keep-alive, as Prometheus scrapes
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall

    def do_GET(self) -> None:  # noqa: N802 (the http.server naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, content_type, status = self.exposition.body(), CONTENT_TYPE_PLAIN_0_0_4, 200
        elif path == "/":
            body = (
                b'<html><body><h1>dc-overview GPU exporter</h1><a href="/metrics">Metrics</a></body></html>\n'
            )
            content_type, status = "text/html; charset=utf-8", 200
        else:
            body, content_type, status = b"not found\n", "text/plain; charset=utf-8", 404
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def make_server(listen: str, port: int, exposition: Exposition) -> ThreadingHTTPServer:
    handler = type("MetricsHandler", (_MetricsHandler,), {"exposition": exposition})
    server_class = _Server
    if ":" in listen:  # an IPv6 address
        server_class = type("Server6", (_Server,), {"address_family": socket.AF_INET6})
    return server_class((listen, port), handler)


def run(options: Options) -> int:
    """Serve until SIGTERM or SIGINT; 0 after a clean stop, 1 if the port cannot be had."""
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(options.log_level)
    logging.getLogger(__package__).setLevel(options.log_level)

    source = open_source(options)
    exposition = Exposition(source.name)
    sampler = Sampler(source, options.interval, on_snapshot=exposition.update)
    sampler.collect_once()  # the first scrape already has readings
    try:
        server = make_server(options.listen, options.port, exposition)
    except OSError as error:
        log.error("cannot listen on %s port %d: %s", options.listen, options.port, error.strerror or error)
        source.close()
        return 1

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    sampler.start()
    serving = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    serving.start()
    log.info(
        "dc-overview GPU exporter %s (source %s) on http://%s:%d/metrics",
        __version__,
        source.name,
        options.listen,
        options.port,
    )
    try:
        stop.wait()
    finally:
        log.info("stopping")
        server.shutdown()
        server.server_close()
        sampler.stop()
        source.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))
