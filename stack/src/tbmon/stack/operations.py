"""What `tbmon doctor` and `tbmon backup` need beyond the stack's ports: Grafana and Telegram.

The variables are the seed's (GRAFANA_ADMIN_USER/PASSWORD, TELEGRAM_BOT_TOKEN) plus the URLs
where Grafana and the health service answer. They are read as every tbmon setting is
(:mod:`tbmon.settings`): from the environment, then from ``.env`` in the working directory or
the file ``TBMON_ENV_FILE`` names; an operator of the Compose stack runs the commands beside its
``.env`` (``stack/src/tbmon/stack/`` in a checkout) or sets ``TBMON_ENV_FILE`` to that file.
Secrets stay ``SecretStr``: never printed.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tbmon.settings import TbmonSettings


class OperationsSettings(TbmonSettings):
    """Where Grafana, Telegram and the health service are, and how to log in to Grafana."""

    model_config = SettingsConfigDict(populate_by_name=True)

    grafana_url: str = Field(
        default="http://127.0.0.1:3000",
        validation_alias=AliasChoices("GRAFANA_URL"),
        description="Grafana's address from this machine (GRAFANA_URL).",
    )
    grafana_admin_user: str = Field(
        default="admin",
        validation_alias=AliasChoices("GRAFANA_ADMIN_USER"),
        description="Grafana user for the API (GRAFANA_ADMIN_USER).",
    )
    grafana_admin_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("GRAFANA_ADMIN_PASSWORD"),
        description="Its password (GRAFANA_ADMIN_PASSWORD); without it Grafana is skipped.",
    )
    telegram_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN"),
        description="The alert bridge's bot token, checked with getMe (TELEGRAM_BOT_TOKEN).",
    )
    telegram_api_url: str = Field(
        default="https://api.telegram.org",
        validation_alias=AliasChoices("TELEGRAM_API_URL"),
        description="Telegram's Bot API base URL (TELEGRAM_API_URL).",
    )
    health_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("HEALTH_URL"),
        description="The health service's address from this machine (HEALTH_URL); default: "
        "the local stack's, on TBMON_HEALTH_PORT.",
    )
    timeout: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("TBMON_OPERATIONS_TIMEOUT"),
        description="Seconds each request may take (TBMON_OPERATIONS_TIMEOUT).",
    )

    def grafana_auth(self) -> tuple[str, str] | None:
        """Basic-auth credentials for Grafana's API, or None when no password is set."""
        if (
            self.grafana_admin_password is None
            or not self.grafana_admin_password.get_secret_value()
        ):
            return None
        return (self.grafana_admin_user, self.grafana_admin_password.get_secret_value())


#: How an operator runs a command on each deployment; fixes quote these.
COMPOSE = "docker compose -f stack/src/tbmon/stack/docker-compose.monitoring.yml"


def json_body(response: httpx.Response) -> dict[str, Any]:
    """A response's JSON object, or {} when it has none (an error page, say)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
