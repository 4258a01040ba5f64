"""A local exchange for tests and the demo that answers in Binance spot's REST wire format.

Real ccxt talks to it: :func:`binance_client` (or :func:`async_binance_client`) is a plain
``ccxt.binance`` whose ``urls["api"]`` entries point here, with test API keys, so a bot differs
from production only by its base URL. Requests are checked as Binance checks them: the
``X-MBX-APIKEY`` header, the HMAC-SHA256 signature, the timestamp against ``recvWindow``, no
unknown parameters (``-1104``: a bot that slips its own keys into ccxt's ``params`` fails here as
it would on Binance), the symbols' PRICE_FILTER, LOT_SIZE and NOTIONAL filters, and balances.

Supported ccxt methods (spot): ``load_markets``, ``fetch_time``, ``fetch_ticker``,
``fetch_tickers``, ``fetch_order_book``, ``fetch_ohlcv``, ``fetch_trades``, ``fetch_balance``,
``create_order`` (market and limit, and their ``create_*_order`` shorthands), ``cancel_order``,
``fetch_order``, ``fetch_orders``, ``fetch_open_orders`` and ``fetch_my_trades``. Served under
``/api/v3``: ``ping``, ``time``, ``exchangeInfo``, ``ticker/24hr``, ``ticker/price``,
``ticker/bookTicker``, ``depth``, ``klines``, ``aggTrades``, ``trades``, ``account``, ``order``
(POST, GET, DELETE), ``openOrders``, ``allOrders`` and ``myTrades``. Nothing else is served:
the clients set ccxt's options so that ``load_markets`` reads spot markets only
(``fetchMarkets.types = ["spot"]``, no ``fapi``/``dapi`` exchangeInfo) and neither fetches
currencies (``fetchCurrencies = False``: no ``sapi/v1/capital/config/getall``) nor margin pairs
(``fetchMargins = False``: no ``sapi/v1/margin/allPairs``); every other ccxt API URL still points
here, so a stray call gets a 404 (ccxt: ExchangeNotAvailable), never the real Binance.

The market: BTCUSDT, ETHUSDT and SOLUSDT mid prices follow a seeded geometric random walk that
advances with wall-clock time; quotes are mid ± half the spread. Market orders fill at once at the
touch (with ``fills``); limit orders fill at once when marketable, else rest as ``NEW`` and fill
at their price when the walk crosses it. Fees are 0.1% of the received asset.

The control API under ``/_control``: ``POST /faults`` (a :class:`Fault`: added latency, errors in
Binance's format at a seeded rate, a hang past the client's timeout, adverse slippage on market
fills, for all or some endpoints), ``DELETE /faults``, ``GET /orders`` (every order placed),
``GET /requests``, ``PUT /prices``, ``GET`` and ``PUT /market``, ``PUT /balances``,
``POST /reset``. Errors use codes from ccxt's market-independent table, so they map to the same
ccxt exception as they would from api.binance.com (ccxt looks up its spot-only table by URL): see
:data:`FaultError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import ccxt
import ccxt.async_support
import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from tbmon.standins import ActiveFault, ControlClient, Scheduled, control_router

TEST_API_KEY = "tbmon-test-api-key"
TEST_API_SECRET = "tbmon-test-api-secret"  # noqa: S105 (a public test credential)
DEFAULT_SEED = 42
#: Steps of the walk taken one by one after an idle spell; older ones are one jump.
MAX_SIMULATED_STEPS = 1000
#: ccxt options that keep ``load_markets`` to the endpoints this server answers (see above).
CLIENT_OPTIONS: dict[str, Any] = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
}

#: Injectable errors and what ccxt 4.5's binance raises for them:
#: ``insufficient_funds`` 400 -2010 InsufficientFunds; ``invalid_order`` 400 -1013 LOT_SIZE
#: InvalidOrder; ``order_not_found`` 400 -2013 OrderNotFound; ``rate_limit`` 429 -1003 and
#: ``ip_ban`` 418 -1003 DDoSProtection (binance's handler maps both statuses to it before its
#: subclass RateLimitExceeded could be chosen); ``internal_error`` 500 -1001 OperationFailed;
#: ``bad_gateway`` 502 and ``unavailable`` 503 (HTML pages) ExchangeNotAvailable;
#: ``gateway_timeout`` 504 RequestTimeout; ``hang``: no answer until the client gives up (or
#: ``hang_seconds``), so ccxt's own timeout raises RequestTimeout.
FaultError = Literal[
    "insufficient_funds",
    "invalid_order",
    "order_not_found",
    "rate_limit",
    "ip_ban",
    "internal_error",
    "bad_gateway",
    "unavailable",
    "gateway_timeout",
    "hang",
]

_INSUFFICIENT = "Account has insufficient balance for requested action."
_JSON_ERRORS: dict[str, tuple[int, int, str]] = {
    "insufficient_funds": (400, -2010, _INSUFFICIENT),
    "invalid_order": (400, -1013, "Filter failure: LOT_SIZE"),
    "order_not_found": (400, -2013, "Order does not exist."),
    "rate_limit": (
        429,
        -1003,
        "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. Please "
        "use WebSocket Streams for live updates to avoid polling the API.",
    ),
    "ip_ban": (
        418,
        -1003,
        "Way too many requests; IP(127.0.0.1) banned until {until}. Please use WebSocket "
        "Streams for live updates to avoid bans.",
    ),
    "internal_error": (
        500,
        -1001,
        "Internal error; unable to process your request. Please try again.",
    ),
}
_GATEWAY_ERRORS = {
    "bad_gateway": (502, "Bad Gateway"),
    "unavailable": (503, "Service Temporarily Unavailable"),
    "gateway_timeout": (504, "Gateway Time-out"),
}
_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} "
    "{reason}</h1></center>\r\n<hr><center>CloudFront</center>\r\n</body>\r\n</html>\r\n"
)
_FEE_RATE = Decimal("0.001")
_INTERVALS = {
    "1s": 1,
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
    "3d": 259200,
    "1w": 604800,
}
_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)
_SIGNED = frozenset(("timestamp", "recvWindow", "signature"))


@dataclass(frozen=True)
class Symbol:
    """A spot market and its filters, as exchangeInfo lists it."""

    symbol: str
    base: str
    quote: str
    price: float
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal = Decimal(5)

    def info(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": _fmt(self.tick_size),
                    "maxPrice": "1000000.00000000",
                    "tickSize": _fmt(self.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": _fmt(self.min_qty),
                    "maxQty": "9000.00000000",
                    "stepSize": _fmt(self.step_size),
                },
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0.00000000",
                    "maxQty": "100.00000000",
                    "stepSize": "0.00000000",
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": _fmt(self.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }


SYMBOLS = (
    Symbol(
        "BTCUSDT", "BTC", "USDT", 64000.0, Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001")
    ),
    Symbol("ETHUSDT", "ETH", "USDT", 3200.0, Decimal("0.01"), Decimal("0.0001"), Decimal("0.0001")),
    Symbol("SOLUSDT", "SOL", "USDT", 150.0, Decimal("0.01"), Decimal("0.001"), Decimal("0.001")),
)
DEFAULT_BALANCES = {"USDT": 100_000.0, "BTC": 1.0, "ETH": 10.0, "SOL": 100.0}


class BinanceError(Exception):
    """An error answer in Binance's format: ``{"code": -2010, "msg": "..."}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


