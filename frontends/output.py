"""Turning domain values into what people and scripts read: JSON (one
cattrs converter for this boundary) and plain-text tables."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

import cattrs

from dc_overview.domain import ServerStatus, SshKey

json_converter = cattrs.Converter()
json_converter.register_unstructure_hook(datetime, lambda v: v.isoformat())
json_converter.register_unstructure_hook(Path, str)
json_converter.register_unstructure_hook(ServerStatus, lambda v: v.value)


def public_key_view(key: SshKey) -> dict[str, Any]:
    """What any front end may show of a key: never the private key, nor where it is."""
    data = json_converter.unstructure(key)
    data.pop("private_key_path", None)
    return data


def to_jsonable(value: Any) -> Any:
    if isinstance(value, SshKey):
        return public_key_view(value)
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return json_converter.unstructure(value)


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False, default=str)


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    """A left-aligned text table; ``-`` for empty cells."""
    cells = [[("-" if v in (None, "") else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([line(list(headers)), line(["-" * w for w in widths]), *map(line, cells)])


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "never"
    seconds = int(((now or datetime.now(moment.tzinfo)) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"
