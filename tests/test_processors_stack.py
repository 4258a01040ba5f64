"""The processors host in the real pipeline: SDK -> collector -> host -> collector -> backends."""

from __future__ import annotations

import json
import logging
import time
import uuid
from functools import partial
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from processors_support import HostClient, raw_request
from support import Backends, otlp_sdk, wait_until

from tbmon import analytics
from tbmon.processors import Signal, otlp
from tbmon.processors.testing import log_record, logs_batch, metrics_batch
from tbmon.processors.trading_analytics import PORTFOLIO_METRIC
from tbmon.stack.supervisor import Supervisor

pytestmark = pytest.mark.stack

MASK = "[REDACTED]"
TELEGRAM = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq"
SECRETS = ("hunter2", "ak-live-9f8e7d", "s3cr3t-resource", "abcdef1234567890", TELEGRAM, "pw0rd")
DAY = 86_400 * 10**9


def _logger(service: str, provider: Any) -> logging.Logger:
    logger = logging.getLogger(service)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(LoggingHandler(logger_provider=provider))
    return logger


def test_planted_secrets_reach_jaeger_and_the_log_store_masked(
    backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = f"secrets-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.secret=s3cr3t-resource")
    with otlp_sdk(backends.otlp_grpc, service) as sdk:
        tracer = sdk.tracer_provider.get_tracer("probe")
        logger = _logger(service, sdk.logger_provider)
        with tracer.start_as_current_span(
            "connect",
            attributes={
                "exchange.api_key": "ak-live-9f8e7d",
                "db.url": "postgresql://trader:hunter2@db:5432/bots",
            },
        ) as root:
            root.add_event(
                "login", {"header": "Authorization: Bearer abcdef1234567890", "ok": True}
            )
            logger.warning(
                "connecting to postgresql://trader:hunter2@db:5432/bots",
                extra={"telegram.bot_token": TELEGRAM, "note": "passphrase=pw0rd"},
            )
            trace_id = format(root.get_span_context().trace_id, "032x")

    spans = wait_until(partial(backends.jaeger_trace, trace_id), "the trace in Jaeger")
    trace = json.dumps(httpx.get(_jaeger_url(backends, trace_id), timeout=10).json())
    for secret in SECRETS[:5]:
        assert secret not in trace, secret
    tags = {tag["key"]: tag["value"] for tag in spans[0]["tags"]}
    assert tags["exchange.api_key"] == MASK
    assert tags["db.url"] == f"postgresql://trader:{MASK}@db:5432/bots"
    event = {f["key"]: f["value"] for f in spans[0]["logs"][0]["fields"]}
    assert event["header"] == f"Authorization: Bearer {MASK}"

    records = wait_until(
        lambda: backends.logs(f'service.name:="{service}"'), "the log record in the log store"
    )
    text = json.dumps(records)
    for secret in SECRETS:
        assert secret not in text, secret
    (record,) = records
    assert record["_msg"] == f"connecting to postgresql://trader:{MASK}@db:5432/bots"
    assert record["telegram.bot_token"] == MASK
    assert record["note"] == f"passphrase={MASK}"
    assert record["deployment.secret"] == MASK


def _jaeger_url(backends: Backends, trace_id: str) -> str:
    return backends.settings.url(backends.settings.jaeger_query_port, f"/api/traces/{trace_id}")