class Fault(Scheduled):
    """Injected trouble for the matching requests, while the schedule lasts."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field must not become a no-op fault

    endpoints: list[str] = Field(
        default_factory=list,
        description="Paths under /api/v3 (e.g. 'order', 'ticker/24hr'); empty: all of them.",
    )
    methods: list[str] = Field(default_factory=list, description="HTTP methods; empty: all.")
    latency: float = Field(default=0.0, ge=0, description="Seconds added before answering.")
    error: FaultError | None = None
    error_rate: float = Field(default=1.0, ge=0, le=1, description="Share of requests failed.")
    hang_seconds: float = Field(default=60.0, gt=0, description="How long a hang lasts at most.")
    slippage_bps: float = Field(default=0.0, ge=0, description="Adverse slippage, market fills.")

    def matches(self, method: str, endpoint: str) -> bool:
        if self.endpoints and endpoint not in self.endpoints:
            return False
        return not self.methods or method in (m.upper() for m in self.methods)


class MarketSettings(BaseModel):
    """The random walk: ``volatility`` per square-root second, advanced every ``step_seconds``.

    ``momentum`` is the correlation of one step's log return with the next: above 0 the market
    trends (momentum models are mostly right), below 0 it mean-reverts (they are mostly wrong).
    """

    model_config = ConfigDict(extra="forbid")

    volatility: float = Field(default=0.0002, ge=0)
    step_seconds: float = Field(default=0.25, gt=0)
    spread_bps: float = Field(default=2.0, ge=0)
    momentum: float = Field(default=0.0, gt=-1, lt=1)


@dataclass
class _Effects:
    """What the faults matching one request do to it."""

    latency: float = 0.0
    error: FaultError | None = None
    hang_seconds: float = 0.0
    slippage_bps: float = 0.0


@dataclass
class _Walk:
    """One symbol's mid price: a geometric random walk stepped lazily, on each read."""

    price: float
    rng: random.Random
    origin: float
    steps: int = 0
    last_return: float = 0.0


@dataclass
class _Balance:
    free: Decimal
    locked: Decimal = Decimal(0)


