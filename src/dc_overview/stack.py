"""The monitoring stack on the control node, described once.

``StackOptions`` (``stack_choices``) are the operator's choices (stored as
``stack.<name>`` settings); ``build_stack(options)`` turns them into a ``StackSpec``: every
service with its image, ports, volumes, environment, health check and route.
That description is the single source of truth: the config files, the
containers and the ``docker-compose.yml`` export are all made from it.
Nothing here does I/O.
"""

from __future__ import annotations

from typing import Mapping

import attrs

from . import errors
from .alerting import RULES_FILE, AlertRouting
from .ports import HealthCheck, Mount, PortBinding, ServiceRoute
from .stack_choices import STACK_OPTION_NAMES, StackOptions, change_option  # noqa: F401 (known here too)
from .stack_names import (  # noqa: F401 (the stack's names are known here too)
    PROXY, APP, PROMETHEUS, GRAFANA, WATCHTOWER, VASTAI, RUNPOD, IPMI_MONITOR, ALERTMANAGER, IPMI_MONITOR_PORT,
    ALERTMANAGER_PORT, STACK_DIR, PROMETHEUS_CONFIG_DIR, PROMETHEUS_TARGETS_DIR, PROMETHEUS_RULES_DIR,
    PROXY_DIR, GRAFANA_DIR, ALERTMANAGER_DIR, PROMETHEUS_PREFIX, PROXY_CONF, SECRETS_DIR, VASTAI_KEY,
    RUNPOD_KEY, SCRAPE_TOKEN, GRAFANA_PASSWORD, REMOTE_WRITE_PASSWORD, ALERT_WEBHOOK_TOKEN, SMTP_PASSWORD,
    STACK_SECRETS, LABEL,
)


def _fail(field: str, message: str, hint: str | None = None) -> None:
    raise errors.InvalidStackOption(field, message, hint)


# -- the description ---------------------------------------------------------------


@attrs.frozen
class ServiceSpec:
    """One service. Bind-mount sources are relative to the data dir unless
    absolute; volume names are given without the stack's prefix."""

    name: str
    title: str
    image: str
    internal_port: int | None = None  # where it listens on the stack's network
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] = ()  # "$(NAME)" is replaced by the secret env var NAME
    env: Mapping[str, str] = attrs.field(factory=dict)
    secret_env: Mapping[str, str] = attrs.field(factory=dict)  # env var -> secret name
    secret_files: Mapping[str, str] = attrs.field(factory=dict)  # path inside -> secret name
    ports: tuple[PortBinding, ...] = ()
    mounts: tuple[Mount, ...] = ()
    health: HealthCheck | None = None
    run_as_data_owner: bool = False
    docker_socket: bool = False
    network_env: str | None = None  # an env var that gets the stack network's subnet
    route: ServiceRoute | None = None
    reload: str | None = None  # how a config change is applied: "prometheus", "nginx", None (recreate)
    config_files: tuple[str, ...] = ()  # data-relative files it reads
    labels: Mapping[str, str] = attrs.field(factory=dict)
    depends_on: tuple[str, ...] = ()
    optional: bool = True


@attrs.frozen
class StackSpec:
    options: StackOptions
    services: tuple[ServiceSpec, ...]  # in start order
    volumes: tuple[str, ...]
    network: str
    prefix: str
    routes: tuple[ServiceRoute, ...] = ()  # what the proxy serves, ipmi-monitor's included when present


def service_names(spec: StackSpec) -> tuple[str, ...]:
    return tuple(s.name for s in spec.services)


def find_service(spec: StackSpec, name: str) -> ServiceSpec:
    for service in spec.services:
        if service.name == name:
            return service
    raise errors.UnknownService(name, service_names(spec))


def container_name(spec: StackSpec, service: str) -> str:
    return spec.prefix + service


def ipmi_monitor_included(options: StackOptions, present: bool) -> bool:
    return options.ipmi_monitor == "on" or (options.ipmi_monitor == "auto" and present)


