"""`tbmon demo`: the demo bot under ``opentelemetry-instrument``, on a local exchange.

``make demo`` runs it after ``tbmon stack up``. It starts the exchange test server (Binance's
REST format) in this process, runs the bot as a user would run theirs, prints where to look, and
stops both when the duration is over or on Ctrl-C. Without TELEGRAM_BOT_TOKEN the stack's alerts
go to its Telegram test server; the demo then prints each message that server receives.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.console import Console

from tbmon.alert_bridge.settings import (
    DEMO_CRITICAL_CHAT_ID,
    DEMO_WARNING_CHAT_ID,
    telegram_configured,
)
from tbmon.instrumentation.demo.scenarios import SCENARIOS
from tbmon.settings import StackSettings, get_stack_settings

if TYPE_CHECKING:
    from tbmon.alert_bridge.telegram_test_server import TestServerClient

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
#: Seconds between two looks at the test server's messages.
ECHO_INTERVAL = 1.0


@contextmanager
def telegram_echo(stack: StackSettings) -> Iterator[bool]:
    """Print each message the stack's Telegram test server receives, while in the block; yields
    whether it does (not with a real Telegram bot, nor when the test server does not answer)."""
    if telegram_configured():
        yield False
        return
    # FastAPI comes with the test server's module: not for every `tbmon` command's sake.
    from tbmon.alert_bridge.telegram_test_server import TestServerClient  # noqa: PLC0415

    client = TestServerClient(stack.url(stack.telegram_test_port))
    try:
        seen = {chat: {m["message_id"] for m in client.messages(chat)} for chat in ECHOED_CHATS}
    except httpx.HTTPError:
        client.close()
        yield False
        return
    done = threading.Event()
    thread = threading.Thread(target=_echo, args=(client, seen, done), daemon=True)
    thread.start()
    try:
        yield True
    finally:
        done.set()
        thread.join(10)
        client.close()


def _echo(client: TestServerClient, seen: dict[str, set[int]], done: threading.Event) -> None:
    from tbmon.alert_bridge.telegram_test_server import printable  # noqa: PLC0415 (see above)

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
        if stopping:
            return


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM (docker stop, a supervisor) stops the bot as Ctrl-C does


def demo(
    duration: Annotated[float, typer.Option(min=0, help="Seconds to trade; 0: until Ctrl-C.")] = 0,
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
    from tbmon.instrumentation.exchange_test_server import running  # noqa: PLC0415

    chosen = SCENARIOS[scenario]
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
        echo = scope.enter_context(telegram_echo(stack))
        if echo:
            console.print("  the Telegram test server's messages are printed as they arrive")
        bot = subprocess.Popen(
            [
                command,
                sys.executable,
                "-m",
                "tbmon.instrumentation.demo",
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
        except KeyboardInterrupt:
            bot.terminate()
            code = bot.wait(30)
        finally:
            signal.signal(signal.SIGTERM, previous)
    if any(step.die for step in chosen.steps) and code != 0:
        console.print("the bot crashed, as the scenario says: watch BotStoppedReporting fire")
        return
    if code != 0:
        raise typer.Exit(code)