@dataclass
class _Order:
    symbol: Symbol
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time: int
    executed_qty: Decimal = Decimal(0)
    cumulative_quote_qty: Decimal = Decimal(0)
    status: str = "NEW"
    update_time: int = 0
    fills: list[dict[str, Any]] = field(default_factory=list)

    def query(self) -> dict[str, Any]:
        """The order as GET /api/v3/order, openOrders and allOrders show it."""
        return {
            **self._common(),
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": self.time,
            "updateTime": self.update_time or self.time,
            "isWorking": True,
            "workingTime": self.time,
            "origQuoteOrderQty": _fmt(self.orig_quote_qty),
        }

    def placed(self, response_type: str) -> dict[str, Any]:
        """The answer to POST /api/v3/order for ``newOrderRespType`` ACK, RESULT or FULL."""
        ack = {
            "symbol": self.symbol.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "transactTime": self.time,
        }
        if response_type == "ACK":
            return ack
        result = {
            **ack,
            **self._common(),
            "workingTime": self.time,
            "origQuoteOrderQty": _fmt(self.orig_quote_qty),
        }
        if response_type == "FULL":
            result["fills"] = self.fills
        return result

    def canceled(self) -> dict[str, Any]:
        """The answer to DELETE /api/v3/order."""
        return {
            **self._common(),
            "origClientOrderId": self.client_order_id,
            "transactTime": self.update_time,
        }

    def _common(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": _fmt(self.price),
            "origQty": _fmt(self.orig_qty),
            "executedQty": _fmt(self.executed_qty),
            "cummulativeQuoteQty": _fmt(self.cumulative_quote_qty),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


def _fmt(value: Decimal | float) -> str:
    return f"{Decimal(str(value)):.8f}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _decimal(params: dict[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = Decimal(raw)
    except ArithmeticError:
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None
    if not value.is_finite():
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'.")
    return value


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise BinanceError(
            400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


class ExchangeState:
    """One simulated exchange account and market; a fresh server is a fresh exchange."""

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        self.seed = seed
        self.symbols = {spec.symbol: spec for spec in SYMBOLS}
        self.reset()

    def reset(self) -> None:
        now = time.monotonic()
        self.market = MarketSettings()
        self.walks = {
            name: _Walk(spec.price, _rng(f"{self.seed}:{name}"), now)
            for name, spec in self.symbols.items()
        }
        self.fault_rng = _rng(f"{self.seed}:faults")
        self.balances = {asset: _Balance(Decimal(str(v))) for asset, v in DEFAULT_BALANCES.items()}
        self.orders: dict[int, _Order] = {}
        self.trades: list[dict[str, Any]] = []
        self.faults: list[ActiveFault[Fault]] = []
        self.requests: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.order_ids = itertools.count(1_000_001)
        self.trade_ids = itertools.count(5_000_001)

    # -- faults -----------------------------------------------------------------------------------

    def effects(self, method: str, endpoint: str) -> _Effects:
        """Apply the schedule: every matching fault adds its latency and slippage; the first
        whose error fires (at its rate) decides the error."""
        effects = _Effects()
        now = time.monotonic()
        for active in self.faults:
            if not (active.live(now) and active.fault.matches(method, endpoint)):
                continue
            active.used += 1
            spec = active.fault
            effects.latency += spec.latency
            effects.slippage_bps += spec.slippage_bps
            fires = spec.error is not None and self.fault_rng.random() < spec.error_rate
            if fires and effects.error is None:
                effects.error = spec.error
                effects.hang_seconds = spec.hang_seconds
        return effects

    # -- the market -------------------------------------------------------------------------------

    def symbol(self, params: dict[str, str]) -> Symbol:
        spec = self.symbols.get(_required(params, "symbol"))
        if spec is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return spec

    def mid(self, spec: Symbol) -> float:
        """The mid price now; stepping the walk also fills resting limit orders it crosses."""
        walk = self.walks[spec.symbol]
        settings = self.market
        due = int((time.monotonic() - walk.origin) / settings.step_seconds)
        if due > walk.steps:
            missed = due - walk.steps
            # Steps long past are one independent jump; the recent ones are walked one by one,
            # so consecutive returns keep their correlation (momentum).
            simulated = min(missed, MAX_SIMULATED_STEPS)
            step_sigma = settings.volatility * math.sqrt(settings.step_seconds)
            if missed > simulated:
                jump = step_sigma * math.sqrt(missed - simulated) * walk.rng.gauss(0, 1)
                walk.price *= math.exp(jump)
            innovation = step_sigma * math.sqrt(1 - settings.momentum**2)
            for _ in range(simulated):
                walk.last_return = settings.momentum * walk.last_return + innovation * (
                    walk.rng.gauss(0, 1)
                )
                walk.price *= math.exp(walk.last_return)
            walk.steps = due
            self._match(spec)
        return walk.price

    def quote(self, spec: Symbol) -> tuple[Decimal, Decimal]:
        """Best bid and ask, a tick apart at least."""
        mid = self.mid(spec)
        half = mid * self.market.spread_bps / 2e4
        bid = _to_tick(Decimal(str(mid - half)), spec.tick_size, ROUND_DOWN)
        ask = max(
            _to_tick(Decimal(str(mid + half)), spec.tick_size, ROUND_UP), bid + spec.tick_size
        )
        return bid, ask

    def set_price(self, spec: Symbol, price: float) -> None:
        walk = self.walks[spec.symbol]
        walk.price = price
        self._match(spec)

    def ticker(self, spec: Symbol) -> dict[str, Any]:
        bid, ask = self.quote(spec)
        last = (bid + ask) / 2
        walk = self.walks[spec.symbol]
        day = _rng(f"{self.seed}:{spec.symbol}:day:{_now_ms() // 86_400_000}")
        open_price = last * Decimal(str(math.exp(day.gauss(0, 0.02))))
        high = max(open_price, last) * Decimal("1.01")
        low = min(open_price, last) * Decimal("0.99")
        volume = Decimal(str(round(day.uniform(1e6, 5e6) / spec.price, 5)))
        now = _now_ms()
        return {
            "symbol": spec.symbol,
            "priceChange": _fmt(last - open_price),
            "priceChangePercent": f"{(last - open_price) / open_price * 100:.3f}",
            "weightedAvgPrice": _fmt((high + low + last) / 3),
            "prevClosePrice": _fmt(open_price),
            "lastPrice": _fmt(last),
            "lastQty": _fmt(spec.min_qty * 10),
            "bidPrice": _fmt(bid),
            "bidQty": _fmt(spec.min_qty * 1000),
            "askPrice": _fmt(ask),
            "askQty": _fmt(spec.min_qty * 1000),
            "openPrice": _fmt(open_price),
            "highPrice": _fmt(high),
            "lowPrice": _fmt(low),
            "volume": _fmt(volume),
            "quoteVolume": _fmt(volume * last),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 1,
            "lastId": walk.steps + 1,
            "count": walk.steps + 1,
        }

    def depth(self, spec: Symbol, limit: int) -> dict[str, Any]:
        bid, ask = self.quote(spec)
        walk = self.walks[spec.symbol]
        rng = _rng(f"{self.seed}:{spec.symbol}:depth:{walk.steps}")
        gap = max(spec.tick_size, _to_tick(ask * Decimal("0.00005"), spec.tick_size, ROUND_DOWN))

        def levels(start: Decimal, direction: int) -> list[list[str]]:
            return [
                [
                    _fmt(start + direction * gap * i),
                    _fmt(spec.min_qty * Decimal(rng.randint(10, 5000))),
                ]
                for i in range(limit)
            ]

        return {"lastUpdateId": walk.steps + 1, "bids": levels(bid, -1), "asks": levels(ask, 1)}

    def klines(self, spec: Symbol, interval: str, limit: int) -> list[list[Any]]:
        """Candles ending with the current one, derived backwards from the current price (each
        candle's return is seeded by its open time, so history is stable between calls)."""
        seconds = _INTERVALS.get(interval)
        if seconds is None:
            raise BinanceError(400, -1120, "Invalid interval.")
        step = seconds * 1000
        last_open = _now_ms() // step * step
        close = self.mid(spec)
        candles = []
        for index in range(limit):
            open_time = last_open - index * step
            rng = _rng(f"{self.seed}:{spec.symbol}:{interval}:{open_time}")
            open_price = close / math.exp(rng.gauss(0, self.market.volatility * math.sqrt(seconds)))
            high = max(open_price, close) * (1 + abs(rng.gauss(0, 0.0005)))
            low = min(open_price, close) * (1 - abs(rng.gauss(0, 0.0005)))
            volume = rng.uniform(1e4, 1e5) / spec.price * seconds / 60
            candles.append(
                [
                    open_time,
                    _fmt(round(open_price, 2)),
                    _fmt(round(high, 2)),
                    _fmt(round(low, 2)),
                    _fmt(round(close, 2)),
                    _fmt(round(volume, 5)),
                    open_time + step - 1,
                    _fmt(round(volume * close, 2)),
                    rng.randint(100, 5000),
                    _fmt(round(volume / 2, 5)),
                    _fmt(round(volume * close / 2, 2)),
                    "0",
                ]
            )
            close = open_price
        candles.reverse()
        return candles

    def market_trades(self, spec: Symbol, limit: int) -> list[dict[str, Any]]:
        """Recent public trades around the touch (aggTrades' short keys)."""
        bid, ask = self.quote(spec)
        walk = self.walks[spec.symbol]
        rng = _rng(f"{self.seed}:{spec.symbol}:trades:{walk.steps}")
        now = _now_ms()
        first = walk.steps * 10
        trades = []
        for index in range(limit):
            maker_buys = rng.random() < 0.5
            trades.append(
                {
                    "a": first + index,
                    "p": _fmt(bid if maker_buys else ask),
                    "q": _fmt(spec.min_qty * rng.randint(1, 500)),
                    "f": first + index,
                    "l": first + index,
                    "T": now - (limit - index) * 100,
                    "m": maker_buys,
                    "M": True,
                }
            )
        return trades

    # -- the account ------------------------------------------------------------------------------

    def balance(self, asset: str) -> _Balance:
        return self.balances.setdefault(asset, _Balance(Decimal(0)))

    def account(self, omit_zero: bool) -> dict[str, Any]:
        for spec in self.symbols.values():
            self.mid(spec)  # fills resting orders the market has crossed
        balances = [
            {"asset": asset, "free": _fmt(b.free), "locked": _fmt(b.locked)}
            for asset, b in sorted(self.balances.items())
            if not omit_zero or b.free or b.locked
        ]
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": "0.00100000",
                "taker": "0.00100000",
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": _now_ms(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": 354937868,
        }

    def place(self, params: dict[str, str], slippage_bps: float) -> _Order:
        """Validate and book a new order (MARKET or LIMIT), filling it if marketable."""
        spec = self.symbol(params)
        side, kind, price, time_in_force = _order_terms(spec, params)
        bid, ask = self.quote(spec)
        marketable = kind == "MARKET" or (price >= ask if side == "BUY" else price <= bid)
        fill_price = price
        if marketable:
            fill_price = ask if side == "BUY" else bid
            if kind == "MARKET" and slippage_bps:
                worse = Decimal(str(1 + (slippage_bps if side == "BUY" else -slippage_bps) / 1e4))
                fill_price = _to_tick(fill_price * worse, spec.tick_size, ROUND_DOWN)
        quantity = _quantity(spec, params, fill_price)
        # Funds, checked for the whole order up front: a buy pays quote, a sell delivers base.
        asset, cost = (
            (spec.quote, quantity * fill_price) if side == "BUY" else (spec.base, quantity)
        )
        if self.balance(asset).free < cost:
            raise BinanceError(400, -2010, _INSUFFICIENT)
        now = _now_ms()
        order = _Order(
            symbol=spec,
            order_id=next(self.order_ids),
            client_order_id=params.get("newClientOrderId") or f"tbmon{now}",
            side=side,
            type=kind,
            time_in_force=time_in_force,
            price=price,
            orig_qty=quantity,
            orig_quote_qty=_decimal(params, "quoteOrderQty") or Decimal(0),
            time=now,
            update_time=now,
        )
        self.orders[order.order_id] = order
        if marketable:
            self._fill(order, fill_price, maker=False)
        elif time_in_force in ("IOC", "FOK"):
            order.status = "EXPIRED"
        else:
            self._lock(order)
        return order

    def order(self, params: dict[str, str]) -> _Order:
        spec = self.symbol(params)
        self.mid(spec)
        order_id = params.get("orderId")
        client_id = params.get("origClientOrderId")
        if order_id is None and client_id is None:
            raise BinanceError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty.",
            )
        for order in self.orders.values():
            if order.symbol is spec and (
                str(order.order_id) == order_id or order.client_order_id == client_id
            ):
                return order
        raise BinanceError(400, -2013, "Order does not exist.")

    def cancel(self, params: dict[str, str]) -> _Order:
        try:
            order = self.order(params)
        except BinanceError as error:
            if error.code == -2013:
                raise BinanceError(400, -2011, "Unknown order sent.") from None
            raise
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(400, -2011, "Unknown order sent.")
        self._unlock(order)
        order.status = "CANCELED"
        order.update_time = _now_ms()
        return order

    def open_orders(self, spec: Symbol | None) -> list[_Order]:
        for each in self.symbols.values() if spec is None else (spec,):
            self.mid(each)
        return [
            order
            for order in self.orders.values()
            if order.status in ("NEW", "PARTIALLY_FILLED") and spec in (None, order.symbol)
        ]

    def all_orders(self, spec: Symbol, limit: int) -> list[_Order]:
        self.mid(spec)
        return [order for order in self.orders.values() if order.symbol is spec][-limit:]

    def my_trades(self, spec: Symbol, limit: int) -> list[dict[str, Any]]:
        self.mid(spec)
        return [trade for trade in self.trades if trade["symbol"] == spec.symbol][-limit:]

    def _lock(self, order: _Order) -> None:
        asset, amount = self._reserved(order)
        balance = self.balance(asset)
        balance.free -= amount
        balance.locked += amount

    def _unlock(self, order: _Order) -> None:
        asset, amount = self._reserved(order)
        balance = self.balance(asset)
        balance.locked -= amount
        balance.free += amount

    @staticmethod
    def _reserved(order: _Order) -> tuple[str, Decimal]:
        remaining = order.orig_qty - order.executed_qty
        if order.side == "BUY":
            return order.symbol.quote, remaining * order.price
        return order.symbol.base, remaining

    def _match(self, spec: Symbol) -> None:
        """Fill the symbol's resting limit orders that the new price crossed, at their price."""
        mid = Decimal(str(self.walks[spec.symbol].price))
        for order in self.orders.values():
            if order.symbol is not spec or order.status != "NEW":
                continue
            crossed = mid <= order.price if order.side == "BUY" else mid >= order.price
            if crossed:
                self._unlock(order)
                self._fill(order, order.price, maker=True)

    def _fill(self, order: _Order, price: Decimal, *, maker: bool) -> None:
        spec = order.symbol
        quantity = order.orig_qty - order.executed_qty
        notional = quantity * price
        base, quote = self.balance(spec.base), self.balance(spec.quote)
        if order.side == "BUY":
            commission, commission_asset = quantity * _FEE_RATE, spec.base
            quote.free -= notional
            base.free += quantity - commission
        else:
            commission, commission_asset = notional * _FEE_RATE, spec.quote
            base.free -= quantity
            quote.free += notional - commission
        trade_id = next(self.trade_ids)
        now = _now_ms()
        order.fills.append(
            {
                "price": _fmt(price),
                "qty": _fmt(quantity),
                "commission": _fmt(commission),
                "commissionAsset": commission_asset,
                "tradeId": trade_id,
            }
        )
        order.executed_qty += quantity
        order.cumulative_quote_qty += notional
        order.status = "FILLED"
        order.update_time = now
        self.trades.append(
            {
                "symbol": spec.symbol,
                "id": trade_id,
                "orderId": order.order_id,
                "orderListId": -1,
                "price": _fmt(price),
                "qty": _fmt(quantity),
                "quoteQty": _fmt(notional),
                "commission": _fmt(commission),
                "commissionAsset": commission_asset,
                "time": now,
                "isBuyer": order.side == "BUY",
                "isMaker": maker,
                "isBestMatch": True,
            }
        )


