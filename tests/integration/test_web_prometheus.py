"""The dashboard's live data from a real Prometheus (Debian's, on loopback,
served under /prometheus/ as in the stack) scraping a real exporter
endpoint; and the adapter's answers when Prometheus is absent, slow or
something else."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from dc_overview.adapters.prometheus_query import PrometheusQuery
from dc_overview.frontends.web_context import WebConfig

from dc_overview import errors
from tests.support.web import make_web
from tests.support.web_stack import (
    free_port,
    gpu_exposition,
    serve_metrics,
    start_prometheus,
    stop,
)

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def exporter() -> Iterator[int]:
    port, stop_serving = serve_metrics(gpu_exposition([91, 64], [100, 50]))
    yield port
    stop_serving()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, exporter) -> Iterator[str]:
    process, base = start_prometheus(tmp_path_factory.mktemp("prometheus"), [
        {"targets": [f"127.0.0.1:{exporter}"], "labels": {"server": "gpu-01", "exporter": "gpu_exporter"}},
        {"targets": [f"127.0.0.1:{free_port()}"], "labels": {"server": "gpu-02", "exporter": "node_exporter"}},
    ])
    yield base
    stop(process)


async def test_tiles_show_live_temperature_utilisation_and_dead_exporters(aiohttp_client, tmp_path, prometheus):
    web = await make_web(aiohttp_client, tmp_path, WebConfig(prometheus_api=prometheus))
    await web.fleet.add_server("gpu-01", "127.0.0.1")
    await web.fleet.add_server("gpu-02", "127.0.0.2")
    await web.fleet.add_server("gpu-03", "127.0.0.3")
    found = await (await web.client.get("/api/overview", headers=web.viewer)).json()
    assert found["prometheus"] == {"reachable": True, "url": prometheus, "error": None}
    tiles = {t["name"]: t for t in found["tiles"]}
    assert (tiles["gpu-01"]["health"], tiles["gpu-01"]["reason"]) == ("critical", "GPU at 91 °C")
    assert (tiles["gpu-01"]["max_gpu_temp"], tiles["gpu-01"]["avg_gpu_util"], tiles["gpu-01"]["gpu_count"]) == (91, 75, 2)
    assert (tiles["gpu-02"]["health"], tiles["gpu-02"]["reason"]) == ("critical", "exporters down")
    assert (tiles["gpu-03"]["health"], tiles["gpu-03"]["exporters_up"]) == ("unknown", 0)
    assert (found["exporters_up"], found["exporters_down"], found["gpus_total"]) == (1, 1, 2)
    page = await (await web.client.get("/", headers=web.viewer)).text()
    assert 'class="tile tile-critical"' in page and "91 °C" in page and "75 %" in page
    await web.fleet.close()


async def test_the_prometheus_url_setting_is_used_when_it_is_absolute(aiohttp_client, tmp_path, prometheus):
    web = await make_web(aiohttp_client, tmp_path)
    await web.fleet.set_setting("prometheus_url", prometheus)
    await web.fleet.add_server("gpu-01", "127.0.0.1")
    found = await (await web.client.get("/api/overview", headers=web.viewer)).json()
    assert found["prometheus"]["reachable"] and found["tiles"][0]["max_gpu_temp"] == 91
    await web.fleet.close()


async def test_the_adapter_says_why_prometheus_could_not_be_asked(prometheus, exporter):
    client = PrometheusQuery()
    samples = await client.query(prometheus, "DCGM_FI_DEV_GPU_TEMP", timeout=3)
    assert sorted(s.value for s in samples) == [64.0, 91.0]
    assert {s.labels["server"] for s in samples} == {"gpu-01"}
    assert await client.query(prometheus, "vector(1)[5m:1m]", timeout=3) == []  # not a vector: nothing to show
    with pytest.raises(errors.MetricsUnavailable, match="refused the query"):
        await client.query(prometheus, "sum(", timeout=3)
    with pytest.raises(errors.MetricsUnavailable, match="did not answer like Prometheus"):
        await client.query(f"http://127.0.0.1:{exporter}/", "up", timeout=3)
    with pytest.raises(errors.MetricsUnavailable, match="cannot be reached"):
        await client.query(f"http://127.0.0.1:{free_port()}/", "up", timeout=3)


async def test_a_prometheus_that_never_answers_costs_the_timeout_and_no_more(aiohttp_client, tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
    try:
        with pytest.raises(errors.MetricsUnavailable, match="did not answer within 0.5 s"):
            await PrometheusQuery().query(url, "up", timeout=0.5)
        web = await make_web(aiohttp_client, tmp_path, WebConfig(prometheus_api=url))
        await web.fleet.add_server("gpu-01", "127.0.0.1")
        started = time.monotonic()
        found = await (await web.client.get("/api/overview", headers=web.viewer)).json()
        print(f"overview with a silent Prometheus answered in {time.monotonic() - started:.2f} s")
        assert found["prometheus"]["reachable"] is False and "did not answer within" in found["prometheus"]["error"]
        assert found["tiles"][0]["name"] == "gpu-01"
        await web.fleet.close()
    finally:
        silent.close()
        await asyncio.sleep(0)
