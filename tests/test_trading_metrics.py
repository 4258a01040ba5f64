"""TradingMetrics: the seed's gauges derived from raw inputs, read back through an SDK reader."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tbmon import analytics
from tbmon.instrumentation import TradingMetrics
from tbmon.instrumentation.settings import load_settings

DAY = 86400.0
#: Forty daily returns: enough for a Sharpe ratio (analytics.MIN_RETURNS).
RETURNS = [0.01, -0.02, 0.015, -0.005, 0.025, 0.004, -0.012, 0.008] * 5
VALUES = [100_000.0 * float(np.prod([1 + r for r in RETURNS[:i]])) for i in range(41)]

Points = dict[str, dict[frozenset[tuple[str, object]], float]]


class Reader:
    """A TradingMetrics on its own MeterProvider, and its collected points by metric name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.metrics = TradingMetrics(self.provider, load_settings())

    def points(self) -> Points:
        data = self.reader.get_metrics_data()
        found: Points = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = point.value if hasattr(point, "value") else point.count
                        key = frozenset((point.attributes or {}).items())
                        found.setdefault(metric.name, {})[key] = float(value)
        return found

    def value(self, name: str, **labels: str) -> float:
        return self.points()[name][frozenset(labels.items())]


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reader]:
    monkeypatch.delenv("TBMON_STRATEGY", raising=False)
    made = Reader(monkeypatch, TBMON_ANALYTICS_PERIOD_SECONDS="86400", TBMON_PERIODS_PER_YEAR="252")
    yield made
    made.provider.shutdown()


def test_daily_values_give_numpys_sharpe_and_the_formulas_gauges(reader: Reader) -> None:
    for day, value in enumerate(VALUES):
        reader.metrics.record_portfolio_value(value, timestamp=day * DAY)
    points = reader.points()
    strategy = frozenset({("strategy", "default")})
    r = np.array(RETURNS)
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(252)
    assert points["trading_sharpe_ratio"][strategy] == pytest.approx(sharpe, rel=1e-9)
    grid = analytics.ReturnGrid(86400, 252)
    series = analytics.PeriodSeries(grid)
    for day, value in enumerate(VALUES):
        series.add(round(day * DAY * 1e9), value)
    expected = analytics.value_gauges(series.sample(), grid)
    assert "risk_var_95_percent" not in expected  # 40 returns: not yet
    for name, value in expected.items():
        assert points[name][strategy] == pytest.approx(value, abs=1e-9), name
    assert points["trading_portfolio_value_usd"][strategy] == VALUES[-1]
    assert points["trading_total_return"][strategy] == pytest.approx(
        float(np.prod([1 + r for r in RETURNS]) - 1), abs=1e-9
    )


def test_values_within_one_period_count_once_the_latest_winning(reader: Reader) -> None:
    reader.metrics.record_portfolio_value(100.0, timestamp=0)
    reader.metrics.record_portfolio_value(50.0, timestamp=10)  # same day, superseded
    reader.metrics.record_portfolio_value(120.0, timestamp=20)
    reader.metrics.record_portfolio_value(90.0, timestamp=DAY)
    assert reader.value("trading_max_drawdown", strategy="default") == pytest.approx(0.25, abs=1e-9)
    assert reader.value("trading_portfolio_value_usd", strategy="default") == 90.0


def test_undefined_values_have_no_sample(reader: Reader) -> None:
    reader.metrics.record_portfolio_value(100.0, timestamp=0)
    reader.metrics.record_trade(10.0)
    points = reader.points()
    for name in ("trading_sharpe_ratio", "risk_var_95_percent", "trading_profit_factor"):
        assert name not in points, name
    assert points["trading_win_rate"] == {frozenset({("strategy", "default")}): 1.0}
    assert all(math.isfinite(v) for series in points.values() for v in series.values())


def test_trades_give_win_rate_and_profit_factor_per_strategy(reader: Reader) -> None:
    for pnl in (10.0, -20.0, 30.0, -40.0):
        reader.metrics.record_trade(pnl, strategy="momentum")
    reader.metrics.record_trade(5.0, strategy="carry")
    assert reader.value("trading_win_rate", strategy="momentum") == 0.5
    assert reader.value("trading_profit_factor", strategy="momentum") == pytest.approx(
        0.6666666666666666, abs=1e-9
    )
    assert reader.value("trading_win_rate", strategy="carry") == 1.0


