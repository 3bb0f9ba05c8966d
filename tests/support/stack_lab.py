"""The monitoring stack on the real Docker engine, for integration tests.

The stack runs on local images (``scripts/build-stack-images``): Debian's
prometheus, prometheus-alertmanager and nginx-light stand in for
prom/prometheus, prom/alertmanager and nginx:alpine.
Each lab has its own name prefix, network and free loopback ports, so it
never touches a real stack on the same engine; everything it made is removed
afterwards (containers by the stack's label, then its network and volumes).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import contextlib
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from tests.support.require import missing, need_executable

PROMETHEUS_IMAGE = "local/dc-stack-prometheus:bookworm"
NGINX_IMAGE = "local/dc-stack-nginx:bookworm"
APP_IMAGE = "local/dc-overview:test"
LABEL = "io.cryptolabs.dc-overview"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def need_docker() -> None:
    need_executable("docker", "apt-get install docker.io; bash .ci/lib/dockerd.sh")
    if docker("info", check=False, timeout=30).returncode != 0:
        missing("a running Docker engine", "bash .ci/lib/dockerd.sh")


def need_images(*images: str) -> None:
    need_docker()
    absent = [i for i in images if docker("image", "inspect", i, check=False).returncode != 0]
    if absent:
        missing(f"the stack's test images {', '.join(absent)}", "scripts/build-stack-images")


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:6]}-"


def remove_stack(prefix: str, network: str, extra_containers: list[str] = ()) -> None:  # type: ignore[assignment]
    names = docker("ps", "-aq", "--filter", f"label={LABEL}.stack={prefix}dc-overview", check=False).stdout.split()
    for name in [*names, *extra_containers]:
        docker("rm", "-f", name, check=False)
    docker("network", "rm", network, check=False)
    for volume in docker("volume", "ls", "-q", "--filter", f"name={prefix}", check=False).stdout.split():
        if volume.startswith(prefix):
            docker("volume", "rm", "-f", volume, check=False)


def container_ids(prefix: str) -> dict[str, str]:
    """container name -> id for the lab's stack."""
    out = docker("ps", "-a", "--filter", f"label={LABEL}.stack={prefix}dc-overview",
                 "--format", "{{.Names}} {{.ID}}").stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def container_state(name: str) -> tuple[str, str]:
    out = docker("inspect", "-f", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", name).stdout
    state, _, health = out.strip().partition(" ")
    return state, health


def tls_context(certificate: Path) -> ssl.SSLContext:
    """Trusts exactly the proxy's self-signed certificate (and checks the host name)."""
    return ssl.create_default_context(cadata=certificate.read_text())


def http(url: str, *, method: str = "GET", context: ssl.SSLContext | None = None,
         timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0,
               retry_on: tuple[type[Exception], ...] = (OSError, ValueError)) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except retry_on as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout:g} s (last: {last!r})")


def prometheus_query(base_url: str, expr: str, context: ssl.SSLContext | None = None) -> list[dict]:
    status, _, body = http(f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), context=context)
    if status != 200:
        raise ValueError(f"HTTP {status}: {body[:200]!r}")
    return json.loads(body)["data"]["result"]



class Lab:
    """A stack applied through the Python API on its own prefix, network and ports."""

    def __init__(self, fleet: Any, prefix: str, data: Path, ports: dict[str, int]) -> None:
        self.fleet, self.prefix, self.data, self.ports = fleet, prefix, data, ports
        self.network = f"{prefix}cryptolabs"
        self.prometheus = f"http://127.0.0.1:{ports['prometheus']}/prometheus"
        self.https = f"https://127.0.0.1:{ports['https']}"

    @property
    def tls(self) -> ssl.SSLContext:
        return tls_context(self.data / "stack" / "proxy" / "certs" / "selfsigned.crt")

    def ids(self) -> dict[str, str]:
        return container_ids(self.prefix)

    def apply(self) -> tuple[Any, list[str]]:
        lines: list[str] = []
        report = self.fleet.apply_stack(progress=lines.append, timeout_s=90)
        return report, lines


@contextlib.contextmanager
def stack_lab(data: Path, **options: object) -> Iterator[Lab]:
    """Prometheus and the proxy (plus what ``options`` turn on) on local images;
    everything the lab made is removed afterwards."""
    import dc_overview

    prefix = new_prefix()
    ports = {"http": free_port(), "https": free_port(), "prometheus": free_port()}
    fleet = dc_overview.open(data)
    settings = {
        "name_prefix": prefix, "network": f"{prefix}cryptolabs", "prometheus_image": PROMETHEUS_IMAGE,
        "alertmanager_image": PROMETHEUS_IMAGE, "proxy_image": NGINX_IMAGE, "grafana": "no", "web_app": "no", "bind_address": "127.0.0.1",
        "http_port": ports["http"], "https_port": ports["https"], "prometheus_local_port": ports["prometheus"],
        "scrape_interval": "2s",
    } | options
    try:
        for name, value in settings.items():
            fleet.set_stack_option(name, value)
        yield Lab(fleet, prefix, data, ports)
    finally:
        fleet.close()
        remove_stack(prefix, f"{prefix}cryptolabs", [f"{prefix}node1"])
