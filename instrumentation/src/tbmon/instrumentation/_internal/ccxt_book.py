"""What a bot's ccxt answers say about its trading: order outcomes, portfolio and positions.

The ccxt instrumentation hands every traced call's answer (or exception) to :class:`CcxtBook`,
which reads ccxt's unified structures and reports to :class:`TradingMetrics` (whose
``derived_*`` entry points yield to the bot's own reports). No exchange call is made here:
only what the bot asked for is read.

Orders (``trading_orders_total{status}``), each counted once, when its outcome is known:

- ``create_order`` raised: ``failed`` (the exchange refused the order, ``InsufficientFunds``,
  ``InvalidOrder``..., or the call failed, ``RequestTimeout``...: TradingExecutionFailures
  counts both);
- ``create_order`` answered: ``filled`` (status ``closed``), ``canceled``, ``expired``, or
  ``failed`` (``rejected``); an order still ``open`` (or without a status) is remembered and
  counted when a later answer (``fetch_order``, ``cancel_order``, ``fetch_orders``,
  ``fetch_open_orders``...) shows it ended; the oldest of more than :data:`MAX_RESTING` resting
  orders is counted ``open`` to bound the memory.

Portfolio (``fetch_balance`` and prices): the latest ``total`` of each currency of each
exchange, valued in USD at the latest price the bot's answers gave for it: a ticker's ``last``
(else ``close``, else the bid/ask midpoint), the last candle's close of ``fetch_ohlcv``, an
order book's midpoint, the last trade of ``fetch_trades``, a fill's ``average``. Stablecoins in
:data:`USD` count at par; a currency quoted in another one (ETH/BTC) is valued through that
one's USD price. A currency without a price holds the value back for :data:`PRICE_GRACE_SECONDS`
(the bot's first ticker usually follows its balance), then is left out with one warning. Each
other currency worth at least its market's minimum order value (``limits.cost.min``, else
:data:`DUST_USD`) is a position, named by the symbol that priced it; the prices of the held
symbols feed the correlation score.

Cost: a dict look-up for calls that tell nothing; for an answer with prices, a dict write per
symbol and, when a held currency's price moved, a valuation of the balance (a few microseconds
for a handful of currencies).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context

from tbmon.instrumentation.trading import TradingMetrics

logger = logging.getLogger("tbmon.instrumentation.ccxt")

#: Currencies counted as US dollars, at par.
USD = frozenset(("USD", "USDT", "USDC", "BUSD", "FDUSD", "TUSD", "USDP", "DAI", "PYUSD"))
#: A holding worth less than this many USD is dust, not a position, when its market states no
#: minimum order value.
DUST_USD = 1.0
#: Seconds a held currency without a price holds the portfolio value back.
PRICE_GRACE_SECONDS = 60.0
#: Resting orders remembered until their end shows in an answer.
MAX_RESTING = 10_000
#: ccxt's order status -> the outcome counted (``open`` is counted later, when it ends).
OUTCOMES = {
    "closed": "filled",
    "canceled": "canceled",
    "cancelled": "canceled",
    "expired": "expired",
    "rejected": "failed",
}
FAILED = "failed"
RESTING = "open"
#: The context of the latest ``create_order`` call answered (or failed) in this thread or task:
#: its span's, so that a framework wrapping the call (freqtrade's instrumentation) puts the
#: order's later fill in the order's trace. Set it to None before the call to tell whether one
#: was traced.
PLACED: ContextVar[Context | None] = ContextVar("tbmon_ccxt_placed", default=None)


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float, or None (None, a bool, NaN, text that is no number...)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _price(value: Any) -> float | None:
    number = finite_number(value)
    return number if number is not None and number > 0 else None


def _currencies(symbol: str) -> tuple[str, str] | None:
    """``BTC/USDT`` (or ``BTC/USDT:USDT``) -> (``BTC``, ``USDT``)."""
    base, slash, rest = symbol.partition("/")
    quote = rest.partition(":")[0]
    return (base, quote) if slash and base and quote else None


def _ticker_price(ticker: Any) -> float | None:
    if not isinstance(ticker, dict):
        return None
    price = _price(ticker.get("last")) or _price(ticker.get("close"))
    if price is None:
        bid, ask = _price(ticker.get("bid")), _price(ticker.get("ask"))
        price = (bid + ask) / 2 if bid is not None and ask is not None else None
    return price


@dataclass
class _Resting:
    """An order placed and not ended yet, as create_order's call knew it."""

    symbol: Any
    side: Any
    context: Context


