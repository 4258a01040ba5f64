"""tbmon's OTLP encoder against the stock one, and its gRPC exporters against a real gRPC server.

The oracle is the SDK's own encoder: for spans and log records made by the real SDK, our bytes
must equal ``encode_spans(...)``/``encode_logs(...)``'s ``SerializeToString()`` (upb writes fields
in field-number order, and so do we), which implies the parsed messages are equal too.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as stock_encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
    encode_spans as stock_encode_spans,
)
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk._configuration import _import_exporters
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordDroppedAttributesWarning,
    LogRecordLimits,
    ReadableLogRecord,
)
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from tbmon.instrumentation._internal import encoding
from tbmon.instrumentation._internal.encoding import encode_logs, encode_spans
from tbmon.instrumentation.exporters import TbmonLogExporter, TbmonSpanExporter
from tbmon.ports import free_ports
from tbmon.standins import silent_server

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: One of each attribute value kind the SDK keeps (it keeps nested and mixed ones too).
EVERY_KIND: dict[str, Any] = {
    "str": "binance",
    "empty": "",
    "unicode": "BTC/USDT \u00e9\u2603\U0001f680",
    "true": True,
    "false": False,
    "zero": 0,
    "small": 7,
    "negative": -1,
    "int64.max": INT64_MAX,
    "int64.min": INT64_MIN,
    "float": 42010.5,
    "float.zero": 0.0,
    "float.negative_zero": -0.0,
    "float.inf": math.inf,
    "float.negative": -1e-300,
    "bytes": b"\x00\x01\xff",
    "bytes.empty": b"",
    "strs": ("buy", "", "sell"),
    "bools": (True, False),
    "ints": (0, -5, INT64_MAX, INT64_MIN),
    "floats": (0.0, -0.0, 1.5),
    "empty.sequence": (),
    "mixed": (1, "a", None, 2.5, b"b"),
    "nested": ((1, 2), ("a",)),
    "mapping": {"k": "v", "n": {"deep": [1, None]}, "empty": {}},
    "none": None,
}


def assert_encodes_like_stock(ours: bytes, stock: Message) -> None:
    """Our bytes are the stock message's serialization; on a difference, show it field by field."""
    expected = stock.SerializeToString()
    if ours != expected:
        assert str(type(stock).FromString(ours)) == str(stock)
        assert ours == expected, "the same fields, in another order"


def assert_spans_encode_like_stock(spans: Sequence[ReadableSpan]) -> None:
    assert_encodes_like_stock(encode_spans(spans), stock_encode_spans(spans))


def assert_logs_encode_like_stock(batch: Sequence[ReadableLogRecord]) -> None:
    assert_encodes_like_stock(encode_logs(batch), stock_encode_logs(batch))


# -- spans ----------------------------------------------------------------------------------------


@dataclass
class Tracing:
    """Real SDK tracer providers (one per resource) that finish spans into one in-memory list."""

    exporter: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    providers: list[TracerProvider] = field(default_factory=list)

    def provider(self, resource: Resource, limits: SpanLimits | None = None) -> TracerProvider:
        provider = TracerProvider(resource=resource, span_limits=limits)
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.providers.append(provider)
        return provider

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    made = Tracing()
    yield made
    for provider in made.providers:
        provider.shutdown()


REMOTE = SpanContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "value"), ("other", "x=y")]),
)
LOCAL = SpanContext(0x1, 0x2, is_remote=False)


