"""A numbered load for the fault suite: spans and log records, each request acknowledged, each
item counted in Jaeger and the log store afterwards."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

import grpc
import httpx
import psutil
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SEVERITY_NUMBER_INFO, LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from support import Backends

from tbmon.processors import Signal
from tbmon.stack.components import select
from tbmon.stack.supervisor import Supervisor

#: Items per request, and requests per second per signal: 100 spans/s and 100 log records/s.
PER_REQUEST = 10
INTERVAL = 0.1
#: Spans per trace: the spans are counted trace by trace.
PER_TRACE = 100
NUMBER = "load.n"


#: An attribute value: a scalar, or a map or an array of them (nested as deep as wanted).
Attr: TypeAlias = str | int | float | dict[str, "Attr"] | list["Attr"]


def value(item: Attr) -> AnyValue:
    """``item`` as OTLP's AnyValue (a dict as a kvlist_value, a list as an array_value)."""
    if isinstance(item, str):
        return AnyValue(string_value=item)
    if isinstance(item, float):
        return AnyValue(double_value=item)
    if isinstance(item, dict):
        result = AnyValue()
        result.kvlist_value.values.extend(attributes(item))
        return result
    if isinstance(item, list):
        result = AnyValue()
        result.array_value.values.extend(value(element) for element in item)
        return result
    return AnyValue(int_value=item)


def attributes(values: dict[str, Attr]) -> list[KeyValue]:
    return [KeyValue(key=key, value=value(item)) for key, item in values.items()]


def trace_id(service: str, trace: int) -> bytes:
    return hashlib.sha256(f"{service}/{trace}".encode()).digest()[:16]


def spans_request(service: str, numbers: range, extra: dict[str, Attr]) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(attributes({"service.name": service}))
    scope = resource_spans.scope_spans.add()
    now = time.time_ns()
    for number in numbers:
        scope.spans.append(
            Span(
                trace_id=trace_id(service, number // PER_TRACE),
                span_id=(number + 1).to_bytes(8, "big"),
                name="load",
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=now - 1_000_000,
                end_time_unix_nano=now,
                attributes=attributes({NUMBER: number, **extra}),
            )
        )
    return request.SerializeToString()


def logs_request(
    service: str,
    numbers: range,
    extra: dict[str, Attr],
    suffix: str = "",
    body: Attr | None = None,
) -> bytes:
    """Numbered log records; ``body`` (a map or an array) replaces the numbered text body, which
    then goes to the attribute ``loadtext``."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(attributes({"service.name": service}))
    scope = resource_logs.scope_logs.add()
    now = time.time_ns()
    for number in numbers:
        scope.log_records.append(
            LogRecord(
                time_unix_nano=now,
                observed_time_unix_nano=now,
                severity_number=SEVERITY_NUMBER_INFO,
                severity_text="INFO",
                body=value(f"load {service} {number}{suffix}" if body is None else body),
                attributes=attributes(
                    {NUMBER: number, **extra}
                    if body is None
                    else {NUMBER: number, "loadtext": f"load {service} {number}{suffix}", **extra}
                ),
            )
        )
    return request.SerializeToString()


def metrics_request(service: str, gauges: dict[str, tuple[float, dict[str, Attr]]]) -> bytes:
    """One resource's gauges, each one point: name -> (value, attributes)."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(attributes({"service.name": service}))
    scope = resource_metrics.scope_metrics.add()
    now = time.time_ns()
    for name, (number, labels) in gauges.items():
        metric = scope.metrics.add(name=name)
        metric.gauge.data_points.add(
            time_unix_nano=now, as_double=number, attributes=attributes(labels)
        )
    return request.SerializeToString()


def export(endpoint: str, signal_: Signal, raw: bytes, timeout: float = 5.0) -> None:
    """One OTLP/gRPC export, as a bot's exporter makes it; raises grpc.RpcError."""
    with grpc.insecure_channel(
        endpoint, options=[("grpc.max_send_message_length", 64 * 2**20)]
    ) as channel:
        channel.unary_unary(signal_.method)(raw, timeout=timeout)


@dataclass
class NumberedLoad:
    """Sends numbered spans and log records at 100/s each until stopped; a request that fails
    is sent again until the collector acknowledges it (a bot's exporter retrying)."""

    endpoint: str
    service: str
    extra: dict[str, Attr] = field(default_factory=dict)
    #: Items sent and acknowledged, per signal; acknowledgement times (monotonic) per item.
    acknowledged: dict[Signal, dict[int, float]] = field(
        default_factory=lambda: {Signal.SPANS: {}, Signal.LOGS: {}}
    )
    retries: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> NumberedLoad:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=120)
        assert not self._thread.is_alive(), "the load did not stop"

    @property
    def sent(self) -> int:
        return len(self.acknowledged[Signal.SPANS])

    def _run(self) -> None:
        started = time.monotonic()
        request = 0
        while not self._stop.is_set():
            numbers = range(request * PER_REQUEST, (request + 1) * PER_REQUEST)
            self._deliver(Signal.SPANS, spans_request(self.service, numbers, self.extra), numbers)
            self._deliver(Signal.LOGS, logs_request(self.service, numbers, self.extra), numbers)
            request += 1
            pause = started + request * INTERVAL - time.monotonic()
            if pause > 0:
                self._stop.wait(pause)

    def _deliver(self, signal_: Signal, raw: bytes, numbers: range) -> None:
        while True:
            try:
                export(self.endpoint, signal_, raw)
            except grpc.RpcError:
                self.retries += 1
                time.sleep(0.2)
                continue
            now = time.monotonic()
            for number in numbers:
                self.acknowledged[signal_][number] = now
            return


