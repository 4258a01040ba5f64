"""The health service's settings: what to check, how often, how long to wait, who may see details.

tbmon's settings dialect (:mod:`tbmon.settings`): every field is read from
``HEALTH_<FIELD NAME IN CAPITALS>`` (the environment, then the one ``.env``), except the two the
seed names: ``DATABASE_URL`` and ``EXCHANGE_API_URL``. The URL defaults point at the local stack,
on its port fields (``TBMON_*_PORT``, StackSettings); Docker Compose sets them explicitly.
Construction validates everything, so a bad value stops the service at start-up with a message
naming the variable (``read_settings(HealthSettings)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from tbmon.settings import TbmonSettings, get_stack_settings

#: Environment variable prefix of the health service's own settings.
ENV_PREFIX = "HEALTH_"
#: The seed's variable for the trading bot's PostgreSQL database.
DATABASE_URL = "DATABASE_URL"
#: The seed's variable for the exchange API the bot trades on.
EXCHANGE_API_URL = "EXCHANGE_API_URL"
#: The alert bridge's own bearer token, read when HEALTH_ALERT_BRIDGE_TOKEN is unset.
ALERT_BRIDGE_TOKEN = "ALERT_BRIDGE_TOKEN"  # noqa: S105 - a variable name, not a secret

#: A shorter HEALTH_TOKEN is refused: it could be guessed.
MIN_TOKEN_LENGTH = 16


def _stack_url(port_field: str, path: str = "") -> Any:
    """A default URL: the local stack's ``port_field`` (a StackSettings field) on its bind host."""

    def default() -> str:
        stack = get_stack_settings()
        port = getattr(stack, port_field)
        assert isinstance(port, int), port_field
        return stack.url(port, path)

    return default


