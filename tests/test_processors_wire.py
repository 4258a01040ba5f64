"""The envelope reader and the splicing of edited items: the same protobuf as a full re-encode."""

from __future__ import annotations

import random

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tbmon.processors import otlp
from tbmon.processors._items import Items
from tbmon.processors._wire import Envelope
from tbmon.processors.api import MalformedBatchError


def _request(rng: random.Random) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for r in range(rng.randint(1, 3)):
        resource_spans = request.resource_spans.add(schema_url="s" * rng.randint(0, 3))
        if rng.random() < 0.8:
            resource_spans.resource.attributes.extend(otlp.key_values({"k": "v" * 100 * r}))
        for s in range(rng.randint(0, 3)):
            scope = resource_spans.scope_spans.add(schema_url="u" if s else "")
            if rng.random() < 0.7:
                scope.scope.name = "n" * rng.randint(1, 200)
            for i in range(rng.randint(0, 40)):
                span = scope.spans.add(name=f"{r}-{s}-{i}", trace_id=rng.randbytes(16))
                span.attributes.extend(otlp.key_values({"a": "x" * rng.randint(0, 300)}))
    return request


@pytest.mark.parametrize("seed", range(40))
def test_splicing_edited_parts_equals_a_full_re_encode(seed: int) -> None:
    rng = random.Random(seed)
    request = _request(rng)
    raw = request.SerializeToString()
    items = Items(raw, Span)
    expected = ExportTraceServiceRequest.FromString(raw)
    for field, (r, s, i), span in items.every():
        if rng.random() < 0.3:
            grown = "y" * rng.choice((0, 5, 200, 20_000))  # lengths' varints change size too
            span.name = grown
            items.edited(field)
            expected.resource_spans[r].scope_spans[s].spans[i].name = grown
    resources = dict(items.resources())
    for r, layout in enumerate(items.envelope.resources):
        for field in layout.resource:
            if rng.random() < 0.5:
                otlp.set_attribute(resources[field].attributes, "k", "masked")
                items.edited(field)
                expected.resource_spans[r].resource.CopyFrom(resources[field])
    spliced = items.result()
    assert ExportTraceServiceRequest.FromString(spliced) == expected
    assert len(Envelope(spliced).items) == len(items.envelope.items)  # it reads back


def test_replaced_content_is_spliced_as_given() -> None:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    scope.log_records.add().body.string_value = "a"
    scope.log_records.add().body.string_value = "b"
    raw = request.SerializeToString()
    items = Items(raw, LogRecord)
    field, _, record = items.every()[1]
    items.replace(field, items.content(field) + otlp_attribute_bytes())
    out = ExportLogsServiceRequest.FromString(items.result())
    records = out.resource_logs[0].scope_logs[0].log_records
    assert [r.body.string_value for r in records] == ["a", "b"]
    assert otlp.attributes(records[1].attributes) == {"x": True}
    assert record.body.string_value == "b"


def otlp_attribute_bytes() -> bytes:
    record = LogRecord()
    record.attributes.extend(otlp.key_values({"x": True}))
    return record.SerializeToString()


def test_items_at_are_the_items_a_range_overlaps() -> None:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(5):
        scope.spans.add(name=f"span-{i}-marker")
    raw = request.SerializeToString()
    envelope = Envelope(raw)
    at = raw.index(b"span-3-marker")
    assert [where for _, where in envelope.items_at([(at, at + 4)])] == [(0, 0, 3)]
    assert [where for _, where in envelope.items_at([(0, len(raw))])] == [
        (0, 0, i) for i in range(5)
    ]


def test_malformed_envelopes_and_items_are_refused() -> None:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(name="s")
    raw = request.SerializeToString()
    for cut in range(1, len(raw)):
        with pytest.raises(DecodeError):
            Envelope(raw[:cut])
    garbage_span = b"\x0a\x07\x12\x05\x12\x03\xff\xff\xff"
    items = Items(garbage_span, Span)
    with pytest.raises(MalformedBatchError):
        items.every()
