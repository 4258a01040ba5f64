"""tbmon's leaner SDK paths (``tbmon/instrumentation/_internal``) export what the SDK's own
code does.

Each comparison runs one workload twice, through the SDK as it comes and through tbmon's paths,
into in-memory exporters, with ``random`` seeded alike: the SDK draws its trace and span ids and
its exemplar choices from it, so both runs make the same ids and the same sampling decisions.
What the two runs export is compared as the OTLP the SDK's own encoder makes of it (every field
a collector receives), with timestamps zeroed; tbmon's encoder must make the same bytes of the
fast path's objects. The objects the span processors are handed must have the SDK's fields, and
the fast paths must really have run (their fallbacks to the SDK are counted).

The differences the fast tracer makes are documented and checked here too: an exception's
``exception.stacktrace`` lacks the SDK's two generator frames (``use_span``,
``start_as_current_span``), through which the exception no longer passes; and the span
processors' ``ReadableSpan`` keeps attributes none of which were dropped as their dict, and no
events or links as empty tuples, which read the same (fewer objects for the garbage collector).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import enum
import json
import logging
import os
import random
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import get_current
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as stock_encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
    encode_spans as stock_encode_spans,
)
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._configuration import _import_sampler
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordProcessor,
    ReadableLogRecord,
    ReadWriteLogRecord,
)
from opentelemetry.sdk._logs._internal import _disable_logger_configurator
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics._internal._view_instrument_match import (
    _hash_attributes,
    _ViewInstrumentMatch,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    ReadableSpan,
    Span,
    SpanProcessor,
    Tracer,
    TracerProvider,
    _disable_tracer_configurator,
    _Span,
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import INVALID_SPAN, Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from support import run_instrumented

from tbmon.instrumentation import configurator, delivery, exporters
from tbmon.instrumentation._internal import logs, metrics, pinned, tracing
from tbmon.instrumentation._internal.encoding import encode_logs, encode_spans
from tbmon.instrumentation._internal.logs import FastLoggingHandler
from tbmon.instrumentation._internal.metrics import FastMeasurementConsumer
from tbmon.instrumentation._internal.tracing import FastTracer, FastTracerProvider
from tbmon.instrumentation.exporters import TbmonLogExporter, TbmonSpanExporter

SEED = 20260101
RESOURCE = Resource.create({"service.name": "fastpath-test", "tbmon.strategy": "momentum"})
SCOPE = ("tbmon.test.fastpath", "1.2.3", "https://opentelemetry.io/schemas/1.30.0")
REMOTE_SAMPLED = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "vendor=value,other=x",
}
REMOTE_NOT_SAMPLED = {"traceparent": "00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-00"}


class Side(enum.IntEnum):
    BUY = 1


class Named:
    def __str__(self) -> str:
        return "named object"


#: Attribute values of every kind the SDK accepts, and some it cleans, converts or drops.
EVERY_TYPE: dict[str, Any] = {
    "str": "binance",
    "empty": "",
    "long": "x" * 40,
    "true": True,
    "int": 7,
    "negative": -3,
    "float": 42010.5,
    "bytes": b"\x00\xff",
    "strs": ["buy", "sell"],
    "ints": (1, 2, 3),
    "floats": [0.5, -0.0],
    "bools": [True, False],
    "empty.sequence": [],
    "mixed": [1, "a", None],
    "mapping": {"k": "v", "n": {"deep": [1]}},
    "none": None,
    "enum": Side.BUY,
    "object": Named(),
    "": "an empty key is dropped",
}


@pytest.fixture(autouse=True)
def _quiet_sdk_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """The workloads make the SDK warn (an ended span ended again, a dropped attribute...)."""
    caplog.set_level(logging.ERROR, logger="opentelemetry")


def zero_times(message: Message) -> Message:
    """``message`` with every timestamp field (``*time_unix_nano``) zeroed, recursively."""
    for descriptor, value in message.ListFields():
        if descriptor.name.endswith("time_unix_nano"):
            message.ClearField(descriptor.name)
        elif descriptor.message_type is not None:
            children = value if descriptor.is_repeated else [value]
            for child in children:
                if isinstance(child, Message):
                    zero_times(child)
    return message


#: The SDK's generator frames an exception passes through in its start_as_current_span.
SDK_FRAMES = re.compile(
    r'  File "[^"]*/opentelemetry/(?:sdk/)?trace/__init__\.py", line \d+, in '
    r"(?:use_span|start_as_current_span)\n    yield span\n"
)


def without_sdk_frames(tree: Any) -> Any:
    """``tree`` (an OTLP request as a dict) with the SDK's generator frames cut out of every
    ``exception.stacktrace``."""
    if isinstance(tree, list):
        return [without_sdk_frames(item) for item in tree]
    if not isinstance(tree, dict):
        return tree
    if tree.get("key") == "exception.stacktrace":
        return {
            "key": tree["key"],
            "value": {"stringValue": SDK_FRAMES.sub("", tree["value"]["stringValue"])},
        }
    return {key: without_sdk_frames(value) for key, value in tree.items()}


def stacktraces(spans: Sequence[ReadableSpan]) -> list[str]:
    """Every exception event's stack trace (those the event attribute limit left)."""
    return [
        str(event.attributes["exception.stacktrace"])
        for span in spans
        for event in span.events
        if event.attributes and "exception.stacktrace" in event.attributes
    ]


