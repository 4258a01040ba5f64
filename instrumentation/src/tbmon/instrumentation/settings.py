"""The instrumentation's own settings (``TBMON_*`` and ``EXCHANGE_API_URL``), read once at start-up.

tbmon's settings dialect (:mod:`tbmon.settings`: the environment, then the one ``.env``). A bot
must keep trading whatever its environment says, so an invalid value never stops it: it is
named in one warning, and its default is used (:func:`load_settings`, on
:func:`tbmon.settings.read_settings_or_defaults`). The same holds for the
numeric ``OTEL_*`` variables, which the SDK parses itself and whose invalid values would leave
the bot with no telemetry at all (:func:`repair_otel_environment`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import MutableMapping
from functools import lru_cache
from pathlib import Path

from pydantic import AnyHttpUrl, Field, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from tbmon import analytics
from tbmon.instrumentation import environment_variables as env
from tbmon.marks import state_directory
from tbmon.settings import TbmonSettings, read_settings_or_defaults

logger = logging.getLogger(__name__)


def default_state_dir() -> str:
    """``$XDG_STATE_HOME/tbmon``, else ``~/.local/state/tbmon``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "tbmon")


class InstrumentationSettings(TbmonSettings):
    """What :mod:`tbmon.instrumentation` reads from the environment (or ``.env``)."""

    model_config = SettingsConfigDict(env_ignore_empty=True, populate_by_name=False)

    strategy: str = Field(default="default", min_length=1, validation_alias=env.TBMON_STRATEGY)
    environment: str = Field(
        default="development", min_length=1, validation_alias=env.TBMON_ENVIRONMENT
    )
    bot_version: str | None = Field(default=None, validation_alias=env.TBMON_BOT_VERSION)
    exchange_api_url: AnyHttpUrl | None = Field(default=None, validation_alias=env.EXCHANGE_API_URL)
    exchange: str | None = Field(default=None, validation_alias=env.TBMON_EXCHANGE)
    latency_probe_interval: float = Field(
        default=15.0,
        ge=0.1,
        le=86400,
        allow_inf_nan=False,
        validation_alias=env.TBMON_LATENCY_PROBE_INTERVAL,
    )
    analytics_period_seconds: float | None = Field(
        default=None,
        ge=0.001,
        le=366 * 86400,
        allow_inf_nan=False,
        validation_alias=env.TBMON_ANALYTICS_PERIOD_SECONDS,
    )
    periods_per_year: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, validation_alias=env.TBMON_PERIODS_PER_YEAR
    )
    analytics_window: int = Field(
        default=analytics.DEFAULT_WINDOW, ge=2, validation_alias=env.TBMON_ANALYTICS_WINDOW
    )
    risk_free_rate: float = Field(
        default=0.0, gt=-1, lt=10, allow_inf_nan=False, validation_alias=env.TBMON_RISK_FREE_RATE
    )
    state_dir: str = Field(
        default_factory=default_state_dir,
        min_length=1,
        validation_alias=env.TBMON_STATE_DIR,
    )

    @field_validator("periods_per_year")
    @classmethod
    def _needs_a_period(cls, per_year: float | None, info: ValidationInfo) -> float | None:
        analytics.check_period(info.data.get("analytics_period_seconds"), per_year)
        return per_year

    def return_grid(self) -> analytics.ReturnGrid:
        """The grid the derived metrics sample the bot's values on."""
        return analytics.ReturnGrid(
            self.analytics_period_seconds,
            self.periods_per_year,
            self.analytics_window,
            self.risk_free_rate,
        )

    def state_path(self) -> Path | None:
        """The state directory (:envvar:`TBMON_STATE_DIR`), None when it is ``off``."""
        return state_directory(self.state_dir)

    @property
    def exchange_label(self) -> str | None:
        """The ``exchange`` label of the latency probe: set, or the API URL's host name."""
        if self.exchange:
            return self.exchange
        return self.exchange_api_url.host if self.exchange_api_url else None


def load_settings() -> InstrumentationSettings:
    """The settings, with each invalid variable named in one warning and its default used."""
    return read_settings_or_defaults(InstrumentationSettings, _warn_invalid)


def _warn_invalid(problems: str) -> None:
    logger.warning("tbmon: ignoring invalid settings, using their defaults: %s", problems)


@lru_cache(maxsize=1)
def get_settings() -> InstrumentationSettings:
    """The process-wide settings (tests call :func:`load_settings` after setting variables)."""
    return load_settings()


#: Numeric OTEL_* variables the SDK parses at set-up, each with the least value it accepts; a
#: value it cannot parse (or a non-positive interval) makes the whole SDK set-up fail.
OTEL_NUMBERS: dict[str, float] = {
    "OTEL_METRIC_EXPORT_INTERVAL": 1,
    "OTEL_METRIC_EXPORT_TIMEOUT": 1,
    "OTEL_EXPORTER_OTLP_TIMEOUT": 0.001,
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": 0.001,
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": 0.001,
    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": 0.001,
    "OTEL_ATTRIBUTE_COUNT_LIMIT": 0,
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": 0,
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": 0,
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": 0,
    "OTEL_SPAN_EVENT_COUNT_LIMIT": 0,
    "OTEL_SPAN_LINK_COUNT_LIMIT": 0,
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": 0,
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": 0,
}
#: The limits the SDK reads as integers.
_INTEGERS = {name for name in OTEL_NUMBERS if name.endswith("_LIMIT")}


def _acceptable(name: str, raw: str) -> bool:
    try:
        value = int(raw) if name in _INTEGERS else float(raw)
    except ValueError:
        return False
    return math.isfinite(value) and value >= OTEL_NUMBERS[name]


def repair_otel_environment(
    defaults: dict[str, str], environ: MutableMapping[str, str] = os.environ
) -> list[str]:
    """Replace each invalid numeric OTEL_* value by its default in ``defaults`` (tbmon's), or
    remove it (the SDK's default applies); one warning names them all. Returns their names."""
    invalid = [
        name for name in OTEL_NUMBERS if name in environ and not _acceptable(name, environ[name])
    ]
    for name in invalid:
        if name in defaults:
            environ[name] = defaults[name]
        else:
            del environ[name]
    if invalid:
        logger.warning(
            "tbmon: ignoring invalid OpenTelemetry settings, using their defaults: %s",
            "; ".join(
                f"{name}: not {'an integer' if name in _INTEGERS else 'a number'} "
                f">= {OTEL_NUMBERS[name]:g}"
                for name in invalid
            ),
        )
    return invalid
