"""Use cases for write-only secrets: the Vast.ai and RunPod API keys, the
Bearer token Prometheus presents for the target list and /metrics, the
passwords and tokens the monitoring stack uses, and the key that signs the
web app's cookies. Each is a 0600 file in the data dir. Front ends may set,
replace or clear a secret and ask whether it is set; only the parts that use
a secret (the web app, the stack) read it."""

from __future__ import annotations

import secrets as random

from . import errors
from .ports import Deps, SecretStore
from .stack_names import (
    ALERT_WEBHOOK_TOKEN, GRAFANA_PASSWORD, REMOTE_WRITE_PASSWORD, RUNPOD_KEY, SCRAPE_TOKEN, SMTP_PASSWORD, VASTAI_KEY,
)

SESSION_KEY = "session_key"

# name -> what it is, for people; the session key is internal and not listed
SECRETS = {
    VASTAI_KEY: "Vast.ai API key (for the vastai-exporter)",
    RUNPOD_KEY: "RunPod API key (for the runpod-exporter)",
    SCRAPE_TOKEN: "Bearer token Prometheus must send for /api/prometheus/targets.json and /metrics",
    GRAFANA_PASSWORD: "Grafana's admin password (made on the first stack apply when not set)",
    REMOTE_WRITE_PASSWORD: "password for remote_write (basic auth, with remote_write_username)",
    ALERT_WEBHOOK_TOKEN: "Bearer token Alertmanager sends to alert_webhook_url",
    SMTP_PASSWORD: "password Alertmanager logs in to the SMTP server with (with alert_smtp_username)",
}
MAX_SECRET = 4096


def _store(deps: Deps) -> SecretStore:
    if deps.secrets is None:
        raise errors.OperationUnavailable("secrets", "open the fleet with dc_overview.open()")
    return deps.secrets


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in SECRETS:
        raise errors.InvalidSecretName(str(name), tuple(SECRETS))
    return name


def check_secret_value(value: object, field: str = "value") -> str:
    """One line of printable text without spaces (surrounding blanks are dropped)."""
    if not isinstance(value, str) or not value.strip():
        raise errors.InvalidInput(field, "a value is required")
    value = value.strip()
    if len(value) > MAX_SECRET:
        raise errors.InvalidInput(field, "is too long", f"at most {MAX_SECRET} characters")
    if not value.isprintable() or any(c.isspace() for c in value):
        raise errors.InvalidInput(field, "must be one word of printable characters (no spaces or line breaks)")
    return value


async def secret_status(deps: Deps) -> dict[str, bool]:
    """Each known secret's name and whether it is set — never its value."""
    present = set(_store(deps).names())
    return {name: name in present for name in SECRETS}


async def set_secret(deps: Deps, name: str, value: str) -> None:
    _store(deps).put(_check_name(name), check_secret_value(value))


async def clear_secret(deps: Deps, name: str) -> None:
    _store(deps).delete(_check_name(name))


async def generate_scrape_token(deps: Deps) -> str:
    """A new random scrape token (replacing any); returned once to give to Prometheus."""
    token = random.token_urlsafe(32)
    _store(deps).put(SCRAPE_TOKEN, token)
    return token


async def read_secret(deps: Deps, name: str) -> str | None:
    """A secret's value, for the code that uses it. Never show it to a person."""
    return _store(deps).get(_check_name(name))


async def session_key(deps: Deps) -> bytes:
    """The key that signs the web app's cookies, made on first use and kept,
    so that a restart keeps people logged in."""
    store = _store(deps)
    try:
        key = bytes.fromhex(store.get(SESSION_KEY) or "")
    except ValueError:  # damaged: a new key (everyone logs in again)
        key = b""
    if len(key) < 32:
        key = random.token_bytes(32)
        store.put(SESSION_KEY, key.hex())
    return key
