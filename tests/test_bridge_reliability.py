"""Never losing an alert: a Telegram outage, a SIGKILLed bridge, lost answers, hostile values.

These run with Telegram's real flood limits on both sides: the bridge keeps to them, and the
test server counts every message that breaks them as a violation.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

from bridge_support import CRITICAL_CHAT, DISGUISES, Rig, alert, bridge_rig, idents, notification
from support import wait_until

#: The outage the issue asks for; the test server's fault schedule takes any duration.
OUTAGE_SECONDS = 120.0


def _delivered(rig: Rig, wanted: list[str], chat: str = CRITICAL_CHAT) -> list[str] | None:
    seen = idents(rig.messages(chat))
    return seen if set(wanted) <= set(seen) else None


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


def test_sigkill_mid_burst_loses_nothing_and_duplicates_at_most_once(tmp_path: Path) -> None:
    with bridge_rig(tmp_path) as rig:
        wanted = [f"burst{n:03d}" for n in range(150)]
        deadline = time.monotonic() + 120

        def post_all() -> None:
            for ident in wanted:
                rig.post_until_accepted(notification([alert(ident, name="Burst")]), deadline)

        poster = threading.Thread(target=post_all)
        poster.start()
        try:
            wait_until(lambda: len(rig.messages()) >= 2, "the burst to reach Telegram")
            assert poster.is_alive()  # mid-burst
            rig.kill_bridge()
            time.sleep(1)  # Alertmanager's retries hit a dead port meanwhile
            rig.restart_bridge()
        finally:
            poster.join()
        wait_until(lambda: _delivered(rig, wanted), "every alert after the restart", timeout=120)
        counts = Counter(idents(rig.messages()))
        assert set(counts) == set(wanted)
        assert max(counts.values()) <= 2
        duplicated = [ident for ident, count in counts.items() if count == 2]
        per_message = max(len(idents([m])) for m in rig.messages())
        assert len(duplicated) <= per_message  # only the message in flight at the kill
        assert rig.telegram.stats()["violations"] == 0


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
