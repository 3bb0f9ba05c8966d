"""Quickstart's first step: what is on this host already. Reads only.

Hostname, addresses and GPUs come from the HostProbe port; whether Docker
runs from the ContainerRuntime port; ipmi-monitor from its database; an
earlier dc-overview install from the data dir (inventory, users, stack
options, and the answers the last quickstart ran with).
"""

from __future__ import annotations

from pathlib import Path

import attrs

from . import errors
from .ipmi_import import detect_ipmi_monitor
from .ports import Deps, GpuInfo, HostProbe
from .quickstart_answers import ANSWERS_FILE, QuickstartAnswers
from .quickstart_answers_file import parse_answers


@attrs.frozen
class IpmiMonitorFound:
    path: str
    servers: int = 0
    keys: int = 0
    problem: str | None = None  # the file is there but cannot be read as ipmi-monitor's


@attrs.frozen
class ExistingInstall:
    """An earlier dc-overview on this data dir."""

    servers: int = 0
    keys: int = 0
    users: int = 0
    stack_configured: bool = False
    previous: QuickstartAnswers | None = None  # the last quickstart's answers (no secrets)
    previous_problem: str | None = None  # the answers file is there but unusable


@attrs.frozen
class Environment:
    data_dir: str
    hostname: str
    addresses: tuple[str, ...]
    gpus: GpuInfo
    docker_installed: bool
    docker_running: bool
    docker_version: str | None = None
    docker_problem: str | None = None  # why Docker cannot be used, with what to do
    ipmi_monitor: IpmiMonitorFound | None = None
    existing: ExistingInstall | None = None


def host_of(deps: Deps) -> HostProbe:
    if deps.host is None:
        raise errors.OperationUnavailable("detecting this host", "open the fleet with dc_overview.open()")
    return deps.host


async def detect_environment(deps: Deps) -> Environment:
    host = host_of(deps)
    version, problem = await docker_state(deps)
    return Environment(
        data_dir=str(deps.storage.data_dir),
        hostname=host.hostname(),
        addresses=tuple(host.addresses()),
        gpus=host.gpus(),
        docker_installed=host.docker_installed(),
        docker_running=version is not None,
        docker_version=version,
        docker_problem=problem,
        ipmi_monitor=await _ipmi_monitor(deps),
        existing=existing_install(deps),
    )


async def docker_state(deps: Deps) -> tuple[str | None, str | None]:
    """(the engine's version, None) when it answers, else (None, why not)."""
    if deps.runtime is None:
        return None, "no container runtime is configured for this fleet"
    try:
        if await deps.runtime.available():
            return await deps.runtime.version(), None
        await deps.runtime.version()  # not available: its error says why
        return None, "it does not answer"
    except errors.DcOverviewError as exc:
        return None, str(exc)


async def _ipmi_monitor(deps: Deps) -> IpmiMonitorFound | None:
    path = await detect_ipmi_monitor(deps)
    if path is None:
        return None
    try:
        data = deps.ipmi_monitor.read(Path(path))
    except errors.DcOverviewError as exc:
        return IpmiMonitorFound(str(path), problem=str(exc))
    servers = sum(1 for s in data.servers if s.status != "deprecated")
    return IpmiMonitorFound(str(path), servers=servers, keys=len(data.keys))


def previous_answers(deps: Deps) -> tuple[QuickstartAnswers | None, str | None]:
    """The answers the last quickstart on this data dir ran with, if any."""
    path = deps.storage.data_dir / ANSWERS_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read {path}: {exc}"
    try:
        return parse_answers(text, source=str(path), check_paths=False), None
    except errors.AnswersInvalid as exc:
        return None, str(exc)


def existing_install(deps: Deps) -> ExistingInstall | None:
    previous, problem = previous_answers(deps)
    settings = deps.storage.load_settings()
    users = len(deps.accounts.list_users()) if deps.accounts is not None else 0
    found = ExistingInstall(
        servers=len(deps.storage.list_servers()),
        keys=len(deps.storage.list_keys()),
        users=users,
        stack_configured=any(name.startswith("stack.") for name in settings),
        previous=previous,
        previous_problem=problem,
    )
    if found == ExistingInstall():
        return None
    return found
