"""Use cases that bring the stack on this host in line with its description:
``apply_stack`` (and ``upgrade_stack``, which pulls newer images first),
``render_stack_files`` and ``stack_compose``.

What ``apply`` guarantees:
- every image is on the host (pulled, with progress) before anything is
  touched; a failed pull changes nothing;
- only containers whose configuration changed are recreated (each carries a
  hash of its configuration as a label), each replaced safely: the old one
  is kept aside until the new one is healthy, and put back if it is not;
- config files are written only when they differ from what is on disk
  (``stack_files``);
- Prometheus and the proxy reload when their files changed (Prometheus over
  its HTTP lifecycle API, also for a changed rules file; the proxy after
  ``nginx -t`` passes); Grafana and Alertmanager, which read their files at
  start, are recreated;
- data volumes are never removed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import attrs

from . import errors, targets
from .ports import ContainerFile, ContainerSpec, Deps, Mount
from .stack import LABEL, PROMETHEUS, PROXY, PROXY_DIR, ServiceSpec, StackSpec, container_name
from .stack_control import (
    check_and_reload_proxy, reload_prometheus, service_logs_text, stack_containers, stack_id, wait_healthy,
)
from .stack_options import (
    current_spec, ensure_grafana_password, runtime_of, secret_names, secret_values,
)
from .stack_files import write_stack_files
from .stack_render import (
    PRIVATE_FILES, SELF_SIGNED_CERT, SELF_SIGNED_KEY, compose_document, config_digest_input, expand_command,
    host_path, pruned_folders, render_stack, services_list,
)
from .stack_tls import certificate_is_usable, certificate_names, self_signed_certificate

Progress = Callable[[str], None]
STATE_SETTING = "stack.applied"  # service -> digest of the config files it runs with
HASH_LABEL = f"{LABEL}.config-hash"
PREVIOUS = "-previous"


@attrs.frozen
class ServiceChange:
    service: str
    action: str  # created, recreated, started, reloaded, unchanged, removed
    detail: str = ""


@attrs.frozen
class ApplyReport:
    changes: tuple[ServiceChange, ...] = ()
    files: tuple[str, ...] = ()  # the stack's config files (data-relative; each written where it changed)
    generated_secrets: tuple[str, ...] = ()  # e.g. grafana_admin_password, made on this apply


def _say(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def container_spec(spec: StackSpec, service: ServiceSpec, data_dir: Path, secrets: dict[str, str],
                   files: dict[str, str], subnet: str | None = None) -> ContainerSpec:
    """The container for ``service``, with our labels and its configuration hash."""
    env = dict(service.env) | {var: secrets.get(name, "") for var, name in service.secret_env.items()}
    if service.network_env and subnet:
        env[service.network_env] = subnet
    labels = {
        **service.labels, f"{LABEL}.managed": "true", f"{LABEL}.stack": stack_id(spec),
        f"{LABEL}.service": service.name, f"{LABEL}.data-dir": str(data_dir),
    }
    container = ContainerSpec(
        name=container_name(spec, service.name), image=service.image, labels=labels,
        entrypoint=service.entrypoint, command=expand_command(service.command, env), env=env,
        ports=service.ports,
        mounts=tuple(Mount(spec.prefix + m.source if m.volume else host_path(data_dir, m), m.target,
                           m.volume, m.read_only) for m in service.mounts),
        files=tuple(ContainerFile(path, secrets[name]) for path, name in sorted(service.secret_files.items())
                    if name in secrets),
        network=spec.network, aliases=(service.name,), health=service.health,
        run_as_owner_of=str(data_dir) if service.run_as_data_owner else None,
        docker_socket=service.docker_socket,
    )
    hashed = json.dumps(attrs.asdict(container), sort_keys=True, default=str)
    if service.reload is None:  # read at start only: a changed file means a new container
        hashed += config_digest_input(service, files)
    return attrs.evolve(container, labels={**labels, HASH_LABEL: _digest(hashed)})


async def render_stack_files(deps: Deps, spec: StackSpec | None = None) -> dict[str, str]:
    """Write every config file of the stack (atomically, those that changed)
    and the fleet's targets file; keep a usable self-signed certificate.
    Returns the files."""
    files, _ = await _write_files(deps, spec or await current_spec(deps))
    return files


async def _write_files(deps: Deps, spec: StackSpec) -> tuple[dict[str, str], frozenset[str]]:
    """The files, and which of them were written or removed now."""
    files = render_stack(spec, secret_names(deps))
    if deps.proxy is not None:
        own = {r.name for r in spec.routes}
        others = [r for r in await deps.proxy.routes() if r.name not in own]
        files |= services_list([*spec.routes, *others])
    else:
        files |= services_list(list(spec.routes))
    changed = write_stack_files(deps, files, private=PRIVATE_FILES, pruned=pruned_folders(spec))
    if spec.options.tls == "self-signed":
        _keep_certificate(deps, spec)
    targets.write_targets(deps)
    return files, changed


def _keep_certificate(deps: Deps, spec: StackSpec) -> None:
    cert_path = deps.storage.data_dir / PROXY_DIR / SELF_SIGNED_CERT
    try:
        current = cert_path.read_bytes()
    except OSError:
        current = None
    names = certificate_names(spec.options.domain)
    now = deps.clock.now()
    if not certificate_is_usable(current, names, now):
        cert, key = self_signed_certificate(names, now)
        deps.storage.write_file_atomically(f"{PROXY_DIR}/{SELF_SIGNED_KEY}", key.decode(), mode=0o600)
        deps.storage.write_file_atomically(f"{PROXY_DIR}/{SELF_SIGNED_CERT}", cert.decode())


async def _images(deps: Deps, spec: StackSpec, pull: bool, progress: Progress | None) -> dict[str, str]:
    """image -> id, pulling what is missing (or everything, to upgrade). All
    pulls happen before any container changes."""
    runtime = runtime_of(deps)
    ids: dict[str, str] = {}
    for image in dict.fromkeys(s.image for s in spec.services):
        local = None if pull else await runtime.image_id(image)
        if local is None:
            _say(progress, f"pulling {image}")
            local = await runtime.pull(image, (lambda line, i=image: _say(progress, f"  {i}: {line}")))
        ids[image] = local
    return ids


async def apply_stack(deps: Deps, *, progress: Progress | None = None, pull: bool = False,
                      timeout_s: float = 180.0) -> ApplyReport:
    runtime = runtime_of(deps)
    version = await runtime.version()
    _say(progress, f"container engine {version}")
    spec = await current_spec(deps)
    generated = ("grafana_admin_password",) if ensure_grafana_password(deps, spec) else ()
    images = await _images(deps, spec, pull, progress)

    files, changed = await _write_files(deps, spec)
    _say(progress, f"{len(changed)} of {len(files)} config files changed under {deps.storage.data_dir}")
    subnet = await runtime.ensure_network(spec.network, {f"{LABEL}.stack": stack_id(spec)})
    for volume in spec.volumes:
        await runtime.ensure_volume(spec.prefix + volume, {f"{LABEL}.stack": stack_id(spec)})

    secrets = secret_values(deps, secret_names(deps))
    applied = dict(deps.storage.load_settings().get(STATE_SETTING) or {})  # type: ignore[call-overload]
    data_dir = deps.storage.data_dir.resolve()  # labels and mounts name it the same way from anywhere
    results = await asyncio.gather(
        *(_converge(deps, spec, s, container_spec(spec, s, data_dir, secrets, files, subnet), images[s.image],
                    _config_changed(s, files, changed, applied.get(s.name)), timeout_s, progress)
          for s in spec.services),
        return_exceptions=True,
    )
    changes: list[ServiceChange] = []
    failures: list[BaseException] = []
    for service, result in zip(spec.services, results):
        if isinstance(result, BaseException):
            failures.append(result)
        else:
            changes.append(result)
            applied[service.name] = _digest(config_digest_input(service, files))
    deps.storage.save_setting(STATE_SETTING, applied)
    if failures:
        raise failures[0]
    changes += await _remove_unwanted(deps, spec, progress)
    return ApplyReport(changes=tuple(changes), files=tuple(sorted(files)), generated_secrets=generated)


async def upgrade_stack(deps: Deps, *, progress: Progress | None = None, timeout_s: float = 180.0) -> ApplyReport:
    """Pull every image again, then recreate the containers whose image or
    configuration changed. Data volumes are kept."""
    return await apply_stack(deps, progress=progress, pull=True, timeout_s=timeout_s)


def _config_changed(service: ServiceSpec, files: dict[str, str], changed: frozenset[str],
                    applied_digest: str | None) -> bool:
    """Whether ``service`` must re-read its files: they differ from those it
    last applied with, or one was rewritten on disk now (a hand edit undone)."""
    return (applied_digest != _digest(config_digest_input(service, files))
            or any(path in changed for path in service.config_files))


async def _converge(deps: Deps, spec: StackSpec, service: ServiceSpec, wanted: ContainerSpec, image_id: str,
                    config_changed: bool, timeout_s: float, progress: Progress | None) -> ServiceChange:
    runtime = runtime_of(deps)
    existing = await runtime.inspect(wanted.name)
    if existing is None:
        _say(progress, f"{service.name}: creating")
        await runtime.create(wanted)
        await runtime.start(wanted.name)
        await _wait(deps, service.name, wanted.name, timeout_s)
        return ServiceChange(service.name, "created")
    if existing.labels.get(HASH_LABEL) != wanted.labels[HASH_LABEL] or existing.image_id != image_id:
        why = "new image" if existing.image_id != image_id else "configuration changed"
        _say(progress, f"{service.name}: recreating ({why})")
        await _replace(deps, service.name, wanted, timeout_s)
        return ServiceChange(service.name, "recreated", why)
    if existing.state != "running":
        _say(progress, f"{service.name}: starting")
        await runtime.start(wanted.name)
        await _wait(deps, service.name, wanted.name, timeout_s)
        return ServiceChange(service.name, "started")
    if service.reload and config_changed:
        _say(progress, f"{service.name}: reloading its configuration")
        if service.reload == "prometheus":
            await reload_prometheus(deps, spec=spec)
        elif service.reload == "nginx":
            await check_and_reload_proxy(runtime, wanted.name)
        return ServiceChange(service.name, "reloaded")
    return ServiceChange(service.name, "unchanged")


async def _wait(deps: Deps, service: str, name: str, timeout_s: float) -> None:
    await wait_healthy(runtime_of(deps), service, name, timeout_s)


async def _replace(deps: Deps, service: str, wanted: ContainerSpec, timeout_s: float) -> None:
    """Swap in a new container; the old one waits aside (stopped, renamed)
    until the new one is healthy, and comes back if it is not."""
    runtime = runtime_of(deps)
    aside = wanted.name + PREVIOUS
    await runtime.remove(aside)
    await runtime.stop(wanted.name)
    await runtime.rename(wanted.name, aside)
    try:
        await runtime.create(wanted)
        await runtime.start(wanted.name)
        await _wait(deps, service, wanted.name, timeout_s)
    except errors.DcOverviewError as exc:
        logs = getattr(exc, "logs", "") or await service_logs_text(runtime, wanted.name)
        await runtime.remove(wanted.name)
        await runtime.rename(aside, wanted.name)
        await runtime.start(wanted.name)
        raise errors.ContainerFailed(
            service, f"the new container failed ({exc.message}); the previous one runs again", logs,
            "fix the option that changed (`dc-overview stack options`) and apply again",
        ) from None
    await runtime.remove(aside)


async def _remove_unwanted(deps: Deps, spec: StackSpec, progress: Progress | None) -> list[ServiceChange]:
    """Containers of this stack whose service was turned off (and leftovers
    of an interrupted replacement). Their volumes stay."""
    runtime = runtime_of(deps)
    wanted = {container_name(spec, s.name) for s in spec.services}
    removed = []
    for info in await stack_containers(runtime, spec):
        if info.name not in wanted:
            _say(progress, f"{info.name}: removing (no longer part of the stack)")
            await runtime.remove(info.name)
            if not info.name.endswith(PREVIOUS):
                removed.append(ServiceChange(info.labels.get(f"{LABEL}.service", info.name), "removed"))
    return removed


async def stack_compose(deps: Deps) -> str:
    """The stack as a docker-compose.yml text (no secrets in it)."""
    spec = await current_spec(deps)
    data_dir = deps.storage.data_dir
    owner = socket_group = None
    try:
        stat = data_dir.stat()
        owner = f"{stat.st_uid}:{stat.st_gid}"
    except OSError:
        pass
    try:
        socket_group = os.stat("/var/run/docker.sock").st_gid
    except OSError:
        pass
    return compose_document(spec, data_dir, data_owner=owner, socket_group=socket_group)


__all__ = ["ApplyReport", "ServiceChange", "apply_stack", "container_spec", "render_stack_files",
           "stack_compose", "upgrade_stack", "PROMETHEUS", "PROXY"]