def _wget(url: str) -> tuple[str, ...]:
    return ("CMD", "wget", "-q", "-O", "/dev/null", "-T", "4", url)


def alert_routing(options: StackOptions, secrets: frozenset[str] = frozenset()) -> AlertRouting:
    """Where the stack's Alertmanager sends alerts, from the ``alert_*``
    options. The webhook's token and the SMTP password are files in its
    container, used where the webhook and the SMTP login are set."""
    def secret_file(name: str, used: object) -> str | None:
        return f"{SECRETS_DIR}/{name}" if used and name in secrets else None

    try:
        return AlertRouting(
            webhook_url=options.alert_webhook_url,
            webhook_token_file=secret_file(ALERT_WEBHOOK_TOKEN, options.alert_webhook_url),
            email_to=options.alert_email_to, email_from=options.alert_email_from,
            smtp_smarthost=options.alert_smtp_smarthost, smtp_username=options.alert_smtp_username,
            smtp_password_file=secret_file(SMTP_PASSWORD, options.alert_email_to and options.alert_smtp_username),
            smtp_require_tls=options.alert_smtp_require_tls, send_resolved=options.alert_send_resolved,
            repeat_interval=options.alert_repeat_interval,
            critical_repeat_interval=options.alert_critical_repeat_interval,
        )
    except errors.InvalidAlerting as exc:
        raise errors.InvalidStackOption(f"alert_{exc.field}", exc.message.split(": ", 1)[-1], exc.hint) from None


