"""Reading the PromQL out of Grafana dashboard JSON the way Grafana would
send it: panel targets and variable queries, with variables and Grafana's
own macros ($__rate_interval, $__range ...) substituted."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"

# Grafana's macros, with values that suit a Prometheus scraping every second
# and holding about a minute of data.
MACROS = {
    "__rate_interval": "5s",
    "__interval": "1s",
    "__interval_ms": "1000",
    "__range": "1m",
    "__range_s": "60",
    "__range_ms": "60000",
}
# ${var}, ${var:format}, $var, [[var]]
REFERENCE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$", re.S)

KEYWORDS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio", "and", "or", "unless", "by", "without", "on", "ignoring",
    "group_left", "group_right", "offset", "bool", "atan2", "inf", "nan", "start", "end",
}


@dataclass(frozen=True)
class Query:
    dashboard: str  # file name
    panel: str
    ref: str
    expr: str
    instant: bool

    @property
    def id(self) -> str:
        return f"{self.dashboard}::{self.panel}::{self.ref}"


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # those inside a collapsed row


def queries(name: str, dashboard: dict[str, Any]) -> list[Query]:
    found = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            instant = bool(target.get("instant")) and not target.get("range")
            found.append(Query(name, panel.get("title", "?"), target.get("refId", "?"), target.get("expr", ""),
                               instant))
    return found


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


def references(text: str) -> set[str]:
    return {next(g for g in match.groups() if g) for match in REFERENCE.finditer(text)}


def substitute(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name = next(g for g in match.groups() if g)
        if name not in values:
            raise KeyError(f"${name} is neither a dashboard variable nor a Grafana macro")
        return values[name]

    return REFERENCE.sub(replace, text)


def label_values_call(query: str) -> tuple[str | None, str]:
    """``label_values(selector, label)`` or ``label_values(label)``."""
    match = LABEL_VALUES.match(query)
    if not match:
        raise ValueError(f"not a label_values() query: {query!r}")
    return match.group("selector"), match.group("label")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (strings, label matchers,
    ranges, grouping labels, functions and keywords removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names
