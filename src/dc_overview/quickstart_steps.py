"""Quickstart's steps, each idempotent: run twice with the same answers, the
second run finds everything in place and reports ``unchanged``.

Every step returns a ``StepResult``. They run only after ``quickstart_plan``
checked the answers against this host, so what they refuse is rare; an
error still names what was wrong.
"""

from __future__ import annotations

import secrets as random
from typing import Any

import attrs

from . import accounts, credentials, errors, inventory, keys, settings
from .domain import Server, ServerStatus, check_name
from .exporter_install import InstallResult
from .ipmi_import import import_ipmi_monitor, safe_name
from .ports import Deps, KeyMaterial
from .quickstart_answers import QuickstartAnswers, SshKeyAnswer, WorkerAnswer, provider_enabled, worker_name
from .quickstart_detect import docker_state
from .stack import GRAFANA_PASSWORD, RUNPOD_KEY, VASTAI_KEY, StackOptions
from .stack_options import PREFIX, stack_options
from .worker_session import record_contact

ADMIN_PASSWORD_SECRET = "web_admin_password"  # the generated first password of the web UI's admin
DOCKER_INSTALL = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io"
DOCKER_START = "systemctl enable --now docker 2>/dev/null || service docker start"
DOCKER_INSTALL_TIMEOUT_S = 1200.0
IMAGE_OPTIONS = {"app": "app_image", "prometheus": "prometheus_image", "grafana": "grafana_image",
                 "proxy": "proxy_image", "watchtower": "watchtower_image",
                 "vastai_exporter": "vastai_exporter_image", "runpod_exporter": "runpod_exporter_image"}


@attrs.frozen
class StepResult:
    step: str
    result: str  # changed, unchanged, skipped, failed
    detail: str = ""


def _step(step: str, changes: list[str], unchanged: str) -> StepResult:
    return StepResult(step, "changed", "; ".join(changes)) if changes else StepResult(step, "unchanged", unchanged)


# -- Docker -------------------------------------------------------------------------------------


async def install_docker(deps: Deps) -> StepResult:
    """``apt-get install docker.io`` through the LocalHost runner, then start it."""
    if deps.local is None:
        raise errors.DockerMissing("there is no local runner to install it with")
    async with deps.local.open() as conn:
        done = await conn.run(DOCKER_INSTALL, timeout=DOCKER_INSTALL_TIMEOUT_S)
        if done.exit_status != 0:
            tail = " | ".join(line for line in done.stderr.strip().splitlines()[-3:] if line.strip())
            raise errors.DockerMissing(f"installing it failed (apt-get exit {done.exit_status}: {tail or 'no output'})")
        await conn.run(DOCKER_START, timeout=120.0)
    version, problem = await docker_state(deps)
    if version is None:
        raise errors.DockerMissing(f"it was installed but does not answer ({problem})")
    return StepResult("docker", "changed", f"installed docker.io; {version}")


# -- the SSH key and the settings ------------------------------------------------------------------


async def ensure_ssh_key(deps: Deps, answer: SshKeyAnswer | None, material: KeyMaterial | None) -> StepResult:
    if answer is None:
        return StepResult("ssh key", "skipped", "no key asked for; the fleet's keys are kept")
    changes = []
    existing = deps.storage.get_key(answer.name)
    if existing is None and material is not None:
        await keys.add_key(deps, answer.name, material.private_key)
        changes.append(f"added the key {answer.name!r} from {answer.path}")
    elif existing is None and answer.generate:
        await keys.generate_key(deps, answer.name)
        changes.append(f"generated the key {answer.name!r}")
    current = await settings.get_settings(deps)
    if current.default_ssh_key != answer.name:
        await settings.set_setting(deps, "default_ssh_key", answer.name)
        changes.append(f"it is the default key now (was {current.default_ssh_key or 'none'})")
    return _step("ssh key", changes, f"the key {answer.name!r} is there and is the default")