def build_stack(options: StackOptions, secrets: frozenset[str] = frozenset(), *,
                ipmi_monitor_present: bool = False) -> StackSpec:
    """The stack for ``options``. ``secrets`` names the secrets that are set
    (their values are never needed here)."""
    if options.vastai_exporter and VASTAI_KEY not in secrets:
        _fail("vastai_exporter", "needs the Vast.ai API key", "set it first: `dc-overview secrets set vastai_api_key`")
    if options.runpod_exporter and RUNPOD_KEY not in secrets:
        _fail("runpod_exporter", "needs the RunPod API key", "set it first: `dc-overview secrets set runpod_api_key`")
    if options.remote_write_username and REMOTE_WRITE_PASSWORD not in secrets:
        _fail("remote_write_username", "needs the remote-write password",
              "set it with `dc-overview stack secret remote_write_password`")
    scope = {"com.centurylinklabs.watchtower.scope": "dc-overview"}
    services: list[ServiceSpec] = []
    volumes = ["dc-overview-prometheus-data"]

    prom_files = {f"{SECRETS_DIR}/{name}": name for name in (SCRAPE_TOKEN, REMOTE_WRITE_PASSWORD) if name in secrets}
    services.append(ServiceSpec(
        name=PROMETHEUS, title="Prometheus", image=options.prometheus_image, internal_port=9090,
        entrypoint=("prometheus",),
        command=(
            "--config.file=/etc/prometheus/config/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            f"--storage.tsdb.retention.time={options.retention}",
            "--web.enable-lifecycle",
            f"--web.external-url={PROMETHEUS_PREFIX}/",
            f"--web.route-prefix={PROMETHEUS_PREFIX}/",
        ),
        secret_files=prom_files,
        ports=(PortBinding(9090, options.prometheus_local_port, "127.0.0.1"),) if options.prometheus_local_port else (),
        mounts=(
            Mount("dc-overview-prometheus-data", "/prometheus", volume=True),
            Mount(PROMETHEUS_CONFIG_DIR, "/etc/prometheus/config", read_only=True),
            Mount(PROMETHEUS_TARGETS_DIR, "/etc/prometheus/targets", read_only=True),
            Mount(PROMETHEUS_RULES_DIR, "/etc/prometheus/rules", read_only=True),
        ),
        health=HealthCheck(_wget(f"http://127.0.0.1:9090{PROMETHEUS_PREFIX}/-/healthy")),
        run_as_data_owner=True,  # reads the rules and targets the data dir's owner writes
        route=ServiceRoute(PROMETHEUS, "/prometheus/", "prometheus:9090", strip_prefix=False,
                           read_only_paths=("-/",)),
        reload="prometheus",
        config_files=(f"{PROMETHEUS_CONFIG_DIR}/prometheus.yml", f"{PROMETHEUS_RULES_DIR}/{RULES_FILE}"),
        labels=scope, optional=False,
    ))
    if options.alertmanager:
        routing = alert_routing(options, secrets)  # checked now, with the secrets it uses
        volumes.append("dc-overview-alertmanager-data")
        services.append(ServiceSpec(
            name=ALERTMANAGER, title="Alertmanager", image=options.alertmanager_image, internal_port=ALERTMANAGER_PORT,
            entrypoint=("alertmanager",),
            command=(
                "--config.file=/etc/alertmanager/config/alertmanager.yml",
                "--storage.path=/alertmanager",
                f"--web.listen-address=:{ALERTMANAGER_PORT}",
                "--cluster.listen-address=",  # a single instance: no gossip port
            ),
            secret_files={path: name for name, path in ((ALERT_WEBHOOK_TOKEN, routing.webhook_token_file),
                                                        (SMTP_PASSWORD, routing.smtp_password_file)) if path},
            ports=((PortBinding(ALERTMANAGER_PORT, options.alertmanager_local_port, "127.0.0.1"),)
                   if options.alertmanager_local_port else ()),
            mounts=(
                Mount("dc-overview-alertmanager-data", "/alertmanager", volume=True),
                Mount(ALERTMANAGER_DIR, "/etc/alertmanager/config", read_only=True),
            ),
            health=HealthCheck(_wget(f"http://127.0.0.1:{ALERTMANAGER_PORT}/-/healthy")),
            run_as_data_owner=True,  # its config file is readable by the data dir's owner only
            config_files=(f"{ALERTMANAGER_DIR}/alertmanager.yml",),  # read at start: a change recreates it
            labels=scope,
        ))
    if options.grafana:
        volumes.append("dc-overview-grafana-data")
        services.append(ServiceSpec(
            name=GRAFANA, title="Grafana", image=options.grafana_image, internal_port=3000,
            env={
                "GF_SERVER_ROOT_URL": "%(protocol)s://%(domain)s/grafana/",
                "GF_SERVER_SERVE_FROM_SUB_PATH": "true",
                "GF_SECURITY_ADMIN_USER": "admin",
                "GF_SECURITY_ADMIN_PASSWORD__FILE": f"{SECRETS_DIR}/{GRAFANA_PASSWORD}",
                "GF_USERS_ALLOW_SIGN_UP": "false",
                "GF_ANALYTICS_REPORTING_ENABLED": "false",
                "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
            },
            secret_files={f"{SECRETS_DIR}/{GRAFANA_PASSWORD}": GRAFANA_PASSWORD},
            mounts=(
                Mount("dc-overview-grafana-data", "/var/lib/grafana", volume=True),
                Mount(f"{GRAFANA_DIR}/provisioning", "/etc/grafana/provisioning", read_only=True),
                Mount(f"{GRAFANA_DIR}/dashboards", "/etc/grafana/dashboards", read_only=True),
            ),
            health=HealthCheck(_wget("http://127.0.0.1:3000/grafana/api/health")),
            route=ServiceRoute(GRAFANA, "/grafana/", "grafana:3000", strip_prefix=False),
            config_files=(f"{GRAFANA_DIR}/provisioning/datasources/prometheus.yml",
                          f"{GRAFANA_DIR}/provisioning/dashboards/dc-overview.yml"),
            labels=scope, depends_on=(PROMETHEUS,),
        ))
    if options.web_app:
        services.append(ServiceSpec(
            name=APP, title="DC Overview", image=options.app_image, internal_port=options.app_port,
            env={
                "DC_OVERVIEW_DATA": "/data",
                "DC_OVERVIEW_HOST": "0.0.0.0",
                "DC_OVERVIEW_PORT": str(options.app_port),
                "DC_OVERVIEW_BASE_PATH": "/dc",
                "DC_OVERVIEW_PROMETHEUS_API": f"http://prometheus:9090{PROMETHEUS_PREFIX}",
            },
            network_env="DC_OVERVIEW_TRUSTED_PROXIES",  # the proxy's X-Forwarded-* headers are believed
            mounts=(Mount(".", "/data"),),  # read-write: the app changes the inventory and configs
            health=HealthCheck((
                "CMD", "python3", "-c",
                "import os,urllib.request;urllib.request.urlopen('http://127.0.0.1:%s/api/health'"
                " % os.environ.get('DC_OVERVIEW_PORT','5001'),timeout=4)",
            )),
            run_as_data_owner=True, docker_socket=True,
            route=ServiceRoute(APP, "/dc/", f"dc-overview:{options.app_port}"),
            labels=scope, depends_on=(PROMETHEUS,),
        ))
    if options.vastai_exporter:
        services.append(ServiceSpec(
            name=VASTAI, title="Vast.ai exporter", image=options.vastai_exporter_image, internal_port=8622,
            command=("--key=$(VASTAI_API_KEY)", "--listen=0.0.0.0:8622"),
            secret_env={"VASTAI_API_KEY": VASTAI_KEY}, labels=scope,
        ))
    if options.runpod_exporter:
        services.append(ServiceSpec(
            name=RUNPOD, title="RunPod exporter", image=options.runpod_exporter_image, internal_port=8623,
            env={"PORT": "8623"}, secret_env={"RUNPOD_API_KEY": RUNPOD_KEY}, labels=scope,
        ))
    if options.watchtower:
        services.append(ServiceSpec(
            name=WATCHTOWER, title="Watchtower", image=options.watchtower_image,
            env={"WATCHTOWER_SCOPE": "dc-overview", "WATCHTOWER_CLEANUP": "true",
                 "WATCHTOWER_POLL_INTERVAL": "86400"},
            docker_socket=True, labels=scope,
        ))
    routes = [attrs.evolve(s.route, container=options.name_prefix + s.name) for s in services if s.route]
    if ipmi_monitor_included(options, ipmi_monitor_present):
        routes.append(ServiceRoute(IPMI_MONITOR, "/ipmi/", f"{IPMI_MONITOR}:{IPMI_MONITOR_PORT}", container=IPMI_MONITOR))
    tls_mounts = (Mount(options.letsencrypt_dir, "/etc/letsencrypt", read_only=True),) if options.tls == "letsencrypt" else ()
    proxy_ports = [PortBinding(80, options.http_port, options.bind_address)]
    if options.tls != "off":
        proxy_ports.append(PortBinding(443, options.https_port, options.bind_address))
    services.append(ServiceSpec(
        name=PROXY, title="Reverse proxy", image=options.proxy_image,
        internal_port=443 if options.tls != "off" else 80,
        entrypoint=("nginx",), command=("-c", f"{PROXY_CONF}/nginx.conf", "-g", "daemon off;"),
        ports=tuple(proxy_ports),
        mounts=(Mount(PROXY_DIR, PROXY_CONF, read_only=True), *tls_mounts),
        health=HealthCheck(_wget("http://127.0.0.1:80/healthz")),
        reload="nginx", config_files=(f"{PROXY_DIR}/nginx.conf", *(f"{PROXY_DIR}/conf.d/{r.name}.conf" for r in routes)),
        labels=scope, depends_on=tuple(s.name for s in services), optional=False,
    ))
    return StackSpec(options=options, services=tuple(services), volumes=tuple(volumes),
                     network=options.network, prefix=options.name_prefix, routes=tuple(routes))
