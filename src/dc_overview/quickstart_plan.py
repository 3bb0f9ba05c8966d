"""Quickstart's answers checked against this host before anything changes.

``plan_quickstart`` reads (files the answers name, the inventory, the
stored secrets, the container engine) and writes nothing. Every problem
with the answers is collected into one ``AnswersInvalid``; a master whose
Docker is missing gets ``DockerMissing`` unless the answers say to install
it. Only a plan that passed is applied.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from . import errors
from .domain import fingerprint
from .ports import Deps, KeyMaterial
from .quickstart_answers import QuickstartAnswers, WorkerAnswer, check_answers, worker_name
from .quickstart_detect import docker_state, host_of
from .quickstart_steps import IMAGE_OPTIONS, desired_stack_options, local_server_name
from .server_lines import parse_server_lines
from .stack import GRAFANA_PASSWORD, RUNPOD_KEY, VASTAI_KEY, StackOptions, build_stack
from .stack_options import secret_names

# Which answer sets each stack option, to name it in an error.
_OPTION_ANSWERS = {
    "grafana": "grafana.enabled", "watchtower": "watchtower", "vastai_exporter": "vastai.enabled",
    "runpod_exporter": "runpod.enabled", "domain": "proxy.domain", "tls": "proxy.tls",
    "https_port": "proxy.https_port", "http_port": "proxy.http_port", "ipmi_monitor": "ipmi_monitor.route",
    "app_port": "dc_port", **{option: f"stack.images.{short}" for short, option in IMAGE_OPTIONS.items()},
}


@attrs.frozen
class QuickstartPlan:
    answers: QuickstartAnswers
    workers: tuple[WorkerAnswer, ...] = ()  # the answers' and the workers file's
    key_material: KeyMaterial | None = attrs.field(default=None, repr=False)  # from ssh_key.path
    stack_options: StackOptions | None = None  # a master's stack after this quickstart
    install_docker: bool = False
    docker_version: str | None = None
    local_server: tuple[str, str] | None = None  # (name, address): this host in the fleet (role both)
    ipmi_path: str | None = None  # the ipmi-monitor database to import from
    notes: tuple[str, ...] = ()  # what will not be done, and why


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def add(self, field: str, message: str, hint: str | None = None, *, where: str = "answers") -> None:
        self.items.append((where, field, message + (f" ({hint})" if hint else "")))

    def from_error(self, field: str, exc: errors.DcOverviewError) -> None:
        self.add(field, exc.message.split(": ", 1)[-1] + (f" ({exc.hint})" if exc.hint else ""))


async def plan_quickstart(deps: Deps, answers: QuickstartAnswers) -> QuickstartPlan:
    problems = _Problems()
    for field, message in check_answers(answers):
        problems.add(field, message)
    notes: list[str] = []
    workers = _workers(answers, problems)
    material = _key_material(deps, answers, problems)
    _check_workers(deps, answers, workers, problems)
    for field in ("exporters.node_exporter_binary", "exporters.gpu_exporter_artifact"):
        section, name = field.split(".")
        value = getattr(getattr(answers, section), name)
        if value and not Path(value).is_file():
            problems.add(field, f"{value} is not a file")
    ipmi_path = _ipmi_path(deps, answers, problems, notes) if answers.master else None
    options = await _stack_options(deps, answers, problems) if answers.master else None
    local_server = _local_server(deps, answers, problems) if answers.role == "both" else None
    if answers.worker and deps.local is None:
        problems.add("role", "there is no local runner to install the exporters on this host with")
    if problems.items:
        raise errors.AnswersInvalid("answers", problems.items)

    install_docker, version = False, None
    if answers.master and answers.stack.start:
        version, problem = await docker_state(deps)
        if version is None and not answers.docker.install:
            installed = host_of(deps).docker_installed() if deps.host is not None else True
            raise errors.DockerMissing("it is not installed" if not installed else f"it does not answer ({problem})")
        install_docker = version is None
    return QuickstartPlan(answers=answers, workers=workers, key_material=material, stack_options=options,
                          install_docker=install_docker, docker_version=version, local_server=local_server,
                          ipmi_path=ipmi_path, notes=tuple(notes))


def _workers(answers: QuickstartAnswers, problems: _Problems) -> tuple[WorkerAnswer, ...]:
    workers = list(answers.workers)
    if answers.workers_file:
        try:
            text = Path(answers.workers_file).read_text()
            parsed = parse_server_lines(text, source=answers.workers_file)
        except OSError as exc:
            problems.add("workers_file", f"cannot read {answers.workers_file}: {exc.strerror}")
            return tuple(workers)
        except errors.ImportProblem as exc:
            for where, field, message in exc.problems:
                problems.add(field, message, where=where)
            return tuple(workers)
        for item in parsed:
            server = item.server
            workers.append(WorkerAnswer(address=server.address, name=server.name, user=server.ssh_user,
                                        port=server.ssh_port, key=server.ssh_key))
    by_address: dict[str, WorkerAnswer] = {}
    by_name: dict[str, str] = {}
    for worker in workers:
        name = worker_name(worker)
        if by_name.get(name, worker.address) != worker.address:
            problems.add("workers_file", f"the name {name!r} is given to {by_name[name]} and to {worker.address}")
            continue
        by_name[name] = worker.address
        by_address.setdefault(worker.address, worker)  # the same worker in both: the first entry counts
    return tuple(by_address.values())


def _key_material(deps: Deps, answers: QuickstartAnswers, problems: _Problems) -> KeyMaterial | None:
    answer = answers.ssh_key
    if answer is None or not answers.master:
        return None
    existing = deps.storage.get_key(answer.name)
    if answer.path:
        try:
            material = deps.keys.load(Path(answer.path).read_text())
        except (OSError, UnicodeDecodeError) as exc:
            problems.add("ssh_key.path", f"cannot read {answer.path}: {exc}")
            return None
        except errors.InvalidInput as exc:
            problems.from_error("ssh_key.path", exc)
            return None
        if existing is not None and existing.fingerprint != fingerprint(material.public_key):
            problems.add("ssh_key.name", f"the fleet has another key named {answer.name!r} "
                         f"({existing.fingerprint})", "give this one another name")
        return material
    if not answer.generate and existing is None:
        problems.add("ssh_key.name", f"the fleet has no key named {answer.name!r}; "
                     "give ssh_key.path to add one, or generate: yes")
    return None


def _check_workers(deps: Deps, answers: QuickstartAnswers, workers: tuple[WorkerAnswer, ...],
                   problems: _Problems) -> None:
    """Each worker can be logged in to, and taking it into the fleet clashes with no other server."""
    coming = answers.ssh_key.name if answers.ssh_key else None
    default_key = deps.storage.load_settings().get("default_ssh_key")
    for index, worker in enumerate(workers):
        where = f"workers[{index}]"
        if worker.key and worker.key != coming and deps.storage.get_key(worker.key) is None:
            problems.add(f"{where}.key", f"the fleet has no SSH key named {worker.key!r}")
        if not (worker.key or coming or default_key):
            problems.add(where, f"no SSH key to log in to {worker.address} with",
                         "give ssh_key (a path, or generate: yes) or this worker's key")
        same_name = deps.storage.get_server(worker_name(worker))
        same_address = deps.storage.find_server_by_address(worker.address)
        if same_name is not None and same_address is not None and same_name.id != same_address.id:
            problems.add(f"{where}.address", f"{worker.address} is the address of the fleet's server "
                         f"{same_address.name!r}, not of {same_name.name!r}")


def _ipmi_path(deps: Deps, answers: QuickstartAnswers, problems: _Problems, notes: list[str]) -> str | None:
    answer = answers.ipmi_monitor
    if not answer.import_servers:
        return None
    if answer.path:
        try:
            deps.ipmi_monitor.read(Path(answer.path))
        except errors.DcOverviewError as exc:
            problems.from_error("ipmi_monitor.path", exc)
            return None
        return answer.path
    found = deps.ipmi_monitor.locate()
    if found is None:
        return None
    try:
        deps.ipmi_monitor.read(found)
    except errors.DcOverviewError as exc:
        notes.append(f"ipmi-monitor's database at {found} was not imported: {exc}")
        return None
    return str(found)


async def _stack_options(deps: Deps, answers: QuickstartAnswers, problems: _Problems) -> StackOptions | None:
    secrets = set(secret_names(deps)) | {GRAFANA_PASSWORD}
    secrets |= {name for name, answer in ((VASTAI_KEY, answers.vastai), (RUNPOD_KEY, answers.runpod))
                if answer.api_key}
    try:
        options = await desired_stack_options(deps, answers, frozenset(secrets))
        build_stack(options, frozenset(secrets))
    except errors.InvalidInput as exc:
        field = _OPTION_ANSWERS.get(exc.field, f"stack.options.{exc.field}")
        message = exc.message.split(": ", 1)[-1]
        if exc.field in ("vastai_exporter", "runpod_exporter"):
            message = f"{message}: give {field.split('.')[0]}.api_key"
        problems.add(field, message + (f" ({exc.hint})" if exc.hint and "api_key" not in message else ""))
        return None
    return options


def _local_server(deps: Deps, answers: QuickstartAnswers, problems: _Problems) -> tuple[str, str] | None:
    host = host_of(deps)
    name = local_server_name(answers, host.hostname())
    address = answers.host.address or next(iter(host.addresses()), None)
    if address is None:
        problems.add("host.address", "this host has no non-loopback address to be scraped at; give host.address")
        return None
    taken = deps.storage.get_server(name)
    if taken is not None and taken.address != address and deps.storage.find_server_by_address(address) is None:
        problems.add("host.name", f"the fleet's server {name!r} is at {taken.address}, not at this host's "
                     f"{address}", f"give host.name another name, or if it is this host: "
                     f"dc-overview servers update {name} --address {address}")
        return None
    return name, address