# -- tracing --------------------------------------------------------------------------------------


class Recorder(SpanProcessor):
    """What the SDK's span processors see: the objects, their fields and the parent context."""

    def __init__(self) -> None:
        self.started: list[tuple[type, list[str], bool]] = []
        self.ended: list[tuple[type, list[str]]] = []

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        self.started.append((type(span), list(vars(span)), parent_context is None))

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append((type(span), list(vars(span))))


@dataclass
class Traced:
    spans: tuple[ReadableSpan, ...]
    seen: dict[str, Any]
    recorder: Recorder
    sdk_start_spans: int  # calls of the SDK's own Tracer.start_span

    def otlp(self) -> dict[str, Any]:
        return MessageToDict(zero_times(stock_encode_spans(self.spans)))


Workload = Callable[[trace.Tracer], dict[str, Any]]


def traced(
    fast: bool, workload: Workload, monkeypatch: pytest.MonkeyPatch, **provider: Any
) -> Traced:
    """``workload`` through a new SDK tracer provider, tbmon's fast path installed or not."""
    calls = [0]
    sdk_start_span = Tracer.start_span

    def counted(self: Tracer, *args: Any, **kwargs: Any) -> trace.Span:
        calls[0] += 1
        return sdk_start_span(self, *args, **kwargs)

    random.seed(SEED)
    tracer_provider = TracerProvider(resource=RESOURCE, **provider)
    recorder, exporter = Recorder(), InMemorySpanExporter()
    tracer_provider.add_span_processor(recorder)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    if fast:
        assert tracing.install(tracer_provider)
    tracer = tracer_provider.get_tracer(*SCOPE, attributes={"scope.attribute": 1})
    with monkeypatch.context() as patched:
        patched.setattr(Tracer, "start_span", counted)
        seen = workload(tracer)
    tracer_provider.shutdown()
    return Traced(exporter.get_finished_spans(), seen, recorder, calls[0])


def span_facts(span: trace.Span) -> tuple[object, ...]:
    context = span.get_span_context()
    return (type(span).__name__, span.is_recording(), context.trace_id, context.span_id, context)


def parent_of(span: trace.Span) -> object:
    """A recording span's parent context (a non-recording span has none)."""
    return getattr(span, "parent", None)


