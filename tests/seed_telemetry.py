"""A stand-in trading bot: every seed metric, order traces and their logs, through the OTel SDK.

The dashboards' queries are executed against what a bot really sends. Until the demo bot
(`tbmon demo`, the instrumentation issue) is on this branch, this module plays it: the seed's
metric names and the contract's labels (strategy, symbol, exchange, side, agent, model, status),
recorded with the OpenTelemetry SDK and exported over OTLP to the real collector. The health
service's metrics are sent the same way, standing in for its `/health/metrics` scrape.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.metrics import Counter, Histogram
from opentelemetry.trace import Tracer
from support import otlp_sdk

STRATEGIES = ("momentum", "mean_reversion")
SYMBOLS = ("BTC/USDT", "ETH/USDT")
AGENTS = ("lstm", "xgboost", "ppo")
COMPONENTS = ("database", "collector", "prometheus", "alertmanager", "exchange")


@dataclass
class Emitted:
    """What the stand-in sent: trace ids of its orders, for the correlation checks."""

    service: str
    trace_ids: list[str] = field(default_factory=list)


def run_bot(endpoint: str, service: str, duration: float) -> Emitted:
    """Trade for ``duration`` seconds: about four order cycles a second, metrics every second."""
    emitted = Emitted(service)
    rng = random.Random(7)
    with otlp_sdk(endpoint, service) as sdk:
        meter = sdk.meter_provider.get_meter("tbmon.standin")
        tracer = sdk.tracer_provider.get_tracer("tbmon.standin")
        logger = logging.getLogger(f"standin.{service}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(LoggingHandler(logger_provider=sdk.logger_provider))

        gauges = {
            name: meter.create_gauge(name)
            for name in (
                "trading_portfolio_value_usd",
                "trading_total_return",
                "trading_sharpe_ratio",
                "trading_max_drawdown",
                "trading_win_rate",
                "trading_open_positions",
                "trading_bot_heartbeat_timestamp_seconds",
                "risk_var_95_percent",
                "risk_var_99_percent",
                "risk_position_concentration",
                "risk_leverage_ratio",
                "risk_correlation_score",
                "system_cpu_usage_percent",
                "system_memory_usage_percent",
                "system_disk_usage_percent",
                "system_network_latency_ms",
                "agent_prediction_accuracy",
                "agent_cumulative_reward",
                "ensemble_consensus_score",
                "health_component_status",
                "health_check_duration_seconds",
                "health_check_timestamp_seconds",
            )
        }
        orders = meter.create_counter("trading_orders")
        api_latency = meter.create_histogram("api_request_duration_seconds", unit="s")
        inference = meter.create_histogram("model_inference_duration_seconds", unit="s")

        deadline = time.monotonic() + duration
        value, reward = 100_000.0, 0.0
        while time.monotonic() < deadline:
            value *= 1 + rng.gauss(0.0002, 0.002)
            reward += rng.gauss(0.5, 1)
            for strategy in STRATEGIES:
                labels = {"strategy": strategy}
                gauges["trading_portfolio_value_usd"].set(value / 2, labels)
                gauges["trading_total_return"].set(value / 100_000 - 1, labels)
                gauges["trading_sharpe_ratio"].set(1.2 + rng.random(), labels)
                gauges["trading_max_drawdown"].set(0.05 + rng.random() / 10, labels)
                gauges["trading_win_rate"].set(0.5 + rng.random() / 5, labels)
                gauges["trading_open_positions"].set(rng.randint(0, 4), labels)
                gauges["risk_var_95_percent"].set(0.02 + rng.random() / 20, labels)
                gauges["risk_var_99_percent"].set(0.04 + rng.random() / 20, labels)
                gauges["risk_position_concentration"].set(0.3 + rng.random() / 5, labels)
                gauges["risk_leverage_ratio"].set(1 + rng.random(), labels)
                gauges["risk_correlation_score"].set(rng.random(), labels)
            gauges["trading_bot_heartbeat_timestamp_seconds"].set(time.time())
            gauges["system_cpu_usage_percent"].set(20 + 10 * rng.random())
            gauges["system_memory_usage_percent"].set(40 + 10 * rng.random())
            gauges["system_disk_usage_percent"].set(55.0)
            gauges["system_network_latency_ms"].set(30 + 20 * rng.random(), {"exchange": "binance"})
            gauges["ensemble_consensus_score"].set(0.6 + rng.random() / 4)
            for agent in AGENTS:
                gauges["agent_prediction_accuracy"].set(0.55 + rng.random() / 4, {"agent": agent})
                gauges["agent_cumulative_reward"].set(reward, {"agent": agent})
                inference.record(0.002 + rng.random() / 100, {"model": agent})
            for component in COMPONENTS:
                gauges["health_component_status"].set(2, {"component": component})
                gauges["health_check_duration_seconds"].set(0.004, {"component": component})
                gauges["health_check_timestamp_seconds"].set(time.time(), {"component": component})
            for _ in range(4):
                emitted.trace_ids.append(_order(tracer, logger, orders, api_latency, rng))
            time.sleep(0.25)
    return emitted


def _order(
    tracer: Tracer,
    logger: logging.Logger,
    orders: Counter,
    api_latency: Histogram,
    rng: random.Random,
) -> str:
    """One order cycle as one trace: signal, risk check, placement (with its API call), fill."""
    strategy, symbol, side = (
        rng.choice(STRATEGIES),
        rng.choice(SYMBOLS),
        rng.choice(("buy", "sell")),
    )
    status = "failed" if rng.random() < 0.1 else "filled"
    with tracer.start_as_current_span(
        "order", attributes={"order.id": rng.getrandbits(32)}
    ) as root:
        with tracer.start_as_current_span("signal"):
            pass
        with tracer.start_as_current_span("risk_check"):
            pass
        with tracer.start_as_current_span("place_order"):
            # Recorded inside the span, so the histogram's exemplar carries this trace id.
            api_latency.record(0.05 + rng.random() / 5, {"exchange": "binance", "status": status})
        with tracer.start_as_current_span("fill"):
            pass
        orders.add(
            1,
            {
                "strategy": strategy,
                "symbol": symbol,
                "side": side,
                "exchange": "binance",
                "status": status,
            },
        )
        if status == "failed":
            logger.error("order rejected by exchange", extra={"symbol": symbol, "side": side})
        else:
            logger.info("order filled", extra={"symbol": symbol, "side": side})
        return format(root.get_span_context().trace_id, "032x")
