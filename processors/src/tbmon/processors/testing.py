"""A small test kit for plugin authors: real batches in, the host's own isolation around the hook.

Record telemetry with the real OpenTelemetry SDK (the bytes are what a bot would send), run your
plugin the way the host runs it (own thread, time budget, unchanged batch on failure), and read
the result::

    from tbmon.processors import otlp
    from tbmon.processors.testing import record, run

    def test_it_drops_health_checks() -> None:
        with record() as sdk:
            with sdk.tracer.start_as_current_span("GET", attributes={"url.path": "/health"}):
                pass
            with sdk.tracer.start_as_current_span("create_order"):
                pass
        result = run(DropHealthChecks(), sdk.spans())
        assert result.error is None
        assert [span.name for _, _, span in otlp.spans(result.message())] == ["create_order"]

Hand-made batches: :func:`spans_batch`, :func:`logs_batch`, :func:`metrics_batch` with
:func:`span` and :func:`log_record` (and ``otlp.gauge`` / ``otlp.counter`` for metrics).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Generic

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.metrics import Meter
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, ResourceMetrics
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceMessage
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from tbmon.processors.api import (
    Batch,
    ExportLogsServiceRequest,
    ExportMetricsServiceRequest,
    ExportTraceServiceRequest,
    Processor,
    Request,
    Signal,
)
from tbmon.processors.chain import Chain, Plugin
from tbmon.processors.otlp import Value, any_value, key_values

__all__ = [
    "Recording",
    "Result",
    "collect",
    "log_record",
    "logs_batch",
    "metrics_batch",
    "record",
    "run",
    "span",
    "spans_batch",
]

_loggers = itertools.count()


@dataclass
class Recording:
    """SDK providers recording in memory; turn what they recorded into batches."""

    tracer: Tracer
    meter: Meter
    #: A stdlib logger whose records go to the SDK (``extra={...}`` become attributes).
    logger: logging.Logger
    _spans: InMemorySpanExporter
    _logs: InMemoryLogRecordExporter
    _metrics: InMemoryMetricReader

    def spans(self) -> Batch[ExportTraceServiceRequest]:
        """The finished spans as one OTLP export request."""
        return Batch.of(encode_spans(self._spans.get_finished_spans()))

    def logs(self) -> Batch[ExportLogsServiceRequest]:
        """The emitted log records as one OTLP export request."""
        return Batch.of(encode_logs(self._logs.get_finished_logs()))

    def metrics(self) -> Batch[ExportMetricsServiceRequest]:
        """A collection of the meter's instruments as one OTLP export request."""
        data = self._metrics.get_metrics_data()
        if data is None:
            return Batch.of(ExportMetricsServiceRequest())
        return Batch.of(encode_metrics(data))


