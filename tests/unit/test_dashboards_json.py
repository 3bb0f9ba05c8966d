"""The packaged Grafana dashboards are well-formed Grafana dashboard JSON:
schema version, unique panel ids, a place on the grid for each panel, the
data source the stack provisions, variables that resolve, links that lead
somewhere. And each file is what its definition in scripts/dashboards/
writes, so nobody edits one and not the other."""

from __future__ import annotations

import importlib.resources
import json
import re
from itertools import combinations
from pathlib import Path

import pytest

from scripts.dashboards import BUILDERS, rendered
from tests.support.grafana_queries import (
    MACROS, all_panels, label_values_call, load_dashboards, metric_names, queries, references, variable_query,
)

ROOT = Path(__file__).resolve().parents[2]
DATASOURCE_PROVISIONING = ROOT / "templates" / "stack" / "grafana" / "datasource.yml.j2"
DASHBOARDS = load_dashboards()
NAMES = sorted(DASHBOARDS)
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "state-timeline", "text"}
GRID = 24


def provisioned_uids() -> set[str]:
    """The data source uids Grafana's provisioning file (of the stack) defines."""
    return set(re.findall(r"^\s*uid:\s*([\w-]+)\s*$", DATASOURCE_PROVISIONING.read_text(), re.M))


def test_the_four_dashboards_ship_as_package_data():
    folder = importlib.resources.files("dc_overview.dashboards")
    packaged = {entry.name for entry in folder.iterdir() if entry.name.endswith(".json")}
    assert packaged == {"fleet-overview.json", "gpu-detail.json", "node.json", "vastai.json"}
    assert set(DASHBOARDS) == packaged


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_file_matches_its_definition(name):
    assert (ROOT / "dashboards" / name).read_text() == rendered()[name], (
        f"dashboards/{name} differs from scripts/dashboards: run `python -m scripts.dashboards`")


def test_uids_and_titles_are_unique():
    uids = [d["uid"] for d in DASHBOARDS.values()]
    titles = [d["title"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids) and len(set(titles)) == len(titles)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid) for uid in uids)


@pytest.mark.parametrize("name", NAMES)
def test_top_level_fields(name):
    d = DASHBOARDS[name]
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    assert d["title"] and d["description"]
    assert "dc-overview" in d["tags"]
    assert d["time"]["from"].startswith("now-") and d["time"]["to"] == "now"
    assert isinstance(d["templating"]["list"], list)
    assert d["panels"]
    assert "id" not in d or d["id"] is None  # provisioning assigns the database id


