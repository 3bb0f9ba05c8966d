"""Real parts around the web app for its tests, all on loopback: an nginx
reverse proxy publishing the app at /dc/ (as the stack does), a Prometheus
served under /prometheus/, and small exporter endpoints with fixed GPU
readings for it to scrape."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from tests.support.require import need_executable

PROXY_PEER = "127.0.0.3"  # nginx reaches the app from this address: the one trusted proxy

NGINX_CONF = """\
worker_processes 1;
user root;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /dc/ {{
            proxy_pass http://127.0.0.1:{app}/;
            proxy_bind {peer};
            proxy_set_header Host $host:$server_port;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Prefix /dc;
            proxy_buffering off;
        }}
    }}
}}
"""


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, log: Callable[[], str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start: {log()[-2000:]}") from None
            time.sleep(0.05)


def start_nginx(folder: Path, app_port: int) -> tuple[subprocess.Popen, int]:
    """nginx on a free port, proxying /dc/ to the app on ``app_port``."""
    binary = need_executable("nginx", "apt-get install -y nginx-light")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_CONF.format(folder=folder, port=port, app=app_port, peer=PROXY_PEER))
    process = subprocess.Popen([binary, "-c", str(conf), "-p", str(folder), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    error_log = folder / "error.log"
    wait_for_port(port, process, "nginx", lambda: error_log.read_text() if error_log.exists() else "")
    return process, port


# -- exporters and Prometheus -----------------------------------------------------------------------


def gpu_exposition(temps: list[float], utils: list[float]) -> str:
    lines = ["# TYPE DCGM_FI_DEV_GPU_TEMP gauge"]
    lines += [f'DCGM_FI_DEV_GPU_TEMP{{gpu="{i}",UUID="GPU-{i}"}} {t}' for i, t in enumerate(temps)]
    lines += ["# TYPE DCGM_FI_DEV_GPU_UTIL gauge"]
    lines += [f'DCGM_FI_DEV_GPU_UTIL{{gpu="{i}",UUID="GPU-{i}"}} {u}' for i, u in enumerate(utils)]
    return "\n".join(lines) + "\n"


def serve_metrics(text: str) -> tuple[int, Callable[[], None]]:
    """An HTTP endpoint serving ``text`` at /metrics (anything else: 404). Returns (port, stop)."""
    body = text.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/metrics"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body if found else b"not prometheus")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return server.server_address[1], stop


def query(base: str, promql: str) -> list:
    url = f"{base}api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)["data"]["result"]


def start_prometheus(folder: Path, targets: list[dict]) -> tuple[subprocess.Popen, str]:
    """Prometheus on a free port under /prometheus/, scraping ``targets``
    (static_configs entries) every second; returns once each was scraped."""
    binary = need_executable("prometheus", "apt-get install -y prometheus")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
              "scrape_configs": [{"job_name": "fleet", "static_configs": targets}]}
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    log_path = folder / "prometheus.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--web.route-prefix=/prometheus/",
             f"--web.external-url=http://127.0.0.1:{port}/prometheus/"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/prometheus/"
    deadline = time.monotonic() + 60
    while True:
        try:
            if len(query(base, 'up{server!=""}')) == len(targets):
                return process, base
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("Prometheus did not come up: " + log_path.read_text()[-2000:])
        time.sleep(0.25)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
