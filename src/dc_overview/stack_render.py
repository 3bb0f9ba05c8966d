"""The stack's config files, rendered from its description (``StackSpec``)
with the templates in ``templates/stack/``. Pure: text in, text out; the
use cases in ``stack_apply`` write the files.

Paths in the results are relative to the data dir:
``stack/prometheus/prometheus.yml``, ``prometheus/rules/dc-overview-alerts.yml``
(the packaged alert rules), ``stack/proxy/nginx.conf``,
``stack/proxy/conf.d/<service>.conf``, ``stack/proxy/html/index.html``,
``stack/grafana/provisioning/...``, ``stack/grafana/dashboards/*.json`` and,
with Alertmanager, ``stack/alertmanager/alertmanager.yml`` (written 0600:
``PRIVATE_FILES``). ``pruned_folders`` names the folders holding only what
the stack renders, where files it no longer renders are removed.
"""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

import attrs
import yaml

from .alerting import RULES_FILE, alert_rules, render_alertmanager_config
from .ports import Mount, ServiceRoute
from .proxy_routes import route_config, route_file, services_json
from .stack import (
    ALERTMANAGER, ALERTMANAGER_DIR, ALERTMANAGER_PORT, APP, GRAFANA_DIR, IPMI_MONITOR_PORT, PROMETHEUS_CONFIG_DIR,
    PROMETHEUS_PREFIX, PROMETHEUS_RULES_DIR, PROXY_CONF, PROXY_DIR, REMOTE_WRITE_PASSWORD, SCRAPE_TOKEN, SECRETS_DIR,
    IPMI_MONITOR, ServiceSpec, StackSpec, alert_routing, container_name,
)
from .stack_templates import render

PROMETHEUS_YML = f"{PROMETHEUS_CONFIG_DIR}/prometheus.yml"
NGINX_CONF = f"{PROXY_DIR}/nginx.conf"
ALERT_RULES = f"{PROMETHEUS_RULES_DIR}/{RULES_FILE}"
ALERTMANAGER_YML = f"{ALERTMANAGER_DIR}/alertmanager.yml"
DASHBOARDS_DIR = f"{GRAFANA_DIR}/dashboards"
PRIVATE_FILES = frozenset({ALERTMANAGER_YML})  # the webhook URL and SMTP details: readable by the owner only
SELF_SIGNED_CERT = "certs/selfsigned.crt"  # relative to the proxy's folder
SELF_SIGNED_KEY = "certs/selfsigned.key"
_SECRET_REF = re.compile(r"\$\(([A-Z_][A-Z0-9_]*)\)")


@attrs.frozen
class ProxyPaths:
    """Where the proxy finds things, as seen from inside its container.
    Tests give host paths to check the result with the host's nginx."""

    conf_dir: str = PROXY_CONF
    mime_types: str = "/etc/nginx/mime.types"
    pid: str = "/tmp/dc-proxy-nginx.pid"
    letsencrypt_dir: str = "/etc/letsencrypt"


@attrs.frozen
class PrometheusPaths:
    """Where Prometheus finds things inside its container (tests give host paths)."""

    rules_dir: str = "/etc/prometheus/rules"
    targets_dir: str = "/etc/prometheus/targets"
    secrets_dir: str = SECRETS_DIR


def has_service(spec: StackSpec, name: str) -> bool:
    return any(s.name == name for s in spec.services)


def render_prometheus(spec: StackSpec, secrets: frozenset[str] = frozenset(),
                      paths: PrometheusPaths = PrometheusPaths()) -> str:
    return render(
        "prometheus.yml.j2", options=spec.options, prefix=PROMETHEUS_PREFIX, paths=paths,
        scrape_token=SCRAPE_TOKEN in secrets,
        remote_write_password=REMOTE_WRITE_PASSWORD in secrets,
        ipmi_monitor=any(r.name == IPMI_MONITOR for r in spec.routes), ipmi_monitor_port=IPMI_MONITOR_PORT,
        alertmanager=f"{ALERTMANAGER}:{ALERTMANAGER_PORT}" if has_service(spec, ALERTMANAGER) else None,
    )


def render_rules() -> dict[str, str]:
    """The packaged alert rules, where Prometheus loads them (``rule_files``)."""
    return {ALERT_RULES: alert_rules()}


def render_alertmanager(spec: StackSpec, secrets: frozenset[str] = frozenset()) -> dict[str, str]:
    """Alertmanager's configuration from the ``alert_*`` options, when it runs."""
    if not has_service(spec, ALERTMANAGER):
        return {}
    return {ALERTMANAGER_YML: render_alertmanager_config(alert_routing(spec.options, secrets))}


def render_proxy(spec: StackSpec, paths: ProxyPaths = ProxyPaths()) -> dict[str, str]:
    """nginx.conf, the shared proxy headers, the landing page and one include
    per route of the stack (the services list is written with the registry's
    routes, see ``services_list``)."""
    options = spec.options
    if options.tls == "letsencrypt":
        live = f"{paths.letsencrypt_dir}/live/{options.domain}"
        certificate, key = f"{live}/fullchain.pem", f"{live}/privkey.pem"
    else:
        certificate, key = f"{paths.conf_dir}/{SELF_SIGNED_CERT}", f"{paths.conf_dir}/{SELF_SIGNED_KEY}"
    app = next((s for s in spec.services if s.name == APP), None)
    files = {
        f"{PROXY_DIR}/nginx.conf": render(
            "proxy/nginx.conf.j2", options=options, paths=paths, certificate=certificate, certificate_key=key,
            https_suffix="" if options.https_port == 443 else f":{options.https_port}",
            app_upstream=f"{APP}:{app.internal_port}" if app else None,
        ),
        f"{PROXY_DIR}/proxy_params.conf": render("proxy/proxy_params.conf.j2"),
        f"{PROXY_DIR}/html/index.html": render(
            "proxy/index.html.j2", titles={s.name: s.title for s in spec.services} | {IPMI_MONITOR: "IPMI Monitor"},
        ),
    }
    for route in spec.routes:
        files[f"{PROXY_DIR}/{route_file(route.name)}"] = route_config(route, paths.conf_dir)
    return files


