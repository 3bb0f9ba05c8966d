"""Use cases for the stack's options and secrets, and the stack as it should
be on this host right now (``current_spec``).

Options are stored as settings named ``stack.<option>``; the app's port is
the fleet setting ``dc_port``. Secrets (API keys, the Grafana admin password,
the remote-write password, the scrape token) live in the SecretStore and are
never shown: only whether each is set.
"""

from __future__ import annotations

import secrets as random
from typing import Any

import attrs

from . import credentials, errors
from .ports import ContainerRuntime, Deps
from .stack import (
    GRAFANA_PASSWORD, IPMI_MONITOR, STACK_OPTION_NAMES, STACK_SECRETS, StackOptions, StackSpec, build_stack,
    change_option,
)

PREFIX = "stack."


async def stack_options(deps: Deps) -> StackOptions:
    stored = deps.storage.load_settings()
    values = {k[len(PREFIX):]: v for k, v in stored.items() if k.startswith(PREFIX) and k[len(PREFIX):] in STACK_OPTION_NAMES}
    try:
        return StackOptions(**values, app_port=stored.get("dc_port", 5001))  # type: ignore[arg-type]
    except errors.DcOverviewError as exc:
        raise errors.StorageError(f"a stored stack option is invalid: {exc}",
                                  "set it again with `dc-overview stack set NAME VALUE`") from None


async def set_stack_option(deps: Deps, name: str, value: Any) -> StackOptions:
    """Change one option (checked, with the others, before it is stored).
    Takes effect on the next ``apply``."""
    with deps.storage.transaction():
        updated = change_option(await stack_options(deps), name, value)
        build_stack(updated, secret_names(deps))  # e.g. an exporter without its API key is refused now
        deps.storage.save_setting(PREFIX + name, getattr(updated, name))
    return updated


def secret_names(deps: Deps) -> frozenset[str]:
    return frozenset(deps.secrets.names()) if deps.secrets is not None else frozenset()


def secret_values(deps: Deps, names: frozenset[str]) -> dict[str, str]:
    """Values of the secrets the stack uses, for the containers only."""
    if deps.secrets is None:
        return {}
    values = {name: deps.secrets.get(name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


async def set_stack_secret(deps: Deps, name: str, value: str) -> None:
    """One of the secrets only the stack uses (``credentials.set_secret`` sets any)."""
    if name not in STACK_SECRETS:
        raise errors.InvalidStackOption("name", f"{name!r} is not a stack secret", "stack secrets: " + ", ".join(STACK_SECRETS))
    await credentials.set_secret(deps, name, value)


def ensure_grafana_password(deps: Deps, spec: StackSpec) -> bool:
    """Make Grafana's admin password on first use; True when it was made now."""
    if not spec.options.grafana or GRAFANA_PASSWORD in secret_names(deps):
        return False
    if deps.secrets is None:
        raise errors.OperationUnavailable("the secret store", "Grafana's admin password needs one")
    deps.secrets.put(GRAFANA_PASSWORD, random.token_urlsafe(18))
    return True


def runtime_of(deps: Deps) -> ContainerRuntime:
    if deps.runtime is None:
        raise errors.EngineUnavailable("no container runtime is configured for this fleet",
                                       "open the fleet with dc_overview.open()")
    return deps.runtime


async def ipmi_monitor_present(deps: Deps) -> bool:
    if deps.runtime is None:
        return False
    try:
        return await deps.runtime.inspect(IPMI_MONITOR) is not None
    except errors.EngineUnavailable:
        return False


async def current_spec(deps: Deps, options: StackOptions | None = None) -> StackSpec:
    """The stack as the options and the stored secrets describe it, with
    ipmi-monitor's route and scrape job when it runs on this host."""
    options = options or await stack_options(deps)
    present = options.ipmi_monitor == "auto" and await ipmi_monitor_present(deps)
    return build_stack(options, secret_names(deps), ipmi_monitor_present=present)


def options_view(options: StackOptions) -> dict[str, Any]:
    """The options as people see them (every one settable except app_port)."""
    return attrs.asdict(options)
