"""Envelope-only views of the OTLP export requests, for counting items without decoding them.

Each view declares the request's nesting (resources, scopes) with the field numbers of
opentelemetry-proto (named in :mod:`tbmon.otlp_wire`), but the items themselves (spans, log
records, metric data points) as opaque ``bytes``. Parsing a request through a view checks its
wire format down to the items and costs about 30 ns per item, against about 1 us for a full
parse.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from tbmon.otlp_wire import Metric, Request, ResourceItems, ScopeItems

_FieldType = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "tbmon.processors.lite"


def _build() -> dict[str, type[Message]]:
    file = descriptor_pb2.FileDescriptorProto(
        name="tbmon_processors_lite.proto", package=_PACKAGE, syntax="proto3"
    )

    def message(name: str, fields: list[tuple[str, int, str | None]]) -> None:
        """A message whose fields are repeated: bytes (type None) or another view message."""
        proto = file.message_type.add(name=name)
        for field_name, number, type_name in fields:
            field = proto.field.add(name=field_name, number=number, label=_FieldType.LABEL_REPEATED)
            if type_name is None:
                field.type = _FieldType.TYPE_BYTES
            else:
                field.type = _FieldType.TYPE_MESSAGE
                field.type_name = f".{_PACKAGE}.{type_name}"

    # Traces: ExportTraceServiceRequest.resource_spans(1) > scope_spans(2) > spans(2).
    # Logs: ExportLogsServiceRequest.resource_logs(1) > scope_logs(2) > log_records(2).
    message("Scope", [("items", ScopeItems.ITEMS, None)])
    message("Resource", [("scopes", ResourceItems.SCOPES, "Scope")])
    message("Request", [("resources", Request.RESOURCES, "Resource")])
    # Metrics: resource_metrics(1) > scope_metrics(2) > metrics(2) > one of gauge(5), sum(7),
    # histogram(9), exponential_histogram(10), summary(11) > data_points(1).
    message("Points", [("points", Metric.DATA_POINTS, None)])
    message(
        "Metric",
        [
            ("gauge", Metric.GAUGE, "Points"),
            ("sum", Metric.SUM, "Points"),
            ("histogram", Metric.HISTOGRAM, "Points"),
            ("exponential_histogram", Metric.EXPONENTIAL_HISTOGRAM, "Points"),
            ("summary", Metric.SUMMARY, "Points"),
        ],
    )
    message("MetricScope", [("metrics", ScopeItems.ITEMS, "Metric")])
    message("MetricResource", [("scopes", ResourceItems.SCOPES, "MetricScope")])
    message("MetricRequest", [("resources", Request.RESOURCES, "MetricResource")])

    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in ("Request", "MetricRequest")
    }


_VIEWS = _build()
_Request = _VIEWS["Request"]
_MetricRequest = _VIEWS["MetricRequest"]


def count(signal: str, raw: bytes) -> int:
    """Items in a serialized request of ``signal`` ("spans", "logs" or "metrics").

    Raises ``google.protobuf.message.DecodeError`` when the envelope is malformed.
    """
    total = 0
    if signal == "metrics":
        request: Any = _MetricRequest.FromString(raw)
        # A metric's one-of is a repeated field in the view: a sub-message per occurrence.
        for resource in request.resources:
            for scope in resource.scopes:
                for metric in scope.metrics:
                    for kind in (
                        metric.gauge,
                        metric.sum,
                        metric.histogram,
                        metric.exponential_histogram,
                        metric.summary,
                    ):
                        for points in kind:
                            total += len(points.points)
        return total
    request = _Request.FromString(raw)
    for resource in request.resources:
        for scope in resource.scopes:
            total += len(scope.items)
    return total
