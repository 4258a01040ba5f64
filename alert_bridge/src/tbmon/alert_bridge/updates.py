"""What people do in the chat: silence buttons, and the /alerts and /silences commands.

Updates arrive by getUpdates long polling (the offset is kept in the outbox, so a restart neither
loses nor replays them) or by Telegram calling ``/webhook/telegram``. Every callback query is
answered, whatever happens, so the button never spins, and as soon as the silence exists:
marking the message as silenced follows in the background. Only users in
ALERT_BRIDGE_ALLOWED_USERS may silence; commands work in the alert chats (or for those users
anywhere).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from tbmon.alert_bridge.alertmanager import AlertmanagerClient, AlertmanagerError
from tbmon.alert_bridge.dispatcher import SILENCE_HOURS, silence_keyboard
from tbmon.alert_bridge.formatter import alert_lines, silence_lines, text
from tbmon.alert_bridge.html import MESSAGE_LIMIT, visible_length
from tbmon.alert_bridge.outbox import NewItem, Outbox, OutboxThread
from tbmon.alert_bridge.ratelimit import RateLimiter
from tbmon.alert_bridge.settings import BridgeSettings
from tbmon.alert_bridge.splitter import split_lines
from tbmon.alert_bridge.telegram import TelegramClient, TelegramError, TelegramUnavailable

log = logging.getLogger(__name__)

_OFFSET = "telegram_update_offset"
#: Labels that change each time a bot process restarts (``instance`` is service.instance.id;
#: the others appear when the collector copies resource attributes to labels): a silence that
#: matched them would stop matching after a restart.
PER_PROCESS_LABELS = frozenset({"instance", "service_instance_id", "process_pid"})
_HELP = (
    "<b>tbmon alert bridge</b>\n"
    "/alerts: the alerts firing now\n"
    "/silences: the active silences\n"
    "Buttons under an alert silence it for 1 h or 24 h (allowed users only)."
)


class Updates:
    """Updates from ``telegram``, acted on through ``alertmanager``; replies wait in ``outbox``
    (``notify`` wakes the dispatcher), edits take their turn in ``limiter``."""

    def __init__(
        self,
        outbox: OutboxThread,
        telegram: TelegramClient,
        alertmanager: AlertmanagerClient,
        limiter: RateLimiter,
        settings: BridgeSettings,
        *,
        notify: Callable[[], None],
    ) -> None:
        self._outbox = outbox
        self._telegram = telegram
        self._alertmanager = alertmanager
        self._limiter = limiter
        self._settings = settings
        self._notify = notify
        self._marking: set[asyncio.Task[None]] = set()

    # -- receiving ------------------------------------------------------------------------------

    async def poll(self) -> None:
        """Long-poll getUpdates forever, handling each update once."""
        stored = await self._outbox.call(Outbox.get_state, _OFFSET)
        offset = int(stored) if stored else None
        failures = 0
        while True:
            try:
                updates = await self._telegram.get_updates(offset, self._settings.poll_timeout)
            except (TelegramError, TelegramUnavailable) as error:
                failures += 1
                delay = min(self._settings.max_backoff, 2.0**failures)
                hint = ""
                if isinstance(error, TelegramError) and error.code == 409:
                    hint = (
                        " (a webhook is set for this bot, or another bridge polls it: use "
                        "ALERT_BRIDGE_UPDATES=webhook, or run one bridge per bot)"
                    )
                log.warning("getUpdates failed: %s%s; retrying in %.0f s", error, hint, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            for update in updates:
                await self.handle(update)
                offset = int(update["update_id"]) + 1
                await self._outbox.call(Outbox.set_state, _OFFSET, str(offset))

    async def register_webhook(self) -> None:
        """Tell Telegram where to send updates (webhook mode); retries until it agrees."""
        settings = self._settings
        assert settings.webhook_url is not None  # checked when the settings were built
        assert settings.webhook_secret is not None
        params = {
            "url": settings.webhook_url,
            "secret_token": settings.webhook_secret.get_secret_value(),
            "allowed_updates": ["message", "callback_query"],
        }
        failures = 0
        while True:
            try:
                await self._telegram.call("setWebhook", params)
            except (TelegramError, TelegramUnavailable) as error:
                failures += 1
                log.error("setWebhook failed: %s; retrying", error)
                await asyncio.sleep(min(settings.max_backoff, 2.0**failures))
            else:
                log.info("Telegram sends updates to %s", settings.webhook_url)
                return

    async def handle(self, update: dict[str, Any]) -> None:
        """Act on one update; never raises (a bad update is logged and skipped)."""
        try:
            if "callback_query" in update:
                await self._callback(update["callback_query"])
            elif "message" in update:
                await self._command(update["message"])
        except Exception:
            log.exception("could not handle Telegram update %s", update.get("update_id"))

    # -- silence buttons ------------------------------------------------------------------------

    async def _callback(self, query: dict[str, Any]) -> None:
        """Answer first (Telegram's window is short), then mark the message in the background:
        editing waits on the chat's rate limiter, which must not hold up the next press."""
        answer, show_alert, mark = "Something went wrong; see the bridge's log.", True, None
        try:
            answer, show_alert, mark = await self._silence(query)
        finally:
            await self._answer(str(query.get("id", "")), answer, show_alert)
        if mark is not None:
            task = asyncio.create_task(self._logged(mark()), name="mark silenced")
            self._marking.add(task)
            task.add_done_callback(self._marking.discard)

    async def stop(self) -> None:
        """Cancel the messages still waiting to be marked as silenced."""
        tasks = list(self._marking)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception:
            log.exception("could not mark a message as silenced")

    async def _silence(
        self, query: dict[str, Any]
    ) -> tuple[str, bool, Callable[[], Coroutine[Any, Any, None]] | None]:
        """Create the silence a press asks for: the answer, and how to mark the message."""
        data = str(query.get("data", ""))
        user = query.get("from") or {}
        kind, _, hours_text = data.partition(":")
        if kind != "silence" or not hours_text.isdigit() or int(hours_text) not in SILENCE_HOURS:
            return "This button is not one of the alert bridge's.", True, None
        hours = int(hours_text)
        user_id = user.get("id")
        if user_id not in self._settings.allowed_users:
            return (
                "You may not silence alerts. Ask an admin to add your Telegram user id "
                f"({user_id}) to ALERT_BRIDGE_ALLOWED_USERS.",
                True,
                None,
            )
        message = query.get("message") or {}
        chat = str((message.get("chat") or {}).get("id", ""))
        message_id = message.get("message_id")
        labels = []
        if isinstance(message_id, int):
            labels = await self._outbox.call(Outbox.message_labels, chat, message_id)
        if not isinstance(message_id, int) or not labels:
            return "This alert is too old to silence from Telegram; use Alertmanager.", True, None
        shared = set.intersection(*(set(each.items()) for each in labels))
        matchers = {name: value for name, value in shared if name not in PER_PROCESS_LABELS}
        who = user.get("username") or user.get("first_name") or str(user_id)
        try:
            silence_id = await self._alertmanager.create_silence(
                matchers,
                hours,
                created_by=f"telegram:{who} ({user_id})",
                comment=f"Silenced from Telegram for {hours} h",
            )
        except AlertmanagerError as error:
            log.error("could not create a silence: %s", error)
            return f"Could not create the silence: {error}", True, None
        log.info("%s (%s) silenced %s for %d h: %s", who, user_id, matchers, hours, silence_id)
        mark = partial(self._mark_silenced, chat, message_id, hours, who, silence_id)
        return f"Silenced for {hours} h.", False, mark

    async def _mark_silenced(
        self, chat: str, message_id: int, hours: int, who: str, silence_id: str
    ) -> None:
        """Say on the alert itself (or, if that no longer fits, in a reply) who silenced it."""
        until = (datetime.now(UTC) + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M UTC")
        note = (
            f"🔕 <b>Silenced for {hours} h</b> by {text(who, 64)} until {until} "
            f"(<code>{text(silence_id[:8])}</code>)"
        )
        stored = await self._outbox.call(Outbox.message, chat, message_id)
        if stored is not None and visible_length(stored[0] + "\n\n" + note) <= MESSAGE_LIMIT:
            html, keyboard = stored
            params: dict[str, Any] = {
                "chat_id": int(chat) if chat.lstrip("-").isdigit() else chat,
                "message_id": message_id,
                "text": html + "\n\n" + note,
                "parse_mode": "HTML",
                "link_preview_options": {"is_disabled": True},
            }
            if keyboard:
                params["reply_markup"] = {"inline_keyboard": silence_keyboard()}
            await self._limiter.acquire(chat)
            try:
                await self._telegram.call("editMessageText", params)
                return
            except (TelegramError, TelegramUnavailable) as error:
                log.warning("could not mark the message as silenced: %s", error)
        await self._reply(chat, None, message_id, [note])

    async def _answer(self, query_id: str, answer: str, show_alert: bool) -> None:
        try:
            await self._telegram.call(
                "answerCallbackQuery",
                {"callback_query_id": query_id, "text": answer[:200], "show_alert": show_alert},
            )
        except (TelegramError, TelegramUnavailable) as error:
            log.warning("could not answer a button press: %s", error)

    # -- commands -------------------------------------------------------------------------------

    async def _command(self, message: dict[str, Any]) -> None:
        words = str(message.get("text", "")).split()
        if not words or not words[0].startswith("/"):
            return
        command = words[0].split("@", 1)[0].lower()
        if command not in ("/alerts", "/silences", "/help", "/start"):
            return
        chat = str((message.get("chat") or {}).get("id", ""))
        user_id = (message.get("from") or {}).get("id")
        thread = message.get("message_thread_id")
        alert_chats = {
            await self._outbox.call(Outbox.current_chat, self._settings.critical_chat),
            await self._outbox.call(Outbox.current_chat, self._settings.warning_chat),
        }
        if chat not in alert_chats and user_id not in self._settings.allowed_users:
            lines = ["This chat does not receive tbmon alerts; use the commands in an alert chat."]
        elif command == "/alerts":
            lines = await self._listing(alert_lines, self._alertmanager.alerts)
        elif command == "/silences":
            lines = await self._listing(silence_lines, self._alertmanager.silences)
        else:
            lines = [_HELP]
        await self._reply(chat, thread, message.get("message_id"), lines)

    @staticmethod
    async def _listing(render: Any, fetch: Any) -> list[str]:
        try:
            lines: list[str] = render(await fetch())
        except AlertmanagerError as error:
            return [f"⚠️ {text(str(error), 300)}"]
        return lines

    async def _reply(
        self, chat: str, thread: int | None, reply_to: int | None, lines: list[str]
    ) -> None:
        for part in split_lines(lines):
            item = NewItem.text(chat, thread, part, reply_to=reply_to)
            await self._outbox.call(Outbox.enqueue_text, item, time.time())
        self._notify()
