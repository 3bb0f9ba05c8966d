"""Tables from the suite's results, as text for the terminal or as Markdown
for docs/benchmarks.md:

    python -m bench.report artifacts/bench/latest.json [--markdown]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path


def table(rows: Sequence[Sequence[object]], header: Sequence[str], markdown: bool) -> str:
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def title(text: str, markdown: bool) -> str:
    return f"#### {text}\n\n" if markdown else f"{text}\n\n"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return str(value)


def _ok(r: dict) -> str:
    if r["variant"].startswith("start-up"):
        return f"exit {r['returncode']}"
    return f"{r['ok']}/{r['hosts']}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _check_rows(rows: Iterable[dict], n: int) -> list[dict]:
    return [r for r in rows if r["section"] == "check" and r["hosts"] == n]


def _find(rows: Iterable[dict], tool_prefix: str, variant_prefix: str, concurrency: int | None = None) -> dict | None:
    """The matching run; of several (repeated runs), the median by wall
    time (the lower middle one of an even number). Without a concurrency,
    only those at the first matching run's."""
    found = [r for r in rows if r["tool"].startswith(tool_prefix) and r["variant"].startswith(variant_prefix)
             and (concurrency is None or r["concurrency"] == concurrency)]
    if not found:
        return None
    found = [r for r in found if r["concurrency"] == found[0]["concurrency"]]
    return sorted(found, key=lambda r: r["wall_s"])[(len(found) - 1) // 2]


def _runs(rows: Iterable[dict], tool_prefix: str, variant_prefix: str, concurrency: int) -> int:
    return sum(1 for r in rows if r["tool"].startswith(tool_prefix) and r["variant"].startswith(variant_prefix)
               and r["concurrency"] == concurrency)


def fleet_tables(fleet: dict, markdown: bool) -> str:
    rows = fleet.get("rows", [])
    out = []
    sizes = sorted({r["hosts"] for r in rows if r["section"] == "check"})
    header = ("tool", "how", "conc.", "wall s", "CPU s", "sshd-side CPU s", "max RSS MB", "sum RSS MB", "ok",
              "wall / dc-overview")
    for n in sizes:
        mine = _check_rows(rows, n)
        dc = _find(mine, "dc-overview", "host keys pinned")
        body = [(r["tool"], r["variant"], r["concurrency"], r["wall_s"], r["cpu_s"], r["worker_cpu_s"], r["max_rss_mb"],
                 r["tree_rss_mb"], _ok(r), _ratio(r["wall_s"], dc and dc["wall_s"])) for r in mine]
        out.append(title(f"Fleet check, N = {n}", markdown) + table(body, header, markdown))
        out.append(_verdict(mine, n))
    rollout = [r for r in rows if r["section"] == "rollout"]
    if rollout:
        for n in sorted({r["hosts"] for r in rollout}):
            mine = [r for r in rollout if r["hosts"] == n]
            ours = next((r for r in mine if r["tool"].startswith("dc-overview")), None)
            body = [(r["tool"], r["variant"], r["concurrency"], r["wall_s"], r["cpu_s"], r["worker_cpu_s"],
                     r["max_rss_mb"], r["tree_rss_mb"], f"{r['ok']}/{r['hosts']}",
                     _ratio(r["wall_s"], ours and ours["wall_s"])) for r in mine]
            out.append(title(f"Rollout of a 20 MB binary and a unit file, N = {n}", markdown)
                       + table(body, header, markdown))
    if len(sizes) > 1:
        out.append(scale_table(rows, sizes, markdown))
    limits = [r for r in rows if r["section"] == "limits"]
    if limits:
        body = [(r["tool"], r["variant"], r["hosts"], r["concurrency"], r["wall_s"], r["peak_fds"],
                 f"{r['ok']}/{r['hosts']}", r["returncode"], r["note"][:90]) for r in limits]
        out.append(title("Limits", markdown) + table(body, ("tool", "how", "N", "conc.", "wall s", "peak fds", "ok", "exit", "what happened"),
                                         markdown))
    facts = fleet.get("facts", {})
    if facts:
        out.append("TIME_WAIT sockets on this machine before/after each size's runs: " + ", ".join(
            f"N={key.rsplit('_', 1)[1]}: {v['before']} -> {v['after']}" for key, v in facts.items()
            if key.startswith("time_wait_after_")))
    return "\n\n".join(out)


def _verdict(mine: list[dict], n: int) -> str:
    lines = []
    pinned = [r for r in mine if r["tool"].startswith("dc-overview") and r["variant"].startswith("host keys pinned")]
    for c in sorted({r["concurrency"] for r in pinned}):
        dc = _find(mine, "dc-overview", "host keys pinned", c)
        assert dc is not None
        floor = _find(mine, "bare asyncssh", "floor: the Ansible command", c)
        probe = _find(mine, "bare asyncssh", "floor: dc-overview's probe", c)
        runs = _runs(mine, "dc-overview", "host keys pinned", c)
        median = f" (medians of {runs} runs each)" if runs > 1 else ""
        lines.append(f"- dc-overview at concurrency {c}{median}: {dc['wall_s']:.2f} s = "
                     f"{_ratio(dc['wall_s'], floor and floor['wall_s'])} the bare-asyncssh floor running the Ansible "
                     f"command, {_ratio(dc['wall_s'], probe and probe['wall_s'])} the floor running its own probe "
                     f"script (goal: within 1.3x)")
    dc = _find(mine, "dc-overview", "host keys pinned")
    for module in ("raw", "shell"):
        runs = [r for r in mine if r["tool"] == f"ansible -m {module}" and r["ok"] == r["hosts"]
                and "probe" not in r["variant"]]
        if runs and dc:
            best = min(runs, key=lambda r: r["wall_s"])
            lines.append(f"- Ansible -m {module} at its best here ({best['variant']}): {best['wall_s']:.2f} s, "
                         f"{best['wall_s'] / dc['wall_s']:.1f}x dc-overview's time "
                         f"(goal: {'2' if module == 'raw' else '10'}x or more)")
    same = [r for r in mine if r["tool"] == "ansible -m raw" and "probe" in r["variant"] and r["ok"] == r["hosts"]]
    for r in same:
        if dc:
            lines.append(f"- Same remote work (dc-overview's probe script): Ansible -m raw {r['variant'].split(',')[0]} "
                         f"{r['wall_s']:.2f} s, {r['wall_s'] / dc['wall_s']:.1f}x dc-overview's time")
    return "\n".join(lines)


def scale_table(rows: list[dict], sizes: list[int], markdown: bool) -> str:
    body = []
    for n in sizes:
        mine = _check_rows(rows, n)
        first = _find(mine, "dc-overview", "first run")
        pinned = _find(mine, "dc-overview", "host keys pinned", 50) or _find(mine, "dc-overview", "host keys pinned")
        concurrency = pinned and pinned["concurrency"]
        wide = [r for r in mine if r["tool"].startswith("dc-overview") and r["variant"].startswith("host keys pinned")
                and r["concurrency"] != concurrency]
        floor = _find(mine, "bare asyncssh", "floor: the Ansible command", concurrency)
        probe = _find(mine, "bare asyncssh", "floor: dc-overview's probe", concurrency)
        raw = [r for r in mine if r["tool"] == "ansible -m raw" and "probe" not in r["variant"]]
        best = min(raw, key=lambda r: r["wall_s"]) if raw else None
        body.append((n, first and first["wall_s"], pinned and pinned["wall_s"],
                     pinned and round(pinned["wall_s"] / n * 1000, 1), pinned and pinned["cpu_s"],
                     pinned and pinned["worker_cpu_s"], pinned and pinned["max_rss_mb"], pinned and pinned["peak_fds"],
                     wide[0]["wall_s"] if wide else None, f"c={wide[0]['concurrency']}" if wide else "-",
                     probe and probe["wall_s"], floor and floor["wall_s"],
                     f"{best['wall_s']:.1f} ({best['variant']})" if best else None))
    header = ("N", "first run s", "pinned s (c=50, median)", "ms per host", "CPU s", "sshd-side CPU s", "max RSS MB",
              "peak fds", "pinned s (wide)", "wide c", "floor, probe s", "floor, Ansible cmd s", "Ansible raw best s")
    return title("How `dc-overview check --all` grows with the fleet", markdown) + table(body, header, markdown)


def api_table(api: dict, markdown: bool) -> str:
    rows = [(r["server"], r["path"], r["rps"], r["p50_ms"], r["p99_ms"], r["bytes"], r["errors"], r["rss_mb"],
             r["peak_rss_mb"], r["server_cpu_s"]) for r in api["rows"]]
    header = ("server", "GET", "req/s", "p50 ms", "p99 ms", "body bytes", "errors", "RSS MB", "peak RSS MB",
              "server CPU s")
    goals = api["goals"]
    targets = next(r for r in api["rows"] if r["path"].endswith("targets.json"))
    rounds = [r for r in api["rows"] if r["path"].endswith("targets.json") and r.get("round")] or [targets]
    share = api.get("targets_share_of_ceiling")
    shares = api.get("round_shares") or []
    each = f"; median of {len(shares)} rounds in turn, each: " + ", ".join(f"{x * 100:.1f}%" for x in shares) \
        if len(shares) > 1 else ""
    lines = [
        (f"- targets.json: {api.get('targets_rps', targets['rps']):.1f} req/s = {share * 100:.2f}% of the "
         f"hello-world ceiling ({api['ceiling_rps']:.0f} req/s){each} (goal: {goals['share'] * 100:.0f}% or more)")
        if share is not None else "- targets.json: no ceiling measured",
        *([f"- the same gzip bytes sent ready-made by the hello-world server, no work at all: "
           f"{api['ready_share_of_ceiling'] * 100:.1f}% of the ceiling (rounds: "
           + ", ".join(f"{x * 100:.1f}%" for x in api.get("ready_round_shares", []))
           + f"), the most an aiohttp server can reach with this answer; targets.json is "
           f"{api['targets_share_of_ready'] * 100:.0f}% of it"]
          if api.get("ready_share_of_ceiling") and api.get("targets_share_of_ready") else []),
        (f"- targets.json p99 at {api['connections']} connections: {max(r['p99_ms'] for r in rounds):.1f} ms"
         f"{' (the highest of the rounds)' if len(rounds) > 1 else ''} (goal: under {goals['p99_ms']:.0f} ms)"),
        (f"- dc-overview serve RSS: {api['idle_rss_mb']:.0f} MB idle, {api['server_peak_rss_mb']:.0f} MB peak "
         f"under load (goal: under {goals['rss_mb']:.0f} MB)"),
    ]
    return (title(f"Web API, {api['servers']} servers in the inventory, {api['connections']} connections, "
                  f"{api['duration_s']:g} s each, load from {api['load_tool']}", markdown) + table(rows, header, markdown)
            + "\n\n" + "\n".join(lines))


def exporter_table(exporter: dict, markdown: bool) -> str:
    goals = exporter["goals"]
    rows = [("scrape p50", exporter["p50_ms"], "ms", f"< {goals['p50_ms']:g} ms"),
            ("scrape p99", exporter["p99_ms"], "ms", ""),
            ("RSS (peak)", exporter["peak_rss_mb"], "MB", f"< {goals['rss_mb']:g} MB"),
            ("CPU per scrape", exporter["cpu_ms_per_scrape"], "ms", ""),
            ("one collection + rendering", exporter["collection_ms"], "ms", "")]
    return (title(f"GPU exporter, {exporter['gpus']} simulated GPUs, {exporter['scrapes']} scrapes "
                  f"(`{exporter['command']}`)", markdown) + table(rows, ("figure", "value", "unit", "goal"), markdown))


def render(results: dict, markdown: bool = False) -> str:
    parts = []
    m = results.get("machine", {})
    parts.append(f"Machine: {m.get('cpus')} CPUs ({m.get('cpu_model')}), {m.get('memory_gib')} GiB, Linux "
                 f"{m.get('kernel')}, Python {m.get('python')}, asyncssh {m.get('asyncssh')}, aiohttp "
                 f"{m.get('aiohttp')}, {m.get('openssh')}, {m.get('ansible', 'Ansible not run')}; "
                 f"{m.get('date')}; load average at start {m.get('load_average_at_start')}, at end {m.get('load_average_at_end', '?')}; "
                 f"code {m.get('git', '?')}, probe script sha256 {str(m.get('probe_script_sha256', '?'))[:12]}; "
                 f"byte-code {'compiled before the runs' if m.get('bytecode_compiled') else 'as found'}")
    if "fleet" in results:
        parts.append(fleet_tables(results["fleet"], markdown))
    if "api" in results:
        parts.append(api_table(results["api"], markdown))
    if "exporter" in results:
        parts.append(exporter_table(results["exporter"], markdown))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="?", default=Path("artifacts/bench/latest.json"))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    print(render(json.loads(args.results.read_text()), args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
