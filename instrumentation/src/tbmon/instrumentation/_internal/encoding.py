"""OTLP wire bytes of SDK spans and log records, written directly instead of through protobuf.

The stock OTLP exporter builds upb message objects and then serializes them: about 42 us per span
with ten attributes on our machines, the largest CPU cost a traced bot pays. Writing the same
wire format with ``bytes`` operations costs a fraction of that in pure Python (``python -m bench
encoding``).

The output equals the stock encoders' (``opentelemetry.exporter.otlp.proto.common``, pinned SDK)
``SerializeToString()`` byte for byte: the same fields, set or left out in the same cases (zero
scalars are left out; a message field the stock encoder sets is written even when empty), the
same grouping by resource and then scope, in field-number order as upb writes them.

The wire primitives, the field numbers and AnyValue/KeyValue come from :mod:`tbmon.otlp_wire`
(shared with the processors' reader); this module walks the SDK's objects and caches the parts
that repeat (keys, low-cardinality attributes, resource and scope envelopes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Protocol, TypeVar

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PB2Span
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status
from opentelemetry.util.types import Attributes

from tbmon import otlp_wire as wire
from tbmon.instrumentation._internal import pinned
from tbmon.otlp_wire import (
    FIXED32,
    FIXED64,
    I32,
    I64,
    LEN,
    VARINT,
    delimited,
    repeated,
    string,
    tag,
)
from tbmon.otlp_wire import uint as _uint

_logger = logging.getLogger(__name__)

#: Bounds of the caches below: entries, and the longest string value worth an entry. An order id
#: per span only churns the attribute cache, it cannot grow it.
_ATTRIBUTE_CACHE_SIZE = 4096
_CACHED_STRING_LENGTH = 128
_ENVELOPE_CACHE_SIZE = 64

_BYTE = tuple(bytes((n,)) for n in range(256))
_DOUBLE_VALUE = wire.DOUBLE_VALUE
_VALUE, _DOUBLE_LENGTH, _ANY_DOUBLE = wire.DOUBLE_VALUE_PREFIX

# Tags (field number << 3 | wire type), by message; the numbers are named in tbmon.otlp_wire.
_LIST = tag(wire.Request.RESOURCES, LEN)  # and Resource*.scope_*, Scope*.items: see _request
_ITEMS = tag(wire.ScopeItems.ITEMS, LEN)
_RESOURCE_SCOPES = tag(wire.ResourceItems.SCOPES, LEN)
_OWNER = tag(wire.ResourceItems.RESOURCE, LEN)  # Scope*.scope has the same number
_SCHEMA_URL = tag(wire.ResourceItems.SCHEMA_URL, LEN)  # Scope*.schema_url too
_RESOURCE_ATTRIBUTES = tag(wire.Resource.ATTRIBUTES, LEN)
_SCOPE_NAME = tag(wire.InstrumentationScope.NAME, LEN)
_SCOPE_VERSION = tag(wire.InstrumentationScope.VERSION, LEN)
_SCOPE_ATTRIBUTES = tag(wire.InstrumentationScope.ATTRIBUTES, LEN)
_SPAN_TRACE_ID = tag(wire.Span.TRACE_ID, LEN) + b"\x10"  # with its length, 16
_SPAN_SPAN_ID = tag(wire.Span.SPAN_ID, LEN) + b"\x08"
_SPAN_TRACE_STATE = tag(wire.Span.TRACE_STATE, LEN)
_SPAN_PARENT_ID = tag(wire.Span.PARENT_SPAN_ID, LEN) + b"\x08"
_SPAN_NAME = tag(wire.Span.NAME, LEN)
_SPAN_KIND = tag(wire.Span.KIND, VARINT)
_SPAN_START = tag(wire.Span.START_TIME_UNIX_NANO, I64)[0]
_SPAN_END = tag(wire.Span.END_TIME_UNIX_NANO, I64)[0]
_SPAN_ATTRIBUTES = tag(wire.Span.ATTRIBUTES, LEN)
_SPAN_DROPPED_ATTRIBUTES = tag(wire.Span.DROPPED_ATTRIBUTES_COUNT, VARINT)
_SPAN_EVENTS = tag(wire.Span.EVENTS, LEN)
_SPAN_DROPPED_EVENTS = tag(wire.Span.DROPPED_EVENTS_COUNT, VARINT)
_SPAN_LINKS = tag(wire.Span.LINKS, LEN)
_SPAN_DROPPED_LINKS = tag(wire.Span.DROPPED_LINKS_COUNT, VARINT)
_SPAN_STATUS = tag(wire.Span.STATUS, LEN)
_SPAN_FLAGS_TAG = tag(wire.Span.FLAGS, I32)  # two bytes: field 16
_EVENT_TIME = tag(wire.Event.TIME_UNIX_NANO, I64)[0]
_EVENT_NAME = tag(wire.Event.NAME, LEN)
_EVENT_ATTRIBUTES = tag(wire.Event.ATTRIBUTES, LEN)
_EVENT_DROPPED_ATTRIBUTES = tag(wire.Event.DROPPED_ATTRIBUTES_COUNT, VARINT)
_LINK_TRACE_ID = tag(wire.Link.TRACE_ID, LEN) + b"\x10"
_LINK_SPAN_ID = tag(wire.Link.SPAN_ID, LEN) + b"\x08"
_LINK_ATTRIBUTES = tag(wire.Link.ATTRIBUTES, LEN)
_LINK_DROPPED_ATTRIBUTES = tag(wire.Link.DROPPED_ATTRIBUTES_COUNT, VARINT)
_LINK_FLAGS_TAG = tag(wire.Link.FLAGS, I32)[0]
_STATUS_MESSAGE = tag(wire.Status.MESSAGE, LEN)
_STATUS_CODE = tag(wire.Status.CODE, VARINT)
_LOG_TIME = tag(wire.LogRecord.TIME_UNIX_NANO, I64)[0]
_LOG_SEVERITY_NUMBER = tag(wire.LogRecord.SEVERITY_NUMBER, VARINT)
_LOG_SEVERITY_TEXT = tag(wire.LogRecord.SEVERITY_TEXT, LEN)
_LOG_BODY = tag(wire.LogRecord.BODY, LEN)
_LOG_ATTRIBUTES = tag(wire.LogRecord.ATTRIBUTES, LEN)
_LOG_DROPPED_ATTRIBUTES = tag(wire.LogRecord.DROPPED_ATTRIBUTES_COUNT, VARINT)
_LOG_FLAGS = tag(wire.LogRecord.FLAGS, I32)[0]
_LOG_TRACE_ID = tag(wire.LogRecord.TRACE_ID, LEN) + b"\x10"
_LOG_SPAN_ID = tag(wire.LogRecord.SPAN_ID, LEN) + b"\x08"
_LOG_OBSERVED_TIME = tag(wire.LogRecord.OBSERVED_TIME_UNIX_NANO, I64)[0]
_LOG_EVENT_NAME = tag(wire.LogRecord.EVENT_NAME, LEN)

_SPAN_KINDS = {
    SpanKind.INTERNAL: PB2Span.SPAN_KIND_INTERNAL,
    SpanKind.SERVER: PB2Span.SPAN_KIND_SERVER,
    SpanKind.CLIENT: PB2Span.SPAN_KIND_CLIENT,
    SpanKind.PRODUCER: PB2Span.SPAN_KIND_PRODUCER,
    SpanKind.CONSUMER: PB2Span.SPAN_KIND_CONSUMER,
}
#: Span.kind by the SDK kind's value.
_KIND_FIELDS = {kind.value: _SPAN_KIND + _BYTE[value] for kind, value in _SPAN_KINDS.items()}
#: Span.flags (fixed32) and Link.flags: the stock encoder sets only the is-remote bits, of the
#: parent's context for a span and of the linked context for a link.
_LOCAL = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_REMOTE = _LOCAL | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_SPAN_FLAGS = (
    _SPAN_FLAGS_TAG + _LOCAL.to_bytes(4, "little"),
    _SPAN_FLAGS_TAG + _REMOTE.to_bytes(4, "little"),
)
_LINK_FLAGS = (FIXED32(_LINK_FLAGS_TAG, _LOCAL), FIXED32(_LINK_FLAGS_TAG, _REMOTE))
#: Span.status without a message, by code.
_STATUSES = tuple(
    _SPAN_STATUS + delimited(_STATUS_CODE + _BYTE[code] if code else b"") for code in range(3)
)


# -- attributes -----------------------------------------------------------------------------------


_keys: dict[str, bytes] = {}


def _key(key: str) -> bytes:
    """KeyValue.key; keys, few and repeated, come from a bounded cache."""
    encoded = _keys.get(key)
    if encoded is None:
        encoded = string(wire.KEY, key)
        if len(_keys) >= _ATTRIBUTE_CACHE_SIZE:
            _keys.clear()
        _keys[key] = encoded
    return encoded


def _key_value(key: str, value: object) -> bytes:
    """The KeyValue message of one attribute."""
    return _key(key) + wire.VALUE + delimited(wire.any_value(value))


#: The SDK's BoundedAttributes iterates in Python (about 0.2 us an item, behind the read-only
#: proxy ReadableSpan hands out too), but its copy() is a plain dict, copied in C.
_COPIED = (MappingProxyType, BoundedAttributes)

#: (key, value) -> the length-prefixed KeyValue, for str and int values: the ones that repeat from
#: span to span (exchange, symbol, side, status code...). Bounded; a new one per span (an order
#: id) only churns it.
_pairs: dict[tuple[str, str | int], bytes] = {}


def _cached_pair(key: str, value: str | int) -> bytes:
    pair = delimited(_key_value(key, value))
    if not isinstance(value, str) or len(value) <= _CACHED_STRING_LENGTH:
        if len(_pairs) >= _ATTRIBUTE_CACHE_SIZE:
            _pairs.clear()
        _pairs[key, value] = pair
    return pair


def _attributes(key_tag: bytes, attributes: Attributes) -> bytes:
    """The repeated KeyValue field ``key_tag``. As in the stock encoder, an attribute that cannot
    be encoded is logged and left out."""
    if isinstance(attributes, _COPIED):
        attributes = attributes.copy()
    if not attributes:
        return b""
    pairs = _pairs
    encoded = []
    for key, value in attributes.items():
        try:
            # Exact types: True == 1 and 0.0 == -0.0 would share an entry.
            if type(value) is str or type(value) is int:
                pair = pairs.get((key, value)) or _cached_pair(key, value)
            elif type(value) is float:  # prices and amounts: rarely the same twice
                pair = delimited(
                    _key(key) + _DOUBLE_VALUE(_VALUE, _DOUBLE_LENGTH, _ANY_DOUBLE, value)
                )
            else:
                pair = delimited(_key_value(key, value))
        except Exception as error:
            _logger.exception("Failed to encode key %s: %s", key, error)
            continue
        encoded.append(pair)
    return repeated(key_tag, encoded)


# -- resources and scopes -----------------------------------------------------------------------


_Owner = TypeVar("_Owner", Resource, InstrumentationScope | None)

#: id(resource or scope) -> (it, bytes before its records, bytes after them). Keyed by identity,
#: as hashing a Resource serializes its attributes; the entry holds the object itself, which keeps
#: its id from being reused by another object while the entry is there.
_envelopes: dict[int, tuple[object, bytes, bytes]] = {}


def _resource(resource: Resource) -> bytes:
    return _attributes(_RESOURCE_ATTRIBUTES, resource.attributes)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    return b"".join(
        (
            string(_SCOPE_NAME, scope.name),
            string(_SCOPE_VERSION, scope.version),
            _attributes(_SCOPE_ATTRIBUTES, scope.attributes),
        )
    )


def _envelope(owner: _Owner, encode: Callable[[_Owner], bytes]) -> tuple[bytes, bytes]:
    """What a Resource* or Scope* message has before and after its repeated field 2: the
    resource or scope (field 1), and its schema URL (field 3). Resources and scopes are
    immutable, so it is encoded once per object."""
    entry = _envelopes.get(id(owner))
    if entry is not None:
        return entry[1], entry[2]
    before = _OWNER + delimited(encode(owner))
    after = string(_SCHEMA_URL, owner.schema_url if owner is not None else None)
    if len(_envelopes) >= _ENVELOPE_CACHE_SIZE:
        _envelopes.clear()
    _envelopes[id(owner)] = (owner, before, after)
    return before, after


class _Scoped(Protocol):
    @property
    def resource(self) -> Resource: ...

    @property
    def instrumentation_scope(self) -> InstrumentationScope | None: ...


_Item = TypeVar("_Item", bound=_Scoped)
_Key = TypeVar("_Key")
_Value = TypeVar("_Value")
_Scope = InstrumentationScope | None
#: One resource's records: by scope, and the same lists by id(scope).
_ScopeGroups = tuple[list[tuple[_Scope, list[bytes]]], dict[int, list[bytes]]]


def _group(groups: list[tuple[_Key, _Value]], key: _Key, new: Callable[[], _Value]) -> _Value:
    """The value of the group whose key equals ``key``, or of a new group at the end."""
    for other, value in groups:
        if other == key:
            return value
    value = new()
    groups.append((key, value))
    return value


def _new_scope_groups() -> _ScopeGroups:
    return [], {}


def _request(items: Sequence[_Item], encode: Callable[[_Item], bytes]) -> bytes:
    """An Export*ServiceRequest of ``items``. Like the stock encoder, it groups them by resource
    and then by scope, equal ones together, in order of first appearance. A resource or scope
    object seen before in the batch is found by identity; a new one is compared (==) with the
    batch's few groups rather than hashed, since hashing a Resource serializes its attributes."""
    resources: list[tuple[Resource, _ScopeGroups]] = []
    by_id: dict[int, _ScopeGroups] = {}
    for item in items:
        resource = item.resource
        scopes = by_id.get(id(resource))
        if scopes is None:
            scopes = by_id[id(resource)] = _group(resources, resource, _new_scope_groups)
        scope = item.instrumentation_scope or None
        records = scopes[1].get(id(scope))
        if records is None:
            records = scopes[1][id(scope)] = _group(scopes[0], scope, list)
        records.append(encode(item))
    encoded = []
    for resource, (scope_groups, _) in resources:
        scope_messages = []
        for scope, records in scope_groups:
            before, after = _envelope(scope, _scope)
            scope_messages.append(delimited(before + repeated(_ITEMS, records) + after))
        before, after = _envelope(resource, _resource)
        encoded.append(delimited(before + repeated(_RESOURCE_SCOPES, scope_messages) + after))
    return repeated(_LIST, encoded)


