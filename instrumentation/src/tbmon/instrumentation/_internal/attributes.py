"""Attributes that need no cleaning, stored without it.

The SDK cleans every span and log record attribute through ``_clean_attribute_value``: an
``isinstance`` chain per value (including an ABC check against ``Sequence``) and a recursive call,
about 0.6 us per attribute, 5 us for a log record's eight. Plain ``str``, ``bool``, ``int`` and
``float`` values come out of it unchanged, so for them a copy of the dict is the same result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.util import types

#: The value types ``_clean_attribute_value`` returns as they are (exact types, not subclasses).
PLAIN: Final = frozenset((str, bool, int, float))


def plain_copy(
    attributes: Mapping[str, object], maxlen: int | None, max_value_len: int | None
) -> dict[str, types.AnyValue] | None:
    """A copy of ``attributes`` when ``BoundedAttributes._set_items`` (opentelemetry-api 1.45.2)
    would store them unchanged: a ``dict`` of non-empty ``str`` keys and plain values, strings
    within ``max_value_len``, no more than ``maxlen`` of them; None when they need its cleaning
    (or its dropping)."""
    if type(attributes) is not dict or (maxlen is not None and len(attributes) > maxlen):
        return None
    for key, value in attributes.items():
        if type(key) is not str or not key or type(value) not in PLAIN:
            return None
        if max_value_len is not None and type(value) is str and len(value) > max_value_len:
            return None
    return attributes.copy()


def set_items(bounded: BoundedAttributes, attributes: Mapping[str, types.AnyValue]) -> None:
    """``bounded._set_items(attributes)`` on a new, empty, mutable ``bounded``; plain
    attributes copied without the cleaning."""
    plain = plain_copy(attributes, bounded.maxlen, bounded.max_value_len)
    if plain is None:
        bounded._set_items(attributes)
    else:
        bounded._dict = plain
