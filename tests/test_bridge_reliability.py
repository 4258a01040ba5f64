"""Never losing an alert: a Telegram outage, a SIGKILLed bridge, lost answers, hostile values.

These run with Telegram's real flood limits on both sides: the bridge keeps to them, and the
test server counts every message that breaks them as a violation.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from bridge_support import (
    CRITICAL_CHAT,
    DISGUISES,
    WARNING_CHAT,
    Rig,
    alert,
    bridge_rig,
    idents,
    notification,
    sent_idents,
)
from support import wait_until

#: The outage the issue asks for; the test server's fault schedule takes any duration.
OUTAGE_SECONDS = 120.0


def _delivered(rig: Rig, wanted: list[str], chat: str = CRITICAL_CHAT) -> list[str] | None:
    seen = idents(rig.messages(chat))
    return seen if set(wanted) <= set(seen) else None


@pytest.mark.fault
def test_two_minutes_of_429_and_5xx_then_every_alert_once_in_order(tmp_path: Path) -> None:
    with bridge_rig(tmp_path) as rig:
        rig.telegram.fault(
            kinds=["429", "500", "502", "503", "timeout", "504"],
            duration=OUTAGE_SECONDS,
            retry_after=7,
            delay=12,  # longer than the bridge's 10 s request timeout
        )
        started = time.monotonic()
        sent = []
        for n in range(40):  # spread over the first minute of the outage
            ident = f"outage{n:02d}"
            response = rig.post(notification([alert(ident, name="Outage")]))
            assert response.status_code == 200  # accepted while Telegram is down
            sent.append(ident)
            time.sleep(1.5)
        assert time.monotonic() - started < OUTAGE_SECONDS
        assert not rig.messages()  # nothing got through the outage yet

        seen = wait_until(
            lambda: _delivered(rig, sent),
            "every alert after Telegram recovered",
            timeout=OUTAGE_SECONDS + 120,
            interval=1,
        )
        assert seen == sent  # each exactly once, in the order accepted
        assert rig.telegram.stats()["violations"] == 0
        requests = rig.telegram.requests("sendMessage")
        failed = [r for r in requests if "fault" in r]
        assert {r["fault"] for r in failed} >= {"429", "500", "502", "timeout"}
        first_ok = min(r["time"] for r in requests if r.get("ok"))
        outage_end = requests[0]["time"] + OUTAGE_SECONDS
        # Delivered once Telegram was back, within one capped backoff (30 s) of it.
        assert outage_end - 5 <= first_ok <= outage_end + 35


@pytest.mark.fault
def test_a_429_storm_on_both_chats_every_retry_after_honoured_every_alert_once(
    tmp_path: Path,
) -> None:
    """Telegram answers every message to both chats with 429 for 40 s (retry_after 7 s on one,
    3 s on the other) while alerts keep arriving, past the storm's end."""
    storm = 40.0
    retry_after = {CRITICAL_CHAT: 7, WARNING_CHAT: 3}
    with bridge_rig(tmp_path) as rig:
        for chat, seconds in retry_after.items():
            rig.telegram.fault(kinds=["429"], duration=storm, retry_after=seconds, chat_id=chat)
        started = time.monotonic()
        sent: dict[str, list[str]] = {CRITICAL_CHAT: [], WARNING_CHAT: []}
        n = 0
        while time.monotonic() - started < storm + 5:
            critical = n % 3 != 0
            ident = f"storm{n:03d}"
            body = notification(
                [
                    alert(
                        ident,
                        name="Storm" if critical else "StormWarning",
                        severity="critical" if critical else "warning",
                    )
                ]
            )
            assert rig.post(body).status_code == 200
            sent[CRITICAL_CHAT if critical else WARNING_CHAT].append(ident)
            n += 1
            time.sleep(0.5)
        for chat, wanted in sent.items():
            seen = wait_until(
                lambda chat=chat, wanted=wanted: _delivered(rig, wanted, chat),  # type: ignore[misc]
                f"every alert in chat {chat}",
                timeout=120,
            )
            assert seen == wanted  # each exactly once, in the order accepted
        requests = rig.telegram.requests("sendMessage")
        for chat, seconds in retry_after.items():
            to_chat = [r for r in requests if str(r["params"]["chat_id"]) == chat]
            refused = [r for r in to_chat if r.get("fault") == "429"]
            assert len(refused) >= storm / (seconds + 1) - 1  # it kept trying through the storm
            for before, after in itertools.pairwise(to_chat):
                if before.get("fault") == "429":  # never sooner than Telegram said
                    assert after["time"] - before["time"] >= seconds - 0.1
            # What waited out the storm went out packed, not one alert a message.
            messages = [r for r in to_chat if r.get("ok")]
            assert len(sent_idents(messages[0])) >= 5
            assert len(messages) <= len(sent[chat]) / 2
        assert rig.telegram.stats()["violations"] == 0