# -- spans ----------------------------------------------------------------------------------------


def _is_remote(context: SpanContext | None) -> int:
    return 1 if context and context.is_remote else 0


def _event(event: Event) -> bytes:
    timestamp = event.timestamp
    return b"".join(
        (
            FIXED64(_EVENT_TIME, timestamp) if timestamp else b"",
            string(_EVENT_NAME, event.name),
            _attributes(_EVENT_ATTRIBUTES, event.attributes),
            _uint(_EVENT_DROPPED_ATTRIBUTES, event.dropped_attributes),
        )
    )


def _link(link: Link) -> bytes:
    context = link.context
    return b"".join(
        (
            _LINK_TRACE_ID + context.trace_id.to_bytes(16, "big"),
            _LINK_SPAN_ID + context.span_id.to_bytes(8, "big"),
            _attributes(_LINK_ATTRIBUTES, link.attributes),
            _uint(_LINK_DROPPED_ATTRIBUTES, link.dropped_attributes),
            _LINK_FLAGS[_is_remote(context)],
        )
    )


def _status(status: Status) -> bytes:
    """Span.status (field 15), which the stock encoder always sets."""
    code, description = status.status_code._value_, status.description
    if not description:
        return _STATUSES[code]
    message = string(_STATUS_MESSAGE, description)
    return _SPAN_STATUS + delimited(message + _STATUS_CODE + _BYTE[code] if code else message)


