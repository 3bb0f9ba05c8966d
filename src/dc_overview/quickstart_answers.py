"""The answers ``quickstart`` works from, as one frozen value.

Whether they come from the interview, an answers file (``answers.yaml``,
see ``quickstart_answers_file``) or Python code, they end up as a
``QuickstartAnswers``: every field converted and checked on construction,
then ``check_answers`` looks at the fields together. Nothing is applied
until all of it passed.

The shape of the answers file is these classes: a section is a nested
class, a key is a field. Each field's metadata says what kind of value it
takes (``kind``), what it is for (``doc``) and whether it is a ``secret``
(never stored with the previous answers, never in a repr).
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import attrs

from . import errors
from .credentials import check_secret_value
from .domain import HOST_ROLES, check_address, check_name, check_port, check_user
from .identity import check_password, check_username
from .stack import STACK_OPTION_NAMES, change_option, StackOptions

ROLES = HOST_ROLES
TLS_CHOICES = ("self-signed", "letsencrypt")
IPMI_ROUTE_CHOICES = ("auto", "on", "off")
ANSWERS_FILE = "quickstart.yaml"  # the previous answers, in the data dir (no secrets)
KEY_NAME = "fleet"  # the SSH key quickstart adds or generates, unless named otherwise

# Stack options an answers file may set under ``stack.options``: those no other answer covers.
COVERED_STACK_OPTIONS = frozenset({
    "grafana", "watchtower", "vastai_exporter", "runpod_exporter", "domain", "tls", "https_port",
    "http_port", "ipmi_monitor", "app_image", "prometheus_image", "grafana_image", "proxy_image",
    "watchtower_image", "vastai_exporter_image", "runpod_exporter_image",
})
ADVANCED_STACK_OPTIONS = tuple(n for n in STACK_OPTION_NAMES if n not in COVERED_STACK_OPTIONS)


# -- converters: each takes a value as given (text or YAML's own types) and returns it checked --


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "y", "true", "on"):
        return True
    if text in ("no", "n", "false", "off"):
        return False
    raise errors.InvalidInput("value", f"{value!r} is not yes or no")


def _optional(check):  # type: ignore[no-untyped-def]
    def convert(value: Any) -> Any:
        return None if value is None or value == "" else check(value)

    return convert


def _choice(*allowed: str):  # type: ignore[no-untyped-def]
    def convert(value: Any) -> str:
        if value not in allowed:
            raise errors.InvalidInput("value", f"{value!r} is not one of {', '.join(allowed)}")
        return str(value)

    return convert


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise errors.InvalidInput("value", "must be one line of text")
    return value.strip()


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise errors.InvalidInput("value", f"{value!r} is not a whole number")
    number = int(value)
    if not 1 <= number <= 64:
        raise errors.InvalidInput("value", f"{number} is out of range", "1-64 simulated GPUs")
    return number


def _stack_options(value: Any) -> Mapping[str, Any]:
    """Advanced stack options, each checked as ``dc-overview stack set`` would."""
    if not isinstance(value, Mapping):
        raise errors.InvalidInput("value", "must be a mapping of stack options")
    checked: dict[str, Any] = {}
    for name, item in value.items():
        if name not in ADVANCED_STACK_OPTIONS:
            raise errors.InvalidInput(str(name), "is not a stack option quickstart takes here",
                                      "options: " + ", ".join(ADVANCED_STACK_OPTIONS))
        checked[name] = getattr(change_option(StackOptions(), name, item), name)
    return checked


# -- fields ---------------------------------------------------------------------------------

_CONVERTERS = {
    "bool": boolean, "port": check_port, "text": _text, "path": _text, "count": _count,
    "secret": check_secret_value, "password": check_password, "name": check_name,
    "address": check_address, "user": check_user, "username": check_username,
}
REQUIRED = attrs.NOTHING


def _field(default: Any, kind: str, doc: str, *, choices: tuple[str, ...] | None = None,
           convert: Any = None) -> Any:
    """A scalar answer. ``kind`` picks the check; secrets and passwords stay out of reprs."""
    check = convert or (_choice(*choices) if choices else _CONVERTERS[kind])
    if default is None:
        check = _optional(check)
    secret = kind in ("secret", "password")
    metadata = {"kind": "choice" if choices else kind, "doc": doc, "secret": secret, "choices": choices}
    return attrs.field(default=default, converter=check, metadata=metadata, repr=not secret)


def _section(cls: type, doc: str, optional: bool = False) -> Any:
    metadata = {"kind": "section", "cls": cls, "doc": doc, "secret": False}
    if optional:
        return attrs.field(default=None, metadata=metadata)
    return attrs.field(factory=cls, metadata=metadata)


# -- the sections ---------------------------------------------------------------------------


@attrs.frozen
class WorkerAnswer:
    address: str = _field(REQUIRED, "address", "the worker's OS address (IP or host name); required")
    name: str | None = _field(None, "name", "its name in the fleet (default: the address)")
    user: str | None = _field(None, "user", "SSH user (default: the fleet's default_ssh_user, root)")
    port: int = _field(22, "port", "SSH port")
    key: str | None = _field(None, "name", "name of the fleet's SSH key to log in with (default: ssh_key.name)")


@attrs.frozen
class SshKeyAnswer:
    name: str = _field(KEY_NAME, "name", "the key's name in the fleet; it becomes the default key")
    path: str | None = _field(None, "path", "a private key file to add (relative to the answers file)")
    generate: bool = _field(False, "bool", "make a new ed25519 key (put its public key on the workers)")


@attrs.frozen
class DockerAnswer:
    install: bool = _field(False, "bool", "install Docker (apt-get install docker.io) when it is absent")


@attrs.frozen
class IpmiMonitorAnswer:
    import_servers: bool = _field(True, "bool", "import ipmi-monitor's servers and SSH keys when it is found")
    path: str | None = _field(None, "path", "its database (ipmi_events.db), when not in a standard place")
    route: str = _field("auto", "choice", "serve ipmi-monitor under /ipmi/ in the proxy: auto (when it runs "
                        "here), on, off", choices=IPMI_ROUTE_CHOICES)


@attrs.frozen
class AdminAnswer:
    name: str = _field("admin", "username", "the web UI's first admin")
    password: str | None = _field(None, "password", "its password (secret; generated when not given)")


@attrs.frozen
class GrafanaAnswer:
    enabled: bool = _field(True, "bool", "run Grafana")
    admin_password: str | None = _field(None, "secret", "Grafana's admin password (secret; generated when not given)")


@attrs.frozen
class ProxyAnswer:
    https: bool = _field(True, "bool", "serve over HTTPS (no: plain HTTP only, e.g. behind your own TLS proxy)")
    domain: str | None = _field(None, "address", "the domain the stack is reached at (needed for Let's Encrypt)")
    tls: str = _field("self-signed", "choice", "self-signed or letsencrypt", choices=TLS_CHOICES)
    https_port: int = _field(443, "port", "external HTTPS port")
    http_port: int = _field(80, "port", "HTTP port (redirects to HTTPS when https is on)")


@attrs.frozen
class ProviderAnswer:
    enabled: bool | None = _field(None, "bool", "run the exporter (default: when an API key is given or stored)")
    api_key: str | None = _field(None, "secret", "the API key (secret; stored 0600, never shown)")


@attrs.frozen
class ExportersAnswer:
    install: bool = _field(True, "bool", "install the exporters on the workers (no: only check them)")
    node_exporter_binary: str | None = _field(None, "path", "a node_exporter binary to push instead of "
                                              "downloading the pinned release (offline masters)")
    gpu_exporter_artifact: str | None = _field(None, "path", "a GPU exporter build to push instead of "
                                               "this package's own")
    gpu_exporter: bool = _field(True, "bool", "install the GPU exporter where GPUs are found")
    gpu_simulate: int | None = _field(None, "count", "install the GPU exporter everywhere, serving this "
                                      "many simulated GPUs (labs without GPUs)")


@attrs.frozen
class ImagesAnswer:
    app: str | None = _field(None, "text", "the dc-overview web app image")
    prometheus: str | None = _field(None, "text", "the Prometheus image")
    grafana: str | None = _field(None, "text", "the Grafana image")
    proxy: str | None = _field(None, "text", "the reverse proxy (nginx) image")
    watchtower: str | None = _field(None, "text", "the Watchtower image")
    vastai_exporter: str | None = _field(None, "text", "the Vast.ai exporter image")
    runpod_exporter: str | None = _field(None, "text", "the RunPod exporter image")


@attrs.frozen
class StackAnswer:
    start: bool = _field(True, "bool", "start (or update) the stack's containers")
    images: ImagesAnswer = _section(ImagesAnswer, "image overrides (e.g. locally built images)")
    options: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_stack_options,
        metadata={"kind": "options", "secret": False,
                  "doc": "other stack options by name: " + ", ".join(ADVANCED_STACK_OPTIONS)})


@attrs.frozen
class HostAnswer:
    name: str | None = _field(None, "name", "this host's name in the fleet (role both; default: its hostname)")
    address: str | None = _field(None, "address", "the address Prometheus scrapes it at (default: its first "
                                 "non-loopback address)")


def _workers(value: Any) -> tuple[WorkerAnswer, ...]:
    items = tuple(value or ())
    if not all(isinstance(w, WorkerAnswer) for w in items):
        raise errors.InvalidInput("workers", "each worker must be a WorkerAnswer")
    return items


@attrs.frozen
class QuickstartAnswers:
    role: str = _field("master", "choice", "worker (exporters here), master (the stack and the workers) or "
                       "both", choices=ROLES)
    dc_port: int = _field(5001, "port", "the web app's port inside the stack")
    docker: DockerAnswer = _section(DockerAnswer, "Docker on this host")
    ipmi_monitor: IpmiMonitorAnswer = _section(IpmiMonitorAnswer, "ipmi-monitor, the sister product")
    ssh_key: SshKeyAnswer | None = _section(SshKeyAnswer, "the SSH key for the workers (omit: keep the fleet's)",
                                            optional=True)
    admin: AdminAnswer = _section(AdminAnswer, "the web UI's first admin account")
    grafana: GrafanaAnswer = _section(GrafanaAnswer, "Grafana")
    proxy: ProxyAnswer = _section(ProxyAnswer, "how the stack is served")
    watchtower: bool = _field(False, "bool", "let Watchtower update the stack's containers daily")
    vastai: ProviderAnswer = _section(ProviderAnswer, "the Vast.ai exporter (port 8622)")
    runpod: ProviderAnswer = _section(ProviderAnswer, "the RunPod exporter (port 8623)")
    workers: tuple[WorkerAnswer, ...] = attrs.field(
        factory=tuple, converter=_workers,
        metadata={"kind": "list", "cls": WorkerAnswer, "secret": False, "doc": "the workers to add"})
    workers_file: str | None = _field(None, "path", "a CSV file of workers (name,ip,user,port,key lines)")
    exporters: ExportersAnswer = _section(ExportersAnswer, "the exporters (node_exporter :9100, GPU :9835)")
    stack: StackAnswer = _section(StackAnswer, "the monitoring stack (Docker)")
    host: HostAnswer = _section(HostAnswer, "this host as a fleet server (role both)")

    @property
    def master(self) -> bool:
        return self.role in ("master", "both")

    @property
    def worker(self) -> bool:
        return self.role in ("worker", "both")


# -- checks across fields -------------------------------------------------------------------


def check_answers(answers: QuickstartAnswers) -> list[tuple[str, str]]:
    """Problems no single field shows, as ``(field path, message)``."""
    problems: list[tuple[str, str]] = []
    proxy = answers.proxy
    if proxy.https and proxy.tls == "letsencrypt" and not proxy.domain:
        problems.append(("proxy.tls", "letsencrypt needs proxy.domain, the name the certificate is for"))
    if proxy.https and proxy.https_port == proxy.http_port:
        problems.append(("proxy.https_port", f"{proxy.https_port} is also proxy.http_port"))
    if answers.ssh_key is not None and answers.ssh_key.path and answers.ssh_key.generate:
        problems.append(("ssh_key.generate", "give ssh_key.path or generate: yes, not both"))
    if answers.role == "worker" and (answers.workers or answers.workers_file):
        problems.append(("workers", "only a master adds workers, and role is worker"))
    seen: dict[tuple[str, str], int] = {}
    for index, worker in enumerate(answers.workers):
        for field, value in (("name", worker_name(worker)), ("address", worker.address)):
            first = seen.setdefault((field, value), index)
            if first != index:
                problems.append((f"workers[{index}].{field}", f"{value!r} is also workers[{first}]"))
    return problems


def worker_name(worker: WorkerAnswer) -> str:
    return worker.name or worker.address.replace(":", "-")


def provider_enabled(answer: ProviderAnswer, key_stored: bool) -> bool:
    return answer.enabled if answer.enabled is not None else bool(answer.api_key) or key_stored


def schema(cls: type = QuickstartAnswers, prefix: str = "") -> Iterator[tuple[str, str, Any, str]]:
    """Every key of the answers file: (path, kind, default, doc), sections first-level included."""
    for field in attrs.fields(cls):
        path = prefix + field.name
        kind = field.metadata.get("kind", "")
        if kind in ("section", "list"):
            yield path, kind, None, field.metadata["doc"]
            inner = "[]." if kind == "list" else "."
            yield from schema(field.metadata["cls"], path + inner)
        else:
            default = None if field.default is attrs.NOTHING else field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()
            yield path, kind, default, field.metadata.get("doc", "")
