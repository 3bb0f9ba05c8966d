"""node.json: one server's machine metrics from node_exporter (names of
node_exporter 1.5, as in Debian 12's prometheus-node-exporter)."""

from __future__ import annotations

from .grafana import Dashboard, bargauge, q, query_variable, stat, steps, timeseries, value_map

UID = "dc-node"

N = 'instance="$instance"'
FS = N + ',fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs|nsfs|fuse.*"'
NIC = N + ',device!~"lo|veth.*|docker.*|br-.*"'
USED_STEPS = steps(("green", None), ("orange", 80), ("red", 90))
CORES = f'count(node_cpu_seconds_total{{{N},mode="idle"}})'


def build() -> dict:
    d = Dashboard(
        UID, "Node",
        "One server's CPU, memory, disks, network and clock, from node_exporter.",
        tags=["node"],
        variables=[
            query_variable("server", "Server", 'label_values(up{job="node"}, server)'),
            query_variable("instance", "Exporter", 'label_values(up{job="node",server="$server"}, instance)',
                           description="The server's node_exporter (host:port)"),
        ],
    )

    d.row("Overview")
    d.add(stat("Up for", "Time since the server booted.",
               [q(f"time() - node_boot_time_seconds{{{N}}}")], "s", decimals=1), 3, 4)
    d.add(stat("CPU cores", "Logical CPUs.", [q(CORES)], decimals=0), 3, 4)
    d.add(stat("Memory", "Physical memory.", [q(f"node_memory_MemTotal_bytes{{{N}}}")], "bytes"), 3, 4)
    d.add(stat("CPU busy", "Share of CPU time not idle.",
               [q(f'(1 - avg(rate(node_cpu_seconds_total{{{N},mode="idle"}}[$__rate_interval]))) * 100')],
               "percent", thresholds=USED_STEPS, graph=True), 3, 4)
    d.add(stat("Memory used", "Memory not available to new work (total minus MemAvailable). "
               "Alert MemoryPressure: above 90% for 10 minutes.",
               [q(f"(1 - node_memory_MemAvailable_bytes{{{N}}} / node_memory_MemTotal_bytes{{{N}}}) * 100")],
               "percent", thresholds=USED_STEPS, graph=True), 3, 4)
    d.add(stat("Fullest filesystem", "The fullest real filesystem. Alerts at 90% and 97%.",
               [q(f"max((1 - node_filesystem_avail_bytes{{{FS}}} / node_filesystem_size_bytes{{{FS}}}) * 100)")],
               "percent", thresholds=USED_STEPS), 3, 4)
    d.add(stat("Load, 1 min", "Runnable and waiting tasks, averaged over a minute; compare with the cores.",
               [q(f"node_load1{{{N}}}")], decimals=2, graph=True), 3, 4)
    d.add(stat("System", "Operating system and kernel.",
               [q(f"node_os_info{{{N}}}", "{{pretty_name}}"), q(f"node_uname_info{{{N}}}", "{{release}}")],
               text_mode="name"), 3, 4)

    d.row("CPU")
    d.add(timeseries("CPU use by mode", "CPU time by mode, as a share of all cores (iowait: waiting for disks).",
                     [q(f'sum by (mode) (rate(node_cpu_seconds_total{{{N},mode!="idle"}}[$__rate_interval])) '
                        f"/ scalar({CORES}) * 100", "{{mode}}")], "percent", stack=True, minimum=0,
                     maximum=100), 12, 8)
    d.add(timeseries("Load average", "Load over 1, 5 and 15 minutes, against the number of cores.",
                     [q(f"node_load1{{{N}}}", "1 min"), q(f"node_load5{{{N}}}", "5 min"),
                      q(f"node_load15{{{N}}}", "15 min"), q(CORES, "cores")], "short", minimum=0), 6, 8)
    d.add(timeseries("Processes", "Processes running and blocked on I/O.",
                     [q(f"node_procs_running{{{N}}}", "running"), q(f"node_procs_blocked{{{N}}}", "blocked")],
                     "short", minimum=0), 6, 8)

    d.row("Memory")
    d.add(timeseries("Memory", "Used (total minus available), page cache and buffers.",
                     [q(f"node_memory_MemTotal_bytes{{{N}}} - node_memory_MemAvailable_bytes{{{N}}}", "used"),
                      q(f"node_memory_Cached_bytes{{{N}}}", "cache"), q(f"node_memory_Buffers_bytes{{{N}}}", "buffers"),
                      q(f"node_memory_MemAvailable_bytes{{{N}}}", "available"),
                      q(f"node_memory_MemTotal_bytes{{{N}}}", "total")], "bytes", minimum=0), 8, 8)
    d.add(timeseries("Swap used", "Swap in use.",
                     [q(f"node_memory_SwapTotal_bytes{{{N}}} - node_memory_SwapFree_bytes{{{N}}}", "used"),
                      q(f"node_memory_SwapTotal_bytes{{{N}}}", "total")], "bytes", minimum=0), 8, 8)
    d.add(timeseries("Memory pressure", "Major page faults (reads from disk) and pages swapped per second: "
                     "when these climb, the server is short of memory.",
                     [q(f"rate(node_vmstat_pgmajfault{{{N}}}[$__rate_interval])", "major faults"),
                      q(f"rate(node_vmstat_pswpin{{{N}}}[$__rate_interval])", "swapped in"),
                      q(f"rate(node_vmstat_pswpout{{{N}}}[$__rate_interval])", "swapped out")],
                     "short", minimum=0), 8, 8)
    d.add(stat("OOM kills, selected range", "Processes the kernel killed for lack of memory (alert OomKill).",
               [q(f"increase(node_vmstat_oom_kill{{{N}}}[$__range])")], decimals=0,
               thresholds=steps(("green", None), ("red", 1))), 4, 4)

    d.row("Disks")
    d.add(bargauge("Filesystems used", "How full each real filesystem is.",
                   [q(f"(1 - node_filesystem_avail_bytes{{{FS}}} / node_filesystem_size_bytes{{{FS}}}) * 100",
                      "{{mountpoint}}", instant=True)], "percent", thresholds=USED_STEPS, minimum=0,
                   maximum=100), 8, 8)
    d.add(timeseries("Filesystem space free", "Free space per filesystem.",
                     [q(f"node_filesystem_avail_bytes{{{FS}}}", "{{mountpoint}}")], "bytes", minimum=0), 8, 8)
    d.add(timeseries("Disk throughput", "Bytes read and written per second per disk.",
                     [q(f"rate(node_disk_read_bytes_total{{{N}}}[$__rate_interval])", "{{device}} read"),
                      q(f"rate(node_disk_written_bytes_total{{{N}}}[$__rate_interval])", "{{device}} written")],
                     "Bps", minimum=0), 8, 8)
    d.add(timeseries("Disk busy", "Share of time each disk was busy with I/O.",
                     [q(f"rate(node_disk_io_time_seconds_total{{{N}}}[$__rate_interval]) * 100", "{{device}}")],
                     "percent", minimum=0, maximum=100), 12, 8)
    d.add(timeseries("Disk operations", "Reads and writes completed per second per disk.",
                     [q(f"rate(node_disk_reads_completed_total{{{N}}}[$__rate_interval])", "{{device}} reads"),
                      q(f"rate(node_disk_writes_completed_total{{{N}}}[$__rate_interval])", "{{device}} writes")],
                     "iops", minimum=0), 12, 8)

    d.row("Network")
    d.add(timeseries("Network traffic", "Bits received and sent per second per interface.",
                     [q(f"rate(node_network_receive_bytes_total{{{NIC}}}[$__rate_interval]) * 8", "{{device}} in"),
                      q(f"rate(node_network_transmit_bytes_total{{{NIC}}}[$__rate_interval]) * 8", "{{device}} out")],
                     "bps", minimum=0), 12, 8)
    d.add(timeseries("Network errors and drops", "Packets per second received or sent with errors, or dropped.",
                     [q(f"rate(node_network_receive_errs_total{{{NIC}}}[$__rate_interval])", "{{device}} in errors"),
                      q(f"rate(node_network_transmit_errs_total{{{NIC}}}[$__rate_interval])", "{{device}} out errors"),
                      q(f"rate(node_network_receive_drop_total{{{NIC}}}[$__rate_interval])", "{{device}} in dropped"),
                      q(f"rate(node_network_transmit_drop_total{{{NIC}}}[$__rate_interval])", "{{device}} out dropped")],
                     "pps", minimum=0), 12, 8)
    d.add(timeseries("TCP connections", "Established TCP connections.",
                     [q(f"node_netstat_Tcp_CurrEstab{{{N}}}", "established")], "short", minimum=0), 12, 7)
    d.add(stat("Clock synchronised", "Whether the kernel clock is synchronised (NTP).",
               [q(f"node_timex_sync_status{{{N}}}")],
               mappings=value_map({0: ("no", "red"), 1: ("yes", "green")})), 4, 7)
    d.add(timeseries("Clock offset", "The clock's offset from its time source, as the kernel estimates it.",
                     [q(f"node_timex_offset_seconds{{{N}}}", "offset")], "s"), 8, 7)
    return d.to_json()