def _names(value: Any) -> Any:
    """``a, b,c`` -> ``["a", "b", "c"]`` (a list passes through)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class HealthSettings(TbmonSettings):
    """Configuration of ``tbmon health serve``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,  # VAR= (Compose's ${VAR:-}) means unset, not an empty value
        validate_by_name=True,
        validate_by_alias=True,
    )

    host: str = Field(
        default_factory=lambda: get_stack_settings().bind_host,
        description="Address to bind; loopback by default (Compose sets 0.0.0.0).",
    )
    port: int = Field(
        default_factory=lambda: get_stack_settings().health_port,
        ge=1,
        le=65535,
        description="Port to serve on (TBMON_HEALTH_PORT in the local stack, else 8080).",
    )
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token for /health/detailed and /health/component/{name}. Unset: "
        "those endpoints answer loopback clients only.",
    )
    interval: float = Field(
        default=5.0, gt=0, description="Seconds between two runs of the same check."
    )
    timeout: float = Field(default=2.0, gt=0, description="Seconds a check may take by default.")
    timeouts: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict,
        description="Per-check timeouts overriding HEALTH_TIMEOUT: `database=1,exchange_api=5`.",
    )
    checks: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description="Checks to run, comma-separated. Unset: every installed check whose "
        "settings are present (database needs DATABASE_URL, exchange_api EXCHANGE_API_URL).",
    )
    critical: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["database", "collector", "prometheus"],
        description="Checks whose failure makes the service unready (503) and unhealthy; any "
        "other failing check only makes it degraded.",
    )

    database_url: SecretStr | None = Field(
        default=None,
        validation_alias=DATABASE_URL,
        description="postgresql://user:password@host:5432/db of the bot's database.",
    )
    database_pool_size: int = Field(
        default=2,
        ge=1,
        le=20,
        description="Most connections the database check's pool opens (it keeps at least one "
        "open; it grows only while a lost connection is being replaced).",
    )
    exchange_api_url: str | None = Field(
        default=None,
        validation_alias=EXCHANGE_API_URL,
        description="A URL of the exchange API that answers GET cheaply (its ping or time "
        "endpoint).",
    )
    collector_url: str = Field(
        default_factory=_stack_url("collector_health_port", "/"),
        description="The collector's health_check extension.",
    )
    collector_metrics_url: str = Field(
        default_factory=_stack_url("collector_telemetry_port", "/metrics"),
        description="The collector's own telemetry (export failures and queues).",
    )
    prometheus_url: str = Field(
        default_factory=_stack_url("prometheus_port"),
        description="Prometheus base URL (/-/ready is checked; the bot check queries it).",
    )
    alertmanager_url: str = Field(
        default_factory=_stack_url("alertmanager_port"),
        description="Alertmanager base URL (/-/ready is checked).",
    )
    jaeger_url: str = Field(
        default_factory=_stack_url("jaeger_health_port", "/status"),
        description="Jaeger's health endpoint.",
    )
    log_store_url: str = Field(
        default_factory=_stack_url("victorialogs_port", "/health"),
        description="The log store's health endpoint: VictoriaLogs /health, Loki /ready.",
    )
    alert_bridge_url: str = Field(
        default_factory=_stack_url("bridge_port"),
        description="The Telegram alert bridge's base URL (/health is checked).",
    )
    alert_bridge_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(f"{ENV_PREFIX}{ALERT_BRIDGE_TOKEN}", ALERT_BRIDGE_TOKEN),
        description="The bridge's ALERT_BRIDGE_TOKEN, so the check reads its outbox backlog "
        "(/health/detailed). Unset: only its constant /health is checked.",
    )
    processors_url: str = Field(
        default_factory=_stack_url("processors_http_port"),
        description="The processors host's admin base URL (/health is checked).",
    )

    bot_degraded_after: float = Field(
        default=60.0, gt=0, description="Seconds without a bot heartbeat before degraded."
    )
    bot_unhealthy_after: float = Field(
        default=300.0, gt=0, description="Seconds without a bot heartbeat before unhealthy."
    )
    collector_queue_degraded_percent: float = Field(
        default=80.0, ge=0, le=100, description="Exporter queue fill that makes it degraded."
    )
    cpu_degraded_percent: float = Field(default=90.0, ge=0, le=100, description="CPU use.")
    memory_degraded_percent: float = Field(default=90.0, ge=0, le=100, description="Memory use.")
    disk_degraded_percent: float = Field(default=90.0, ge=0, le=100, description="Disk use.")
    disk_path: Path = Field(default=Path("/"), description="Filesystem the disk check watches.")

    @field_validator("checks", "critical", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        return _names(value)

    @field_validator("timeouts", mode="before")
    @classmethod
    def _parse_timeouts(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        parsed: dict[str, str] = {}
        for item in _names(value):
            name, separator, seconds = item.partition("=")
            if not separator or not name.strip():
                raise ValueError(f"expected name=seconds, got {item!r}")
            parsed[name.strip()] = seconds.strip()
        return parsed

    @field_validator("timeouts")
    @classmethod
    def _positive_timeouts(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name, seconds in value.items() if not seconds > 0]
        if bad:
            raise ValueError(f"timeouts must be positive seconds: {', '.join(bad)}")
        return value

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_TOKEN_LENGTH} characters (for example the output of "
                "`openssl rand -hex 32`)"
            )
        return value

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url(cls, value: Any) -> Any:
        if value is None:
            return None
        raw = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        parts = urlsplit(raw)
        if parts.scheme not in ("postgresql", "postgres") or not (parts.hostname or parts.path):
            # Never echo the value: it holds the password.
            raise ValueError("must be a postgresql://user:password@host:port/database URL")
        return value

    @field_validator(
        "exchange_api_url",
        "collector_url",
        "collector_metrics_url",
        "prometheus_url",
        "alertmanager_url",
        "jaeger_url",
        "log_store_url",
        "alert_bridge_url",
        "processors_url",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("disk_path")
    @classmethod
    def _existing_path(cls, value: Path) -> Path:
        if not value.exists():
            raise ValueError(f"{value} does not exist")
        return value

    @model_validator(mode="after")
    def _bot_thresholds_in_order(self) -> HealthSettings:
        if self.bot_degraded_after >= self.bot_unhealthy_after:
            raise ValueError(
                f"{ENV_PREFIX}BOT_DEGRADED_AFTER ({self.bot_degraded_after:g}) must be below "
                f"{ENV_PREFIX}BOT_UNHEALTHY_AFTER ({self.bot_unhealthy_after:g})"
            )
        return self

    def timeout_for(self, name: str) -> float:
        """The budget of one check: its entry in ``HEALTH_TIMEOUTS``, else ``HEALTH_TIMEOUT``."""
        return self.timeouts.get(name, self.timeout)

    def secrets(self) -> list[str]:
        """Values that must never appear in any answer or log line."""
        found = []
        for token in (self.token, self.alert_bridge_token):
            if token is not None:
                found.append(token.get_secret_value())
        if self.database_url is not None:
            password = urlsplit(self.database_url.get_secret_value()).password
            if password:
                found += [password, unquote(password)]  # as written and percent-decoded
        return found