def test_derived_trading_metrics_appear_in_prometheus_with_correct_values(
    backends: Backends,
) -> None:
    raw_only, self_reporting = (f"analytics-{uuid.uuid4().hex[:8]}" for _ in range(2))
    # 260 days: enough returns for every gauge, the 99 % VaR's 250 included.
    rng = np.random.default_rng(14)
    values = [float(v) for v in 50_000.0 * np.cumprod(1 + rng.normal(0.001, 0.02, 260))]
    pnls = [250.0, -120.0, 80.0, -40.0, 410.0, 15.5]
    today = time.time_ns() // DAY * DAY
    portfolio = otlp.Metric(name=PORTFOLIO_METRIC)
    for index, value in enumerate(values):
        portfolio.gauge.data_points.add(
            time_unix_nano=today - (len(values) - 1 - index) * DAY + 3600 * 10**9,
            as_double=value,
        )
    own_sharpe = otlp.gauge("trading_sharpe_ratio", [({}, 1.75)], time.time_ns())
    trades = [
        log_record("trade closed", {"trade.pnl_usd": pnl, "trade.id": f"t{index}"})
        for index, pnl in enumerate(pnls)
    ]
    with grpc.insecure_channel(backends.otlp_grpc) as channel:
        for service, extra in ((raw_only, []), (self_reporting, [own_sharpe])):
            resource = {"service.name": service, "service.instance.id": "bot-1"}
            metrics = metrics_batch(portfolio, *extra, resource=resource)
            channel.unary_unary(Signal.METRICS.method)(metrics.raw, timeout=10)
            logs = logs_batch(*trades, resource=resource)
            channel.unary_unary(Signal.LOGS.method)(logs.raw, timeout=10)

    returns = analytics.simple_returns(values)
    r = np.array(returns)
    expected = {
        "trading_total_return": analytics.total_return(values),
        "trading_sharpe_ratio": r.mean() / r.std(ddof=1) * np.sqrt(365),  # daily samples: days
        "trading_sortino_ratio": analytics.sortino_ratio(returns, 365),
        "trading_calmar_ratio": analytics.calmar_ratio(returns, 365),
        "trading_max_drawdown": analytics.max_drawdown_of_values(values),
        "trading_current_drawdown": analytics.current_drawdown(values),
        "risk_var_95_percent": -np.percentile(r, 5),
        "risk_var_99_percent": -np.percentile(r, 1),
        "trading_win_rate": analytics.win_rate(pnls),
        "trading_profit_factor": analytics.profit_factor(pnls),
    }
    for name, wanted in expected.items():
        samples = wait_until(
            partial(backends.prometheus, f'{name}{{job="{raw_only}"}}'), f"{name} in Prometheus"
        )
        assert len(samples) == 1, samples
        assert samples[0]["metric"]["instance"] == "bot-1"
        assert float(samples[0]["value"][1]) == pytest.approx(wanted, rel=1e-9), name

    # The bot that reports its own Sharpe ratio keeps its one series; the rest is derived.
    wait_until(
        partial(backends.prometheus, f'trading_max_drawdown{{job="{self_reporting}"}}'),
        "derived drawdown of the self-reporting bot",
    )
    sharpe = backends.prometheus(f'trading_sharpe_ratio{{job="{self_reporting}"}}')
    assert [float(s["value"][1]) for s in sharpe] == [1.75]


def test_slow_and_slipped_orders_are_marked_in_jaeger_and_counted(backends: Backends) -> None:
    service = f"orders-{uuid.uuid4().hex[:8]}"
    with otlp_sdk(backends.otlp_grpc, service) as sdk:
        tracer = sdk.tracer_provider.get_tracer("ccxt")
        started = time.time_ns() - 3 * 10**9
        order = tracer.start_span(
            "create_order",
            start_time=started,
            attributes={
                "exchange": "binance",
                "symbol": "BTC/USDT",
                "side": "buy",
                "order.type": "limit",
                "order.price": 100.0,
                "order.average_price": 101.0,
            },
        )
        order.end(end_time=started + 2_500_000_000)
        trace_id = format(order.get_span_context().trace_id, "032x")

    spans = wait_until(partial(backends.jaeger_trace, trace_id), "the order span in Jaeger")
    tags = {tag["key"]: tag["value"] for tag in spans[0]["tags"]}
    assert tags["execution.slow"] is True
    assert tags["execution.latency_ms"] == pytest.approx(2500)
    assert tags["execution.slippage_bps"] == pytest.approx(100)
    assert tags["execution.slippage_breach"] is True
    labels = f'job="{service}",exchange="binance",symbol="BTC/USDT",side="buy"'
    for name in (
        "trading_execution_slow_orders_total",
        "trading_execution_slippage_breaches_total",
    ):
        samples = wait_until(partial(backends.prometheus, f"{name}{{{labels}}}"), name)
        assert float(samples[0]["value"][1]) == 1


def test_with_the_host_stopped_nothing_is_lost_and_the_collector_keeps_working(
    stack: Supervisor, backends: Backends
) -> None:
    service = f"outage-{uuid.uuid4().hex[:8]}"
    settings = stack.settings
    stack.down(["processors"])
    try:
        with otlp_sdk(backends.otlp_grpc, service) as sdk:
            tracer = sdk.tracer_provider.get_tracer("probe")
            logger = _logger(service, sdk.logger_provider)
            sdk.meter_provider.get_meter("probe").create_gauge(PORTFOLIO_METRIC).set(777.5)
            trace_ids = []
            for index in range(25):
                with tracer.start_as_current_span(f"order-{index}") as current:
                    logger.info("placed order %d", index)
                    trace_ids.append(format(current.get_span_context().trace_id, "032x"))
        # The SDK's exports were accepted; the batches wait in the collector's queues.
        for data_type in ("traces", "logs", "metrics"):
            wait_until(
                partial(
                    _queued, settings.url(settings.collector_telemetry_port, "/metrics"), data_type
                ),
                f"{data_type} waiting in the otlp_grpc/processors queue",
            )
        assert backends.jaeger_trace(trace_ids[0]) == []
        # The collector itself still works: its own host metrics keep reaching Prometheus.
        stopped_at = time.time()
        wait_until(
            lambda: _newest_sample(backends, "system_memory_usage_bytes") > stopped_at,
            "host metrics scraped while the processors host is down",
        )
    finally:
        stack.up(["processors"])
    for trace_id in trace_ids:
        wait_until(partial(backends.jaeger_trace, trace_id), f"trace {trace_id} after the outage")
    records = wait_until(
        partial(_all_logs, backends, service, 25), "all 25 log records after the outage"
    )
    assert sorted(r["_msg"] for r in records) == sorted(f"placed order {i}" for i in range(25))
    samples = wait_until(
        partial(backends.prometheus, f'{PORTFOLIO_METRIC}{{job="{service}"}}'), "the gauge"
    )
    assert float(samples[0]["value"][1]) == 777.5