async def ensure_settings(deps: Deps, answers: QuickstartAnswers) -> StepResult:
    current = await settings.get_settings(deps)
    if current.dc_port == answers.dc_port:
        return StepResult("settings", "unchanged", f"dc_port {answers.dc_port}")
    await settings.set_setting(deps, "dc_port", answers.dc_port)
    return StepResult("settings", "changed", f"dc_port {current.dc_port} -> {answers.dc_port}")


async def import_from_ipmi_monitor(deps: Deps, path: str | None) -> tuple[StepResult, list[str]]:
    """Servers (by OS address) and keys; returns the servers it covers."""
    from pathlib import Path

    report = await import_ipmi_monitor(deps, Path(path) if path else None)
    names = [s.name for s in report.added] + list(report.unchanged)
    changes = []
    if report.added:
        changes.append(f"added {len(report.added)} server(s)")
    if report.keys_added:
        changes.append(f"added {len(report.keys_added)} key(s): {', '.join(report.keys_added)}")
    skipped = f"; skipped {len(report.skipped)}: " + ", ".join(f"{n} ({why})" for n, why in report.skipped[:5]) \
        if report.skipped else ""
    unchanged = f"{len(report.unchanged)} server(s) and {len(report.keys_unchanged)} key(s) were imported before"
    result = _step("ipmi-monitor import", changes, unchanged)
    return attrs.evolve(result, detail=result.detail + skipped), names


# -- the inventory ---------------------------------------------------------------------------


async def ensure_workers(deps: Deps, workers: tuple[WorkerAnswer, ...], key: str | None) -> tuple[StepResult, list[str]]:
    """Each worker in the inventory as answered; returns their names in the fleet."""
    defaults = await settings.get_settings(deps)
    names, added, updated = [], [], []
    for worker in workers:
        name = worker_name(worker)
        wanted = {"address": worker.address, "ssh_user": worker.user or defaults.default_ssh_user,
                  "ssh_port": worker.port, "ssh_key": worker.key or key or defaults.default_ssh_key}
        same_name = deps.storage.get_server(name)
        same_address = deps.storage.find_server_by_address(worker.address)
        if same_name is None and same_address is not None:
            names.append(same_address.name)  # already in the fleet under another name
            continue
        names.append(name)
        if same_name is None:
            await inventory.add_server(deps, name, worker.address, ssh_user=wanted["ssh_user"],
                                       ssh_port=worker.port, ssh_key=wanted["ssh_key"])
            added.append(name)
            continue
        changes = {k: v for k, v in wanted.items() if getattr(same_name, k) != v}
        if changes:
            await inventory.update_server(deps, name, **changes)
            updated.append(f"{name} ({', '.join(changes)})")
    parts = ([f"added {', '.join(added)}"] if added else []) + ([f"updated {'; '.join(updated)}"] if updated else [])
    return _step("workers", parts, f"{len(names)} worker(s) in the fleet as answered"), names


async def ensure_local_server(deps: Deps, name: str, address: str) -> tuple[StepResult, Server]:
    """This host (role both) as a fleet server, so Prometheus scrapes its exporters
    (the plan made sure ``name`` is not another server's)."""
    check_name(name)
    existing = deps.storage.find_server_by_address(address)
    if existing is not None:
        return StepResult("this host", "unchanged", f"in the fleet as {existing.name!r} ({address})"), existing
    server = await inventory.add_server(deps, name, address)
    return StepResult("this host", "changed", f"added as {name!r} ({address})"), server


def local_server_name(answers: QuickstartAnswers, hostname: str) -> str:
    return answers.host.name or safe_name(hostname.split(".")[0], "master")


def record_local_exporters(deps: Deps, server: Server, result: InstallResult) -> None:
    exporters = dict(server.exporters)
    for exporter, state in result.exporters.items():
        exporters[exporter] = attrs.evolve(state, enabled=server.exporter(exporter).enabled)
    changes: dict[str, Any] = {"exporters": exporters}
    if result.gpu_count is not None:
        changes["gpu_count"] = result.gpu_count
    record_contact(deps, server, status=ServerStatus.ONLINE, seen=deps.clock.now(), **changes)


