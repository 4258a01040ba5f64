"""Settings of the processors host: ``PROCESSORS_<FIELD>`` variables (tbmon's settings dialect,
:mod:`tbmon.settings`: the environment, then the one ``.env``), read with ``read_settings``.

Its ports and the next hop default to the local stack's (``TBMON_PROCESSORS_PORT``,
``TBMON_PROCESSORS_HTTP_PORT``, ``TBMON_PROCESSORS_PROCESSED_PORT``...: StackSettings). The built-in
plugins read their own settings (``PROCESSORS_REDACTION_*``, ``PROCESSORS_ANALYTICS_*``,
``PROCESSORS_EXECUTION_*``); see their modules.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from tbmon.settings import TbmonSettings, get_stack_settings

#: The built-in plugins, in the order the host runs them unless PROCESSORS_PLUGINS says otherwise.
#: Redaction comes first so that no later plugin (or its logs) sees a secret.
DEFAULT_PLUGINS = ("redaction", "trading_analytics", "execution_quality")

ENV_PREFIX = "PROCESSORS_"


def split_list(value: Any) -> Any:
    """Accept ``a,b,c`` (as people write it in an environment variable) as well as a list."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _forward_endpoint() -> str:
    stack = get_stack_settings()
    return f"{stack.bind_host}:{stack.processed_port}"


class ProcessorsSettings(TbmonSettings):
    """What the host binds, where it forwards, and which plugins it runs in which order."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    host: str = Field(
        default_factory=lambda: get_stack_settings().bind_host,
        description="Address both servers bind; the stack's (TBMON_BIND_HOST), loopback.",
    )
    port: int = Field(
        default_factory=lambda: get_stack_settings().processors_port,
        gt=0,
        lt=65536,
        description="OTLP/gRPC port the collector sends to (TBMON_PROCESSORS_PORT).",
    )
    http_port: int = Field(
        default_factory=lambda: get_stack_settings().processors_http_port,
        gt=0,
        lt=65536,
        description="Admin HTTP port: /health and /metrics (TBMON_PROCESSORS_HTTP_PORT).",
    )
    forward_endpoint: str = Field(
        default_factory=_forward_endpoint,
        min_length=3,
        description="host:port of the next hop: the collector's otlp/processed receiver "
        "(TBMON_PROCESSED_PORT).",
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
