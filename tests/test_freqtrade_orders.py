"""freqtrade's orders and valuation, in process: a real ``FreqtradeBot`` against the local exchange.

The bot (freqtrade from PyPI, the example's config and strategy, no tbmon code in them) runs its
iterations in this process, the freqtrade and ccxt instrumentors recording in memory; each test
calls ``FreqtradeBot.process`` as freqtrade's worker does. What the end-to-end test through the
stack (tests/test_freqtrade.py) cannot steer:

- a dry-run limit order that rests and fills iterations later: its ``create_order`` span ends at
  the fill, dated at its placement, with freqtrade's proposed price and the fill price, and the
  execution-quality processor measures its slippage from it;
- live, a fill's ``order_fill`` span is the child of the ccxt ``create_order`` span that placed the
  order (its trace), not of the iteration;
- a position opened in the iteration just run, valued at the rate freqtrade entered it at (it
  has no exit rate yet), not at the last candle's close, however far the candle is;
- a stake currency other than a dollar (BTC): the portfolio is valued in USD with a BTC/USDT
  price freqtrade holds anyway (an informative pair's candles), and agrees with freqtrade's own
  balance (``/balance``) times that price; without such a price it publishes no portfolio (not
  BTC under a USD name) and says why once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from freqtrade.configuration import Configuration
from freqtrade.enums import RunMode
from freqtrade.freqtradebot import FreqtradeBot
from freqtrade.persistence import Order, Trade
from freqtrade.rpc.rpc import RPC
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from support import CHECKOUT, wait_until

from tbmon import attributes
from tbmon.instrumentation.ccxt import CcxtInstrumentor
from tbmon.instrumentation.freqtrade import FILL_SPAN, ORDER_SPAN, FreqtradeInstrumentor
from tbmon.processors import otlp
from tbmon.processors.api import Batch
from tbmon.processors.execution import SLIPPAGE_BPS, ExecutionQualityProcessor, ExecutionSettings
from tbmon.processors.testing import collect, run
from tbmon.standins.exchange import (
    TEST_API_KEY,
    TEST_API_SECRET,
    ExchangeServerClient,
    binance_client,
)
from tbmon.standins.exchange_tool import ccxt_urls, running

EXAMPLE = CHECKOUT / "examples/freqtrade"


@dataclass
class Recorded:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name == name]

    def gauge(self, name: str) -> list[float]:
        data = self.metrics.get_metrics_data()
        if data is None:
            return []
        return [
            float(point.value)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
            if isinstance(point, NumberDataPoint)
        ]


@pytest.fixture
def telemetry() -> Iterator[Recorded]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentors = (FreqtradeInstrumentor(), CcxtInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield Recorded(spans, reader)
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        meter_provider.shutdown()
        tracer_provider.shutdown()


@pytest.fixture
def exchange_url() -> Iterator[str]:
    with running() as url:
        control = ExchangeServerClient(url)
        control.set_market(volatility=0.002)  # resting orders fill within seconds
        control.close()
        yield url


def freqtrade_bot(
    url: str,
    folder: Path,
    *,
    strategy: str = "QuickTurns",
    strategy_path: Path = EXAMPLE / "strategies",
    **changes: Any,
) -> FreqtradeBot:
    """The example's bot against ``url`` with ``changes`` to its config, started."""
    config = json.loads((EXAMPLE / "config.json").read_text())
    exchange = config["exchange"] | changes.pop("exchange", {})
    exchange["ccxt_config"]["urls"]["api"] = ccxt_urls(url)
    exchange["enable_ws"] = False  # candles by REST: this process has no worker loop
    config |= changes
    config |= {"exchange": exchange, "db_url": "sqlite://", "user_data_dir": str(folder)}
    config |= {"strategy": strategy, "strategy_path": str(strategy_path)}
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    loaded = Configuration.from_files([str(path)])
    loaded["runmode"] = RunMode.DRY_RUN if config["dry_run"] else RunMode.LIVE
    bot = FreqtradeBot(loaded)
    bot.startup()
    return bot


