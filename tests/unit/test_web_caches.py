"""The web app's small caches on their own: remembered API tokens, the
revision read once per turn of the event loop, the batched access log, and
the fake storage's revision the use-case tests see."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from dc_overview.frontends.web_access_log import AccessLogBatch
from dc_overview.frontends.web_auth import TokenCache
from dc_overview.frontends.web_cache import PerTurn
from dc_overview.frontends.web_context import Identity

from dc_overview.domain import Server
from dc_overview.identity import Role, User
from tests.fakes import FakeStorage

ALICE = User(id=1, name="alice", role=Role.VIEWER, password_hash="x")
AS_ALICE = Identity(ALICE, "token")
SCRAPER = Identity(bearer="scrape-secret")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_remembered_token_counts_only_at_its_revision_and_for_ttl_seconds():
    clock = Clock()
    cache = TokenCache(ttl=30.0, clock=clock)
    cache.put(b"digest", (1, 5), AS_ALICE)
    assert cache.get(b"digest", (1, 5)) is AS_ALICE
    assert cache.get(b"other", (1, 5)) is None
    assert cache.get(b"digest", (2, 5)) is None  # the database changed: checked again
    assert cache.get(b"digest", (1, 5)) is None  # and forgotten

    cache.put(b"digest", (1, 5), AS_ALICE)
    clock.now += 29.9
    assert cache.get(b"digest", (1, 5)) is AS_ALICE
    clock.now += 0.1
    assert cache.get(b"digest", (1, 5)) is None


def test_a_token_that_is_no_api_token_is_remembered_as_such_until_the_database_changes():
    cache = TokenCache()
    cache.put(b"scrape", (1, 5), SCRAPER)
    assert cache.get(b"scrape", (1, 5)) is SCRAPER  # no lookup: it is no API token
    assert cache.get(b"scrape", (1, 6)) is None  # a token made since could be it: look again


def test_the_token_cache_stays_bounded():
    cache = TokenCache()
    for n in range(TokenCache.MAX_ENTRIES + 10):
        cache.put(n.to_bytes(4, "big"), 1, AS_ALICE)
    assert len(cache._entries) <= TokenCache.MAX_ENTRIES


class CountingRevision:
    def __init__(self) -> None:
        self.value = 0
        self.reads = 0

    async def __call__(self) -> int:
        self.reads += 1
        return self.value


async def test_the_revision_is_read_once_per_turn_of_the_event_loop():
    source = CountingRevision()
    reader = PerTurn(source)
    assert [await reader.get() for _ in range(5)] == [0] * 5
    assert source.reads == 1  # five requests in one turn: one query
    source.value = 1  # a change committed meanwhile
    assert await reader.get() == 0  # still this turn: as of when it began
    await asyncio.sleep(0)  # the next turn
    assert await reader.get() == 1
    assert source.reads == 2


async def test_requests_answered_in_one_turn_share_its_revision_and_later_ones_see_changes():
    source = CountingRevision()
    reader = PerTurn(source)

    async def request() -> int:
        return await reader.get()

    first = await asyncio.gather(*(request() for _ in range(10)))  # started together, run in one turn
    source.value = 7
    await asyncio.sleep(0)
    later = await asyncio.gather(*(request() for _ in range(3)))
    assert first == [0] * 10 and later == [7] * 3
    assert source.reads == 2


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _logger(name: str) -> tuple[logging.Logger, Records]:
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    records = Records()
    logger.handlers[:] = [records]
    return logger, records


def _request(path: str) -> tuple[web.Request, web.Response]:
    request = make_mocked_request("GET", path, headers={"User-Agent": "Prometheus/2.53"})
    return request, web.Response(status=200)


def test_access_lines_wait_for_the_timer_then_go_out_together_one_line_each():
    logger, records = _logger("test.access.timer")
    timers: list[tuple[float, object]] = []
    batch = AccessLogBatch(logger, call_later=lambda delay, callback: timers.append((delay, callback)))
    batch.add(*_request("/api/prometheus/targets.json"), 0.0021)
    batch.add(*_request("/api/servers?x=1"), 0.0005)
    assert records.messages == [] and len(timers) == 1 and timers[0][0] == 0.5  # one timer for the batch
    timers[0][1]()  # type: ignore[operator]
    assert len(records.messages) == 1
    lines = records.messages[0].split("\n")
    assert len(lines) == 2
    assert '"GET /api/prometheus/targets.json HTTP/1.1" 200 ' in lines[0] and lines[0].endswith('"Prometheus/2.53" 2.1ms')
    assert '"GET /api/servers?x=1 HTTP/1.1" 200' in lines[1]
    batch.add(*_request("/api/health"), 0.001)
    assert len(timers) == 2  # a new batch, a new timer


def test_a_full_batch_is_written_at_once_and_flush_writes_what_waits():
    logger, records = _logger("test.access.full")
    batch = AccessLogBatch(logger, max_lines=3, call_later=lambda delay, callback: None)
    for _ in range(3):
        batch.add(*_request("/api/health"), 0.001)
    assert len(records.messages) == 1 and records.messages[0].count("\n") == 2
    batch.add(*_request("/api/health"), 0.001)
    batch.flush()
    batch.flush()  # nothing left: nothing written
    assert len(records.messages) == 2 and "\n" not in records.messages[1]


def test_the_fake_storage_revision_moves_with_each_write():
    storage = FakeStorage(Path("/data"))
    seen = {storage.revision()}
    added = storage.add_server(Server(name="gpu-01", address="10.0.0.1"))
    seen.add(storage.revision())
    storage.save_setting("ssh_concurrency", 4)
    seen.add(storage.revision())
    storage.remove_server(added.id)  # type: ignore[arg-type]
    seen.add(storage.revision())
    assert len(seen) == 4