def test_every_span_feature_encodes_like_stock(tracing: Tracing) -> None:
    bot = Resource.create({"service.name": "bot", "tbmon.strategy": "momentum"}, "https://s/1")
    limits = SpanLimits(
        max_span_attributes=len(EVERY_KIND) - 2,
        max_events=2,
        max_links=2,
        max_event_attributes=2,
        max_link_attributes=1,
    )
    tracer = tracing.provider(bot, limits).get_tracer(
        "tbmon.ccxt",
        "1.2.3",
        schema_url="https://opentelemetry.io/schemas/1.26.0",
        attributes={"scope.attribute": "x", "scope.number": 3},
    )
    bare_tracer = tracing.provider(bot).get_tracer("bare")
    remote_parent = trace.set_span_in_context(NonRecordingSpan(REMOTE))
    with tracer.start_as_current_span(
        "create_order \u00e9",
        context=remote_parent,
        kind=SpanKind.SERVER,
        attributes=EVERY_KIND,
        links=[Link(REMOTE, {"link.kind": "follows", "dropped": 1}), Link(LOCAL), Link(LOCAL)],
        start_time=1_700_000_000_123_456_789,
    ) as span:
        span.add_event("order.placed", {"side": "buy", "price": 42000.0, "dropped": 1})
        span.add_event("", timestamp=1)
        span.add_event("dropped event")
        span.set_status(Status(StatusCode.ERROR, "exchange said: \u00e9chec"))
        for kind in (SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
            with tracer.start_as_current_span(f"child {kind.name}", kind=kind) as child:
                child.set_status(Status(StatusCode.OK))
        with bare_tracer.start_as_current_span("", attributes={"": "dropped key"}):
            pass
    spans = tracing.spans()
    parent = spans[-1]
    assert parent.dropped_attributes == 2
    assert parent.dropped_events == 1
    assert parent.dropped_links == 1
    assert_spans_encode_like_stock(spans)


def test_spans_of_several_resources_and_scopes_group_like_stock(tracing: Tracing) -> None:
    """Interleaved spans; two equal resources (distinct objects) and equal scopes share groups."""
    resources = [
        Resource.create({"service.name": "bot-a"}),
        Resource.create({"service.name": "bot-b"}, schema_url="https://schema/b"),
        Resource.create({"service.name": "bot-a"}),
    ]
    assert resources[0] == resources[2]
    assert resources[0] is not resources[2]
    tracers = [
        tracing.provider(resource).get_tracer(name, version)
        for resource in resources
        for name, version in (("ccxt", "1"), ("strategy", None), ("ccxt", "2"))
    ]
    for round_ in range(3):
        for index, tracer in enumerate(random.Random(round_).sample(tracers, len(tracers))):
            with tracer.start_as_current_span(f"span {round_}.{index}", attributes={"i": index}):
                pass
    spans = tracing.spans()
    assert len({id(span.resource) for span in spans}) == 3
    assert len(stock_encode_spans(spans).resource_spans) == 2
    assert_spans_encode_like_stock(spans)


def test_spans_built_by_hand_encode_like_stock() -> None:
    """What the SDK's public ReadableSpan allows beyond its tracer: no scope, no times, nan."""
    resource = Resource({"nan": math.nan}, schema_url="")
    spans = [
        ReadableSpan("no scope", context=LOCAL, resource=resource),
        ReadableSpan(
            "nan",
            context=REMOTE,
            parent=LOCAL,
            resource=resource,
            attributes={"nan": math.nan, "nans": (math.nan, -math.nan)},
            instrumentation_scope=InstrumentationScope("scope", schema_url="https://scope"),
            start_time=0,
            end_time=1,
        ),
    ]
    ours = encode_spans(spans)
    assert ours == stock_encode_spans(spans).SerializeToString()
    parsed = trace_service_pb2.ExportTraceServiceRequest.FromString(ours)
    values = parsed.resource_spans[0].scope_spans[1].spans[0].attributes
    assert math.isnan(values[0].value.double_value)


def test_attributes_the_stock_encoder_cannot_encode_are_left_out_alike(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Integers past int64 and lone surrogates: both encoders log them and go on without."""
    attributes: dict[str, Any] = {
        "ok": 1,
        "too.big": INT64_MAX + 1,
        "too.small": INT64_MIN - 1,
        "bad": "\ud800",
    }
    spans = [ReadableSpan("s", context=LOCAL, attributes=attributes)]
    ours = encode_spans(spans)
    assert_encodes_like_stock(ours, stock_encode_spans(spans))
    parsed = trace_service_pb2.ExportTraceServiceRequest.FromString(ours)
    assert [kv.key for kv in parsed.resource_spans[0].scope_spans[0].spans[0].attributes] == ["ok"]
    logged = [r.getMessage().split(":")[0] for r in caplog.records if r.name == encoding.__name__]
    assert logged == [f"Failed to encode key {key}" for key in ("too.big", "too.small", "bad")]


def test_short_lived_resources_and_scopes_encode_as_themselves() -> None:
    """One resource and scope per batch, each freed after it: Python reuses their memory (and
    ids) for the next ones, which must not get the first ones' cached encoding."""
    ids = set()
    for index in range(300):
        resource = Resource({"batch": index})
        scope = InstrumentationScope(f"scope-{index}", attributes={"batch": index})
        spans = [ReadableSpan("s", LOCAL, resource=resource, instrumentation_scope=scope)]
        ids.add(id(resource))
        assert_spans_encode_like_stock(spans)
        del resource, scope, spans
    assert len(ids) < 300, "no id was reused: the test proved nothing"


def test_an_empty_batch_is_an_empty_request() -> None:
    assert encode_spans([]) == b"" == stock_encode_spans([]).SerializeToString()
    assert encode_logs([]) == b"" == stock_encode_logs([]).SerializeToString()


def test_the_attribute_cache_stays_bounded_and_correct(tracing: Tracing) -> None:
    """An order id per span churns the cache without growing it, and cached pairs stay right."""
    tracer = tracing.provider(Resource.create({"service.name": "bot"})).get_tracer("bot")
    count = encoding._ATTRIBUTE_CACHE_SIZE * 2
    for index in range(count):
        with tracer.start_as_current_span("order", attributes={"order.id": f"o-{index}"}):
            pass
    spans = tracing.spans()
    for start in range(0, count, 512):
        assert_spans_encode_like_stock(spans[start : start + 512])
        assert len(encoding._pairs) <= encoding._ATTRIBUTE_CACHE_SIZE
    assert_spans_encode_like_stock(spans[:512])  # again, from the cache where it still is


# -- random attributes ----------------------------------------------------------------------------


#: Scalar makers; small pools make values repeat, so the caches are used.
SCALARS: list[Callable[[random.Random], Any]] = [
    lambda rng: rng.choice(["", "binance", "BTC/USDT", "\u00e9\u2603\U0001f680", "x" * 200]),
    lambda rng: "".join(chr(rng.randrange(32, 0xD7FF)) for _ in range(rng.randrange(12))),
    lambda rng: rng.random() < 0.5,
    lambda rng: rng.choice(
        [0, 1, -1, 200, INT64_MAX, INT64_MIN, rng.randint(INT64_MIN, INT64_MAX)]
    ),
    lambda rng: rng.choice([0.0, -0.0, math.inf, -math.inf, 1e308, rng.uniform(-1e6, 1e6)]),
    lambda rng: rng.choice([None, b"", rng.randbytes(rng.randrange(300))]),
]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """Any value the SDK keeps: scalars, homogeneous and mixed sequences, nested mappings."""
    kind = rng.randrange(5) if depth < 2 else 0
    if kind <= 1:
        return rng.choice(SCALARS)(rng)
    if kind == 2:
        make = rng.choice(SCALARS)
        return tuple(make(rng) for _ in range(rng.randrange(5)))
    if kind == 3:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {random_key(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_key(rng: random.Random) -> str:
    keys = ["exchange", "symbol", "order.id", "k\u00e9y", "a" * 100, f"k{rng.randrange(50)}"]
    return rng.choice(keys)


def random_attributes(rng: random.Random) -> dict[str, Any]:
    return {random_key(rng): random_value(rng) for _ in range(rng.randrange(12))}


def test_random_attributes_encode_like_stock(tracing: Tracing) -> None:
    rng = random.Random(20240611)
    scopes = []
    for index in range(4):
        resource = Resource.create(random_attributes(rng) | {"service.name": f"bot-{index}"})
        provider = tracing.provider(resource)
        scopes.append(provider.get_tracer(f"scope-{index}", attributes=random_attributes(rng)))
    for case in range(300):
        tracer = rng.choice(scopes)
        links = [
            Link(rng.choice([LOCAL, REMOTE]), random_attributes(rng))
            for _ in range(rng.randrange(3))
        ]
        with tracer.start_as_current_span(
            f"case {case}", attributes=random_attributes(rng), links=links
        ) as span:
            for _ in range(rng.randrange(3)):
                span.add_event(random_key(rng), random_attributes(rng))
        span_batch = tracing.spans()[-rng.randrange(1, 6) :]
        assert_spans_encode_like_stock(span_batch)


# -- log records ----------------------------------------------------------------------------------


@dataclass
class Logging:
    """Real SDK logger providers that finish log records into one in-memory list."""

    exporter: InMemoryLogRecordExporter = field(default_factory=InMemoryLogRecordExporter)
    providers: list[LoggerProvider] = field(default_factory=list)

    def provider(self, resource: Resource, limits: LogRecordLimits | None = None) -> LoggerProvider:
        provider = LoggerProvider(resource=resource, log_record_limits=limits)
        provider.add_log_record_processor(SimpleLogRecordProcessor(self.exporter))
        self.providers.append(provider)
        return provider

    def records(self) -> tuple[ReadableLogRecord, ...]:
        return self.exporter.get_finished_logs()


@pytest.fixture
def logging_() -> Iterator[Logging]:
    made = Logging()
    yield made
    for provider in made.providers:
        provider.shutdown()


def test_every_log_feature_encodes_like_stock(logging_: Logging, tracing: Tracing) -> None:
    bot = Resource.create({"service.name": "bot"}, schema_url="https://s/1")
    limits = LogRecordLimits(max_attributes=3)
    logger = logging_.provider(bot, limits).get_logger(
        "bot.orders", "0.9", schema_url="https://scope", attributes={"scope": "attribute"}
    )
    other = logging_.provider(Resource.create({"service.name": "other"})).get_logger("other")
    for body in [*EVERY_KIND.values(), [1, [2, [3]]], {"order": {"id": "o-1", "fills": [1.5]}}]:
        logger.emit(body=body, severity_number=SeverityNumber.INFO, severity_text="INFO")
    with pytest.warns(LogRecordDroppedAttributesWarning):
        logger.emit(body="dropped", attributes={"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
    logger.emit(body="no severity", severity_number=SeverityNumber.UNSPECIFIED, timestamp=1)
    tracer = tracing.provider(bot).get_tracer("bot")
    with tracer.start_as_current_span("cycle"):
        logger.emit(
            body="inside a span",
            severity_number=SeverityNumber.ERROR,
            severity_text="ERROR",
            attributes={"symbol": "BTC/USDT", "nested": {"a": [1]}},
            event_name="order.rejected",
            timestamp=1_700_000_000_000_000_000,
        )
        other.emit(
            body="exception", exception=ValueError("no"), severity_number=SeverityNumber.FATAL
        )
    other.emit(body=None, event_name="")
    records = logging_.records()
    assert records[-3].log_record.trace_id
    assert not records[-1].log_record.trace_id
    assert any(record.dropped_attributes for record in records)
    assert_logs_encode_like_stock(records)


def test_random_log_bodies_and_attributes_encode_like_stock(logging_: Logging) -> None:
    rng = random.Random(8)
    loggers = [
        logging_.provider(Resource.create({"service.name": f"bot-{index}"})).get_logger(
            f"logger-{index}", attributes=random_attributes(rng)
        )
        for index in range(3)
    ]
    for _ in range(300):
        rng.choice(loggers).emit(body=random_value(rng), attributes=random_attributes(rng))
        assert_logs_encode_like_stock(logging_.records()[-rng.randrange(1, 6) :])


# -- the exporters, against a real gRPC server ----------------------------------------------------


@dataclass
class Collector:
    """What a gRPC server with the official OTLP trace and logs services received."""

    port: int = 0
    traces: list[trace_service_pb2.ExportTraceServiceRequest] = field(default_factory=list)
    logs: list[logs_service_pb2.ExportLogsServiceRequest] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.collector.metadata.append(dict(context.invocation_metadata()))
        self.collector.traces.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def Export(
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: grpc.ServicerContext
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        self.collector.logs.append(request)
        return logs_service_pb2.ExportLogsServiceResponse()


@contextmanager
def serve(port: int = 0) -> Iterator[Collector]:
    """The server on 127.0.0.1:``port`` (0: a free one, in ``Collector.port``)."""
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    # The generated *_pb2_grpc modules have no type annotations.
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        _TraceService(collector), server
    )
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        _LogsService(collector), server
    )
    collector.port = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield collector
    finally:
        server.stop(0)


@pytest.fixture
def collector() -> Iterator[Collector]:
    with serve() as received:
        yield received


@contextmanager
def refused_port() -> Iterator[int]:
    """A port nothing listens on."""
    yield free_ports(1)[0]


def some_spans(tracing: Tracing) -> tuple[ReadableSpan, ...]:
    tracer = tracing.provider(Resource.create({"service.name": "bot"})).get_tracer("bot")
    for index in range(5):
        with tracer.start_as_current_span("fetch_ticker", attributes={"i": index, "x": "y"}):
            pass
    return tracing.spans()


def test_span_exporter_sends_what_the_stock_encoder_would(
    collector: Collector, tracing: Tracing
) -> None:
    spans = some_spans(tracing)
    exporter = TbmonSpanExporter(
        endpoint=f"127.0.0.1:{collector.port}", insecure=True, headers={"x-api-key": "k"}
    )
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert exporter.export(spans[:1]) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert collector.traces == [stock_encode_spans(spans), stock_encode_spans(spans[:1])]
    assert collector.metadata[0]["x-api-key"] == "k"


def test_log_exporter_sends_what_the_stock_encoder_would(
    collector: Collector, logging_: Logging, tracing: Tracing
) -> None:
    logger = logging_.provider(Resource.create({"service.name": "bot"})).get_logger("bot")
    with tracing.provider(Resource.create({})).get_tracer("t").start_as_current_span("s"):
        logger.emit(body={"order": "o-1"}, severity_number=SeverityNumber.WARN, attributes={"a": 1})
    logger.emit(body="outside a span")
    records = logging_.records()
    exporter = TbmonLogExporter(endpoint=f"127.0.0.1:{collector.port}", insecure=True)
    try:
        assert exporter.export(records) is LogRecordExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert collector.logs == [stock_encode_logs(records)]


def test_the_environment_configures_the_exporter(
    collector: Collector, tracing: Tracing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's settings still apply: endpoint (http:// means insecure), headers, compression."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{collector.port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "authorization=Bearer%20t")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    spans = some_spans(tracing)
    exporter = TbmonSpanExporter()
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert collector.traces == [stock_encode_spans(spans)]
    assert collector.metadata[0]["authorization"] == "Bearer t"


@pytest.mark.parametrize("unreachable", [refused_port, silent_server], ids=["refused", "silent"])
def test_an_unreachable_collector_fails_within_the_timeout(
    unreachable: Callable[[], AbstractContextManager[int]],
    tracing: Tracing,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    spans = some_spans(tracing)
    with unreachable() as port:
        exporter = TbmonSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True)
        try:
            started = time.monotonic()
            assert exporter.export(spans) is SpanExportResult.FAILURE
            elapsed = time.monotonic() - started
        finally:
            exporter.shutdown()
    assert elapsed < 2.0


def test_the_exporter_reconnects_with_its_own_stub(tracing: Tracing) -> None:
    """After UNAVAILABLE the SDK builds a new channel and stub: ours again, not the stock one."""
    port = free_ports(1)[0]
    spans = some_spans(tracing)
    exporter = TbmonSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=0.5)
    try:
        assert exporter.export(spans) is SpanExportResult.FAILURE
        with serve(port) as received:
            assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert received.traces == [stock_encode_spans(spans)]


def test_otel_exporter_tbmon_selects_them() -> None:
    """OTEL_TRACES_EXPORTER=tbmon and OTEL_LOGS_EXPORTER=tbmon, as the SDK's configurator reads
    them (through the entry points in pyproject.toml)."""
    traces, _, logs = _import_exporters(["tbmon"], [], ["tbmon"])
    assert traces == {"tbmon": TbmonSpanExporter}
    assert logs == {"tbmon": TbmonLogExporter}
