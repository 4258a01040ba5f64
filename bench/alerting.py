"""The alert bridge: webhook-to-Telegram latency, and a burst of 500 alerts in 5 s to one chat.

Both run the real bridge process against the Telegram test server (a real HTTP server speaking
the Bot API), started by the stack's supervisor on free ports.

- latency: 300 single-alert webhooks, one every 50 ms; from just before the webhook POST to the
  test server receiving the sendMessage request, and the webhook's own answer time. Telegram's
  flood limits are lifted on both sides here, so the figure is the bridge's own overhead.
- burst: 500 single-alert webhooks in 5 s (100/s, 8 concurrent senders) to the critical chat (a
  group) with Telegram's real limits on both sides; completeness, duplicates, limit violations,
  messages used, time to the last delivery, and the bridge's peak memory (RSS).

Run: .venv/bin/python -m bench alerting   (targets: p99 latency <= 250 ms; burst complete,
0 violations, 0 duplicates; peak RSS <= 150 MiB)
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from tbmon.alert_bridge.settings import DEMO_CRITICAL_CHAT_ID
from tbmon.alert_bridge.telegram_test_server import TestServerClient
from tbmon.stack.ports import isolated_settings
from tbmon.stack.render import bridge_token_file
from tbmon.stack.supervisor import Supervisor

LATENCY_ALERTS = 300
BURST_ALERTS = 500
BURST_SECONDS = 5.0
_ID = re.compile(r"^Labels: id=(\w+)", re.MULTILINE)


@contextmanager
def _bridge(env: dict[str, str]) -> Iterator[tuple[Supervisor, TestServerClient, httpx.Client]]:
    saved = {name: os.environ.get(name) for name in [*env, "TELEGRAM_BOT_TOKEN"]}
    os.environ.pop("TELEGRAM_BOT_TOKEN", None)
    os.environ.update(env)
    with tempfile.TemporaryDirectory() as data:
        supervisor = Supervisor(isolated_settings(Path(data)))
        s = supervisor.settings
        telegram = TestServerClient(s.url(s.telegram_test_port))
        try:
            supervisor.up(["telegram-test", "alert-bridge"])
            token = bridge_token_file(s).read_text()
            with httpx.Client(
                base_url=s.url(s.bridge_port), headers={"Authorization": f"Bearer {token}"}
            ) as client:
                yield supervisor, telegram, client
        finally:
            telegram.close()
            supervisor.down(["telegram-test", "alert-bridge"])
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _webhook(ident: str) -> dict[str, Any]:
    alert = {
        "status": "firing",
        "labels": {"alertname": "BenchAlert", "severity": "critical", "component": "trading"}
        | {"id": ident, "job": "bench-bot"},
        "annotations": {
            "summary": "Benchmark alert",
            "description": f"Portfolio drawdown of bench-bot is 31.{ident[-2:]}%, over 25%",
            "action": "Review strategy performance and consider position sizing adjustments",
        },
        "startsAt": "2026-01-15T14:30:45Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=trading_max_drawdown",
        "fingerprint": f"bench-{ident}",
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="BenchAlert"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "telegram",
        "groupLabels": {"alertname": "BenchAlert"},
        "commonLabels": {"alertname": "BenchAlert"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [alert],
    }


def _received(telegram: TestServerClient) -> dict[str, list[float]]:
    """Alert id -> the times the test server received a sendMessage carrying it."""
    times: dict[str, list[float]] = {}
    for request in telegram.requests("sendMessage"):
        if request.get("ok"):
            for ident in _ID.findall(_plain(request["params"]["text"])):
                times.setdefault(ident, []).append(request["time"])
    return times


def _plain(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def latency() -> dict[str, float]:
    unlimited = {
        "ALERT_BRIDGE_CHAT_INTERVAL": "0",
        "ALERT_BRIDGE_GROUP_PER_MINUTE": "100000",
        "ALERT_BRIDGE_GLOBAL_PER_SECOND": "100000",
    }
    with _bridge(unlimited) as (_, telegram, client):
        telegram.limits(enabled=False)
        sent: dict[str, float] = {}
        answers = []
        for n in range(LATENCY_ALERTS):
            ident = f"l{n:04d}"
            started = time.time()
            client.post("/webhook/alertmanager", json=_webhook(ident)).raise_for_status()
            answers.append(time.time() - started)
            sent[ident] = started
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        while len(received := _received(telegram)) < LATENCY_ALERTS:
            assert time.monotonic() < deadline, "not every alert reached the test server"
            time.sleep(0.2)
    delays = [received[ident][0] - start for ident, start in sent.items()]
    return {
        "p50": statistics.median(delays),
        "p99": _percentile(delays, 0.99),
        "answer_p50": statistics.median(answers),
        "answer_p99": _percentile(answers, 0.99),
    }


def burst() -> dict[str, float]:
    with _bridge({}) as (supervisor, telegram, client):
        bridge = psutil.Process(
            next(s.pid for s in supervisor.status(["alert-bridge"]) if s.pid is not None)
        )
        idle_rss = bridge.memory_info().rss
        peak = [idle_rss]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], bridge.memory_info().rss)
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        answers: list[float] = []
        started = time.time()

        def post(n: int) -> None:
            time.sleep(max(0.0, started + n * BURST_SECONDS / BURST_ALERTS - time.time()))
            begin = time.time()
            client.post("/webhook/alertmanager", json=_webhook(f"b{n:04d}")).raise_for_status()
            answers.append(time.time() - begin)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(post, range(BURST_ALERTS)))
        accepted = time.time() - started
        deadline = time.monotonic() + 600
        while len(received := _received(telegram)) < BURST_ALERTS:
            assert time.monotonic() < deadline, "the burst was not delivered within 10 minutes"
            time.sleep(1)
        done.set()
        sampler.join()
        last = max(times[0] for times in received.values())
        copies = Counter({ident: len(times) for ident, times in received.items()})
        stats = telegram.stats()
        messages = len(telegram.messages(DEMO_CRITICAL_CHAT_ID))
        rejected = sum(1 for r in telegram.requests("sendMessage") if "error" in r)
    return {
        "accepted_seconds": accepted,
        "answer_p99": _percentile(answers, 0.99),
        "delivered": len(received),
        "duplicates": sum(count - 1 for count in copies.values()),
        "messages": messages,
        "violations": stats["violations"],
        "rejected": rejected,
        "last_delivery_seconds": last - started,
        "idle_rss_mib": idle_rss / 2**20,
        "peak_rss_mib": peak[0] / 2**20,
    }


def main() -> None:
    lat = latency()
    result = burst()
    print("| measure | value | target |")
    print("| --- | --- | --- |")
    print(
        f"| webhook receipt -> Telegram request, p50 / p99 ({LATENCY_ALERTS} alerts) "
        f"| {lat['p50'] * 1000:.1f} / {lat['p99'] * 1000:.1f} ms | p99 <= 250 ms |"
    )
    print(
        f"| webhook answer (durably queued), p50 / p99 | {lat['answer_p50'] * 1000:.1f} / "
        f"{lat['answer_p99'] * 1000:.1f} ms | |"
    )
    print(
        f"| burst: {BURST_ALERTS} alerts in {BURST_SECONDS:g} s accepted in "
        f"| {result['accepted_seconds']:.1f} s (answer p99 {result['answer_p99'] * 1000:.0f} ms) "
        "| <= 5.5 s |"
    )
    print(
        f"| burst: delivered / duplicates / rejected by Telegram | {result['delivered']:.0f} / "
        f"{result['duplicates']:.0f} / {result['rejected']:.0f} | {BURST_ALERTS} / 0 / 0 |"
    )
    print(
        f"| burst: flood-limit violations, messages used | {result['violations']:.0f}, "
        f"{result['messages']:.0f} messages | 0 |"
    )
    print(
        f"| burst: last alert in Telegram after | {result['last_delivery_seconds']:.0f} s "
        "| (20 messages/min per group) |"
    )
    print(
        f"| bridge memory (RSS) idle / peak in the burst | {result['idle_rss_mib']:.0f} / "
        f"{result['peak_rss_mib']:.0f} MiB | peak <= 150 MiB |"
    )


if __name__ == "__main__":
    main()