def kill(supervisor: Supervisor, name: str) -> float:
    """kill -9 a component of the stack; returns when (monotonic) it was killed."""
    (component,) = select([name])
    process = supervisor._process(component)
    assert process is not None, f"{name} is not running"
    killed = time.monotonic()
    os.kill(process.pid, signal.SIGKILL)
    try:
        process.wait(timeout=30)
    except psutil.TimeoutExpired as error:
        raise AssertionError(f"{name} did not die") from error
    return killed


def spans_in_jaeger(backends: Backends, service: str, count: int) -> Counter[int]:
    """How many times each number is in Jaeger (fetched trace by trace)."""
    found: Counter[int] = Counter()
    for trace in range((count + PER_TRACE - 1) // PER_TRACE):
        for span in backends.jaeger_trace(trace_id(service, trace).hex()):
            for tag in span["tags"]:
                if tag["key"] == NUMBER:
                    found[int(tag["value"])] += 1
    return found


def logs_in_store(backends: Backends, service: str) -> Counter[int]:
    """How many times each number is in the log store."""
    found: Counter[int] = Counter()
    for record in backends.logs(f'"load {service}"'):
        message = record.get("_msg", "")
        if message.startswith(f"load {service} "):
            found[int(message.rsplit(" ", 1)[1])] += 1
    return found


def settle(count: Callable[[], Counter[int]], expected: int, timeout: float) -> Counter[int]:
    """Poll ``count`` until it holds ``expected`` distinct numbers, or it has not changed for a
    while (what is missing then is lost), or ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Counter[int] = Counter()
    unchanged_since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            found = count()
        except httpx.HTTPError:
            found = last
        if len(found) >= expected:
            time.sleep(2)  # late duplicates
            return count()
        if found != last:
            last, unchanged_since = found, time.monotonic()
        elif time.monotonic() - unchanged_since > 45:
            return found
        time.sleep(1)
    return last


@dataclass(frozen=True)
class Tally:
    """What arrived of a numbered load, per signal."""

    sent: int
    lost: list[int]
    duplicated: list[int]

    @classmethod
    def of(cls, sent: int, found: Counter[int]) -> Tally:
        return cls(
            sent=sent,
            lost=[n for n in range(sent) if found[n] == 0],
            duplicated=sorted(n for n, times in found.items() if times > 1),
        )

    def __str__(self) -> str:
        return f"{self.sent} sent, {len(self.lost)} lost, {len(self.duplicated)} duplicated"