def services_list(routes: list[ServiceRoute]) -> dict[str, str]:
    return {f"{PROXY_DIR}/html/services.json": services_json(routes)}


def render_grafana(spec: StackSpec) -> dict[str, str]:
    if not spec.options.grafana:
        return {}
    files = {
        f"{GRAFANA_DIR}/provisioning/datasources/prometheus.yml": render(
            "grafana/datasource.yml.j2", options=spec.options, prefix=PROMETHEUS_PREFIX),
        f"{GRAFANA_DIR}/provisioning/dashboards/dc-overview.yml": render("grafana/dashboards.yml.j2"),
    }
    for name, text in packaged_dashboards().items():
        files[f"{DASHBOARDS_DIR}/{name}"] = text
    return files


def pruned_folders(spec: StackSpec) -> dict[str, str]:
    """folder -> file suffix: folders that hold only files the stack renders,
    so a file there it no longer renders (a dashboard dropped from the
    package) is removed. The rules folder is not one: other rule files may
    live beside ours."""
    return {DASHBOARDS_DIR: ".json"} if spec.options.grafana else {}


def packaged_dashboards() -> dict[str, str]:
    """The Grafana dashboards shipped in ``dc_overview.dashboards``, by file name."""
    folder = importlib.resources.files("dc_overview.dashboards")
    return {entry.name: entry.read_text() for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".json")}


def render_stack(spec: StackSpec, secrets: frozenset[str] = frozenset(),
                 paths: ProxyPaths = ProxyPaths()) -> dict[str, str]:
    """Every config file of the stack, by data-relative path."""
    return {PROMETHEUS_YML: render_prometheus(spec, secrets), **render_rules(), **render_alertmanager(spec, secrets),
            **render_proxy(spec, paths), **render_grafana(spec)}


def config_digest_input(service: ServiceSpec, files: dict[str, str]) -> str:
    """The text whose change means ``service`` must reload (or be recreated)."""
    return "\n".join(f"{path}\n{files.get(path, '')}" for path in service.config_files)


def expand_command(command: tuple[str, ...], env: dict[str, str], compose: bool = False) -> tuple[str, ...]:
    """Replace ``$(NAME)`` by the secret env value (or by ``${NAME}`` for compose)."""
    if compose:
        return tuple(_SECRET_REF.sub(lambda m: "${" + m.group(1) + "}", part) for part in command)
    return tuple(_SECRET_REF.sub(lambda m: env.get(m.group(1), ""), part) for part in command)


def host_path(data_dir: Path, mount: Mount) -> str:
    if mount.volume or mount.source.startswith("/"):
        return mount.source
    return str((data_dir / mount.source).resolve()) if mount.source != "." else str(data_dir.resolve())


def compose_document(spec: StackSpec, data_dir: Path, *, data_owner: str | None = None,
                     socket_group: int | None = None) -> str:
    """The stack as a ``docker-compose.yml``, for people who want to see it or
    run it by hand. Secrets are not in it: API keys come from environment
    variables, files from ``<data>/stack/compose-secrets/``."""
    services: dict[str, dict] = {}
    secrets: dict[str, dict] = {}
    for service in spec.services:
        entry: dict = {"image": service.image, "container_name": container_name(spec, service.name),
                       "restart": "unless-stopped"}
        if service.entrypoint is not None:
            entry["entrypoint"] = list(service.entrypoint)
        if service.command:
            entry["command"] = list(expand_command(service.command, {}, compose=True))
        env = dict(service.env) | {name: "${" + name + "}" for name in service.secret_env}
        if env:
            entry["environment"] = env
        if service.run_as_data_owner and data_owner:
            entry["user"] = data_owner
        if service.ports:
            entry["ports"] = [f"{p.host_ip}:{p.host_port}:{p.container_port}" for p in service.ports]
        volumes = [f"{spec.prefix + m.source if m.volume else host_path(data_dir, m)}:{m.target}"
                   + (":ro" if m.read_only else "") for m in service.mounts]
        if service.docker_socket:
            volumes.append("/var/run/docker.sock:/var/run/docker.sock")
            if socket_group is not None:
                entry["group_add"] = [socket_group]
        if volumes:
            entry["volumes"] = volumes
        if service.secret_files:
            entry["secrets"] = []
            for target, name in sorted(service.secret_files.items()):
                secrets[name] = {"file": str(data_dir / "stack" / "compose-secrets" / name)}
                entry["secrets"].append({"source": name, "target": target.rsplit("/", 1)[-1]})  # /run/secrets/NAME
        entry["networks"] = {spec.network: {"aliases": [service.name]}}
        if service.health:
            h = service.health
            entry["healthcheck"] = {"test": list(h.test), "interval": f"{h.interval_s:g}s",
                                    "timeout": f"{h.timeout_s:g}s", "retries": h.retries,
                                    "start_period": f"{h.start_period_s:g}s"}
        if service.depends_on:
            entry["depends_on"] = list(service.depends_on)
        entry["labels"] = dict(service.labels)
        services[service.name] = entry
    document: dict = {"services": services, "networks": {spec.network: {"name": spec.network}},
                      "volumes": {spec.prefix + v: {"name": spec.prefix + v} for v in spec.volumes}}
    if secrets:
        document["secrets"] = secrets
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=120)
    return render("compose.yml.j2", body=body, data_dir=str(data_dir))
