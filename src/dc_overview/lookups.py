"""Lookups by id, for front ends that address records by number (the web API)."""

from __future__ import annotations

from . import errors
from .domain import Server, SshKey
from .ports import Deps

MAX_ID = 2**63 - 1  # SQLite's largest integer


def _check_id(kind: str, record_id: object) -> int:
    if isinstance(record_id, bool) or not isinstance(record_id, int) or not 0 < record_id <= MAX_ID:
        raise errors.NoSuchRecord(kind, record_id)
    return record_id


async def server_by_id(deps: Deps, server_id: int) -> Server:
    server = deps.storage.get_server_by_id(_check_id("server", server_id))
    if server is None:
        raise errors.NoSuchRecord("server", server_id)
    return server


async def key_by_id(deps: Deps, key_id: int) -> SshKey:
    key = deps.storage.get_key_by_id(_check_id("SSH key", key_id))
    if key is None:
        raise errors.NoSuchRecord("SSH key", key_id)
    return key
