"""The wire layout of a span or log export request's envelope, and splicing edited parts back.

A plugin that changes a few spans of a batch need not decode and re-encode all of it: the
envelope (resources, scopes, items) is read from the wire format in one pass, the items that
matter are decoded one by one, and their new encodings are spliced into the request's bytes,
with the lengths of the enclosing resource and scope fields written anew. Everything else
(other items, unknown fields) is copied verbatim, so the result is the same valid protobuf a
full decode, edit and encode would give, in the same field order.

Layout (field numbers of opentelemetry-proto, the same for traces and logs; named in
:mod:`tbmon.otlp_wire`, whose primitives this module uses): request ``resource_*`` (1) >
``resource`` (1) and ``scope_*`` (2) > ``scope`` (1) and items (2).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tbmon.otlp_wire import BODY, END, KEY_END, START, Field, numbered, varint
from tbmon.otlp_wire import Request as _Request
from tbmon.otlp_wire import ResourceItems as _ResourceItems
from tbmon.otlp_wire import ScopeItems as _ScopeItems

__all__ = ["BODY", "END", "KEY_END", "START", "Envelope", "Field", "Where", "rebuilt", "subfields"]


@dataclass(frozen=True, slots=True)
class Scope:
    field: Field
    #: Occurrences of the InstrumentationScope field (protobuf merges repeats; usually one).
    scope: tuple[Field, ...]
    items: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class Resource:
    field: Field
    #: Occurrences of the Resource field (usually one).
    resource: tuple[Field, ...]
    scopes: tuple[Scope, ...]


#: Where an item is: (resource, scope, index) in the request's repeated fields.
Where = tuple[int, int, int]


class Envelope:
    """The envelope of a serialized span or log export request.

    Raises ``DecodeError`` when the envelope is malformed (the items are not decoded).
    """

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        resources = []
        resource_number, scopes_number = _ResourceItems.RESOURCE, _ResourceItems.SCOPES
        scope_number, items_number = _ScopeItems.SCOPE, _ScopeItems.ITEMS
        for field in _fields(raw, 0, len(raw), _Request.RESOURCES):
            resource_fields = []
            scopes = []
            for number, child in numbered(raw, field[BODY], field[END]):
                if number == resource_number:
                    resource_fields.append(child)
                elif number == scopes_number:
                    scope_fields, items = [], []
                    for item_number, item in numbered(raw, child[BODY], child[END]):
                        if item_number == items_number:
                            items.append(item)
                        elif item_number == scope_number:
                            scope_fields.append(item)
                    scopes.append(Scope(child, tuple(scope_fields), tuple(items)))
            resources.append(Resource(field, tuple(resource_fields), tuple(scopes)))
        self.resources: tuple[Resource, ...] = tuple(resources)
        #: Every item with where it is, in order; and where each one's content starts.
        self.items: list[tuple[Field, Where]] = [
            (item, (r, s, i))
            for r, resource in enumerate(self.resources)
            for s, scope in enumerate(resource.scopes)
            for i, item in enumerate(scope.items)
        ]
        self._starts = [item[BODY] for item, _ in self.items]
        self._ends = [item[END] for item, _ in self.items]

    def items_at(self, spans: Iterable[tuple[int, int]]) -> list[tuple[Field, Where]]:
        """The items that any of the byte ranges ``(start, end)`` overlaps, in order."""
        return [(field, where) for field, where, _ in self.items_with(spans)]

    def items_with(
        self, spans: Iterable[tuple[int, int]]
    ) -> list[tuple[Field, Where, list[tuple[int, int]]]]:
        """The items that any of the byte ranges overlaps, in order, each with those ranges."""
        marked = overlapped(self._starts, self._ends, spans)
        return [(*self.items[index], marked[index]) for index in sorted(marked)]

    def splice(self, replacements: Mapping[Field, bytes]) -> bytes:
        """The request with the content of each field in ``replacements`` (items, resources or
        scopes of this envelope) replaced and the enclosing lengths rewritten."""
        if not replacements:
            return self.raw
        splicer = _Splicer(self.raw, replacements)
        splicer.content((0, 0, 0, len(self.raw)), self.resources)
        return b"".join(splicer.parts)


Node = Field | Scope | Resource


class _Splicer:
    """Writes a request anew left to right: untouched stretches are copied as they are, touched
    fields get their new content and length."""

    def __init__(self, raw: bytes, replacements: Mapping[Field, bytes]) -> None:
        self.raw = raw
        self.replacements = replacements
        self.parts: list[bytes] = []
        self._replaced = sorted(replacements)
        self._starts = [field[START] for field in self._replaced]
        self._lengths: dict[Field, int] = {}

    def _inside(self, field: Field) -> list[Field]:
        """The replaced fields inside ``field``."""
        low = bisect_left(self._starts, field[START])
        return self._replaced[low : bisect_left(self._starts, field[END], low)]

    def touched(self, node: Node) -> bool:
        if isinstance(node, tuple):
            return node in self.replacements
        return bool(self._inside(node.field))

    def length(self, node: Node) -> int:
        """The new length of a touched node's content."""
        if isinstance(node, tuple):
            return len(self.replacements[node])
        field = node.field
        known = self._lengths.get(field)
        if known is not None:
            return known
        total = field[END] - field[BODY]
        if isinstance(node, Scope):  # its replaced fields are its children
            children: Iterable[Node] = self._inside(field)
        else:
            children = [child for child in _children(node) if self.touched(child)]
        for child in children:
            old = _field(child)
            new = self.length(child)
            total += len(varint(new)) + new - (old[END] - old[KEY_END])
        self._lengths[field] = total
        return total

    def content(self, parent: Field, children: Iterable[Node]) -> None:
        """Emit a touched parent's content, from its body to its end."""
        raw, cursor = self.raw, parent[BODY]
        for child in children:
            if not self.touched(child):
                continue
            start, key_end, _, end = _field(child)
            self.parts += [raw[cursor:start], raw[start:key_end], varint(self.length(child))]
            if isinstance(child, tuple):
                self.parts.append(self.replacements[child])
            elif isinstance(child, Scope):
                self.content(child.field, self._inside(child.field))  # its replaced items
            else:
                self.content(child.field, _children(child))
            cursor = end
        self.parts.append(raw[cursor : parent[END]])


