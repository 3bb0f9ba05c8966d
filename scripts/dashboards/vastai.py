"""vastai.json: Vast.ai earnings, rentals and occupancy, from the public
vastai-exporter (500farm/prometheus-vastai, image 500farm/vastai-exporter,
port 8622) that the stack runs. Its machine series carry only machine_id;
hostnames come from joining vastai_machine_info."""

from __future__ import annotations

from .grafana import Dashboard, bargauge, q, stat, steps, table, timeseries, value_map

UID = "dc-vastai"

NAMES = "on (machine_id) group_left (hostname, gpu_name) vastai_machine_info"
RENTED = 'rental_type=~"ondemand|reserved|bid"'
EARNED = "(paid out + pending payout)"
USD = "currencyUSD"


def earned(window: str) -> str:
    """Dollars earned over ``window``: the growth of paid out + pending
    payout (a payout moves money from one to the other)."""
    return f"(sum(delta(vastai_paid_out_dollars[{window}])) + sum(delta(vastai_pending_payout_dollars[{window}])))"


def per_machine(expr: str) -> str:
    return f"max by (machine_id, hostname, gpu_name) ({expr} * {NAMES})"


def build() -> dict:
    d = Dashboard(
        UID, "Vast.ai",
        "Earnings, rentals and occupancy of the Vast.ai machines, from the vastai-exporter "
        "(stack option vastai_exporter).",
        tags=["vastai"], time_from="now-7d", refresh="5m",
    )

    d.row("Earnings")
    d.add(stat("Earned, last 24 h", f"Growth of {EARNED} over the last 24 hours, after Vast.ai's fees.",
               [q(earned("24h"))], USD, decimals=2, graph=True), 4, 5)
    d.add(stat("Earned, selected range", f"Growth of {EARNED} over the dashboard's time range.",
               [q(earned("$__range"))], USD, decimals=2), 4, 5)
    d.add(stat("Pending payout", "Earned and not paid out yet.",
               [q("sum(vastai_pending_payout_dollars)")], USD, decimals=2, graph=True), 4, 5)
    d.add(stat("Paid out, all time", "Everything Vast.ai has paid out.",
               [q("sum(vastai_paid_out_dollars)")], USD, decimals=2), 4, 5)
    d.add(stat("On-demand income at list price", "GPUs rented on demand times each machine's on-demand price, "
               "per hour, before fees. Interruptible (bid) rentals pay less and are not in it.",
               [q('sum(vastai_machine_used_gpu_count{rental_type="ondemand"} '
                  "* on (machine_id) group_left vastai_machine_ondemand_price_per_gpu_dollars)")],
               USD, decimals=2), 4, 5)
    d.add(stat("Last payout", "When Vast.ai last paid out.",
               [q("max(vastai_last_payout_time) * 1000")], "dateTimeFromNow"), 4, 5)
    d.add(timeseries("Earnings per hour", f"Growth of {EARNED} per hour, averaged over 6 hours.",
                     [q(f"{earned('6h')} / 6", "earned per hour")], USD, minimum=0, decimals=2), 12, 8)
    d.add(timeseries("Pending payout", "Earned and not paid out yet; it drops at each payout.",
                     [q("sum(vastai_pending_payout_dollars)", "pending")], USD, minimum=0, decimals=2), 12, 8)

    d.row("Occupancy")
    d.add(stat("GPUs", "GPUs on all Vast.ai machines.", [q("sum(vastai_machine_gpu_count)")], decimals=0), 4, 5)
    d.add(stat("GPUs rented", "GPUs running a client's rental: on demand, reserved or interruptible (bid).",
               [q(f"sum(vastai_machine_used_gpu_count{{{RENTED}}})")], decimals=0, graph=True), 4, 5)
    d.add(stat("Occupancy", "GPUs rented as a share of all GPUs.",
               [q(f"sum(vastai_machine_used_gpu_count{{{RENTED}}}) / sum(vastai_machine_gpu_count) * 100")],
               "percent", decimals=0, graph=True,
               thresholds=steps(("red", None), ("orange", 50), ("green", 80))), 4, 5)
    d.add(timeseries("GPUs by rental type", "GPUs per rental type: ondemand, reserved, bid (interruptible), "
                     "default (your default job on idle GPUs) and my (your own instances); the rest are idle.",
                     [q("sum by (rental_type) (vastai_machine_used_gpu_count)", "{{rental_type}}"),
                      q('sum(vastai_machine_gpu_count) - sum(vastai_machine_used_gpu_count{rental_type=~"ondemand|'
                        'reserved|bid|my"})', "idle")],
                     "short", stack=True, minimum=0, decimals=0), 12, 10)
    d.add(bargauge("Occupancy per machine", "GPUs rented by clients as a share of each machine's GPUs.",
                   [q(per_machine(f"(sum by (machine_id) (vastai_machine_used_gpu_count{{{RENTED}}}) "
                                  "/ sum by (machine_id) (vastai_machine_gpu_count) * 100)"),
                      "{{hostname}}", instant=True)], "percent", minimum=0, maximum=100, decimals=0,
                   thresholds=steps(("red", None), ("orange", 50), ("green", 80))), 12, 10)

    d.row("Rentals")
    d.add(timeseries("Running rentals by type", "Client rentals running: on demand and interruptible (bid).",
                     [q('sum by (rental_type) (vastai_machine_rentals_count{rental_status="running",'
                        'rental_type=~"ondemand|bid"})', "{{rental_type}}")], "short", stack=True, minimum=0,
                     decimals=0), 12, 8)
    d.add(timeseries("Stopped rentals by type", "Rentals stopped but still holding their disk on the machines.",
                     [q('sum by (rental_type) (vastai_machine_rentals_count{rental_status="stopped",'
                        'rental_type=~"ondemand|bid"})', "{{rental_type}}")], "short", stack=True, minimum=0,
                     decimals=0), 12, 8)

    d.row("Machines")
    yes_no = value_map({0: ("no", "red"), 1: ("yes", "green")})
    d.add(table("Machines", "Each Vast.ai machine: GPUs, listing, online and verification state, reliability "
                "and on-demand price per GPU per hour.",
                [q(per_machine("vastai_machine_gpu_count"), table=True),
                 q(per_machine("vastai_machine_is_listed"), table=True),
                 q(per_machine("vastai_machine_is_online"), table=True),
                 q(per_machine("vastai_machine_is_verified"), table=True),
                 q(per_machine("vastai_machine_reliability"), table=True),
                 q(per_machine("vastai_machine_ondemand_price_per_gpu_dollars"), table=True)],
                columns={"hostname": "Machine", "machine_id": "ID", "gpu_name": "GPU", "Value #A": "GPUs",
                         "Value #B": "Listed", "Value #C": "Online", "Value #D": "Verified",
                         "Value #E": "Reliability", "Value #F": "Price per GPU-hour"},
                overrides=[
                    *({"matcher": {"id": "byName", "options": name},
                       "properties": [{"id": "mappings", "value": yes_no},
                                      {"id": "custom.cellOptions", "value": {"type": "color-text"}}]}
                      for name in ("Listed", "Online", "Verified")),
                    {"matcher": {"id": "byName", "options": "Reliability"},
                     "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 2}]},
                    {"matcher": {"id": "byName", "options": "Price per GPU-hour"},
                     "properties": [{"id": "unit", "value": USD}, {"id": "decimals", "value": 3}]},
                ]), 24, 9)
    d.add(timeseries("Reliability per machine", "Vast.ai's reliability score; offers rank lower as it drops.",
                     [q(per_machine("vastai_machine_reliability"), "{{hostname}}")], "percentunit",
                     decimals=3), 12, 8)
    d.add(timeseries("Internet speed per machine", "Measured upload and download speed.",
                     [q(f'max by (machine_id, hostname, gpu_name, direction) (vastai_machine_inet_bps * {NAMES})',
                        "{{hostname}} {{direction}}")], "bps", minimum=0), 12, 8)
    return d.to_json()
