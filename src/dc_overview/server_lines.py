"""Parse servers from CSV files or pasted lines.

Each line is one of ``ip``, ``name,ip``, ``name,ip,user`` or
``name,ip,user,port`` (a fifth column may name an SSH key). Blank lines and
lines starting with ``#`` are ignored; a first line of column names
(``name,ip,...``) is recognised and skipped. Every problem is collected with
its line number and field, so one run shows all that needs fixing.
"""

from __future__ import annotations

import csv
import io

import attrs

from . import errors
from .domain import Server, check_address

COLUMNS = ("name", "ip", "user", "port", "key")
_HEADER_WORDS = {"name", "ip", "address", "server_ip", "host", "user", "ssh_user", "port", "ssh_port", "key"}


@attrs.frozen
class ParsedLine:
    line: int
    server: Server


def parse_server_lines(
    text: str, *, source: str = "input", default_user: str = "root", default_key: str | None = None
) -> list[ParsedLine]:
    """All servers in ``text``, or ``ImportProblem`` naming every bad line."""
    problems: list[tuple[str, str, str]] = []
    parsed: list[ParsedLine] = []
    seen_names: dict[str, int] = {}
    seen_addresses: dict[str, int] = {}
    rows = csv.reader(io.StringIO(text), skipinitialspace=True, strict=True)
    first_data_row = True
    try:
        for number, row in enumerate(rows, start=1):
            cells = [cell.strip() for cell in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if first_data_row and {c.lower() for c in cells if c} <= _HEADER_WORDS:
                first_data_row = False
                continue
            first_data_row = False
            where = f"{source} line {number}"
            try:
                server = _server_from_cells(cells, default_user, default_key)
            except errors.InvalidInput as exc:
                problems.append((where, exc.field, exc.message.split(": ", 1)[-1]))
                continue
            for key, seen in (("name", seen_names), ("address", seen_addresses)):
                value = getattr(server, key)
                if value in seen:
                    problems.append((where, key, f"{value!r} is also on line {seen[value]}"))
                seen.setdefault(value, number)
            parsed.append(ParsedLine(number, server))
    except csv.Error as exc:
        problems.append((f"{source} line {rows.line_num}", "csv", str(exc)))
    if problems:
        raise errors.ImportProblem(source, problems)
    if not parsed:
        raise errors.ImportProblem(source, [(source, "servers", "no servers found")])
    return parsed


def _server_from_cells(cells: list[str], default_user: str, default_key: str | None) -> Server:
    if len(cells) > len(COLUMNS):
        raise errors.InvalidInput(
            "columns", f"{len(cells)} columns; expected at most {len(COLUMNS)}: {','.join(COLUMNS)}"
        )
    if len(cells) == 1:
        address = check_address(cells[0], "ip")
        name = address.replace(":", "-")
        cells = [name, address]
    name, ip, *rest = cells
    user = rest[0] if len(rest) > 0 and rest[0] else default_user
    port = rest[1] if len(rest) > 1 and rest[1] else 22
    key = rest[2] if len(rest) > 2 and rest[2] else default_key
    check_address(ip, "ip")
    return Server(name=name, address=ip, ssh_user=user, ssh_port=port, ssh_key=key)
