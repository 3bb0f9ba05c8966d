"""CLI: ``quickstart``, the one-command setup of a worker, a master or both.

Interactive on a terminal (``quickstart_interview``); unattended with
``--yes`` (every default: the previous answers on a host set up before) or
``--config answers.yaml``. Step lines go to stderr as they finish; the
summary (or ``--json``) to stdout. Exit code 1 when a step or a worker failed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from dc_overview import Fleet
from dc_overview.domain import HOST_ROLES
from dc_overview.errors import AnswersInvalid

from . import output
from .cli import emit, json_option, pass_fleet
from .cli_fleet_ops import ProgressBar, results_table

if TYPE_CHECKING:  # quickstart's modules load when the command runs, not with every command
    from dc_overview import QuickstartAnswers, QuickstartReport
    from dc_overview.quickstart import QuickstartProgress
    from dc_overview.quickstart_steps import StepResult

MARKS = {"changed": "+", "unchanged": "=", "skipped": "-", "failed": "!"}


class Progress:
    """Step lines on stderr as they finish, and a progress bar per phase of the workers."""

    def __init__(self) -> None:
        self.bar: ProgressBar | None = None

    def step(self, result: StepResult) -> None:
        self._close()
        detail = result.detail.replace("\n", "\n      ")
        click.echo(f"  {MARKS.get(result.result, '?')} {result.step}: {result.result}"
                   + (f" - {detail}" if detail else ""), err=True)

    def stack(self, line: str) -> None:
        click.echo(f"      {line}", err=True)

    def phase(self, name: str, total: int) -> None:
        self._close()
        label = {"check": "Checking workers", "install": "Installing exporters"}.get(name, name)
        self.bar = ProgressBar(f"  {label}").__enter__()

    def worker(self, result: Any, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar(result, done, total)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def callbacks(self) -> QuickstartProgress:
        from dc_overview.quickstart import QuickstartProgress

        return QuickstartProgress(step=self.step, stack=self.stack, phase=self.phase, worker=self.worker)


def report_text(report: QuickstartReport) -> str:
    parts = []
    if report.workers:
        parts.append("Workers:\n" + results_table(report.workers, sum(r.duration_s for r in report.workers)))
    if report.local is not None:
        parts.append(f"Exporters on this host: {report.local.result} - {report.local.detail}")
    if report.urls:
        width = max(len(what) for what, _ in report.urls)
        parts.append("Open:\n" + "\n".join(f"  {what.ljust(width)}  {url}" for what, url in report.urls))
    if report.credentials:
        shown = any(c.value for c in report.credentials)
        head = "Credentials:" if shown else "Credentials (passwords are not printed; --show-passwords prints them):"
        lines = [f"  {c.what}: {c.where}" + (f"\n    password: {c.value}" if c.value else "") for c in report.credentials]
        parts.append(head + "\n" + "\n".join(lines))
    if report.public_key:
        parts.append("Public key of the new SSH key, for each worker's ~/.ssh/authorized_keys:\n  " + report.public_key)
    if report.notes:
        parts.append("Notes:\n" + "\n".join(f"  {n}" for n in report.notes))
    parts.append("Next:\n" + "\n".join(f"  {c}" for c in report.next_commands))
    failed = [s.step for s in report.steps if s.result == "failed"]
    if failed:
        verdict = f"Quickstart finished with problems in: {', '.join(failed)} (see above); run it again once fixed."
    elif report.changed:
        changed = sum(1 for s in report.steps if s.result == "changed")
        verdict = f"Done: {changed} step(s) changed this host."
    else:
        verdict = "Nothing changed: this host already matches the answers."
    parts.append(verdict)
    return "\n\n".join(parts)


def _unattended(fleet: Fleet, config: Path | None, env: Any) -> QuickstartAnswers:
    from dc_overview import QuickstartAnswers, load_answers

    if config is not None:
        return load_answers(config)
    if env.existing and env.existing.previous:
        return env.existing.previous
    return QuickstartAnswers(role="both" if env.gpus.count else "master")


def _interactive(fleet: Fleet, env: Any, echo: Any) -> QuickstartAnswers:
    from .quickstart_interview import Asker, interview

    if not sys.stdin.isatty():
        raise click.UsageError("quickstart asks its questions on a terminal; to run it unattended "
                               "give --yes (every default) or --config answers.yaml")
    ask = Asker()
    start = None
    while True:
        answers = interview(env, ask, echo, start)
        try:
            fleet.plan_quickstart(answers)
            return answers
        except AnswersInvalid as exc:
            echo(exc.details())
            if not ask.yes_no("Answer again (your answers are the defaults)?", True):
                raise
            start = answers


@click.command("quickstart")
@click.option("-y", "--yes", is_flag=True,
              help="Ask nothing; take every default (on a host set up before: its previous answers).")
@click.option("-c", "--config", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Ask nothing; take the answers from this YAML file (keys: docs/quickstart.md).")
@click.option("--role", type=click.Choice(HOST_ROLES), help="This machine's role, over what the answers say.")
@click.option("--check", "check_only", is_flag=True,
              help="Check the answers against this host, show what would be done, change nothing.")
@click.option("--show-passwords", is_flag=True, help="Print generated passwords in the summary.")
@json_option
@pass_fleet
def quickstart(fleet: Fleet, yes: bool, config: Path | None, role: str | None, check_only: bool,
               show_passwords: bool, as_json: bool) -> None:
    """Set this host up: a GPU worker, the master, or both.

    Detects this host (GPUs, Docker, ipmi-monitor, an earlier setup), asks
    its questions (or takes them from --config / --yes), checks every answer,
    then applies them: exporters here as systemd units (worker), the
    monitoring stack in Docker and the workers' exporters over SSH (master).
    Running it again with the same answers changes nothing.
    """
    # the interview's prompt-toolkit loads only here, not with every command
    from dc_overview.quickstart_answers_file import answers_document

    from .quickstart_interview import Declined, describe_answers, describe_environment

    echo = (lambda text: click.echo(text, err=True)) if as_json else click.echo
    env = fleet.detect_environment()
    if yes or config is not None or check_only:
        answers = _unattended(fleet, config, env)
        if role:
            answers = attrs.evolve(answers, role=role)
    else:
        try:
            answers = _interactive(fleet, env, echo)
        except (KeyboardInterrupt, EOFError):
            echo("\nQuickstart stopped: nothing was changed.")
            raise click.exceptions.Exit(1) from None
        except Declined as exc:
            echo(f"Quickstart stopped: {exc}.")
            raise click.exceptions.Exit(1) from None
        if role:
            answers = attrs.evolve(answers, role=role)
    if check_only:
        plan = fleet.plan_quickstart(answers)
        text = (describe_environment(env) + "\n\nThe answers are fit for this host; quickstart would apply:\n"
                + describe_answers(answers)
                + ("\n  Docker: would be installed (apt-get install docker.io)" if plan.install_docker else "")
                + "".join(f"\n  note: {n}" for n in plan.notes) + "\n\nNothing was changed.")
        emit({"environment": env, "answers": answers_document(answers), "ok": True},
             as_json, text)
        return
    if yes or config is not None:
        echo(describe_environment(env))
    echo(f"\nSetting up this host as {answers.role}:")
    progress = Progress()
    report = fleet.quickstart(answers, progress=progress.callbacks(), show_passwords=show_passwords)
    progress._close()
    emit(report, as_json, "\n" + report_text(report))
    if report.failed:
        click.get_current_context().exit(1)


COMMANDS = (quickstart,)