def test_positions_give_count_concentration_and_leverage(reader: Reader) -> None:
    reader.metrics.record_portfolio_value(50_000.0)
    reader.metrics.set_positions({"BTC/USDT": 60_000.0, "ETH/USDT": -20_000.0, "SOL/USDT": 0.0})
    assert reader.value("trading_open_positions", strategy="default") == 2
    # The largest position's share of gross exposure, and the Herfindahl index of the shares.
    assert reader.value("risk_position_concentration", strategy="default") == 0.75
    assert reader.value("risk_position_herfindahl_index", strategy="default") == pytest.approx(
        0.75**2 + 0.25**2, abs=1e-12
    )
    assert reader.value("risk_leverage_ratio", strategy="default") == pytest.approx(1.6, abs=1e-9)


def test_prices_give_the_mean_pairwise_correlation_of_held_symbols(reader: Reader) -> None:
    rng = np.random.default_rng(5)
    market = rng.normal(0, 0.02, 40)
    series = {
        symbol: list(start * np.cumprod(1 + market * beta + rng.normal(0, 0.01, 40)))
        for symbol, start, beta in (("BTC/USDT", 100.0, 1.0), ("ETH/USDT", 50.0, 1.2),
                                    ("SOL/USDT", 20.0, -0.5))
    }  # fmt: skip
    for day in range(40):
        reader.metrics.record_prices({s: p[day] for s, p in series.items()}, timestamp=day * DAY)
    reader.metrics.set_positions({"BTC/USDT": 1000.0, "ETH/USDT": 500.0})
    btc, eth = (np.diff(series[s]) / np.array(series[s][:-1]) for s in ("BTC/USDT", "ETH/USDT"))
    expected = float(np.corrcoef(btc, eth)[0, 1])
    assert reader.value("risk_correlation_score", strategy="default") == pytest.approx(
        expected, abs=1e-9
    )


def test_agents_accuracy_reward_consensus_and_inference(reader: Reader) -> None:
    for correct in (True, True, False, True):
        reader.metrics.record_prediction("lstm", correct=correct)
    reader.metrics.add_reward("ppo", 1.5)
    reader.metrics.add_reward("ppo", -0.5)
    reader.metrics.set_ensemble_consensus(0.8)
    with reader.metrics.inference("lstm"):
        pass
    points = reader.points()
    assert points["agent_prediction_accuracy"] == {frozenset({("agent", "lstm")}): 0.75}
    assert points["agent_cumulative_reward"] == {frozenset({("agent", "ppo")}): 1.0}
    assert points["ensemble_consensus_score"] == {frozenset(): 0.8}
    assert points["model_inference_duration_seconds"] == {frozenset({("model", "lstm")}): 1.0}


def test_orders_are_counted_with_low_cardinality_labels_only(reader: Reader) -> None:
    for status in ("filled", "filled", "failed"):
        reader.metrics.record_order(
            symbol="BTC/USDT", side="buy", status=status, exchange="binance"
        )
    counts = reader.points()["trading_orders"]
    assert counts[frozenset({
        ("strategy", "default"), ("symbol", "BTC/USDT"), ("side", "buy"),
        ("exchange", "binance"), ("status", "filled"),
    })] == 2  # fmt: skip
    labels = {key for point in counts for key, _ in point}
    assert labels == {"strategy", "symbol", "side", "exchange", "status"}


def test_the_strategy_label_defaults_to_tbmon_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    made = Reader(monkeypatch, TBMON_STRATEGY="momentum")
    made.metrics.record_portfolio_value(1.0)
    assert made.value("trading_portfolio_value_usd", strategy="momentum") == 1.0


def test_trade_ids_go_to_the_current_span_not_to_labels(reader: Reader) -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    with tracer_provider.get_tracer("test").start_as_current_span("close"):
        reader.metrics.record_trade(-3.5, trade_id="t-42", symbol="ETH/USDT")
    (event,) = spans.get_finished_spans()[0].events
    assert event.name == "trade.closed"
    assert dict(event.attributes or {}) == {
        "trade.pnl_usd": -3.5,
        "trade.id": "t-42",
        "symbol": "ETH/USDT",
        "strategy": "default",
    }
    assert reader.points()["trading_win_rate"] == {frozenset({("strategy", "default")}): 0.0}


@pytest.mark.parametrize(
    ("call", "name", "message"),
    [
        (lambda m: m.record_portfolio_value(float("nan")), "record_portfolio_value", "finite"),
        (lambda m: m.record_trade(float("inf")), "record_trade", "pnl_usd must be a finite"),
        (lambda m: m.record_prices({"BTC/USDT": 0.0}), "record_prices", "BTC/USDT must be pos"),
        (lambda m: m.set_ensemble_consensus(1.5), "set_ensemble_consensus", "within [0, 1]"),
        (lambda m: m.set_positions({"BTC/USDT": float("nan")}), "set_positions", "BTC/USDT"),
        (lambda m: m.add_reward("a", "lots"), "add_reward", "reward must be a finite"),
    ],
)
def test_values_no_metric_can_hold_are_counted_and_warned_never_raised(
    reader: Reader,
    caplog: pytest.LogCaptureFixture,
    call: Callable[[TradingMetrics], None],
    name: str,
    message: str,
) -> None:
    for _ in range(3):
        call(reader.metrics)  # the bot's loop goes on
    warnings = [r.getMessage() for r in caplog.records if "ignored a value" in r.getMessage()]
    assert len(warnings) == 1
    assert name in warnings[0]
    assert message in warnings[0]
    points = reader.points()
    assert points["tbmon_trading_values_rejected"] == {frozenset({("call", name)}): 3}
    assert "trading_portfolio_value_usd" not in points
    assert "ensemble_consensus_score" not in points


