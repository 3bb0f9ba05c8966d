"""Small builders for Grafana dashboard JSON (schema 39, Grafana 10.4 and
later): panels with their targets, a layout that packs panels into rows of
24 columns, and query variables. Used by ``scripts/build-dashboards``."""

from __future__ import annotations

import string
from typing import Any, Iterable, Sequence

SCHEMA_VERSION = 39
DATASOURCE_UID = "prometheus"  # the uid templates/stack/grafana/datasource.yml.j2 provisions
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
GRID_WIDTH = 24


# -- targets and field settings -----------------------------------------------------


def q(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> dict[str, Any]:
    """One PromQL target. ``table`` asks for an instant query in table format."""
    target: dict[str, Any] = {"datasource": DATASOURCE, "expr": " ".join(expr.split()), "legendFormat": legend}
    if table:
        target.update(format="table", instant=True, range=False)
    elif instant:
        target.update(instant=True, range=False)
    else:
        target.update(range=True, instant=False)
    return target


def steps(*pairs: tuple[str, float | None]) -> dict[str, Any]:
    """Absolute thresholds: ("green", None), ("red", 85) ..."""
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for color, value in pairs]}


OK = steps(("green", None))
NONZERO_RED = steps(("green", None), ("red", 1))


def value_map(values: dict[int | str, tuple[str, str]]) -> list[dict[str, Any]]:
    """Value mappings: value -> (text, colour)."""
    options = {str(value): {"text": text, "color": color, "index": i} for i, (value, (text, color)) in enumerate(values.items())}
    return [{"type": "value", "options": options}]


def _with_refs(targets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**t, "refId": string.ascii_uppercase[i]} for i, t in enumerate(targets)]


def _defaults(unit: str | None, *, thresholds: dict | None = None, decimals: int | None = None,
              minimum: float | None = None, maximum: float | None = None,
              mappings: list | None = None, no_value: str | None = None, color: str = "thresholds",
              custom: dict | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {"color": {"mode": color}, "thresholds": thresholds or OK, "mappings": mappings or []}
    if unit:
        defaults["unit"] = unit
    if decimals is not None:
        defaults["decimals"] = decimals
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if no_value is not None:
        defaults["noValue"] = no_value
    if custom is not None:
        defaults["custom"] = custom
    return defaults


def _panel(kind: str, title: str, description: str, targets: Iterable[dict[str, Any]], field: dict, options: dict,
           **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _with_refs(list(targets)),
        "fieldConfig": {"defaults": field, "overrides": extra.pop("overrides", [])},
        "options": options,
        **extra,
    }


_REDUCE_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}


# -- panels --------------------------------------------------------------------------