def overlapped(
    starts: Sequence[int], ends: Sequence[int], spans: Iterable[tuple[int, int]]
) -> dict[int, list[tuple[int, int]]]:
    """Which of some fields in order (``starts[i]:ends[i]``, not overlapping one another) the
    byte ranges overlap: field index -> the ranges. Each range is looked up by bisection, so
    only the fields near it are looked at."""
    marked: dict[int, list[tuple[int, int]]] = {}
    for start, end in spans:
        index = max(bisect_right(starts, start) - 1, 0)
        while index < len(starts) and starts[index] < end:
            if ends[index] > start:
                marked.setdefault(index, []).append((start, end))
            index += 1
    return marked


def _children(node: Scope | Resource) -> Sequence[Node]:
    """A scope's or resource's tracked fields, in wire order."""
    if isinstance(node, Scope):
        if not node.scope or not node.items or node.scope[-1] < node.items[0]:
            return [*node.scope, *node.items]  # as protobuf writes it: no need to sort
        return sorted((*node.scope, *node.items))
    return sorted((*node.resource, *node.scopes), key=lambda child: _field(child)[START])


def _field(node: Node) -> Field:
    return node if isinstance(node, tuple) else node.field


def subfields(raw: bytes, field: Field, until: int | None = None) -> list[tuple[int, Field]]:
    """The length-delimited fields of the message in ``field`` (an item), with their numbers;
    with ``until``, only those that start before that position (the rest is not read).

    Raises ``DecodeError`` when its wire format is malformed.
    """
    return numbered(raw, field[BODY], field[END], until)


def rebuilt(raw: bytes, field: Field, replacements: Mapping[Field, bytes]) -> bytes:
    """The content of ``field`` with the contents of some of its :func:`subfields` replaced."""
    parts, cursor = [], field[BODY]
    for start, key_end, _, end in sorted(replacements):
        content = replacements[start, key_end, _, end]
        parts += [raw[cursor:start], raw[start:key_end], varint(len(content)), content]
        cursor = end
    parts.append(raw[cursor : field[END]])
    return b"".join(parts)


def _fields(raw: bytes, start: int, end: int, number: int) -> list[Field]:
    return [field for n, field in numbered(raw, start, end) if n == number]
