"""The monitoring stack's names and places: container and service names,
folders under the data dir and inside the containers, secret names, the
container label. Constants only, so that the adapters and the secrets'
use cases can name things without loading the stack's model (``stack.py``,
which re-exports all of them)."""

# The names other products know these containers by (cryptolabs-proxy's /api/services).
PROXY, APP, PROMETHEUS, GRAFANA = "cryptolabs-proxy", "dc-overview", "prometheus", "grafana"
WATCHTOWER, VASTAI, RUNPOD, IPMI_MONITOR = "watchtower", "vastai-exporter", "runpod-exporter", "ipmi-monitor"
ALERTMANAGER = "alertmanager"
IPMI_MONITOR_PORT, ALERTMANAGER_PORT = 5000, 9093

# Where things live, relative to the data dir (bind-mounted as directories, never
# single files: an atomic rename would leave a mounted file behind).
STACK_DIR = "stack"
PROMETHEUS_CONFIG_DIR = "stack/prometheus"
PROMETHEUS_TARGETS_DIR = "prometheus/targets"  # targets.TARGETS_FILE lives here
PROMETHEUS_RULES_DIR = "prometheus/rules"  # alert/recording rules, *.yml
PROXY_DIR = "stack/proxy"
GRAFANA_DIR = "stack/grafana"
ALERTMANAGER_DIR = "stack/alertmanager"  # alertmanager.yml (0600: it holds the webhook URL, SMTP details)

# ... and inside the containers.
PROMETHEUS_PREFIX = "/prometheus"
PROXY_CONF = "/etc/dc-proxy"
SECRETS_DIR = "/run/secrets"

# Secrets (SecretStore names); credentials.py lists and checks them.
VASTAI_KEY, RUNPOD_KEY, SCRAPE_TOKEN = "vastai_api_key", "runpod_api_key", "scrape_token"
GRAFANA_PASSWORD, REMOTE_WRITE_PASSWORD = "grafana_admin_password", "remote_write_password"
ALERT_WEBHOOK_TOKEN, SMTP_PASSWORD = "alert_webhook_token", "smtp_password"  # read by Alertmanager from files
STACK_SECRETS = (GRAFANA_PASSWORD, REMOTE_WRITE_PASSWORD, ALERT_WEBHOOK_TOKEN, SMTP_PASSWORD)

LABEL = "io.cryptolabs.dc-overview"
