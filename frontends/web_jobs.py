"""Long operations (check servers, install or remove exporters) run as jobs:
the request that starts one gets its id at once (HTTP 202), and the job's
per-host progress is read with ``GET /api/jobs/{id}`` or followed live as
server-sent events (``GET /api/jobs/{id}/events``).

A job runs any ``async`` callable that takes a progress callback. The
callback accepts what the fleet operations report, ``progress(report, done,
total)`` after each server (a report has ``name``, ``ok``, ``result`` and
``detail``), and also ``progress(host, state, message)`` or one event
object or dict with ``host``/``server``/``name``, ``state``/``result``/
``status`` and ``message``/``detail``; it may be called plainly or awaited.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from dc_overview import AsyncFleet, errors

from . import output

log = logging.getLogger("dc_overview.web.jobs")

Progress = Callable[..., Any]
Operation = Callable[[Progress], Awaitable[Any]]


@attrs.frozen
class Action:
    method: str  # the AsyncFleet method that does it
    title: str


ACTIONS: Mapping[str, Action] = {
    "check": Action("check", "Check servers"),
    "install-exporters": Action("install_exporters", "Install exporters"),
    "remove-exporters": Action("remove_exporters", "Remove exporters"),
}
FINISHED = ("succeeded", "failed", "cancelled")


def _now() -> datetime:
    return datetime.now(UTC)


@attrs.define
class HostProgress:
    host: str
    state: str = "pending"  # then what the operation reports: ok, changed, unreachable, ...
    message: str = ""
    ok: bool | None = None  # None until the host is done
    updated_at: datetime = attrs.field(factory=_now)


class _Done:
    """What the progress callback returns: awaitable, and harmless if not awaited."""

    def __await__(self):  # type: ignore[no-untyped-def]
        return iter(())


@attrs.define
class Job:
    id: str
    action: str
    title: str
    servers: list[str]
    user: str | None
    created_at: datetime = attrs.field(factory=_now)
    state: str = "running"  # running | succeeded | failed | cancelled
    finished_at: datetime | None = None
    error: str | None = None
    result: Any = None
    hosts: dict[str, HostProgress] = attrs.field(factory=dict)
    version: int = 0
    _changed: asyncio.Event = attrs.field(factory=asyncio.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def changed(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, seen: int, timeout: float) -> None:
        """Return when the job changes after version ``seen``, or after ``timeout`` s."""
        if self.version != seen or self.finished:
            return
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    def progress(self, *args: Any, **kwargs: Any) -> _Done:
        report = args[0] if args else None
        if report is not None and hasattr(report, "name") and hasattr(report, "ok"):  # a fleet HostReport
            host, state, message = _text(report.name), _text(getattr(report, "result", None)), \
                _text(getattr(report, "detail", None))
            ok: bool | None = bool(report.ok)
        else:
            host, state, message = _event_fields(args, kwargs)
            ok = kwargs.get("ok") if isinstance(kwargs.get("ok"), bool) else None
        if host:
            entry = self.hosts.setdefault(host, HostProgress(host))
            entry.state, entry.updated_at = state or entry.state, _now()
            entry.ok = ok if ok is not None else entry.ok
            if message is not None:
                entry.message = message
            self.changed()
        return _Done()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    name = getattr(value, "name", None)  # a Server or the like
    if name is not None and not isinstance(value, (str, int, float)) and isinstance(name, str):
        return name
    return str(value)


def _pick(source: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
        if value is not None:
            return value
    return None


_HOST = ("host", "server", "name", "target")
_STATE = ("state", "result", "stage", "status", "step", "phase")
_MESSAGE = ("message", "detail", "text", "error")


def _event_fields(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    if len(args) == 1 and not kwargs and not isinstance(args[0], str):
        event = args[0]
        return _text(_pick(event, _HOST)), _text(_pick(event, _STATE)), _text(_pick(event, _MESSAGE))
    fields = dict(zip(("host", "state", "message"), args))
    fields.update(kwargs)
    return _text(_pick(fields, _HOST)), _text(_pick(fields, _STATE)), _text(_pick(fields, _MESSAGE))


def fleet_operation(fleet: AsyncFleet, action: str, servers: list[str]) -> Operation:
    """The fleet method for ``action`` on ``servers``, ready to run as a job;
    OperationUnavailable (HTTP 501) when this build has no such method."""
    if action not in ACTIONS:
        raise errors.InvalidInput("action", f"{action!r} is not an action", "actions: " + ", ".join(ACTIONS))
    method = getattr(fleet, ACTIONS[action].method, None)
    if method is None:
        raise errors.OperationUnavailable(
            ACTIONS[action].title.lower(),
            "this build of dc-overview cannot reach servers over SSH; nothing was done",
        )

    async def run(progress: Progress) -> Any:
        return await method(servers, progress=progress)

    return run


class JobRunner:
    """Runs jobs as tasks on the app's loop and keeps the latest ``keep``."""

    def __init__(self, keep: int = 100) -> None:
        self.keep = keep
        self._jobs: dict[str, Job] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, action: str, servers: list[str], operation: Operation, *, user: str | None) -> Job:
        title = ACTIONS[action].title if action in ACTIONS else action
        job = Job(id=uuid.uuid4().hex[:16], action=action, title=title, servers=list(servers), user=user)
        job.hosts = {name: HostProgress(name) for name in servers}
        self._jobs[job.id] = job
        self._tasks[job.id] = asyncio.create_task(self._run(job, operation), name=f"job-{job.id}")
        self._forget_old()
        return job

    async def _run(self, job: Job, operation: Operation) -> None:
        try:
            result = await operation(job.progress)
            job.result = _jsonable(result)
            job.state = "succeeded"
        except asyncio.CancelledError:
            job.state, job.error = "cancelled", "stopped: the web app shut down"
            raise
        except errors.DcOverviewError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception:
            log.exception("job %s (%s) failed", job.id, job.action)
            job.state, job.error = "failed", "internal error; the server log has the details"
        finally:
            job.finished_at = _now()
            for host in job.hosts.values():
                if host.ok is None and host.state == "pending":
                    host.state = "unreported"
            self._tasks.pop(job.id, None)
            job.changed()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)

    def _forget_old(self) -> None:
        done = [j for j in sorted(self._jobs.values(), key=lambda j: j.created_at) if j.finished]
        for job in done[: max(0, len(self._jobs) - self.keep)]:
            del self._jobs[job.id]

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _jsonable(value: Any) -> Any:
    try:
        return output.to_jsonable(value)
    except Exception:  # noqa: BLE001 - a result that cannot be shown is still a success
        return str(value)


def job_view(job: Job, job_url: str) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for host in job.hosts.values():
        counts[host.state] = counts.get(host.state, 0) + 1
    done = sum(1 for h in job.hosts.values() if h.ok is not None or h.state != "pending")
    failed = sum(1 for h in job.hosts.values() if h.ok is False)
    return {
        "id": job.id, "action": job.action, "title": job.title, "state": job.state, "finished": job.finished,
        "servers": job.servers, "user": job.user, "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None, "error": job.error,
        "result": job.result, "counts": counts, "done": done, "total": len(job.hosts), "failed_hosts": failed,
        "headline": _headline(job, done, failed), "url": job_url,
        "hosts": [
            {"host": h.host, "state": h.state, "ok": h.ok, "message": h.message,
             "updated_at": h.updated_at.isoformat()}
            for h in job.hosts.values()
        ],
    }


def _headline(job: Job, done: int, failed: int) -> str:
    """The job in a few words, as its badge shows it."""
    if job.state == "running":
        return f"running · {done} of {len(job.hosts)} done"
    if job.state != "succeeded":
        return job.state
    if failed == 0:
        return "all ok"
    return f"{failed} of {len(job.hosts)} failed"
