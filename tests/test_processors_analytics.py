"""Trading analytics and execution quality, checked against tbmon.analytics through the test kit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import ResourceMetrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from processors_support import HostProcess, OtlpSink, otlp_sink, start_host, stop_host
from support import wait_until

from tbmon import analytics
from tbmon.instrumentation.settings import InstrumentationSettings
from tbmon.instrumentation.trading import TradingMetrics
from tbmon.processors import Signal, otlp
from tbmon.processors.execution import ExecutionQualityProcessor, ExecutionSettings
from tbmon.processors.testing import (
    collect,
    log_record,
    logs_batch,
    metrics_batch,
    record,
    run,
    span,
    spans_batch,
)
from tbmon.processors.trading_analytics import (
    MARKS_FILE,
    PORTFOLIO_METRIC,
    POSITIONS_METRIC,
    AnalyticsSettings,
    TradingAnalyticsProcessor,
)

DAY = 86_400 * 10**9
START = 1_780_000_000 * 10**9 // DAY * DAY  # a midnight, so samples bin by day
VALUES = [100_000.0, 101_500.0, 99_800.0, 102_300.0, 104_000.0, 97_500.0, 99_000.0, 103_250.0]
PNLS = [120.0, -80.0, 45.5, -20.0, 300.0]


Labels = tuple[tuple[str, otlp.Value], ...]


def _derived(metrics: list[ResourceMetrics]) -> dict[tuple[str, Labels], float]:
    """(name, sorted attributes) -> value of every derived gauge point."""
    found: dict[tuple[str, Labels], float] = {}
    for resource_metrics in metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in otlp.number_points(metric):
                    labels = tuple(sorted(otlp.attributes(point.attributes).items()))
                    found[(metric.name, labels)] = otlp.point_value(point)
    return found


def _portfolio(values: list[float], start: int = START, step: int = DAY) -> otlp.Metric:
    metric = otlp.Metric(name=PORTFOLIO_METRIC)
    for index, value in enumerate(values):
        metric.gauge.data_points.add(time_unix_nano=start + index * step, as_double=value)
    return metric


@pytest.fixture
def plugin() -> TradingAnalyticsProcessor:
    return TradingAnalyticsProcessor(AnalyticsSettings())


def _walk(count: int, sigma: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(v) for v in 100_000.0 * np.cumprod(1 + rng.normal(0.0001, sigma, count))]


@pytest.mark.parametrize(
    ("step", "count", "sigma"),
    [(5 * 10**9, 12 * 300, 0.0003), (DAY, 400, 0.02)],  # five hours every 5 s; 400 days
    ids=["intraday", "daily"],
)
def test_the_pipeline_and_the_bot_publish_the_same_gauges(
    plugin: TradingAnalyticsProcessor, step: int, count: int, sigma: float
) -> None:
    # The same values through the processor (as a bot's exported samples) and through the
    # bot's own TradingMetrics, both with their default settings: one grid, one annualisation.
    values = _walk(count, sigma, seed=count)
    run(plugin, metrics_batch(_portfolio(values, step=step)))
    derived = {name: value for (name, _), value in _derived(collect(plugin)).items()}

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    bot = TradingMetrics(provider, InstrumentationSettings())
    for index, value in enumerate(values):
        bot.record_portfolio_value(value, timestamp=(START + index * step) / 1e9)
    data = reader.get_metrics_data()
    assert data is not None
    own = {
        metric.name: point.value
        for scope in data.resource_metrics[0].scope_metrics
        for metric in scope.metrics
        if metric.name in analytics.VALUE_GAUGES
        for point in metric.data.data_points
        if isinstance(point, NumberDataPoint)
    }
    provider.shutdown()
    assert set(own) >= {"trading_sharpe_ratio", "risk_var_95_percent", "risk_var_99_percent"}
    assert derived == pytest.approx(own, rel=1e-12)


def test_samples_bin_into_periods_latest_wins_in_any_order() -> None:
    plugin = TradingAnalyticsProcessor(AnalyticsSettings(period_seconds=86400))
    hour = DAY // 24
    metric = otlp.Metric(name=PORTFOLIO_METRIC)
    # Day 0: 100 then 110 (latest); day 1: 121 sent before an earlier sample of 50.
    for when, value in ((0, 100.0), (5 * hour, 110.0), (DAY + 9 * hour, 121.0), (DAY, 50.0)):
        metric.gauge.data_points.add(time_unix_nano=START + when, as_double=value)
    run(plugin, metrics_batch(metric))
    derived = _derived(collect(plugin))
    assert derived[("trading_total_return", ())] == pytest.approx(121 / 110 - 1)


def test_one_period_is_not_enough_and_nothing_undefined_is_sent(
    plugin: TradingAnalyticsProcessor,
) -> None:
    run(plugin, metrics_batch(_portfolio([100.0, 101.0, 102.0], step=10 * 10**9)))
    assert collect(plugin) == []  # three samples, one minute
    # Few periods: total return and drawdowns, but no ratio or VaR from a handful of returns.
    few = TradingAnalyticsProcessor()
    run(few, metrics_batch(_portfolio(VALUES)))
    names = {name for name, _ in _derived(collect(few))}
    assert names == {"trading_total_return", "trading_max_drawdown", "trading_current_drawdown"}


def test_series_attributes_and_resources_stay_apart(plugin: TradingAnalyticsProcessor) -> None:
    metric = otlp.Metric(name=PORTFOLIO_METRIC)
    for index, (a, b) in enumerate(zip(VALUES, reversed(VALUES), strict=True)):
        metric.gauge.data_points.add(
            time_unix_nano=START + index * DAY,
            as_double=a,
            attributes=otlp.key_values({"strategy": "momentum"}),
        )
        metric.gauge.data_points.add(
            time_unix_nano=START + index * DAY,
            as_double=b,
            attributes=otlp.key_values({"strategy": "mean_reversion"}),
        )
    run(plugin, metrics_batch(metric, resource={"service.name": "bot-a"}))
    run(plugin, metrics_batch(_portfolio(VALUES[:3]), resource={"service.name": "bot-b"}))
    by_bot = {
        otlp.attributes(rm.resource.attributes)["service.name"]: _derived([rm])
        for rm in collect(plugin)
    }
    assert by_bot["bot-a"][("trading_total_return", (("strategy", "momentum"),))] == (
        pytest.approx(analytics.total_return(VALUES))
    )
    assert by_bot["bot-a"][("trading_total_return", (("strategy", "mean_reversion"),))] == (
        pytest.approx(analytics.total_return(list(reversed(VALUES))))
    )
    assert by_bot["bot-b"][("trading_total_return", ())] == pytest.approx(
        analytics.total_return(VALUES[:3])
    )


def test_closed_trades_from_logs_and_span_events_counted_once(
    plugin: TradingAnalyticsProcessor,
) -> None:
    with record({"service.name": "bot"}) as sdk:
        for pnl in PNLS[:3]:
            sdk.logger.info("trade closed", extra={"trade.pnl_usd": pnl})
        with sdk.tracer.start_as_current_span("close_position") as current:
            current.add_event("trade.closed", {"trade.pnl_usd": PNLS[3]})
            current.add_event("trade.closed", {"trade.pnl_usd": PNLS[4], "trade.id": "t-5"})
        # The same trade (same id) reported again in a log record: still one trade.
        sdk.logger.info("trade closed", extra={"trade.pnl_usd": PNLS[4], "trade.id": "t-5"})
    logs, spans = sdk.logs(), sdk.spans()
    for _ in range(2):  # the collector retried: the same batches again
        run(plugin, logs)
        run(plugin, spans)

    derived = _derived(collect(plugin))
    assert derived[("trading_win_rate", ())] == pytest.approx(analytics.win_rate(PNLS))
    assert derived[("trading_profit_factor", ())] == pytest.approx(analytics.profit_factor(PNLS))


def test_trades_per_strategy(plugin: TradingAnalyticsProcessor) -> None:
    records = [
        log_record("closed", {"trade.pnl_usd": pnl, "strategy": "grid"}, time_unix_nano=index + 1)
        for index, pnl in enumerate([10.0, -5.0, 7.0])
    ]
    run(plugin, logs_batch(*records))
    derived = _derived(collect(plugin))
    assert derived[("trading_win_rate", (("strategy", "grid"),))] == pytest.approx(2 / 3)


def _positions(exposures: dict[str, float], time_unix_nano: int) -> otlp.Metric:
    points = [({"symbol": symbol, "strategy": "grid"}, e) for symbol, e in exposures.items()]
    return otlp.gauge(POSITIONS_METRIC, points, time_unix_nano)


def test_positions_give_count_concentration_and_leverage(
    plugin: TradingAnalyticsProcessor,
) -> None:
    portfolio = otlp.gauge(PORTFOLIO_METRIC, [({"strategy": "grid"}, 160_000.0)], START)
    opened = {"BTC/USDT": 90_000.0, "ETH/USDT": -30_000.0, "SOL/USDT": 5_000.0}
    run(plugin, metrics_batch(portfolio, _positions(opened, START)))
    # Later: SOL closed (reported 0), BTC unchanged; then an older BTC sample arrives late.
    run(plugin, metrics_batch(_positions({"SOL/USDT": 0.0, "BTC/USDT": 90_000.0}, START + 2)))
    run(plugin, metrics_batch(_positions({"BTC/USDT": 1.0}, START + 1)))
    derived = _derived(collect(plugin))

    grid = (("strategy", "grid"),)
    assert derived[("trading_open_positions", grid)] == 2
    # |90,000| of a gross 120,000 is the largest share; Herfindahl 0.75^2 + 0.25^2; gross
    # 120,000 over 160,000.
    assert derived[("risk_position_concentration", grid)] == 0.75
    assert derived[("risk_position_herfindahl_index", grid)] == pytest.approx(0.625, abs=1e-12)
    assert derived[("risk_leverage_ratio", grid)] == pytest.approx(0.75, abs=1e-12)
    assert derived[("risk_position_herfindahl_index", grid)] == pytest.approx(
        analytics.herfindahl_index([90_000.0, -30_000.0])
    )


def test_positions_without_a_portfolio_value_have_no_leverage(
    plugin: TradingAnalyticsProcessor,
) -> None:
    run(plugin, metrics_batch(_positions({"BTC/USDT": 0.0}, START)))
    derived = _derived(collect(plugin))
    grid = (("strategy", "grid"),)
    assert derived == {
        ("trading_open_positions", grid): 0,
        ("risk_position_concentration", grid): 0.0,
        ("risk_position_herfindahl_index", grid): 0.0,
    }


def test_a_name_the_bot_emits_itself_is_never_derived(plugin: TradingAnalyticsProcessor) -> None:
    own = otlp.gauge("trading_sharpe_ratio", [({}, 1.25)], START)
    run(plugin, metrics_batch(_portfolio(VALUES), own))
    names = {name for name, _ in _derived(collect(plugin))}
    assert "trading_sharpe_ratio" not in names
    assert "trading_max_drawdown" in names


def test_unrelated_batches_pass_untouched_without_parsing(
    plugin: TradingAnalyticsProcessor,
) -> None:
    batch = metrics_batch(otlp.gauge("system_cpu_usage_percent", [({}, 12.0)], START))
    result = run(plugin, batch)
    assert result.batch.raw == batch.raw
    assert collect(plugin) == []


def test_a_silent_bot_is_forgotten() -> None:
    plugin = TradingAnalyticsProcessor(AnalyticsSettings(idle_seconds=0.2))
    run(plugin, metrics_batch(_portfolio(VALUES)))
    assert collect(plugin)
    wait_until(lambda: not collect(plugin), "the idle bot to be forgotten", timeout=5)


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        AnalyticsSettings(period_seconds=0)
    with pytest.raises(ValueError, match="greater than or equal to 2"):
        AnalyticsSettings(window_periods=1)
    with pytest.raises(ValueError, match="needs a set period"):
        AnalyticsSettings(periods_per_year=252)


# -- execution quality --------------------------------------------------------------------------


def _order(name: str, duration_ms: float, **attributes: otlp.Value) -> otlp.Span:
    return span(
        name, {"exchange": "binance", "symbol": "BTC/USDT", **attributes}, duration_ms=duration_ms
    )


def test_slow_and_slipped_orders_are_marked_and_counted() -> None:
    plugin = ExecutionQualityProcessor(ExecutionSettings(max_latency_ms=500, max_slippage_bps=10))
    spans = [
        _order(
            "create_order", 900, side="buy", **{"order.price": 100.0, "order.average_price": 100.2}
        ),
        _order(
            "create_market_sell_order",
            20,
            side="sell",
            **{"order.expected_price": 200.0, "order.average_price": 199.9},
        ),
        _order(
            "create_limit_buy_order",
            30,
            side="buy",
            **{"order.price": 50.0, "order.average_price": 49.9},
        ),
        _order("create_order", 40, side="buy"),  # not filled yet: latency only
        span("fetch_ticker", {"symbol": "BTC/USDT"}, duration_ms=5000),
    ]
    batch = spans_batch(*spans, resource={"service.name": "bot"})
    result = run(plugin, batch)
    run(plugin, batch)  # a retry: marked again, counted once
    assert result.error is None

    marks = [otlp.attributes(s.attributes) for _, _, s in otlp.spans(result.message())]
    assert marks[0]["execution.slow"] is True
    assert marks[0]["execution.latency_ms"] == pytest.approx(900)
    assert marks[0]["execution.slippage_bps"] == pytest.approx(20)
    assert marks[0]["execution.slippage_breach"] is True
    assert marks[1]["execution.slippage_bps"] == pytest.approx(5)  # sold 0.05 % lower: adverse
    assert marks[1]["execution.slippage_breach"] is False
    assert marks[1]["execution.slow"] is False
    assert marks[2]["execution.slippage_bps"] == pytest.approx(-20)  # bought cheaper: favourable
    assert "execution.slippage_bps" not in marks[3]
    assert marks[3]["execution.slow"] is False
    assert not any(key.startswith("execution.") for key in marks[4])

    counts = _derived(collect(plugin))
    buy = (("exchange", "binance"), ("side", "buy"), ("symbol", "BTC/USDT"))
    sell = (("exchange", "binance"), ("side", "sell"), ("symbol", "BTC/USDT"))
    assert counts[("trading_execution_orders", buy)] == 3
    assert counts[("trading_execution_slow_orders", buy)] == 1
    assert counts[("trading_execution_slippage_breaches", buy)] == 1
    assert counts[("trading_execution_orders", sell)] == 1
    assert counts[("trading_execution_slippage_breaches", sell)] == 0
    metric = collect(plugin)[0].scope_metrics[0].metrics[0]
    assert metric.sum.is_monotonic


def _fill(placed: otlp.Span, event: str, **prices: otlp.Value) -> otlp.Span:
    """freqtrade's later fill (or cancel) span: the child of the order's placement span."""
    tags = otlp.attributes(placed.attributes)
    result = span(
        "order_fill",
        {key: tags[key] for key in ("exchange", "symbol", "side")},
        events=[(event, prices)],
        trace_id=placed.trace_id,
    )
    result.parent_span_id = placed.span_id
    return result


def test_a_later_live_fill_has_its_slippage_measured_once_not_counted_as_an_order() -> None:
    plugin = ExecutionQualityProcessor(ExecutionSettings(max_slippage_bps=25))
    # A live limit buy that rested: the exchange answered it open, with no fill price.
    rested = _order(
        "create_order", 30, side="buy", **{"order.price": 100.0, "order.expected_price": 100.0}
    )
    # A market sell filled at once: measured on its placement, so not on its fill.
    market = _order(
        "create_order",
        20,
        side="sell",
        **{"order.expected_price": 200.0, "order.average_price": 200.5},
    )
    filled_later = _fill(
        rested, "order.filled", **{"order.expected_price": 100.0, "order.average_price": 100.3}
    )
    filled_at_once = _fill(
        market, "order.filled", **{"order.expected_price": 200.0, "order.average_price": 200.5}
    )
    canceled = _fill(rested, "order.canceled", **{"order.price": 100.0})
    resource = {"service.name": "bot"}
    run(plugin, spans_batch(rested, resource=resource))
    # The fills listed before the market order's placement: placements are checked first.
    later = spans_batch(filled_at_once, canceled, market, filled_later, resource=resource)
    result = run(plugin, later)
    run(plugin, later)  # a retry: marked again, counted once
    assert result.error is None

    marks = [otlp.attributes(s.attributes) for _, _, s in otlp.spans(result.message())]
    assert marks[3]["execution.slippage_bps"] == pytest.approx(30)  # paid 0.3 % more
    assert marks[3]["execution.slippage_breach"] is True
    assert "execution.slow" not in marks[3]  # a fill's duration is not the order's latency
    assert marks[2]["execution.slippage_bps"] == pytest.approx(-25)  # measured on the placement
    assert not any(key.startswith("execution.") for key in marks[0])  # not measured twice
    assert not any(key.startswith("execution.") for key in marks[1])  # a cancel: no fill

    counts = _derived(collect(plugin))
    buy = (("exchange", "binance"), ("side", "buy"), ("symbol", "BTC/USDT"))
    sell = (("exchange", "binance"), ("side", "sell"), ("symbol", "BTC/USDT"))
    assert counts[("trading_execution_orders", buy)] == 1  # the placement, not its fill
    assert counts[("trading_execution_slippage_breaches", buy)] == 1
    assert counts[("trading_execution_slow_orders", buy)] == 0
    assert counts[("trading_execution_orders", sell)] == 1
    assert counts[("trading_execution_slippage_breaches", sell)] == 0


def test_batches_without_orders_are_not_parsed_or_changed() -> None:
    plugin = ExecutionQualityProcessor()
    batch = spans_batch(span("fetch_ohlcv", {"symbol": "ETH/USDT"}))
    result = run(plugin, batch)
    assert result.batch.raw == batch.raw
    assert collect(plugin) == []


def test_span_name_pattern_is_configurable_and_validated() -> None:
    plugin = ExecutionQualityProcessor(ExecutionSettings(span_names=r"place_\w+"))
    result = run(plugin, spans_batch(span("place_bid", {"side": "buy"}, duration_ms=5000)))
    marks = otlp.attributes(next(otlp.spans(result.message()))[2].attributes)
    assert marks["execution.slow"] is True
    with pytest.raises(ValueError, match="not a regular expression"):
        ExecutionSettings(span_names="create_(")


def test_sdk_order_span_through_the_kit() -> None:
    with (
        record() as sdk,
        sdk.tracer.start_as_current_span(
            "create_order",
            attributes={"side": "sell", "order.price": 10.0, "order.average_price": 9.0},
        ),
    ):
        time.sleep(0.002)  # the span's measured duration, not a wait for something
    result = run(ExecutionQualityProcessor(), sdk.spans())
    marks = otlp.attributes(next(otlp.spans(result.message()))[2].attributes)
    assert marks["execution.slippage_bps"] == pytest.approx(1000)
    assert marks["execution.slippage_breach"] is True


def test_the_pipeline_imports_nothing_of_the_bot_side() -> None:
    # One implementation of the formulas and the grid (tbmon.analytics), and dependencies that
    # point one way: the processors host loads no bot-side module.
    code = (
        "import sys, tbmon.processors.trading_analytics\n"
        "print(sorted(m for m in sys.modules if m.startswith('tbmon.instrumentation')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_derived_drawdown_outlives_the_window_and_the_bots_restart() -> None:
    """A 30 % crash whose peak left the window is still a 30 % drawdown, for the bot's next
    process too (same service, new instance id); a recovery ends it; another bot has its own."""
    plugin = TradingAnalyticsProcessor(AnalyticsSettings(period_seconds=1, window_periods=5))
    second = 10**9

    def send(values: list[float], start: int, instance: str, service: str = "p-bot") -> None:
        resource = {"service.name": service, "service.instance.id": instance}
        batch = metrics_batch(
            _portfolio(values, start=START + start * second, step=second), resource=resource
        )
        run(plugin, batch)

    def drawdowns() -> dict[tuple[str, str], float]:
        found = {}
        for rm in collect(plugin):
            attributes = otlp.attributes(rm.resource.attributes)
            key = (str(attributes["service.name"]), str(attributes["service.instance.id"]))
            found[key] = _derived([rm])[("trading_current_drawdown", ())]
        return found

    send([100.0, 120.0, 84.0] + [84.0] * 10, 0, "first")
    assert drawdowns()[("p-bot", "first")] == pytest.approx(0.3)
    send([84.0], 20, "second")  # the restarted process's first value
    assert drawdowns()[("p-bot", "second")] == pytest.approx(0.3)
    send([90.0, 80.0], 30, "x", service="other-bot")
    assert drawdowns()[("other-bot", "x")] == pytest.approx(1 / 9)
    send([114.0, 126.0], 21, "second")
    assert drawdowns()[("p-bot", "second")] == 0.0  # recovered: a new peak


def _drawdown_of(sink: OtlpSink, instance: str) -> float | None:
    """The latest trading_current_drawdown the host sent for the bot process ``instance``."""
    found = None
    for request in sink.all(Signal.METRICS):
        for rm in request.resource_metrics:
            if otlp.attributes(rm.resource.attributes).get("service.instance.id") == instance:
                found = _derived([rm]).get(("trading_current_drawdown", ()), found)
    return found


def test_the_hosts_marks_outlive_its_restart(tmp_path: Path) -> None:
    """A 30 % crash whose peak left the window is still a 30 % drawdown after the processors
    host itself restarts with the same state directory. The first host is killed, not stopped:
    the marks were saved after a collection, not at shutdown."""
    state = tmp_path / "state"
    env = {
        "PROCESSORS_PLUGINS": "trading_analytics",
        "PROCESSORS_DERIVE_INTERVAL_SECONDS": "0.2",
        "PROCESSORS_ANALYTICS_PERIOD_SECONDS": "1",
        "PROCESSORS_ANALYTICS_WINDOW_PERIODS": "5",
        "PROCESSORS_ANALYTICS_STATE_DIR": str(state),
    }
    second = 10**9

    def send(host: HostProcess, values: list[float], start: int, instance: str) -> None:
        portfolio = _portfolio(values, start=START + start * second, step=second)
        resource = {"service.name": "p-bot", "service.instance.id": instance}
        host.export(Signal.METRICS, metrics_batch(portfolio, resource=resource).raw)

    with otlp_sink() as sink:
        host = start_host(tmp_path, sink.port, env)
        try:
            send(host, [100.0, 120.0, 84.0] + [84.0] * 10, 0, "first")
            wait_until(lambda: _drawdown_of(sink, "first") is not None, "the first drawdown")
            assert _drawdown_of(sink, "first") == pytest.approx(0.3)
            wait_until((state / MARKS_FILE).exists, "the host's marks file")
        finally:
            host.process.kill()  # a crash: no orderly stop
            host.process.wait(10)
        host = start_host(tmp_path, sink.port, env)
        try:
            send(host, [84.0, 84.0], 20, "second")  # the bot's next values, after both restarts
            wait_until(lambda: _drawdown_of(sink, "second") is not None, "the second drawdown")
            assert _drawdown_of(sink, "second") == pytest.approx(0.3)  # not 0: the mark was kept
            assert "kept in memory only" not in host.log.read_text()
        finally:
            stop_host(host)


def test_the_marks_file_keeps_the_newest_marks_within_the_bound(tmp_path: Path) -> None:
    """The file holds at most max_marks marks, least recent out (written at the host's stop);
    a host with a smaller bound reads the newest of them."""
    settings = AnalyticsSettings(period_seconds=1, max_marks=2, state_dir=str(tmp_path))
    plugin = TradingAnalyticsProcessor(settings)
    for n, service in enumerate(["a", "b", "c"]):
        portfolio = _portfolio([100.0, 50.0], start=START + n * 10 * 10**9, step=10**9)
        run(plugin, metrics_batch(portfolio, resource={"service.name": service}))
        collect(plugin)
    plugin.close()
    assert len(json.loads((tmp_path / MARKS_FILE).read_text())["marks"]) == 2

    smaller = TradingAnalyticsProcessor(settings.model_copy(update={"max_marks": 1}))
    for service in ["b", "c"]:
        portfolio = _portfolio([80.0, 80.0], start=START + 100 * 10**9, step=10**9)
        run(smaller, metrics_batch(portfolio, resource={"service.name": service}))
    drawdowns = {
        otlp.attributes(rm.resource.attributes)["service.name"]: _derived([rm])[
            ("trading_current_drawdown", ())
        ]
        for rm in collect(smaller)
    }
    assert drawdowns == {"b": 0.0, "c": pytest.approx(0.2)}  # b's mark fell out of the bound
    smaller.close()
