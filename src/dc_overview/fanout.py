"""Doing one thing on many servers at once: at most ``concurrency`` at a
time, one result per server, in the order given. A server that is slow,
dead or broken only ever produces its own failed result; it never blocks
or fails the others.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Sequence, TypeVar

import attrs

from .domain import Server

R = TypeVar("R")

# Called after each server is done, with (its result, how many are done, how many in all).
Progress = Callable[[object, int, int], None]


@attrs.frozen
class HostReport:
    """One line of a fleet operation's summary. ``result`` is one word
    (ok, changed, unchanged, unreachable, auth_failed, ...), ``detail`` says
    what happened or what to do."""

    name: str
    ok: bool
    result: str
    detail: str = ""
    duration_s: float = 0.0
    attempts: int = 1


async def for_each_server(
    servers: Sequence[Server],
    work: Callable[[Server], Awaitable[R]],
    *,
    concurrency: int,
    failed: Callable[[Server, BaseException, float], R],
    progress: Progress | None = None,
) -> list[R]:
    """``work(server)`` for every server, ``concurrency`` at a time. Anything
    ``work`` raises becomes ``failed(server, error, seconds)`` for that server."""
    gate = asyncio.Semaphore(max(1, concurrency))
    total = len(servers)
    done = 0
    report = progress

    async def one(server: Server) -> R:
        nonlocal done, report
        async with gate:
            started = time.monotonic()
            try:
                result = await work(server)
            except Exception as exc:  # one server's failure is its own result
                result = failed(server, exc, time.monotonic() - started)
        done += 1
        if report is not None:
            try:
                report(result, done, total)
            except Exception:  # a broken progress display must never cost the results
                report = None
        return result

    return list(await asyncio.gather(*(one(server) for server in servers)))


def any_failed(results: Sequence[HostReport]) -> bool:
    return any(not r.ok for r in results)
