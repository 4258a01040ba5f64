"""tbmon's one settings dialect, and the settings of the local stack (``TBMON_*``).

Every settings class of every component derives from :class:`TbmonSettings` and is read with
:func:`read_settings`:

- **where values come from**: init arguments, then the environment, then one ``.env`` file: the
  file named by ``TBMON_ENV_FILE``, else ``.env`` in the working directory (:func:`env_file`);
- **names**: each component has its env prefix (``TBMON_`` here, ``PROCESSORS_``, ``HEALTH_``,
  ``ALERT_BRIDGE_``, ...); a field with a ``validation_alias`` (the seed's ``DATABASE_URL``,
  ``TELEGRAM_BOT_TOKEN``...) is read from that variable instead (:meth:`TbmonSettings.variable`);
- **validation at construction**: defaults included, so a bad value stops a service at start-up;
- **one error**: :func:`read_settings` turns pydantic's ValidationError and pydantic-settings'
  SettingsError (a value it cannot decode as JSON) into :class:`InvalidSettingsError`, whose
  message names the environment variable of each problem and never its value (it may be a
  secret: secrets are SecretStr fields). The bot side, which must start whatever its environment
  says, uses :func:`read_settings_or_defaults` on top of it: invalid values are named in one
  warning and their defaults used.

The stack's ports are :class:`StackSettings` fields (``TBMON_<FIELD>``); every component finds a
stack port there, through :func:`get_stack_settings`, and nowhere else. The collector's
``otel-collector/src/tbmon/collector/config.yaml`` reads the same variable names, so one setting
moves a port for every component at once.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import (
    AliasChoices,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

#: The variable naming the one ``.env`` file every settings class reads (default: ``.env`` in
#: the working directory).
ENV_FILE = "TBMON_ENV_FILE"


def env_file() -> Path:
    """The ``.env`` file tbmon reads: ``$TBMON_ENV_FILE``, else ``.env`` in the working directory.

    A missing file is no error. Values in the environment outrank the file's.
    """
    return Path(os.environ.get(ENV_FILE) or ".env")


class Problem(NamedTuple):
    """One thing wrong with the settings: the variable to fix and what is wrong with its value."""

    variable: str
    """The environment variable (empty for a problem that names its variables itself)."""
    message: str
    field: str | None = None
    """The settings field at fault, when there is one."""

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}" if self.variable else self.message


class InvalidSettingsError(ValueError):
    """Settings that cannot be read; the message names each environment variable at fault and
    what is wrong with its value, never the value itself."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(problem) for problem in problems))


class TbmonSettings(BaseSettings):
    """The base of every tbmon settings class: subclasses set ``env_prefix`` (their component's)
    in their ``model_config`` and nothing about where values come from."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file is looked up at each construction: TBMON_ENV_FILE may change after import.
        dotenv = DotEnvSettingsSource(settings_cls, env_file=env_file())
        return init_settings, env_settings, dotenv, file_secret_settings

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable that sets ``field``: its alias, else prefix + NAME."""
        alias = _alias(cls.model_fields[field])
        return alias or f"{cls.model_config.get('env_prefix', '')}{field.upper()}"

    @classmethod
    def _field_at(cls, location: str) -> str | None:
        """The field an error location names: a field name, or a variable (an alias)."""
        if location in cls.model_fields:
            return location
        for name, info in cls.model_fields.items():
            alias = info.validation_alias
            choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
            if location in choices:
                return name
        return None


S = TypeVar("S", bound=TbmonSettings)

#: How pydantic-settings names the field whose value it could not decode (JSON, mostly).
_UNDECODABLE = re.compile(r'field "(?P<field>[^"]+)"')