def _order_terms(spec: Symbol, params: dict[str, str]) -> tuple[str, str, Decimal, str]:
    """Side, type, limit price (0 for market orders) and time in force, as Binance checks them."""
    side = _required(params, "side")
    kind = _required(params, "type")
    if side not in ("BUY", "SELL"):
        raise BinanceError(400, -1117, "Invalid side.")
    if kind not in ("MARKET", "LIMIT"):
        raise BinanceError(400, -1116, "Invalid orderType.")
    if params.get("newOrderRespType", "FULL") not in ("ACK", "RESULT", "FULL"):
        raise BinanceError(400, -1177, "Invalid newOrderRespType.")
    if kind == "MARKET":
        return side, kind, Decimal(0), "GTC"  # Binance shows market orders as GTC
    price = _decimal(params, "price")
    if price is None or price <= 0:
        raise BinanceError(400, -1102, "Mandatory parameter 'price' was not sent.")
    if price % spec.tick_size:
        raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
    time_in_force = _required(params, "timeInForce")
    if time_in_force not in ("GTC", "IOC", "FOK"):
        raise BinanceError(400, -1115, "Invalid timeInForce.")
    return side, kind, price, time_in_force


def _quantity(spec: Symbol, params: dict[str, str], price: Decimal) -> Decimal:
    """The base quantity (from ``quoteOrderQty`` at ``price`` if need be), filters checked."""
    quantity = _decimal(params, "quantity")
    if quantity is None:
        quote_quantity = _decimal(params, "quoteOrderQty")
        if quote_quantity is None or params["type"] == "LIMIT":
            raise BinanceError(400, -1102, "Mandatory parameter 'quantity' was not sent.")
        quantity = (quote_quantity / price).quantize(spec.step_size, ROUND_DOWN)
    if quantity < spec.min_qty or quantity % spec.step_size:
        raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
    if quantity * price < spec.min_notional:
        raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
    return quantity