def trading_workload(tracer: trace.Tracer) -> dict[str, Any]:
    """Everything a bot does with spans, and some things it rarely does."""
    seen: dict[str, Any] = {}
    with tracer.start_as_current_span(
        "trade BTC/USDT", attributes={"strategy": "momentum", "symbol": "BTC/USDT"}
    ) as root:
        seen["current is root"] = trace.get_current_span() is root
        with tracer.start_as_current_span("signal", attributes={"strength": 0.73}) as signal:
            signal.add_event("scored", {"score": 0.7, "labels": ["a", "b"]})
            signal.set_attribute("late", 1)
            signal.set_attributes({"later": "yes", "list": [1.5]})
            signal.update_name("signal scored")
        for kind in SpanKind:
            with tracer.start_as_current_span(f"kind {kind.name}", kind=kind):
                pass
        with tracer.start_as_current_span("every type", attributes=EVERY_TYPE):
            pass
        with tracer.start_as_current_span(
            "mapping proxy", attributes=Resource({"a": 1}).attributes
        ):
            pass
        with tracer.start_as_current_span("no attributes", attributes={}):
            pass
        try:
            with tracer.start_as_current_span("failing"), tracer.start_as_current_span("raising"):
                raise ValueError("boom")
        except ValueError:
            pass
        for record, set_status in ((False, False), (False, True), (True, False)):
            try:
                with tracer.start_as_current_span(
                    f"quiet {record} {set_status}",
                    record_exception=record,
                    set_status_on_exception=set_status,
                ):
                    raise KeyError("quiet")
            except KeyError:
                pass
        try:
            with tracer.start_as_current_span("ok first") as span:
                span.set_status(Status(StatusCode.OK, "fine"))
                raise RuntimeError("after ok")
        except RuntimeError:
            pass
        try:
            with tracer.start_as_current_span("interrupted"):
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        with tracer.start_as_current_span("recorded") as span:
            span.record_exception(OSError("by hand"), {"extra": "attribute"}, escaped=True)
        manual = tracer.start_span("manual", kind=SpanKind.PRODUCER, attributes={"n": 1})
        with trace.use_span(manual, end_on_exit=True):
            seen["use_span current"] = trace.get_current_span() is manual
            with trace.use_span(root):
                seen["nested use_span current"] = trace.get_current_span() is root
                with tracer.start_as_current_span("under nested use_span"):
                    pass
            seen["use_span restored"] = trace.get_current_span() is manual
        with tracer.start_as_current_span("kept open", end_on_exit=False) as kept:
            pass
        kept.end()
        with tracer.start_as_current_span("ended early") as early:
            early.end()
        with tracer.start_as_current_span(
            "linked", links=[Link(root.get_span_context(), {"why": "retry"})]
        ):
            pass
        with tracer.start_as_current_span(
            "explicit context", context=trace.set_span_in_context(manual)
        ) as explicit:
            seen["explicit context parent"] = parent_of(explicit)
            seen["explicit context current"] = trace.get_current_span() is explicit
        with tracer.start_as_current_span("at a given time", start_time=1_000):
            pass

        def in_thread() -> None:
            with tracer.start_as_current_span("in a thread") as child:
                seen["thread parent"] = parent_of(child)

        thread = threading.Thread(target=contextvars.copy_context().run, args=(in_thread,))
        thread.start()
        thread.join()

        @tracer.start_as_current_span("decorated")
        def decorated(value: int) -> int:
            seen["decorated current"] = trace.get_current_span().is_recording()
            return value * 2

        @tracer.start_as_current_span("decorated async")
        async def decorated_async() -> str:
            await asyncio.sleep(0)
            return "done"

        seen["decorated"] = (decorated(21), decorated(1))
        seen["decorated async"] = asyncio.run(decorated_async())
    seen["after"] = trace.get_current_span() is INVALID_SPAN
    propagator = TraceContextTextMapPropagator()
    for name, carrier in (("remote", REMOTE_SAMPLED), ("remote not sampled", REMOTE_NOT_SAMPLED)):
        with tracer.start_as_current_span(name, context=propagator.extract(carrier)) as span:
            seen[name] = span_facts(span)
            with tracer.start_as_current_span(f"{name} child") as child:
                seen[f"{name} child"] = span_facts(child)
    for index in range(24):  # roots for the ratio samplers, each with a child
        with (
            tracer.start_as_current_span(f"root {index}") as root_span,
            tracer.start_as_current_span(f"child {index}") as child,
        ):
            seen[f"root {index}"] = (span_facts(root_span), span_facts(child))
    return seen


