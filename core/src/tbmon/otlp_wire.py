"""The OTLP protobuf wire format, written and read in one module: varints, tags, length-delimited
fields, the field numbers of opentelemetry-proto (v1) as named constants, and AnyValue/KeyValue.

Two hot paths use it and nothing else hand-rolls the format:

- the bot's encoder (:mod:`tbmon.instrumentation._internal.encoding`) writes SDK spans and log
  records as the stock encoders' bytes, about 7 us a span against 58 us (``python -m bench
  encoding``);
- the processors' reader and splicer (:mod:`tbmon.processors._wire`) find the items of an export
  request in one pass and splice edited ones back; the execution-quality plugin appends its
  attributes to a span's bytes (``python -m bench wire``).

Everything here depends on the standard library and protobuf's ``DecodeError`` only (the bot side
and the pipeline both have protobuf through opentelemetry-proto). Readers raise ``DecodeError`` on
malformed input, as protobuf's own parser would.

Tags (``field number << 3 | wire type``) are precomputed by the callers from the constants below
(``tag(Span.NAME, LEN)``), so a hot path writes a constant ``bytes``, not a computation.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from google.protobuf.message import DecodeError

__all__ = [
    "BODY",
    "DOUBLE",
    "DOUBLE_VALUE",
    "DOUBLE_VALUE_PREFIX",
    "END",
    "FALSE",
    "FIXED32",
    "FIXED64",
    "I32",
    "I64",
    "KEY",
    "KEY_END",
    "LEN",
    "START",
    "TRUE",
    "VALUE",
    "VARINT",
    "AnyValue",
    "DecodeError",
    "Event",
    "Field",
    "InstrumentationScope",
    "KeyValue",
    "Link",
    "LogRecord",
    "Metric",
    "Request",
    "Resource",
    "ResourceItems",
    "ScopeItems",
    "Span",
    "Status",
    "Value",
    "any_value",
    "attribute",
    "delimited",
    "field",
    "int64",
    "key_value",
    "numbered",
    "read_any_value",
    "read_key_value",
    "read_length",
    "read_varint",
    "repeated",
    "string",
    "tag",
    "uint",
    "varint",
]

# -- wire types ---------------------------------------------------------------------------------

VARINT: Final = 0
I64: Final = 1
LEN: Final = 2
I32: Final = 5


# -- field numbers of opentelemetry-proto v1, by message ----------------------------------------


class Request:
    """Export{Trace,Logs,Metrics}ServiceRequest: resource_spans / resource_logs /
    resource_metrics."""

    RESOURCES: Final = 1


class ResourceItems:
    """ResourceSpans / ResourceLogs / ResourceMetrics (the same numbers for the three)."""

    RESOURCE: Final = 1
    SCOPES: Final = 2
    SCHEMA_URL: Final = 3


class ScopeItems:
    """ScopeSpans / ScopeLogs / ScopeMetrics: spans / log_records / metrics are ITEMS."""

    SCOPE: Final = 1
    ITEMS: Final = 2
    SCHEMA_URL: Final = 3


class Resource:
    ATTRIBUTES: Final = 1
    DROPPED_ATTRIBUTES_COUNT: Final = 2


class InstrumentationScope:
    NAME: Final = 1
    VERSION: Final = 2
    ATTRIBUTES: Final = 3
    DROPPED_ATTRIBUTES_COUNT: Final = 4


class Span:
    TRACE_ID: Final = 1
    SPAN_ID: Final = 2
    TRACE_STATE: Final = 3
    PARENT_SPAN_ID: Final = 4
    NAME: Final = 5
    KIND: Final = 6
    START_TIME_UNIX_NANO: Final = 7
    END_TIME_UNIX_NANO: Final = 8
    ATTRIBUTES: Final = 9
    DROPPED_ATTRIBUTES_COUNT: Final = 10
    EVENTS: Final = 11
    DROPPED_EVENTS_COUNT: Final = 12
    LINKS: Final = 13
    DROPPED_LINKS_COUNT: Final = 14
    STATUS: Final = 15
    FLAGS: Final = 16


class Event:
    """Span.Event."""

    TIME_UNIX_NANO: Final = 1
    NAME: Final = 2
    ATTRIBUTES: Final = 3
    DROPPED_ATTRIBUTES_COUNT: Final = 4


class Link:
    """Span.Link."""

    TRACE_ID: Final = 1
    SPAN_ID: Final = 2
    TRACE_STATE: Final = 3
    ATTRIBUTES: Final = 4
    DROPPED_ATTRIBUTES_COUNT: Final = 5
    FLAGS: Final = 6


class Status:
    MESSAGE: Final = 2
    CODE: Final = 3


class LogRecord:
    TIME_UNIX_NANO: Final = 1
    SEVERITY_NUMBER: Final = 2
    SEVERITY_TEXT: Final = 3
    BODY: Final = 5
    ATTRIBUTES: Final = 6
    DROPPED_ATTRIBUTES_COUNT: Final = 7
    FLAGS: Final = 8
    TRACE_ID: Final = 9
    SPAN_ID: Final = 10
    OBSERVED_TIME_UNIX_NANO: Final = 11
    EVENT_NAME: Final = 12


class Metric:
    """Metric's data one-of (the rest of a metric is not read on the wire)."""

    GAUGE: Final = 5
    SUM: Final = 7
    HISTOGRAM: Final = 9
    EXPONENTIAL_HISTOGRAM: Final = 10
    SUMMARY: Final = 11
    #: Gauge, Sum, Histogram, ExponentialHistogram and Summary: their data_points.
    DATA_POINTS: Final = 1


