"""dc-overview's Grafana dashboards, as code.

The JSON files in ``dashboards/`` are written from these definitions:
``python -m scripts.dashboards`` (from the repository root) rewrites them,
and tests/unit/test_dashboards_json.py fails when a file and its definition
differ. Edit the definitions, not the JSON."""

from __future__ import annotations

import json
from pathlib import Path

from . import fleet, gpu_detail, node, vastai

FOLDER = Path(__file__).resolve().parents[2] / "dashboards"
BUILDERS = {
    "fleet-overview.json": fleet.build,
    "gpu-detail.json": gpu_detail.build,
    "node.json": node.build,
    "vastai.json": vastai.build,
}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """Every dashboard's JSON text, by file name."""
    return {name: render(build) for name, build in BUILDERS.items()}


def write(folder: Path = FOLDER) -> list[Path]:
    written = []
    for name, text in rendered().items():
        path = folder / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written
