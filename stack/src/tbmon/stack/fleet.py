"""A fleet of synthetic bots: counted OTLP traffic for the scaled topology's tests and benchmark.

Each bot is a ``service.name``; every request it sends over OTLP/gRPC carries whole traces (a
root span and its children), log records that carry their span's trace id and a sequence number
(``fleet.seq``), and a cumulative counter of the spans it has sent (``fleet_spans_sent_total``).
Only what the receiving collector acknowledged is counted as sent, so what arrives in Jaeger,
the log store and the metrics store can be checked against it exactly. The requests are built
before the clock starts, so the pace is the collectors', not protobuf's.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
_METRICS = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

#: The counter each bot reports: spans it has had acknowledged so far.
SENT_METRIC = "fleet_spans_sent_total"


@dataclass
class Sent:
    """What the collectors acknowledged."""

    spans: int = 0
    logs: int = 0
    points: int = 0
    requests: int = 0
    failures: int = 0
    traces: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    spans_by_service: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    logs_by_service: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: (wall-clock time acknowledged, first fleet.seq, last fleet.seq) of each logs request.
    log_batches: list[tuple[float, int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class _Batch:
    service: str
    traces: bytes
    logs: bytes
    trace_ids: list[str]
    spans: int
    records: int
    first_seq: int


def _attribute(key: str, value: str | int) -> KeyValue:
    any_value = (
        AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    )
    return KeyValue(key=key, value=any_value)


class Fleet:
    """``bots`` services sending to ``endpoints`` (host:port of OTLP/gRPC receivers), each
    endpoint at ``rate`` requests a second; each request holds ``traces`` traces of ``spans``
    spans, and one log record per span."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        run: str,
        bots: int = 4,
        rate: float = 2.0,
        traces: int = 5,
        spans: int = 4,
    ) -> None:
        self.endpoints = endpoints
        self.services = [f"{run}-bot-{k}" for k in range(bots)]
        self.rate = rate
        self.traces_per_request = traces
        self.spans_per_trace = spans
        self.sent = Sent()
        self._lock = threading.Lock()
        self._building = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seq = 0

    # -- building ---------------------------------------------------------------------------

    def _batch(self, service: str) -> _Batch:
        with self._building:  # one batch's sequence numbers are consecutive
            return self._build(service)

    def _build(self, service: str) -> _Batch:
        now = time.time_ns()
        request = ExportTraceServiceRequest()
        logs = ExportLogsServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.append(_attribute("service.name", service))
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "tbmon.fleet"
        resource_logs = logs.resource_logs.add()
        resource_logs.resource.attributes.append(_attribute("service.name", service))
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.name = "tbmon.fleet"
        trace_ids = []
        first_seq = self._seq + 1
        for _ in range(self.traces_per_request):
            trace_id = os.urandom(16)
            trace_ids.append(trace_id.hex())
            root = os.urandom(8)
            for index in range(self.spans_per_trace):
                span_id = root if index == 0 else os.urandom(8)
                span = scope_spans.spans.add(
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_span_id=b"" if index == 0 else root,
                    name="trade" if index == 0 else f"step-{index}",
                    kind=Span.SPAN_KIND_INTERNAL,
                    start_time_unix_nano=now,
                    end_time_unix_nano=now + 1_000_000,
                )
                span.attributes.append(_attribute("fleet.index", index))
                self._seq += 1
                record = scope_logs.log_records.add(
                    time_unix_nano=now,
                    observed_time_unix_nano=now,
                    severity_number=9,
                    severity_text="INFO",
                    trace_id=trace_id,
                    span_id=span_id,
                )
                record.body.string_value = f"fleet step {index} of {trace_id.hex()}"
                record.attributes.append(_attribute("fleet.seq", self._seq))
        count = self.traces_per_request * self.spans_per_trace
        return _Batch(
            service,
            request.SerializeToString(),
            logs.SerializeToString(),
            trace_ids,
            count,
            count,
            first_seq,
        )

    def _metrics(self, service: str, total: int) -> bytes:
        request = ExportMetricsServiceRequest()
        resource_metrics = request.resource_metrics.add()
        resource_metrics.resource.attributes.append(_attribute("service.name", service))
        metric: Metric = resource_metrics.scope_metrics.add().metrics.add(name=SENT_METRIC)
        metric.sum.is_monotonic = True
        metric.sum.aggregation_temporality = (
            AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        )
        point = metric.sum.data_points.add(
            time_unix_nano=time.time_ns(), start_time_unix_nano=self._started_ns
        )
        point.as_int = total
        return request.SerializeToString()

    # -- sending ----------------------------------------------------------------------------

    def start(self, duration: float | None = None, prebuild: int = 0) -> None:
        """Start sending from one thread per endpoint, for ``duration`` seconds or until
        :meth:`stop`. ``prebuild`` batches per endpoint are built before the clock starts."""
        self._started_ns = time.time_ns()
        for index, endpoint in enumerate(self.endpoints):
            services = self.services[index :: len(self.endpoints)] or self.services
            ready = [self._batch(services[k % len(services)]) for k in range(prebuild)]
            thread = threading.Thread(
                target=self._run,
                args=(endpoint, services, ready, duration),
                name=f"fleet-{endpoint}",
                daemon=True,
            )
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def stop(self) -> Sent:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return self.sent

    def wait(self) -> Sent:
        for thread in self._threads:
            thread.join()
        return self.sent

    def _run(
        self, endpoint: str, services: list[str], ready: list[_Batch], duration: float | None
    ) -> None:
        options = [("grpc.max_send_message_length", 64 * 2**20)]
        with grpc.insecure_channel(endpoint, options=options) as channel:
            export = {
                path: channel.unary_unary(path, lambda b: b, lambda b: b)
                for path in (_TRACES, _LOGS, _METRICS)
            }
            started = time.monotonic()
            totals: dict[str, int] = defaultdict(int)
            tick = 0
            while not self._stop.is_set():
                if duration is not None and time.monotonic() - started >= duration:
                    break
                due = started + tick / self.rate
                pause = due - time.monotonic()
                if pause > 0 and self._stop.wait(pause):
                    break
                batch = ready[tick] if tick < len(ready) else None
                if batch is None:
                    batch = self._batch(services[tick % len(services)])
                tick += 1
                if not self._deliver(export[_TRACES], batch.traces):
                    continue
                totals[batch.service] += batch.spans
                logs_ok = self._deliver(export[_LOGS], batch.logs)
                metrics = self._metrics(batch.service, totals[batch.service])
                points_ok = self._deliver(export[_METRICS], metrics)
                with self._lock:
                    sent = self.sent
                    sent.requests += 1
                    sent.spans += batch.spans
                    sent.spans_by_service[batch.service] += batch.spans
                    sent.traces[batch.service].extend(batch.trace_ids)
                    if logs_ok:
                        sent.log_batches.append(
                            (time.time(), batch.first_seq, batch.first_seq + batch.records - 1)
                        )
                        sent.logs += batch.records
                        sent.logs_by_service[batch.service] += batch.records
                    if points_ok:
                        sent.points += 1

    def _deliver(self, call: grpc.UnaryUnaryMultiCallable[bytes, bytes], body: bytes) -> bool:
        """Send until acknowledged (a receiver refusing for a moment is retried), or give up
        after 30 s and count a failure."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                call(body, timeout=10)
            except grpc.RpcError:
                time.sleep(0.2)
                continue
            return True
        with self._lock:
            self.sent.failures += 1
        return False
