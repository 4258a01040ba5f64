"""The instrumentation end to end on the real stack: `opentelemetry-instrument python bot.py`.

The demo bot (``tbmon demo``) runs as users run theirs; every seed metric reaches Prometheus
under the seed's name, an order is one trace in Jaeger, its log lines carry its trace id in the
log store, each scenario brings about its alert's condition, a custom metric takes the seed's
Integration Guide path, and a bot whose collector is away keeps trading and accounts for every
span it could not deliver.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import uuid
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support import CHECKOUT, INSTRUMENT, SEED_METRICS, Backends, demo_bot, wait_until

from tbmon.demo.scenarios import SCENARIOS
from tbmon.stack.resources import STACK_DATA
from tbmon.stack.supervisor import Supervisor
from tbmon.standins.exchange import (
    TEST_API_KEY,
    TEST_API_SECRET,
    ExchangeServerClient,
    running,
)

pytestmark = pytest.mark.stack


RULES = [
    rule
    for path in sorted((STACK_DATA / "prometheus/rules").glob("*.yml"))
    for group in yaml.safe_load(path.read_text())["groups"]
    for rule in group["rules"]
    if "alert" in rule
]


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def firing_for(backends: Backends, alert: str, job: str) -> bool:
    """Whether the condition of some rule named ``alert`` holds for ``job`` right now."""
    return any(
        series["metric"].get("job") == job
        for rule in RULES
        if rule["alert"] == alert
        for series in backends.prometheus(rule["expr"])
    )


def instrumented(
    program: list[str], service: str, backends: Backends, **env: str
) -> subprocess.Popen[str]:
    """``opentelemetry-instrument python PROGRAM`` as ``service``, sending to the stack."""
    return subprocess.Popen(
        [INSTRUMENT, sys.executable, *program],
        env={
            **os.environ,
            "OTEL_SERVICE_NAME": service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": backends.settings.url(backends.settings.otlp_grpc_port),
            **env,
        },
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_demo_bot_reaches_every_backend(backends: Backends, tmp_path: Path) -> None:
    service = unique("demo")
    log = tmp_path / "demo.log"
    with demo_bot(backends.settings, service, log):
        for name in sorted(SEED_METRICS):  # a histogram by its _count series
            query = f'{{__name__=~"{name}|{name}_count", job="{service}"}}'
            wait_until(
                partial(backends.prometheus, query),
                f"{name} of {service} in Prometheus (the bot's output: {log})",
                # A 99 % VaR waits for 250 returns: 250 s of the demo's one-second days.
                timeout=330 if name == "risk_var_99_percent" else 90,
            )
        labels = {
            key
            for series in backends.prometheus(f'trading_orders_total{{job="{service}"}}')
            for key in series["metric"]
        }
        assert labels - {
            "__name__",
            "job",
            "instance",
            "otel_scope_name",
            "otel_scope_version",
        } == {
            "strategy",
            "symbol",
            "side",
            "exchange",
            "status",
        }
        # A log line of an order leads to its trace, and the trace is the order's.
        records = wait_until(
            lambda: [
                r
                for r in backends.logs(f'service.name:="{service}" "order filled"')
                if r.get("trace_id")
            ],
            "an order's log line in the log store",
        )
        trace_id = records[0]["trace_id"]
        assert records[0]["span_id"]
        assert records[0]["symbol"]

        def whole_trace() -> list[dict[str, Any]] | None:
            found = backends.jaeger_trace(trace_id)
            return found if len(found) >= 5 else None

        spans = wait_until(whole_trace, f"the order trace {trace_id} in Jaeger")
        names = {span["operationName"] for span in spans}
        assert {"signal", "risk_check", "create_order", "fill"} <= names
        assert any(name.startswith("trade ") for name in names)
        order = next(span for span in spans if span["operationName"] == "create_order")
        tags = {tag["key"]: tag["value"] for tag in order["tags"]}
        assert tags["exchange"] == "binance"
        assert tags["span.kind"] == "client"
        assert {"symbol", "side", "order.amount", "order.status", "order.expected_price"} <= set(
            tags
        )
    assert f"[trace_id={trace_id} " in log.read_text()  # the console format carries it too


def test_every_scenario_brings_about_its_alert_condition(
    backends: Backends, tmp_path: Path
) -> None:
    jobs = {name: unique(f"scenario-{name}") for name in SCENARIOS}
    with ExitStack() as running:
        for name, job in jobs.items():
            running.enter_context(
                demo_bot(backends.settings, job, tmp_path / f"{name}.log", scenario=name)
            )
        for name, scenario in SCENARIOS.items():
            for alert in scenario.alerts:
                wait_until(
                    partial(firing_for, backends, alert, jobs[name]),
                    f"{alert}'s condition in the {name} scenario ({tmp_path / name}.log)",
                    timeout=240,
                    interval=2,
                )
        # Meanwhile, the normal bot raised none of the trading, risk or agent alerts.
        watched = {"trading", "risk", "agent"}
        quiet = sorted({r["alert"] for r in RULES if r["labels"]["component"] in watched})
        assert [a for a in quiet if firing_for(backends, a, jobs["normal"])] == []


def test_a_custom_metric_follows_the_integration_guide(backends: Backends) -> None:
    example = CHECKOUT / "examples/custom-metric"
    service = unique("custom-metric")
    bot = instrumented([str(example / "bot.py"), "--seconds", "120"], service, backends)
    try:
        wait_until(
            lambda: [
                s
                for s in backends.prometheus(f'my_custom_metric{{job="{service}"}}')
                if s["value"][1] == "42"
            ],
            "my_custom_metric = 42 in Prometheus",
        )
        panel = subprocess.run(
            [sys.executable, str(example / "panel.py")], capture_output=True, text=True, check=True
        )
        (expr,) = re.findall(r'"expr": "(.+)"', panel.stdout)
        expr = expr.replace('\\"', '"').replace("$job", service)
        assert backends.prometheus(expr)
    finally:
        bot.kill()
        bot.wait(10)
    tested = subprocess.run(
        ["promtool", "test", "rules", "rules_test.yml"],
        check=False,
        cwd=example,
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


#: A bot that sends SPANS spans (one trace each) as fast as it can, says so, then waits to be
#: told to stop; its queue holds QUEUE of them.
FLOOD = """
import sys, time
from opentelemetry import trace
tracer = trace.get_tracer("flood")
started = time.monotonic()
for i in range({spans}):
    with tracer.start_as_current_span("tick", attributes={{"i": i}}):
        pass
