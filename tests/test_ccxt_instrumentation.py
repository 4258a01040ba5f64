"""The ccxt instrumentation with real ccxt (sync and async) against the local Binance stand-in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support
import pytest
import wrapt
from ccxt.async_support.base.exchange import BaseExchange as AsyncBaseExchange
from ccxt.base.exchange import BaseExchange
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from tbmon import analytics
from tbmon.instrumentation._internal import ccxt_book
from tbmon.instrumentation.ccxt import METHODS, CcxtInstrumentor, expected_price
from tbmon.instrumentation.instruments import API_REQUEST_DURATION
from tbmon.instrumentation.settings import InstrumentationSettings
from tbmon.instrumentation.trading import TradingMetrics
from tbmon.standins.exchange import (
    ExchangeServerClient,
    async_binance_client,
    binance_client,
    running,
)


@dataclass
class Recorded:
    """What the instrumentation recorded through real SDK providers."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer: Tracer
    trading: TradingMetrics

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def only_span(self) -> ReadableSpan:
        (span,) = self.finished()
        return span

    def points(self) -> list[HistogramDataPoint]:
        """A collection of ``api_request_duration_seconds``: cumulative counts, and the exemplars
        measured since the previous collection (a collection resets them)."""
        data = self.metrics.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == API_REQUEST_DURATION
            for point in metric.data.data_points
            if isinstance(point, HistogramDataPoint)
        ]

    def counts(self) -> dict[tuple[str, str], int]:
        return _calls(self.points())


def _labels(point: HistogramDataPoint) -> dict[str, Any]:
    return dict(point.attributes or {})


def _calls(points: list[HistogramDataPoint]) -> dict[tuple[str, str], int]:
    """Calls per (endpoint, status)."""
    calls = {}
    for point in points:
        labels = _labels(point)
        calls[str(labels["endpoint"]), str(labels["status"])] = point.count
    return calls


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with running() as url:
        yield url


@pytest.fixture
def port(server_url: str) -> int:
    port = urlsplit(server_url).port
    assert port is not None
    return port


@pytest.fixture
def control(server_url: str) -> Iterator[ExchangeServerClient]:
    client = ExchangeServerClient(server_url)
    client.reset()
    client.set_market(volatility=0.0)
    client.set_prices(BTCUSDT=64000.0, ETHUSDT=3200.0, SOLUSDT=150.0)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def exchange(server_url: str, control: ExchangeServerClient) -> Any:
    """A sync client that loaded its markets before the instrumentation started."""
    client = binance_client(server_url, timeout=5000)
    client.load_markets()
    return client


