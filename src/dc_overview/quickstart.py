"""``quickstart``: set this host up from one set of answers.

1. plan (``quickstart_plan``): check every answer against this host; nothing
   is written unless all of it passed (and Docker is there for a master);
2. apply, in order, each step idempotent (``quickstart_steps``): Docker if
   asked, the SSH key, settings, the ipmi-monitor import, the workers in the
   inventory, this host's own exporters (worker, both), secrets, the web
   UI's admin, the stack's options, the stack itself (master, both); then
   the workers are checked and get their exporters over SSH, each worker on
   its own (a dead one never stops the others);
3. the answers are kept (without secrets) for the next run, and a report
   says what changed, the URLs, and where the credentials are.

A second run with the same answers changes nothing and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import attrs

from . import errors
from .domain import ServerStatus
from .exporter_install import InstallOptions, InstallResult, install_exporters, install_exporters_local
from .fanout import HostReport
from .fleet_check import check
from .ports import Deps
from .quickstart_answers import ANSWERS_FILE, QuickstartAnswers, provider_enabled
from .quickstart_answers_file import dump_answers
from .quickstart_plan import QuickstartPlan, plan_quickstart
from .quickstart_steps import (
    ADMIN_PASSWORD_SECRET, StepResult, ensure_admin, ensure_local_server, ensure_secrets, ensure_settings,
    ensure_ssh_key, ensure_stack_options, ensure_workers, import_from_ipmi_monitor, install_docker,
    record_local_exporters,
)
from .stack import GRAFANA_PASSWORD, RUNPOD_KEY, VASTAI_KEY
from .stack_apply import ApplyReport, apply_stack
from .stack_options import current_spec
from .worker_session import describe


@attrs.frozen
class QuickstartProgress:
    """What a front end is told while quickstart runs (each optional)."""

    step: Callable[[StepResult], None] | None = None  # a step finished
    stack: Callable[[str], None] | None = None  # a line of the stack's progress (pulls, containers)
    phase: Callable[[str, int], None] | None = None  # ("check" | "install", how many workers)
    worker: Callable[[object, int, int], None] | None = None  # (a worker's result, done, total)


@attrs.frozen
class Credential:
    what: str  # e.g. "Grafana (user admin)"
    where: str  # where it is kept; never the value itself
    value: str | None = attrs.field(default=None, repr=False)  # only when asked for (show_passwords)


@attrs.frozen
class QuickstartReport:
    role: str
    changed: bool  # False: this host already matched the answers
    steps: tuple[StepResult, ...] = ()
    workers: tuple[HostReport, ...] = ()  # one per worker: its install result, or its check result
    local: InstallResult | None = None  # this host's own exporters (worker, both)
    stack: ApplyReport | None = None
    urls: tuple[tuple[str, str], ...] = ()  # (what, URL)
    credentials: tuple[Credential, ...] = ()
    public_key: str | None = None  # of a key generated now: for the workers' authorized_keys
    notes: tuple[str, ...] = ()
    next_commands: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return any(s.result == "failed" for s in self.steps)


async def run_quickstart(deps: Deps, answers: QuickstartAnswers, *, progress: QuickstartProgress | None = None,
                         show_passwords: bool = False) -> QuickstartReport:
    progress = progress or QuickstartProgress()
    plan = await plan_quickstart(deps, answers)
    steps: list[StepResult] = []

    def done(result: StepResult) -> None:
        steps.append(result)
        if progress.step:
            progress.step(result)

    if plan.install_docker:
        done(await install_docker(deps))
    names: list[str] = []
    if answers.master:
        done(await ensure_ssh_key(deps, answers.ssh_key, plan.key_material))
        done(await ensure_settings(deps, answers))
        if plan.ipmi_path:
            result, imported = await import_from_ipmi_monitor(deps, plan.ipmi_path)
            done(result)
            names += imported
        if plan.workers:
            result, listed = await ensure_workers(deps, plan.workers, answers.ssh_key.name if answers.ssh_key else None)
            done(result)
            names += [n for n in listed if n not in names]
    local = await _this_host(deps, plan, done) if answers.worker else None
    stack = None
    if answers.master:
        done(await ensure_secrets(deps, answers))
        done(await ensure_admin(deps, answers))
        assert plan.stack_options is not None
        done(await ensure_stack_options(deps, plan.stack_options))
        if answers.stack.start:
            stack = await _stack(deps, progress, done)
    workers = await _workers(deps, plan, names, progress, done) if names else []
    done(_save_answers(deps, answers, plan))
    return await _report(deps, plan, steps, workers, local, stack, show_passwords)


async def _this_host(deps: Deps, plan: QuickstartPlan, done: Callable[[StepResult], None]) -> InstallResult | None:
    server = None
    if plan.local_server:
        result, server = await ensure_local_server(deps, *plan.local_server)
        done(result)
    try:
        local = await install_exporters_local(deps, _install_options(plan.answers))
    except errors.DcOverviewError as exc:
        done(StepResult("exporters here", "failed", describe(exc)))
        return None
    if server is not None:
        record_local_exporters(deps, server, local)
    done(StepResult("exporters here", local.result if local.result in ("changed", "unchanged") else "failed",
                    local.detail))
    return local


async def _stack(deps: Deps, progress: QuickstartProgress, done: Callable[[StepResult], None]) -> ApplyReport | None:
    try:
        report = await apply_stack(deps, progress=progress.stack)
    except errors.DcOverviewError as exc:
        details = getattr(exc, "details", None)
        done(StepResult("stack", "failed", details() if details else str(exc)))
        return None
    touched = [f"{c.service} {c.action}" for c in report.changes if c.action != "unchanged"]
    done(StepResult("stack", "changed", ", ".join(touched)) if touched
         else StepResult("stack", "unchanged", f"{len(report.changes)} service(s) running as configured"))
    return report


async def _workers(deps: Deps, plan: QuickstartPlan, names: list[str], progress: QuickstartProgress,
                   done: Callable[[StepResult], None]) -> list[HostReport]:
    if progress.phase:
        progress.phase("check", len(names))
    checked = await check(deps, names, progress=progress.worker)
    results: dict[str, HostReport] = {r.name: r for r in checked}
    reachable = [r.name for r in checked if r.status == ServerStatus.ONLINE]
    if plan.answers.exporters.install and reachable:
        if progress.phase:
            progress.phase("install", len(reachable))
        installed = await install_exporters(deps, reachable, options=_install_options(plan.answers),
                                            progress=progress.worker)
        results.update({r.name: r for r in installed})
    ordered = [results[name] for name in names]
    failed = [r for r in ordered if not r.ok]
    changed = [r.name for r in ordered if r.result == "changed"]
    if failed:
        shown = ", ".join(f"{r.name} ({r.result})" for r in failed[:10])
        done(StepResult("worker exporters", "failed", f"{len(failed)} of {len(ordered)} failed: {shown}"
                        + (f"; changed {', '.join(changed)}" if changed else "")))
    elif changed:
        done(StepResult("worker exporters", "changed", f"installed or updated on {', '.join(changed)}"))
    else:
        verb = "up to date" if plan.answers.exporters.install else "reachable"
        done(StepResult("worker exporters", "unchanged", f"{len(ordered)} worker(s) {verb}"))
    return ordered


def _install_options(answers: QuickstartAnswers) -> InstallOptions:
    exporters = answers.exporters
    return InstallOptions(
        node_exporter_binary=Path(exporters.node_exporter_binary) if exporters.node_exporter_binary else None,
        gpu_exporter_artifact=Path(exporters.gpu_exporter_artifact) if exporters.gpu_exporter_artifact else None,
        gpu_exporter_simulate=exporters.gpu_simulate, gpu_exporter=exporters.gpu_exporter,
    )


def _save_answers(deps: Deps, answers: QuickstartAnswers, plan: QuickstartPlan) -> StepResult:
    """Keep the answers for the next run, as they now stand: a key that was
    added or made is simply the fleet's key by name, the workers of a workers
    file are listed (the file may be gone by then); no secrets."""
    stored = frozenset(deps.secrets.names()) if deps.secrets is not None else frozenset()
    kept = attrs.evolve(
        answers,
        workers=plan.workers if answers.master else answers.workers,
        workers_file=None if answers.master else answers.workers_file,
        ssh_key=attrs.evolve(answers.ssh_key, path=None, generate=False) if answers.ssh_key else None,
        vastai=attrs.evolve(answers.vastai, enabled=provider_enabled(answers.vastai, VASTAI_KEY in stored)),
        runpod=attrs.evolve(answers.runpod, enabled=provider_enabled(answers.runpod, RUNPOD_KEY in stored)),
    )
    text = dump_answers(kept)
    path = deps.storage.data_dir / ANSWERS_FILE
    try:
        if path.read_text() == text:
            return StepResult("answers", "unchanged", f"kept in {path}")
    except OSError:
        pass
    deps.storage.write_file_atomically(ANSWERS_FILE, text, mode=0o600)
    return StepResult("answers", "changed", f"kept in {path} for the next run (no secrets)")


async def _report(deps: Deps, plan: QuickstartPlan, steps: list[StepResult], workers: list[HostReport],
                  local: InstallResult | None, stack: ApplyReport | None, show: bool) -> QuickstartReport:
    answers = plan.answers
    urls: list[tuple[str, str]] = []
    credentials: list[Credential] = []
    public_key = None
    if answers.master:
        spec = await current_spec(deps)
        base = _base_url(deps, plan)
        titles = {s.name: s.title for s in spec.services} | {"ipmi-monitor": "IPMI Monitor"}
        urls = [("Landing page", base + "/")] + [(titles.get(r.name, r.name), base + r.path) for r in spec.routes]
        credentials = _credentials(deps, answers, show)
        key = deps.storage.get_key(answers.ssh_key.name) if answers.ssh_key else None
        if key is not None and any(s.step == "ssh key" and "generated" in s.detail for s in steps):
            public_key = key.public_key
    notes = list(plan.notes)
    if answers.master and not answers.stack.start:
        notes.append("the stack was not started (stack.start: no); the URLs answer once it runs: "
                     "dc-overview stack apply")
    return QuickstartReport(
        role=answers.role, changed=any(s.result == "changed" for s in steps), steps=tuple(steps),
        workers=tuple(workers), local=local, stack=stack, urls=tuple(urls), credentials=tuple(credentials),
        public_key=public_key, notes=tuple(notes), next_commands=_next_commands(answers, public_key is not None),
    )


def _base_url(deps: Deps, plan: QuickstartPlan) -> str:
    options = plan.stack_options
    assert options is not None
    host = options.domain
    if host is None:
        addresses = deps.host.addresses() if deps.host is not None else []
        host = addresses[0] if addresses else (deps.host.hostname() if deps.host is not None else "localhost")
    if ":" in host:
        host = f"[{host}]"
    if options.tls == "off":
        return f"http://{host}" + ("" if options.http_port == 80 else f":{options.http_port}")
    return f"https://{host}" + ("" if options.https_port == 443 else f":{options.https_port}")


def secret_location(deps: Deps, name: str) -> str:
    folder = getattr(deps.secrets, "folder", None)
    return f"{folder}/{name} (mode 0600)" if folder else f"the secret store ({name})"


def _credentials(deps: Deps, answers: QuickstartAnswers, show: bool) -> list[Credential]:
    assert deps.secrets is not None
    found = []
    stored = deps.secrets.get(ADMIN_PASSWORD_SECRET)
    if stored is not None:
        found.append(Credential(f"web UI (first admin {answers.admin.name!r}, generated password)",
                                secret_location(deps, ADMIN_PASSWORD_SECRET), stored if show else None))
    elif answers.admin.password:
        found.append(Credential(f"web UI (admin {answers.admin.name!r})", "the password you gave (kept only hashed)"))
    if answers.grafana.enabled and deps.secrets.get(GRAFANA_PASSWORD) is not None:
        found.append(Credential("Grafana (user admin)", secret_location(deps, GRAFANA_PASSWORD),
                                deps.secrets.get(GRAFANA_PASSWORD) if show else None))
    for name, what in ((VASTAI_KEY, "Vast.ai API key"), (RUNPOD_KEY, "RunPod API key")):
        if deps.secrets.get(name) is not None:
            found.append(Credential(what, secret_location(deps, name)))
    if answers.ssh_key is not None and (key := deps.storage.get_key(answers.ssh_key.name)) is not None:
        found.append(Credential(f"SSH key {key.name!r} ({key.fingerprint})", f"{key.private_key_path} (mode 0600)"))
    return found


def _next_commands(answers: QuickstartAnswers, key_generated: bool) -> tuple[str, ...]:
    commands = []
    if answers.master:
        if key_generated:
            commands.append("put the public key above in each worker's ~/.ssh/authorized_keys, then: "
                            "dc-overview install-exporters --all")
        commands += ["dc-overview servers list", "dc-overview status",
                     "dc-overview servers add NAME ADDRESS && dc-overview install-exporters NAME"]
    else:
        commands.append("on the master: dc-overview servers add NAME ADDRESS && dc-overview check NAME")
    commands.append("dc-overview quickstart  (again, to change an answer)")
    return tuple(commands)
