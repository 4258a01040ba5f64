"""The bridge's own metrics (``GET /metrics``), in a registry per app so tests can run several."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class BridgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.notifications = Counter(
            "alert_bridge_notifications",
            "Alertmanager webhook calls, by result.",
            ["result"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "alert_bridge_alerts_received",
            "Alerts received in webhook calls, by status.",
            ["status"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "alert_bridge_alerts_deduplicated",
            "Alert events skipped because they were already queued within the dedup window.",
            registry=self.registry,
        )
        self.messages = Counter(
            "alert_bridge_messages_sent",
            "Messages Telegram accepted.",
            registry=self.registry,
        )
        self.given_up = Counter(
            "alert_bridge_messages_given_up",
            "Command replies and notes dropped because Telegram refused them permanently "
            "(400/403: chat not found, bot kicked or blocked); alerts are never given up.",
            registry=self.registry,
        )
        self.telegram_errors = Counter(
            "alert_bridge_telegram_errors",
            "Failed Telegram calls, by method and kind (429, 4xx, unavailable).",
            ["method", "kind"],
            registry=self.registry,
        )
        self.delivery = Histogram(
            "alert_bridge_delivery_seconds",
            "From accepting an alert event to Telegram confirming its message.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
            registry=self.registry,
        )
        self.pending = Gauge(
            "alert_bridge_outbox_pending",
            "Alert events and replies waiting in the outbox.",
            registry=self.registry,
        )
        self.oldest = Gauge(
            "alert_bridge_outbox_oldest_age_seconds",
            "Age of the oldest waiting event (0 when none waits).",
            registry=self.registry,
        )
