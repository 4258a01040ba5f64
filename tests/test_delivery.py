"""The bot's account of what it could not deliver (``tbmon.instrumentation.delivery``).

Every span and log record is either handed to the exporter or counted as dropped, never both:
producers on several threads fill a small queue while the batch worker drains it, the race in
which the SDK's own count of full-queue drops is off (it counted 150-200 drops too many in
80,000 spans here). Failed exports are told apart by what reached the collector: a refused
connection is ``export_failed``, an attempt that ran into its deadline after a real gRPC server
received the request is unconfirmed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tbmon.instrumentation import delivery
from tbmon.instrumentation.exporters import TRACES_METHOD, TbmonSpanExporter
from tbmon.ports import free_ports

THREADS, ITEMS = 4, 20_000


class SpanSink(SpanExporter):
    """Counts what it is handed; a real exporter's place, not a stand-in for tbmon's code."""

    def __init__(self) -> None:
        self.received = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.received += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class LogSink(LogRecordExporter):
    def __init__(self) -> None:
        self.received = 0

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.received += len(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


@pytest.fixture
def small_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """A queue of 64 drained in batches of 32 as soon as it fills: drops and pops interleave."""
    for prefix in ("OTEL_BSP", "OTEL_BLRP"):
        monkeypatch.setenv(f"{prefix}_MAX_QUEUE_SIZE", "64")
        monkeypatch.setenv(f"{prefix}_MAX_EXPORT_BATCH_SIZE", "32")
        monkeypatch.setenv(f"{prefix}_SCHEDULE_DELAY", "1")


def on_threads(work: Any) -> None:
    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.usefixtures("small_queue")
def test_every_span_is_exported_or_counted_as_dropped_never_both() -> None:
    stats, sink = delivery.DeliveryStats(), SpanSink()
    provider = TracerProvider()
    provider.add_span_processor(delivery.span_processor(stats)(sink))
    tracer = provider.get_tracer("flood")

    def flood() -> None:
        for _ in range(ITEMS):
            tracer.start_span("tick").end()

    on_threads(flood)
    provider.shutdown()
    dropped = stats.dropped("spans", "queue_full")
    assert dropped > 0  # the queue did overflow
    assert sink.received + dropped == THREADS * ITEMS, (sink.received, dropped)


@pytest.mark.usefixtures("small_queue")
def test_every_log_record_is_exported_or_counted_as_dropped_never_both() -> None:
    stats, sink = delivery.DeliveryStats(), LogSink()
    provider = LoggerProvider()
    provider.add_log_record_processor(delivery.log_record_processor(stats)(sink))
    logger = provider.get_logger("flood")

    def flood() -> None:
        for _ in range(ITEMS):
            logger.emit(body="tick", severity_number=SeverityNumber.INFO)

    on_threads(flood)
    provider.shutdown()
    dropped = stats.dropped("logs", "queue_full")
    assert dropped > 0
    assert sink.received + dropped == THREADS * ITEMS, (sink.received, dropped)


@pytest.fixture
def slow_collector() -> Iterator[tuple[str, threading.Event]]:
    """A real gRPC server on the traces method that receives each request, then answers only
    once told to (or after 30 s): the answer, not the request, is what gets lost."""
    release, received = threading.Event(), threading.Event()

    def export(request: bytes, context: grpc.ServicerContext) -> bytes:
        received.set()
        release.wait(30)
        return b""

    handler = grpc.method_handlers_generic_handler(
        TRACES_METHOD.split("/")[1],
        {TRACES_METHOD.split("/")[2]: grpc.unary_unary_rpc_method_handler(export)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", received
    finally:
        release.set()
        server.stop(None)


def one_span_export(endpoint: str, stats: delivery.DeliveryStats) -> None:
    exporter = TbmonSpanExporter(endpoint=endpoint, insecure=True, timeout=1)
    provider = TracerProvider()
    provider.add_span_processor(delivery.span_processor(stats)(exporter))
    provider.get_tracer("bot").start_span("order").end()
    provider.force_flush()
    provider.shutdown()


def test_an_export_the_collector_received_but_did_not_answer_is_not_counted_as_dropped(
    slow_collector: tuple[str, threading.Event],
) -> None:
    endpoint, received = slow_collector
    stats = delivery.DeliveryStats()
    one_span_export(endpoint, stats)
    assert received.is_set()
    assert stats.dropped("spans", "export_failed") == 0
    assert stats.unconfirmed("spans") == 1


def test_an_export_to_a_collector_that_is_away_is_counted_as_dropped() -> None:
    (port,) = free_ports(1)  # nobody listens there: every attempt is refused
    stats = delivery.DeliveryStats()
    one_span_export(f"127.0.0.1:{port}", stats)
    assert stats.dropped("spans", "export_failed") == 1
    assert stats.unconfirmed("spans") == 0