class AnyValue:
    STRING: Final = 1
    BOOL: Final = 2
    INT: Final = 3
    DOUBLE: Final = 4
    ARRAY: Final = 5
    KVLIST: Final = 6
    BYTES: Final = 7
    #: ArrayValue.values and KeyValueList.values.
    VALUES: Final = 1


class KeyValue:
    KEY: Final = 1
    VALUE: Final = 2


# -- writing ------------------------------------------------------------------------------------

_BYTE = tuple(bytes((value,)) for value in range(0x100))
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT64_MASK = (1 << 64) - 1


def varint(value: int) -> bytes:
    """``value`` (>= 0) as a protobuf base-128 varint."""
    if value < 0x80:  # most lengths and tags: one or two bytes, without the loop
        return _BYTE[value]
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    """The key of field ``number`` of ``wire_type``."""
    return varint(number << 3 | wire_type)


def delimited(body: bytes) -> bytes:
    """``body`` after its length: the value of a length-delimited field, to follow its tag."""
    size = len(body)
    return (_BYTE[size] if size < 0x80 else varint(size)) + body


def field(key: bytes, body: bytes) -> bytes:
    """A length-delimited field: its key (from :func:`tag`), length and ``body``."""
    return key + delimited(body)


def repeated(key: bytes, values: list[bytes]) -> bytes:
    """A repeated field of already length-prefixed ``values``."""
    return key + key.join(values) if values else b""


def string(key: bytes, text: str | None) -> bytes:
    """A string field, left out when empty (proto3)."""
    return key + delimited(text.encode()) if text else b""


def uint(key: bytes, value: int | None) -> bytes:
    """A varint field of a count or an enum, left out when zero (proto3)."""
    return key + varint(value) if value else b""


def int64(value: int) -> bytes:
    """An int64 varint: negative values take ten bytes (two's complement), as protobuf has it."""
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"Value out of range: {value}")
    return varint(value & _UINT64_MASK)


#: Packers of a one-byte key followed by a fixed-width value.
FIXED32: Final = struct.Struct("<BI").pack
FIXED64: Final = struct.Struct("<BQ").pack
DOUBLE: Final = struct.Struct("<Bd").pack

