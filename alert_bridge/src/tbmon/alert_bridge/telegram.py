"""A small Telegram Bot API client: one POST per method, Telegram's errors as exceptions.

The bot token is part of every URL, so no URL, request or httpx message ever reaches a log or an
exception from here: errors name the method only.
"""

from __future__ import annotations

from typing import Any

import httpx

#: Extra seconds granted over a long poll's own timeout before the HTTP call gives up.
_POLL_GRACE = 10.0


class TelegramError(Exception):
    """Telegram answered the call with ``ok: false`` (a 4xx): its code and description."""

    def __init__(
        self,
        method: str,
        code: int,
        description: str,
        retry_after: float | None = None,
        migrate_to: int | None = None,
    ) -> None:
        super().__init__(f"{method}: {code} {description}")
        self.method = method
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to = migrate_to

    @property
    def unparsable(self) -> bool:
        """The HTML was refused ("can't parse entities")."""
        return self.code == 400 and "can't parse entities" in self.description.lower()

    @property
    def permanent(self) -> bool:
        """Sending this message again will fail again: the chat is unknown, the bot was kicked or
        blocked, or the message itself is refused (400/403 without retry_after or migration)."""
        return self.code in (400, 403) and self.retry_after is None and self.migrate_to is None

    @property
    def thread_missing(self) -> bool:
        """The forum topic (message_thread_id) does not exist."""
        return self.code == 400 and "thread not found" in self.description.lower()


class TelegramUnavailable(Exception):  # noqa: N818 - a state, not a programming error
    """No usable answer: network error, timeout, 5xx or a body that is not the Bot API's JSON."""


class TelegramClient:
    """Calls ``<base_url>/bot<token>/<method>``."""

    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        self._token = token
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=f"{base_url}/bot{token}/",
            timeout=timeout,
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def call(
        self, method: str, params: dict[str, Any], read_timeout: float | None = None
    ) -> Any:
        """The method's ``result``; raises TelegramError or TelegramUnavailable."""
        seconds = read_timeout or self._timeout
        try:
            response = await self._http.post(method, json=params, timeout=seconds)
        except httpx.TimeoutException:
            raise TelegramUnavailable(f"{method}: no answer within {seconds:g} s") from None
        except httpx.HTTPError as error:
            reason = str(error).replace(self._token, "<token>") or type(error).__name__
            raise TelegramUnavailable(f"{method}: {reason}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("ok") is True:
            return body.get("result")
        if response.status_code >= 500 or not isinstance(body, dict):
            raise TelegramUnavailable(f"{method}: HTTP {response.status_code}")
        parameters = body.get("parameters") or {}
        raise TelegramError(
            method,
            int(body.get("error_code") or response.status_code),
            str(body.get("description", "")),
            retry_after=parameters.get("retry_after"),
            migrate_to=parameters.get("migrate_to_chat_id"),
        )

    async def send_message(
        self,
        chat_id: str,
        text: str,
        *,
        html: bool = True,
        thread_id: int | None = None,
        silent: bool = False,
        reply_to: int | None = None,
        keyboard: list[list[dict[str, str]]] | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "chat_id": chat_param(chat_id),
            "text": text,
            "link_preview_options": {"is_disabled": True},
        }
        if html:
            params["parse_mode"] = "HTML"
        if thread_id is not None:
            params["message_thread_id"] = thread_id
        if silent:
            params["disable_notification"] = True
        if reply_to is not None:
            params["reply_parameters"] = {
                "message_id": reply_to,
                "allow_sending_without_reply": True,
            }
        if keyboard:
            params["reply_markup"] = {"inline_keyboard": keyboard}
        result: dict[str, Any] = await self.call("sendMessage", params)
        return result

    async def get_updates(self, offset: int | None, poll_seconds: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {
            "timeout": poll_seconds,
            "allowed_updates": ["message", "callback_query"],
        }
        if offset is not None:
            params["offset"] = offset
        updates: list[dict[str, Any]] = await self.call(
            "getUpdates", params, read_timeout=poll_seconds + _POLL_GRACE
        )
        return updates


def chat_param(chat_id: str) -> int | str:
    """A chat id as the Bot API takes it: a number, or an @channel name."""
    return int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
