"""Repair of a batch that does not decode: one bad item must never cost the others.

The collector passes on strings that are not valid UTF-8 (its decoder does not check them);
protobuf's Python decoder refuses the whole message for one such string. A batch is a merge of
many senders' requests, so refusing it (INVALID_ARGUMENT, which the collector takes as permanent)
would drop everybody's data for one sender's bad byte. Instead, :func:`repair` walks the batch's
wire format with the message types' descriptors, and

- every ``string`` field that is not valid UTF-8 is decoded with replacement (U+FFFD for each
  bad sequence), so the item survives, visibly altered;
- an item (span, log record, metric) that still does not decode (garbage inside a valid
  envelope) is dropped alone, and counted;
- a part that decodes is copied as it came, unread: the walk descends only into the messages
  that fail (protobuf's C decoder checks each one), so its cost is that of the bad items.

It raises ``DecodeError`` only when the envelope itself (outside any item) is broken: then there
is nothing to accept. Only called on the slow path, after a plugin or the next hop found a
batch undecodable; a batch that decodes is never walked.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from tbmon.otlp_wire import BODY, END, KEY_END, START, varint
from tbmon.processors._wire import subfields

#: The messages that are one item each: dropped alone when beyond repair.
ITEM_TYPES = frozenset(
    {
        "opentelemetry.proto.trace.v1.Span",
        "opentelemetry.proto.logs.v1.LogRecord",
        "opentelemetry.proto.metrics.v1.Metric",
    }
)


@dataclass
class Repairs:
    """What :func:`repair` did to one batch."""

    #: Strings whose invalid UTF-8 was replaced.
    strings: int = 0
    #: Items dropped because they did not decode even so.
    dropped: int = 0


def repair(raw: bytes, descriptor: Descriptor) -> tuple[bytes, Repairs]:
    """``raw`` (a serialized ``descriptor`` message) made decodable, and what it took.

    Raises ``DecodeError`` when the envelope is broken (nothing can be accepted).
    """
    repairs = Repairs()
    result = _message(raw, 0, len(raw), descriptor, repairs)
    assert result is not None  # the request is no item: it raises rather than drops
    return result, repairs


def _decodes(raw: bytes, start: int, end: int, descriptor: Descriptor) -> bool:
    message: Message = GetMessageClass(descriptor)()
    try:
        message.ParseFromString(raw[start:end])
    except DecodeError:
        return False
    return True


def _message(
    raw: bytes, start: int, end: int, descriptor: Descriptor, repairs: Repairs
) -> bytes | None:
    """The message ``raw[start:end]`` repaired; None when it is an item beyond repair."""
    if _decodes(raw, start, end, descriptor):
        return raw[start:end]
    is_item = descriptor.full_name in ITEM_TYPES
    before = Repairs(repairs.strings, repairs.dropped)
    try:
        content = _fields(raw, start, end, descriptor, repairs)
        if is_item and not _decodes(content, 0, len(content), descriptor):
            raise DecodeError(f"{descriptor.name} does not decode after repair")
    except DecodeError:
        if not is_item:
            raise
        repairs.strings, repairs.dropped = before.strings, before.dropped + 1
        return None
    return content


def _fields(raw: bytes, start: int, end: int, descriptor: Descriptor, repairs: Repairs) -> bytes:
    """The fields of one message, the length-delimited ones repaired (the rest copied)."""
    parts: list[bytes] = []
    cursor = start
    for number, field in subfields(raw, (start, start, start, end)):
        child = descriptor.fields_by_number.get(number)
        if child is None:
            continue  # an unknown field: copied as it is
        content: bytes | None
        if child.type == FieldDescriptor.TYPE_STRING:
            text = raw[field[BODY] : field[END]]
            try:
                text.decode("utf-8")
                continue
            except UnicodeDecodeError:
                content = text.decode("utf-8", "replace").encode("utf-8")
                repairs.strings += 1
        elif child.type == FieldDescriptor.TYPE_MESSAGE and child.message_type is not None:
            content = _message(raw, field[BODY], field[END], child.message_type, repairs)
            if content is not None and content == raw[field[BODY] : field[END]]:
                continue  # decoded as it was
        else:
            continue  # bytes, packed numbers: nothing to repair
        parts.append(raw[cursor : field[START]])
        if content is not None:  # None: an item dropped, the field goes
            parts += [raw[field[START] : field[KEY_END]], varint(len(content)), content]
        cursor = field[END]
    parts.append(raw[cursor:end])
    return b"".join(parts)
