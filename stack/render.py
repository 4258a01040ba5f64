"""Turn the Compose stack's Prometheus and Alertmanager configs into the local stack's.

Prometheus 2.42 and Alertmanager 0.25 do not expand environment variables, so one file cannot
serve both deployments the way the collector's config does. The files under ``stack/`` are
written for Compose (service names, container paths); here the local stack rewrites them:
every ``service:port`` of a Compose service becomes ``<bind host>:<local port>``, every
container mount path becomes the checkout's folder, and scrape targets that only exist in
Compose (cAdvisor, say) are left out.

Alertmanager's config is rendered for both deployments (``tbmon stack render alertmanager``):
the routes' timings come from the TBMON_ALERT_* settings, the bridge's bearer token and the SMTP
password go to files it reads (never into the config), and the email receiver exists only when
SMTP_HOST is set.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tbmon.settings import PROJECT_ROOT, StackSettings

if TYPE_CHECKING:
    from tbmon.stack.components import Layout

#: Compose ``service:port`` -> the StackSettings port field serving it in the local stack.
COMPOSE_ADDRESSES: dict[str, str] = {
    "otel-collector:8000": "metrics_port",
    "otel-collector:8888": "collector_telemetry_port",
    "otel-collector:13133": "collector_health_port",
    "prometheus:9090": "prometheus_port",
    "alertmanager:9093": "alertmanager_port",
    "node-exporter:9100": "node_exporter_port",
    "jaeger:14269": "jaeger_telemetry_port",
    "jaeger:16686": "jaeger_query_port",
    "loki:3100": "victorialogs_port",
    "health:8080": "health_port",
    "processors:8091": "processors_http_port",
    "alert-bridge:8090": "bridge_port",
}

#: Container paths of the Compose file's config mounts -> folders of the checkout.
COMPOSE_MOUNTS: dict[str, str] = {
    "/etc/prometheus/": "stack/prometheus/",
    "/etc/alertmanager/": "stack/alertmanager/",
}

_ADDRESS = re.compile(r"\b([a-z][a-z0-9-]*):(\d{2,5})\b")


def localize(value: Any, settings: StackSettings) -> Any:
    """Rewrite every Compose address and mount path inside a parsed YAML document."""
    if isinstance(value, dict):
        return {key: localize(item, settings) for key, item in value.items()}
    if isinstance(value, list):
        return [localize(item, settings) for item in value]
    if not isinstance(value, str):
        return value

    def address(match: re.Match[str]) -> str:
        port_field = COMPOSE_ADDRESSES.get(match.group(0))
        if port_field is None:
            return match.group(0)
        return f"{settings.bind_host}:{getattr(settings, port_field)}"

    text = _ADDRESS.sub(address, value)
    for container_path, folder in COMPOSE_MOUNTS.items():
        if text.startswith(container_path):
            text = str(PROJECT_ROOT / folder) + "/" + text[len(container_path) :]
    return text


def prometheus_document(settings: StackSettings) -> dict[str, Any]:
    """The local Prometheus config, as a document."""
    source = yaml.safe_load((PROJECT_ROOT / "stack/prometheus/prometheus.yml").read_text())
    jobs = []
    for job in source.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            static["targets"] = [t for t in static["targets"] if t in COMPOSE_ADDRESSES]
        job["static_configs"] = [s for s in job.get("static_configs", []) if s["targets"]]
        if job["static_configs"]:
            jobs.append(job)
    source["scrape_configs"] = jobs
    document: dict[str, Any] = localize(source, settings)
    return document


def prometheus_config(layout: Layout) -> None:
    _write(layout, "prometheus.yml", prometheus_document(layout.settings))


def alertmanager_config(layout: Layout) -> None:
    render_alertmanager(layout.settings, layout.data / "alertmanager.yml", compose=False)


# -- Alertmanager: timings, the bridge's token, the optional email receiver -------------------

#: Alertmanager reads the bridge's bearer token from this file (``credentials_file``).
BRIDGE_TOKEN_FILE = "alert-bridge-token"  # noqa: S105 - a file name
SMTP_PASSWORD_FILE = "smtp-password"  # noqa: S105 - a file name


class EmailSettings(BaseSettings):
    """The seed's SMTP_* variables; with SMTP_HOST set, critical alerts are also emailed."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    host: str | None = Field(default=None, validation_alias="SMTP_HOST")
    user: str | None = Field(default=None, validation_alias="SMTP_USER")
    password: SecretStr | None = Field(default=None, validation_alias="SMTP_PASSWORD")
    sender: str | None = Field(default=None, validation_alias="SMTP_FROM")
    to: str | None = Field(
        default=None,
        validation_alias="TBMON_ALERT_EMAIL_TO",
        description="Who receives alert emails (default: SMTP_FROM).",
    )

    @model_validator(mode="after")
    def _complete(self) -> EmailSettings:
        if self.host is None:
            return self
        if not re.fullmatch(r"[^\s:]+:\d{1,5}", self.host):
            raise ValueError(f"SMTP_HOST={self.host!r} must be host:port (smtp.gmail.com:587)")
        if not self.sender:
            raise ValueError("SMTP_HOST is set but SMTP_FROM is not: set the sender address")
        return self


