"""The Python API's methods for this host's monitoring stack and for
quickstart, a part of ``AsyncFleet`` (``api.py``) kept in a file of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from . import errors
from .lazy import lazy_import
from .ports import Deps, ServiceRoute

if TYPE_CHECKING:
    from . import stack
    from .quickstart_answers import QuickstartAnswers

# loaded at first use (see lazy.py): most commands never touch the stack or quickstart
quickstart = lazy_import(f"{__package__}.quickstart")
quickstart_answers = lazy_import(f"{__package__}.quickstart_answers")
quickstart_answers_file = lazy_import(f"{__package__}.quickstart_answers_file")
quickstart_detect = lazy_import(f"{__package__}.quickstart_detect")
quickstart_plan = lazy_import(f"{__package__}.quickstart_plan")
stack_apply = lazy_import(f"{__package__}.stack_apply")
stack_control = lazy_import(f"{__package__}.stack_control")
stack_options = lazy_import(f"{__package__}.stack_options")
stack_routes = lazy_import(f"{__package__}.stack_routes")


class StackAndQuickstart:
    deps: Deps

    # -- the monitoring stack on this host: options, secrets, apply, status, logs, lifecycle ------
    # ``progress(line)`` is called with what is being done (pulls, containers).

    async def stack_options(self) -> stack.StackOptions:
        return await stack_options.stack_options(self.deps)

    async def set_stack_option(self, name: str, value: Any) -> stack.StackOptions:
        """Change one stack option (text as typed is accepted); takes effect on ``apply_stack``."""
        return await stack_options.set_stack_option(self.deps, name, value)

    async def set_stack_secret(self, name: str, value: str) -> None:
        await stack_options.set_stack_secret(self.deps, name, value)

    async def stack_spec(self) -> stack.StackSpec:
        """The stack as the options describe it: services, images, ports, volumes, routes."""
        return await stack_options.current_spec(self.deps)

    async def render_stack(self) -> list[str]:
        """Write the stack's config files (under ``<data>/stack``; the alert rules under
        ``<data>/prometheus/rules``); their data-relative paths."""
        return sorted(await stack_apply.render_stack_files(self.deps))

    async def stack_compose(self) -> str:
        return await stack_apply.stack_compose(self.deps)

    async def apply_stack(self, progress: Callable[[str], None] | None = None,
                          timeout_s: float = 180.0) -> stack_apply.ApplyReport:
        """Create or update the stack's containers to match the options; only what changed is touched."""
        return await stack_apply.apply_stack(self.deps, progress=progress, timeout_s=timeout_s)

    async def upgrade_stack(self, progress: Callable[[str], None] | None = None,
                            timeout_s: float = 180.0) -> stack_apply.ApplyReport:
        """Pull every image again and recreate what changed; data volumes are kept."""
        return await stack_apply.upgrade_stack(self.deps, progress=progress, timeout_s=timeout_s)

    async def stack_status(self) -> list[stack_control.ServiceStatus]:
        return await stack_control.stack_status(self.deps)

    async def stack_logs(self, service: str | None = None, *, tail: int | None = 100, follow: bool = False,
                         on_line: Callable[[str], None] = print) -> None:
        """Call ``on_line`` with each output line of one service or all; ``follow`` waits for more."""
        await stack_control.stack_logs(self.deps, service, tail=tail, follow=follow, on_line=on_line)

    async def stop_stack(self, service: str | None = None) -> list[str]:
        return await stack_control.stop_stack(self.deps, service)

    async def start_stack(self, service: str | None = None) -> list[str]:
        return await stack_control.start_stack(self.deps, service)

    async def restart_stack(self, service: str | None = None) -> list[str]:
        return await stack_control.restart_stack(self.deps, service)

    async def reload_prometheus(self, base_url: str | None = None) -> None:
        """Have Prometheus re-read its configuration and rules (``POST /-/reload``)."""
        await stack_control.reload_prometheus(self.deps, base_url)

    async def proxy_routes(self) -> list[ServiceRoute]:
        return await stack_routes.proxy_routes(self.deps)

    async def register_route(self, name: str, path: str, upstream: str, *, container: str | None = None,
                             strip_prefix: bool = True) -> ServiceRoute:
        """Serve a service through the shared proxy under ``path`` (checked with ``nginx -t`` first)."""
        return await stack_routes.register_route(self.deps, name, path, upstream, container=container,
                                                 strip_prefix=strip_prefix)

    async def unregister_route(self, name: str) -> None:
        await stack_routes.unregister_route(self.deps, name)

    # -- quickstart: set up this host from one set of answers ----------------------------------

    async def detect_environment(self) -> "quickstart_detect.Environment":
        """This host as quickstart sees it: name, addresses, GPUs, Docker,
        ipmi-monitor, an earlier install and its previous answers. Reads only."""
        return await quickstart_detect.detect_environment(self.deps)

    async def plan_quickstart(self, answers: "QuickstartAnswers | Mapping[str, Any] | str | Path") -> "quickstart_plan.QuickstartPlan":
        """Check ``answers`` against this host without changing anything."""
        return await quickstart_plan.plan_quickstart(self.deps, _answers(answers))

    async def quickstart(self, answers: "QuickstartAnswers | Mapping[str, Any] | str | Path", *,
                         progress: "quickstart.QuickstartProgress | None" = None,
                         show_passwords: bool = False) -> "quickstart.QuickstartReport":
        """Set this host up as a worker, a master or both (``answers``: a
        ``QuickstartAnswers``, a mapping shaped like an answers file, or the
        path of one). Idempotent; raises before changing anything when the
        answers or this host are not fit (``AnswersInvalid``, ``DockerMissing``)."""
        return await quickstart.run_quickstart(self.deps, _answers(answers), progress=progress,
                                               show_passwords=show_passwords)


def _answers(answers: Any) -> "QuickstartAnswers":
    if isinstance(answers, quickstart_answers.QuickstartAnswers):
        return answers
    if isinstance(answers, (str, Path)):
        return quickstart_answers_file.load_answers(answers)
    if isinstance(answers, Mapping):
        return quickstart_answers_file.answers_from_mapping(answers)
    raise errors.InvalidInput("answers", f"expected QuickstartAnswers, a mapping or a path, not {type(answers).__name__}")
