"""The quickstart interview: prompt-toolkit prompts that collect every answer
into one ``QuickstartAnswers`` before anything is applied. Ctrl-C (or
Ctrl-D) at any prompt stops it with nothing changed.

Each prompt shows its default (Enter keeps it) and checks the input as it is
typed. On a host set up before, the previous answers are the defaults, and
the first question is whether to keep them all.

Prompts read and write through prompt-toolkit's current app session, so
tests run the interview with a pipe input (``create_pipe_input``) and
``DummyOutput``; ``echo`` prints everything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import attrs
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import WordCompleter
from prompt_toolkit.validation import ValidationError, Validator

from dc_overview.domain import check_address, check_port
from dc_overview.errors import DcOverviewError, DockerMissing, ImportProblem
from dc_overview.identity import check_password, check_username
from dc_overview.quickstart_answers import (
    ROLES, AdminAnswer, IpmiMonitorAnswer, ProviderAnswer, ProxyAnswer, QuickstartAnswers,
    SshKeyAnswer, WorkerAnswer, worker_name,
)
from dc_overview.quickstart_detect import Environment
from dc_overview.server_lines import parse_server_lines

Check = Callable[[str], object]


class Declined(Exception):
    """The person chose not to go on; nothing was changed."""


class _CheckValidator(Validator):
    def __init__(self, check: Check | None, optional: bool) -> None:
        self.check = check
        self.optional = optional

    def validate(self, document) -> None:  # type: ignore[no-untyped-def]
        text = document.text.strip()
        end = len(document.text)  # the cursor stays where the typing was
        if not text:
            if not self.optional:
                raise ValidationError(end, "an answer is needed")
            return
        if self.check is None:
            return
        try:
            self.check(text)
        except DcOverviewError as exc:
            message = exc.message.split(": ", 1)[-1]
            raise ValidationError(end, message + (f" ({exc.hint})" if exc.hint else "")) from None
        except ValueError as exc:
            raise ValidationError(end, str(exc)) from None


class Asker:
    """One kind of prompt per kind of answer."""

    def __init__(self, session: PromptSession | None = None) -> None:
        self.session: PromptSession = session or PromptSession()

    def text(self, message: str, default: str | None = None, check: Check | None = None,
             optional: bool = False) -> str | None:
        shown = f"{message} [{default}]: " if default else f"{message}: "
        answer = self.session.prompt(shown, default="", is_password=False, completer=None,
                                     validator=_CheckValidator(check, optional or default is not None),
                                     validate_while_typing=True).strip()
        return answer or default

    def yes_no(self, message: str, default: bool) -> bool:
        def check(text: str) -> None:
            if text.lower() not in ("y", "yes", "n", "no"):
                raise ValueError("answer y or n")

        answer = self.session.prompt(f"{message} [{'Y/n' if default else 'y/N'}]: ", is_password=False,
                                     completer=WordCompleter(["yes", "no"]), default="",
                                     validator=_CheckValidator(check, True), validate_while_typing=True)
        return default if not answer.strip() else answer.strip().lower().startswith("y")

    def choice(self, message: str, choices: Sequence[str], default: str) -> str:
        def check(text: str) -> None:
            if text not in choices:
                raise ValueError("one of: " + ", ".join(choices))

        answer = self.session.prompt(f"{message} ({'/'.join(choices)}) [{default}]: ", is_password=False,
                                     completer=WordCompleter(list(choices)), default="",
                                     validator=_CheckValidator(check, True), validate_while_typing=True)
        return answer.strip() or default

    def secret(self, message: str, check: Check | None = None) -> str | None:
        """A password or key, typed hidden; Enter alone gives None."""
        answer = self.session.prompt(f"{message}: ", is_password=True, completer=None, default="",
                                     validator=_CheckValidator(check, True), validate_while_typing=False)
        return answer.strip() or None


def _file(text: str) -> None:
    if not Path(text).expanduser().is_file():
        raise ValueError(f"{text} is not a file")


def _servers_file(text: str) -> None:
    _file(text)
    parse_server_lines(Path(text).expanduser().read_text(), source=text)


def describe_environment(env: Environment) -> str:
    gpus = "unknown" if env.gpus.count is None else f"{env.gpus.count} (by {env.gpus.source})"
    lines = [f"This host: {env.hostname}  addresses: {', '.join(env.addresses) or 'none found'}  GPUs: {gpus}"]
    if env.docker_running:
        lines.append(f"Docker: {env.docker_version}")
    else:
        lines.append(f"Docker: {'installed but not usable' if env.docker_installed else 'not installed'}"
                     + (f" ({env.docker_problem})" if env.docker_problem else ""))
    if env.ipmi_monitor:
        found = env.ipmi_monitor
        lines.append(f"ipmi-monitor: {found.path}"
                     + (f" (unreadable: {found.problem})" if found.problem
                        else f" ({found.servers} server(s), {found.keys} SSH key(s))"))
    if env.existing:
        old = env.existing
        lines.append(f"Earlier dc-overview setup in {env.data_dir}: {old.servers} server(s), {old.keys} key(s), "
                     f"{old.users} user(s)")
        if old.previous_problem:
            lines.append(f"  (its previous answers cannot be used: {old.previous_problem})")
    return "\n".join(lines)


def describe_answers(answers: QuickstartAnswers) -> str:
    """The answers without secrets, for a last look before applying."""
    lines = [f"  role: {answers.role}"]
    if answers.master:
        proxy = answers.proxy
        served = (f"HTTPS on {proxy.https_port} ({proxy.tls}{', ' + proxy.domain if proxy.domain else ''})"
                  if proxy.https else f"HTTP on {proxy.http_port}")
        lines += [f"  web app port: {answers.dc_port}; served by the proxy over {served}",
                  f"  Grafana: {'yes' if answers.grafana.enabled else 'no'}; Watchtower: "
                  f"{'yes' if answers.watchtower else 'no'}; Vast.ai exporter: "
                  f"{'key given' if answers.vastai.api_key else 'no new key'}; RunPod exporter: "
                  f"{'key given' if answers.runpod.api_key else 'no new key'}",
                  f"  import from ipmi-monitor: {'yes' if answers.ipmi_monitor.import_servers else 'no'}"]
        key = answers.ssh_key
        if key:
            how = f"from {key.path}" if key.path else "generated" if key.generate else "already in the fleet"
            lines.append(f"  SSH key: {key.name} ({how})")
        shown = ", ".join(f"{worker_name(w)} ({w.address})" for w in answers.workers[:8])
        more = f" and {len(answers.workers) - 8} more" if len(answers.workers) > 8 else ""
        lines.append(f"  workers: {shown + more if answers.workers else 'none listed'}"
                     + (f"; from {answers.workers_file}" if answers.workers_file else ""))
    if answers.worker:
        lines.append("  exporters on this host: node_exporter :9100, GPU exporter :9835 (systemd units)")
    return "\n".join(lines)


def interview(env: Environment, ask: Asker, echo: Callable[[str], None],
              start: QuickstartAnswers | None = None) -> QuickstartAnswers:
    """Every answer, from the person; raises Declined, KeyboardInterrupt or EOFError to stop."""
    echo(describe_environment(env))
    previous = start or (env.existing.previous if env.existing else None)
    if previous is not None and start is None:
        echo("\nAn earlier quickstart ran here:\n" + describe_answers(previous))
        if ask.yes_no("Keep every earlier answer (secrets stay as stored)?", True):
            return _confirm(previous, ask, echo)
    base = previous or QuickstartAnswers(role="both" if env.gpus.count else "master")
    role = ask.choice("Role of this machine: worker (has GPUs), master (monitors the others), or both", ROLES,
                      base.role)
    answers = attrs.evolve(base, role=role)
    if answers.master:
        answers = _master(env, answers, ask, echo)
    if answers.worker:
        echo("node_exporter (:9100) and the GPU exporter (:9835) will run on this host as systemd units.")
    return _confirm(answers, ask, echo)


def _confirm(answers: QuickstartAnswers, ask: Asker, echo: Callable[[str], None]) -> QuickstartAnswers:
    echo("\nQuickstart will apply:\n" + describe_answers(answers))
    if not ask.yes_no("Apply these answers now?", True):
        raise Declined("nothing was changed")
    return answers


def _master(env: Environment, answers: QuickstartAnswers, ask: Asker, echo: Callable[[str], None]) -> QuickstartAnswers:
    docker = answers.docker
    if not env.docker_running:
        if env.docker_installed:
            raise DockerMissing(f"it does not answer ({env.docker_problem})")
        echo("The monitoring stack (Prometheus, Grafana, the web app and an HTTPS proxy) runs in Docker, "
             "which is not installed. Quickstart can install it: apt-get install docker.io, then start it.")
        if not ask.yes_no("Install Docker now?", False):
            raise Declined("Docker is needed for the master; install it and run quickstart again. Nothing was changed")
        docker = attrs.evolve(docker, install=True)
    ipmi = answers.ipmi_monitor
    if env.ipmi_monitor and not env.ipmi_monitor.problem:
        found = env.ipmi_monitor
        ipmi = IpmiMonitorAnswer(
            import_servers=ask.yes_no(f"Import ipmi-monitor's {found.servers} server(s) and {found.keys} SSH "
                                      "key(s) (servers by OS address)?", ipmi.import_servers),
            route="auto" if ask.yes_no("Serve ipmi-monitor under /ipmi/ in the proxy?", ipmi.route != "off")
            else "off")
    port = int(ask.text("Port of the dc-overview web app", str(answers.dc_port), check_port))  # type: ignore[arg-type]
    grafana = attrs.evolve(answers.grafana, admin_password=ask.secret(
        "Grafana admin password (Enter: keep the stored one, or generate one)", check_password))
    admin = answers.admin
    if not env.existing or env.existing.users == 0:
        name = ask.text("Admin user for the web UI", admin.name, check_username)
        admin = AdminAnswer(name=name, password=_new_password(ask, echo, "Its password (Enter: generate one)"))  # type: ignore[arg-type]
    proxy = _proxy(answers.proxy, ask)
    watchtower = ask.yes_no("Update the stack's containers automatically (Watchtower)?", answers.watchtower)
    workers, workers_file = _workers(answers, ask, echo)
    ssh_key = _ssh_key(env, answers, ask) if workers or workers_file else answers.ssh_key
    vastai = ProviderAnswer(api_key=ask.secret("Vast.ai API key, for the earnings exporter (Enter: skip or keep)"))
    runpod = ProviderAnswer(api_key=ask.secret("RunPod API key (Enter: skip or keep)"))
    return attrs.evolve(answers, docker=docker, ipmi_monitor=ipmi, dc_port=port, grafana=grafana, admin=admin,
                        proxy=proxy, watchtower=watchtower, workers=workers, workers_file=workers_file,
                        ssh_key=ssh_key, vastai=_keep_enabled(answers.vastai, vastai),
                        runpod=_keep_enabled(answers.runpod, runpod))


def _keep_enabled(before: ProviderAnswer, now: ProviderAnswer) -> ProviderAnswer:
    return now if now.api_key else attrs.evolve(now, enabled=before.enabled)


def _new_password(ask: Asker, echo: Callable[[str], None], message: str) -> str | None:
    while True:
        first = ask.secret(message, check_password)
        if first is None or ask.secret("The same again") == first:
            return first
        echo("The two did not match; once more.")


def _proxy(before: ProxyAnswer, ask: Asker) -> ProxyAnswer:
    if not ask.yes_no("Serve the stack over HTTPS through the proxy (no: plain HTTP)?", before.https):
        port = int(ask.text("HTTP port", str(before.http_port), check_port))  # type: ignore[arg-type]
        return attrs.evolve(before, https=False, http_port=port)
    domain = ask.text("Domain name it is reached at (Enter: none, by IP address)",
                      before.domain or "", check_address, optional=True) or None
    tls = ask.choice("Certificate", ("self-signed", "letsencrypt"), before.tls) if domain else "self-signed"
    port = int(ask.text("External HTTPS port", str(before.https_port), check_port))  # type: ignore[arg-type]
    return attrs.evolve(before, https=True, domain=domain, tls=tls, https_port=port)


def _workers(answers: QuickstartAnswers, ask: Asker,
             echo: Callable[[str], None]) -> tuple[tuple[WorkerAnswer, ...], str | None]:
    workers = list(answers.workers)
    if workers:
        echo(f"{len(workers)} worker(s) from the earlier answers are kept.")
    how = ask.choice("Add workers: from a CSV file, paste lines, type addresses, or none now",
                     ("file", "paste", "type", "none"), "none")
    if how == "file":
        path = ask.text("CSV file (name,ip[,user[,port[,key]]] lines)", None, _servers_file)
        return tuple(workers), str(Path(path).expanduser().resolve()) if path else None
    if how == "none":
        return tuple(workers), answers.workers_file
    echo("One worker a line: ip, or name,ip[,user[,port]]. An empty line ends the list.")
    lines: list[str] = []
    while True:
        line = ask.text("  worker", None, _worker_line, optional=True)
        if not line:
            break
        lines += [part for part in line.splitlines() if part.strip()]
    if lines:
        for item in parse_server_lines("\n".join(lines), source="input"):
            server = item.server
            workers.append(WorkerAnswer(server.address, server.name, server.ssh_user, server.ssh_port))
    return tuple(workers), answers.workers_file


def _worker_line(text: str) -> None:
    try:
        parse_server_lines(text, source="line")
    except ImportProblem as exc:
        raise ValueError(exc.problems[0][2]) from None


def _ssh_key(env: Environment, answers: QuickstartAnswers, ask: Asker) -> SshKeyAnswer:
    if answers.ssh_key is not None and not answers.ssh_key.path and env.existing and env.existing.keys:
        if ask.yes_no(f"Log in to the workers with the fleet's key {answers.ssh_key.name!r}?", True):
            return attrs.evolve(answers.ssh_key, generate=False)
    usual = Path("~/.ssh/id_ed25519").expanduser()
    path = ask.text("Private SSH key file for the workers (Enter: generate a new key)",
                    str(usual) if usual.is_file() else None, _file, optional=True)
    name = answers.ssh_key.name if answers.ssh_key else "fleet"
    if path:
        return SshKeyAnswer(name=name, path=str(Path(path).expanduser().resolve()))
    return SshKeyAnswer(name=name, generate=True)
