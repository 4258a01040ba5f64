"""Reading and writing OTLP messages without leaving protobuf: attributes, values, iteration.

Plugins work on the protobuf messages themselves (decoding every span into Python objects would
cost more than everything else the host does), so these helpers stay thin.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

#: A Python value an attribute can hold.
Value = str | bool | int | float | bytes | Sequence["Value"] | Mapping[str, "Value"] | None

__all__ = [
    "AnyValue",
    "ExportLogsServiceRequest",
    "ExportMetricsServiceRequest",
    "ExportTraceServiceRequest",
    "KeyValue",
    "LogRecord",
    "Metric",
    "PerResource",
    "Resource",
    "Span",
    "Value",
    "any_value",
    "attribute",
    "attributes",
    "counter",
    "data_points",
    "gauge",
    "key_values",
    "log_records",
    "metrics",
    "number",
    "number_points",
    "point_value",
    "python_value",
    "resource_key",
    "resource_metrics",
    "set_attribute",
    "spans",
]


def any_value(value: Value) -> AnyValue:
    """An OTLP ``AnyValue`` holding a Python value."""
    result = AnyValue()
    if isinstance(value, bool):
        result.bool_value = value
    elif isinstance(value, int):
        result.int_value = value
    elif isinstance(value, float):
        result.double_value = value
    elif isinstance(value, str):
        result.string_value = value
    elif isinstance(value, bytes):
        result.bytes_value = value
    elif isinstance(value, Mapping):
        result.kvlist_value.values.extend(key_values(value))
    elif value is not None:
        result.array_value.values.extend(any_value(item) for item in value)
    return result


def key_values(mapping: Mapping[str, Value]) -> list[KeyValue]:
    """OTLP attributes from a mapping."""
    return [KeyValue(key=key, value=any_value(value)) for key, value in mapping.items()]


def python_value(value: AnyValue) -> Value:
    """The Python value an ``AnyValue`` holds (None when it is empty)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [python_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind is None:
        return None
    result: Value = getattr(value, kind)
    return result


def attributes(key_values: Iterable[KeyValue]) -> dict[str, Value]:
    """OTLP attributes as a dict (for reading and asserting; plugins' hot paths avoid it)."""
    return {kv.key: python_value(kv.value) for kv in key_values}


def attribute(key_values: Iterable[KeyValue], key: str) -> AnyValue | None:
    """The value of one attribute, or None when the key is absent."""
    for kv in key_values:
        if kv.key == key:
            return kv.value
    return None


def number(value: AnyValue | None) -> float | None:
    """An attribute's numeric value (int, double, or a string that parses); None otherwise."""
    if value is None:
        return None
    kind = value.WhichOneof("value")
    if kind == "double_value":
        return value.double_value
    if kind == "int_value":
        return float(value.int_value)
    if kind == "string_value":
        try:
            return float(value.string_value)
        except ValueError:
            return None
    return None


def set_attribute(
    key_values: RepeatedCompositeFieldContainer[KeyValue], key: str, value: Value
) -> None:
    """Set (replace or add) one attribute in a repeated ``KeyValue`` field."""
    for kv in key_values:
        if kv.key == key:
            kv.value.CopyFrom(any_value(value))
            return
    key_values.add(key=key, value=any_value(value))


def resource_key(resource: Resource) -> tuple[tuple[str, bytes], ...]:
    """A hashable identity of a resource: its attributes, independent of their order."""
    return tuple(
        sorted(
            (kv.key, kv.value.SerializeToString(deterministic=True)) for kv in resource.attributes
        )
    )


def spans(request: ExportTraceServiceRequest) -> Iterator[tuple[ResourceSpans, ScopeSpans, Span]]:
    """Every span of a request, with the resource and scope it belongs to."""
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield resource_spans, scope_spans, span


def log_records(
    request: ExportLogsServiceRequest,
) -> Iterator[tuple[ResourceLogs, ScopeLogs, LogRecord]]:
    """Every log record of a request, with the resource and scope it belongs to."""
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                yield resource_logs, scope_logs, record


def metrics(request: ExportMetricsServiceRequest) -> Iterator[tuple[ResourceMetrics, Metric]]:
    """Every metric of a request, with the resource it belongs to."""
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                yield resource_metrics, metric


def number_points(metric: Metric) -> Sequence[NumberDataPoint]:
    """The data points of a gauge or sum (empty for histograms and summaries)."""
    kind = metric.WhichOneof("data")
    if kind == "gauge":
        return metric.gauge.data_points
    if kind == "sum":
        return metric.sum.data_points
    return ()


def data_points(metric: Metric) -> Sequence[object]:
    """The data points of a metric of any kind."""
    kind = metric.WhichOneof("data")
    points: Sequence[object] = getattr(metric, kind).data_points if kind else ()
    return points


def point_value(point: NumberDataPoint) -> float:
    """A number data point's value as a float, whichever field holds it."""
    return point.as_double if point.WhichOneof("value") == "as_double" else float(point.as_int)


# -- building metrics (derived metrics, tests) -----------------------------------------------

Attributes = Mapping[str, Value] | Iterable[KeyValue]


def _key_values(attributes: Attributes) -> list[KeyValue]:
    if isinstance(attributes, Mapping):
        return key_values(attributes)
    return [KeyValue(key=kv.key, value=kv.value) for kv in attributes]


def gauge(
    name: str,
    points: Iterable[tuple[Attributes, float]],
    time_unix_nano: int,
    *,
    description: str = "",
    unit: str = "",
) -> Metric:
    """A gauge with one data point per (attributes, value)."""
    metric = Metric(name=name, description=description, unit=unit)
    for attrs, value in points:
        metric.gauge.data_points.add(
            attributes=_key_values(attrs), time_unix_nano=time_unix_nano, as_double=value
        )
    return metric


def counter(
    name: str,
    points: Iterable[tuple[Attributes, int]],
    start_time_unix_nano: int,
    time_unix_nano: int,
    *,
    description: str = "",
    unit: str = "",
) -> Metric:
    """A cumulative monotonic sum (a Prometheus counter) with one point per (attributes, value)."""
    metric = Metric(name=name, description=description, unit=unit)
    metric.sum.is_monotonic = True
    metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    for attrs, value in points:
        metric.sum.data_points.add(
            attributes=_key_values(attrs),
            start_time_unix_nano=start_time_unix_nano,
            time_unix_nano=time_unix_nano,
            as_int=value,
        )
    return metric


def resource_metrics(
    resource: Resource, scope: str, metrics: Iterable[Metric], version: str = ""
) -> ResourceMetrics:
    """Metrics of one resource under one instrumentation scope."""
    result = ResourceMetrics(resource=resource)
    result.scope_metrics.add(
        scope=InstrumentationScope(name=scope, version=version), metrics=list(metrics)
    )
    return result


T = TypeVar("T")


class PerResource(Generic[T]):
    """State a plugin keeps per resource (per bot), forgotten once the resource goes quiet.

    Forgetting matters: derived series of a bot that stopped must stop being sent, so that the
    Prometheus exporter expires them.
    """

    def __init__(self, factory: Callable[[], T], idle_seconds: float) -> None:
        self._factory = factory
        self._idle_seconds = idle_seconds
        self._entries: dict[tuple[tuple[str, bytes], ...], tuple[Resource, T, float]] = {}

    def get(self, resource: Resource) -> T:
        """The state of ``resource`` (created on first sight), marked as just seen."""
        key = resource_key(resource)
        entry = self._entries.get(key)
        if entry is None:
            copy = Resource()
            copy.CopyFrom(resource)
            entry = (copy, self._factory(), 0.0)
        self._entries[key] = (entry[0], entry[1], time.monotonic())
        return entry[1]

    def live(self) -> list[tuple[Resource, T]]:
        """Every resource seen within the idle period, with its state; the rest is dropped."""
        horizon = time.monotonic() - self._idle_seconds
        for key in [k for k, (_, _, seen) in self._entries.items() if seen < horizon]:
            del self._entries[key]
        return [(resource, state) for resource, state, _ in self._entries.values()]
