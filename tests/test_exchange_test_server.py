"""The exchange test server, through real ccxt: Binance's wire format, checks, market and faults."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import ccxt
import httpx
import pytest
from support import wait_until

from tbmon.standins.exchange import (
    ExchangeServerClient,
    binance_client,
    running,
)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with running() as url:
        yield url


@pytest.fixture
def control(server_url: str) -> Iterator[ExchangeServerClient]:
    client = ExchangeServerClient(server_url)
    client.reset()
    client.set_market(volatility=0.0)  # prices hold still unless a test moves them
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def exchange(server_url: str, control: ExchangeServerClient) -> Any:
    return binance_client(server_url, timeout=5000)


def test_every_ccxt_url_points_at_the_server(server_url: str, exchange: Any) -> None:
    assert all(url.startswith(server_url + "/") for url in exchange.urls["api"].values())
    with pytest.raises(ccxt.ExchangeNotAvailable):  # a futures endpoint: local 404, not Binance
        exchange.fetch_positions()


def test_market_data_parses_in_ccxt(exchange: Any, control: ExchangeServerClient) -> None:
    control.set_prices(BTCUSDT=64000.0)
    markets = exchange.load_markets()
    assert set(markets) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
    assert markets["BTC/USDT"]["precision"]["amount"] == 0.00001
    assert markets["BTC/USDT"]["limits"]["cost"]["min"] == 5.0
    ticker = exchange.fetch_ticker("BTC/USDT")
    assert ticker["bid"] < 64000.0 < ticker["ask"]
    assert ticker["ask"] - ticker["bid"] == pytest.approx(12.8, abs=0.02)  # 2 bps
    assert set(exchange.fetch_tickers(["BTC/USDT", "ETH/USDT"])) == {"BTC/USDT", "ETH/USDT"}
    book = exchange.fetch_order_book("BTC/USDT", 5)
    assert len(book["bids"]) == len(book["asks"]) == 5
    assert book["bids"][0][0] == ticker["bid"]
    assert book["asks"][0][0] == ticker["ask"]
    candles = exchange.fetch_ohlcv("BTC/USDT", "1m", limit=3)
    assert len(candles) == 3
    assert candles[-1][4] == pytest.approx(64000.0, abs=0.01)
    assert len(exchange.fetch_trades("BTC/USDT", limit=4)) == 4


def test_market_order_fills_at_the_touch_with_fees(
    exchange: Any, control: ExchangeServerClient
) -> None:
    control.set_prices(BTCUSDT=64000.0)
    ask = exchange.fetch_ticker("BTC/USDT")["ask"]
    order = exchange.create_order("BTC/USDT", "market", "buy", 0.01)
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.01, ask)
    assert order["fee"] == {"currency": "BTC", "cost": 0.00001}
    balance = exchange.fetch_balance()
    assert balance["BTC"]["free"] == pytest.approx(1.00999)
    assert balance["USDT"]["free"] == pytest.approx(100_000 - 0.01 * ask)
    (placed,) = control.orders()
    assert (placed["orderId"], placed["status"], placed["type"]) == (
        int(order["id"]),
        "FILLED",
        "MARKET",
    )
    assert [trade["order"] for trade in exchange.fetch_my_trades("BTC/USDT")] == [order["id"]]


def test_limit_order_rests_then_fills_when_the_price_crosses(
    exchange: Any, control: ExchangeServerClient
) -> None:
    control.set_prices(ETHUSDT=3200.0)
    order = exchange.create_limit_buy_order("ETH/USDT", 1, 3100)
    assert order["status"] == "open"
    assert exchange.fetch_balance()["USDT"]["used"] == 3100.0
    assert [o["id"] for o in exchange.fetch_open_orders("ETH/USDT")] == [order["id"]]
    control.set_prices(ETHUSDT=3099.0)
    filled = exchange.fetch_order(order["id"], "ETH/USDT")
    assert (filled["status"], filled["average"]) == ("closed", 3100.0)
    assert exchange.fetch_open_orders("ETH/USDT") == []
    assert exchange.fetch_balance()["USDT"]["used"] == 0.0


def test_cancel_releases_the_locked_funds(exchange: Any, control: ExchangeServerClient) -> None:
    order = exchange.create_limit_sell_order("SOL/USDT", 10, 500)
    assert exchange.fetch_balance()["SOL"]["used"] == 10.0
    assert exchange.cancel_order(order["id"], "SOL/USDT")["status"] == "canceled"
    assert exchange.fetch_balance()["SOL"] == {"free": 100.0, "used": 0.0, "total": 100.0}
    assert [o["status"] for o in exchange.fetch_orders("SOL/USDT")] == ["canceled"]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda ex: ex.create_order("BTC/USDT", "market", "buy", 5), ccxt.InsufficientFunds),
        (lambda ex: ex.create_order("BTC/USDT", "market", "sell", 0.00001), ccxt.BadRequest),
        (lambda ex: ex.fetch_order("42", "BTC/USDT"), ccxt.OrderNotFound),
        (lambda ex: ex.cancel_order("42", "BTC/USDT"), ccxt.OrderNotFound),
    ],
    ids=["insufficient-funds", "min-notional", "unknown-order", "unknown-cancel"],
)
def test_business_errors_are_binance_errors(
    exchange: Any, call: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"binance .*"):
        call(exchange)


def test_unknown_parameters_are_refused_as_binance_does(exchange: Any) -> None:
    """Why the expected price is not passed through ccxt's params."""
    with pytest.raises(ccxt.BadRequest, match="-1104"):
        exchange.create_order("BTC/USDT", "market", "buy", 0.01, params={"expected_price": 1})


