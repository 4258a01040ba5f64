"""The durable outbox: every accepted alert event is on disk before Alertmanager hears "2xx".

SQLite in WAL mode with ``synchronous=FULL``: a commit survives a crash or power cut. One row per
alert event per chat (an *item*) waits until Telegram confirms the message that carries it; the
sender then records the message id, so a later "resolved" can reply to the "firing" message.

An alert event that repeats one queued for its chat and fingerprint within the dedup window is
skipped (:func:`repeats`): Alertmanager's retries, HA pairs, a group re-sent because another
alert joined it, and a pair of Prometheus, which evaluate one rule at their own moments and so
give one alert two start times (milliseconds or evaluation intervals apart: a second "firing"
message was seen after an Alertmanager restarted and notified before the gossip caught up). A
resolution, and a re-fire starting after it, are new events; a repeat after ``repeat_interval``
(longer than the window) reminds again. Alertmanager must send resolutions (``send_resolved``):
without one, a re-fire within the window reads as the episode going on.

All methods are synchronous and must be called from one thread, which also serialises writers:
the bridge calls them through :class:`OutboxThread`, so disk writes never block its event loop.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from tbmon.alert_bridge.html import visible_length

P = ParamSpec("P")
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    group_key TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    notification_id INTEGER,
    chat_id TEXT NOT NULL,
    thread_id INTEGER,
    silent INTEGER NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    labels TEXT NOT NULL,
    ends_at TEXT NOT NULL DEFAULT '',
    html TEXT NOT NULL,
    length INTEGER NOT NULL,
    reply_to INTEGER,
    received_at REAL NOT NULL,
    sent_at REAL,
    message_id INTEGER
);
CREATE INDEX IF NOT EXISTS items_pending ON items (chat_id, id) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS items_event ON items (chat_id, fingerprint, starts_at, status);
CREATE INDEX IF NOT EXISTS items_alert ON items (chat_id, fingerprint, id);
CREATE TABLE IF NOT EXISTS messages (
    chat_id TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    html TEXT NOT NULL,
    keyboard INTEGER NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);
CREATE TABLE IF NOT EXISTS migrations (
    old_chat TEXT PRIMARY KEY,
    new_chat TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_ITEM_COLUMNS = (
    "id, chat_id, thread_id, silent, kind, status, severity, fingerprint, starts_at, ends_at, "
    "labels, html, length, reply_to, received_at"
)


@dataclass(frozen=True)
class NewItem:
    """An alert event (or a plain text) for one chat, before it is queued."""

    chat_id: str
    thread_id: int | None
    silent: bool
    kind: str  # "alert" or "text"
    status: str  # firing / resolved for alerts, "" for texts
    severity: str
    fingerprint: str
    starts_at: str
    labels: dict[str, str]
    html: str
    length: int
    reply_to: int | None = None
    #: A resolution's end (ISO 8601), "" for the rest.
    ends_at: str = ""

    @classmethod
    def text(
        cls,
        chat_id: str,
        thread_id: int | None,
        html: str,
        *,
        silent: bool = False,
        reply_to: int | None = None,
    ) -> NewItem:
        """A plain text (a note or a command's answer), not tied to an alert."""
        return cls(
            chat_id=chat_id,
            thread_id=thread_id,
            silent=silent,
            kind="text",
            status="",
            severity="",
            fingerprint="",
            starts_at="",
            labels={},
            html=html,
            length=visible_length(html),
            reply_to=reply_to,
        )


@dataclass(frozen=True)
class Item(NewItem):
    """A queued item."""

    id: int = 0
    received_at: float = 0.0


@dataclass(frozen=True)
class Stats:
    pending: int
    oldest_received_at: float | None


class Outbox:
    """The SQLite outbox at ``path`` (created with its folder if missing)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(items)")}
        if "ends_at" not in columns:  # an outbox from before resolutions kept their end
            self._db.execute("ALTER TABLE items ADD COLUMN ends_at TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- accepting ------------------------------------------------------------------------------

    def accept(
        self,
        group_key: str,
        body: bytes,
        items: Sequence[NewItem],
        now: float,
        dedup_window: float,
    ) -> int:
        """Queue the items not already accepted within the window; returns how many were new.

        The notification's raw body is kept alongside for inspection. One transaction: either
        everything is on disk or nothing is (and the caller answers 5xx).
        """
        queued = 0
        with self._transaction() as db:
            notification = db.execute(
                "INSERT INTO notifications (received_at, group_key, body) VALUES (?, ?, ?)",
                (now, group_key, body),
            ).lastrowid
            for item in items:
                chat = self._current_chat(db, item.chat_id)
                if item.kind == "alert" and self._seen(db, chat, item, now - dedup_window):
                    continue
                self._insert(db, item, chat, now, notification)
                queued += 1
        return queued

    def enqueue_text(self, item: NewItem, now: float) -> None:
        with self._transaction() as db:
            self._insert(db, item, self._current_chat(db, item.chat_id), now, None)

    @staticmethod
    def _seen(db: sqlite3.Connection, chat: str, item: NewItem, since: float) -> bool:
        """Whether ``item`` repeats an alert event queued for ``chat`` since ``since``."""
        rows = db.execute(
            "SELECT id, status, starts_at, ends_at, message_id FROM items WHERE chat_id = ? "
            "AND fingerprint = ? AND kind = 'alert' AND received_at >= ? ORDER BY id",
            (chat, item.fingerprint, since),
        )
        return repeats(Event.of(item), [Event.of(row) for row in rows])

    @staticmethod
    def _insert(
        db: sqlite3.Connection, item: NewItem, chat: str, now: float, notification: int | None
    ) -> None:
        db.execute(
            "INSERT INTO items (notification_id, chat_id, thread_id, silent, kind, status, "
            "severity, fingerprint, starts_at, ends_at, labels, html, length, reply_to, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                notification,
                chat,
                item.thread_id,
                int(item.silent),
                item.kind,
                item.status,
                item.severity,
                item.fingerprint,
                item.starts_at,
                item.ends_at,
                json.dumps(item.labels, sort_keys=True),
                item.html,
                item.length,
                item.reply_to,
                now,
            ),
        )

    # -- sending --------------------------------------------------------------------------------

    def chats_with_pending(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT chat_id FROM items WHERE sent_at IS NULL")
        return [row[0] for row in rows]

    def pending(self, chat_id: str, limit: int = 100) -> list[Item]:
        """The chat's oldest unsent items, in the order they were accepted."""
        rows = self._db.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items"  # noqa: S608 - constant columns, bound values
            " WHERE chat_id = ? AND sent_at IS NULL "
            "ORDER BY id LIMIT ?",
            (chat_id, limit),
        )
        return [_item(row) for row in rows]

    def reply_targets(self, chat_id: str, resolutions: Sequence[NewItem]) -> list[int | None]:
        """For each resolution: the message that announced its episode as firing
        (:func:`announcement`), or None."""
        targets = []
        for resolution in resolutions:
            rows = self._db.execute(
                "SELECT id, status, starts_at, ends_at, message_id FROM items WHERE chat_id = ? "
                "AND fingerprint = ? AND kind = 'alert' ORDER BY id",
                (chat_id, resolution.fingerprint),
            )
            targets.append(announcement(Event.of(resolution), [Event.of(row) for row in rows]))
        return targets

    def mark_sent(
        self,
        item_ids: Sequence[int],
        chat_id: str,
        message_id: int,
        html: str,
        *,
        keyboard: bool,
        now: float,
    ) -> None:
        with self._transaction() as db:
            db.executemany(
                "UPDATE items SET sent_at = ?, message_id = ? WHERE id = ?",
                [(now, message_id, item_id) for item_id in item_ids],
            )
            db.execute(
                "INSERT OR REPLACE INTO messages (chat_id, message_id, html, keyboard, sent_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (chat_id, message_id, html, int(keyboard), now),
            )

    def sent_since(self, since: float) -> list[tuple[str, float]]:
        """(chat, time) of each message sent since ``since``, oldest first."""
        rows = self._db.execute(
            "SELECT chat_id, sent_at FROM messages WHERE sent_at >= ? ORDER BY sent_at", (since,)
        )
        return [(row[0], float(row[1])) for row in rows]

    def give_up(self, item_ids: Sequence[int], now: float) -> None:
        """Stop sending these items (done without a message): Telegram will never take them."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE items SET sent_at = ? WHERE id = ?", [(now, i) for i in item_ids]
            )

    def message(self, chat_id: str, message_id: int) -> tuple[str, bool] | None:
        """A sent message's HTML, and whether it carries the silence buttons."""
        row = self._db.execute(
            "SELECT html, keyboard FROM messages WHERE chat_id = ? AND message_id = ?",
            (chat_id, message_id),
        ).fetchone()
        return None if row is None else (row["html"], bool(row["keyboard"]))

    def message_labels(self, chat_id: str, message_id: int) -> list[dict[str, str]]:
        """The label sets of the firing alerts a sent message announced."""
        rows = self._db.execute(
            "SELECT labels FROM items WHERE chat_id = ? AND message_id = ? AND kind = 'alert' "
            "AND status = 'firing'",
            (chat_id, message_id),
        )
        return [json.loads(row["labels"]) for row in rows]

    # -- chats ----------------------------------------------------------------------------------

    def migrate(self, old_chat: str, new_chat: str) -> None:
        """The group became a supergroup: its pending items (and future ones) go to the new id."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO migrations (old_chat, new_chat) VALUES (?, ?)",
                (old_chat, new_chat),
            )
            db.execute(
                "UPDATE items SET chat_id = ? WHERE chat_id = ? AND sent_at IS NULL",
                (new_chat, old_chat),
            )

    def current_chat(self, chat_id: str) -> str:
        return self._current_chat(self._db, chat_id)

    @staticmethod
    def _current_chat(db: sqlite3.Connection, chat_id: str) -> str:
        seen = {chat_id}
        while True:
            row = db.execute(
                "SELECT new_chat FROM migrations WHERE old_chat = ?", (chat_id,)
            ).fetchone()
            if row is None or row[0] in seen:
                return chat_id
            chat_id = row[0]
            seen.add(chat_id)

    # -- state and housekeeping -----------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))

    def stats(self) -> Stats:
        count, oldest = self._db.execute(
            "SELECT COUNT(*), MIN(received_at) FROM items WHERE sent_at IS NULL"
        ).fetchone()
        return Stats(pending=int(count), oldest_received_at=oldest)

    def prune(self, before: float) -> None:
        """Forget what was sent before ``before`` (pending items are never removed)."""
        with self._transaction() as db:
            db.execute("DELETE FROM items WHERE sent_at IS NOT NULL AND received_at < ?", (before,))
            db.execute(
                "DELETE FROM notifications WHERE received_at < ? AND id NOT IN "
                "(SELECT notification_id FROM items WHERE notification_id IS NOT NULL)",
                (before,),
            )
            db.execute("DELETE FROM messages WHERE sent_at < ?", (before,))


class OutboxThread:
    """The outbox at ``path`` on a thread of its own: ``await outbox.call(Outbox.pending, chat)``
    runs the method there, one call at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._outbox: Outbox | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._outbox = await loop.run_in_executor(self._executor, Outbox, self.path)

    async def call(
        self, method: Callable[Concatenate[Outbox, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``method(outbox, *args, **kwargs)`` on the outbox's thread."""
        outbox = self._outbox
        assert outbox is not None, "the outbox is not open"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(method, outbox, *args, **kwargs))

    async def close(self) -> None:
        if self._outbox is not None:
            await self.call(Outbox.close)
            self._outbox = None
        self._executor.shutdown(wait=True)


def _item(row: sqlite3.Row) -> Item:
    return Item(
        id=row["id"],
        chat_id=row["chat_id"],
        thread_id=row["thread_id"],
        silent=bool(row["silent"]),
        kind=row["kind"],
        status=row["status"],
        severity=row["severity"],
        fingerprint=row["fingerprint"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        labels=json.loads(row["labels"]),
        html=row["html"],
        length=row["length"],
        reply_to=row["reply_to"],
        received_at=row["received_at"],
    )


# -- what makes two alert events one --------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """An alert event as deduplication and replies see it: a queued item, or one arriving
    (``id`` 0)."""

    status: str
    starts_at: str
    ends_at: str = ""
    id: int = 0
    message_id: int | None = None

    @classmethod
    def of(cls, source: NewItem | sqlite3.Row) -> Event:
        if isinstance(source, NewItem):
            return cls(source.status, source.starts_at, source.ends_at)
        return cls(
            source["status"],
            source["starts_at"],
            source["ends_at"],
            source["id"],
            source["message_id"],
        )

    @property
    def start(self) -> datetime | None:
        return _time(self.starts_at)

    @property
    def end(self) -> datetime | None:
        return _time(self.ends_at) if self.status == "resolved" else None


def repeats(event: Event, queued: Sequence[Event]) -> bool:
    """Whether ``event`` repeats one of ``queued`` (its fingerprint's events in one chat within
    the dedup window, oldest first). It does if it is:

    - the same event: the same status and start time;
    - a firing that started before a queued resolution ended (a late copy of an episode already
      over, with either Prometheus' start time);
    - a resolution that ended before a queued firing started (an older episode's, late);
    - else, of the status of the latest queued event: the same episode as the other Prometheus
      of a pair saw it (its start time differs), while nothing resolved it in between.
    """
    if any(q.status == event.status and q.starts_at == event.starts_at for q in queued):
        return True
    start, end = event.start, event.end
    ends = [q_end for q in queued if (q_end := q.end) is not None]
    if event.status == "firing" and start is not None and any(start <= e for e in ends):
        return True
    starts = [q_start for q in queued if q.status == "firing" and (q_start := q.start) is not None]
    if end is not None and any(s > end for s in starts):
        return True
    return bool(queued) and queued[-1].status == event.status


def announcement(resolution: Event, events: Sequence[Event]) -> int | None:
    """The message a resolution replies to, among its fingerprint's ``events`` in its chat
    (oldest first): the latest firing message with its start time; else (the other Prometheus'
    start) the latest that started before the resolution's end, unless a resolution queued after
    it ended before this one (that episode is over, and this one's firing was never announced);
    else, with no end to compare, the latest firing message. One pass over ``events``: an alert
    that flapped every 10 minutes for a week (2,000 events) is answered in a few milliseconds."""
    announced = [e for e in events if e.status == "firing" and e.message_id is not None]
    same = [e for e in announced if e.starts_at == resolution.starts_at]
    if same:
        return same[-1].message_id
    end = resolution.end
    if end is None:
        return announced[-1].message_id if announced else None
    for firing in reversed(announced):
        start = firing.start
        if start is None or start > end:
            continue
        closed = any(
            e.id > firing.id and (e_end := e.end) is not None and start <= e_end < end
            for e in events
        )
        return None if closed else firing.message_id
    return None


def _time(value: str) -> datetime | None:
    """An ISO 8601 time (UTC if it names no zone), or None if it is not one."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
