"""The dashboard's overview (inventory + Prometheus) and the services list,
over hand-written fakes."""

from __future__ import annotations

import attrs
import pytest

from dc_overview import errors, overview, services
from dc_overview.domain import ExporterState, Server, ServerStatus
from dc_overview.ports import ContainerInfo, Sample
from tests.fakes import FakeMetrics, fake_deps

PROM = "http://prometheus:9090/prometheus/"


def server(name: str, address: str, status: ServerStatus = ServerStatus.UNKNOWN, gpus: int | None = None,
           **exporters: bool) -> Server:
    return Server(name=name, address=address, status=status, gpu_count=gpus,
                  exporters={k: ExporterState(installed=v) for k, v in exporters.items()})


def fleet_with(*servers: Server, metrics: FakeMetrics | None = None, prometheus_url: str = PROM):
    deps = fake_deps(metrics=metrics or FakeMetrics())
    for s in servers:
        deps.storage.add_server(s)
    deps.storage.save_setting("prometheus_url", prometheus_url)
    return deps


def samples(**by_server: float) -> list[Sample]:
    return [Sample(labels={"server": name}, value=value) for name, value in by_server.items()]


async def test_without_prometheus_the_inventory_alone_colours_the_tiles():
    deps = fleet_with(
        server("a-ok", "10.0.0.1", ServerStatus.ONLINE, 4, node_exporter=True, gpu_exporter=True),
        server("b-off", "10.0.0.2", ServerStatus.OFFLINE, 8),
        server("c-new", "10.0.0.3"),
        server("d-auth", "10.0.0.4", ServerStatus.AUTH_FAILED),
        server("e-err", "10.0.0.5", ServerStatus.ERROR),
        metrics=FakeMetrics(down="connection refused"),
    )
    found = await overview.fleet_overview(deps)
    health = {t.name: (t.health, t.reason) for t in found.tiles}
    assert health == {
        "a-ok": ("ok", "online"), "b-off": ("critical", "offline"), "c-new": ("unknown", "not checked yet"),
        "d-auth": ("critical", "SSH login refused"), "e-err": ("critical", "check failed"),
    }
    assert (found.servers_total, found.servers_online, found.servers_offline, found.servers_unknown) == (5, 2, 2, 1)
    assert found.gpus_total == 12 and found.exporters_installed == 2
    assert found.exporters_up is None and not found.prometheus.reachable
    assert found.prometheus.error == "connection refused"


async def test_prometheus_adds_live_health_temperatures_and_utilisation():
    up = [Sample({"server": "hot", "exporter": "node_exporter"}, 1), Sample({"server": "hot", "exporter": "gpu_exporter"}, 1),
          Sample({"server": "half", "exporter": "node_exporter"}, 1), Sample({"server": "half", "exporter": "gpu_exporter"}, 0),
          Sample({"server": "dead", "exporter": "node_exporter"}, 0),
          Sample({"server": "warm", "exporter": "node_exporter"}, 1),
          Sample({"server": "not-ours", "exporter": "node_exporter"}, 1)]  # Prometheus scrapes more than the inventory
    metrics = FakeMetrics({
        overview.QUERIES["up"]: up,
        overview.QUERIES["temp"]: samples(hot=93.0, warm=81.5, half=60.0),
        overview.QUERIES["util"]: samples(hot=99.5, warm=40.0),
        overview.QUERIES["gpus"]: samples(hot=8, warm=2),
    })
    deps = fleet_with(
        server("hot", "10.0.0.1", ServerStatus.UNKNOWN), server("half", "10.0.0.2", ServerStatus.ONLINE, 1),
        server("dead", "10.0.0.3", ServerStatus.ONLINE), server("warm", "10.0.0.4", ServerStatus.OFFLINE, 4),
        server("quiet", "10.0.0.5", ServerStatus.ONLINE),
        metrics=metrics,
    )
    found = await overview.fleet_overview(deps)
    tiles = {t.name: t for t in found.tiles}
    assert (tiles["hot"].health, tiles["hot"].reason) == ("critical", "GPU at 93 °C")
    assert (tiles["hot"].max_gpu_temp, tiles["hot"].avg_gpu_util, tiles["hot"].gpu_count) == (93.0, 99.5, 8)
    assert (tiles["warm"].health, tiles["warm"].reason) == ("warn", "GPU at 82 °C")  # Prometheus beats the old check
    assert (tiles["half"].health, tiles["half"].reason) == ("warn", "1 exporter down")
    assert (tiles["dead"].health, tiles["dead"].reason) == ("critical", "exporters down")
    assert (tiles["quiet"].health, tiles["quiet"].exporters_up) == ("ok", 0)  # not scraped: the check decides
    assert found.prometheus.reachable and found.prometheus.url == PROM
    assert (found.exporters_up, found.exporters_down) == (4, 2)
    assert (found.servers_online, found.servers_offline) == (4, 1)
    assert found.gpus_total == 8 + 1 + 4
    assert {q for _, q in metrics.asked} == set(overview.QUERIES.values())
    assert {u for u, _ in metrics.asked} == {PROM}


