"""The bridge's parts wired together: the outbox, Telegram, Alertmanager and the background tasks.

The outbox (SQLite) runs on one dedicated thread (:class:`OutboxThread`), so disk writes never
block the event loop and never run concurrently; everything else is asyncio. Each part is given
the others it uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tbmon.alert_bridge.alertmanager import AlertmanagerClient, AlertmanagerError
from tbmon.alert_bridge.dispatcher import Dispatcher
from tbmon.alert_bridge.formatter import alert_block, text
from tbmon.alert_bridge.metrics import BridgeMetrics
from tbmon.alert_bridge.models import Alert, Notification
from tbmon.alert_bridge.outbox import NewItem, Outbox, OutboxThread
from tbmon.alert_bridge.ratelimit import RateLimiter
from tbmon.alert_bridge.settings import BridgeSettings
from tbmon.alert_bridge.telegram import TelegramClient, TelegramError, TelegramUnavailable
from tbmon.alert_bridge.updates import Updates

log = logging.getLogger(__name__)

_HOUSEKEEPING_SECONDS = 3600.0


class Bridge:
    def __init__(self, settings: BridgeSettings, metrics: BridgeMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.outbox = OutboxThread(settings.database)
        self.telegram = TelegramClient(
            settings.telegram_api_url, settings.bot_token, settings.request_timeout
        )
        self.alertmanager = AlertmanagerClient(settings.alertmanager_url)
        self.limiter = RateLimiter(
            settings.chat_interval, settings.group_per_minute, settings.global_per_second
        )
        self.dispatcher = Dispatcher(self.outbox, self.telegram, self.limiter, metrics, settings)
        self.updates = Updates(
            self.outbox,
            self.telegram,
            self.alertmanager,
            self.limiter,
            settings,
            notify=self.dispatcher.notify,
        )
        self._tasks: list[asyncio.Task[None]] = []
        #: Seconds within which an alert event is sent once: ALERT_BRIDGE_DEDUP_WINDOW, unless
        #: Alertmanager reminds sooner (see :meth:`_fit_dedup_window`).
        self.dedup_window = settings.dedup_window
        #: What getMe said at start-up: the bot's @name, or why it failed.
        self.bot = "not checked yet"

    async def start(self) -> None:
        await self.outbox.open()
        stats = await self.outbox.call(Outbox.stats)
        if stats.pending:
            log.info("%d alert events waiting in the outbox from before; sending", stats.pending)
        self._spawn(self._check_bot(), "getMe")
        self._spawn(self.dispatcher.run(), "dispatcher")
        self._spawn(self._housekeeping(), "housekeeping")
        self._spawn(self._fit_dedup_window(), "dedup window")
        if self.settings.updates == "polling":
            self._spawn(self.updates.poll(), "getUpdates")
        elif self.settings.updates == "webhook":
            self._spawn(self.updates.register_webhook(), "setWebhook")

    def _spawn(self, work: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.updates.stop()
        await self.telegram.close()
        await self.alertmanager.close()
        await self.outbox.close()

    async def _check_bot(self) -> None:
        """Say early if the token is wrong; alerts are queued either way, never refused."""
        try:
            me = await self.telegram.call("getMe", {})
        except TelegramError as error:
            self.bot = f"rejected: {error.code} {error.description}"
            log.error(
                "Telegram rejects TELEGRAM_BOT_TOKEN (%s %s): check the token @BotFather gave "
                "you; alerts are queued until Telegram accepts it",
                error.code,
                error.description,
            )
        except TelegramUnavailable as error:
            self.bot = "unreachable"
            log.warning("Telegram is unreachable (%s); alerts are queued until it answers", error)
        else:
            self.bot = f"@{me.get('username', '?')}"
            log.info("Telegram bot %s ready", self.bot)

    async def _fit_dedup_window(self) -> None:
        """A reminder (Alertmanager's repeat_interval) is the same alert event again: within the
        dedup window it would be skipped, so the window is shrunk below the shortest repeat."""
        failures = 0
        while True:
            try:
                repeats = await self.alertmanager.repeat_intervals()
                break
            except AlertmanagerError as error:
                failures += 1
                log.debug("cannot check Alertmanager's repeat intervals yet: %s", error)
                await asyncio.sleep(min(self.settings.max_backoff, 2.0**failures))
        shortest = min(repeats)
        if shortest <= self.dedup_window:
            self.dedup_window = shortest / 2
            log.warning(
                "Alertmanager repeats notifications every %g s, within ALERT_BRIDGE_DEDUP_WINDOW "
                "(%g s): reminders would be skipped as duplicates, so the bridge deduplicates "
                "over %g s instead. Set ALERT_BRIDGE_DEDUP_WINDOW below the shortest "
                "repeat_interval (TBMON_ALERT_*_REPEAT_INTERVAL) to silence this warning",
                shortest,
                self.settings.dedup_window,
                self.dedup_window,
            )

    async def _housekeeping(self) -> None:
        while True:
            before = time.time() - self.settings.retention_days * 86400
            try:
                await self.outbox.call(Outbox.prune, before)
            except Exception:
                log.exception("could not prune the outbox")
            await asyncio.sleep(_HOUSEKEEPING_SECONDS)

    # -- accepting ------------------------------------------------------------------------------

    async def accept(self, notification: Notification, body: bytes) -> tuple[int, int]:
        """Queue the notification's alert events durably; returns (queued, duplicates)."""
        items = [self._alert_item(alert) for alert in notification.alerts]
        if notification.truncated_alerts:
            items.append(self._truncation_note(notification))
        queued = await self.outbox.call(
            Outbox.accept,
            notification.group_key,
            body,
            items,
            time.time(),
            self.dedup_window,
        )
        duplicates = len(items) - queued
        self.metrics.notifications.labels("accepted").inc()
        for alert in notification.alerts:
            self.metrics.alerts.labels(alert.status).inc()
        self.metrics.duplicates.inc(duplicates)
        log.info(
            "queued %d alert events of group %s (%s), %d already queued",
            queued,
            notification.group_labels,
            notification.status,
            duplicates,
        )
        if queued:
            self.dispatcher.notify()
        return queued, duplicates

    def route(self, severity: str) -> tuple[str, int | None, bool]:
        """Chat, forum topic and silence for a severity: critical, or everything else."""
        settings = self.settings
        if severity == "critical":
            return settings.critical_chat, settings.critical_thread_id, False
        return settings.warning_chat, settings.warning_thread_id, settings.warnings_silent

    def _alert_item(self, alert: Alert) -> NewItem:
        html, length = alert_block(alert, self.settings.grafana_url)
        chat, thread, silent = self.route(alert.severity)
        return NewItem(
            chat_id=chat,
            thread_id=thread,
            silent=silent,
            kind="alert",
            status=alert.status,
            severity=alert.severity,
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at.isoformat(),
            labels=dict(alert.labels),
            html=html,
            length=length,
            ends_at=alert.ends_at.isoformat()
            if alert.status == "resolved" and alert.ends_at
            else "",
        )

    def _truncation_note(self, notification: Notification) -> NewItem:
        chat, thread, silent = self.route(notification.common_labels.get("severity", ""))
        html = (
            f"ℹ️ Alertmanager left out {notification.truncated_alerts} more alerts of the group "  # noqa: RUF001
            f"<code>{text(str(notification.group_labels), 500)}</code> (webhook max_alerts); "
            "see Alertmanager for all of them."
        )
        return NewItem.text(chat, thread, html, silent=silent)

    async def refresh_gauges(self) -> None:
        stats = await self.outbox.call(Outbox.stats)
        self.metrics.pending.set(stats.pending)
        oldest = stats.oldest_received_at
        self.metrics.oldest.set(0 if oldest is None else max(0.0, time.time() - oldest))