SAMPLERS = {
    "default": {},
    "parentbased_traceidratio": {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.5",
    },
    "traceidratio": {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.3"},
    "always_on": {"OTEL_TRACES_SAMPLER": "always_on"},
    "always_off": {"OTEL_TRACES_SAMPLER": "always_off"},
    "parentbased_always_off": {"OTEL_TRACES_SAMPLER": "parentbased_always_off"},
    "span limits": {
        "OTEL_ATTRIBUTE_COUNT_LIMIT": "5",
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "3",
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "6",
        "OTEL_SPAN_EVENT_COUNT_LIMIT": "1",
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "2",
        "OTEL_SPAN_LINK_COUNT_LIMIT": "0",
    },
    "nothing kept": {
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "0",
        "OTEL_SPAN_EVENT_COUNT_LIMIT": "0",
        "OTEL_SPAN_LINK_COUNT_LIMIT": "0",
    },
    "no limits": {
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "",
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "",
    },
}


def assert_same_spans(stock: Traced, fast: Traced) -> None:
    assert fast.seen == stock.seen
    assert without_sdk_frames(fast.otlp()) == without_sdk_frames(stock.otlp())
    # The processors were handed the SDK's objects, with the SDK's fields in its order.
    assert fast.recorder.started == stock.recorder.started
    assert fast.recorder.ended == stock.recorder.ended
    assert {kind for kind, _, _ in fast.recorder.started} <= {_Span}
    # And tbmon's encoder makes the stock bytes of them.
    assert encode_spans(fast.spans) == stock_encode_spans(fast.spans).SerializeToString()


@pytest.mark.parametrize("via", ["provider", "configurator"])
@pytest.mark.parametrize("setting", list(SAMPLERS))
def test_the_fast_tracer_exports_the_sdks_spans(
    setting: str, via: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``via``: the sampler the SDK's TracerProvider reads from the environment, or the one the
    SDK's configurator (tbmon's too) imports from the same settings (other classes)."""
    for name, value in SAMPLERS[setting].items():
        monkeypatch.setenv(name, value)
    sampler = None
    if via == "configurator" and "OTEL_TRACES_SAMPLER" in os.environ:
        sampler = _import_sampler(os.environ["OTEL_TRACES_SAMPLER"])
        assert sampler is not None
    stock = traced(False, trading_workload, monkeypatch, sampler=sampler)
    fast = traced(True, trading_workload, monkeypatch, sampler=sampler)
    assert_same_spans(stock, fast)
    assert stock.sdk_start_spans > 60
    assert fast.sdk_start_spans == 1  # the linked span: the fast path leaves links to the SDK
    if setting in ("default", "span limits"):
        assert len(fast.spans) > 60
        assert stacktraces(fast.spans) == [SDK_FRAMES.sub("", t) for t in stacktraces(stock.spans)]
        raised = [t for t in stacktraces(stock.spans) if SDK_FRAMES.search(t)]
        # raising, failing (the same exception), quiet True False, and ok first
        assert len(raised) == 4
    if setting == "parentbased_traceidratio":  # a decision per root, followed by its child
        roots = [stock.seen[f"root {index}"] for index in range(24)]
        assert {root[1] for root, _ in roots} == {True, False}
        assert all(root[1] == child[1] for root, child in roots)
        assert stock.seen["remote child"][1] is True
        assert stock.seen["remote not sampled child"][1] is False


class EveryOther(Sampler):
    """A sampler of the user's own: the fast path must leave it to the SDK."""

    def __init__(self) -> None:
        self.calls = 0

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        self.calls += 1
        decision = Decision.RECORD_AND_SAMPLE if self.calls % 2 else Decision.RECORD_ONLY
        return SamplingResult(decision, {"sampled.by": "every other"})

    def get_description(self) -> str:
        return "EveryOther"


def test_a_custom_sampler_takes_the_sdks_path(monkeypatch: pytest.MonkeyPatch) -> None:
    stock = traced(False, trading_workload, monkeypatch, sampler=EveryOther())
    fast = traced(True, trading_workload, monkeypatch, sampler=EveryOther())
    assert_same_spans(stock, fast)
    assert fast.sdk_start_spans == stock.sdk_start_spans


def test_a_disabled_tracer_takes_the_sdks_path(monkeypatch: pytest.MonkeyPatch) -> None:
    disabled = {"_tracer_configurator": _disable_tracer_configurator}
    stock = traced(False, trading_workload, monkeypatch, **disabled)
    fast = traced(True, trading_workload, monkeypatch, **disabled)
    assert fast.spans == stock.spans == ()
    assert fast.seen == stock.seen
    assert fast.sdk_start_spans == stock.sdk_start_spans


def test_the_sdk_disabled_gives_no_op_tracers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    provider = TracerProvider()
    assert tracing.install(provider)
    assert type(provider.get_tracer("x")) is trace.NoOpTracer


def test_tracers_made_before_the_install_get_the_fast_path_too() -> None:
    provider = TracerProvider()
    early = provider.get_tracer("early")
    assert tracing.install(provider)
    assert type(provider) is FastTracerProvider
    assert type(early) is FastTracer
    assert provider.get_tracer("early") is early
    assert not tracing.install(provider)  # once only
    assert not tracing.install(trace.NoOpTracerProvider())


def test_context_propagation_with_the_fast_tracer() -> None:
    provider = TracerProvider()
    assert tracing.install(provider)
    tracer = provider.get_tracer("propagation")
    with tracer.start_as_current_span("parent") as parent:
        assert trace.get_current_span() is parent
        children: list[ReadableSpan] = []

        def child() -> None:
            with tracer.start_as_current_span("child") as span:
                assert trace.get_current_span() is span
                children.append(span)  # type: ignore[arg-type]

        thread = threading.Thread(target=contextvars.copy_context().run, args=(child,))
        thread.start()
        thread.join()
        assert children[0].parent == parent.get_span_context()
        assert trace.get_current_span() is parent
        other = tracer.start_span("other")
        with trace.use_span(other, end_on_exit=True):
            assert trace.get_current_span() is other
            with tracer.start_as_current_span("under other") as under:
                assert under.parent == other.get_span_context()  # type: ignore[attr-defined]
                with trace.use_span(parent):
                    assert trace.get_current_span() is parent
                assert trace.get_current_span() is under
            assert trace.get_current_span() is other
        with pytest.raises(ValueError, match="inside"), tracer.start_as_current_span("raises"):
            raise ValueError("inside")
        assert trace.get_current_span() is parent
        assert not other.is_recording()
    assert trace.get_current_span() is INVALID_SPAN
    assert not parent.is_recording()


def test_ended_spans_keep_fewer_objects_unless_they_count_drops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "1")
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert tracing.install(provider)
    tracer = provider.get_tracer("objects")
    with tracer.start_as_current_span("plain", attributes={"a": 1}):
        pass
    with tracer.start_as_current_span("dropping", attributes={"a": 1, "b": 2}) as span:
        span.add_event("event")
    plain, dropping = exporter.get_finished_spans()
    assert type(plain._attributes) is dict
    assert plain._events == ()
    assert plain._links == ()
    assert (plain.dropped_attributes, plain.dropped_events, plain.attributes) == (0, 0, {"a": 1})
    assert type(dropping._attributes) is BoundedAttributes
    assert (dropping.dropped_attributes, dropping.attributes) == (1, {"b": 2})
    assert [event.name for event in dropping.events] == ["event"]


