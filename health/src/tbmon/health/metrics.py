"""The health service's Prometheus metrics (served at ``/health/metrics``).

The names are a contract: the "system health failures" alert and the System Health dashboard
query them. Each service instance keeps its own registry, so tests and several apps in one
process never share series.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tbmon.health.check import Status

#: Content type of :meth:`HealthMetrics.render`.
CONTENT_TYPE = CONTENT_TYPE_LATEST


class HealthMetrics:
    """Per-component status, check duration and check time, plus the process's own figures."""

    def __init__(self, components: Iterable[tuple[str, bool]]) -> None:
        self.registry = CollectorRegistry()
        self.status = Gauge(
            "health_component_status",
            "Component health: 2 healthy, 1 degraded, 0 unhealthy.",
            ["component"],
            registry=self.registry,
        )
        self.duration = Gauge(
            "health_check_duration_seconds",
            "How long the component's latest check took.",
            ["component"],
            registry=self.registry,
        )
        self.timestamp = Gauge(
            "health_check_timestamp_seconds",
            "Unix time the component's latest check finished.",
            ["component"],
            registry=self.registry,
        )
        critical = Gauge(
            "health_component_critical",
            "1 if the component's failure makes the service unready, else 0.",
            ["component"],
            registry=self.registry,
        )
        self.checks = Counter(
            "health_checks",
            "Checks run, by component and result.",
            ["component", "status"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        for name, is_critical in components:
            critical.labels(name).set(1 if is_critical else 0)
            for status in Status:
                self.checks.labels(name, status.value)

    def observe(self, component: str, status: Status, duration: float, finished: float) -> None:
        """Record one finished check."""
        self.status.labels(component).set(status.level)
        self.duration.labels(component).set(duration)
        self.timestamp.labels(component).set(finished)
        self.checks.labels(component, status.value).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)