def test_an_annualisation_without_a_valid_period_falls_back_with_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TBMON_ANALYTICS_PERIOD_SECONDS", "-5")
    monkeypatch.setenv("TBMON_PERIODS_PER_YEAR", "365")
    settings = load_settings()
    assert (settings.analytics_period_seconds, settings.periods_per_year) == (None, None)
    (warning,) = [r.getMessage() for r in caplog.records if "invalid settings" in r.getMessage()]
    assert "TBMON_ANALYTICS_PERIOD_SECONDS" in warning
    assert "TBMON_PERIODS_PER_YEAR" in warning


def _crash(metrics: TradingMetrics, start: int = 0) -> None:
    """A 30 % crash from 120 (second 1), then ten flat seconds: the peak leaves a 5 s window."""
    for t, value in enumerate([100.0, 120.0, 84.0] + [84.0] * 10, start=start):
        metrics.record_portfolio_value(value, timestamp=t)


@pytest.fixture
def short_window(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("TBMON_STRATEGY", raising=False)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "hwm-bot")
    return {"TBMON_ANALYTICS_PERIOD_SECONDS": "1", "TBMON_ANALYTICS_WINDOW": "5"}


def test_the_drawdown_outlives_the_window_and_the_restart_until_a_recovery(
    monkeypatch: pytest.MonkeyPatch, short_window: dict[str, str], bot_state_dir: Any
) -> None:
    first = Reader(monkeypatch, **short_window)
    _crash(first.metrics)
    assert first.value("trading_max_drawdown", strategy="default") == 0.0  # out of the window
    assert first.value("trading_current_drawdown", strategy="default") == pytest.approx(0.3)
    first.provider.shutdown()
    (saved,) = bot_state_dir.glob("*.json")
    assert saved.name == "hwm-bot.high-water-marks.json"
    # The same bot restarted: its first value is still 30 % below the old peak.
    second = Reader(monkeypatch, **short_window)
    second.metrics.record_portfolio_value(84.0, timestamp=100)
    assert second.value("trading_current_drawdown", strategy="default") == pytest.approx(0.3)
    second.metrics.record_portfolio_value(114.0, timestamp=101)
    assert second.value("trading_current_drawdown", strategy="default") == pytest.approx(0.05)
    second.metrics.record_portfolio_value(125.0, timestamp=102)
    assert second.value("trading_current_drawdown", strategy="default") == 0.0  # recovered
    second.provider.shutdown()
    # Another strategy, or a bot with another name, starts its own mark.
    monkeypatch.setenv("OTEL_SERVICE_NAME", "another-bot")
    other = Reader(monkeypatch, **short_window)
    other.metrics.record_portfolio_value(84.0, timestamp=200)
    other.metrics.record_portfolio_value(80.0, timestamp=201)
    assert other.value("trading_current_drawdown", strategy="default") == pytest.approx(4 / 84)
    other.provider.shutdown()


def test_a_reset_starts_the_mark_afresh_and_a_bad_state_dir_only_warns(
    monkeypatch: pytest.MonkeyPatch,
    short_window: dict[str, str],
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = Reader(monkeypatch, **short_window)
    _crash(reader.metrics)
    reader.metrics.reset_high_water_mark()  # a withdrawal, say
    reader.metrics.record_portfolio_value(84.0, timestamp=20)
    reader.metrics.record_portfolio_value(80.0, timestamp=21)
    assert reader.value("trading_current_drawdown", strategy="default") == pytest.approx(4 / 84)
    reader.provider.shutdown()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    unwritable = Reader(monkeypatch, TBMON_STATE_DIR=str(blocker / "state"), **short_window)
    _crash(unwritable.metrics)
    _crash(unwritable.metrics, start=20)
    assert unwritable.value("trading_current_drawdown", strategy="default") == pytest.approx(0.3)
    unwritable.provider.shutdown()
    warnings = [r for r in caplog.records if "high-water marks are kept in memory" in r.message]
    assert len(warnings) == 1
