"""The alert bridge: webhook-to-Telegram latency, a burst of 500 alerts in 5 s to one chat, and
what the gate in front of FastAPI costs.

All run the real bridge process against the Telegram test server (a real HTTP server speaking
the Bot API), started by the stack's supervisor on free ports.

- latency: 300 single-alert webhooks, one every 50 ms; from just before the webhook POST to the
  test server receiving the sendMessage request, and the webhook's own answer time. Telegram's
  flood limits are lifted on both sides here, so the figure is the bridge's own overhead.
- burst: 500 single-alert webhooks in 5 s (100/s, 8 concurrent senders) to the critical chat (a
  group) with Telegram's real limits on both sides; completeness, duplicates, limit violations,
  messages used, time to the last delivery, and the bridge's peak memory (RSS).
- gate: the same bridge served three ways at once, in three processes: "gate" as it ships
  (tbmon/alert_bridge/gate.py checks the token and the limits before a byte of the body is read),
  "before" as the bridge was before the gate (FastAPI reads and parses every body, then its
  route checks the token; an http middleware refuses a declared Content-Length over 16 MiB),
  and "bare", FastAPI with no layer in front (no body limit at all: the reference for what
  each layer costs by itself). Each kind of request goes to one arm right after the other, the
  order reversed each run (``--repeat``, default 2): vegeta (as in bench.health) sends as many
  requests as 8 connections carry for 10 s after a 2 s warm-up; each row gives requests per
  second, the latency and the bridge process's CPU time per request (from /proc).

Run: .venv/bin/python -m bench alerting   (targets: p99 latency <= 250 ms; burst complete,
0 violations, 0 duplicates; peak RSS <= 150 MiB). One part: python -m bench.alerting gate
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from bench._process import cpu_seconds, until_ready
from bench.health import vegeta, vegeta_report
from tbmon.alert_bridge.app import MAX_BODY_BYTES, create_app
from tbmon.alert_bridge.gate import Gate
from tbmon.alert_bridge.settings import DEMO_CRITICAL_CHAT_ID, BridgeSettings, demo_overrides
from tbmon.ports import free_ports, isolated_settings
from tbmon.settings import read_settings
from tbmon.stack.render import bridge_token_file
from tbmon.stack.supervisor import Supervisor, stop
from tbmon.standins.telegram import TestServerClient

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


def delivery(lat: dict[str, float] | None, result: dict[str, float] | None) -> None:
    print("| measure | value | target |")
    print("| --- | --- | --- |")
    if lat is not None:
        print(
            f"| webhook receipt -> Telegram request, p50 / p99 ({LATENCY_ALERTS} alerts) "
            f"| {lat['p50'] * 1000:.1f} / {lat['p99'] * 1000:.1f} ms | p99 <= 250 ms |"
        )
        print(
            f"| webhook answer (durably queued), p50 / p99 | {lat['answer_p50'] * 1000:.1f} / "
            f"{lat['answer_p99'] * 1000:.1f} ms | |"
        )
    if result is not None:
        print(
            f"| burst: {BURST_ALERTS} alerts in {BURST_SECONDS:g} s accepted in "
            f"| {result['accepted_seconds']:.1f} s "
            f"(answer p99 {result['answer_p99'] * 1000:.0f} ms) | <= 5.5 s |"
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


# -- the gate's cost: the bridge before and after it, side by side -------------------------------

PARTS = ("latency", "burst", "gate")
ARMS = ("before", "bare", "gate")
GATE_WORKERS = 8
GATE_SECONDS = 10.0
GATE_WARM_UP_SECONDS = 2.0
GATE_TOKEN = "bench-bridge-token-0123456789"


@dataclass(frozen=True)
class Row:
    """One kind of request: what it is, and how vegeta sends it."""

    name: str
    method: str
    path: str
    token: bool
    body: str = ""  # a file name under the run's folder, or no body


GATE_ROWS = (
    Row(
        "webhook with the token, 1 alert (200, queued: one SQLite commit)",
        "POST",
        "/webhook/alertmanager",
        token=True,
        body="one.json",
    ),
    Row(
        "webhook without the token, 1 alert (401)",
        "POST",
        "/webhook/alertmanager",
        token=False,
        body="one.json",
    ),
    Row(
        "webhook without the token, 1 MiB of alerts (401)",
        "POST",
        "/webhook/alertmanager",
        token=False,
        body="mib.json",
    ),
    Row("GET /health (passes the gate)", "GET", "/health", token=False),
)


@dataclass(frozen=True)
class Measure:
    arm: str
    run: int
    row: Row
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    codes: dict[str, int]


async def _before_the_gate(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """The bridge's body limit before the gate: an http middleware that looked at a declared
    Content-Length only (FastAPI then read any body, and the route checked the token)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return JSONResponse(
            status_code=413,
            content={"detail": f"body over {MAX_BODY_BYTES} bytes; lower max_alerts"},
        )
    return await call_next(request)


