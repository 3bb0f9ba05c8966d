"""Ready-made answers for the API's big read-mostly bodies (the Prometheus
targets, the server list): each is rendered once per database revision
(``AsyncFleet.revision()``, which any write changes, from this process or
another), as compact JSON and gzip-compressed once, and served as it is
until the revision moves.

- ``Accept-Encoding`` that allows gzip (Prometheus' http_sd client, any
  browser, ``curl --compressed``) gets the gzip body with ``Content-Encoding:
  gzip``; others get the plain body. Both carry ``Vary: Accept-Encoding``.
- ``ETag`` is a hash of the body (``-gzip`` added for the compressed one),
  so it is the same in every process that serves the same data;
  ``If-None-Match`` with either tag of the current body answers 304.

The revision itself is read at most once per turn of the event loop
(``PerTurn``), however many requests that turn answers.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import json
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import attrs
from aiohttp import web

JSON_TYPE = "application/json; charset=utf-8"
GZIP_LEVEL = 6


@attrs.frozen
class Rendered:
    revision: Hashable
    plain: bytes = attrs.field(repr=False)
    packed: bytes = attrs.field(repr=False)  # gzip of plain
    etag: str  # of plain, quoted
    packed_etag: str  # of packed, quoted


def render(revision: Hashable, value: Any) -> Rendered:
    plain = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    tag = hashlib.blake2b(plain, digest_size=12).hexdigest()
    return Rendered(revision, plain, gzip.compress(plain, GZIP_LEVEL, mtime=0), f'"{tag}"', f'"{tag}-gzip"')


class PerTurn:
    """A value read at most once per turn of the event loop: the database
    revision, the scrape token.

    Why that is enough: the loop reads new bytes from its sockets only
    between turns, so every request answered in a turn had arrived before
    that turn began, and so before the value was read in it. A change made
    before a request arrived (by this process or another) is therefore
    always seen by that request. Under load, one read then serves every
    request of a turn instead of one read each."""

    def __init__(self, read: Callable[[], Awaitable[Any]]) -> None:
        self._read = read
        self._value: Any = None
        self._fresh = False

    async def get(self) -> Any:
        if not self._fresh:
            self._value = await self._read()
            self._fresh = True
            asyncio.get_running_loop().call_soon(self._forget)  # runs at the next turn
        return self._value

    def _forget(self) -> None:
        self._fresh = False


class BodyCache:
    """The latest rendering of each named body, with the revision it was built at."""

    def __init__(self) -> None:
        self._entries: dict[str, Rendered] = {}

    async def get(self, name: str, revision: Hashable, build: Callable[[], Awaitable[Any]]) -> Rendered:
        """The body for ``revision``: kept, or built now. ``revision`` must be
        read before ``build`` runs, so that a write in between is never hidden."""
        entry = self._entries.get(name)
        if entry is None or entry.revision != revision:
            entry = render(revision, await build())
            self._entries[name] = entry
        return entry

    def entry(self, name: str) -> Rendered | None:
        """What is kept for ``name`` now, if anything."""
        return self._entries.get(name)


def _quality(params: str) -> float:
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def _parse_accepts_gzip(header: str) -> bool:
    gzip_q: float | None = None
    any_q: float | None = None
    for item in header.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if name in ("gzip", "x-gzip"):
            gzip_q = max(gzip_q or 0.0, _quality(params))
        elif name == "*":
            any_q = _quality(params)
    chosen = gzip_q if gzip_q is not None else any_q
    return chosen is not None and chosen > 0


_accepts_gzip_cached = functools.lru_cache(maxsize=128)(_parse_accepts_gzip)


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip;q=0`` does not)."""
    if not header:
        return False
    return _accepts_gzip_cached(header) if len(header) <= 256 else _parse_accepts_gzip(header)


def _matches(header: str, rendered: Rendered) -> bool:
    """``If-None-Match`` compares weakly: ``W/`` is ignored; ``*`` matches."""
    for tag in header.split(","):
        tag = tag.strip()
        tag = tag.removeprefix("W/")
        if tag == "*" or tag in (rendered.etag, rendered.packed_etag):
            return True
    return False


def answer(request: web.Request, rendered: Rendered) -> web.Response:
    """The kept body as the client can take it, or 304 when it has it."""
    packed = accepts_gzip(request.headers.get("Accept-Encoding", ""))
    headers = {"Vary": "Accept-Encoding", "ETag": rendered.packed_etag if packed else rendered.etag}
    condition = request.headers.get("If-None-Match")
    if condition is not None and _matches(condition, rendered):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = JSON_TYPE
    if packed:
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=rendered.packed, headers=headers)
    return web.Response(body=rendered.plain, headers=headers)
