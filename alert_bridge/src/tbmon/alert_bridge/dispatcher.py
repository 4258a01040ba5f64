"""Sending the outbox to Telegram: one worker per chat, in order, within Telegram's limits.

A worker waits for the rate limiter (and any 429's ``retry_after``), then takes its chat's
oldest waiting items, packs as many as fit into one message (same alert name, status and
severity; a resolved alert only with others answering the same message), and sends: what queued
during a wait goes out with the message it waited for. Only Telegram's confirmation marks the
items sent, so a crash between the two sends that message again after a restart: at most one
duplicate, never a loss. A 429 waits ``retry_after``; a migrated group moves the chat's queue to
the new id; a reply to a command that Telegram refuses for good (400/403) is given up; any other
failure, and every alert, retries with a capped exponential backoff, keeping the order.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from contextlib import suppress
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

from tbmon.alert_bridge.formatter import header, header_length, message
from tbmon.alert_bridge.html import plain_text
from tbmon.alert_bridge.metrics import BridgeMetrics
from tbmon.alert_bridge.outbox import Item, Outbox, OutboxThread
from tbmon.alert_bridge.ratelimit import MINUTE, RateLimiter
from tbmon.alert_bridge.settings import BridgeSettings
from tbmon.alert_bridge.splitter import blocks_that_fit
from tbmon.alert_bridge.telegram import TelegramClient, TelegramError, TelegramUnavailable

log = logging.getLogger(__name__)

#: Hours a silence button silences for; its callback data is ``silence:<hours>``.
SILENCE_HOURS = (1, 24)
#: Safety net: look for waiting items this often even without a wake-up.
_RESCAN_SECONDS = 30.0


@dataclass(frozen=True)
class Batch:
    """One message to send and the items it carries."""

    chat_id: str
    items: list[Item]
    html: str
    reply_to: int | None
    keyboard: bool

    @property
    def first(self) -> Item:
        return self.items[0]


def silence_keyboard() -> list[list[dict[str, str]]]:
    return [
        [
            {"text": f"🔕 Silence {hours} h", "callback_data": f"silence:{hours}"}
            for hours in SILENCE_HOURS
        ]
    ]


class Dispatcher:
    """The chats' workers: they send what waits in ``outbox`` through ``telegram``, within
    ``limiter``'s limits, counting in ``metrics``."""

    def __init__(
        self,
        outbox: OutboxThread,
        telegram: TelegramClient,
        limiter: RateLimiter,
        metrics: BridgeMetrics,
        settings: BridgeSettings,
    ) -> None:
        self._outbox = outbox
        self._telegram = telegram
        self._limiter = limiter
        self._metrics = metrics
        self._settings = settings
        self._wake = asyncio.Event()
        self._workers: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}

    def notify(self) -> None:
        """New items were queued (or a chat moved): look for work now."""
        self._wake.set()

    async def run(self) -> None:
        await self._recall()
        try:
            while True:
                self._wake.clear()
                try:
                    chats = await self._outbox.call(Outbox.chats_with_pending)
                except Exception:
                    log.exception("could not read the outbox; retrying")
                    chats = []
                for chat in chats:
                    self._signal(chat)
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=_RESCAN_SECONDS)
        finally:
            for task, _ in self._workers.values():
                task.cancel()
            await asyncio.gather(*(t for t, _ in self._workers.values()), return_exceptions=True)

    async def _recall(self) -> None:
        """Count what the bridge sent before it (re)started toward Telegram's flood limits: the
        last minute's messages, and one for each chat with waiting items, as a message may have
        been in flight when the bridge stopped (Telegram posted it; its answer never came)."""
        now = time.time()
        try:
            sent = await self._outbox.call(Outbox.sent_since, now - MINUTE)
            waiting = await self._outbox.call(Outbox.chats_with_pending)
        except Exception:
            log.exception(
                "could not read the outbox's recent messages; the flood limits start empty"
            )
            return
        for chat, sent_at in sent:
            self._limiter.record(chat, seconds_ago=max(0.0, now - sent_at))
        for chat in waiting:
            self._limiter.record(chat)

    def _signal(self, chat: str) -> None:
        worker = self._workers.get(chat)
        if worker is None:
            event = asyncio.Event()
            worker = (asyncio.create_task(self._drain(chat, event), name=f"chat {chat}"), event)
            self._workers[chat] = worker
        worker[1].set()

    async def _drain(self, chat: str, event: asyncio.Event) -> None:
        failures = 0
        while True:
            event.clear()
            batch: Batch | None = None
            try:
                if not await self._outbox.call(Outbox.pending, chat, 1):
                    await event.wait()
                    continue
                # Packed once the chat may be sent to: after a 429's retry_after (or the flood
                # limits), the message carries what queued during the wait too.
                await self._limiter.acquire(chat)
                batch = await self._pack(chat, await self._outbox.call(Outbox.pending, chat))
                await self._deliver(batch)
            except TelegramError as error:
                if batch is not None and batch.first.kind != "alert" and error.permanent:
                    await self._give_up(batch, error)
                    continue
                failures = await self._refused(chat, error, failures)
            except TelegramUnavailable as error:
                self._metrics.telegram_errors.labels("sendMessage", "unavailable").inc()
                failures += 1
                delay = self._backoff(failures)
                log.warning(
                    "Telegram unavailable (%s); retrying chat %s in %.1f s", error, chat, delay
                )
                await asyncio.sleep(delay)
            except Exception:
                failures += 1
                log.exception("unexpected error sending to chat %s; retrying", chat)
                await asyncio.sleep(self._backoff(failures))
            else:
                failures = 0

    async def _refused(self, chat: str, error: TelegramError, failures: int) -> int:
        if error.retry_after is not None:
            self._metrics.telegram_errors.labels("sendMessage", "429").inc()
            log.warning("Telegram asks to wait %s s before chat %s", error.retry_after, chat)
            self._limiter.block(chat, float(error.retry_after))
            return failures
        self._metrics.telegram_errors.labels("sendMessage", "4xx").inc()
        if error.migrate_to is not None:
            new_chat = str(error.migrate_to)
            await self._outbox.call(Outbox.migrate, chat, new_chat)
            log.warning(
                "chat %s became the supergroup %s: its alerts go there now; update the "
                "TELEGRAM_*_CHAT_ID variable that says %s",
                chat,
                new_chat,
                chat,
            )
            self.notify()
            return failures
        failures += 1
        delay = self._backoff(failures)
        log.error(
            "Telegram refused a message to chat %s: %s. It stays queued (an alert is never "
            "dropped) and is retried in %.0f s, and until Telegram takes it: add the bot to the "
            "chat with the right to post, or correct %s and restart the bridge",
            chat,
            error.description,
            delay,
            self._chat_variable(chat),
        )
        await asyncio.sleep(delay)
        return failures

    async def _give_up(self, batch: Batch, error: TelegramError) -> None:
        """A command's reply or a note that Telegram will never take is dropped, not retried
        forever (it would keep the outbox backlog, and AlertDeliveryBacklog, up)."""
        self._metrics.telegram_errors.labels("sendMessage", "4xx").inc()
        await self._outbox.call(Outbox.give_up, [item.id for item in batch.items], time.time())
        self._metrics.given_up.inc(len(batch.items))
        log.warning(
            "gave up a reply to chat %s: Telegram refuses it for good (%s); alerts are not "
            "affected",
            batch.chat_id,
            error.description,
        )

    def _chat_variable(self, chat: str) -> str:
        """The setting that names this chat, for the log's advice."""
        settings = self._settings
        if chat == settings.critical_chat:
            return "TELEGRAM_CRITICAL_CHAT_ID"
        if chat == settings.warning_chat:
            return "TELEGRAM_WARNING_CHAT_ID"
        return "TELEGRAM_CRITICAL_CHAT_ID or TELEGRAM_WARNING_CHAT_ID"

    def _backoff(self, failures: int) -> float:
        ceiling = min(self._settings.max_backoff, 0.5 * 2.0 ** min(failures, 16))
        return ceiling * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not security

    async def _pack(self, chat: str, items: list[Item]) -> Batch:
        first = items[0]
        if first.kind != "alert":
            return Batch(chat, [first], first.html, first.reply_to, keyboard=False)

        def key(item: Item) -> tuple[object, ...]:
            name = item.labels.get("alertname")
            return (item.kind, item.status, item.severity, item.silent, item.thread_id, name)

        group = list(takewhile(lambda item: key(item) == key(first), items))
        reply_to = None
        if first.status == "resolved":
            targets = await self._outbox.call(Outbox.reply_targets, chat, group)
            reply_to = targets[0]
            group = group[: next((n for n, t in enumerate(targets) if t != reply_to), len(group))]
        count = blocks_that_fit(
            lambda n: header_length(first.severity, first.status, n), [i.length for i in group]
        )
        group = group[:count]
        html = message(header(first.severity, first.status, count), [i.html for i in group])
        keyboard = first.status == "firing" and self._settings.updates != "off"
        return Batch(chat, group, html, reply_to, keyboard)

    async def _deliver(self, batch: Batch) -> None:
        try:
            sent = await self._send(batch, batch.html, html=True)
        except TelegramError as error:
            if error.unparsable:
                log.error(
                    "Telegram could not parse a message's HTML (%s); sending it as plain text",
                    error.description,
                )
                await self._limiter.acquire(batch.chat_id)
                sent = await self._send(batch, plain_text(batch.html), html=False)
            elif error.thread_missing and batch.first.thread_id is not None:
                log.error(
                    "chat %s has no forum topic %s (ALERT_BRIDGE_*_THREAD_ID); sending to the "
                    "chat itself",
                    batch.chat_id,
                    batch.first.thread_id,
                )
                await self._limiter.acquire(batch.chat_id)
                sent = await self._send(batch, batch.html, html=True, thread=False)
            else:
                raise
        now = time.time()
        await self._outbox.call(
            Outbox.mark_sent,
            [item.id for item in batch.items],
            batch.chat_id,
            int(sent["message_id"]),
            batch.html,
            keyboard=batch.keyboard,
            now=now,
        )
        self._metrics.messages.inc()
        for item in batch.items:
            self._metrics.delivery.observe(now - item.received_at)

    async def _send(
        self, batch: Batch, text: str, *, html: bool, thread: bool = True
    ) -> dict[str, Any]:
        return await self._telegram.send_message(
            batch.chat_id,
            text,
            html=html,
            thread_id=batch.first.thread_id if thread else None,
            silent=batch.first.silent,
            reply_to=batch.reply_to,
            keyboard=silence_keyboard() if batch.keyboard else None,
        )
