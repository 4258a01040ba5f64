"""The instrumentation's own settings (``TBMON_*`` and ``EXCHANGE_API_URL``), read once at start-up.

A bot must keep trading whatever its environment says, so an invalid value never stops it: it
is named in one warning, and its default is used (:func:`load_settings`).
"""

from __future__ import annotations

import logging
from functools import lru_cache

from pydantic import AnyHttpUrl, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tbmon.instrumentation import environment_variables as env

logger = logging.getLogger(__name__)


class InstrumentationSettings(BaseSettings):
    """What :mod:`tbmon.instrumentation` reads from the environment (or ``.env``)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", populate_by_name=False
    )

    strategy: str = Field(default="default", min_length=1, validation_alias=env.TBMON_STRATEGY)
    environment: str = Field(
        default="development", min_length=1, validation_alias=env.TBMON_ENVIRONMENT
    )
    bot_version: str | None = Field(default=None, validation_alias=env.TBMON_BOT_VERSION)
    exchange_api_url: AnyHttpUrl | None = Field(default=None, validation_alias=env.EXCHANGE_API_URL)
    exchange: str | None = Field(default=None, validation_alias=env.TBMON_EXCHANGE)
    latency_probe_interval: float = Field(
        default=15.0, gt=0, validation_alias=env.TBMON_LATENCY_PROBE_INTERVAL
    )
    analytics_period_seconds: float = Field(
        default=86400.0, gt=0, validation_alias=env.TBMON_ANALYTICS_PERIOD_SECONDS
    )
    periods_per_year: float = Field(
        default=365.0, gt=0, validation_alias=env.TBMON_PERIODS_PER_YEAR
    )
    analytics_window: int = Field(default=365, ge=2, validation_alias=env.TBMON_ANALYTICS_WINDOW)
    risk_free_rate: float = Field(default=0.0, validation_alias=env.TBMON_RISK_FREE_RATE)

    @property
    def exchange_label(self) -> str | None:
        """The ``exchange`` label of the latency probe: set, or the API URL's host name."""
        if self.exchange:
            return self.exchange
        return self.exchange_api_url.host if self.exchange_api_url else None


def load_settings() -> InstrumentationSettings:
    """The settings, with each invalid variable named in one warning and its default used."""
    try:
        return InstrumentationSettings()
    except ValidationError as error:
        fields = InstrumentationSettings.model_fields
        by_alias = {str(info.validation_alias): name for name, info in fields.items()}
        problems = {str(e["loc"][0]): e["msg"] for e in error.errors()}
        logger.warning(
            "tbmon: ignoring invalid settings, using their defaults: %s",
            "; ".join(f"{variable}: {message}" for variable, message in problems.items()),
        )
        defaults = {
            variable: fields[by_alias[variable]].default
            for variable in problems
            if variable in by_alias
        }
        return InstrumentationSettings(**defaults)


@lru_cache(maxsize=1)
def get_settings() -> InstrumentationSettings:
    """The process-wide settings (tests call :func:`load_settings` after setting variables)."""
    return load_settings()
