"""The web app's access log: one line per request, in the usual form
(address, time, request line, status, bytes, referer, user agent) plus the
time taken, written in batches.

A line waits at most ``FLUSH_S`` (or until ``MAX_LINES`` have gathered);
then the waiting lines go out together as one record of the
``dc_overview.web.access`` logger, one line each. A quiet server logs each
request within half a second, on a line of its own; a busy one spends its
time answering rather than in the logging machinery once per request (what
nginx's ``access_log ... buffer= flush=`` does). Whatever waits is written
when the server stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

FLUSH_S = 0.5
MAX_LINES = 500


class AccessLogBatch:
    """The lines waiting to be written, shared by every connection."""

    def __init__(self, logger: logging.Logger, *, flush_s: float = FLUSH_S, max_lines: int = MAX_LINES,
                 call_later: Callable[[float, Callable[[], None]], object] | None = None) -> None:
        self.logger = logger
        self.flush_s = flush_s
        self.max_lines = max_lines
        self._call_later = call_later
        self._lines: list[tuple] = []
        self._scheduled = False
        self._stamp_second = -1
        self._stamp = ""

    def _time(self) -> str:
        now = int(time.time())
        if now != self._stamp_second:
            self._stamp_second = now
            self._stamp = time.strftime("[%d/%b/%Y:%H:%M:%S +0000]", time.gmtime(now))
        return self._stamp

    def add(self, request: web.BaseRequest, response: web.StreamResponse, seconds: float) -> None:
        """Keeps the request's facts; the line is made when it is written."""
        headers = request.headers
        self._lines.append((
            request.remote or "-", self._time(), request.method, request.raw_path, request.version,
            response.status, response.body_length, headers.get("Referer", "-"), headers.get("User-Agent", "-"), seconds,
        ))
        if len(self._lines) >= self.max_lines:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            (self._call_later or asyncio.get_running_loop().call_later)(self.flush_s, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._lines:
            lines, self._lines = self._lines, []
            self.logger.info("%s", "\n".join(
                f'{remote} {when} "{method} {path} HTTP/{version.major}.{version.minor}" {status} {size} '
                f'"{referer}" "{agent}" {seconds * 1000:.1f}ms'
                for remote, when, method, path, version, status, size, referer, agent, seconds in lines
            ))


def batched_access_log(batch: AccessLogBatch) -> type[AbstractAccessLogger]:
    """An access logger class for ``web.AppRunner(access_log_class=...)``
    (aiohttp makes one per connection; they share ``batch``)."""

    class BatchedAccessLogger(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            batch.add(request, response, time)

        @property
        def enabled(self) -> bool:
            return batch.logger.isEnabledFor(logging.INFO)

    return BatchedAccessLogger
