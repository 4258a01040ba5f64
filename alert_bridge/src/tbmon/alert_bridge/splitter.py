"""Cutting long content into valid Telegram messages, only ever on an alert or line boundary.

Each block and line is balanced HTML on its own, so every message built from whole blocks or
lines is balanced too, and lengths add up without re-parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tbmon.alert_bridge.formatter import message_length
from tbmon.alert_bridge.html import MESSAGE_LIMIT, visible_length


def blocks_that_fit(
    head_length: Callable[[int], int], block_lengths: Sequence[int], limit: int = MESSAGE_LIMIT
) -> int:
    """How many leading blocks share one message under a header for that many blocks (>= 1).

    A single block always fits (the formatter keeps it within budget), so progress is certain.
    """
    fitting = 1
    for count in range(2, len(block_lengths) + 1):
        if message_length(head_length(count), block_lengths[:count]) > limit:
            break
        fitting = count
    return fitting


def split_lines(lines: Sequence[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Join lines into as few messages as fit, breaking only between lines."""
    messages: list[str] = []
    current: list[str] = []
    length = 0
    for line in lines:
        line_length = visible_length(line)
        if current and length + 1 + line_length > limit:
            messages.append("\n".join(current))
            current, length = [], 0
        length += line_length + bool(current)
        current.append(line)
    if current:
        messages.append("\n".join(current))
    return messages