#: Whether the installed SDK is the release whose span fields :func:`_events_and_links` reads.
_SPAN_FIELDS = pinned.sdk_release()


def _events_and_links(span: ReadableSpan) -> tuple[Sequence[Event], Sequence[Link]]:
    """``span.events`` and ``span.links`` copy the SDK's BoundedList under its lock, about 1 us
    each even when empty, as on most spans; the fields behind them hold the same sequences. The
    one place this module reads SDK internals: on the release mirrored only (:mod:`.pinned`)."""
    if _SPAN_FIELDS:
        return span._events, span._links
    return span.events, span.links


def _span(span: ReadableSpan) -> bytes:
    """One length-prefixed Span message."""
    context = span.get_span_context()
    if context is None:
        raise ValueError(f"span {span.name!r} has no context")
    parent, trace_state = span.parent, context.trace_state
    start, end = span.start_time, span.end_time
    events, links = _events_and_links(span)
    body = b"".join(
        (
            _SPAN_TRACE_ID,
            context.trace_id.to_bytes(16, "big"),
            _SPAN_SPAN_ID,
            context.span_id.to_bytes(8, "big"),
            string(_SPAN_TRACE_STATE, ",".join(f"{k}={v}" for k, v in trace_state.items()))
            if trace_state
            else b"",
            _SPAN_PARENT_ID + parent.span_id.to_bytes(8, "big") if parent else b"",
            string(_SPAN_NAME, span.name),
            # _value_ (the enum's own field) rather than the .value property: a Python call less.
            _KIND_FIELDS[span.kind._value_],
            FIXED64(_SPAN_START, start) if start else b"",
            FIXED64(_SPAN_END, end) if end else b"",
            _attributes(_SPAN_ATTRIBUTES, span.attributes),
            _uint(_SPAN_DROPPED_ATTRIBUTES, span.dropped_attributes),
            repeated(_SPAN_EVENTS, [delimited(_event(event)) for event in events])
            if events
            else b"",
            _uint(_SPAN_DROPPED_EVENTS, span.dropped_events),
            repeated(_SPAN_LINKS, [delimited(_link(link)) for link in links]) if links else b"",
            _uint(_SPAN_DROPPED_LINKS, span.dropped_links),
            _status(span.status),
            _SPAN_FLAGS[_is_remote(parent)],
        )
    )
    return delimited(body)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """The ExportTraceServiceRequest of ``spans``, serialized."""
    return _request(spans, _span)