def test_a_context_manager_is_entered_when_used_not_when_made() -> None:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert tracing.install(provider)
    tracer = provider.get_tracer("lazy")
    made = tracer.start_as_current_span("lazy")
    with tracer.start_as_current_span("first"):
        pass
    with made as span:
        assert span.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["first", "lazy"]
    assert exporter.get_finished_spans()[1].parent is None


# -- logs -----------------------------------------------------------------------------------------


class LogRecorder(LogRecordProcessor):
    """What the SDK's log record processors see: the records' fields and their context."""

    def __init__(self) -> None:
        self.emitted: list[tuple[object, ...]] = []

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        self.emitted.append(
            (
                type(log_record),
                list(vars(log_record)),
                list(vars(record)),
                type(record.attributes),
                dict(record.attributes or {}),
                trace.get_current_span(record.context) is trace.get_current_span(),
                record.context is get_current(),
                log_record.instrumentation_scope,
                log_record.resource is RESOURCE,
            )
        )

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


@dataclass
class Logged:
    records: tuple[ReadableLogRecord, ...]
    translated: int  # records the handler translated the stock way
    emitted: list[tuple[object, ...]]
    fields: list[tuple[list[str], list[str]]] = field(default_factory=list)

    def otlp(self) -> dict[str, Any]:
        return MessageToDict(zero_times(stock_encode_logs(self.records)))


def log_workload(logger: logging.Logger, tracer: trace.Tracer) -> None:
    logger.info("outside any span")
    with tracer.start_as_current_span("logging"):
        logger.info(
            "order %s filled",
            "o-1",
            extra={"order.id": "o-1", "price": 42000.5, "qty": 2, "filled": True},
        )
        logger.debug("debug")
        logger.warning("warning: WARN in OTel")
        logger.critical("critical: FATAL in OTel")
        logger.error("extras to clean", extra={"items": [1, 2], "none": None, "obj": Named()})
        logger.info("an event", extra={"otel.event.name": "order.filled", "long": "y" * 30})
        try:
            raise RuntimeError("bad fill")
        except RuntimeError:
            logger.exception("failed")
        with tracer.start_as_current_span("nested"):
            logger.info("nested %d", 2, extra={"otelTraceSampled": True, "otelSpanID": "0"})


