"""The collector: its health_check extension, then whether its exporters actually deliver.

The extension only says the process runs. Delivery shows in the collector's own telemetry:
failed sends and refused enqueues (data dropped), and queues that hold batches while nothing
is sent (a backend down: with retries that never give up, this is the only sign).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tbmon.health.check import Check, Outcome, Status
from tbmon.health.endpoints import HttpClientCheck, http_error
from tbmon.health.settings import HealthSettings

# Collector telemetry names (suffix-free, as the collector's pull reader serves them; a
# `_total` suffix is tolerated). Each counts items: spans, metric points, log records...
_SENT = "otelcol_exporter_sent_"
_SEND_FAILED = "otelcol_exporter_send_failed_"
_ENQUEUE_FAILED = "otelcol_exporter_enqueue_failed_"
_QUEUE_SIZE = "otelcol_exporter_queue_size"
_QUEUE_CAPACITY = "otelcol_exporter_queue_capacity"
_REFUSED = "otelcol_receiver_refused_"
_WANTED = ("otelcol_exporter_", "otelcol_receiver_refused_")


@dataclass
class _Exporter:
    sent: float = 0.0
    send_failed: float = 0.0
    enqueue_failed: float = 0.0
    queue_size: float = 0.0
    queue_capacity: float = 0.0


@dataclass
class _Telemetry:
    exporters: dict[str, _Exporter]
    refused: float


def parse_telemetry(text: str) -> _Telemetry:
    """The figures the check judges, from the collector's Prometheus text."""
    # Only a few families matter: filter lines first, the full page is large.
    wanted = "\n".join(line for line in text.splitlines() if line.startswith(_WANTED))
    exporters: defaultdict[str, _Exporter] = defaultdict(_Exporter)
    refused = 0.0
    for family in text_string_to_metric_families(wanted + "\n"):
        for sample in family.samples:
            name = sample.name.removesuffix("_total")
            if name.startswith(_REFUSED):
                refused += sample.value
                continue
            exporter = sample.labels.get("exporter")
            if exporter is None:
                continue
            figures = exporters[exporter]
            if name.startswith(_SEND_FAILED):
                figures.send_failed += sample.value
            elif name.startswith(_ENQUEUE_FAILED):
                figures.enqueue_failed += sample.value
            elif name.startswith(_SENT):
                figures.sent += sample.value
            elif name == _QUEUE_SIZE:
                figures.queue_size += sample.value
            elif name == _QUEUE_CAPACITY:
                figures.queue_capacity += sample.value
    return _Telemetry(dict(exporters), refused)


class CollectorCheck(HttpClientCheck):
    """Unhealthy if the extension does not answer; degraded if data is dropped or stuck."""

    def __init__(self, health_url: str, metrics_url: str, queue_degraded_percent: float) -> None:
        super().__init__()
        self.health_url = health_url
        self.metrics_url = metrics_url
        self.queue_degraded_percent = queue_degraded_percent
        self._previous: _Telemetry | None = None

    async def check(self) -> Outcome:
        health = await self.get(self.health_url)
        metadata: dict[str, Any] = {"url": self.health_url}
        if not health.is_success:
            return Outcome(Status.UNHEALTHY, {**metadata, "error": http_error(health)})
        with contextlib.suppress(ValueError):  # the extension's body is informative only
            metadata.update(health.json())
        telemetry = await self.get(self.metrics_url)
        if not telemetry.is_success:
            metadata["error"] = f"telemetry at {self.metrics_url}: {http_error(telemetry)}"
            return Outcome(Status.DEGRADED, metadata)
        current = parse_telemetry(telemetry.text)
        problems = self._problems(current, self._previous)
        self._previous = current
        metadata["exporters"] = {
            name: {
                "sent": figures.sent,
                "send_failed": figures.send_failed,
                "enqueue_failed": figures.enqueue_failed,
                "queue_size": figures.queue_size,
                "queue_capacity": figures.queue_capacity,
            }
            for name, figures in sorted(current.exporters.items())
        }
        metadata["receiver_refused"] = current.refused
        if problems:
            metadata["error"] = "; ".join(problems)
            return Outcome(Status.DEGRADED, metadata)
        return Outcome(Status.HEALTHY, metadata)

    def _problems(self, current: _Telemetry, previous: _Telemetry | None) -> list[str]:
        problems = []
        for name, now in sorted(current.exporters.items()):
            if now.queue_capacity and (
                100 * now.queue_size / now.queue_capacity >= self.queue_degraded_percent
            ):
                problems.append(
                    f"exporter {name}: queue {now.queue_size:g} of {now.queue_capacity:g}"
                )
            before = previous.exporters.get(name) if previous else None
            if before is None:
                # No earlier reading to diff: totals since start-up only show an exporter that
                # has failed and never delivered (old failures of a working one are history).
                dropped = now.send_failed + now.enqueue_failed
                if dropped > 0 and now.sent == 0:
                    problems.append(
                        f"exporter {name}: {dropped:g} items dropped and none sent since the "
                        "collector started"
                    )
                continue
            failed = (now.send_failed - before.send_failed) + (
                now.enqueue_failed - before.enqueue_failed
            )
            if failed > 0:
                problems.append(f"exporter {name}: {failed:g} items dropped since the last check")
            if now.queue_size > 0 and before.queue_size > 0 and now.sent <= before.sent:
                problems.append(
                    f"exporter {name}: {now.queue_size:g} batches queued and nothing sent "
                    "since the last check (is its backend down?)"
                )
        if previous is not None and current.refused > previous.refused:
            problems.append(
                f"receivers refused {current.refused - previous.refused:g} items since the last "
                "check (memory_limiter: the collector is overloaded)"
            )
        return problems


def collector_check(settings: HealthSettings) -> Check:
    return CollectorCheck(
        settings.collector_url,
        settings.collector_metrics_url,
        settings.collector_queue_degraded_percent,
    )