class CcxtBook:
    """Reads the answers of one instrumentation's traced ccxt calls (see the module)."""

    def __init__(self, metrics: TradingMetrics) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._resting: OrderedDict[tuple[str, str], _Resting] = OrderedDict()
        #: exchange id -> currency -> total held
        self._balances: dict[str, dict[str, float]] = {}
        #: currency -> (price, symbol) in USD, from a symbol quoted in a currency of USD
        self._usd: dict[str, tuple[float, str]] = {}
        #: currency -> quote -> (price, symbol), from symbols quoted in anything else
        self._cross: dict[str, dict[str, tuple[float, str]]] = {}
        self._minimum: dict[str, float] = {}
        self._unpriced: dict[str, float] = {}
        self._warned: set[str] = set()
        self._readers: dict[str, Callable[[Any, dict[str, Any], Any, Context], None]] = {
            "create_order": self._created,
            "fetch_order": self._orders_seen,
            "cancel_order": self._orders_seen,
            "fetch_orders": self._orders_seen,
            "fetch_open_orders": self._orders_seen,
            "fetch_closed_orders": self._orders_seen,
            "fetch_canceled_orders": self._orders_seen,
            "fetch_balance": self._balance,
            "fetch_ticker": self._ticker,
            "fetch_tickers": self._tickers,
            "fetch_ohlcv": self._ohlcv,
            "fetch_order_book": self._order_book,
            "fetch_trades": self._trades,
        }

    # -- from the instrumentation --------------------------------------------------------------

    def answered(
        self, method: str, exchange: Any, given: dict[str, Any], result: Any, context: Context
    ) -> None:
        """A traced call returned ``result`` (``given``: its arguments by name)."""
        if method == "create_order":
            PLACED.set(context)
        reader = self._readers.get(method)
        if reader is not None:
            reader(exchange, given, result, context)

    def failed(self, method: str, exchange: Any, given: dict[str, Any], context: Context) -> None:
        """A traced call raised: for ``create_order``, a failed order."""
        if method == "create_order":
            PLACED.set(context)
            self._count(str(exchange.id), given.get("symbol"), given.get("side"), FAILED, context)

    # -- orders --------------------------------------------------------------------------------

    def _count(
        self, exchange: str, symbol: Any, side: Any, status: str, context: Context | None
    ) -> None:
        self._metrics.derived_order(
            symbol=str(symbol or "unknown"),
            side=str(side or "unknown"),
            status=status,
            exchange=exchange,
            context=context,
        )

    def _created(self, exchange: Any, given: dict[str, Any], order: Any, context: Context) -> None:
        if not isinstance(order, dict):
            return
        symbol = given.get("symbol") or order.get("symbol")
        side = given.get("side") or order.get("side")
        outcome = OUTCOMES.get(str(order.get("status")))
        exchange_id = str(exchange.id)
        if outcome is not None:
            self._count(exchange_id, symbol, side, outcome, context)
        elif order.get("id") is not None:
            evicted = None
            with self._lock:
                self._resting[exchange_id, str(order["id"])] = _Resting(symbol, side, context)
                if len(self._resting) > MAX_RESTING:
                    evicted = self._resting.popitem(last=False)
            if evicted is not None:
                (where, _), old = evicted
                self._count(where, old.symbol, old.side, RESTING, old.context)
        if filled := _price(order.get("average")):
            self._prices(exchange, [(symbol, filled)])

    def _orders_seen(self, exchange: Any, given: dict[str, Any], result: Any, _: Context) -> None:
        if not self._resting:
            return
        orders = result if isinstance(result, list) else [result]
        exchange_id = str(exchange.id)
        for order in orders:
            if not isinstance(order, dict) or order.get("id") is None:
                continue
            outcome = OUTCOMES.get(str(order.get("status")))
            if outcome is None:
                continue
            with self._lock:
                resting = self._resting.pop((exchange_id, str(order["id"])), None)
            if resting is not None:
                self._count(exchange_id, resting.symbol, resting.side, outcome, resting.context)

    # -- prices --------------------------------------------------------------------------------

    def _ticker(self, exchange: Any, given: dict[str, Any], ticker: Any, _: Context) -> None:
        symbol = ticker.get("symbol") if isinstance(ticker, dict) else None
        self._prices(exchange, [(symbol or given.get("symbol"), _ticker_price(ticker))])

    def _tickers(self, exchange: Any, given: dict[str, Any], tickers: Any, _: Context) -> None:
        if isinstance(tickers, dict):
            self._prices(exchange, ((s, _ticker_price(t)) for s, t in tickers.items()))

    def _ohlcv(self, exchange: Any, given: dict[str, Any], candles: Any, _: Context) -> None:
        if isinstance(candles, list) and candles and isinstance(candles[-1], list | tuple):
            last = candles[-1]
            self._prices(
                exchange, [(given.get("symbol"), _price(last[4]) if len(last) > 4 else None)]
            )

    def _order_book(self, exchange: Any, given: dict[str, Any], book: Any, _: Context) -> None:
        if not isinstance(book, dict):
            return
        bids, asks = book.get("bids"), book.get("asks")
        if bids and asks:
            bid, ask = _price(bids[0][0]), _price(asks[0][0])
            if bid is not None and ask is not None:
                self._prices(
                    exchange, [(book.get("symbol") or given.get("symbol"), (bid + ask) / 2)]
                )

    def _trades(self, exchange: Any, given: dict[str, Any], trades: Any, _: Context) -> None:
        if isinstance(trades, list) and trades and isinstance(trades[-1], dict):
            last = trades[-1]
            self._prices(
                exchange, [(last.get("symbol") or given.get("symbol"), _price(last.get("price")))]
            )

    def _prices(self, exchange: Any, prices: Iterable[tuple[Any, float | None]]) -> None:
        moved = False
        with self._lock:
            held = {c for balance in self._balances.values() for c in balance}
            for symbol, price in prices:
                if price is None or not isinstance(symbol, str):
                    continue
                pair = _currencies(symbol)
                if pair is None:
                    continue
                base, quote = pair
                if quote in USD:
                    self._usd[base] = (price, symbol)
                else:
                    self._cross.setdefault(base, {})[quote] = (price, symbol)
                if symbol not in self._minimum:
                    self._minimum[symbol] = self._market_minimum(exchange, symbol, quote)
                moved = moved or base in held or quote in held
        if moved:
            self._value()

    @staticmethod
    def _market_minimum(exchange: Any, symbol: str, quote: str) -> float:
        """The market's minimum order value in USD, or :data:`DUST_USD`."""
        try:
            minimum = finite_number(exchange.markets[symbol]["limits"]["cost"]["min"])
        except (AttributeError, KeyError, TypeError):
            minimum = None
        return minimum if minimum is not None and minimum > 0 and quote in USD else DUST_USD

    # -- the balance and its value -------------------------------------------------------------

    def _balance(self, exchange: Any, given: dict[str, Any], balance: Any, _: Context) -> None:
        totals = balance.get("total") if isinstance(balance, dict) else None
        if not isinstance(totals, dict):
            return
        held = {}
        for currency, amount in totals.items():
            number = finite_number(amount)
            if number:
                held[str(currency)] = number
        with self._lock:
            self._balances[str(exchange.id)] = held
        self._value()

    def _usd_price(self, currency: str) -> tuple[float, str] | None:
        direct = self._usd.get(currency)
        if direct is not None:
            return direct
        for quote, (price, symbol) in self._cross.get(currency, {}).items():
            through = self._usd.get(quote)
            if through is not None:
                return price * through[0], symbol
        return None

    def _value(self) -> None:
        """Values every balance at the latest prices and reports it, unless a currency without
        a price still holds it back."""
        now = time.time()
        value = 0.0
        exposures: dict[str, float] = {}
        prices: dict[str, float] = {}
        missing: list[str] = []
        with self._lock:
            for balance in self._balances.values():
                for currency, amount in balance.items():
                    if currency in USD:
                        value += amount
                        continue
                    priced = self._usd_price(currency)
                    if priced is None:
                        missing.append(currency)
                        continue
                    price, symbol = priced
                    worth = amount * price
                    value += worth
                    if abs(worth) >= self._minimum.get(symbol, DUST_USD):
                        exposures[symbol] = exposures.get(symbol, 0.0) + worth
                        prices[symbol] = price
            for currency in list(self._unpriced):
                if currency not in missing:
                    del self._unpriced[currency]
            waiting = [
                c for c in missing if now - self._unpriced.setdefault(c, now) < PRICE_GRACE_SECONDS
            ]
            unwarned = [c for c in missing if c not in waiting and c not in self._warned]
            self._warned.update(unwarned)
        if waiting:
            return
        if unwarned:
            logger.warning(
                "tbmon: the portfolio value derived from the bot's ccxt calls leaves out %s: no "
                "price of it in the answers for %.0f s (fetch a ticker of it, or report the value "
                "with trading_metrics().record_portfolio_value)",
                ", ".join(sorted(unwarned)),
                PRICE_GRACE_SECONDS,
            )
        self._metrics.derived_book(value, exposures, prices, timestamp=now)
