"""The bridge's settings, in tbmon's settings dialect (:mod:`tbmon.settings`: the environment,
then the one ``.env``), validated at start-up by ``read_settings(BridgeSettings)``.

Telegram's variables keep the seed's names (``TELEGRAM_*``); the bridge's own start with
``ALERT_BRIDGE_``. A bad or missing value stops the bridge with a message naming the variable
(``InvalidSettingsError``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from tbmon.settings import TbmonSettings, get_stack_settings, read_settings

TELEGRAM_BOT_TOKEN = "TELEGRAM_BOT_TOKEN"  # noqa: S105 - a variable name
TELEGRAM_CRITICAL_CHAT_ID = "TELEGRAM_CRITICAL_CHAT_ID"
TELEGRAM_WARNING_CHAT_ID = "TELEGRAM_WARNING_CHAT_ID"
TELEGRAM_API_URL = "TELEGRAM_API_URL"
PREFIX = "ALERT_BRIDGE_"

#: The Telegram test server's bot, chats and operator (``tbmon bridge telegram-test-server``).
DEMO_BOT_TOKEN = "1000000001:TbmonDemoBotTokenForTheTestServer"  # noqa: S105 - fake, public
DEMO_CRITICAL_CHAT_ID = "-1001000000001"
DEMO_WARNING_CHAT_ID = "-1001000000002"
DEMO_OPERATOR_ID = 100000001

_BOT_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def _default_database() -> Path:
    return get_stack_settings().data_dir / "alert-bridge" / "outbox.sqlite3"


def _default_alertmanager() -> str:
    stack = get_stack_settings()
    return stack.url(stack.alertmanager_port)


class BridgeSettings(TbmonSettings):
    """Everything the bridge needs: Telegram, the webhook token, the outbox, and its limits."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_ignore_empty=True, populate_by_name=True
    )

    # Telegram (the seed's variable names).
    telegram_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=TELEGRAM_BOT_TOKEN,
        description="The bot's token from @BotFather.",
    )
    telegram_critical_chat_id: str | None = Field(
        default=None,
        validation_alias=TELEGRAM_CRITICAL_CHAT_ID,
        description="Chat for critical alerts: a number (groups are negative: -100...) or @name.",
    )
    telegram_warning_chat_id: str | None = Field(
        default=None,
        validation_alias=TELEGRAM_WARNING_CHAT_ID,
        description="Chat for warnings (and other severities); the critical chat if unset.",
    )
    telegram_api_url: str = Field(
        default="https://api.telegram.org",
        validation_alias=TELEGRAM_API_URL,
        description="Bot API base URL (the Telegram test server in tests and the demo).",
    )

    # The webhook Alertmanager calls.
    token: SecretStr | None = Field(
        default=None, description="Bearer token Alertmanager must send (http_config)."
    )
    token_file: Path | None = Field(
        default=None, description="A file holding that token (instead of ALERT_BRIDGE_TOKEN)."
    )

    # Where things are.
    database: Path = Field(
        default_factory=_default_database, description="The SQLite outbox (durable queue)."
    )
    alertmanager_url: str = Field(
        default_factory=_default_alertmanager,
        description="Alertmanager's API, for silences and /alerts, /silences.",
    )
    grafana_url: str = Field(
        default="http://localhost:3000", description="Grafana, for the 'View in Grafana' link."
    )

    # Delivery.
    warnings_silent: bool = Field(
        default=False, description="Send warnings without a notification sound."
    )
    critical_thread_id: int | None = Field(
        default=None, description="Forum topic (message_thread_id) for critical alerts."
    )
    warning_thread_id: int | None = Field(
        default=None, description="Forum topic (message_thread_id) for warnings."
    )
    dedup_window: float = Field(
        default=1800.0,
        gt=0,
        description="Seconds within which the same alert event is sent once; keep it between "
        "Alertmanager's group_interval and repeat_interval (the bridge halves the shortest "
        "repeat_interval, with a warning, if it is not).",
    )
    chat_interval: float = Field(
        default=1.05, ge=0, description="Minimum seconds between two messages to one chat."
    )
    group_per_minute: int = Field(
        default=20, gt=0, description="Messages per minute to one group or channel."
    )
    global_per_second: int = Field(
        default=30, gt=0, description="Messages per second over all chats."
    )
    request_timeout: float = Field(default=10.0, gt=0, description="Seconds per Telegram call.")
    max_backoff: float = Field(
        default=30.0, gt=0, description="Longest wait between retries of a failing send."
    )
    retention_days: float = Field(
        default=7.0, gt=0, description="Days sent messages are remembered (replies, dedup)."
    )

    # Buttons and commands.
    allowed_users: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Telegram user ids allowed to silence alerts (comma-separated).",
    )
    updates: Literal["polling", "webhook", "off"] = Field(
        default="polling", description="How button presses and commands reach the bridge."
    )
    poll_timeout: int = Field(
        default=30, ge=0, le=50, description="getUpdates long-polling timeout in seconds."
    )
    webhook_url: str | None = Field(
        default=None, description="Public URL of this bridge's /webhook/telegram (webhook mode)."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="Secret Telegram sends with each update (webhook mode)."
    )

    @field_validator("telegram_critical_chat_id", "telegram_warning_chat_id")
    @classmethod
    def _chat_id(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        value = value.strip()
        if not _CHAT_ID.match(value):
            raise ValueError(f"{value!r} is not a chat id: use a number (-100...) or @channelname")
        if re.fullmatch(r"100\d{10}", value):
            raise ValueError(f"{value} looks like a group id without its leading '-': use -{value}")
        return value

    @field_validator("allowed_users", mode="before")
    @classmethod
    def _user_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return [int(part) for part in value.replace(" ", "").split(",") if part]
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a comma-separated list of Telegram user ids"
                ) from None
        return value

    @field_validator("telegram_api_url", "alertmanager_url", "grafana_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _complete(self) -> BridgeSettings:
        token = self.telegram_bot_token
        if token is None:
            raise ValueError(
                f"{TELEGRAM_BOT_TOKEN} is not set: create a bot with @BotFather and set its token "
                "(without it the local stack runs the Telegram test server instead)"
            )
        if not _BOT_TOKEN.match(token.get_secret_value()):
            raise ValueError(f"{TELEGRAM_BOT_TOKEN} does not look like a bot token (123456:ABC...)")
        if self.telegram_critical_chat_id is None:
            raise ValueError(
                f"{TELEGRAM_CRITICAL_CHAT_ID} is not set: add the bot to the chat, send a message, "
                "and read the chat id from getUpdates"
            )
        if self.bearer_token() is None:
            raise ValueError(
                f"set {PREFIX}TOKEN (or {PREFIX}TOKEN_FILE): the bearer token Alertmanager sends"
            )
        if self.updates == "webhook" and (self.webhook_url is None or self.webhook_secret is None):
            raise ValueError(
                f"{PREFIX}UPDATES=webhook needs {PREFIX}WEBHOOK_URL and {PREFIX}WEBHOOK_SECRET"
            )
        secret = self.webhook_secret
        if secret is not None and not _WEBHOOK_SECRET.match(secret.get_secret_value()):
            raise ValueError(f"{PREFIX}WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, _ and -")
        return self

    def bearer_token(self) -> str | None:
        """The webhook token: ALERT_BRIDGE_TOKEN_FILE's content, else ALERT_BRIDGE_TOKEN."""
        if self.token_file is not None:
            try:
                content = self.token_file.read_text().strip()
            except OSError as error:
                raise ValueError(
                    f"{PREFIX}TOKEN_FILE={self.token_file} cannot be read: {error.strerror}"
                ) from None
            return content or None
        return self.token.get_secret_value() if self.token else None

    @property
    def bot_token(self) -> str:
        assert self.telegram_bot_token is not None  # checked at construction
        return self.telegram_bot_token.get_secret_value()

    @property
    def critical_chat(self) -> str:
        assert self.telegram_critical_chat_id is not None  # checked at construction
        return self.telegram_critical_chat_id

    @property
    def warning_chat(self) -> str:
        return self.telegram_warning_chat_id or self.critical_chat


def demo_overrides(api_url: str) -> dict[str, Any]:
    """Settings that point the bridge at the Telegram test server's demo bot and chats.

    The operator allowed to press silence buttons is the test server's, unless
    ALERT_BRIDGE_ALLOWED_USERS says otherwise.
    """
    overrides: dict[str, Any] = {
        "telegram_api_url": api_url,
        "telegram_bot_token": DEMO_BOT_TOKEN,
        "telegram_critical_chat_id": DEMO_CRITICAL_CHAT_ID,
        "telegram_warning_chat_id": DEMO_WARNING_CHAT_ID,
    }
    if not read_settings(_TelegramEnvironment).allowed_users:
        overrides["allowed_users"] = [DEMO_OPERATOR_ID]
    return overrides


class _TelegramEnvironment(TbmonSettings):
    """Just the variables that decide between Telegram and the test server."""

    model_config = SettingsConfigDict(env_ignore_empty=True)

    telegram_bot_token: SecretStr | None = Field(default=None, validation_alias=TELEGRAM_BOT_TOKEN)
    allowed_users: str | None = Field(default=None, validation_alias=PREFIX + "ALLOWED_USERS")


def telegram_configured() -> bool:
    """Whether TELEGRAM_BOT_TOKEN is set (environment or .env): real Telegram, no test server."""
    token = read_settings(_TelegramEnvironment).telegram_bot_token
    return token is not None and bool(token.get_secret_value())