# -- log records ----------------------------------------------------------------------------------


def _log_record(readable: ReadableLogRecord) -> bytes:
    """One length-prefixed LogRecord message."""
    record = readable.log_record
    timestamp, observed = record.timestamp, record.observed_timestamp
    trace_id, span_id, flags = record.trace_id, record.span_id, int(record.trace_flags)
    body = b"".join(
        (
            FIXED64(_LOG_TIME, timestamp) if timestamp else b"",
            _uint(_LOG_SEVERITY_NUMBER, getattr(record.severity_number, "value", None)),
            string(_LOG_SEVERITY_TEXT, record.severity_text),
            _LOG_BODY + delimited(wire.any_value(record.body)),
            _attributes(_LOG_ATTRIBUTES, record.attributes),
            _uint(_LOG_DROPPED_ATTRIBUTES, readable.dropped_attributes),
            FIXED32(_LOG_FLAGS, flags) if flags else b"",
            _LOG_TRACE_ID + trace_id.to_bytes(16, "big") if trace_id else b"",
            _LOG_SPAN_ID + span_id.to_bytes(8, "big") if span_id else b"",
            FIXED64(_LOG_OBSERVED_TIME, observed) if observed else b"",
            string(_LOG_EVENT_NAME, record.event_name),
        )
    )
    return delimited(body)


def encode_logs(batch: Sequence[ReadableLogRecord]) -> bytes:
    """The ExportLogsServiceRequest of ``batch``, serialized."""
    return _request(batch, _log_record)