print(f"traded {spans} ticks in {{time.monotonic() - started:.2f}} s", flush=True)
sys.stdin.readline()
"""


def dropped(backends: Backends, job: str) -> dict[str, float]:
    query = f'sum by (reason) (tbmon_telemetry_dropped_total{{job="{job}", signal="spans"}})'
    return {s["metric"]["reason"]: float(s["value"][1]) for s in backends.prometheus(query)}


def unconfirmed(backends: Backends, job: str) -> float:
    query = f'sum(tbmon_telemetry_unconfirmed_total{{job="{job}", signal="spans"}})'
    return sum(float(s["value"][1]) for s in backends.prometheus(query))


def ticks(backends: Backends, service: str) -> list[int]:
    """The ``i`` of every flood span (operation ``tick``) of ``service`` that Jaeger has."""
    response = httpx.get(
        backends.settings.url(backends.settings.jaeger_query_port, "/api/traces"),
        params={"service": service, "operation": "tick", "limit": 100_000, "lookback": "1h"},
        timeout=30,
    )
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return [
        tag["value"]
        for trace in response.json()["data"] or []
        for span in trace["spans"]
        if span["operationName"] == "tick"
        for tag in span["tags"]
        if tag["key"] == "i"
    ]


def test_with_the_collector_away_the_bot_trades_on_and_counts_every_lost_span(
    stack: Supervisor, backends: Backends
) -> None:
    service, spans, queue = unique("flood"), 5000, 1000
    stack.down(["collector"])
    try:
        bot = instrumented(
            ["-c", FLOOD.format(spans=spans)],
            service,
            backends,
            OTEL_BSP_MAX_QUEUE_SIZE=str(queue),
            OTEL_EXPORTER_OTLP_TIMEOUT="2",
        )
        assert bot.stdout is not None
        line = bot.stdout.readline()
        while line and not line.startswith("traded"):  # log lines of the failing exports
            line = bot.stdout.readline()
        assert line.startswith(f"traded {spans} ticks"), line
    finally:
        stack.up(["collector"])
    seen: dict[str, Any] = {"delivered": [], "dropped": {}, "unconfirmed": 0.0}

    def accounted() -> bool:
        """Whether every flood span is in Jaeger, counted as dropped or in an unconfirmed
        export; a span both delivered and counted as dropped fails at once."""
        seen["delivered"] = ticks(backends, service)
        seen["dropped"] = dropped(backends, service)
        seen["unconfirmed"] = unconfirmed(backends, service)
        certain = len(set(seen["delivered"])) + sum(seen["dropped"].values())
        assert certain <= spans, describe()
        return bool(certain + seen["unconfirmed"] >= spans)

    def describe() -> str:
        delivered, counts = seen["delivered"], seen["dropped"]
        return (
            f"{spans} flood spans delivered or counted as dropped: {len(delivered)} in Jaeger "
            f"({len(set(delivered))} distinct) + {sum(counts.values()):g} counted as dropped "
            f"{counts} = {len(set(delivered)) + sum(counts.values()):g}, and "
            f"{seen['unconfirmed']:g} in exports that timed out unanswered"
        )

    try:
        # The collector is back: the bot's queue drains into it, and its drop counter (sent
        # with its metrics every 2 s) reaches Prometheus.
        wait_until(accounted, describe, timeout=120)
        assert seen["dropped"].get("queue_full", 0) > 0, describe()  # the queue did overflow
        assert len(set(seen["delivered"])) == len(seen["delivered"]), describe()  # no duplicate
    finally:
        bot.communicate("stop\n", timeout=30)


def test_a_plain_ccxt_bot_gets_its_orders_portfolio_and_positions_with_zero_code(
    backends: Backends,
) -> None:
    # examples/ccxt-bot imports neither tbmon nor OpenTelemetry. Half of its orders are refused
    # by the exchange (Binance's -2010, ccxt's InsufficientFunds); prices hold still, so the
    # figures it prints from its own answers are the ones Prometheus must show.
    service = unique("plain-ccxt")
    with running() as url:
        control = ExchangeServerClient(url)
        control.set_market(volatility=0.0)
        control.fault(endpoints=["order"], methods=["POST"], error="insufficient_funds",
                      error_rate=0.5)  # fmt: skip
        bot = instrumented(
            [str(CHECKOUT / "examples/ccxt-bot/bot.py"), "--url", url, "--iterations", "24",
             "--interval", "0.5", "--linger"],
            service,
            backends,
            TBMON_STRATEGY="plain",
            EXCHANGE_API_KEY=TEST_API_KEY,
            EXCHANGE_API_SECRET=TEST_API_SECRET,
        )  # fmt: skip
        try:
            assert bot.stdout is not None
            lines = []
            for line in bot.stdout:
                if line.startswith("{"):
                    lines.append(json.loads(line))
                    if lines[-1].get("done"):
                        break
            final = lines[-1]
            assert final.get("done"), lines
            # Not one extra request: the exchange saw the bot's calls and no others.
            assert len(control.requests()) == final["calls"]
            placed = control.orders()

            def series(name: str) -> dict[str, float]:
                found = backends.prometheus(f'{name}{{job="{service}", strategy="plain"}}')
                return {s["metric"].get("status", ""): float(s["value"][1]) for s in found}

            def value_is(expected: float) -> bool:
                seen = series("trading_portfolio_value_usd").get("")
                return seen is not None and math.isclose(seen, expected, rel_tol=1e-9)

            wait_until(
                lambda: value_is(final["value"]),
                f"the bot's final portfolio value {final['value']} in Prometheus",
                timeout=90,
            )
            assert series("trading_open_positions")[""] == len(final["positions"])
            gross = sum(final["positions"].values())
            assert series("risk_leverage_ratio")[""] == pytest.approx(gross / final["value"])
            assert "" in series("risk_position_concentration")

            def outcomes() -> dict[str, float]:
                found = backends.prometheus(
                    f'sum by (status) (trading_orders_total{{job="{service}"}})'
                )
                return {s["metric"]["status"]: float(s["value"][1]) for s in found}

            expected = {
                "filled": sum(o["status"] == "FILLED" for o in placed),
                "canceled": sum(o["status"] == "CANCELED" for o in placed),
                "failed": final["failed"],
            }
            wait_until(lambda: outcomes() == expected or None, f"order outcomes {expected}")
            labels = {
                key
                for s in backends.prometheus(f'trading_orders_total{{job="{service}"}}')
                for key in s["metric"]
            }
            assert labels >= {"strategy", "symbol", "side", "exchange", "status"}
            wait_until(
                partial(firing_for, backends, "TradingExecutionFailures", service),
                "TradingExecutionFailures' condition for the refused orders",
                timeout=120,
            )
        finally:
            bot.communicate("", timeout=30)
            control.close()
