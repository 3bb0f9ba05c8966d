"""CLI: ``exporter``, the GPU exporter of a worker (port 9835), run in the
foreground until SIGTERM or Ctrl-C. The same code runs on workers from the
zipapp; this command is for a machine where dc-overview is installed."""

from __future__ import annotations

import click

from dc_overview.domain import EXPORTER_PORTS, GPU_EXPORTER

# The exporter's own defaults (dc_overview.gpu_exporter.server, which this
# command imports only when it runs, so other commands start without
# prometheus_client and NVML; tests/e2e/test_cli_startup.py keeps them equal).
DEFAULT_PORT = EXPORTER_PORTS[GPU_EXPORTER]
DEFAULT_LISTEN = "0.0.0.0"
DEFAULT_INTERVAL = 5.0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, help="Address to listen on.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_INTERVAL,
    show_default=True,
    help="Seconds between GPU readings (scrapes serve the latest).",
)
@click.option(
    "--simulate",
    type=click.IntRange(min=1),
    metavar="N",
    help="Serve N simulated GPUs instead of reading NVML (labs, demos, dashboard checks).",
)
@click.option(
    "--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default="INFO", show_default=True
)
def exporter(port: int, listen: str, interval: float, simulate: int | None, log_level: str) -> None:
    """Serve DCGM-compatible GPU metrics for Prometheus."""
    from dc_overview.gpu_exporter import server

    options = server.Options(
        port=port, listen=listen, interval=interval, simulate=simulate or 0, log_level=log_level
    )
    code = server.run(options)
    if code:
        raise click.exceptions.Exit(code)
