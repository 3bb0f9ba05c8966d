"""What installing or removing exporters changes on one worker, decided from
what the worker reported (``WorkerFacts``) before anything is touched, and
the root shell script that carries it out.

Idempotent by construction: a file is pushed only when its sha256 on the
worker differs, a unit is restarted only when one of its files changed or
it is not running and answering, so a second run plans nothing.
"""

from __future__ import annotations

import shlex
from typing import Sequence

import attrs

from .artifacts import sha256
from .exporter_units import BASE_DIR, BIN_DIR, SPECS, ExporterSpec
from .ports import FileUpload
from .worker_probe import SHELL_PRELUDE, WorkerFacts, version_command

START_WAIT_S = 20  # how long a (re)started exporter gets to answer on its port


@attrs.frozen
class DesiredExporter:
    spec: ExporterSpec
    binary: FileUpload
    unit: FileUpload
    version: str | None = None  # known on the master (a pinned release), else read on the worker

    @property
    def files(self) -> tuple[FileUpload, ...]:
        return (self.binary, self.unit)


@attrs.frozen
class ExporterPlan:
    spec: ExporterSpec
    push: tuple[FileUpload, ...] = ()
    action: str = "none"  # none, enable, start, restart
    reason: str = "up to date"
    conflict: str | None = None

    @property
    def changes(self) -> bool:
        return self.action != "none" or bool(self.push)


def plan_install(facts: WorkerFacts, desired: Sequence[DesiredExporter]) -> list[ExporterPlan]:
    plans = []
    for want in desired:
        probe = facts.exporter(want.spec.name)
        active = probe.active if probe else "unknown"
        answering = probe.answering if probe else "unknown"
        stale = [f for f in want.files if facts.hashes.get(f.path) != sha256(f.content)]
        conflict = None
        if active not in ("active", "unknown") and answering in ("yes", "bad"):
            conflict = (f"port {want.spec.port} already answers, but not from {want.spec.unit} "
                        f"(another exporter, e.g. a distribution's prometheus-node-exporter?); "
                        f"stop and disable it first")
        if stale:
            fresh = all(facts.hashes.get(f.path) is None for f in want.files)
            what = [kind for kind, f in (("binary", want.binary), ("unit", want.unit)) if f in stale]
            reason = "installed" if fresh else "updated " + " and ".join(what)
            plans.append(ExporterPlan(want.spec, tuple(stale), "restart", reason, conflict))
        elif active != "active":
            plans.append(ExporterPlan(want.spec, (), "start", f"was {active}", conflict))
        elif answering != "yes":
            plans.append(ExporterPlan(want.spec, (), "restart", f"did not answer on :{want.spec.port}"))
        elif probe is not None and probe.enabled not in ("enabled", "unknown"):
            plans.append(ExporterPlan(want.spec, (), "enable", f"was {probe.enabled} at boot"))
        else:
            plans.append(ExporterPlan(want.spec))
    return plans


def staged_name(index: int) -> str:
    return f"f{index}"


def install_script(plans: Sequence[ExporterPlan], stage: str | None) -> str:
    """Run as root: put staged files in place (each renamed over the old
    one, so a running binary is never written into) and, beside a new
    binary, the first line of its ``--version`` (which checks then read
    instead of starting it), reload systemd, enable and (re)start what
    changed, then wait until each answers on its port."""
    lines = [SHELL_PRELUDE, "set -eu"]
    index = 0
    unit_changed = False
    for plan in plans:
        for upload in plan.push:
            src = shlex.quote(f"{stage}/{staged_name(index)}")
            dst = shlex.quote(upload.path)
            new = shlex.quote(upload.path + ".dc-new")
            lines.append(f"install -D -m {upload.mode:04o} -o root -g root {src} {new} && mv -f {new} {dst}")
            if upload.path == plan.spec.binary:
                known, known_new = shlex.quote(plan.spec.version_path), shlex.quote(plan.spec.version_path + ".dc-new")
                lines.append(f'v=$({version_command(plan.spec)}) || v=; printf \'%s\\n\' "${{v%%"$NL"*}}" > {known_new} '
                             f"&& chmod 0644 {known_new} && mv -f {known_new} {known}")
            unit_changed |= upload.path == plan.spec.unit_path
            index += 1
    if unit_changed:
        lines.append("systemctl daemon-reload")
    for plan in plans:
        unit = shlex.quote(plan.spec.unit)
        if plan.action == "none":
            continue
        lines.append(f"systemctl enable --quiet {unit}")
        if plan.action in ("start", "restart"):
            lines.append(f"systemctl reset-failed {unit} 2>/dev/null || true")
            lines.append(f"systemctl {plan.action} {unit}")
    if stage:
        lines.append(f"rm -rf {shlex.quote(stage)}")
    for plan in plans:
        if plan.action not in ("start", "restart"):
            continue
        unit = shlex.quote(plan.spec.unit)
        lines.append(f"""\
i=0
until [ "$(probe_http {plan.spec.port})" = yes ]; do
    i=$((i + 1))
    if [ "$i" -gt {START_WAIT_S * 4} ]; then
        state=$(systemctl is-active {unit} || true)
        echo "{plan.spec.unit} does not answer on port {plan.spec.port} after {START_WAIT_S}s ($state):" >&2
        journalctl -u {unit} -n 8 --no-pager -o cat >&2 2>/dev/null || true
        exit 3
    fi
    sleep 0.25 2>/dev/null || sleep 1
done""")
    return "\n".join(lines) + "\n"


@attrs.frozen
class RemovePlan:
    spec: ExporterSpec
    present: bool


def plan_remove(facts: WorkerFacts, specs: Sequence[ExporterSpec] = SPECS) -> list[RemovePlan]:
    plans = []
    for spec in specs:
        probe = facts.exporter(spec.name)
        files = (facts.hashes.get(spec.binary), facts.hashes.get(spec.unit_path))
        present = any(files) or bool(probe and (probe.unit_present or probe.active not in ("inactive", "unknown", "")))
        plans.append(RemovePlan(spec, present))
    return plans


def remove_script(plans: Sequence[RemovePlan]) -> str:
    """Run as root: stop, disable and delete our units and binaries."""
    lines = [SHELL_PRELUDE, "set -u", "has_systemd=no; [ -d /run/systemd/system ] && has_systemd=yes"]
    for plan in plans:
        if not plan.present:
            continue
        unit = shlex.quote(plan.spec.unit)
        lines.append(f'[ "$has_systemd" = yes ] && systemctl disable --now --quiet {unit} 2>/dev/null')
        lines.append(f"rm -f {shlex.quote(plan.spec.unit_path)} {shlex.quote(plan.spec.binary)} "
                     f"{shlex.quote(plan.spec.version_path)}")
        if plan.spec.cache_dir:
            lines.append(f"rm -rf {shlex.quote(plan.spec.cache_dir)}")
    lines.append('[ "$has_systemd" = yes ] && systemctl daemon-reload')
    for plan in plans:
        if plan.present:
            unit = shlex.quote(plan.spec.unit)
            lines.append(f'[ "$has_systemd" = yes ] && systemctl reset-failed {unit} 2>/dev/null')
    lines.append(f"rmdir {shlex.quote(BIN_DIR)} {shlex.quote(BASE_DIR)} 2>/dev/null")
    lines.append("exit 0")
    return "\n".join(lines) + "\n"