def explain(error: ValidationError | SettingsError, cls: type[TbmonSettings]) -> list[Problem]:
    """The one explainer: each problem of ``error`` (raised building ``cls``) with the variable
    to fix and what is wrong, never the value (pydantic's messages leave it out; tbmon's
    validators never write a secret's)."""
    if isinstance(error, SettingsError):
        found = _UNDECODABLE.search(str(error))
        field = cls._field_at(found["field"]) if found else None
        if field is None:
            return [Problem("", f"settings cannot be decoded: {error}")]
        cause = f" ({error.__cause__})" if error.__cause__ is not None else ""
        return [Problem(cls.variable(field), f"cannot be decoded as JSON{cause}", field)]
    problems = []
    for item in error.errors():
        location = [str(part) for part in item["loc"]]
        message = str(item["msg"]).removeprefix("Value error, ")
        if not location:  # a check across fields: its message names the variables
            problems.append(Problem("", message))
            continue
        field = cls._field_at(location[0])
        variable = cls.variable(field) if field else location[0]
        if location[1:]:
            message = f"{'.'.join(location[1:])}: {message}"
        problems.append(Problem(variable, message, field))
    return problems


def read_settings(cls: type[S], **values: Any) -> S:
    """``cls(**values)`` (init values outrank the environment), or :class:`InvalidSettingsError`
    naming the variables at fault. Every CLI and service reads its settings through this."""
    try:
        return cls(**values)
    except (ValidationError, SettingsError) as error:
        # From None: the original error's text holds the values, and they may be secrets.
        raise InvalidSettingsError(explain(error, cls)) from None


def read_settings_or_defaults(cls: type[S], warn: Callable[[str], None]) -> S:
    """:func:`read_settings`, but each invalid value is replaced by its default and all of them
    are named in one call of ``warn`` (the bot side: a bot starts whatever its environment says).
    A default can make another value invalid (a check across fields): further rounds take the
    defaults of those too, and a check no field's default settles takes every default."""
    defaults: dict[str, Any] = {}  # by field name
    problems: list[Problem] = []
    while True:
        try:
            settings = read_settings(
                cls, **{_init_name(cls, field): value for field, value in defaults.items()}
            )
            break
        except InvalidSettingsError as error:
            problems += error.problems
            fields = {p.field for p in error.problems if p.field} - defaults.keys()
            if not fields:
                fields = set(cls.model_fields) - defaults.keys()
                if not fields:
                    raise
            defaults |= {field: _default(cls, field) for field in fields}
    if problems:
        warn("; ".join(dict.fromkeys(str(problem) for problem in problems)))
    return settings


def _default(cls: type[TbmonSettings], field: str) -> Any:
    return cls.model_fields[field].get_default(call_default_factory=True, validated_data={})


def _init_name(cls: type[TbmonSettings], field: str) -> str:
    """The keyword that sets ``field`` at construction: its alias if it has one."""
    return _alias(cls.model_fields[field]) or field


def _alias(info: FieldInfo) -> str | None:
    """A field's (first) validation alias: the environment variable it is read from."""
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return next((choice for choice in alias.choices if isinstance(choice, str)), None)
    return alias if isinstance(alias, str) else None


#: A Prometheus/Alertmanager duration such as 30s, 5m, 1h30m.
Duration = Annotated[str, Field(pattern=r"^([0-9]+(ms|s|m|h|d|w|y))+$")]
#: A threshold on a fraction (0.25 = 25%) and on a 0-100 percentage.
Fraction = Annotated[float, Field(gt=0, le=1)]
Percent = Annotated[float, Field(gt=0, le=100)]

#: The thresholds (``StackSettings.threshold_<name>``) that TBMON_THRESHOLD_BY_STRATEGY may set
#: per strategy: those of alerts on a strategy's own series.
STRATEGY_THRESHOLDS = (
    "drawdown_warning",
    "drawdown_critical",
    "var_warning",
    "var_critical",
    "leverage_warning",
    "concentration_warning",
    "execution_failures_critical",
)
#: (warning, critical, fires above?) pairs of one alert: the warning comes before the critical.
THRESHOLD_PAIRS = (
    ("drawdown_warning", "drawdown_critical", True),
    ("var_warning", "var_critical", True),
    ("accuracy_warning", "accuracy_critical", False),
)
#: What a strategy name may be to be set per strategy (it is written into PromQL).
STRATEGY_NAME = re.compile(r"[A-Za-z0-9_.:/ -]{1,128}")