_ANY_STRING = tag(AnyValue.STRING, LEN)
_ANY_INT = tag(AnyValue.INT, VARINT)
_ANY_DOUBLE = (AnyValue.DOUBLE << 3) | I64
_ANY_ARRAY = tag(AnyValue.ARRAY, LEN)
_ANY_KVLIST = tag(AnyValue.KVLIST, LEN)
_ANY_BYTES = tag(AnyValue.BYTES, LEN)
_VALUES = tag(AnyValue.VALUES, LEN)
KEY: Final = tag(KeyValue.KEY, LEN)
VALUE: Final = tag(KeyValue.VALUE, LEN)
#: AnyValue.bool_value, false and true.
FALSE: Final = tag(AnyValue.BOOL, VARINT) + b"\x00"
TRUE: Final = tag(AnyValue.BOOL, VARINT) + b"\x01"
#: KeyValue.value holding a double: its key, length 9, AnyValue.double_value's key, the double.
DOUBLE_VALUE: Final = struct.Struct("<BBBd").pack
DOUBLE_VALUE_PREFIX: Final = (VALUE[0], 9, _ANY_DOUBLE)


def any_value(value: object) -> bytes:
    """The AnyValue message of ``value``, trying the types in the stock encoder's order
    (``opentelemetry.exporter.otlp.proto.common``): None is an empty AnyValue."""
    if value is None:
        return b""
    if isinstance(value, bool):
        encoded = TRUE if value else FALSE
    elif isinstance(value, str):
        encoded = _ANY_STRING + delimited(value.encode())
    elif isinstance(value, int):
        encoded = _ANY_INT + int64(value)
    elif isinstance(value, float):
        encoded = DOUBLE(_ANY_DOUBLE, value)
    elif isinstance(value, bytes):
        encoded = _ANY_BYTES + delimited(value)
    elif isinstance(value, Sequence):
        encoded = _ANY_ARRAY + delimited(
            repeated(_VALUES, [delimited(any_value(item)) for item in value])
        )
    elif isinstance(value, Mapping):
        pairs = [delimited(key_value(str(key), item)) for key, item in value.items()]
        encoded = _ANY_KVLIST + delimited(repeated(_VALUES, pairs))
    else:
        raise TypeError(f"Invalid type {type(value)} of value {value}")
    return encoded


def key_value(key: str, value: object) -> bytes:
    """The KeyValue message of one attribute (``value`` as in :func:`any_value`)."""
    return string(KEY, key) + VALUE + delimited(any_value(value))


def attribute(key_tag: bytes, key: str, value: object) -> bytes:
    """One attribute as a field ``key_tag`` (e.g. ``tag(Span.ATTRIBUTES, LEN)``) of its message:
    appended to a message's bytes, it adds the attribute (protobuf merges repeated fields)."""
    return key_tag + delimited(key_value(key, value))


# -- reading ------------------------------------------------------------------------------------

#: One length-delimited field, (start, key_end, body, end): ``raw[start:key_end]`` is its key,
#: ``raw[key_end:body]`` its length, ``raw[body:end]`` its content. A plain tuple: a batch has
#: hundreds, and a tuple is the cheapest thing to make.
Field = tuple[int, int, int, int]
START, KEY_END, BODY, END = range(4)


def read_varint(raw: bytes, position: int) -> tuple[int, int]:
    """The varint at ``position`` and the position after it. ``IndexError`` when truncated,
    ``DecodeError`` when longer than 64 bits."""
    value = shift = 0
    while True:
        if shift > 63:
            raise DecodeError("varint too long")
        byte = raw[position]  # IndexError: truncated
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def read_length(raw: bytes, position: int) -> tuple[int, int]:
    """A length varint of two bytes or more (callers read one-byte lengths themselves); two
    bytes (items of up to 16 KiB) without the general loop."""
    first = raw[position]
    second = raw[position + 1]
    if not second & 0x80:
        return (first & 0x7F) | (second << 7), position + 2
    return read_varint(raw, position)