def arm_app(arm: str, telegram_url: str) -> FastAPI:
    """The bridge's app as it ships ("gate"), as it was before the gate ("before"), or with no
    layer in front of FastAPI at all ("bare": no body limit, for the layers' own cost)."""
    app = create_app(read_settings(BridgeSettings, **demo_overrides(telegram_url)))
    if arm != "gate":
        (layer,) = [m for m in app.user_middleware if _is_gate(m.cls)]
        app.user_middleware.remove(layer)
    if arm == "before":
        app.middleware("http")(_before_the_gate)
    return app


def _is_gate(factory: object) -> bool:
    return factory is Gate


def serve(arm: str, port: int, telegram_url: str) -> None:
    """Serve one arm on 127.0.0.1:``port`` (this module run with ``--serve ARM``)."""
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(
        arm_app(arm, telegram_url),
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_config=None,
        log_level="warning",
    )


@contextmanager
def _arm(arm: str, folder: Path, telegram_url: str) -> Iterator[tuple[str, psutil.Process]]:
    port = free_ports(1)[0]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ALERT_BRIDGE_", "TELEGRAM"))},
        "ALERT_BRIDGE_TOKEN": GATE_TOKEN,
        "ALERT_BRIDGE_DATABASE": str(folder / f"{arm}-{port}.sqlite3"),
        "ALERT_BRIDGE_UPDATES": "off",
        "ALERT_BRIDGE_ALERTMANAGER_URL": telegram_url,  # answers 404: no dedup-window hint
    }
    argv = [sys.executable, "-m", "bench.alerting", "--serve", arm, "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(
            [*argv, "--telegram", telegram_url], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            until_ready(child, f"{base}/health", f"the bridge ({arm})")
            yield base, psutil.Process(child.pid)
        finally:
            stop(child)


def _hammer(base: str, row: Row, folder: Path, seconds: float) -> dict[str, Any]:
    """vegeta with GATE_WORKERS connections as fast as they go; its JSON report."""
    target = [f"{row.method} {base}{row.path}", "Content-Type: application/json"]
    if row.token:
        target.append(f"Authorization: Bearer {GATE_TOKEN}")
    if row.body:
        target.append(f"@{folder / row.body}")
    flags = ["-rate=0", f"-max-workers={GATE_WORKERS}", f"-workers={GATE_WORKERS}"]
    return vegeta_report("\n".join(target) + "\n", [*flags, f"-duration={seconds:g}s"])


def gate(repeat: int = 2) -> list[Measure]:
    """The arms up at once; each row on one arm right after the other (the order reversed every
    run), ``repeat`` runs, so the figures of a row saw the same moment of a shared machine."""
    vegeta()
    measures = []
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        telegram_url = stack.enter_context(_telegram(folder))
        (folder / "one.json").write_text(json.dumps(_webhook("g0001")))
        many = _webhook("g0002")
        many["alerts"] = [_webhook(f"m{n:05d}")["alerts"][0] for n in range(1200)]
        (folder / "mib.json").write_text(json.dumps(many))
        arms = {arm: stack.enter_context(_arm(arm, folder, telegram_url)) for arm in ARMS}
        for run in range(1, repeat + 1):
            for row in GATE_ROWS:
                for arm in ARMS if run % 2 else ARMS[::-1]:
                    base, bridge = arms[arm]
                    _hammer(base, row, folder, GATE_WARM_UP_SECONDS)
                    cpu = cpu_seconds(bridge)
                    report = _hammer(base, row, folder, GATE_SECONDS)
                    cpu = cpu_seconds(bridge) - cpu
                    latencies = report["latencies"]
                    measures.append(
                        Measure(
                            arm=arm,
                            run=run,
                            row=row,
                            rate=float(report["rate"]),
                            p50_ms=latencies["50th"] / 1e6,
                            p99_ms=latencies["99th"] / 1e6,
                            cpu_us=cpu / max(1, int(report["requests"])) * 1e6,
                            codes={str(k): int(v) for k, v in report["status_codes"].items()},
                        )
                    )
    return measures


@contextmanager
def _telegram(data: Path) -> Iterator[str]:
    """The Telegram test server alone; its URL."""
    saved = os.environ.pop("TELEGRAM_BOT_TOKEN", None)
    supervisor = Supervisor(isolated_settings(data))
    s = supervisor.settings
    try:
        supervisor.up(["telegram-test"])
        yield s.url(s.telegram_test_port)
    finally:
        supervisor.down(["telegram-test"])
        if saved is not None:
            os.environ["TELEGRAM_BOT_TOKEN"] = saved


def print_gate(measures: list[Measure]) -> None:
    print("| request | arm | run | req/s | p50 / p99 ms | bridge CPU per request | answers |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in GATE_ROWS:
        for m in sorted(
            (m for m in measures if m.row == row), key=lambda m: (ARMS.index(m.arm), m.run)
        ):
            codes = ", ".join(
                f"{n} x {code if code != '0' else 'no answer (reset)'}"
                for code, n in sorted(m.codes.items())
            )
            print(
                f"| {row.name} | {m.arm} | {m.run} | {m.rate:.0f} | {m.p50_ms:.1f} / "
                f"{m.p99_ms:.1f} | {m.cpu_us:.0f} us | {codes} |"
            )
    arms = " / ".join(ARMS)
    print(f"\n| request | req/s, {arms} | bridge CPU per request, {arms} |")
    print("| --- | --- | --- |")
    for row in GATE_ROWS:
        of_row = [m for m in measures if m.row == row]
        rates = [statistics.median(m.rate for m in of_row if m.arm == arm) for arm in ARMS]
        cpus = [statistics.median(m.cpu_us for m in of_row if m.arm == arm) for arm in ARMS]
        print(
            f"| {row.name} | {' / '.join(f'{r:.0f}' for r in rates)} | "
            f"{' / '.join(f'{c:.0f}' for c in cpus)} us |"
        )
    print("(medians of the runs)")


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.alerting", description=__doc__.strip().splitlines()[0]
    )
    parser.add_argument(
        "parts", nargs="*", metavar="PART", help="latency, burst, gate (default: all three)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="gate: runs of both arms")
    parser.add_argument("--serve", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--telegram", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.serve:
        serve(options.serve, options.port, options.telegram)
        return
    parts = options.parts or list(PARTS)
    if unknown := sorted(set(parts) - set(PARTS)):
        parser.error(f"unknown part {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    if "latency" in parts or "burst" in parts:
        delivery(latency() if "latency" in parts else None, burst() if "burst" in parts else None)
    if "gate" in parts:
        load = os.getloadavg()
        measures = gate(options.repeat)
        print(
            f"\nthe gate's cost: {len(ARMS)} arms x {options.repeat} runs, {GATE_SECONDS:g} s "
            f"a row after {GATE_WARM_UP_SECONDS:g} s of warm-up, vegeta with {GATE_WORKERS} "
            f"connections, {os.cpu_count()} CPUs, load average {load[0]:.2f} -> "
            f"{os.getloadavg()[0]:.2f}\n"
        )
        print_gate(measures)


if __name__ == "__main__":
    main(sys.argv[1:])
