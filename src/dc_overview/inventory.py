"""Use cases for the server inventory: add, update, remove, list, show, import."""

from __future__ import annotations

from typing import Any, Mapping

import attrs

from . import errors
from .domain import Server
from .ports import Deps
from .server_lines import parse_server_lines
from .targets import write_targets

EDITABLE_FIELDS = ("name", "address", "ssh_user", "ssh_port", "ssh_key", "bmc_ip", "labels")


@attrs.frozen
class ImportReport:
    """What an import did. ``unchanged`` were already there, identical."""

    added: tuple[Server, ...] = ()
    unchanged: tuple[str, ...] = ()
    keys_added: tuple[str, ...] = ()
    keys_unchanged: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (what, why)


async def list_servers(deps: Deps) -> list[Server]:
    return deps.storage.list_servers()


async def show_server(deps: Deps, name: str) -> Server:
    server = deps.storage.get_server(name)
    if server is None:
        raise errors.ServerNotFound(name)
    return server


async def add_server(
    deps: Deps,
    name: str,
    address: str,
    *,
    ssh_user: str | None = None,
    ssh_port: int = 22,
    ssh_key: str | None = None,
    bmc_ip: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Server:
    settings = deps.storage.load_settings()
    server = Server(
        name=name,
        address=address,
        ssh_user=ssh_user or str(settings.get("default_ssh_user") or "root"),
        ssh_port=ssh_port,
        ssh_key=ssh_key if ssh_key is not None else settings.get("default_ssh_key"),  # type: ignore[arg-type]
        bmc_ip=bmc_ip,
        labels=labels or {},
    )
    with deps.storage.transaction():
        _check_key_exists(deps, server.ssh_key)
        _check_unique(deps, server)
        added = deps.storage.add_server(server)
    write_targets(deps)
    return added


async def update_server(deps: Deps, name: str, /, **changes: Any) -> Server:
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise errors.InvalidInput(field, "cannot be changed", "editable: " + ", ".join(EDITABLE_FIELDS))
    with deps.storage.transaction():
        current = await show_server(deps, name)
        updated = attrs.evolve(current, **changes)
        if "address" in changes and updated.address != current.address:
            updated = attrs.evolve(updated, host_key=None)  # a new machine: trust anew
        _check_key_exists(deps, updated.ssh_key)
        _check_unique(deps, updated)
        saved = deps.storage.update_server(updated)
    write_targets(deps)
    return saved


async def remove_server(deps: Deps, name: str) -> Server:
    with deps.storage.transaction():
        server = await show_server(deps, name)
        assert server.id is not None
        deps.storage.remove_server(server.id)
    write_targets(deps)
    return server


async def import_servers(deps: Deps, text: str, *, source: str = "input") -> ImportReport:
    """All or nothing: every line is checked before anything is written."""
    settings = deps.storage.load_settings()
    parsed = parse_server_lines(
        text,
        source=source,
        default_user=str(settings.get("default_ssh_user") or "root"),
        default_key=settings.get("default_ssh_key"),  # type: ignore[arg-type]
    )
    problems: list[tuple[str, str, str]] = []
    added: list[Server] = []
    unchanged: list[str] = []
    with deps.storage.transaction():
        to_add: list[Server] = []
        for item in parsed:
            where = f"{source} line {item.line}"
            existing = deps.storage.get_server(item.server.name)
            if existing and _same_place(existing, item.server):
                unchanged.append(existing.name)
                continue
            try:
                _check_key_exists(deps, item.server.ssh_key, field="key")
                _check_unique(deps, item.server)
            except errors.DcOverviewError as exc:
                problems.append((where, getattr(exc, "field", "server"), exc.message))
                continue
            to_add.append(item.server)
        if problems:
            raise errors.ImportProblem(source, problems)
        for server in to_add:
            added.append(deps.storage.add_server(server))
    if added:
        write_targets(deps)
    return ImportReport(added=tuple(added), unchanged=tuple(unchanged))


def _same_place(a: Server, b: Server) -> bool:
    return (a.address, a.ssh_user, a.ssh_port) == (b.address, b.ssh_user, b.ssh_port)


def _check_unique(deps: Deps, server: Server) -> None:
    by_name = deps.storage.get_server(server.name)
    if by_name is not None and by_name.id != server.id:
        raise errors.DuplicateServer("name", server.name, f"at {by_name.address}")
    by_address = deps.storage.find_server_by_address(server.address)
    if by_address is not None and by_address.id != server.id:
        raise errors.DuplicateServer("address", server.address, f"server {by_address.name!r}")


def _check_key_exists(deps: Deps, key_name: str | None, field: str = "ssh_key") -> None:
    if key_name is not None and deps.storage.get_key(key_name) is None:
        raise errors.InvalidInput(
            field, f"no SSH key named {key_name!r}", "add it with `dc-overview keys add` or `keys generate`"
        )