@pytest.fixture
def telemetry(exchange: Any) -> Iterator[Recorded]:
    """The instrumentation on real SDK providers, for one test."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    trading = TradingMetrics(meter_provider, InstrumentationSettings(TBMON_STRATEGY="plain"))
    instrumentor = CcxtInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider, trading_metrics=trading
    )
    try:
        yield Recorded(spans, reader, tracer_provider.get_tracer("test"), trading)
    finally:
        if instrumentor.is_instrumented_by_opentelemetry:  # a test may have uninstrumented
            instrumentor.uninstrument()
        meter_provider.shutdown()
        tracer_provider.shutdown()


def _http(port: int, method: str, path: str) -> dict[str, Any]:
    return {
        "server.address": "127.0.0.1",
        "server.port": port,
        "http.request.method": method,
        "url.path": path,
    }


def _fill_price(order: dict[str, Any]) -> float:
    return float(order["cummulativeQuoteQty"]) / float(order["executedQty"])


@pytest.mark.parametrize(
    ("method", "call", "symbol", "path"),
    [
        ("fetch_ticker", lambda ex: ex.fetch_ticker("BTC/USDT"), "BTC/USDT", "ticker/24hr"),
        (
            "fetch_tickers",
            lambda ex: ex.fetch_tickers(["BTC/USDT", "ETH/USDT"]),
            None,
            "ticker/24hr",
        ),
        ("fetch_order_book", lambda ex: ex.fetch_order_book("ETH/USDT", 5), "ETH/USDT", "depth"),
        ("fetch_ohlcv", lambda ex: ex.fetch_ohlcv("SOL/USDT", "1m", limit=3), "SOL/USDT", "klines"),
        ("fetch_trades", lambda ex: ex.fetch_trades("BTC/USDT", limit=3), "BTC/USDT", "aggTrades"),
        ("fetch_balance", lambda ex: ex.fetch_balance(), None, "account"),
        (
            "fetch_open_orders",
            lambda ex: ex.fetch_open_orders("BTC/USDT"),
            "BTC/USDT",
            "openOrders",
        ),
        ("fetch_orders", lambda ex: ex.fetch_orders("ETH/USDT"), "ETH/USDT", "allOrders"),
        ("fetch_my_trades", lambda ex: ex.fetch_my_trades("SOL/USDT"), "SOL/USDT", "myTrades"),
        ("load_markets", lambda ex: ex.load_markets(reload=True), None, "exchangeInfo"),
    ],
)
def test_each_method_gets_one_client_span(
    exchange: Any,
    telemetry: Recorded,
    port: int,
    method: str,
    call: Callable[[Any], Any],
    symbol: str | None,
    path: str,
) -> None:
    call(exchange)
    span = telemetry.only_span()
    assert (span.name, span.kind, span.status.status_code) == (
        method,
        SpanKind.CLIENT,
        StatusCode.UNSET,
    )
    expected = {"exchange": "binance", **_http(port, "GET", f"/api/v3/{path}")}
    if symbol is not None:
        expected["symbol"] = symbol
    assert dict(span.attributes or {}) == expected
    assert telemetry.counts() == {(method, "ok"): 1}


def test_market_order_span_carries_the_fill_and_the_expected_price(
    exchange: Any, telemetry: Recorded, control: ExchangeServerClient, port: int
) -> None:
    with expected_price(63990.0):
        exchange.create_order("BTC/USDT", "market", "buy", 0.01)
    (placed,) = control.orders()
    span = telemetry.only_span()
    assert span.name == "create_order"
    assert dict(span.attributes or {}) == {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "side": "buy",
        "order.type": "market",
        "order.amount": 0.01,
        "order.expected_price": 63990.0,
        "order.id": str(placed["orderId"]),
        "order.status": "closed",
        "order.filled": 0.01,
        "order.average_price": pytest.approx(_fill_price(placed)),
        **_http(port, "POST", "/api/v3/order"),
    }


def test_limit_order_span_has_the_limit_price_and_no_expected_price(
    exchange: Any, telemetry: Recorded
) -> None:
    exchange.create_order("ETH/USDT", "limit", "sell", 0.5, 4000)
    attributes = dict(telemetry.only_span().attributes or {})
    assert (attributes["order.price"], attributes["order.status"]) == (4000.0, "open")
    assert "order.expected_price" not in attributes
    assert "order.average_price" not in attributes  # nothing filled yet


@pytest.mark.parametrize(
    ("method", "http_method", "status"),
    [("fetch_order", "GET", "open"), ("cancel_order", "DELETE", "canceled")],
)
def test_calls_by_order_id_take_the_order_from_the_result(
    exchange: Any, telemetry: Recorded, port: int, method: str, http_method: str, status: str
) -> None:
    order = exchange.create_limit_buy_order("BTC/USDT", 0.01, 60000)
    telemetry.spans.clear()
    getattr(exchange, method)(order["id"], "BTC/USDT")
    span = telemetry.only_span()
    assert span.name == method
    assert dict(span.attributes or {}) == {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "order.id": order["id"],
        "side": "buy",
        "order.type": "limit",
        "order.status": status,
        "order.filled": 0.0,
        **_http(port, http_method, "/api/v3/order"),
    }


def _assert_error_span(span: ReadableSpan, error: BaseException) -> None:
    name = type(error).__name__
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == str(error)
    assert span.attributes is not None
    assert span.attributes["error.type"] == name
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == f"{type(error).__module__}.{name}"
    assert event.attributes["exception.message"] == str(error)


@pytest.mark.parametrize(
    ("method", "call", "error"),
    [
        (
            "create_order",
            lambda ex: ex.create_order("BTC/USDT", "market", "buy", 5),
            ccxt.InsufficientFunds,
        ),
        ("fetch_order", lambda ex: ex.fetch_order("42", "BTC/USDT"), ccxt.OrderNotFound),
        ("cancel_order", lambda ex: ex.cancel_order("42", "BTC/USDT"), ccxt.OrderNotFound),
        ("fetch_positions", lambda ex: ex.fetch_positions(), ccxt.ExchangeNotAvailable),
    ],
    ids=["insufficient-funds", "unknown-order", "unknown-cancel", "not-served"],
)
def test_exchange_errors_give_error_spans_and_reach_the_caller(
    exchange: Any,
    telemetry: Recorded,
    method: str,
    call: Callable[[Any], Any],
    error: type[ccxt.BaseError],
) -> None:
    with pytest.raises(error) as raised:
        call(exchange)
    assert type(raised.value) is error
    assert str(raised.value).startswith("binance ")  # ccxt's own message, untouched
    span = telemetry.only_span()
    assert span.name == method
    _assert_error_span(span, raised.value)
    assert telemetry.counts() == {(method, error.__name__): 1}


def test_a_timeout_is_recorded_as_request_timeout(
    server_url: str, exchange: Any, control: ExchangeServerClient, telemetry: Recorded
) -> None:
    impatient = binance_client(server_url, timeout=300)
    impatient.markets = exchange.markets
    impatient.markets_by_id = exchange.markets_by_id
    control.fault(error="hang", endpoints=["ticker/24hr"])
    with pytest.raises(ccxt.RequestTimeout) as raised:
        impatient.fetch_ticker("BTC/USDT")
    span = telemetry.only_span()
    _assert_error_span(span, raised.value)
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.end_time - span.start_time >= 300_000_000
    (point,) = telemetry.points()
    assert _labels(point) == {
        "exchange": "binance",
        "endpoint": "fetch_ticker",
        "status": "RequestTimeout",
    }
    assert point.sum >= 0.3


def test_duration_points_are_low_cardinality_with_exemplars_of_their_spans(
    exchange: Any, telemetry: Recorded
) -> None:
    exchange.fetch_ticker("BTC/USDT")
    exchange.create_order("SOL/USDT", "market", "sell", 1)
    with pytest.raises(ccxt.OrderNotFound):
        exchange.fetch_order("42", "SOL/USDT")
    spans = {span.name: span for span in telemetry.finished()}
    points = telemetry.points()  # one collection: the exemplars come with it
    assert _calls(points) == {
        ("fetch_ticker", "ok"): 1,
        ("create_order", "ok"): 1,
        ("fetch_order", "OrderNotFound"): 1,
    }
    for point in points:
        labels = _labels(point)
        assert set(labels) == {"exchange", "endpoint", "status"}
        assert labels["exchange"] == "binance"
        context = spans[labels["endpoint"]].context
        (exemplar,) = point.exemplars
        assert (exemplar.trace_id, exemplar.span_id) == (context.trace_id, context.span_id)


def test_uninstrument_restores_ccxt(server_url: str, exchange: Any, telemetry: Recorded) -> None:
    exchange.fetchTicker("BTC/USDT")
    assert [span.name for span in telemetry.finished()] == ["fetch_ticker"]
    CcxtInstrumentor().uninstrument()
    exchange.fetch_ticker("BTC/USDT")
    exchange.fetchTicker("BTC/USDT")
    binance_client(server_url).fetch_ticker("BTC/USDT")
    assert [span.name for span in telemetry.finished()] == ["fetch_ticker"]
    assert telemetry.counts() == {("fetch_ticker", "ok"): 1}
    for cls in (BaseExchange, AsyncBaseExchange, ccxt.binance, ccxt.async_support.binance):
        own = METHODS.keys() & vars(cls).keys()
        assert own
        assert not any(isinstance(vars(cls)[name], wrapt.ObjectProxy) for name in own)
    assert vars(ccxt.binance)["fetchTicker"] is vars(ccxt.binance)["fetch_ticker"]


def test_convenience_methods_give_one_create_order_span(exchange: Any, telemetry: Recorded) -> None:
    exchange.create_limit_buy_order("BTC/USDT", 0.01, 60000)
    exchange.create_market_sell_order("SOL/USDT", 1)
    spans = telemetry.finished()
    assert [span.name for span in spans] == ["create_order", "create_order"]
    limit, market = (dict(span.attributes or {}) for span in spans)
    assert (limit["side"], limit["order.type"], limit["order.price"]) == ("buy", "limit", 60000.0)
    assert (market["side"], market["order.type"], market["order.amount"]) == ("sell", "market", 1)
    assert telemetry.counts() == {("create_order", "ok"): 2}


def test_an_implicit_load_markets_belongs_to_the_outer_call(
    server_url: str, control: ExchangeServerClient, telemetry: Recorded, port: int
) -> None:
    fresh = binance_client(server_url)
    fresh.fetch_balance()  # loads the markets first
    assert [r["path"] for r in control.requests()][-2:] == ["exchangeInfo", "account"]
    span = telemetry.only_span()
    assert span.name == "fetch_balance"
    assert dict(span.attributes or {}) == {
        "exchange": "binance",
        **_http(port, "GET", "/api/v3/account"),
    }
    assert telemetry.counts() == {("fetch_balance", "ok"): 1}


def test_the_camel_case_alias_is_traced_once(exchange: Any, telemetry: Recorded) -> None:
    exchange.fetchOrderBook("BTC/USDT", 5)
    assert telemetry.only_span().name == "fetch_order_book"


def test_spans_are_children_of_the_bots_span(exchange: Any, telemetry: Recorded) -> None:
    with telemetry.tracer.start_as_current_span("decide") as decide:
        exchange.fetch_ticker("BTC/USDT")
    call = next(span for span in telemetry.finished() if span.name == "fetch_ticker")
    assert call.parent is not None
    assert call.parent.span_id == decide.get_span_context().span_id
    assert call.context.trace_id == decide.get_span_context().trace_id


def test_suppressed_instrumentation_records_nothing(exchange: Any, telemetry: Recorded) -> None:
    with suppress_instrumentation():
        exchange.fetch_ticker("BTC/USDT")
    assert telemetry.finished() == []
    assert telemetry.points() == []


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no name for this exchange")


def test_a_failure_of_the_instrumentation_leaves_the_call_alone(
    exchange: Any, telemetry: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    exchange.id = _Unprintable()
    with caplog.at_level(logging.DEBUG, logger="tbmon.instrumentation.ccxt"):
        first = exchange.fetch_ticker("BTC/USDT")
        second = exchange.fetch_ticker("ETH/USDT")
    assert (first["symbol"], second["symbol"]) == ("BTC/USDT", "ETH/USDT")
    assert telemetry.finished() == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "starting the span of fetch_ticker" in errors[0].getMessage()


def test_the_async_client_is_traced_under_asyncio(
    server_url: str, control: ExchangeServerClient, telemetry: Recorded, port: int
) -> None:
    async def trade() -> None:
        client = async_binance_client(server_url)
        try:

            async def buy() -> Any:
                with expected_price(3200.0):
                    return await client.create_order("ETH/USDT", "market", "buy", 0.1)

            await asyncio.gather(client.fetch_ticker("BTC/USDT"), client.fetch_balance(), buy())
            with pytest.raises(ccxt.OrderNotFound) as raised:
                await client.fetch_order("42", "ETH/USDT")
            _assert_error_span(telemetry.finished()[-1], raised.value)
        finally:
            await client.close()

    asyncio.run(trade())
    spans = {span.name: span for span in telemetry.finished()}
    assert set(spans) == {"fetch_ticker", "fetch_balance", "create_order", "fetch_order"}
    assert len({span.context.trace_id for span in spans.values()}) == 4  # concurrent, unrelated
    assert all(span.parent is None for span in spans.values())
    assert spans["fetch_ticker"].attributes == {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        **_http(port, "GET", "/api/v3/ticker/24hr"),
    }
    order = dict(spans["create_order"].attributes or {})
    (placed,) = control.orders()
    assert order["order.expected_price"] == 3200.0
    assert order["order.id"] == str(placed["orderId"])
    assert order["order.average_price"] == pytest.approx(_fill_price(placed))
    assert telemetry.counts() == {
        ("fetch_ticker", "ok"): 1,
        ("fetch_balance", "ok"): 1,
        ("create_order", "ok"): 1,
        ("fetch_order", "OrderNotFound"): 1,
    }


# -- trading facts from the answers: orders, portfolio, positions ------------------------------


def _trading(telemetry: Recorded) -> dict[str, dict[frozenset[tuple[str, Any]], float]]:
    """One collection of the trading metrics: metric name -> labels -> value."""
    data = telemetry.metrics.get_metrics_data()
    found: dict[str, dict[frozenset[tuple[str, Any]], float]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    if isinstance(point, NumberDataPoint):
                        labels = frozenset((point.attributes or {}).items())
                        found.setdefault(metric.name, {})[labels] = float(point.value)
    return found


def _orders(telemetry: Recorded) -> dict[tuple[str, str, str], float]:
    """``trading_orders`` by (symbol, side, status), checking the other labels."""
    counts = {}
    for labels, value in _trading(telemetry).get("trading_orders", {}).items():
        named = dict(labels)
        assert (named["strategy"], named["exchange"]) == ("plain", "binance")
        counts[named["symbol"], named["side"], named["status"]] = value
    return counts


def test_order_outcomes_come_from_create_orders_answers_and_exceptions(
    exchange: Any, control: ExchangeServerClient, telemetry: Recorded
) -> None:
    exchange.create_order("BTC/USDT", "market", "buy", 0.01)
    exchange.create_market_sell_order("SOL/USDT", 1)
    with pytest.raises(ccxt.InsufficientFunds):  # refused: more BTC than the account holds
        exchange.create_order("BTC/USDT", "market", "sell", 50)
    control.fault(endpoints=["order"], methods=["POST"], error="internal_error")
    with pytest.raises(ccxt.OperationFailed):  # the exchange failed
        exchange.create_order("ETH/USDT", "market", "buy", 0.1)
    control.clear_faults()
    with pytest.raises(ccxt.InvalidOrder):  # checked by ccxt itself, never sent
        exchange.create_order("ETH/USDT", "market", "buy", 0.0000001)
    assert _orders(telemetry) == {
        ("BTC/USDT", "buy", "filled"): 1,
        ("SOL/USDT", "sell", "filled"): 1,
        ("BTC/USDT", "sell", "failed"): 1,
        ("ETH/USDT", "buy", "failed"): 2,
    }
    assert _orders(telemetry)[("ETH/USDT", "buy", "failed")] == 2  # counted once each


def test_a_resting_order_is_counted_once_when_an_answer_shows_its_end(
    exchange: Any, control: ExchangeServerClient, telemetry: Recorded
) -> None:
    filled = exchange.create_limit_buy_order("BTC/USDT", 0.01, 63_000)
    canceled = exchange.create_limit_buy_order("ETH/USDT", 0.1, 3_100)
    waiting = exchange.create_limit_sell_order("SOL/USDT", 1, 160)
    assert _orders(telemetry) == {}  # resting: no outcome yet
    exchange.fetch_order(filled["id"], "BTC/USDT")  # still open
    control.set_prices(BTCUSDT=62_900.0)  # the market crosses the limit
    exchange.cancel_order(canceled["id"], "ETH/USDT")
    assert exchange.fetch_order(filled["id"], "BTC/USDT")["status"] == "closed"
    exchange.fetch_orders("BTC/USDT")  # the fill again: not counted twice
    exchange.fetch_open_orders("SOL/USDT")
    assert _orders(telemetry) == {
        ("BTC/USDT", "buy", "filled"): 1,
        ("ETH/USDT", "buy", "canceled"): 1,
    }
    assert waiting["status"] == "open"


def test_an_order_count_has_the_exemplar_of_its_create_order_span(
    exchange: Any, telemetry: Recorded
) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.create_order("BTC/USDT", "market", "sell", 50)
    span = telemetry.only_span()
    data = telemetry.metrics.get_metrics_data()
    assert data is not None
    (point,) = [
        point
        for scope in data.resource_metrics[0].scope_metrics
        for metric in scope.metrics
        if metric.name == "trading_orders"
        for point in metric.data.data_points
    ]
    (exemplar,) = point.exemplars
    assert (exemplar.trace_id, exemplar.span_id) == (span.context.trace_id, span.context.span_id)


def test_the_bots_own_order_count_wins_and_nothing_is_counted_twice(
    exchange: Any, telemetry: Recorded
) -> None:
    order = exchange.create_order("BTC/USDT", "market", "buy", 0.01)
    # As the demo bot did: its own count right after the call, before any collection.
    assert order["status"] == "closed"
    telemetry.trading.record_order(symbol="BTC/USDT", side="buy", status="done", exchange="binance")
    exchange.create_order("BTC/USDT", "market", "buy", 0.01)  # no longer derived
    assert _orders(telemetry) == {("BTC/USDT", "buy", "done"): 1}


def test_portfolio_and_positions_come_from_the_balance_valued_at_the_answers_prices(
    server_url: str, exchange: Any, control: ExchangeServerClient, telemetry: Recorded
) -> None:
    control.set_balances(USDT=10_000.0, BTC=0.5, ETH=2.0, SOL=0.01)  # SOL: $1.50 is dust
    balance = exchange.fetch_balance()
    assert "trading_portfolio_value_usd" not in _trading(telemetry)  # no price yet: held back
    tickers = exchange.fetch_tickers(["BTC/USDT", "ETH/USDT"])
    book = exchange.fetch_order_book("SOL/USDT", 5)
    sol = (book["bids"][0][0] + book["asks"][0][0]) / 2
    btc, eth = (float(tickers[s]["last"]) for s in ("BTC/USDT", "ETH/USDT"))
    total = balance["total"]
    expected = total["USDT"] + total["BTC"] * btc + total["ETH"] * eth + total["SOL"] * sol
    strategy = frozenset({("strategy", "plain")})
    gauges = {
        name: points[strategy] for name, points in _trading(telemetry).items() if strategy in points
    }
    assert gauges["trading_portfolio_value_usd"] == pytest.approx(expected, rel=1e-12)
    assert gauges["trading_open_positions"] == 2
    gross = total["BTC"] * btc + total["ETH"] * eth
    assert gauges["risk_leverage_ratio"] == pytest.approx(gross / expected, rel=1e-12)
    assert gauges["risk_position_concentration"] == pytest.approx(
        analytics.position_concentration([total["BTC"] * btc, total["ETH"] * eth]), rel=1e-12
    )
    # An order fills: the next balance and price are valued, with no call of ours.
    exchange.create_order("ETH/USDT", "market", "sell", 2)
    requests = len(control.requests())
    after = exchange.fetch_balance()["total"]
    candles = exchange.fetch_ohlcv("BTC/USDT", "1m", limit=2)
    assert len(control.requests()) == requests + 2  # the bot's two calls, nothing more
    value = _trading(telemetry)["trading_portfolio_value_usd"][strategy]
    assert after.get("ETH", 0.0) == 0.0
    assert value == pytest.approx(
        after["USDT"] + after["BTC"] * candles[-1][4] + after["SOL"] * sol, rel=1e-12
    )
    assert _trading(telemetry)["trading_open_positions"][strategy] == 1


def test_a_currency_never_priced_is_left_out_after_the_grace_with_one_warning(
    exchange: Any,
    control: ExchangeServerClient,
    telemetry: Recorded,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(ccxt_book, "PRICE_GRACE_SECONDS", 0.0)
    control.set_balances(USDT=1_000.0, BTC=0.0, ETH=0.0, SOL=0.0, BNB=3.0)
    for _ in range(3):
        exchange.fetch_balance()
    strategy = frozenset({("strategy", "plain")})
    assert _trading(telemetry)["trading_portfolio_value_usd"][strategy] == 1_000.0
    warnings = [r.getMessage() for r in caplog.records if "leaves out" in r.getMessage()]
    assert len(warnings) == 1
    assert "BNB" in warnings[0]


def test_the_bots_own_portfolio_value_replaces_the_derived_one(
    exchange: Any, telemetry: Recorded
) -> None:
    exchange.fetch_balance()
    exchange.fetch_tickers()
    strategy = frozenset({("strategy", "plain")})
    assert _trading(telemetry)["trading_portfolio_value_usd"][strategy] > 100_000
    telemetry.trading.record_portfolio_value(42.0)
    telemetry.trading.set_positions({"XRP/USDT": 5.0})
    exchange.fetch_balance()
    exchange.fetch_tickers()
    gauges = _trading(telemetry)
    assert gauges["trading_portfolio_value_usd"][strategy] == 42.0
    assert gauges["trading_open_positions"][strategy] == 1


def test_the_async_client_derives_the_same_facts(
    server_url: str, control: ExchangeServerClient, telemetry: Recorded
) -> None:
    control.set_balances(USDT=5_000.0, BTC=0.0, ETH=0.0, SOL=10.0)

    async def trade() -> dict[str, Any]:
        client = async_binance_client(server_url)
        try:
            await client.create_order("SOL/USDT", "market", "sell", 5)
            balance: dict[str, Any] = await client.fetch_balance()
            await client.fetch_ticker("SOL/USDT")
            return balance
        finally:
            await client.close()

    total = asyncio.run(trade())["total"]
    strategy = frozenset({("strategy", "plain")})
    gauges = _trading(telemetry)
    assert gauges["trading_portfolio_value_usd"][strategy] == pytest.approx(
        total["USDT"] + total["SOL"] * 150.0, rel=1e-3
    )
    assert _orders(telemetry) == {("SOL/USDT", "sell", "filled"): 1}


def test_the_instrumentor_is_an_opentelemetry_entry_point() -> None:
    (entry,) = entry_points(group="opentelemetry_instrumentor", name="ccxt")
    assert entry.load() is CcxtInstrumentor
    assert CcxtInstrumentor().instrumentation_dependencies() == ("ccxt >= 4.0",)


def test_a_framework_claims_the_facts_it_reports_before_any_order(
    exchange: Any, telemetry: Recorded
) -> None:
    telemetry.trading.claim("orders", "portfolio")
    exchange.create_order("BTC/USDT", "market", "buy", 0.01)
    exchange.fetch_balance()
    exchange.fetch_tickers()
    gauges = _trading(telemetry)
    assert "trading_orders" not in gauges
    assert "trading_portfolio_value_usd" not in gauges
    assert gauges["trading_open_positions"][frozenset({("strategy", "plain")})] == 3
    with pytest.raises(ValueError, match="unknown facts"):
        telemetry.trading.claim("trades")