@contextmanager
def record(resource: Mapping[str, str] | None = None) -> Iterator[Recording]:
    """Real SDK providers (tracer, meter, logger) that record in memory."""
    sdk_resource = Resource.create(dict(resource or {"service.name": "plugin-test"}))
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=sdk_resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logger_provider = LoggerProvider(resource=sdk_resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(resource=sdk_resource, metric_readers=[reader])
    logger = logging.getLogger(f"tbmon.processors.testing.{next(_loggers)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(logger_provider=logger_provider)
    logger.addHandler(handler)
    with ExitStack() as cleanup:
        cleanup.callback(logger.removeHandler, handler)
        cleanup.callback(logger_provider.shutdown)
        cleanup.callback(meter_provider.shutdown)
        cleanup.callback(tracer_provider.shutdown)
        yield Recording(
            tracer=tracer_provider.get_tracer("tbmon.processors.testing"),
            meter=meter_provider.get_meter("tbmon.processors.testing"),
            logger=logger,
            _spans=spans,
            _logs=logs,
            _metrics=reader,
        )


@dataclass(frozen=True)
class Result(Generic[Request]):
    """What the host would forward after the plugin, and why the hook failed (if it did)."""

    batch: Batch[Request]
    #: None when the hook succeeded; else "exception: ...", "timeout: ..." or "bad_return: ..."
    #: (the batch is then the one that went in, as the host forwards it).
    error: str | None

    def message(self) -> Request:
        """The forwarded batch, parsed."""
        return self.batch.read()


def run(
    processor: Processor, batch: Batch[Request], budget_seconds: float = 1.0
) -> Result[Request]:
    """Run the processor's hook for the batch's signal as the host does, and return the result."""
    signal = next(s for s in Signal if s.request_type is batch.message_type)
    plugin = Plugin(type(processor).__name__, processor, budget_seconds)

    async def process() -> bytes:
        try:
            raw, _ = await Chain([plugin]).process(signal, batch.raw)
            return raw
        finally:
            plugin.release()

    raw = asyncio.run(process())
    return Result(Batch(batch.message_type, raw), plugin.last_error if plugin.errors else None)


def collect(processor: Processor, now_unix_nano: int | None = None) -> list[ResourceMetrics]:
    """The processor's derived metrics, collected as the host does (None on failure: [])."""
    plugin = Plugin(type(processor).__name__, processor, 1.0)

    async def gather() -> list[ResourceMetrics]:
        try:
            return list(await plugin.collect(now_unix_nano or time.time_ns()) or ())
        finally:
            plugin.release()

    return asyncio.run(gather())


# -- hand-made batches ------------------------------------------------------------------------


def span(
    name: str,
    attributes: Mapping[str, Value] | None = None,
    *,
    duration_ms: float = 1.0,
    end_unix_nano: int | None = None,
    events: Iterable[tuple[str, Mapping[str, Value]]] = (),
    trace_id: bytes | None = None,
) -> Span:
    """A span with fresh ids, ending now (or at ``end_unix_nano``)."""
    end = end_unix_nano or time.time_ns()
    result = Span(
        trace_id=trace_id or os.urandom(16),
        span_id=os.urandom(8),
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=end - round(duration_ms * 1e6),
        end_time_unix_nano=end,
        attributes=key_values(attributes or {}),
    )
    for event_name, event_attributes in events:
        result.events.add(
            name=event_name, time_unix_nano=end, attributes=key_values(event_attributes)
        )
    return result


def log_record(
    body: Value, attributes: Mapping[str, Value] | None = None, *, time_unix_nano: int | None = None
) -> LogRecord:
    """A log record (severity INFO) with a body and attributes."""
    moment = time_unix_nano or time.time_ns()
    return LogRecord(
        time_unix_nano=moment,
        observed_time_unix_nano=moment,
        severity_number=SeverityNumber.SEVERITY_NUMBER_INFO,
        severity_text="INFO",
        body=any_value(body),
        attributes=key_values(attributes or {}),
    )


def _resource(resource: Mapping[str, Value] | None) -> ResourceMessage:
    return ResourceMessage(attributes=key_values(resource or {"service.name": "plugin-test"}))


def spans_batch(
    *spans: Span, resource: Mapping[str, Value] | None = None
) -> Batch[ExportTraceServiceRequest]:
    """One resource's spans as an export request."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add(resource=_resource(resource))
    resource_spans.scope_spans.add().spans.extend(spans)
    return Batch.of(request)


def logs_batch(
    *records: LogRecord, resource: Mapping[str, Value] | None = None
) -> Batch[ExportLogsServiceRequest]:
    """One resource's log records as an export request."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add(resource=_resource(resource))
    resource_logs.scope_logs.add().log_records.extend(records)
    return Batch.of(request)


def metrics_batch(
    *metrics: Metric, resource: Mapping[str, Value] | None = None
) -> Batch[ExportMetricsServiceRequest]:
    """One resource's metrics as an export request."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add(resource=_resource(resource))
    resource_metrics.scope_metrics.add().metrics.extend(metrics)
    return Batch.of(request)