@pytest.mark.parametrize(
    ("credentials", "code"),
    [({"apiKey": "someone-else"}, "-2015"), ({"secret": "wrong-secret"}, "-1022")],
)
def test_signed_requests_are_authenticated(
    server_url: str, credentials: dict[str, str], code: str
) -> None:
    exchange = binance_client(server_url, **credentials)
    with pytest.raises(ccxt.AuthenticationError, match=code):
        exchange.fetch_balance()


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("insufficient_funds", ccxt.InsufficientFunds),
        ("invalid_order", ccxt.InvalidOrder),
        ("order_not_found", ccxt.OrderNotFound),
        ("rate_limit", ccxt.DDoSProtection),
        ("ip_ban", ccxt.DDoSProtection),
        ("internal_error", ccxt.OperationFailed),
        ("bad_gateway", ccxt.ExchangeNotAvailable),
        ("unavailable", ccxt.ExchangeNotAvailable),
        ("gateway_timeout", ccxt.RequestTimeout),
    ],
)
def test_injected_errors_raise_ccxts_exceptions(
    exchange: Any, control: ExchangeServerClient, kind: str, error: type[Exception]
) -> None:
    exchange.load_markets()
    control.fault(error=kind, endpoints=["order"], methods=["POST"])
    with pytest.raises(error) as raised:
        exchange.create_order("BTC/USDT", "market", "buy", 0.01)
    assert type(raised.value) is error
    exchange.fetch_ticker("BTC/USDT")  # other endpoints are left alone
    assert control.orders() == []


def test_hang_outlasts_the_client_timeout(server_url: str, control: ExchangeServerClient) -> None:
    exchange = binance_client(server_url, timeout=300)
    exchange.load_markets()
    control.fault(error="hang", endpoints=["ticker/24hr"])
    started = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout):
        exchange.fetch_ticker("BTC/USDT")
    assert 0.3 <= time.monotonic() - started < 2


def test_latency_applies_to_the_chosen_endpoints(
    exchange: Any, control: ExchangeServerClient
) -> None:
    exchange.load_markets()
    control.fault(latency=0.4, endpoints=["depth"])
    started = time.monotonic()
    exchange.fetch_order_book("BTC/USDT")
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    exchange.fetch_ticker("BTC/USDT")
    assert time.monotonic() - started < 0.4


def test_error_rate_and_count(exchange: Any, control: ExchangeServerClient) -> None:
    exchange.load_markets()
    control.fault(error="internal_error", endpoints=["ticker/24hr"], error_rate=0.5)
    outcomes = []
    for _ in range(20):
        try:
            exchange.fetch_ticker("BTC/USDT")
            outcomes.append(True)
        except ccxt.OperationFailed:
            outcomes.append(False)
    assert 0 < outcomes.count(False) < 20
    control.clear_faults()
    control.fault(error="unavailable", endpoints=["ticker/24hr"], count=1)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        exchange.fetch_ticker("BTC/USDT")
    exchange.fetch_ticker("BTC/USDT")


def test_slippage_worsens_market_fills(exchange: Any, control: ExchangeServerClient) -> None:
    control.set_prices(BTCUSDT=64000.0)
    ask = exchange.fetch_ticker("BTC/USDT")["ask"]
    control.fault(slippage_bps=50, endpoints=["order"])
    order = exchange.create_order("BTC/USDT", "market", "buy", 0.01)
    assert order["average"] == pytest.approx(ask * 1.005, abs=0.01)


def test_prices_follow_a_random_walk(exchange: Any, control: ExchangeServerClient) -> None:
    control.set_market(volatility=0.001, step_seconds=0.05)
    first = exchange.fetch_ticker("SOL/USDT")["last"]
    wait_until(
        lambda: exchange.fetch_ticker("SOL/USDT")["last"] != first,
        "the SOL/USDT price to move",
        timeout=5,
        interval=0.05,
    )


@pytest.mark.parametrize(("momentum", "trend"), [(0.9, 1), (-0.9, -1)])
def test_momentum_makes_returns_trend_or_revert(
    exchange: Any, control: ExchangeServerClient, momentum: float, trend: int
) -> None:
    control.set_market(volatility=0.01, step_seconds=0.02, momentum=momentum)
    prices = []
    for _ in range(120):
        prices.append(exchange.fetch_ticker("ETH/USDT")["last"])
        time.sleep(0.02)  # the walk steps with time: one or two steps between readings
    returns = [b / a - 1 for a, b in itertools.pairwise(prices)]
    same_sign = sum((x > 0) == (y > 0) for x, y in itertools.pairwise(returns))
    share = same_sign / (len(returns) - 1)
    assert (share - 0.5) * trend > 0.1, share


def test_market_changes_keep_the_other_settings(control: ExchangeServerClient) -> None:
    control.set_market(step_seconds=1.0, momentum=0.5)
    control.set_market(volatility=0.02)
    market = httpx.get(f"{control.base_url}/_control/market").json()
    assert market == {"volatility": 0.02, "step_seconds": 1.0, "spread_bps": 2.0, "momentum": 0.5}


def test_misspelt_control_bodies_are_refused(server_url: str) -> None:
    response = httpx.post(f"{server_url}/_control/faults", json={"order_error_rate": 0.5})
    assert response.status_code == 422


def test_running_stops_the_server_on_failure() -> None:
    ports: list[int | None] = []

    def crash() -> None:
        with running() as url:
            ports.append(urlsplit(url).port)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        crash()
    (port,) = ports
    assert port is not None
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
