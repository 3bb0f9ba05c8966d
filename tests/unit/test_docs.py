"""Docs kept honest: every CLI command and every public name is documented."""

from pathlib import Path

import click

import dc_overview
from dc_overview.frontends.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def all_docs() -> str:
    return "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_cli_command_is_documented():
    docs = all_docs()
    missing = [" ".join(p) for p in command_paths(cli) if f"dc-overview {' '.join(p)}" not in docs]
    assert not missing, f"commands missing from docs/: {missing}"


def test_every_public_name_is_documented():
    api_doc = (ROOT / "docs" / "python-api.md").read_text()
    missing = [name for name in dc_overview.__all__ if f"`{name}`" not in api_doc and f"{name}" not in api_doc]
    assert not missing, f"public names missing from docs/python-api.md: {missing}"


def test_every_fleet_method_is_documented():
    import inspect
    api_doc = (ROOT / "docs" / "python-api.md").read_text()
    methods = [n for n, _ in inspect.getmembers(dc_overview.AsyncFleet, inspect.iscoroutinefunction)
               if not n.startswith("_")]
    missing = [m for m in methods if f"{m}(" not in api_doc]
    assert not missing, f"Fleet methods missing from docs/python-api.md: {missing}"
