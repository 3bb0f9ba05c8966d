"""Every PromQL expression of every dashboard, run against a real Prometheus
scraping real exporters (tests/support/prometheus_lab.py): it parses, every
metric it names is really scraped, and it returns data.

Variables are resolved the way Grafana does, by running the dashboard's own
variable queries; Grafana's macros get values that suit a 1 s scrape. A
single-value server variable is tried with both GPU servers of the lab: the
HBM datacenter one (ECC, HBM temperature, no fans) and the simulated GeForce
one (fans, no ECC). Each query must run cleanly for both and return data for
at least one: a panel may be empty on hardware without that reading, never
everywhere.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.support.grafana_queries import (
    MACROS, Query, label_values_call, load_dashboards, metric_names, queries, substitute, variable_query,
)
from tests.support.prometheus_lab import PrometheusLab, prometheus_lab  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration

DASHBOARDS = load_dashboards()
QUERIES = [query for name, dashboard in DASHBOARDS.items() for query in queries(name, dashboard)]
# which value a single-value variable takes, when offered: one scenario each
SCENARIOS = ({"server": ("gpu-hbm", "gpu-sim")}, {"server": ("gpu-sim",)})


def variable_values(lab: PrometheusLab, query: str) -> list[str]:
    selector, label = label_values_call(query)
    if selector is None:
        return sorted(lab.api(f"label/{label}/values"))
    series = lab.api("series", **{"match[]": selector, "start": time.time() - 120})
    return sorted({s[label] for s in series if label in s})


def resolve(lab: PrometheusLab, dashboard: dict[str, Any], prefer: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Each variable in order, as Grafana resolves them: its query with the
    variables before it substituted; multi-value ones take "All"."""
    values = dict(MACROS)
    for variable in dashboard["templating"]["list"]:
        name = variable["name"]
        options = variable_values(lab, substitute(variable_query(variable), values))
        assert options, f"variable ${name} has no values ({variable_query(variable)})"
        if variable.get("includeAll") and variable.get("multi"):
            values[name] = variable.get("allValue") or "(" + "|".join(map(re.escape, options)) + ")"
        else:
            wanted = [v for v in prefer.get(name, ()) if v in options]
            values[name] = wanted[0] if wanted else options[0]
    return values


@pytest.fixture(scope="module")
def variables(prometheus_lab: PrometheusLab) -> dict[str, list[dict[str, str]]]:
    """Per dashboard, its variables' values in each scenario (duplicates dropped)."""
    found: dict[str, list[dict[str, str]]] = {}
    for name, dashboard in DASHBOARDS.items():
        for prefer in SCENARIOS:
            values = resolve(prometheus_lab, dashboard, prefer)
            if values not in found.setdefault(name, []):
                found[name].append(values)
    return found


@pytest.fixture(scope="module")
def scraped_names(prometheus_lab: PrometheusLab) -> set[str]:
    return prometheus_lab.metric_names()


def run(lab: PrometheusLab, query: Query, expr: str) -> list[dict[str, Any]]:
    if query.instant:
        return lab.query(expr)
    now = time.time()
    return lab.api("query_range", query=expr, start=now - 30, end=now, step=1)["result"]


def test_there_are_queries_to_check():
    assert set(DASHBOARDS) == {"fleet-overview.json", "gpu-detail.json", "node.json", "vastai.json"}
    assert len(QUERIES) > 100


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_query_runs_and_returns_data(prometheus_lab: PrometheusLab, variables, scraped_names, query: Query):
    with_data = []
    for values in variables[query.dashboard]:
        expr = substitute(query.expr, values)
        unknown = metric_names(expr) - scraped_names
        assert not unknown, f"{query.id} queries metrics nothing exports: {sorted(unknown)}\n{expr}"
        result = run(prometheus_lab, query, expr)  # raises when Prometheus refuses the query
        if result:
            if not query.instant:
                assert any(len(s["values"]) > 1 for s in result), f"{query.id}: one point only:\n{expr}"
            with_data.append(expr)
    assert with_data, f"{query.id} returned no data for any server:\n{query.expr}"


def test_both_gpu_servers_are_tried(variables):
    servers = {values["server"] for values in variables["gpu-detail.json"]}
    assert servers == {"gpu-hbm", "gpu-sim"}


def test_every_variable_resolves_to_values(prometheus_lab: PrometheusLab):
    for name, dashboard in DASHBOARDS.items():
        for prefer in SCENARIOS:
            values = resolve(prometheus_lab, dashboard, prefer)  # asserts each variable has options
            for variable in dashboard["templating"]["list"]:
                assert values[variable["name"]], f"{name}: ${variable['name']} is empty"


def test_server_variables_list_every_server_of_their_exporter(prometheus_lab: PrometheusLab):
    """Down servers too: their history is what one looks at after an incident."""
    expected = {"gpu-detail.json": {"gpu-sim", "gpu-hbm", "gpu-dead"}, "node.json": {"gpu-sim", "gpu-dead"},
                "fleet-overview.json": {"gpu-sim", "gpu-hbm", "gpu-dead"}}
    for name, servers in expected.items():
        variable = next(v for v in DASHBOARDS[name]["templating"]["list"] if v["name"] == "server")
        assert set(variable_values(prometheus_lab, variable_query(variable))) == servers, name


def test_the_name_check_catches_a_metric_nothing_exports(scraped_names):
    """The guard above is real: a made-up name is reported."""
    assert metric_names('sum(rate(DCGM_FI_DEV_NOT_A_METRIC{gpu="0"}[5m])) / DCGM_FI_DEV_GPU_TEMP') - scraped_names == {
        "DCGM_FI_DEV_NOT_A_METRIC"}