# -- secrets, the admin account, the stack's options ------------------------------------------------


def _put_secret(deps: Deps, name: str, value: str) -> bool:
    assert deps.secrets is not None
    if deps.secrets.get(name) == value:
        return False
    deps.secrets.put(name, value)
    return True


async def ensure_secrets(deps: Deps, answers: QuickstartAnswers) -> StepResult:
    if deps.secrets is None:
        raise errors.OperationUnavailable("the secret store", "open the fleet with dc_overview.open()")
    changes = []
    password = answers.grafana.admin_password
    if answers.grafana.enabled and password and _put_secret(deps, GRAFANA_PASSWORD, password):
        changes.append("Grafana admin password set")
    elif answers.grafana.enabled and deps.secrets.get(GRAFANA_PASSWORD) is None:
        deps.secrets.put(GRAFANA_PASSWORD, random.token_urlsafe(18))
        changes.append("Grafana admin password generated")
    for name, answer, what in ((VASTAI_KEY, answers.vastai, "Vast.ai"), (RUNPOD_KEY, answers.runpod, "RunPod")):
        if answer.api_key:
            value = credentials.check_secret_value(answer.api_key, f"{what} API key")
            if _put_secret(deps, name, value):
                changes.append(f"{what} API key stored")
    return _step("secrets", changes, "the stored secrets are as answered")


async def ensure_admin(deps: Deps, answers: QuickstartAnswers) -> StepResult:
    if not await accounts.needs_setup(deps):
        admins = [u.name for u in await accounts.list_users(deps) if u.is_admin]
        return StepResult("web admin", "unchanged", f"the web UI has its admin ({', '.join(admins)}); "
                          "quickstart does not change passwords")
    password = answers.admin.password
    if password is None:
        password = random.token_urlsafe(15)
        assert deps.secrets is not None
        deps.secrets.put(ADMIN_PASSWORD_SECRET, password)
    await accounts.setup_admin(deps, answers.admin.name, password)
    how = "the password given" if answers.admin.password else "a generated password"
    return StepResult("web admin", "changed", f"admin {answers.admin.name!r} created with {how}")


def wanted_stack_options(answers: QuickstartAnswers, stored_secrets: frozenset[str]) -> dict[str, Any]:
    proxy = answers.proxy
    wanted: dict[str, Any] = {
        "grafana": answers.grafana.enabled,
        "watchtower": answers.watchtower,
        "vastai_exporter": provider_enabled(answers.vastai, VASTAI_KEY in stored_secrets),
        "runpod_exporter": provider_enabled(answers.runpod, RUNPOD_KEY in stored_secrets),
        "domain": proxy.domain,
        "tls": proxy.tls if proxy.https else "off",
        "https_port": proxy.https_port,
        "http_port": proxy.http_port,
        "ipmi_monitor": answers.ipmi_monitor.route,
        "app_port": answers.dc_port,
    }
    for short, option in IMAGE_OPTIONS.items():
        if getattr(answers.stack.images, short):
            wanted[option] = getattr(answers.stack.images, short)
    wanted.update(answers.stack.options)
    return wanted


async def desired_stack_options(deps: Deps, answers: QuickstartAnswers, secrets_after: frozenset[str]) -> StackOptions:
    """The stack's options after this quickstart, all checked together."""
    return attrs.evolve(await stack_options(deps), **wanted_stack_options(answers, secrets_after))


async def ensure_stack_options(deps: Deps, desired: StackOptions) -> StepResult:
    current = await stack_options(deps)
    changed = [f.name for f in attrs.fields(StackOptions)
               if f.name != "app_port" and getattr(current, f.name) != getattr(desired, f.name)]
    if changed:
        with deps.storage.transaction():
            for name in changed:
                deps.storage.save_setting(PREFIX + name, getattr(desired, name))
    shown = [f"{n} {getattr(current, n)!r} -> {getattr(desired, n)!r}" for n in changed]
    return _step("stack options", shown, "as answered")
