"""The SQLite outbox: durable, ordered, deduplicated within its window, migrations followed."""

from __future__ import annotations

from pathlib import Path

from tbmon.alert_bridge.outbox import NewItem, Outbox

WINDOW = 1800.0


def _item(
    fingerprint: str, status: str = "firing", chat: str = "-100", starts: str = "t0"
) -> NewItem:
    return NewItem(
        chat_id=chat,
        thread_id=None,
        silent=False,
        kind="alert",
        status=status,
        severity="critical",
        fingerprint=fingerprint,
        starts_at=starts,
        labels={"alertname": "A", "fp": fingerprint},
        html=f"<b>{fingerprint}</b>",
        length=len(fingerprint),
    )


def test_accepted_items_survive_reopening_in_order(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    assert outbox.accept("g1", b"{}", [_item("a"), _item("b")], 100.0, WINDOW) == 2
    assert outbox.accept("g2", b"{}", [_item("c")], 101.0, WINDOW) == 1
    outbox.close()  # as after a crash: only what was committed is there

    reopened = Outbox(tmp_path / "o.sqlite3")
    pending = reopened.pending("-100")
    assert [item.fingerprint for item in pending] == ["a", "b", "c"]
    reopened.mark_sent([pending[0].id], "-100", 7, "<b>a</b>", keyboard=True, now=102.0)
    assert [item.fingerprint for item in reopened.pending("-100")] == ["b", "c"]
    assert reopened.stats().pending == 2


def test_the_same_event_is_queued_once_within_the_window(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    assert outbox.accept("g", b"{}", [_item("a")], 100.0, WINDOW) == 1
    # Alertmanager's retry, an HA twin, the group re-sent because "b" joined it:
    assert outbox.accept("g", b"{}", [_item("a")], 101.0, WINDOW) == 0
    assert outbox.accept("g", b"{}", [_item("a"), _item("b")], 160.0, WINDOW) == 1
    # The resolution is a new event; a re-fire has a new start time.
    assert outbox.accept("g", b"{}", [_item("a", "resolved")], 170.0, WINDOW) == 1
    assert outbox.accept("g", b"{}", [_item("a", starts="t1")], 180.0, WINDOW) == 1
    # Alertmanager's repeat_interval reminder, after the window, goes out again.
    assert outbox.accept("g", b"{}", [_item("b")], 160.0 + WINDOW + 1, WINDOW) == 1
    assert [(i.fingerprint, i.status) for i in outbox.pending("-100")] == [
        ("a", "firing"),
        ("b", "firing"),
        ("a", "resolved"),
        ("a", "firing"),
        ("b", "firing"),
    ]


def test_a_prometheus_pairs_start_times_make_one_event(tmp_path: Path) -> None:
    """Two Prometheus evaluate one rule at their own moments: Alertmanagers that each heard a
    different replica first send one alert with start times milliseconds apart."""
    outbox = Outbox(tmp_path / "o.sqlite3")
    one, other = "2026-12-07T13:56:01.204Z", "2026-12-07T13:56:01.731Z"
    assert outbox.accept("g", b"{}", [_item("a", starts=one)], 100.0, WINDOW) == 1
    assert outbox.accept("g", b"{}", [_item("a", starts=other)], 130.0, WINDOW) == 0
    assert outbox.accept("g", b"{}", [_item("a", "resolved", starts=other)], 200.0, WINDOW) == 1
    assert outbox.accept("g", b"{}", [_item("a", "resolved", starts=one)], 201.0, WINDOW) == 0
    # A late retry of the firing, after the resolution, is still the event already sent.
    assert outbox.accept("g", b"{}", [_item("a", starts=one)], 202.0, WINDOW) == 0
    # Firing again is a new event, once; and so is its resolution.
    again = "2026-12-07T14:10:00Z"
    assert outbox.accept("g", b"{}", [_item("a", starts=again)], 300.0, WINDOW) == 1
    assert outbox.accept("g", b"{}", [_item("a", starts=again)], 301.0, WINDOW) == 0
    assert outbox.accept("g", b"{}", [_item("a", "resolved", starts=again)], 400.0, WINDOW) == 1
    # Another fingerprint is another alert.
    assert outbox.accept("g", b"{}", [_item("b", starts=other)], 401.0, WINDOW) == 1
    assert [(i.status, i.starts_at) for i in outbox.pending("-100")] == [
        ("firing", one),
        ("resolved", other),
        ("firing", again),
        ("resolved", again),
        ("firing", other),
    ]


def test_resolved_replies_to_the_latest_message_that_announced_the_alert(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    outbox.accept("g", b"{}", [_item("a"), _item("b")], 100.0, WINDOW)
    first, second = outbox.pending("-100")
    outbox.mark_sent([first.id, second.id], "-100", 41, "<b>x</b>", keyboard=True, now=101.0)
    assert outbox.reply_targets("-100", [("a", "t0"), ("b", "t0"), ("c", "t0")]) == [41, 41, None]
    # A resolution whose start the other Prometheus of a pair gave still finds its message.
    assert outbox.reply_targets("-100", [("a", "t0.5")]) == [41]
    # After a re-fire, the start time picks the message: the old one or the latest.
    outbox.accept("g", b"{}", [_item("a", "resolved"), _item("a", starts="t9")], 102.0, WINDOW)
    resolved, refired = outbox.pending("-100")
    outbox.mark_sent([resolved.id], "-100", 42, "<b>r</b>", keyboard=False, now=103.0)
    outbox.mark_sent([refired.id], "-100", 43, "<b>y</b>", keyboard=True, now=104.0)
    assert outbox.reply_targets("-100", [("a", "t0"), ("a", "t9"), ("a", "t9.5")]) == [41, 43, 43]
    assert outbox.message_labels("-100", 41) == [
        {"alertname": "A", "fp": "a"},
        {"alertname": "A", "fp": "b"},
    ]
    assert outbox.message("-100", 41) == ("<b>x</b>", True)


def test_a_migrated_chat_takes_its_pending_items_and_future_ones(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    outbox.accept("g", b"{}", [_item("a"), _item("b", chat="-200")], 100.0, WINDOW)
    outbox.migrate("-100", "-1009")
    outbox.migrate("-1009", "-10099")
    assert outbox.pending("-100") == []
    assert outbox.current_chat("-100") == "-10099"
    outbox.accept("g", b"{}", [_item("c")], 101.0, WINDOW)
    assert [i.fingerprint for i in outbox.pending("-10099")] == ["a", "c"]
    assert sorted(outbox.chats_with_pending()) == ["-10099", "-200"]


def test_pruning_forgets_sent_items_but_never_pending_ones(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    outbox.accept("g", b"{}", [_item("a"), _item("b")], 100.0, WINDOW)
    sent = outbox.pending("-100")[0]
    outbox.mark_sent([sent.id], "-100", 1, "x", keyboard=False, now=101.0)
    outbox.prune(before=10_000.0)
    assert [item.fingerprint for item in outbox.pending("-100")] == ["b"]
    assert outbox.message("-100", 1) is None
    assert outbox.stats().oldest_received_at == 100.0


def test_state_is_kept(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    assert outbox.get_state("offset") is None
    outbox.set_state("offset", "42")
    outbox.close()
    assert Outbox(tmp_path / "o.sqlite3").get_state("offset") == "42"