def _rng(key: str) -> random.Random:
    """A simulation RNG seeded by ``key``: the same seed and key give the same market."""
    return random.Random(key)  # noqa: S311 (a simulation, not cryptography)


def _to_tick(value: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (value / tick).quantize(Decimal(1), rounding=rounding) * tick


def _limit(params: dict[str, str], default: int, maximum: int) -> int:
    raw = params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'limit'.")
    return int(raw)


# -- endpoints --------------------------------------------------------------------------------

Handler = Callable[[ExchangeState, dict[str, str], _Effects], Any]


@dataclass(frozen=True)
class _Endpoint:
    handler: Handler
    #: The parameters Binance reads; any other is refused with -1104.
    params: frozenset[str]
    signed: bool = False


def _exchange_info(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    return {
        "timezone": "UTC",
        "serverTime": _now_ms(),
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 6000,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {
                "rateLimitType": "RAW_REQUESTS",
                "interval": "MINUTE",
                "intervalNum": 5,
                "limit": 61000,
            },
        ],
        "exchangeFilters": [],
        "symbols": [spec.info() for spec in state.symbols.values()],
    }


def _symbols(state: ExchangeState, params: dict[str, str]) -> list[Symbol] | None:
    """The symbol or symbols (a JSON array, as ccxt sends it) a ticker request names."""
    if "symbol" in params:
        return [state.symbol(params)]
    raw = params.get("symbols")
    if raw is None:
        return None
    names = [name.strip().strip('"') for name in raw.strip("[]").split(",")]
    return [state.symbol({"symbol": name}) for name in names]


def _tickers(
    state: ExchangeState, params: dict[str, str], render: Callable[[Symbol], dict[str, Any]]
) -> Any:
    chosen = _symbols(state, params)
    if chosen is not None and "symbol" in params:
        return render(chosen[0])
    return [render(spec) for spec in chosen or state.symbols.values()]


def _ticker_24hr(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    return _tickers(state, params, state.ticker)


def _ticker_price(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    def render(spec: Symbol) -> dict[str, Any]:
        return {"symbol": spec.symbol, "price": state.ticker(spec)["lastPrice"]}

    return _tickers(state, params, render)


def _book_ticker(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    def render(spec: Symbol) -> dict[str, Any]:
        ticker = state.ticker(spec)
        keys = ("symbol", "bidPrice", "bidQty", "askPrice", "askQty")
        return {key: ticker[key] for key in keys}

    return _tickers(state, params, render)


def _depth(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    spec = state.symbol(params)
    limit = _limit(params, 100, 5000)
    return state.depth(spec, min(size for size in _DEPTH_LIMITS if size >= limit))


def _klines(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    spec = state.symbol(params)
    return state.klines(spec, _required(params, "interval"), _limit(params, 500, 1000))


def _agg_trades(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    return state.market_trades(state.symbol(params), _limit(params, 500, 1000))


def _trades(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    spec = state.symbol(params)
    return [
        {
            "id": trade["a"],
            "price": trade["p"],
            "qty": trade["q"],
            "quoteQty": _fmt(Decimal(trade["p"]) * Decimal(trade["q"])),
            "time": trade["T"],
            "isBuyerMaker": trade["m"],
            "isBestMatch": True,
        }
        for trade in state.market_trades(spec, _limit(params, 500, 1000))
    ]


def _account(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    return state.account(params.get("omitZeroBalances") == "true")


def _new_order(state: ExchangeState, params: dict[str, str], effects: _Effects) -> Any:
    order = state.place(params, effects.slippage_bps)
    return order.placed(params.get("newOrderRespType", "FULL"))


def _query_order(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    return state.order(params).query()


def _cancel_order(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    return state.cancel(params).canceled()


def _open_orders(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    spec = state.symbol(params) if "symbol" in params else None
    return [order.query() for order in state.open_orders(spec)]


def _all_orders(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    spec = state.symbol(params)
    return [order.query() for order in state.all_orders(spec, _limit(params, 500, 1000))]


def _my_trades(state: ExchangeState, params: dict[str, str], _: _Effects) -> Any:
    return state.my_trades(state.symbol(params), _limit(params, 500, 1000))


def _params(*names: str) -> frozenset[str]:
    return frozenset(names)


_TICKER = _params("symbol", "symbols", "type", "symbolStatus")
_HISTORY = _params("symbol", "orderId", "startTime", "endTime", "fromId", "limit")
ENDPOINTS: dict[tuple[str, str], _Endpoint] = {
    ("GET", "ping"): _Endpoint(lambda state, params, _: {}, _params()),
    ("GET", "time"): _Endpoint(lambda state, params, _: {"serverTime": _now_ms()}, _params()),
    ("GET", "exchangeInfo"): _Endpoint(
        _exchange_info,
        _params("symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus"),
    ),
    ("GET", "ticker/24hr"): _Endpoint(_ticker_24hr, _TICKER),
    ("GET", "ticker/price"): _Endpoint(_ticker_price, _TICKER),
    ("GET", "ticker/bookTicker"): _Endpoint(_book_ticker, _TICKER),
    ("GET", "depth"): _Endpoint(_depth, _params("symbol", "limit", "symbolStatus")),
    ("GET", "klines"): _Endpoint(
        _klines, _params("symbol", "interval", "startTime", "endTime", "timeZone", "limit")
    ),
    ("GET", "aggTrades"): _Endpoint(
        _agg_trades, _params("symbol", "fromId", "startTime", "endTime", "limit")
    ),
    ("GET", "trades"): _Endpoint(_trades, _params("symbol", "limit")),
    ("GET", "account"): _Endpoint(_account, _params("omitZeroBalances"), signed=True),
    ("POST", "order"): _Endpoint(
        _new_order,
        _params(
            "symbol",
            "side",
            "type",
            "timeInForce",
            "quantity",
            "quoteOrderQty",
            "price",
            "newClientOrderId",
            "newOrderRespType",
            "selfTradePreventionMode",
            "strategyId",
            "strategyType",
        ),
        signed=True,
    ),
    ("GET", "order"): _Endpoint(
        _query_order, _params("symbol", "orderId", "origClientOrderId"), signed=True
    ),
    ("DELETE", "order"): _Endpoint(
        _cancel_order,
        _params("symbol", "orderId", "origClientOrderId", "newClientOrderId", "cancelRestrictions"),
        signed=True,
    ),
    ("GET", "openOrders"): _Endpoint(_open_orders, _params("symbol"), signed=True),
    ("GET", "allOrders"): _Endpoint(_all_orders, _HISTORY, signed=True),
    ("GET", "myTrades"): _Endpoint(_my_trades, _HISTORY, signed=True),
}


def _authenticate(request: Request, params: dict[str, str], payload: str) -> None:
    """Binance's checks of a signed request: key header, signature, timestamp window."""
    key = request.headers.get("X-MBX-APIKEY")
    if not key:
        raise BinanceError(401, -2014, "API-key format invalid.")
    if key != TEST_API_KEY:
        raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    signed, _, signature = payload.rpartition("&signature=")
    expected = hmac.new(TEST_API_SECRET.encode(), signed.encode(), hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(signature, expected):
        raise BinanceError(400, -1022, "Signature for this request is not valid.")
    timestamp = params.get("timestamp", "")
    window = params.get("recvWindow", "5000")
    if not timestamp.isdigit() or not window.isdigit():
        raise BinanceError(400, -1102, "Mandatory parameter 'timestamp' was not sent.")
    now = _now_ms()
    if not now - int(window) <= int(timestamp) < now + 1000:
        raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def _error_response(error: BinanceError) -> JSONResponse:
    headers = {"Retry-After": "1"} if error.status in (418, 429) else None
    return JSONResponse({"code": error.code, "msg": error.msg}, error.status, headers=headers)


async def _disconnected(request: Request) -> None:
    """Return when the client hangs up (the body has been read: only disconnect is left)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _fault_response(kind: FaultError, request: Request, hang_seconds: float) -> Response:
    if kind == "hang":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_disconnected(request), hang_seconds)
        kind = "gateway_timeout"
    if kind in _GATEWAY_ERRORS:
        code, reason = _GATEWAY_ERRORS[kind]
        return HTMLResponse(_GATEWAY_PAGE.format(code=code, reason=reason), status_code=code)
    status, code, message = _JSON_ERRORS[kind]
    return _error_response(BinanceError(status, code, message.format(until=_now_ms() + 60_000)))


def create_app(seed: int = DEFAULT_SEED) -> FastAPI:
    """The test exchange as an ASGI app."""
    state = ExchangeState(seed)
    app = FastAPI(title="Binance spot test server", docs_url="/_control/docs")
    app.state.exchange = state

    @app.api_route(
        "/api/v3/{path:path}", methods=["GET", "POST", "DELETE", "PUT"], include_in_schema=False
    )
    async def api(path: str, request: Request) -> Response:
        method = request.method
        query = request.url.query
        body = (await request.body()).decode()
        payload = "&".join(part for part in (query, body) if part)
        params = dict(parse_qsl(payload, keep_blank_values=True))
        record: dict[str, Any] = {
            "method": method,
            "path": path,
            "params": {k: v for k, v in params.items() if k != "signature"},
            "time": time.time(),
        }
        state.requests.append(record)
        endpoint = ENDPOINTS.get((method, path))
        if endpoint is None:
            record["status"] = 404
            return JSONResponse({"code": -1, "msg": "Not Found"}, 404)
        effects = state.effects(method, path)
        if effects.latency:
            await asyncio.sleep(effects.latency)
        if effects.error is not None:
            record["fault"] = effects.error
            response = await _fault_response(effects.error, request, effects.hang_seconds)
            record["status"] = response.status_code
            return response
        try:
            allowed = endpoint.params | _SIGNED if endpoint.signed else endpoint.params
            if unknown := params.keys() - allowed:
                raise BinanceError(
                    400,
                    -1104,
                    f"Not all sent parameters were read; read '{len(params) - len(unknown)}' "
                    f"parameter(s) but was sent '{len(params)}'.",
                )
            if endpoint.signed:
                _authenticate(request, params, payload)
            result = endpoint.handler(state, params, effects)
        except BinanceError as error:
            record["status"] = error.status
            record["error"] = {"code": error.code, "msg": error.msg}
            return _error_response(error)
        record["status"] = 200
        return JSONResponse(result)

    app.include_router(_control_router(state))
    return app


def _control_router(state: ExchangeState) -> APIRouter:
    router = control_router(state, Fault)

    @router.get("/orders")
    async def orders() -> list[dict[str, Any]]:
        return [order.query() for order in state.orders.values()]

    @router.get("/requests")
    async def requests(path: str | None = None) -> list[dict[str, Any]]:
        return [r for r in state.requests if path is None or r["path"] == path]

    @router.put("/prices")
    async def set_prices(prices: dict[str, float]) -> dict[str, float]:
        unknown = prices.keys() - state.symbols.keys()
        if unknown:
            raise HTTPException(404, f"unknown symbols: {sorted(unknown)}")
        for name, price in prices.items():
            state.set_price(state.symbols[name], price)
        return {name: state.walks[name].price for name in state.symbols}

    @router.get("/market")
    async def market() -> MarketSettings:
        return state.market

    @router.put("/market")
    async def set_market(settings: MarketSettings) -> MarketSettings:
        state.market = settings
        return settings

    @router.put("/balances")
    async def set_balances(balances: dict[str, float]) -> dict[str, str]:
        for asset, amount in balances.items():
            state.balance(asset).free = Decimal(str(amount))
        return {asset: _fmt(b.free) for asset, b in state.balances.items()}

    return router


@contextmanager
def running(
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int = DEFAULT_SEED,
    factory: Callable[[int], FastAPI] = create_app,
) -> Iterator[str]:
    """The server (``factory(seed)``'s app) in a thread of this process (port 0: a free one);
    yields its base URL and stops it on exit, failure included."""
    config = uvicorn.Config(
        factory(seed),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="exchange-test-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the exchange test server did not start on {host}:{port}")
            time.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(10)


def serve(host: str, port: int) -> None:
    """Run the server in the foreground until interrupted (the CLI's entry)."""
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


def _config(config: dict[str, Any]) -> dict[str, Any]:
    options = {**CLIENT_OPTIONS, **config.pop("options", {})}
    return {"apiKey": TEST_API_KEY, "secret": TEST_API_SECRET, **config, "options": options}


def _point(exchange: Any, base_url: str) -> Any:
    """Every ccxt API URL of ``exchange`` moved to ``base_url``, keeping its path."""
    base = base_url.rstrip("/")
    exchange.urls["api"] = {
        name: base + urlsplit(url).path for name, url in exchange.urls["api"].items()
    }
    return exchange


def binance_client(base_url: str, **config: Any) -> ccxt.binance:
    """A real ``ccxt.binance`` talking to the server at ``base_url``.

    ``config`` is ccxt's constructor config (``timeout`` in ms, ``enableRateLimit``...); its
    ``options`` are merged over :data:`CLIENT_OPTIONS`.
    """
    return _point(ccxt.binance(_config(config)), base_url)


def async_binance_client(base_url: str, **config: Any) -> ccxt.async_support.binance:
    """:func:`binance_client` for ``ccxt.async_support`` (close it with ``await .close()``)."""
    return _point(ccxt.async_support.binance(_config(config)), base_url)


class ExchangeServerClient(ControlClient):
    """The control API from a test, a benchmark or the demo."""

    fault_model = Fault

    def orders(self) -> list[dict[str, Any]]:
        orders: list[dict[str, Any]] = self._json("GET", "/orders")
        return orders

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        params = {"path": path} if path else {}
        requests: list[dict[str, Any]] = self._json("GET", "/requests", params=params)
        return requests

    def set_prices(self, **prices: float) -> None:
        self._json("PUT", "/prices", json=prices)

    def set_market(self, **changes: Any) -> None:
        """Change some of the :class:`MarketSettings`; the others stay as they are."""
        current = self._json("GET", "/market")
        self._json("PUT", "/market", json=MarketSettings(**{**current, **changes}).model_dump())

    def set_balances(self, **balances: float) -> None:
        self._json("PUT", "/balances", json=balances)