def orders() -> list[Order]:
    return list(Order.session.scalars(Order.session.query(Order).statement))


def test_a_dry_run_limit_order_filled_later_has_its_slippage_measured_on_the_fill(
    telemetry: Recorded, exchange_url: str, tmp_path: Path
) -> None:
    # Entries at the bid: limit orders that rest until the market comes down to them.
    pricing = {"price_side": "same", "use_order_book": True, "order_book_top": 1}
    bot = freqtrade_bot(exchange_url, tmp_path, entry_pricing=pricing)
    rested: set[str] = set()
    try:

        def filled_later() -> list[Order]:
            bot.process()
            rested.update(o.order_id for o in orders() if o.status == "open")
            return [o for o in orders() if o.order_id in rested and o.status == "closed"]

        (order, *_) = wait_until(filled_later, "an entry that rested, then filled", timeout=120)
    finally:
        bot.cleanup()
    (placed,) = [
        span
        for span in telemetry.finished(ORDER_SPAN)
        if (span.attributes or {}).get(attributes.ORDER_ID) == order.order_id
    ]
    tags = placed.attributes or {}
    assert tags[attributes.ORDER_STATUS] == "closed"
    assert tags[attributes.ORDER_EXPECTED_PRICE] == pytest.approx(order.price)
    assert tags[attributes.ORDER_AVERAGE_PRICE] == pytest.approx(order.safe_price)
    # Dated at the placement: its duration is the placement's, not the wait for the fill.
    assert placed.end_time is not None
    assert placed.start_time is not None
    assert placed.end_time - placed.start_time < 1e9
    (fill,) = [
        span
        for span in telemetry.finished(FILL_SPAN)
        if placed.context is not None
        and span.parent is not None
        and span.parent.span_id == placed.context.span_id
    ]
    assert [event.name for event in fill.events] == ["order.filled"]
    # The execution-quality processor measures the slippage on this span.
    result = run(ExecutionQualityProcessor(ExecutionSettings()), Batch.of(encode_spans([placed])))
    assert result.error is None
    ((_, _, measured),) = list(otlp.spans(result.message()))
    marks = {kv.key: kv.value for kv in measured.attributes}
    assert SLIPPAGE_BPS in marks


def test_a_live_limit_order_filled_later_has_its_slippage_measured_once_on_its_fill(
    telemetry: Recorded, exchange_url: str, tmp_path: Path
) -> None:
    # Entries at the bid, live: the exchange answers them open (no fill price on ccxt's span),
    # and fills them later, when the market comes down to them.
    pricing = {"price_side": "same", "use_order_book": True, "order_book_top": 1}
    bot = freqtrade_bot(
        exchange_url,
        tmp_path,
        dry_run=False,
        exchange={"key": TEST_API_KEY, "secret": TEST_API_SECRET},
        entry_pricing=pricing,
    )
    rested: set[str] = set()
    try:

        def filled_later() -> list[Order]:
            bot.process()
            rested.update(o.order_id for o in orders() if o.status == "open")
            return [o for o in orders() if o.order_id in rested and o.status == "closed"]

        (order, *_) = wait_until(filled_later, "a live entry that rested, then filled", timeout=120)
    finally:
        bot.cleanup()
    (placed,) = [
        span
        for span in telemetry.finished(ORDER_SPAN)
        if (span.attributes or {}).get(attributes.ORDER_ID) == order.order_id
    ]
    assert placed.kind is SpanKind.CLIENT  # ccxt's call
    assert attributes.ORDER_AVERAGE_PRICE not in (placed.attributes or {})
    (fill,) = [
        span
        for span in telemetry.finished(FILL_SPAN)
        if placed.context is not None
        and span.parent is not None
        and span.parent.span_id == placed.context.span_id
    ]
    plugin = ExecutionQualityProcessor(ExecutionSettings())
    result = run(plugin, Batch.of(encode_spans([placed, fill])))
    assert result.error is None
    marks = {
        span.name: {kv.key: kv.value for kv in span.attributes}
        for _, _, span in otlp.spans(result.message())
    }
    assert SLIPPAGE_BPS not in marks[ORDER_SPAN]
    proposed = (placed.attributes or {})[attributes.ORDER_EXPECTED_PRICE]
    assert isinstance(proposed, float)
    sign = 1 if order.ft_order_side == "buy" else -1
    slippage = (order.safe_price - proposed) / proposed * 1e4 * sign
    assert marks[FILL_SPAN][SLIPPAGE_BPS].double_value == pytest.approx(slippage, abs=1e-3)
    counted = [
        otlp.point_value(point)
        for resource_metrics in collect(plugin)
        for scope in resource_metrics.scope_metrics
        for metric in scope.metrics
        if metric.name == "trading_execution_orders"
        for point in otlp.number_points(metric)
    ]
    assert counted == [1]  # the placement; its fill is no second order


