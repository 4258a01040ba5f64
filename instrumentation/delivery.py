"""Telemetry the bot could not deliver, counted: ``tbmon_telemetry_dropped_total``.

The SDK's batch processors drop silently when their queue is full (one "Queue full" log line)
and its exporters give up on a batch after their timeout. A bot whose collector is away must
keep trading, with its spans and logs buffered within bounds; an operator must still learn what
was lost. These processors are the SDK's own batch processors, with their queue and their
exporter watched:

- ``tbmon_telemetry_dropped_total{signal, reason}``: items dropped, ``reason`` being
  ``queue_full`` (the queue was at its bound), ``already_shutdown`` or ``export_failed``
  (the exporter gave up after its retries);
- ``tbmon_telemetry_queue_size{signal}``: items waiting in memory.

The counters reach Prometheus once the collector is back (they are cumulative).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from tbmon.instrumentation.distro import QUEUE_SIZE, SCHEDULE_DELAY_MILLIS
from tbmon.instrumentation.instruments import meter

logger = logging.getLogger(__name__)

#: The batching used when the environment's makes the SDK refuse to build a processor (a batch
#: larger than the queue, a delay of 0...): without it the SDK's set-up fails as a whole and the
#: bot runs with no telemetry at all.
FALLBACK_BATCHING = {
    "max_queue_size": QUEUE_SIZE,
    "schedule_delay_millis": SCHEDULE_DELAY_MILLIS,
    "max_export_batch_size": 512,
}

DROPPED_METRIC = "tbmon_telemetry_dropped"
#: The signals and the usual reasons of a drop, whose series exist (at 0) from the start.
SIGNALS = ("spans", "logs")
REASONS = ("queue_full", "export_failed")
QUEUE_SIZE_METRIC = "tbmon_telemetry_queue_size"


class DeliveryStats:
    """Dropped items per (signal, reason) and queue lengths per signal, for one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # At 0 from the start, so that the first drop is an increase of a series Prometheus
        # already has (an alert's increase() sees nothing of a series that appears at its value).
        self._dropped: dict[tuple[str, str], int] = {
            (signal, reason): 0 for signal in SIGNALS for reason in REASONS
        }
        self._queues: dict[str, Callable[[], int]] = {}

    def drop(self, signal: str, reason: str, count: int) -> None:
        with self._lock:
            key = (signal, reason)
            self._dropped[key] = self._dropped.get(key, 0) + count

    def dropped(self, signal: str, reason: str) -> int:
        with self._lock:
            return self._dropped.get((signal, reason), 0)

    def watch_queue(self, signal: str, length: Callable[[], int]) -> None:
        self._queues[signal] = length

    def observe(self, meter_provider: MeterProvider | None = None) -> None:
        """Publish the counts as metrics on ``meter_provider`` (default: the global one)."""
        tbmon_meter = meter(meter_provider)
        tbmon_meter.create_observable_counter(
            DROPPED_METRIC,
            callbacks=[self._observe_dropped],
            description="Spans and log records the bot dropped instead of exporting, by reason.",
        )
        tbmon_meter.create_observable_gauge(
            QUEUE_SIZE_METRIC,
            callbacks=[self._observe_queues],
            description="Spans and log records waiting in the bot's memory for export.",
        )

    def _observe_dropped(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            counts = dict(self._dropped)
        return [
            Observation(count, {"signal": signal, "reason": reason})
            for (signal, reason), count in counts.items()
        ]

    def _observe_queues(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(length(), {"signal": s}) for s, length in self._queues.items()]


class _CountingExporter:
    """Forwards to a span or log exporter; a batch it fails to export is ``export_failed``."""

    def __init__(self, exporter: Any, success: object, signal: str, stats: DeliveryStats) -> None:
        self._exporter, self._success, self._signal, self._stats = exporter, success, signal, stats

    def export(self, batch: Sequence[Any]) -> Any:
        result = self._exporter.export(batch)
        if result is not self._success:
            self._stats.drop(self._signal, "export_failed", len(batch))
        return result

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self._exporter.force_flush(timeout_millis))


class _QueueMetrics:
    """The SDK's processor-metrics protocol, feeding :class:`DeliveryStats` (one add a drop)."""

    def __init__(self, signal: str, stats: DeliveryStats) -> None:
        self._signal, self._stats = signal, stats

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        self._stats.watch_queue(self._signal, get_queue_size)

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        self._stats.drop(self._signal, error_type, count)

    def finish_items(self, count: int) -> None:
        """Exported items are the exporter's business; only losses are counted here."""


def _watch(processor: Any, signal: str, stats: DeliveryStats) -> None:
    # The SDK builds its BatchProcessor's metrics itself (on only with its internal-metrics
    # switch, which also costs three metric updates per span); ours replace them.
    batch_processor = processor._batch_processor
    metrics = _QueueMetrics(signal, stats)
    batch_processor._metrics = metrics
    metrics.register_queue_size(batch_processor._queue.__len__)


Processor = TypeVar("Processor", BatchSpanProcessor, BatchLogRecordProcessor)


def _batching(
    processor_type: Callable[..., Processor], success: object, signal: str, stats: DeliveryStats
) -> Callable[[Any], Processor]:
    def create(exporter: Any) -> Processor:
        counting = _CountingExporter(exporter, success, signal, stats)
        try:
            processor = processor_type(counting)
        except ValueError as error:
            logger.warning(
                "tbmon: invalid batch settings for %s (%s); using %s",
                signal,
                error,
                FALLBACK_BATCHING,
            )
            processor = processor_type(counting, **FALLBACK_BATCHING)
        _watch(processor, signal, stats)
        return processor

    return create


def span_processor(stats: DeliveryStats) -> Callable[[SpanExporter], BatchSpanProcessor]:
    """A factory of the SDK's BatchSpanProcessor whose losses ``stats`` counts."""
    return _batching(BatchSpanProcessor, SpanExportResult.SUCCESS, "spans", stats)


def log_record_processor(
    stats: DeliveryStats,
) -> Callable[[LogRecordExporter], BatchLogRecordProcessor]:
    """A factory of the SDK's BatchLogRecordProcessor whose losses ``stats`` counts."""
    return _batching(BatchLogRecordProcessor, LogRecordExportResult.SUCCESS, "logs", stats)