def test_one_signals_backlog_does_not_hold_up_the_others(
    stack: Supervisor, backends: Backends
) -> None:
    """Jaeger down: spans wait in their own queue while logs and metrics keep arriving."""
    service = f"backlog-{uuid.uuid4().hex[:8]}"
    settings = stack.settings
    stack.down(["jaeger"])
    try:
        with otlp_sdk(backends.otlp_grpc, service) as sdk:
            tracer = sdk.tracer_provider.get_tracer("probe")
            logger = _logger(service, sdk.logger_provider)
            sdk.meter_provider.get_meter("probe").create_gauge(PORTFOLIO_METRIC).set(555.5)
            trace_ids = []
            for index in range(5):
                with tracer.start_as_current_span(f"order-{index}") as current:
                    logger.info("placed order %d", index)
                    trace_ids.append(format(current.get_span_context().trace_id, "032x"))
        wait_until(
            partial(
                _queued,
                settings.url(settings.collector_telemetry_port, "/metrics"),
                "traces",
                "otlp_grpc/jaeger",
            ),
            "spans waiting in the otlp_grpc/jaeger queue",
        )
        records = wait_until(
            partial(_all_logs, backends, service, 5), "the log records while Jaeger is down"
        )
        assert sorted(r["_msg"] for r in records) == [f"placed order {i}" for i in range(5)]
        wait_until(
            partial(backends.prometheus, f'{PORTFOLIO_METRIC}{{job="{service}"}}'),
            "the gauge while Jaeger is down",
        )
    finally:
        stack.up(["jaeger"])
    for trace_id in trace_ids:
        wait_until(partial(backends.jaeger_trace, trace_id), f"trace {trace_id} after the outage")


def _all_logs(backends: Backends, service: str, count: int) -> list[dict[str, Any]] | None:
    records = backends.logs(f'service.name:="{service}"')
    return records if len(records) == count else None


def _queued(telemetry_url: str, data_type: str, exporter: str = "otlp_grpc/processors") -> bool:
    for line in httpx.get(telemetry_url, timeout=5).text.splitlines():
        if (
            line.startswith("otelcol_exporter_queue_size{")
            and f'exporter="{exporter}"' in line
            and f'data_type="{data_type}"' in line
        ):
            return float(line.rsplit(" ", 1)[1]) > 0
    return False


def _newest_sample(backends: Backends, name: str) -> float:
    samples = backends.prometheus(f"max(timestamp({name}))")
    return float(samples[0]["value"][1]) if samples else 0.0


def test_bad_input_is_refused_and_prometheus_scrapes_the_host(
    stack: Supervisor, backends: Backends
) -> None:
    host = HostClient(stack.settings.processors_port, stack.settings.processors_http_port)
    # Garbage inside a valid envelope: no plugin decodes it, the collector refuses it, and the
    # host then drops that item alone (counted) rather than refuse the request.
    host.export(Signal.SPANS, raw_request(b"\xff\xff\xff"))
    assert host.metric("tbmon_processors_dropped_items_total", signal="spans") >= 1
    with pytest.raises(grpc.RpcError) as truncated:
        host.export(Signal.LOGS, logs_batch(log_record("x")).raw[:-3])
    assert truncated.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    assert host.health()["status"] == "healthy"
    wait_until(
        lambda: backends.prometheus(
            'sum(tbmon_processors_requests_total{job="processors",code="INVALID_ARGUMENT"}) >= 1'
            ' and on () sum(tbmon_processors_dropped_items_total{job="processors"}) >= 1'
        ),
        "the host's own metrics in Prometheus",
    )
    assert backends.prometheus('up{job="processors"} == 1')