def numbered(raw: bytes, start: int, end: int, until: int | None = None) -> list[tuple[int, Field]]:
    """Every length-delimited field of the message ``raw[start:end]`` (that starts before
    ``until``), with its number; checks the wire format of the others (skipped).

    Raises ``DecodeError`` when the message is malformed.
    """
    found = []
    position = start
    stop = end if until is None else min(end, until)
    try:
        while position < stop:
            field_start = position
            key = raw[position]
            position += 1
            if key & 0x80:
                key, position = read_varint(raw, field_start)
            wire_type = key & 7
            if wire_type == LEN:
                key_end = position
                length = raw[position]
                if length & 0x80:
                    length, position = read_length(raw, position)
                else:
                    position += 1
                body = position
                position += length
                if position > end:
                    raise DecodeError("truncated message")
                found.append((key >> 3, (field_start, key_end, body, position)))
            elif wire_type == VARINT:
                _, position = read_varint(raw, position)
            elif wire_type == I64:
                position += 8
            elif wire_type == I32:
                position += 4
            else:
                raise DecodeError(f"unexpected wire type {wire_type}")
    except IndexError as error:
        raise DecodeError("truncated message") from error
    if position > end or (position != end and stop == end):
        raise DecodeError("truncated message")
    return found


#: What :func:`read_any_value` returns: the Python value of an AnyValue.
Value = str | bool | int | float | bytes | list["Value"] | dict[str, "Value"] | None

_DOUBLE = struct.Struct("<d").unpack_from


def read_any_value(raw: bytes, start: int = 0, end: int | None = None) -> Value:
    """The value of the AnyValue message ``raw[start:end]`` (the last one-of field set wins, as
    in protobuf; None when none is). Raises ``DecodeError`` when malformed."""
    end = len(raw) if end is None else end
    value: Value = None
    position = start
    try:
        while position < end:
            key, position = read_varint(raw, position)
            number, wire_type = key >> 3, key & 7
            if wire_type == VARINT:
                number_value, position = read_varint(raw, position)
                if number == AnyValue.BOOL:
                    value = bool(number_value)
                elif number == AnyValue.INT:
                    value = _signed(number_value)
            elif wire_type == I64:
                if number == AnyValue.DOUBLE:
                    value = _DOUBLE(raw, position)[0]
                position += 8
            elif wire_type == LEN:
                length, position = read_varint(raw, position)
                body, position = position, position + length
                reader = _LEN_VALUES.get(number)
                if reader is not None and position <= end:
                    value = reader(raw, body, position)
            elif wire_type == I32:
                position += 4
            else:
                raise DecodeError(f"unexpected wire type {wire_type}")
    except (IndexError, UnicodeDecodeError, struct.error) as error:
        raise DecodeError("malformed AnyValue") from error
    if position != end:
        raise DecodeError("truncated AnyValue")
    return value


def _signed(value: int) -> int:
    """An int64 read as an unsigned varint."""
    return value - (1 << 64) if value > _INT64_MAX else value


def _read_array(raw: bytes, start: int, end: int) -> Value:
    return [
        read_any_value(raw, item[BODY], item[END])
        for number, item in numbered(raw, start, end)
        if number == AnyValue.VALUES
    ]


def _read_kvlist(raw: bytes, start: int, end: int) -> Value:
    return dict(
        read_key_value(raw, pair[BODY], pair[END])
        for number, pair in numbered(raw, start, end)
        if number == AnyValue.VALUES
    )


#: Readers of AnyValue's length-delimited values, by field number.
_LEN_VALUES: dict[int, Callable[[bytes, int, int], Value]] = {
    AnyValue.STRING: lambda raw, start, end: raw[start:end].decode(),
    AnyValue.BYTES: lambda raw, start, end: raw[start:end],
    AnyValue.ARRAY: _read_array,
    AnyValue.KVLIST: _read_kvlist,
}


def read_key_value(raw: bytes, start: int = 0, end: int | None = None) -> tuple[str, Value]:
    """The key and value of the KeyValue message ``raw[start:end]``. Raises ``DecodeError``
    when malformed."""
    end = len(raw) if end is None else end
    key, value = "", None
    for number, part in numbered(raw, start, end):
        if number == KeyValue.KEY:
            try:
                key = raw[part[BODY] : part[END]].decode()
            except UnicodeDecodeError as error:
                raise DecodeError("KeyValue.key is not UTF-8") from error
        elif number == KeyValue.VALUE:
            value = read_any_value(raw, part[BODY], part[END])
    return key, value