def _check_bounds(field: FieldInfo, value: float, where: str) -> None:
    """``value`` within the bounds of the threshold ``field``, or a ValueError naming ``where``."""
    try:
        TypeAdapter(Annotated[float, *field.metadata]).validate_python(value)
    except ValidationError as error:
        raise ValueError(f"{where}: {error.errors()[0]['msg']}") from None


def _xdg(variable: str, fallback: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / fallback)


class StackSettings(TbmonSettings):
    """Directories and ports of the local stack (``tbmon stack``)."""

    model_config = SettingsConfigDict(env_prefix="TBMON_")

    data_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share") / "tbmon",
        description="Every component's data, logs and pid files, one folder each.",
    )
    cache_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "tbmon",
        description="Binaries built by `make install` (keyed by version) and Go's tool cache.",
    )
    bind_host: str = Field(
        default="127.0.0.1", description="Address every local component binds; loopback only."
    )

    @field_validator("bind_host")
    @classmethod
    def _loopback_only(cls, host: str) -> str:
        # Prometheus's admin API, Alertmanager and Jaeger have no authentication of their own.
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"{host!r} is not a loopback address: the local stack's services have no "
                "authentication, so they bind 127.0.0.1 (or another loopback address); to serve "
                "other machines, run the Compose stack (docs/compose.md)"
            )
        return host

    ready_timeout: float = Field(
        default=60.0, gt=0, description="Seconds `tbmon stack up` waits for all components."
    )

    # The collector.
    otlp_grpc_port: int = Field(default=4317, description="OTLP/gRPC receiver for bots.")
    otlp_http_port: int = Field(default=4318, description="OTLP/HTTP receiver for bots.")
    metrics_port: int = Field(default=8000, description="Prometheus exporter (/metrics).")
    collector_telemetry_port: int = Field(default=8888, description="Collector's own metrics.")
    collector_health_port: int = Field(default=13133, description="health_check extension.")
    collector_zpages_port: int = Field(default=55679, description="zpages extension.")
    processed_port: int = Field(
        default=4320, description="OTLP/gRPC receiver for data coming back from the processors."
    )

    # The processors host (tbmon processors serve), between the collector's two stages.
    processors_port: int = Field(
        default=4319, description="Processors host OTLP/gRPC (the collector's ingest sends here)."
    )
    processors_http_port: int = Field(
        default=8091, description="Processors host admin HTTP: /health and /metrics."
    )

    # Prometheus, Alertmanager, node exporter (Debian packages).
    prometheus_port: int = Field(default=9090, description="Prometheus web and API.")
    prometheus_retention_time: str = Field(default="15d", description="TSDB retention time.")
    prometheus_retention_size: str = Field(default="5GB", description="TSDB retention size.")
    alertmanager_port: int = Field(default=9093, description="Alertmanager web and API.")
    node_exporter_port: int = Field(default=9100, description="node exporter /metrics.")

    # Alert routing, rendered into Alertmanager's config (the seed's "Alert Tuning"): critical
    # alerts go out fast and remind hourly, warnings are grouped longer and remind less often.
    alert_critical_group_wait: Duration = Field(default="10s", description="Critical group_wait.")
    alert_critical_group_interval: Duration = Field(
        default="1m", description="Critical group_interval."
    )
    alert_critical_repeat_interval: Duration = Field(
        default="1h", description="Critical repeat_interval."
    )
    alert_warning_group_wait: Duration = Field(default="30s", description="Warning group_wait.")
    alert_warning_group_interval: Duration = Field(
        default="5m", description="Warning group_interval."
    )
    alert_warning_repeat_interval: Duration = Field(
        default="4h", description="Warning repeat_interval."
    )

    # Alert thresholds, rendered into the rules of tbmon/stack/prometheus/rules/ (render.py) and
    # into the dashboards' panel thresholds: the seed's values are only defaults. Fractions are
    # fractions (0.25 = 25%); *_percent are 0-100. THRESHOLD_BY_STRATEGY overrides the
    # per-strategy ones (STRATEGY_THRESHOLDS) for named strategies, or turns them off (null).
    threshold_drawdown_warning: Fraction = Field(
        default=0.15, description="HighDrawdown warning: current drawdown above this."
    )
    threshold_drawdown_critical: Fraction = Field(
        default=0.25, description="HighDrawdown critical: current drawdown above this."
    )
    threshold_var_warning: Fraction = Field(
        default=0.08, description="HighVaR warning (the risk limit approaching): VaR 95% above."
    )
    threshold_var_critical: Fraction = Field(
        default=0.10, description="HighVaR critical: VaR 95% above this share of the portfolio."
    )
    threshold_leverage_warning: float = Field(
        default=3.0, gt=0, description="HighLeverage warning: gross exposure over equity above."
    )
    threshold_concentration_warning: Fraction = Field(
        default=0.5,
        description="HighPositionConcentration warning: the largest position's share of gross "
        "exposure above this (1 never fires: a one-position bot).",
    )
    threshold_execution_failures_critical: Fraction = Field(
        default=0.10, description="TradingExecutionFailures: share of orders failed over 5 min."
    )
    threshold_api_latency_warning_seconds: float = Field(
        default=1.0, gt=0, description="SlowAPIResponses: p95 of an exchange endpoint above."
    )
    threshold_accuracy_warning: Fraction = Field(
        default=0.60, description="LowModelAccuracy warning: prediction accuracy below this."
    )
    threshold_accuracy_critical: Fraction = Field(
        default=0.50, description="LowModelAccuracy critical: prediction accuracy below this."
    )
    threshold_cpu_warning_percent: Percent = Field(
        default=80, description="HighCPUUsage: a bot host's CPU use above this."
    )
    threshold_memory_warning_percent: Percent = Field(
        default=85, description="HighMemoryUsage: a bot host's memory use above this."
    )
    threshold_disk_warning_percent: Percent = Field(
        default=85, description="HighDiskUsage: a bot host's disk use above this."
    )
    threshold_by_strategy: Annotated[dict[str, dict[str, float | None]], NoDecode] = Field(
        default_factory=dict,
        description='Per-strategy thresholds, JSON: {"hodl": {"concentration_warning": null}, '
        '"levered": {"leverage_warning": 10}}; null turns that alert off for the strategy.',
    )

    @field_validator("threshold_by_strategy", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"not JSON ({error.msg} at character {error.pos}); write it as "
                    '{"STRATEGY": {"concentration_warning": null, "leverage_warning": 10}}'
                ) from None
        return value

    @field_validator("threshold_by_strategy")
    @classmethod
    def _strategy_thresholds(
        cls, overrides: dict[str, dict[str, float | None]]
    ) -> dict[str, dict[str, float | None]]:
        for strategy, thresholds in overrides.items():
            if not STRATEGY_NAME.fullmatch(strategy):
                raise ValueError(
                    f"strategy {strategy!r}: a strategy name is letters, digits and . _ : / - "
                    "(up to 128)"
                )
            for name, value in thresholds.items():
                if name not in STRATEGY_THRESHOLDS:
                    raise ValueError(
                        f"strategy {strategy!r}: {name!r} cannot be set per strategy; one of "
                        f"{', '.join(STRATEGY_THRESHOLDS)}"
                    )
                field = cls.model_fields[f"threshold_{name}"]
                if value is not None:
                    _check_bounds(field, value, f"strategy {strategy!r}: {name}")
        return overrides

    @model_validator(mode="after")
    def _warnings_come_first(self) -> StackSettings:
        """A warning threshold the critical one has already passed would never warn."""
        for strategy in ["", *self.threshold_by_strategy]:
            values = self.thresholds(strategy)
            for warning, critical, above in THRESHOLD_PAIRS:
                low, high = (values[warning], values[critical])
                if low is None or high is None:
                    continue
                if (low >= high) if above else (low <= high):
                    where = f" (TBMON_THRESHOLD_BY_STRATEGY, {strategy!r})" if strategy else ""
                    raise ValueError(
                        f"TBMON_THRESHOLD_{warning.upper()} ({low:g}) must be "
                        f"{'below' if above else 'above'} TBMON_THRESHOLD_{critical.upper()} "
                        f"({high:g}){where}: a warning comes before its critical alert"
                    )
        return self

    def thresholds(self, strategy: str = "") -> dict[str, float | None]:
        """Every threshold by name (``drawdown_warning``...), as it applies to ``strategy``
        (``""``: the deployment's); None where the strategy turned the alert off."""
        values: dict[str, float | None] = {
            name.removeprefix("threshold_"): value
            for name, value in self.model_dump().items()
            if name.startswith("threshold_") and name != "threshold_by_strategy"
        }
        values.update(self.threshold_by_strategy.get(strategy, {}))
        return values

    # The Telegram alert bridge, and the Telegram test server used without TELEGRAM_BOT_TOKEN.
    bridge_port: int = Field(default=8090, description="Alert bridge (webhook, /metrics).")
    telegram_test_port: int = Field(default=8092, description="Telegram Bot API test server.")

    # Jaeger v2 (its OTLP ports are moved off the collector's 4317/4318).
    jaeger_otlp_grpc_port: int = Field(default=14317, description="Jaeger's OTLP/gRPC receiver.")
    jaeger_query_port: int = Field(default=16686, description="Jaeger query HTTP API.")
    jaeger_query_grpc_port: int = Field(default=16685, description="Jaeger query gRPC API.")
    jaeger_health_port: int = Field(default=14133, description="Jaeger health endpoint.")
    jaeger_telemetry_port: int = Field(default=14269, description="Jaeger's own metrics.")

    # VictoriaLogs, the local log store (Loki in Compose).
    victorialogs_port: int = Field(default=9428, description="VictoriaLogs HTTP API.")
    log_retention: str = Field(default="7d", description="Log retention period.")

    # tbmon's own services.
    health_port: int = Field(default=8080, description="Health service (tbmon health serve).")

    @field_validator("*")
    @classmethod
    def _a_tcp_port(cls, value: object, info: ValidationInfo) -> object:
        port = (info.field_name or "").endswith("_port")
        if port and isinstance(value, int) and not 0 < value < 65536:
            raise ValueError(f"{value} is not a TCP port (1-65535)")
        return value

    @model_validator(mode="after")
    def _ports_are_distinct(self) -> StackSettings:
        seen: dict[int, str] = {}
        for name, port in self.ports().items():
            if port in seen:
                raise ValueError(
                    f"{self.variable(name)} and {self.variable(seen[port])} are both {port}; "
                    "every component needs its own port"
                )
            seen[port] = name
        return self

    def url(self, port: int, path: str = "") -> str:
        """An ``http://`` URL on this stack's bind host."""
        return f"http://{self.bind_host}:{port}{path}"

    def environment(self) -> dict[str, str]:
        """Each setting as its ``TBMON_*`` variable: a process given these sees this stack."""
        return {
            f"TBMON_{name.upper()}": json.dumps(value) if isinstance(value, dict) else str(value)
            for name, value in self.model_dump().items()
        }

    def ports(self) -> dict[str, int]:
        """Every port setting by field name, for conflict checks and for tests."""
        return {
            name: value
            for name, value in self.model_dump().items()
            if name.endswith("_port") and isinstance(value, int)
        }


@lru_cache(maxsize=1)
def get_stack_settings() -> StackSettings:
    """The process-wide stack settings (or :class:`InvalidSettingsError`); tests build their own
    ``StackSettings`` instead."""
    return read_settings(StackSettings)
