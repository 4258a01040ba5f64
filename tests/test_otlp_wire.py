"""The one OTLP wire module: what it writes is what protobuf writes, what it reads is what
protobuf reads, and its field numbers are opentelemetry-proto's."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tbmon import otlp_wire
from tbmon.processors.otlp import any_value

#: Each named constant class of otlp_wire against the message(s) it names.
MESSAGES: list[tuple[type, list[Descriptor]]] = [
    (otlp_wire.Request, [ExportTraceServiceRequest.DESCRIPTOR]),
    (otlp_wire.ResourceItems, [ResourceSpans.DESCRIPTOR, ResourceLogs.DESCRIPTOR]),
    (otlp_wire.ScopeItems, [ScopeSpans.DESCRIPTOR, ScopeLogs.DESCRIPTOR]),
    (otlp_wire.Resource, [Resource.DESCRIPTOR]),
    (otlp_wire.InstrumentationScope, [InstrumentationScope.DESCRIPTOR]),
    (otlp_wire.Span, [Span.DESCRIPTOR]),
    (otlp_wire.Event, [Span.Event.DESCRIPTOR]),
    (otlp_wire.Link, [Span.Link.DESCRIPTOR]),
    (otlp_wire.Status, [Status.DESCRIPTOR]),
    (otlp_wire.LogRecord, [LogRecord.DESCRIPTOR]),
    (otlp_wire.KeyValue, [KeyValue.DESCRIPTOR]),
]
#: Names that differ from the proto's (the envelope's are shared by traces and logs).
ALIASES = {
    "RESOURCES": ("resource_spans", "resource_logs"),
    "SCOPES": ("scope_spans", "scope_logs"),
    "ITEMS": ("spans", "log_records"),
}


@pytest.mark.parametrize(("names", "descriptors"), MESSAGES)
def test_field_numbers_are_opentelemetry_proto_s(
    names: type, descriptors: list[Descriptor]
) -> None:
    constants = {key: value for key, value in vars(names).items() if key.isupper()}
    assert constants
    for descriptor in descriptors:
        for name, number in constants.items():
            candidates = [name.lower(), *ALIASES.get(name, ())]
            fields = [
                descriptor.fields_by_name[c] for c in candidates if c in descriptor.fields_by_name
            ]
            assert fields, f"{descriptor.full_name} has no field for {names.__name__}.{name}"
            assert fields[0].number == number, f"{descriptor.full_name}.{fields[0].name}"


def test_any_value_and_metric_numbers() -> None:
    for name in ("string", "bool", "int", "double", "array", "kvlist", "bytes"):
        number = getattr(otlp_wire.AnyValue, name.upper())
        assert AnyValue.DESCRIPTOR.fields_by_name[f"{name}_value"].number == number
    for name in ("gauge", "sum", "histogram", "exponential_histogram", "summary"):
        assert Metric.DESCRIPTOR.fields_by_name[name].number == getattr(
            otlp_wire.Metric, name.upper()
        )
    assert Gauge.DESCRIPTOR.fields_by_name["data_points"].number == otlp_wire.Metric.DATA_POINTS


@pytest.mark.parametrize(
    "value", [0, 1, 127, 128, 300, 16_383, 16_384, 2_097_151, 2_097_152, 2**35 + 7, 2**63 - 1]
)
def test_varint_is_protobuf_s_encoding(value: int) -> None:
    """One- and two-byte varints take a short cut; every value must still encode as protobuf
    encodes it (an int64 field's bytes, after its one-byte key), and read back."""
    encoded = otlp_wire.varint(value)
    assert encoded == AnyValue(int_value=value).SerializeToString()[1:]
    assert otlp_wire.read_varint(encoded, 0) == (value, len(encoded))


VALUES = [
    "",
    "BTC/USDT",
    "é" * 200,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    0.5,
    -0.0,
    b"\x00\xff",
    ["a", 1, 2.5, True],
    [],
    {"side": "buy", "nested": {"n": [1, 2]}},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_any_value_and_key_value_are_protobuf_s(value: object) -> None:
    """Written byte for byte as protobuf serializes the same message; read back to the value."""
    message = any_value(value)  # type: ignore[arg-type]
    assert otlp_wire.any_value(value) == message.SerializeToString()
    assert otlp_wire.read_any_value(message.SerializeToString()) == value
    pair = KeyValue(key="order.price", value=message)
    assert otlp_wire.key_value("order.price", value) == pair.SerializeToString()
    assert otlp_wire.read_key_value(pair.SerializeToString()) == ("order.price", value)


def test_attribute_fields_append_to_a_message() -> None:
    """An attribute written as a Span field, appended to a span's bytes, is one more attribute."""
    span = Span(name="create_order")
    key_tag = otlp_wire.tag(otlp_wire.Span.ATTRIBUTES, otlp_wire.LEN)
    raw = span.SerializeToString() + otlp_wire.attribute(key_tag, "execution.slow", True)
    parsed = Span.FromString(raw)
    assert [(kv.key, kv.value.bool_value) for kv in parsed.attributes] == [("execution.slow", True)]


@pytest.mark.parametrize("raw", [b"\x0a\x05ab", b"\x0a\x02\xff\xfe", b"\x0b", b"\x80"])
def test_malformed_values_raise_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        otlp_wire.read_any_value(raw)
    with pytest.raises(DecodeError):
        AnyValue.FromString(raw)
