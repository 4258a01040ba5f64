"""Telegram's flood limits, kept on our side so a burst never earns a 429.

Per chat: one message per ``chat_interval`` seconds; groups and channels also at most
``group_per_minute`` messages in any minute; all chats together at most ``global_per_second``
messages in any second. A 429's ``retry_after`` blocks the chat for that long on top. A
restarted bridge records the last minute's messages first (the outbox keeps them), so a restart
does not reset the count.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

#: A minute, with a little slack for the two clocks involved: how far back messages count.
MINUTE = 61.0
_SECOND = 1.05


class RateLimiter:
    def __init__(
        self,
        chat_interval: float,
        group_per_minute: int,
        global_per_second: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._chat_interval = chat_interval
        self._group_per_minute = group_per_minute
        self._global_per_second = global_per_second
        self._clock = clock
        self._last: dict[str, float] = {}
        self._minute: dict[str, deque[float]] = {}
        self._second: deque[float] = deque()
        self._blocked: dict[str, float] = {}

    def block(self, chat_id: str, seconds: float) -> None:
        """Telegram asked us to wait (429 retry_after)."""
        until = self._clock() + seconds
        self._blocked[chat_id] = max(until, self._blocked.get(chat_id, 0.0))

    def wait_time(self, chat_id: str) -> float:
        """Seconds until a message to ``chat_id`` is allowed (0 if now)."""
        now = self._clock()
        waits = [self._blocked.get(chat_id, now) - now]
        if chat_id in self._last:
            waits.append(self._last[chat_id] + self._chat_interval - now)
        minute = self._minute.get(chat_id)
        if _is_group(chat_id) and minute is not None:
            while minute and minute[0] <= now - MINUTE:
                minute.popleft()
            if len(minute) >= self._group_per_minute:
                waits.append(minute[0] + MINUTE - now)
        while self._second and self._second[0] <= now - _SECOND:
            self._second.popleft()
        if len(self._second) >= self._global_per_second:
            waits.append(self._second[0] + _SECOND - now)
        return max(0.0, *waits)

    async def acquire(self, chat_id: str) -> None:
        """Wait until a message to ``chat_id`` is allowed, and count it as sent."""
        # Waiting for time to pass, not for an event.
        while (wait := self.wait_time(chat_id)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        self.record(chat_id)

    def record(self, chat_id: str, seconds_ago: float = 0.0) -> None:
        """Count a message to ``chat_id`` sent ``seconds_ago``; messages recorded out of the
        order they were sent in must be recorded before any is acquired (at start-up)."""
        at = self._clock() - seconds_ago
        self._last[chat_id] = max(at, self._last.get(chat_id, at))
        if _is_group(chat_id):
            self._minute.setdefault(chat_id, deque()).append(at)
        self._second.append(at)


def _is_group(chat_id: str) -> bool:
    """Groups, supergroups and channels have negative ids (or an @name); users positive ones."""
    return chat_id.startswith(("-", "@"))