def test_a_live_fill_is_a_child_of_the_ccxt_order_span(
    telemetry: Recorded, exchange_url: str, tmp_path: Path
) -> None:
    bot = freqtrade_bot(
        exchange_url,
        tmp_path,
        dry_run=False,
        exchange={"key": TEST_API_KEY, "secret": TEST_API_SECRET},
    )
    try:
        wait_until(
            lambda: bot.process() or telemetry.finished(FILL_SPAN),
            "a live fill",
            timeout=120,
            interval=0.5,
        )
    finally:
        bot.cleanup()
    placed = {
        span.context.span_id: span
        for span in telemetry.finished(ORDER_SPAN)
        if span.context is not None
    }
    fills = telemetry.finished(FILL_SPAN)
    assert fills
    for fill in fills:
        assert fill.parent is not None
        parent = placed.get(fill.parent.span_id)
        assert parent is not None, "the fill's parent is the order's create_order span"
        assert parent.kind is SpanKind.CLIENT  # ccxt's call, not a dry-run stand-in
        assert (parent.attributes or {}).get(attributes.SYMBOL) == (fill.attributes or {}).get(
            attributes.SYMBOL
        )
    # Execution quality measures each filled order's slippage once: on its placement if the
    # exchange answered it filled, else on its later fill, which is no second order.
    plugin = ExecutionQualityProcessor(ExecutionSettings())
    result = run(plugin, Batch.of(encode_spans([*placed.values(), *fills])))
    assert result.error is None
    measured: dict[bytes, int] = {}
    for _, _, span in otlp.spans(result.message()):
        order = span.span_id if span.name == ORDER_SPAN else span.parent_span_id
        slipped = any(kv.key == SLIPPAGE_BPS for kv in span.attributes)
        measured[order] = measured.get(order, 0) + slipped
    filled = {fill.parent.span_id.to_bytes(8, "big") for fill in fills if fill.parent}
    assert {order: measured[order] for order in filled} == dict.fromkeys(filled, 1)
    counted = sum(
        otlp.point_value(point)
        for resource_metrics in collect(plugin)
        for scope in resource_metrics.scope_metrics
        for metric in scope.metrics
        if metric.name == "trading_execution_orders"
        for point in otlp.number_points(metric)
    )
    assert counted == len(placed)


