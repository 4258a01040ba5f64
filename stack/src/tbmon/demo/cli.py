"""`tbmon demo`: the demo bot under ``opentelemetry-instrument``, on a local exchange.

``make demo`` runs it after ``tbmon stack up``. It starts the exchange test server (Binance's
REST format) in this process, runs the bot as a user would run theirs, prints where to look, and
stops both when the duration is over or on Ctrl-C. Without TELEGRAM_BOT_TOKEN the stack's alerts
go to its Telegram test server; the demo then prints each message that server receives.

A scenario says when each of its alerts' messages should arrive (when its condition starts to
hold, plus the pipeline's delays, the rule's ``for`` and Alertmanager's grouping), notes each
as it reaches Telegram (the test server; with a real bot token, Alertmanager's active alerts),
and at the end names those that did not arrive yet. A bot that crashes on purpose (bot_dies)
leaves the demo waiting for BotStoppedReporting, until it arrives or the duration is over.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer
import yaml
from rich.console import Console

from tbmon.alert_bridge.alertmanager import seconds
from tbmon.alert_bridge.settings import (
    DEMO_CRITICAL_CHAT_ID,
    DEMO_WARNING_CHAT_ID,
    telegram_configured,
)
from tbmon.demo.scenarios import SCENARIOS, Message, Scenario
from tbmon.settings import StackSettings, get_stack_settings
from tbmon.stack.resources import STACK_DATA

console = Console(soft_wrap=True)

#: The demo's settings; any of them set in the environment wins.
DEMO_ENVIRONMENT = {
    "OTEL_SERVICE_NAME": "tbmon-demo",
    "TBMON_STRATEGY": "ensemble-momentum",
    "TBMON_ENVIRONMENT": "demo",
    "TBMON_EXCHANGE": "binance",
    "TBMON_LATENCY_PROBE_INTERVAL": "5",
    # The demo's clock is compressed: a second is a market day, a return period, and the
    # derived metrics look back on a year of them.
    "TBMON_ANALYTICS_PERIOD_SECONDS": "1",
    "TBMON_PERIODS_PER_YEAR": "365",
    "TBMON_ANALYTICS_WINDOW": "365",
}


def instrument_command() -> str:
    """``opentelemetry-instrument`` beside this Python (the virtual environment's), else on PATH."""
    beside = Path(sys.executable).with_name("opentelemetry-instrument")
    if beside.exists():
        return str(beside)
    found = shutil.which("opentelemetry-instrument")
    if found is None:
        raise typer.BadParameter("opentelemetry-instrument is not installed: run `make install`")
    return found


def where_to_look(stack: StackSettings, service: str) -> list[tuple[str, str]]:
    """What to open while the demo runs, on the local stack's ports."""
    return [
        ("trading metrics", stack.url(stack.metrics_port, "/metrics")),
        (
            "Prometheus",
            stack.url(stack.prometheus_port, "/graph?g0.expr=trading_portfolio_value_usd"),
        ),
        ("alerts", stack.url(stack.prometheus_port, "/alerts")),
        ("Alertmanager", stack.url(stack.alertmanager_port)),
        (
            "traces (Jaeger API)",
            stack.url(stack.jaeger_query_port, f"/api/traces?service={service}"),
        ),
        ("logs (VictoriaLogs)", stack.url(stack.victorialogs_port, "/select/vmui/")),
        ("health", stack.url(stack.health_port, "/health/detailed")),
        ("Telegram messages", stack.url(stack.telegram_test_port, "/_control/docs")),
        ("Grafana", "http://localhost:3000 in the Compose stack (docs/compose.md)"),
    ]


#: The test server's alert chats (the bridge's, without TELEGRAM_BOT_TOKEN), as printed.
ECHOED_CHATS = {DEMO_CRITICAL_CHAT_ID: "critical", DEMO_WARNING_CHAT_ID: "warning"}
#: Seconds between two looks at the test server's messages (or Alertmanager's alerts).
ECHO_INTERVAL = 1.0
#: From a rule's condition holding to Prometheus seeing it, at most: the bot's metric export
#: (2 s), Prometheus's scrape (1 s) and rule evaluation (1 s), and the pipeline between.
PIPELINE_DELAY = 5.0
#: Where the rules (and their ``for``) are.
RULES = STACK_DATA / "prometheus/rules"


def arrival_estimate(message: Message, stack: StackSettings) -> float:
    """Seconds into the run at which ``message`` should reach Telegram: its condition, the
    pipeline's delay, then the rule's ``for`` and Alertmanager's group_wait (for a firing alert)
    or its group_interval (the next flush, for a resolved one)."""
    waits = [
        seconds(str(rule.get("for", "0s")))
        for path in sorted(RULES.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if rule.get("alert") == message.alert and rule["labels"]["severity"] == message.severity
    ]
    if not waits:
        raise ValueError(f"no rule {message.alert} ({message.severity}) in {RULES}")
    timing = "group_interval" if message.resolved else "group_wait"
    grouping = seconds(getattr(stack, f"alert_{message.severity}_{timing}"))
    return message.condition_at + PIPELINE_DELAY + (0 if message.resolved else waits[0]) + grouping


def clock(value: float) -> str:
    minutes, secs = divmod(round(value), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _blocks(text: str) -> Iterator[tuple[str, str]]:
    """(alert name, labels line) of each alert in a message's text."""
    for block in text.split("━━━━━━━━━━"):
        name = re.search(r"^Alert: (.+)$", block, re.M)
        labels = re.search(r"^Labels: (.+)$", block, re.M)
        if name:
            yield name.group(1).strip(), labels.group(1) if labels else ""


class Arrivals:
    """Which of a scenario's messages have reached Telegram for this bot, and when."""

    def __init__(self, scenario: Scenario, service: str, stack: StackSettings) -> None:
        self.expected = {m: arrival_estimate(m, stack) for m in scenario.messages}
        self.service = service
        self.started = time.monotonic()
        self.arrived: dict[Message, float] = {}
        self.done = threading.Event()
        if not self.expected:
            self.done.set()

    def _ours(self, labels: str) -> bool:
        return re.search(rf"(^|, )job={re.escape(self.service)}(,|$)", labels) is not None

    def telegram(self, text: str) -> None:
        """A message the test server received."""
        head = text.splitlines()[0] if text else ""
        severity = "critical" if "CRITICAL" in head else "warning" if "WARNING" in head else ""
        resolved = "RESOLVED" in head
        self._seen(
            (name, severity, resolved) for name, labels in _blocks(text) if self._ours(labels)
        )

    def alertmanager(
        self, firing: Iterable[tuple[str, str]], ended: Iterable[tuple[str, str]]
    ) -> None:
        """Alerts of this bot active in Alertmanager, and those no longer active."""
        self._seen(
            [(name, severity, False) for name, severity in firing]
            + [(name, severity, True) for name, severity in ended]
        )

    def _seen(self, events: Iterable[tuple[str, str, bool]]) -> None:
        for name, severity, resolved in events:
            for message in self.expected:
                if message in self.arrived or (message.alert, message.severity) != (name, severity):
                    continue
                if message.resolved == resolved:
                    self.arrived[message] = time.monotonic() - self.started
                    console.print(
                        f"[green]✓[/green] {message} arrived {clock(self.arrived[message])} in "
                        f"(expected about {clock(self.expected[message])})",
                        highlight=False,
                    )
        if len(self.arrived) == len(self.expected) and not self.done.is_set():
            self.done.set()
            console.print("every message of the scenario arrived", highlight=False)

    def missing(self) -> list[Message]:
        return [message for message in self.expected if message not in self.arrived]


@contextmanager
def telegram_echo(stack: StackSettings, arrivals: Arrivals | None = None) -> Iterator[bool]:
    """Print each message the stack's Telegram test server receives, while in the block, and
    note ``arrivals``; yields whether it does (not with a real Telegram bot, nor when the test
    server does not answer). With a real bot, ``arrivals`` follow Alertmanager's alerts."""
    if telegram_configured():
        with _alertmanager_watch(stack, arrivals):
            yield False
        return
    # FastAPI comes with the test server's module: not for every `tbmon` command's sake.
    from tbmon.standins.telegram import TestServerClient  # noqa: PLC0415

    client = TestServerClient(stack.url(stack.telegram_test_port))
    try:
        seen = {chat: {m["message_id"] for m in client.messages(chat)} for chat in ECHOED_CHATS}
    except httpx.HTTPError:
        client.close()
        yield False
        return
    done = threading.Event()
    thread = threading.Thread(target=_echo, args=(client, seen, done, arrivals), daemon=True)
    thread.start()
    try:
        yield True
    finally:
        done.set()
        thread.join(10)
        client.close()


def _echo(
    client: Any, seen: dict[str, set[int]], done: threading.Event, arrivals: Arrivals | None
) -> None:
    from tbmon.standins.telegram import printable  # noqa: PLC0415 (see above)

    while True:
        stopping = done.wait(ECHO_INTERVAL)  # then one last look, for the latest messages
        for chat, known in seen.items():
            try:
                messages = client.messages(chat)
            except httpx.HTTPError:
                continue  # the stack is restarting, say: look again next time
            for message in messages:
                if message["message_id"] not in known:
                    known.add(message["message_id"])
                    label = f"{chat} ({ECHOED_CHATS[chat]})"
                    console.print(printable(label, message), markup=False, highlight=False)
                    if arrivals is not None:
                        arrivals.telegram(message["text"])
        if stopping:
            return


@contextmanager
def _alertmanager_watch(stack: StackSettings, arrivals: Arrivals | None) -> Iterator[None]:
    """With a real Telegram bot: note ``arrivals`` from this bot's alerts in Alertmanager (a
    firing alert there is on its way to the chat; one that left it, resolved)."""
    if arrivals is None or arrivals.done.is_set():
        yield
        return
    done = threading.Event()

    def watch() -> None:
        active: set[tuple[str, str]] = set()
        url = stack.url(stack.alertmanager_port, "/api/v2/alerts")
        query = {"filter": f'job="{arrivals.service}"', "silenced": "false"}
        while not done.wait(ECHO_INTERVAL * 2):
            try:
                alerts = httpx.get(url, params=query, timeout=5).json()
            except (httpx.HTTPError, ValueError):
                continue
            now = {
                (a["labels"].get("alertname", ""), a["labels"].get("severity", ""))
                for a in alerts
                if a.get("status", {}).get("state") == "active"
            }
            arrivals.alertmanager(now, active - now)
            active = now

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(10)


def _announce(arrivals: Arrivals, duration: float, watching: bool) -> None:
    for message, eta in arrivals.expected.items():
        console.print(f"  {message} should reach Telegram about {clock(eta)} in", highlight=False)
    late = [m for m, eta in arrivals.expected.items() if duration and eta > duration]
    if late:
        longest = max(arrivals.expected[m] for m in late)
        console.print(
            f"  [yellow]the {clock(duration)} asked for end before "
            f"{', '.join(map(str, late))} can arrive: DURATION={round(longest) + 30} or more "
            f"shows {'them' if len(late) > 1 else 'it'}[/yellow]",
            highlight=False,
        )
    if not watching:
        console.print("  (the demo cannot see Telegram here: look in your chat)")


def _report(arrivals: Arrivals) -> None:
    for message in arrivals.missing():
        console.print(
            f"[yellow]not arrived yet:[/yellow] {message}, expected about "
            f"{clock(arrivals.expected[message])} in",
            highlight=False,
        )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM (docker stop, a supervisor) stops the bot as Ctrl-C does


def demo(
    duration: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds the demo runs (what has not reached Telegram by then is named); 0: "
            "until Ctrl-C, or for bot_dies until its alert arrived.",
        ),
    ] = 0,
    scenario: Annotated[str, typer.Option(help=f"One of: {', '.join(SCENARIOS)}.")] = "normal",
    seed: Annotated[int, typer.Option(help="Seed of the agents' randomness.")] = 7,
    exchange_port: Annotated[
        int, typer.Option(help="Port of the local exchange (0: a free one).")
    ] = 0,
) -> None:
    """Run the demo trading bot under opentelemetry-instrument and say where to look."""
    if scenario not in SCENARIOS:
        raise typer.BadParameter(
            f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}",
            param_hint="--scenario",
        )
    # ccxt takes half a second and 50 MiB to import: not for every `tbmon` command's sake.
    from tbmon.standins.exchange import running  # noqa: PLC0415

    chosen = SCENARIOS[scenario]
    crashes = any(step.die for step in chosen.steps)
    command = instrument_command()
    with ExitStack() as scope:
        exchange_url = scope.enter_context(running(port=exchange_port))
        env = {**DEMO_ENVIRONMENT, "EXCHANGE_API_URL": exchange_url, **os.environ}
        console.print(
            f"[bold]tbmon demo[/bold]: scenario [cyan]{chosen.name}[/cyan]: {chosen.summary}"
        )
        if chosen.alerts:
            console.print(f"  it should raise: {', '.join(chosen.alerts)}")
        console.print(f"  exchange test server: {exchange_url}/_control/docs")
        stack = get_stack_settings()
        for label, url in where_to_look(stack, env["OTEL_SERVICE_NAME"]):
            console.print(f"  {label:<22} {url}")
        arrivals = Arrivals(chosen, env["OTEL_SERVICE_NAME"], stack)
        echo = scope.enter_context(telegram_echo(stack, arrivals))
        if echo:
            console.print("  the Telegram test server's messages are printed as they arrive")
        _announce(arrivals, duration, watching=echo or telegram_configured())
        bot = subprocess.Popen(
            [
                command,
                sys.executable,
                "-m",
                "tbmon.demo",
                "--exchange-url",
                exchange_url,
                "--scenario",
                scenario,
                "--duration",
                str(duration),
                "--seed",
                str(seed),
            ],
            env=env,
        )
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            code = bot.wait()
            if crashes and code != 0 and not arrivals.done.is_set():
                # Its alert comes from outside the bot: wait for it while the duration lasts.
                console.print("the bot crashed, as the scenario says: waiting for its alert")
                left = duration - (time.monotonic() - arrivals.started) if duration else None
                arrivals.done.wait(None if left is None else max(0.0, left))
        except KeyboardInterrupt:
            if bot.poll() is None:
                bot.terminate()
            code = bot.wait(30)
        finally:
            signal.signal(signal.SIGTERM, previous)
    _report(arrivals)
    if code != 0 and not (crashes and code == 1):
        raise typer.Exit(code)
