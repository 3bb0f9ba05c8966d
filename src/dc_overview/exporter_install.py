"""``install-exporters`` and ``remove-exporters``: node_exporter everywhere,
the GPU exporter where GPUs are (or everywhere with a simulated count), as
hardened systemd units, pushed from the master's artifact cache.

Per worker, in one SSH session: probe (facts + sha256 of our files), plan
(``exporter_plan``), push what differs to a private staging folder, run one
root script (``sudo -n`` when not logged in as root), probe again to record
versions. The same steps run on this machine through the LocalHost port for
``--local``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping

import attrs

from . import errors
from .artifacts import ArtifactCache, check_runs_on
from .domain import ExporterState, Server, ServerStatus
from .exporter_plan import (
    DesiredExporter,
    ExporterPlan,
    install_script,
    plan_install,
    plan_remove,
    remove_script,
    staged_name,
)
from .exporter_units import (
    GPU_SPEC,
    NODE_SPEC,
    SPECS,
    gpu_exporter_unit,
    node_exporter_unit,
)
from .fanout import HostReport, Progress, for_each_server
from .ports import Deps, FileUpload, LocalHost, SshConnection
from .targets import write_targets
from .worker_probe import ROOT_SHELL, WorkerFacts, parse_probe, probe_script
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

LOCAL_NAME = "localhost"
MANAGED_FILES = tuple(path for spec in SPECS for path in (spec.binary, spec.unit_path))


@attrs.frozen
class InstallOptions:
    node_exporter_binary: Path | None = None
    gpu_exporter_artifact: Path | None = None
    gpu_exporter_simulate: int | None = None  # install the GPU exporter everywhere, simulating N GPUs
    gpu_exporter: bool = True  # install it where GPUs are found


@attrs.frozen
class InstallResult(HostReport):
    changes: tuple[str, ...] = ()
    exporters: Mapping[str, ExporterState] = attrs.field(factory=dict)
    gpu_count: int | None = None


# -- use cases --------------------------------------------------------------------------------


async def install_exporters(deps: Deps, names: Iterable[str] | None = None, *,
                            options: InstallOptions = InstallOptions(), password: str | None = None,
                            progress: Progress | None = None, retry: RetryPolicy | None = None) -> list[InstallResult]:
    servers = select_servers(deps, names)
    ssh = await ssh_options(deps, password, retry)
    cache = ArtifactCache(deps, node_exporter_binary=options.node_exporter_binary,
                          gpu_exporter_artifact=options.gpu_exporter_artifact)

    async def work(server: Server) -> InstallResult:
        started = time.monotonic()
        async with open_session(deps, server, ssh, log) as session:
            result = await _install(session.conn, server.name, cache, options, ssh)
            server = session.server
        _record(deps, log, server, result)
        return attrs.evolve(result, duration_s=_since(started), attempts=session.attempts)

    with ContactLog(deps) as log:  # stored in batches; a cancelled run keeps what finished
        results = await for_each_server(servers, work, concurrency=ssh.concurrency,
                                        failed=_failed(deps, log, InstallResult), progress=progress)
    if servers:
        write_targets(deps)
    return results


async def remove_exporters(deps: Deps, names: Iterable[str] | None = None, *, password: str | None = None,
                           progress: Progress | None = None, retry: RetryPolicy | None = None) -> list[InstallResult]:
    servers = select_servers(deps, names)
    ssh = await ssh_options(deps, password, retry)

    async def work(server: Server) -> InstallResult:
        started = time.monotonic()
        async with open_session(deps, server, ssh, log) as session:
            result = await _remove(session.conn, server.name, ssh)
            server = session.server
        _record(deps, log, server, result)
        return attrs.evolve(result, duration_s=_since(started), attempts=session.attempts)

    with ContactLog(deps) as log:  # stored in batches; a cancelled run keeps what finished
        results = await for_each_server(servers, work, concurrency=ssh.concurrency,
                                        failed=_failed(deps, log, InstallResult), progress=progress)
    if servers:
        write_targets(deps)
    return results


async def install_exporters_local(deps: Deps, options: InstallOptions = InstallOptions()) -> InstallResult:
    """The same plan applied to this machine (a worker installing itself)."""
    local = _local(deps)
    ssh = await ssh_options(deps)
    cache = ArtifactCache(deps, node_exporter_binary=options.node_exporter_binary,
                          gpu_exporter_artifact=options.gpu_exporter_artifact)
    started = time.monotonic()
    try:
        async with local.open() as conn:
            result = await _install(conn, LOCAL_NAME, cache, options, ssh)
    except errors.DcOverviewError as exc:
        return _local_failure(exc, started)
    return attrs.evolve(result, duration_s=_since(started))


async def remove_exporters_local(deps: Deps) -> InstallResult:
    local = _local(deps)
    ssh = await ssh_options(deps)
    started = time.monotonic()
    try:
        async with local.open() as conn:
            result = await _remove(conn, LOCAL_NAME, ssh)
    except errors.DcOverviewError as exc:
        return _local_failure(exc, started)
    return attrs.evolve(result, duration_s=_since(started))


def _local_failure(exc: errors.DcOverviewError, started: float) -> InstallResult:
    word, _ = outcome_of(exc)
    return InstallResult(name=LOCAL_NAME, ok=False, result=word, detail=describe(exc), duration_s=_since(started))


# -- one worker ------------------------------------------------------------------------------


async def _install(conn: SshConnection, name: str, cache: ArtifactCache, options: InstallOptions,
                   ssh: SshOptions) -> InstallResult:
    facts = await _probe(conn, name, ssh, hash_paths=MANAGED_FILES)
    if not facts.systemd:
        raise errors.RemoteCommandFailed(name, "systemd is not running there (PID 1 is something else)",
                                         hint="the exporters are installed as systemd units")
    desired, skipped = await _desired(cache, facts, options)
    plans = plan_install(facts, desired)
    conflicts = [p.conflict for p in plans if p.conflict]
    if conflicts:
        raise errors.RemoteCommandFailed(name, conflicts[0])
    changes = [f"{p.spec.name}: {p.reason}" for p in plans if p.changes]
    if changes:
        await _apply(conn, name, facts, plans, ssh)
        facts = await _probe(conn, name, ssh)
    versions = {d.spec.name: d.version for d in desired}
    exporters: dict[str, ExporterState] = {}
    notes = []
    for plan in plans:
        probe = facts.exporter(plan.spec.name)
        version = (probe.version if probe else None) or versions.get(plan.spec.name)
        exporters[plan.spec.name] = ExporterState(installed=True, version=version)
        state = plan.reason if plan.changes else "up to date"
        notes.append(f"{plan.spec.name}{' ' + version if version else ''}: {state}")
    notes += skipped
    return InstallResult(
        name=name, ok=True, result="changed" if changes else "unchanged",
        detail="; ".join(notes) if changes else "nothing to change; " + "; ".join(notes),
        changes=tuple(changes), exporters=exporters, gpu_count=facts.gpu_count,
    )


async def _desired(cache: ArtifactCache, facts: WorkerFacts,
                   options: InstallOptions) -> tuple[list[DesiredExporter], list[str]]:
    node = await cache.node_exporter(facts.arch)
    desired = [DesiredExporter(
        NODE_SPEC, FileUpload(NODE_SPEC.binary, node.content, 0o755),
        FileUpload(NODE_SPEC.unit_path, node_exporter_unit().encode(), 0o644), node.version,
    )]
    skipped = []
    simulate = options.gpu_exporter_simulate
    if options.gpu_exporter and (simulate or facts.gpu_count):
        gpu = await cache.gpu_exporter()
        if gpu.is_zipapp and not facts.python3:
            raise errors.ArtifactProblem("the GPU exporter needs python3 on the worker, and there is none",
                                         "install python3 there, or give an executable with --gpu-exporter-artifact")
        check_runs_on(gpu, facts.arch)
        unit = gpu_exporter_unit(zipapp=gpu.is_zipapp, simulate=simulate)
        desired.append(DesiredExporter(GPU_SPEC, FileUpload(GPU_SPEC.binary, gpu.content, 0o755),
                                       FileUpload(GPU_SPEC.unit_path, unit.encode(), 0o644), gpu.version))
    elif options.gpu_exporter:
        skipped.append("gpu_exporter: no GPU found, not installed" if facts.gpu_count == 0
                       else "gpu_exporter: GPUs could not be counted, not installed")
    return desired, skipped


async def _remove(conn: SshConnection, name: str, ssh: SshOptions) -> InstallResult:
    facts = await _probe(conn, name, ssh, hash_paths=MANAGED_FILES)
    plans = plan_remove(facts)
    present = [p.spec.name for p in plans if p.present]
    exporters = {spec.name: ExporterState(installed=False) for spec in SPECS}
    if not present:
        return InstallResult(name=name, ok=True, result="unchanged", detail="nothing to remove",
                             exporters=exporters, gpu_count=facts.gpu_count)
    done = await conn.run(_as_root(facts, "sh -s"), input=remove_script(plans), timeout=ssh.command_timeout)
    _check_root_run(name, facts, done.exit_status, done.stderr)
    after = await _probe(conn, name, ssh, hash_paths=MANAGED_FILES)
    left = [path for path in MANAGED_FILES if after.hashes.get(path)]
    still = [f"{e.name} still answers on :{e.port}"
             for e in after.exporters if e.name in present and e.answering == "yes"]
    if left:
        raise errors.RemoteCommandFailed(name, "could not remove " + ", ".join(left), done.stderr[-500:])
    detail = "removed " + ", ".join(present) + ("; " + "; ".join(still) if still else "")
    return InstallResult(name=name, ok=not still, result="changed" if not still else "port_still_open",
                         detail=detail, changes=tuple(f"{n}: removed" for n in present), exporters=exporters,
                         gpu_count=after.gpu_count)


async def _probe(conn: SshConnection, name: str, ssh: SshOptions, hash_paths: Iterable[str] = ()) -> WorkerFacts:
    """What the worker has, seen as root (a plain user may not get answers
    from systemctl, and installing needs root anyway)."""
    done = await conn.run(ROOT_SHELL, input=probe_script(SPECS, hash_paths), timeout=ssh.command_timeout)
    facts = parse_probe(done.stdout)
    if facts.kernel is None:
        _check_root_run(name, facts, done.exit_status or 1, done.stderr)
    return facts


async def _apply(conn: SshConnection, name: str, facts: WorkerFacts, plans: list[ExporterPlan],
                 ssh: SshOptions) -> None:
    uploads = [upload for plan in plans for upload in plan.push]
    stage = None
    if uploads:
        made = await conn.run("umask 077; mktemp -d /tmp/dc-overview.XXXXXXXX", timeout=ssh.command_timeout)
        stage = made.stdout.strip()
        if made.exit_status != 0 or not stage.startswith("/"):
            raise errors.RemoteCommandFailed(name, "cannot make a staging folder in /tmp", made.stderr[-300:])
        staged = [FileUpload(f"{stage}/{staged_name(i)}", u.content, 0o600) for i, u in enumerate(uploads)]
        try:
            await asyncio.wait_for(conn.put(staged), ssh.transfer_timeout)
        except asyncio.TimeoutError:
            raise errors.CommandTimeout(
                name, f"pushing files did not finish within {ssh.transfer_timeout:g}s") from None
    script = install_script(plans, stage)
    done = await conn.run(_as_root(facts, "sh -s"), input=script, timeout=ssh.command_timeout + 30)
    if done.exit_status != 0 and stage:
        await conn.run(f"rm -rf {stage}", timeout=ssh.command_timeout)
    _check_root_run(name, facts, done.exit_status, done.stderr)


def _as_root(facts: WorkerFacts, command: str) -> str:
    return command if facts.login_uid == 0 else f"sudo -n {command}"


def _check_root_run(name: str, facts: WorkerFacts, status: int, stderr: str) -> None:
    if status == 0:
        return
    if facts.login_uid != 0 and "sudo" in stderr:
        raise errors.RemoteCommandFailed(
            name, "needs root, and the SSH user cannot use sudo without a password",
            stderr[-300:], "log in as root (`servers update NAME --user root`) or allow passwordless sudo",
        )
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if len(lines) > 4:  # what the script said first, and the last lines (a unit's journal)
        lines = lines[:1] + lines[-3:]
    raise errors.RemoteCommandFailed(name, f"the script run as root failed (exit {status})"
                                     + (f": {' | '.join(lines)}" if lines else ""), stderr[-1000:])


# -- bookkeeping ------------------------------------------------------------------------------


def _record(deps: Deps, log: ContactLog, server: Server, result: InstallResult) -> None:
    exporters = dict(server.exporters)
    for exporter, state in result.exporters.items():
        exporters[exporter] = attrs.evolve(state, enabled=server.exporter(exporter).enabled)
    changes: dict[str, object] = {"exporters": exporters}
    if result.gpu_count is not None:
        changes["gpu_count"] = result.gpu_count
    log.record(server, status=ServerStatus.ONLINE, seen=deps.clock.now(), **changes)


def _failed(deps: Deps, log: ContactLog,
            kind: type[InstallResult]) -> Callable[[Server, BaseException, float], InstallResult]:
    def failed(server: Server, exc: BaseException, seconds: float) -> InstallResult:
        word, status = outcome_of(exc)
        if isinstance(exc, (errors.RemoteCommandFailed, errors.ArtifactProblem, errors.InvalidInput)):
            log.record(server, status=ServerStatus.ONLINE, seen=deps.clock.now())
        else:
            log.record(server, status=status, seen=None)
        return kind(name=server.name, ok=False, result=word, detail=describe(exc), duration_s=round(seconds, 3))

    return failed


def _local(deps: Deps) -> LocalHost:
    if deps.local is None:
        raise errors.DcOverviewError("no local runner is configured", "open the fleet with dc_overview.open()")
    return deps.local


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