@pytest.mark.fault
def test_sigkill_mid_burst_loses_nothing_and_repeats_only_the_message_in_flight(
    tmp_path: Path,
) -> None:
    """Killed twice during a burst of 200 alerts: once at an arbitrary moment while Alertmanager
    still delivers the burst, once while a message is in flight (Telegram has posted it, its
    answer has not reached the bridge). Every alert arrives, each once, but for the alerts of
    a message in flight at a kill: the docs' stated window, sent again after the restart."""
    with bridge_rig(tmp_path) as rig:
        wanted = [f"burst{n:03d}" for n in range(200)]
        deadline = time.monotonic() + 180

        def post_all() -> None:
            for ident in wanted:
                rig.post_until_accepted(notification([alert(ident, name="Burst")]), deadline)

        poster = threading.Thread(target=post_all)
        poster.start()
        try:
            wait_until(lambda: len(rig.messages()) >= 2, "the burst to reach Telegram")
            assert poster.is_alive()  # mid-burst
            arbitrary_kill = time.time()
            rig.kill_bridge()
            time.sleep(1)  # Alertmanager's retries hit a dead port meanwhile
            rig.restart_bridge()
            # Telegram posts the next message and holds its answer back.
            rig.telegram.fault(
                kinds=["timeout"], count=1, delay=30, deliver=True, chat_id=CRITICAL_CHAT
            )
            (held,) = wait_until(
                lambda: [
                    r for r in rig.telegram.requests("sendMessage") if r.get("fault") == "timeout"
                ],
                "a message in flight",
            )
            rig.kill_bridge()
            rig.restart_bridge()
        finally:
            poster.join()
        wait_until(lambda: _delivered(rig, wanted), "every alert after the restarts", timeout=180)
        counts = Counter(idents(rig.messages()))
        assert set(counts) == set(wanted)  # nothing lost
        in_flight = set(sent_idents(held))
        before_arbitrary = max(
            (r for r in rig.telegram.requests("sendMessage") if r["time"] < arbitrary_kill),
            key=lambda r: r["time"],
        )
        maybe_in_flight = set(sent_idents(before_arbitrary))
        repeated = {ident for ident, count in counts.items() if count > 1}
        assert in_flight <= repeated  # the message in flight was sent again, as documented
        assert repeated <= in_flight | maybe_in_flight  # and nothing else
        assert max(counts.values()) == 2
        assert rig.telegram.stats()["violations"] == 0


@pytest.mark.fault
def test_an_answer_lost_after_delivery_duplicates_the_message_once(tmp_path: Path) -> None:
    env = {"ALERT_BRIDGE_REQUEST_TIMEOUT": "2"}
    with bridge_rig(tmp_path, env=env) as rig:
        rig.telegram.fault(kinds=["timeout"], count=1, delay=4, deliver=True)
        rig.post(notification([alert("lost-answer")]))
        wait_until(lambda: idents(rig.messages()).count("lost-answer") == 2, "the retry")
        time.sleep(3)
        assert idents(rig.messages()).count("lost-answer") == 2


def test_random_hostile_values_always_produce_messages_telegram_accepts(tmp_path: Path) -> None:
    pieces = [
        "<",
        ">",
        "&",
        "&amp;",
        "&lt;b&gt;",
        '"',
        "'",
        "</b>",
        "<i>",
        "<a href=",
        "&#",
        "&#x1F4C8;",
        "📉",
        "👩‍💻",
        "Ценовой",
        "风险",
        "مخاطرة",
        "\n",
        "\t",
        "\x00",
        "\x1b",
        "\u202e",
        "x" * 300,
        *DISGUISES,
    ]
    rng = random.Random(2026)

    def hostile(size: int) -> str:
        return "".join(rng.choice(pieces) for _ in range(size))

    alerts = [
        alert(
            f"h{n:02d}",
            name="Hostile",
            labels={"job": hostile(5), "strategy": hostile(3)},
            annotations={"summary": hostile(8), "description": hostile(20), "action": hostile(6)},
        )
        for n in range(40)
    ]
    with bridge_rig(tmp_path) as rig:
        assert rig.post(notification(alerts)).status_code == 200
        wanted = [f"h{n:02d}" for n in range(40)]
        assert wait_until(lambda: _delivered(rig, wanted), "every hostile alert", timeout=90)
        refused = [r for r in rig.telegram.requests("sendMessage") if "error" in r]
        assert refused == []
        shown = "".join(message["text"] for message in rig.messages())
        assert [f"U+{ord(c):04X}" for c in DISGUISES if c in shown] == []