async def test_a_relative_prometheus_url_is_a_browser_link_not_an_api():
    metrics = FakeMetrics()
    deps = fleet_with(server("a", "10.0.0.1"), metrics=metrics, prometheus_url="/prometheus/")
    found = await overview.fleet_overview(deps)
    assert not found.prometheus.reachable and "--prometheus-api" in found.prometheus.error
    assert metrics.asked == []
    given = await overview.fleet_overview(deps, prometheus_api="http://127.0.0.1:9090")
    assert given.prometheus.reachable and metrics.asked[0][0] == "http://127.0.0.1:9090"


def test_an_ssh_failure_on_a_scraped_server_is_a_warning_not_an_outage():
    assert overview._health(ServerStatus.AUTH_FAILED, True, True, 0, None) == ("warn", "SSH login refused")
    assert overview._health(ServerStatus.AUTH_FAILED, True, False, None, None)[0] == "critical"


@pytest.mark.parametrize("configured, setting, expected", [
    (None, "/prometheus/", None), (None, "http://p:9090/", "http://p:9090/"),
    ("https://x/", "http://p:9090/", "https://x/"), ("", "ftp://x", None),
])
def test_where_prometheus_is_asked(configured, setting, expected):
    assert overview.prometheus_api_url(configured, setting) == expected


# -- services -------------------------------------------------------------------------------------


class StubRuntime:
    """Answers inspect() from a dict; ``broken`` raises as the port says an
    engine that cannot be reached does."""

    def __init__(self, infos: dict[str, ContainerInfo], up: bool = True, broken: bool = False) -> None:
        self.infos, self.up, self.broken = infos, up, broken

    async def available(self) -> bool:
        return self.up

    async def containers(self, label: str) -> list[ContainerInfo]:
        return list(self.infos.values())

    async def inspect(self, name: str) -> ContainerInfo | None:
        if self.broken:
            raise errors.EngineUnavailable("engine socket closed")
        return self.infos.get(name)


async def test_without_a_container_engine_nothing_runs():
    states = await services.service_states(fake_deps())
    assert list(states) == ["cryptolabs-proxy", "ipmi-monitor", "dc-overview", "grafana", "prometheus",
                            "vastai-exporter", "runpod-exporter"]  # the landing page's order
    assert not [n for n, s in states.items() if s.running]
    assert attrs.asdict(states["grafana"]) == {"running": False, "healthy": False, "container": "grafana",
                                               "port": 3000, "image": None}


async def test_services_come_from_the_containers_that_run():
    runtime = StubRuntime({
        "grafana": ContainerInfo("grafana", "grafana/grafana:11", "running", "healthy"),
        "prometheus": ContainerInfo("prometheus", "prom/prometheus:v2", "running", "unhealthy"),
        "ipmi-monitor": ContainerInfo("ipmi-monitor", "ipmi:1", "exited"),
    })
    states = await services.service_states(fake_deps(runtime=runtime))
    assert (states["grafana"].running, states["grafana"].healthy, states["grafana"].image) == (True, True, "grafana/grafana:11")
    assert (states["prometheus"].running, states["prometheus"].healthy) == (True, False)
    assert (states["ipmi-monitor"].running, states["ipmi-monitor"].container) == (False, "ipmi-monitor")
    for broken in (StubRuntime({}, up=False), StubRuntime(runtime.infos, broken=True)):
        states = await services.service_states(fake_deps(runtime=broken))
        assert not [n for n, s in states.items() if s.running]
