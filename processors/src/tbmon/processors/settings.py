"""Settings of the processors host: ``PROCESSORS_<FIELD>`` variables (or ``.env``), defaults here.

The built-in plugins read their own settings (``PROCESSORS_REDACTION_*``,
``PROCESSORS_ANALYTICS_*``, ``PROCESSORS_EXECUTION_*``); see their modules.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from tbmon.settings import describe_settings_error

#: The built-in plugins, in the order the host runs them unless PROCESSORS_PLUGINS says otherwise.
#: Redaction comes first so that no later plugin (or its logs) sees a secret.
DEFAULT_PLUGINS = ("redaction", "trading_analytics", "execution_quality")

ENV_PREFIX = "PROCESSORS_"

S = TypeVar("S", bound=BaseSettings)

#: How pydantic-settings names the field whose value it could not decode (JSON, mostly).
_SOURCE_FIELD = re.compile(r'field "(?P<field>[^"]+)"')


class InvalidSettingsError(ValueError):
    """Settings that cannot be read; the message names the environment variables at fault."""


def split_list(value: Any) -> Any:
    """Accept ``a,b,c`` (as people write it in an environment variable) as well as a list."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ProcessorsSettings(BaseSettings):
    """What the host binds, where it forwards, and which plugins it runs in which order."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", validate_default=True
    )

    host: str = Field(default="127.0.0.1", description="Address both servers bind; loopback only.")
    port: int = Field(
        default=4319, gt=0, lt=65536, description="OTLP/gRPC port the collector sends to."
    )
    http_port: int = Field(
        default=8091, gt=0, lt=65536, description="Admin HTTP port: /health and /metrics."
    )
    forward_endpoint: str = Field(
        default="127.0.0.1:4320",
        min_length=3,
        description="host:port of the next hop (the collector's otlp/processed receiver).",
    )
    forward_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait for the next hop to accept one request."
    )
    plugins: Annotated[list[str], NoDecode] = Field(
        default=list(DEFAULT_PLUGINS),
        description="Entry-point names of the plugins to run, in order (comma-separated).",
    )
    plugin_budget_seconds: float = Field(
        default=0.5, gt=0, description="Time budget of one plugin call, unless plugin_budgets says."
    )
    plugin_budgets: dict[str, float] = Field(
        default_factory=dict, description='Per-plugin budgets, JSON: {"redaction": 2.0}.'
    )
    reject_on_failure: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description=(
            "Plugins whose failure fails the request (UNAVAILABLE, the collector retries) instead "
            "of passing the batch on unchanged (comma-separated). Unset: the plugins that declare "
            "themselves fail-closed (redaction); set but empty: none."
        ),
    )
    max_message_bytes: int = Field(
        default=64 * 2**20, gt=0, description="Largest OTLP request accepted (RESOURCE_EXHAUSTED)."
    )
    derive_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often plugins' derived metrics are collected and sent."
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="How long in-flight requests may finish on shutdown."
    )

    _split = field_validator("plugins", "reject_on_failure", mode="before")(split_list)

    @field_validator("plugin_budgets")
    @classmethod
    def _positive_budgets(cls, budgets: dict[str, float]) -> dict[str, float]:
        for name, seconds in budgets.items():
            if seconds <= 0:
                raise ValueError(f"the budget of {name} must be positive, got {seconds}")
        return budgets

    def budget(self, plugin: str) -> float:
        return self.plugin_budgets.get(plugin, self.plugin_budget_seconds)


def read_settings(cls: type[S], **values: Any) -> S:
    """``cls(**values)``, its errors raised as :class:`InvalidSettingsError` naming the variables.

    pydantic-settings raises SettingsError (naming only the field) for a value it cannot decode,
    such as malformed JSON; people set the variable, so that is what the message names.
    """
    prefix = str(cls.model_config.get("env_prefix", ""))
    try:
        return cls(**values)
    except ValidationError as error:
        raise InvalidSettingsError(describe_settings_error(error, prefix)) from error
    except SettingsError as error:
        found = _SOURCE_FIELD.search(str(error))
        variable = f"{prefix}{found['field'].upper()}" if found else prefix.rstrip("_")
        cause = f": {error.__cause__}" if error.__cause__ is not None else ""
        raise InvalidSettingsError(
            f"{variable}: cannot be decoded (not valid JSON?){cause}"
        ) from error