def logged(
    fast: bool, code_attributes: bool, monkeypatch: pytest.MonkeyPatch, **provider_options: Any
) -> Logged:
    random.seed(SEED)
    tracer = TracerProvider(resource=RESOURCE).get_tracer("logging")
    provider = LoggerProvider(resource=RESOURCE, **provider_options)
    exporter, recorder = InMemoryLogRecordExporter(), LogRecorder()  # type: ignore[no-untyped-call]
    factory = logs.batching(BatchLogRecordProcessor) if fast else BatchLogRecordProcessor
    provider.add_log_record_processor(recorder)
    provider.add_log_record_processor(factory(exporter))
    handler = LoggingHandler(logger_provider=provider, log_code_attributes=code_attributes)
    if fast:
        assert logs.fast_emit(handler)
        assert type(handler) is FastLoggingHandler
    else:  # the reference: the stock handler, the correlation fields left out (as tbmon does)
        assert logs.correlated(handler)
    logger = logging.getLogger("tbmon.test.fastpath")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    translate, calls = LoggingHandler._translate, [0]

    def counted(self: LoggingHandler, record: logging.LogRecord) -> Any:
        calls[0] += 1
        return translate(self, record)

    with monkeypatch.context() as patched:
        patched.setattr(LoggingHandler, "_translate", counted)
        log_workload(logger, tracer)
    logger.removeHandler(handler)
    provider.force_flush()
    records = exporter.get_finished_logs()
    fields = [(list(vars(r)), list(vars(r.log_record))) for r in records]
    provider.shutdown()
    return Logged(records, calls[0], recorder.emitted, fields)


LOG_SETTINGS = {
    "default": {},
    "log record limits": {
        "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT": "6",
        "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10",
    },
}