def test_a_position_opened_this_iteration_is_valued_at_the_rate_it_was_entered_at(
    telemetry: Recorded, tmp_path: Path
) -> None:
    # A market that stands still (one step of its walk an hour) under candles that move 39 % a
    # candle (sigma): the last closed candle's close is far from the price the bot buys at.
    with running() as url:
        control = ExchangeServerClient(url)
        control.set_market(volatility=0.05, step_seconds=3600)
        control.close()
        bot = freqtrade_bot(url, tmp_path, exchange={"pair_whitelist": ["BTC/USDT"]})
        try:
            # The iteration that enters is the last one run: the position has no exit rate yet.
            wait_until(lambda: bot.process() or Trade.get_open_trades(), "an entry", timeout=60)
            (trade,) = Trade.get_open_trades()
            (value,) = telemetry.gauge("trading_portfolio_value_usd")
            bid = float(binance_client(url).fetch_ticker("BTC/USDT")["bid"])
            candles = bot.dataprovider.get_pair_dataframe("BTC/USDT", "1m")
            close = float(candles["close"].iat[-1])
        finally:
            bot.cleanup()
    # freqtrade's own valuation: the wallet it started with, the open trade at the market's bid.
    expected = 1000.0 + trade.amount * bid - trade.stake_amount
    assert value == pytest.approx(expected, abs=0.1), (
        f"valued {value}, freqtrade {expected} (bid {bid}, last candle's close {close})"
    )


def test_a_btc_stake_is_valued_in_usd_with_a_price_freqtrade_holds(
    telemetry: Recorded, exchange_url: str, tmp_path: Path
) -> None:
    # The example strategy, plus BTC/USDT as an informative pair: candles freqtrade fetches
    # anyway each candle, which give the instrumentation its USD price of BTC.
    source = (EXAMPLE / "strategies/quick_turns.py").read_text()
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "quick_turns_btc.py").write_text(
        source.replace("class QuickTurns(", "class QuickTurnsBtc(")
        + "\n    def informative_pairs(self) -> list[tuple[str, str]]:"
        + '\n        return [("BTC/USDT", "1m")]\n'
    )
    bot = freqtrade_bot(
        exchange_url,
        tmp_path,
        strategy="QuickTurnsBtc",
        strategy_path=strategies,
        stake_currency="BTC",
        stake_amount=0.01,
        dry_run_wallet=0.1,
        exchange={"pair_whitelist": ["ETH/BTC", "SOL/BTC"]},
    )
    try:
        wait_until(
            lambda: bot.process() or any(o.status == "closed" for o in orders()),
            "a BTC-staked entry filled",
            timeout=120,
            interval=0.5,
        )
        bot.process()
        (value,) = telemetry.gauge("trading_portfolio_value_usd")
        in_btc = float(RPC(bot)._rpc_balance("BTC", "")["total"])
        # The BTC/USDT price freqtrade holds (its informative candles, fetched once a candle)
        # and the market's now, which has walked on since.
        candles = bot.dataprovider.get_pair_dataframe("BTC/USDT", "1m")
        held_price = float(candles["close"].iat[-1])
        market = float(binance_client(exchange_url).fetch_ticker("BTC/USDT")["last"])
    finally:
        bot.cleanup()
    assert 0.09 < in_btc < 0.11
    # freqtrade's own balance in BTC (valued with its tickers), at the price it holds.
    assert value == pytest.approx(in_btc * held_price, rel=0.002)
    assert held_price == pytest.approx(market, rel=0.05)
    (held,) = telemetry.gauge("trading_open_positions")
    assert held >= 1


def test_a_btc_stake_without_a_usd_price_in_memory_waits_with_one_warning(
    telemetry: Recorded, exchange_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No BTC/USDT in freqtrade's memory (the plain example strategy, no pairlist fetching
    tickers): no exchange call is made to price BTC, and no portfolio value is published in BTC
    under a USD name; one warning says why."""
    bot = freqtrade_bot(
        exchange_url,
        tmp_path,
        stake_currency="BTC",
        stake_amount=0.01,
        dry_run_wallet=0.1,
        exchange={"pair_whitelist": ["ETH/BTC", "SOL/BTC"]},
    )
    try:
        with caplog.at_level(logging.WARNING, logger="tbmon.instrumentation.freqtrade"):
            for _ in range(3):
                bot.process()
    finally:
        bot.cleanup()
    assert telemetry.gauge("trading_portfolio_value_usd") == []
    warnings = [r.getMessage() for r in caplog.records if "no USD price" in r.getMessage()]
    assert len(warnings) == 1
    assert "BTC/USDT" in warnings[0]
