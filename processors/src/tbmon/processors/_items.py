"""Item-level editing of a serialized span or log batch: decode only the spans or log records a
plugin needs, edit them, and splice them back (see :mod:`tbmon.processors._wire`).

Used by the built-in plugins, whose work concerns a few items of a batch: the rest of the batch
is neither decoded nor encoded again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from tbmon.processors._wire import BODY, END, Envelope, Field, Where
from tbmon.processors.api import MalformedBatchError

Item = TypeVar("Item", bound=Message)
Part = TypeVar("Part", bound=Message)


class Items(Generic[Item]):
    """The items of one serialized batch, decoded on demand and spliced back when edited.

    Raises ``DecodeError`` when the envelope is malformed; :class:`MalformedBatchError` when
    an item, resource or scope asked for does not decode.
    """

    def __init__(self, raw: bytes, item_type: type[Item]) -> None:
        self.envelope = Envelope(raw)
        self._raw = raw
        self._item_type = item_type
        self._decoded: dict[Field, Message] = {}
        self._edited: dict[Field, Message] = {}
        self._replaced: dict[Field, bytes] = {}
        self._resources: dict[int, Resource] = {}

    @property
    def raw(self) -> bytes:
        """The batch's bytes (as they came, without the edits)."""
        return self._raw

    def at(self, spans: Iterable[tuple[int, int]]) -> list[tuple[Field, Where, Item]]:
        """The items the byte ranges overlap, decoded, with their field and where they are."""
        return [(field, where, self.item(field)) for field, where in self.envelope.items_at(spans)]

    def every(self) -> list[tuple[Field, Where, Item]]:
        """Every item, decoded."""
        return [(field, where, self.item(field)) for field, where in self.envelope.items]

    def item(self, field: Field) -> Item:
        return self._decode(field, self._item_type)

    def resources(self) -> list[tuple[Field, Resource]]:
        """Every occurrence of a resource message, decoded (for editing: :meth:`edited`)."""
        return [
            (field, self._decode(field, Resource))
            for resource in self.envelope.resources
            for field in resource.resource
        ]

    def scopes(self) -> list[tuple[Field, InstrumentationScope]]:
        """Every occurrence of a scope message, decoded (for editing: :meth:`edited`)."""
        return [
            (field, self._decode(field, InstrumentationScope))
            for resource in self.envelope.resources
            for scope in resource.scopes
            for field in scope.scope
        ]

    def resource_of(self, where: Where) -> Resource:
        """The resource an item belongs to (its occurrences merged, as a full decode would),
        for reading."""
        index = where[0]
        if index not in self._resources:
            merged = Resource()
            for field in self.envelope.resources[index].resource:
                merged.MergeFrom(self._decode(field, Resource))
            self._resources[index] = merged
        return self._resources[index]

    def edited(self, field: Field) -> None:
        """Mark a decoded item, resource or scope changed: it is encoded into the result."""
        self._edited[field] = self._decoded[field]

    def replace(self, field: Field, content: bytes) -> None:
        """Give an item, resource or scope new content (its encoding, made by the caller)."""
        self._edited.pop(field, None)
        self._replaced[field] = content

    def content(self, field: Field) -> bytes:
        """The bytes of an item, resource or scope as they are in the batch."""
        return self._raw[field[BODY] : field[END]]

    @property
    def changed(self) -> bool:
        return bool(self._edited or self._replaced)

    def result(self) -> bytes:
        """The batch's bytes with every edited part encoded anew."""
        replacements = {
            field: message.SerializeToString() for field, message in self._edited.items()
        }
        replacements.update(self._replaced)
        return self.envelope.splice(replacements)

    def _decode(self, field: Field, message_type: type[Part]) -> Part:
        message = self._decoded.get(field)
        if message is None:
            message = message_type()
            try:
                message.ParseFromString(self._raw[field[BODY] : field[END]])
            except DecodeError as error:
                raise MalformedBatchError(
                    f"not a valid {message_type.__name__} inside the batch"
                ) from error
            self._decoded[field] = message
        assert isinstance(message, message_type)
        return message