class RenderError(ValueError):
    """A config cannot be rendered from these settings; the message names the variable."""


def email_settings() -> EmailSettings:
    try:
        return EmailSettings()
    except ValidationError as error:
        messages = [issue["msg"].removeprefix("Value error, ") for issue in error.errors()]
        raise RenderError("; ".join(messages)) from None


def bridge_token_file(settings: StackSettings) -> Path:
    """Where the local stack keeps the bridge's bearer token."""
    return settings.data_dir / "secrets" / BRIDGE_TOKEN_FILE


def bridge_token(layout: Layout) -> None:
    """Prepare the bridge: make sure its token file exists."""
    write_bridge_token(bridge_token_file(layout.settings))


def write_bridge_token(path: Path) -> None:
    """ALERT_BRIDGE_TOKEN into ``path`` (mode 0600), or a random token kept across restarts."""
    token = os.environ.get("ALERT_BRIDGE_TOKEN") or None
    if token is None and path.is_file() and path.read_text().strip():
        return
    _write_secret(path, token or secrets.token_urlsafe(32))


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value)
    path.chmod(0o600)


def alertmanager_document(
    settings: StackSettings, secrets_dir: Path, email: EmailSettings | None = None
) -> dict[str, Any]:
    """Alertmanager's config with this stack's timings, token file and (optional) email.

    The addresses stay Compose's; :func:`render_alertmanager` localizes them for the local
    stack. ``secrets_dir`` is where Alertmanager finds the token and SMTP password files.
    """
    email = email or email_settings()
    document: dict[str, Any] = yaml.safe_load(
        (PROJECT_ROOT / "stack/alertmanager/alertmanager.yml").read_text()
    )
    route = document["route"]
    for child in route["routes"]:
        severity = _severity_of(child)
        for timing in ("group_wait", "group_interval", "repeat_interval"):
            child[timing] = getattr(settings, f"alert_{severity}_{timing}")
    for receiver in document["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            authorization = webhook["http_config"]["authorization"]
            authorization["credentials_file"] = str(secrets_dir / BRIDGE_TOKEN_FILE)
    if email.host is not None:
        critical = next(child for child in route["routes"] if _severity_of(child) == "critical")
        route["routes"].insert(0, {**critical, "receiver": "email", "continue": True})
        config: dict[str, Any] = {
            "to": email.to or email.sender,
            "from": email.sender,
            "smarthost": email.host,
            "send_resolved": True,
        }
        if email.user:
            config["auth_username"] = email.user
        if email.password is not None:
            config["auth_password_file"] = str(secrets_dir / SMTP_PASSWORD_FILE)
        document["receivers"].append({"name": "email", "email_configs": [config]})
    return document


def _severity_of(route: dict[str, Any]) -> str:
    for matcher in route.get("matchers", []):
        match = re.fullmatch(r'severity\s*=\s*"?(critical|warning)"?', matcher)
        if match:
            return match.group(1)
    raise ValueError(f"stack/alertmanager/alertmanager.yml: a route without a severity: {route}")


def render_alertmanager(settings: StackSettings, out: Path, *, compose: bool) -> Path:
    """Write Alertmanager's config to ``out``, and the secret files it reads.

    Locally the secrets live in ``<data>/secrets``; for Compose they are written next to
    ``out``, which Alertmanager must see at the same path.
    """
    secrets_dir = out.parent if compose else bridge_token_file(settings).parent
    email = email_settings()
    document = alertmanager_document(settings, secrets_dir, email)
    write_bridge_token(secrets_dir / BRIDGE_TOKEN_FILE)
    if email.host is not None and email.password is not None:
        _write_secret(secrets_dir / SMTP_PASSWORD_FILE, email.password.get_secret_value())
    if not compose:
        document = localize(document, settings)
    where = "Docker Compose" if compose else "the local stack"
    _write_file(out, document, where)
    return out


def _write(layout: Layout, name: str, document: dict[str, Any]) -> None:
    _write_file(layout.data / name, document, "the local stack")


def _write_file(path: Path, document: dict[str, Any], where: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Rendered by tbmon from stack/ for {where}; edit the source, not this.\n"
    path.write_text(header + yaml.safe_dump(document, sort_keys=False))
