"""The monitoring stack on the control node, described once.

``StackOptions`` are the operator's choices (stored as ``stack.<name>``
settings); ``build_stack(options)`` turns them into a ``StackSpec``: every
service with its image, ports, volumes, environment, health check and route.
That description is the single source of truth: the config files, the
containers and the ``docker-compose.yml`` export are all made from it.
Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Mapping

import attrs

from . import errors
from .domain import check_address, check_port
from .ports import HealthCheck, Mount, PortBinding, ServiceRoute

# The names other products know these containers by (cryptolabs-proxy's /api/services).
PROXY, APP, PROMETHEUS, GRAFANA = "cryptolabs-proxy", "dc-overview", "prometheus", "grafana"
WATCHTOWER, VASTAI, RUNPOD, IPMI_MONITOR = "watchtower", "vastai-exporter", "runpod-exporter", "ipmi-monitor"
IPMI_MONITOR_PORT = 5000

# Where things live, relative to the data dir (bind-mounted as directories, never
# single files: an atomic rename would leave a mounted file behind).
STACK_DIR = "stack"
PROMETHEUS_CONFIG_DIR = "stack/prometheus"
PROMETHEUS_TARGETS_DIR = "prometheus/targets"  # targets.TARGETS_FILE lives here
PROMETHEUS_RULES_DIR = "prometheus/rules"  # alert/recording rules, *.yml
PROXY_DIR = "stack/proxy"
GRAFANA_DIR = "stack/grafana"

# ... and inside the containers.
PROMETHEUS_PREFIX = "/prometheus"
PROXY_CONF = "/etc/dc-proxy"
SECRETS_DIR = "/run/secrets"

# Secrets (SecretStore names); credentials.py owns the first three.
VASTAI_KEY, RUNPOD_KEY, SCRAPE_TOKEN = "vastai_api_key", "runpod_api_key", "scrape_token"
GRAFANA_PASSWORD, REMOTE_WRITE_PASSWORD = "grafana_admin_password", "remote_write_password"
STACK_SECRETS = (GRAFANA_PASSWORD, REMOTE_WRITE_PASSWORD)

LABEL = "io.cryptolabs.dc-overview"

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,40}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_URL = re.compile(r"^https?://[^\s\"'\\]+$")


# -- validators -----------------------------------------------------------------


def _fail(field: str, message: str, hint: str | None = None) -> None:
    raise errors.InvalidStackOption(field, message, hint)


def _choice(*allowed: str):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in allowed:
            _fail(attribute.name, f"{value!r} is not one of {', '.join(allowed)}")

    return check


def _matches(pattern: re.Pattern[str], hint: str, optional: bool = False):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if optional and value is None:
            return
        if not isinstance(value, str) or not pattern.match(value):
            _fail(attribute.name, f"{value!r} is not valid", hint)

    return check


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not yes or no")


def _as_int(value: Any) -> Any:
    try:
        return int(str(value).strip()) if not isinstance(value, bool) else value
    except ValueError:
        return value


def _port(default: int, allow_zero: bool = False) -> Any:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if allow_zero and value == 0:
            return
        try:
            check_port(value, attribute.name)
        except errors.InvalidPort as exc:
            _fail(attribute.name, exc.message.split(": ", 1)[-1], exc.hint or ("0 turns it off" if allow_zero else None))

    return attrs.field(default=default, converter=_as_int, validator=check)


def _optional_text(value: Any) -> str | None:
    return None if value in (None, "") else str(value).strip()


def _domain(value: Any) -> str | None:
    value = _optional_text(value)
    return None if value is None else check_address(value, "domain")


def _ip(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        _fail(attribute.name, f"{value!r} is not an IP address", "e.g. 0.0.0.0 for every address")


# -- the operator's choices -------------------------------------------------------


@attrs.frozen
class StackOptions:
    """What runs and how. Text as typed on a command line is accepted."""

    # which services run
    grafana: bool = attrs.field(default=True, converter=_boolean)
    web_app: bool = attrs.field(default=True, converter=_boolean)
    watchtower: bool = attrs.field(default=False, converter=_boolean)
    vastai_exporter: bool = attrs.field(default=False, converter=_boolean)
    runpod_exporter: bool = attrs.field(default=False, converter=_boolean)
    ipmi_monitor: str = attrs.field(default="auto", validator=_choice("auto", "on", "off"))
    # the proxy
    domain: str | None = attrs.field(default=None, converter=_domain)
    tls: str = attrs.field(default="self-signed", validator=_choice("self-signed", "letsencrypt", "off"))
    http_port: int = _port(80)
    https_port: int = _port(443)
    bind_address: str = attrs.field(default="0.0.0.0", validator=_ip)
    letsencrypt_dir: str = "/etc/letsencrypt"
    # Prometheus
    targets_source: str = attrs.field(default="file", validator=_choice("file", "http"))
    scrape_interval: str = attrs.field(default="30s", validator=_matches(_DURATION, "e.g. 15s, 1m"))
    retention: str = attrs.field(default="30d", validator=_matches(_DURATION, "e.g. 15d, 26w"))
    prometheus_local_port: int = _port(9090, allow_zero=True)
    remote_write_url: str | None = attrs.field(
        default=None, converter=_optional_text,
        validator=_matches(_URL, "an http(s) URL, e.g. http://victoria:8428/api/v1/write", optional=True))
    remote_write_username: str | None = attrs.field(default=None, converter=_optional_text)
    # images
    app_image: str = attrs.field(default="ghcr.io/cryptolabsza/dc-overview:2.0.0", validator=_matches(_IMAGE, "an image reference"))
    prometheus_image: str = attrs.field(default="prom/prometheus:v2.55.1", validator=_matches(_IMAGE, "an image reference"))
    grafana_image: str = attrs.field(default="grafana/grafana-oss:11.4.0", validator=_matches(_IMAGE, "an image reference"))
    proxy_image: str = attrs.field(default="nginx:1.27-alpine", validator=_matches(_IMAGE, "an image reference"))
    watchtower_image: str = attrs.field(default="containrrr/watchtower:1.7.1", validator=_matches(_IMAGE, "an image reference"))
    vastai_exporter_image: str = attrs.field(default="500farm/vastai-exporter:latest", validator=_matches(_IMAGE, "an image reference"))
    runpod_exporter_image: str = attrs.field(default="ghcr.io/cryptolabsza/runpod-exporter:latest", validator=_matches(_IMAGE, "an image reference"))
    # naming (a second stack on one engine, e.g. for tests, takes a prefix and its own network)
    name_prefix: str = attrs.field(default="", validator=lambda i, a, v: v == "" or _matches(_SLUG, "lower-case letters, digits, '-', '_' or '.'")(i, a, v))
    network: str = attrs.field(default="cryptolabs", validator=_matches(_SLUG, "lower-case letters, digits, '-', '_' or '.'"))
    # from the fleet settings (dc_port), not set here
    app_port: int = _port(5001)

    def __attrs_post_init__(self) -> None:
        if self.tls == "letsencrypt" and not self.domain:
            _fail("domain", "Let's Encrypt needs the domain the certificate is for",
                  "set it with `dc-overview stack set domain monitor.example.net`")
        if self.tls != "off" and self.http_port == self.https_port:
            _fail("https_port", f"{self.https_port} is also the HTTP port")


STACK_OPTION_NAMES = tuple(a.name for a in attrs.fields(StackOptions) if a.name != "app_port")


def change_option(options: StackOptions, name: str, value: Any) -> StackOptions:
    if name not in STACK_OPTION_NAMES:
        _fail(name, "unknown stack option", "options: " + ", ".join(STACK_OPTION_NAMES))
    try:
        return attrs.evolve(options, **{name: value})
    except errors.DcOverviewError:
        raise
    except (TypeError, ValueError) as exc:
        raise errors.InvalidStackOption(name, f"{value!r} is not valid: {exc}") from None


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
        reload="prometheus", config_files=(f"{PROMETHEUS_CONFIG_DIR}/prometheus.yml",),
        labels=scope, optional=False,
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