@pytest.mark.parametrize("name", NAMES)
def test_panel_ids_are_unique_and_every_panel_has_a_place(name):
    panels = list(all_panels(DASHBOARDS[name]))
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids)
    for p in panels:
        assert p["type"] in PANEL_TYPES, p["type"]
        assert p.get("title"), p
        pos = p["gridPos"]
        assert all(isinstance(pos[k], int) for k in ("h", "w", "x", "y")), p["title"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0 and pos["x"] + pos["w"] <= GRID


@pytest.mark.parametrize("name", NAMES)
def test_panels_do_not_overlap(name):
    boxes = [(p["title"], p["gridPos"]) for p in DASHBOARDS[name]["panels"]]
    for (a, pa), (b, pb) in combinations(boxes, 2):
        apart = (pa["x"] + pa["w"] <= pb["x"] or pb["x"] + pb["w"] <= pa["x"]
                 or pa["y"] + pa["h"] <= pb["y"] or pb["y"] + pb["h"] <= pa["y"])
        assert apart, f"{a!r} and {b!r} overlap"


def test_the_stack_provisions_a_prometheus_data_source_uid():
    assert provisioned_uids(), f"no uid in {DATASOURCE_PROVISIONING}"


@pytest.mark.parametrize("name", NAMES)
def test_every_data_source_is_one_the_provisioning_defines(name):
    uids = provisioned_uids()
    d = DASHBOARDS[name]
    refs = [v["datasource"] for v in d["templating"]["list"]]
    for panel in all_panels(d):
        if panel["type"] == "row":
            continue
        refs.append(panel["datasource"])
        refs += [t["datasource"] for t in panel["targets"]]
    for ref in refs:
        assert ref == {"type": "prometheus", "uid": ref["uid"]} and ref["uid"] in uids, ref


@pytest.mark.parametrize("name", NAMES)
def test_every_panel_has_targets_with_unique_ref_ids(name):
    for panel in all_panels(DASHBOARDS[name]):
        if panel["type"] == "row":
            continue
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert "defaults" in panel["fieldConfig"] and isinstance(panel["options"], dict)
        assert panel.get("description"), f"{panel['title']}: say what the panel shows"


@pytest.mark.parametrize("name", NAMES)
def test_variables_resolve(name):
    """Every $reference is a variable defined before its use, or a Grafana
    macro; variable queries are label_values() calls."""
    d = DASHBOARDS[name]
    defined: set[str] = set(MACROS)
    for variable in d["templating"]["list"]:
        query = variable_query(variable)
        # a plain string, which Grafana runs as it is (an object needs the editor's fields)
        assert isinstance(variable["query"], str) and variable["definition"] == query
        assert references(query) <= defined, f"${variable['name']} uses {references(query) - defined}"
        label_values_call(query)
        assert variable["type"] == "query" and variable["refresh"] in (1, 2)
        if variable.get("includeAll"):
            assert variable.get("allValue") == ".*"
        defined.add(variable["name"])
    for query in queries(name, d):
        assert references(query.expr) <= defined, f"{query.id}: {references(query.expr) - defined}"


def test_gpu_dashboards_have_instance_and_gpu_variables():
    names = {v["name"] for v in DASHBOARDS["gpu-detail.json"]["templating"]["list"]}
    assert {"server", "instance", "gpu"} <= names
    assert {"server", "instance"} <= {v["name"] for v in DASHBOARDS["node.json"]["templating"]["list"]}


@pytest.mark.parametrize("name", NAMES)
def test_data_links_lead_to_packaged_dashboards(name):
    uids = {d["uid"] for d in DASHBOARDS.values()}
    text = json.dumps(DASHBOARDS[name])
    for uid in re.findall(r'"url": "/d/([\w-]+)', text):
        assert uid in uids, uid


def test_the_gpu_detail_dashboard_shows_every_gpu_series_of_the_exporter():
    """Every series the GPU exporter exposes appears in the GPU detail dashboard."""
    from dc_overview.gpu_exporter.metrics import GPU_SERIES

    shown = set().union(*(metric_names(q.expr) for q in queries("gpu-detail.json", DASHBOARDS["gpu-detail.json"])))
    exposed = {s.name for s in GPU_SERIES} | {
        "DCGM_FI_DEV_CLOCKS_THROTTLE_REASON", "DCGM_FI_DEV_XID_ERRORS_TOTAL", "GPU_ERROR_STATE",
        "dc_exporter_gpu_up", "DCXP_GPU_COUNT", "dc_exporter_build_info", "dc_exporter_last_collect_timestamp_seconds",
        "dc_exporter_collect_duration_seconds", "dc_exporter_collect_errors_total",
    }
    assert exposed - shown == set()


def test_fleet_overview_covers_what_an_operator_looks_for():
    titles = {p["title"] for p in all_panels(DASHBOARDS["fleet-overview.json"])}
    for needed in ("Servers up", "Servers down", "GPUs", "GPUs per model", "GPUs missing", "Exporters down",
                   "XIDs in the last 24 hours", "Hottest 10 GPUs", "GPU temperature, all GPUs",
                   "VRAM temperature, all GPUs", "Hotspot temperature, all GPUs", "Fleet power draw",
                   "GPU energy, selected range", "Average GPU utilisation"):
        assert needed in titles, needed