def timeseries(title: str, description: str, targets: Iterable[dict[str, Any]], unit: str = "short", *,
               minimum: float | None = None, maximum: float | None = None, stack: bool = False,
               thresholds: dict | None = None, show_thresholds: bool = False, bars: bool = False,
               decimals: int | None = None, legend_calcs: Sequence[str] = ("mean", "max", "lastNotNull"),
               overrides: list | None = None) -> dict[str, Any]:
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 80 if bars else (25 if stack else 8),
        "gradientMode": "none",
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "axisPlacement": "auto",
        "thresholdsStyle": {"mode": "line+area" if show_thresholds else "off"},
    }
    field = _defaults(unit, thresholds=thresholds, decimals=decimals, minimum=minimum, maximum=maximum,
                      color="palette-classic", custom=custom)
    options = {
        "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True, "calcs": list(legend_calcs)},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return _panel("timeseries", title, description, targets, field, options, overrides=overrides or [])


def stat(title: str, description: str, targets: Iterable[dict[str, Any]], unit: str = "short", *,
         thresholds: dict | None = None, mappings: list | None = None, decimals: int | None = None,
         graph: bool = False, text_mode: str = "auto", no_value: str | None = None,
         color_mode: str = "value") -> dict[str, Any]:
    field = _defaults(unit, thresholds=thresholds, decimals=decimals, mappings=mappings, no_value=no_value)
    options = {
        "reduceOptions": _REDUCE_LAST,
        "colorMode": color_mode,
        "graphMode": "area" if graph else "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": text_mode,
        "wideLayout": True,
        "showPercentChange": False,
    }
    return _panel("stat", title, description, targets, field, options)


def bargauge(title: str, description: str, targets: Iterable[dict[str, Any]], unit: str = "short", *,
             thresholds: dict | None = None, minimum: float | None = None, maximum: float | None = None,
             decimals: int | None = None) -> dict[str, Any]:
    field = _defaults(unit, thresholds=thresholds, decimals=decimals, minimum=minimum, maximum=maximum)
    options = {
        "reduceOptions": _REDUCE_LAST,
        "displayMode": "gradient",
        "orientation": "horizontal",
        "showUnfilled": True,
        "valueMode": "color",
        "namePlacement": "auto",
        "sizing": "auto",
        "minVizHeight": 16,
        "maxVizHeight": 300,
    }
    return _panel("bargauge", title, description, targets, field, options)


def table(title: str, description: str, targets: Iterable[dict[str, Any]], *, columns: dict[str, str],
          unit: str | None = None, hide: Sequence[str] = (), mappings: list | None = None,
          thresholds: dict | None = None, overrides: list | None = None, no_value: str | None = None,
          sort_by: str | None = None) -> dict[str, Any]:
    """An instant table. ``columns`` renames fields (label or ``Value #A``) in
    the order given; ``Time`` and the ``hide`` fields are dropped. Several
    targets are merged into one row per label set."""
    targets = list(targets)
    order = {name: i for i, name in enumerate(columns)}
    transformations: list[dict[str, Any]] = []
    if len(targets) > 1:
        transformations.append({"id": "merge", "options": {}})
    transformations.append({
        "id": "organize",
        "options": {
            "excludeByName": {"Time": True, "__name__": True,
                              **{h: True for h in ("job", "exporter") if h not in columns}, **{h: True for h in hide}},
            "indexByName": order,
            "renameByName": {k: v for k, v in columns.items() if k != v},
        },
    })
    field = _defaults(unit, thresholds=thresholds, mappings=mappings, no_value=no_value,
                      custom={"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False})
    options: dict[str, Any] = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return _panel("table", title, description, targets, field, options, overrides=overrides or [],
                  transformations=transformations)


def heatmap(title: str, description: str, targets: Iterable[dict[str, Any]], unit: str = "celsius",
            bucket: float = 2) -> dict[str, Any]:
    """Where the values of many series lie over time (buckets computed by Grafana)."""
    field = {"custom": {"hideFrom": {"legend": False, "tooltip": False, "viz": False},
                        "scaleDistribution": {"type": "linear"}}}
    options = {
        "calculate": True,
        "calculation": {"yBuckets": {"mode": "size", "value": str(bucket)}},
        "cellGap": 1,
        "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5, "fill": "dark-orange",
                  "reverse": False, "scale": "exponential"},
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": False},
        "yAxis": {"axisPlacement": "left", "reverse": False, "unit": unit},
    }
    return _panel("heatmap", title, description, targets, field, options)


def state_timeline(title: str, description: str, targets: Iterable[dict[str, Any]], *, mappings: list,
                   thresholds: dict | None = None) -> dict[str, Any]:
    field = _defaults(None, thresholds=thresholds, mappings=mappings,
                      custom={"fillOpacity": 80, "lineWidth": 0, "spanNulls": False})
    options = {
        "mergeValues": True,
        "showValue": "never",
        "alignValue": "left",
        "rowHeight": 0.9,
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return _panel("state-timeline", title, description, targets, field, options)


def link_to(uid: str, title: str, params: str) -> list[dict[str, Any]]:
    """A data link to another dashboard; ``params`` is a query string that may
    use ${__field.labels.x}. Relative, so Grafana under a sub-path works."""
    return [{"title": title, "url": f"/d/{uid}?{params}&${{__url_time_range}}"}]


# -- variables -----------------------------------------------------------------------


def query_variable(name: str, label: str, query: str, *, multi: bool = False, include_all: bool = False,
                   description: str = "", numeric: bool = False) -> dict[str, Any]:
    variable: dict[str, Any] = {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        # A plain string: Grafana runs it as it is and its editor parses it
        # (an object would need the editor's own fields: label, metric ...).
        "query": query,
        "refresh": 2,  # on time range change
        "sort": 3 if numeric else 1,  # numerical (gpu 0, 1, ... 10) or alphabetical, ascending
        "regex": "",
        "multi": multi,
        "includeAll": include_all,
        "current": {},
        "options": [],
        "hide": 0,
        "skipUrlSync": False,
    }
    if include_all:
        variable["allValue"] = ".*"
    return variable


# -- layout --------------------------------------------------------------------------


class Dashboard:
    """Panels are packed left to right into lines of 24 columns; ``row``
    starts a titled row."""

    def __init__(self, uid: str, title: str, description: str, *, tags: Sequence[str] = (),
                 variables: Sequence[dict[str, Any]] = (), time_from: str = "now-6h", refresh: str = "30s") -> None:
        self.uid, self.title, self.description = uid, title, description
        self.tags = ["dc-overview", *tags]
        self.variables = list(variables)
        self.time_from, self.refresh = time_from, refresh
        self.panels: list[dict[str, Any]] = []
        self._x = self._y = self._line_height = 0

    def _next_line(self) -> None:
        self._y += self._line_height
        self._x = self._line_height = 0

    def row(self, title: str) -> None:
        self._next_line()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": self._y}})
        self._y += 1

    def add(self, panel: dict[str, Any], w: int, h: int = 8) -> None:
        if self._x + w > GRID_WIDTH:
            self._next_line()
        panel["gridPos"] = {"h": h, "w": w, "x": self._x, "y": self._y}
        self.panels.append(panel)
        self._x += w
        self._line_height = max(self._line_height, h)

    def to_json(self) -> dict[str, Any]:
        panels = [{"id": i, **panel} for i, panel in enumerate(self.panels, start=1)]
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": self.tags,
            "editable": True,
            "graphTooltip": 1,  # shared crosshair
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "time": {"from": self.time_from, "to": "now"},
            "refresh": self.refresh,
            "timezone": "browser",
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "weekStart": "",
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
            }]},
            "links": [{"type": "dashboards", "tags": ["dc-overview"], "asDropdown": True, "title": "dc-overview",
                       "includeVars": False, "keepTime": True, "icon": "external link", "targetBlank": False,
                       "tooltip": "", "url": ""}],
            "templating": {"list": self.variables},
            "panels": panels,
        }