@pytest.mark.filterwarnings("ignore::opentelemetry.sdk._logs.LogRecordDroppedAttributesWarning")
@pytest.mark.parametrize("code_attributes", [False, True])
@pytest.mark.parametrize("setting", list(LOG_SETTINGS))
def test_the_fast_log_handler_exports_the_handlers_records(
    setting: str, code_attributes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in LOG_SETTINGS[setting].items():
        monkeypatch.setenv(name, value)
    stock = logged(False, code_attributes, monkeypatch)
    fast = logged(True, code_attributes, monkeypatch)
    assert len(stock.records) == 9
    assert fast.otlp() == stock.otlp()
    assert fast.emitted == stock.emitted
    assert fast.fields == stock.fields
    assert encode_logs(fast.records) == stock_encode_logs(fast.records).SerializeToString()
    assert stock.translated == 9
    if setting == "default":
        assert fast.translated == 1  # the record whose attributes need cleaning


def test_a_disabled_logger_emits_nothing_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    disabled = {"_logger_configurator": _disable_logger_configurator}
    stock = logged(False, False, monkeypatch, **disabled)
    fast = logged(True, False, monkeypatch, **disabled)
    assert stock.records == fast.records == ()
    assert stock.emitted == fast.emitted == []
    assert fast.translated == 0  # nothing translated for a logger that drops the record


def test_the_sdks_own_metrics_count_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``: spans started and live, log records."""
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    counted = []
    for fast in (False, True):
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[reader])
        traced(fast, trading_workload, monkeypatch, meter_provider=meter_provider)
        logged(fast, False, monkeypatch, meter_provider=meter_provider)
        counted.append(MessageToDict(zero_times(encode_metrics(reader.get_metrics_data()))))  # type: ignore[arg-type]
    assert counted[1] == counted[0]
    for name in ("otel.sdk.span.started", "otel.sdk.span.live", "otel.sdk.log.created"):
        assert name in json.dumps(counted[0])


# -- metrics --------------------------------------------------------------------------------------


def metric_workload(provider: MeterProvider, tracer: trace.Tracer) -> None:
    meter = provider.get_meter("tbmon.test.fastpath", "1.0")
    orders = meter.create_counter("orders")
    latency = meter.create_histogram(
        "latency", unit="s", explicit_bucket_boundaries_advisory=(0.01, 0.1, 1.0)
    )
    exposure = meter.create_up_down_counter("exposure")
    price = meter.create_gauge("price")
    viewed = meter.create_counter("orders.viewed")

    def observe(options: CallbackOptions) -> list[Observation]:
        return [Observation(3, {"queue": "spans"}), Observation(1, {"queue": "logs"})]

    meter.create_observable_gauge("queue", callbacks=[observe])
    with tracer.start_as_current_span("metrics"):  # sampled: exemplars
        for index in range(40):
            side = ("buy", "sell")[index % 2]
            orders.add(1, {"symbol": "BTC/USDT", "side": side, "filled": index % 3 == 0})
            latency.record(0.004 * index, {"exchange": "binance", "status": index % 4})
            exposure.add(-1.5 if index % 2 else 2.5, {"symbol": "BTC/USDT"})
            price.set(42000.0 + index, {"symbol": "BTC/USDT"})
            viewed.add(2, {"symbol": "ETH/USDT", "side": side})
        orders.add(1)
        orders.add(1, {"tags": ["a", "b"]})  # a sequence: the SDK's path
        orders.add(1, {"flag": True})
        orders.add(1, {"flag": 1})  # a different series from True
        orders.add(1, {"flag": 1.0})
        orders.add(-1, {"symbol": "BTC/USDT"})  # refused, with the SDK's warning
        latency.record(float("nan"))
    orders.add(5, {"symbol": "BTC/USDT", "side": "buy", "filled": False})  # no exemplar


@dataclass
class Measured:
    cumulative: dict[str, Any]
    delta: dict[str, Any]
    matched: int  # measurements the SDK's _ViewInstrumentMatch consumed itself


def measured(fast: bool, monkeypatch: pytest.MonkeyPatch) -> Measured:
    random.seed(SEED)
    tracer = TracerProvider(resource=RESOURCE).get_tracer("metrics")
    cumulative = InMemoryMetricReader()
    delta = InMemoryMetricReader(
        preferred_temporality={
            Counter: AggregationTemporality.DELTA,
            Histogram: AggregationTemporality.DELTA,
            UpDownCounter: AggregationTemporality.DELTA,
        }
    )
    provider = MeterProvider(
        metric_readers=[cumulative, delta],
        resource=RESOURCE,
        views=[
            View(instrument_name="orders.viewed", attribute_keys={"side"}),
            View(instrument_name="*"),
        ],
    )
    if fast:
        assert metrics.install(provider)
        assert type(provider._measurement_consumer) is FastMeasurementConsumer
    consume, calls = _ViewInstrumentMatch.consume_measurement, [0]

    def counted(self: _ViewInstrumentMatch, *args: Any) -> None:
        calls[0] += 1
        consume(self, *args)

    with monkeypatch.context() as patched:
        patched.setattr(_ViewInstrumentMatch, "consume_measurement", counted)
        metric_workload(provider, tracer)
    result = Measured(
        MessageToDict(zero_times(encode_metrics(cumulative.get_metrics_data()))),  # type: ignore[arg-type]
        MessageToDict(zero_times(encode_metrics(delta.get_metrics_data()))),  # type: ignore[arg-type]
        calls[0],
    )
    provider.shutdown()
    return result


def test_the_fast_consumer_aggregates_the_sdks_metric_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stock = measured(False, monkeypatch)
    fast = measured(True, monkeypatch)
    assert fast.cumulative == stock.cumulative
    assert fast.delta == stock.delta
    points = json.dumps(stock.cumulative)
    assert '"exemplars"' in points
    assert '"otel.metric.overflow"' not in points
    # The cumulative reader's default view took the fast path for the 40 plain measurements of
    # each of the five instruments; the view selecting attribute keys, the delta reader and
    # attributes that are not plain took the SDK's.
    assert stock.matched - fast.matched >= 5 * 40
    assert fast.matched > stock.matched / 2


@pytest.mark.parametrize(
    ("attributes", "key"),
    [
        ({"b": "x", "a": 1}, ("mapping", (("a", ("int", 1)), ("b", ("str", "x"))))),
        ({"t": True, "f": 0.5}, ("mapping", (("f", ("float", 0.5)), ("t", ("bool", True))))),
        ({}, None),
        (None, None),
        ({"seq": ("a",)}, None),
        ({"enum": Side.BUY}, None),
    ],
)
def test_plain_keys_are_the_sdks_hashes(attributes: Attributes, key: object) -> None:
    assert metrics.plain_key(attributes) == key
    if key is not None:
        assert key == _hash_attributes(attributes)


# -- installation ---------------------------------------------------------------------------------


def test_nothing_is_installed_on_another_sdk_release(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pinned, "sdk_version", "1.99.0")
    assert not tracing.install(TracerProvider())
    assert not metrics.install(MeterProvider())
    assert not logs.fast_emit(LoggingHandler(logger_provider=LoggerProvider()))
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    processor = logs.batching(BatchLogRecordProcessor)(exporter)
    assert type(processor) is BatchLogRecordProcessor
    monkeypatch.setattr(pinned, "sdk_version", pinned.SDK)
    monkeypatch.setattr(pinned, "logging_version", "0.99b0")
    assert not logs.fast_emit(LoggingHandler(logger_provider=LoggerProvider()))


@pytest.mark.parametrize("how", ["another release", "TBMON_SDK_MIRRORS=off"])
def test_every_private_access_stands_aside_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """The exporters keep the SDK's stub and encoding, the batch processors their queue, the
    configurator passes only what the SDK's set-up names, and one warning says so."""
    if how == "another release":
        monkeypatch.setattr(pinned, "sdk_version", "1.99.0")
        monkeypatch.setattr(pinned, "exporter_version", "1.99.0")
    else:
        monkeypatch.setenv("TBMON_SDK_MIRRORS", "off")
    pinned.fall_back.cache_clear()
    caplog.set_level(logging.WARNING, logger=pinned.__name__)

    recorded = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    provider.get_tracer("t").start_span("s").end()
    spans = recorded.get_finished_spans()
    exporter = TbmonSpanExporter(endpoint="127.0.0.1:1", insecure=True)
    log_exporter = TbmonLogExporter(endpoint="127.0.0.1:1", insecure=True)
    try:
        assert not isinstance(exporter._client, exporters._BytesStub)
        assert not isinstance(log_exporter._client, exporters._BytesStub)
        assert isinstance(exporter._translate_data(spans), ExportTraceServiceRequest)
    finally:
        exporter.shutdown()
        log_exporter.shutdown()
    processor = delivery.span_processor(delivery.DeliveryStats())(InMemorySpanExporter())
    try:
        assert type(processor._batch_processor._queue) is collections.deque
    finally:
        processor.shutdown()  # type: ignore[no-untyped-call]
    assert configurator.accepted({"export_span_processor": 1, "no_such_argument": 2}) == {
        "export_span_processor": 1
    }
    assert caplog.text.count("using the OpenTelemetry SDK's own code paths") == 1


def test_the_private_accesses_are_taken_on_the_release_mirrored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The other side of the guard: on the pinned release, with the mirrors on, tbmon's paths."""
    pinned.fall_back.cache_clear()
    caplog.set_level(logging.WARNING, logger=pinned.__name__)
    exporter = TbmonSpanExporter(endpoint="127.0.0.1:1", insecure=True)
    client: object = exporter._client  # declared as the generated stub
    try:
        assert isinstance(client, exporters._BytesStub)
    finally:
        exporter.shutdown()
    processor = delivery.span_processor(delivery.DeliveryStats())(InMemorySpanExporter())
    try:
        assert type(processor._batch_processor._queue) is delivery._CountingQueue
    finally:
        processor.shutdown()  # type: ignore[no-untyped-call]
    assert "own code paths" not in caplog.text


PROBE = """
import json, logging
from opentelemetry import metrics, trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.instrumentation.logging import LoggingInstrumentor
tracer = trace.get_tracer("probe")
with tracer.start_as_current_span("probe"):
    logging.getLogger("bot").info("inside")
logger_provider = get_logger_provider()
print(json.dumps({
    "tracer_provider": type(trace.get_tracer_provider()).__name__,
    "tracer": type(tracer).__name__,
    "consumer": type(metrics.get_meter_provider()._measurement_consumer).__name__,
    "handler": type(LoggingInstrumentor._logging_handler).__name__,
    "log_processors": [
        type(p).__name__
        for p in logger_provider._multi_log_record_processor._log_record_processors
    ],
}))
"""


def run_probe(env: dict[str, str]) -> dict[str, Any]:
    return dict(run_instrumented(PROBE, env)[0])


def test_opentelemetry_instrument_installs_every_fast_path() -> None:
    assert run_probe({}) == {
        "tracer_provider": "FastTracerProvider",
        "tracer": "FastTracer",
        "consumer": "FastMeasurementConsumer",
        "handler": "FastLoggingHandler",
        "log_processors": ["FastBatchLogRecordProcessor"],
    }


def test_the_users_settings_still_win_under_opentelemetry_instrument() -> None:
    seen = run_probe(
        {"OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION": "false", "OTEL_TRACES_SAMPLER": "always_off"}
    )
    assert seen["handler"] == "NoneType"  # no handler asked for: none made
    assert seen["tracer"] == "FastTracer"
    disabled = run_probe({"OTEL_SDK_DISABLED": "true"})
    assert disabled["tracer"] == "NoOpTracer"
