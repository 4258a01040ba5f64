"""The demo trading bot: plain ccxt and tbmon's TradingMetrics, nothing else to set up.

It is meant to be read as an example: the bot has no OpenTelemetry set-up code of its own, and
``opentelemetry-instrument`` (run by ``tbmon demo``) supplies the rest. Once a second it reads
the tickers, lets the ensemble vote on each symbol, and trades towards its target positions
with market orders. Each symbol's decision is one trace::

    trade BTC/USDT
    ├── signal            (the ensemble's inference, timed per model)
    ├── risk_check        (cash and exposure limits)
    ├── create_order      (ccxt, by the ccxt instrumentation: a CLIENT span, and the order
    │                      counted in trading_orders_total with its outcome)
    └── fill              (the book updated, the closed trade's P&L recorded)

The demo's clock is compressed: one second is one market day, so the daily-return metrics
(Sharpe ratio, drawdown, VaR) have history within minutes (``TBMON_ANALYTICS_PERIOD_SECONDS``
is 1 in the demo's environment).
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field

import ccxt
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from tbmon import attributes
from tbmon.demo.agents import Direction, Ensemble
from tbmon.demo.scenarios import NORMAL_FAULTS, NORMAL_MARKET, Scenario, Step
from tbmon.instrumentation import TradingMetrics, trading_metrics
from tbmon.instrumentation.ccxt import expected_price
from tbmon.standins.exchange import ExchangeServerClient, binance_client

logger = logging.getLogger("tbmon.demo")
tracer = trace.get_tracer("tbmon.demo")

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
QUOTE = "USDT"
#: Orders below this many USD are not worth the fee (Binance's minimum notional is similar).
MIN_NOTIONAL = 20.0
#: A position within this share of the portfolio of its target is left alone (no churn).
REBALANCE_BAND = 0.02
#: Share of the ensemble that must agree before the bot moves.
MIN_CONSENSUS = 2 / 3
TICK_SECONDS = 1.0


@dataclass
class Position:
    amount: float = 0.0
    entry_price: float = 0.0


@dataclass
class Book:
    """The bot's own accounts, kept from the exchange's fills."""

    cash: float
    positions: dict[str, Position] = field(default_factory=dict)

    def value(self, prices: dict[str, float]) -> float:
        return self.cash + sum(p.amount * prices[s] for s, p in self.positions.items())

    def exposures(self, prices: dict[str, float]) -> dict[str, float]:
        return {s: p.amount * prices[s] for s, p in self.positions.items() if p.amount > 0}

    def fill(self, symbol: str, side: str, amount: float, price: float) -> float | None:
        """Books a fill; returns the realised P&L when it closed (part of) a position."""
        position = self.positions.setdefault(symbol, Position())
        if side == "buy":
            cost = position.amount * position.entry_price + amount * price
            position.amount += amount
            position.entry_price = cost / position.amount
            self.cash -= amount * price
            return None
        sold = min(amount, position.amount)
        position.amount -= sold
        self.cash += sold * price
        return sold * (price - position.entry_price)


@dataclass
class Targets:
    """How much of the portfolio the bot wants in each symbol.

    Long only (spot): the full ``exposure`` while the ensemble expects a rise, two thirds of it
    while it expects a fall, so the book stays diversified: no position is more than 3/7 of the
    gross exposure (concentration below the 0.5 of HighPositionConcentration).
    """

    exposure: float = 0.3
    concentrate: str | None = None

    def fraction(self, symbol: str, direction: Direction | None) -> float | None:
        """Target share of the portfolio in ``symbol``; None to keep the position as it is."""
        if self.concentrate is not None:
            return self.exposure if symbol == self.concentrate else 0.0
        if direction is None:
            return None
        return self.exposure if direction is Direction.UP else self.exposure * 2 / 3


class DemoBot:
    """One run of the demo: a market, an ensemble, a book and a scenario's steps."""

    def __init__(self, exchange_url: str, scenario: Scenario, seed: int) -> None:
        self.exchange_url = exchange_url.rstrip("/")
        self.exchange = binance_client(exchange_url)
        self.control = ExchangeServerClient(exchange_url)
        self.control.set_market(**NORMAL_MARKET)
        for fault in NORMAL_FAULTS:
            self.control.fault(**fault)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # the control calls are not news
        self.scenario = scenario
        self.metrics: TradingMetrics = trading_metrics()
        # Every run trades a fresh account on a fresh local exchange: a new portfolio, whose
        # drawdown is not measured from the high-water mark an earlier run left.
        self.metrics.reset_high_water_mark()
        self.ensemble = Ensemble(self.metrics, random.Random(seed))  # noqa: S311 - a simulation
        self.targets = Targets()
        self.steps = list(scenario.steps)
        self.prices: dict[str, float] = {}
        balance = self.exchange.fetch_balance()
        self.book = Book(cash=float(balance["free"].get(QUOTE, 0.0)))

    def run(self, duration: float) -> None:
        """Trades until ``duration`` seconds have passed (0: until stopped)."""
        self.exchange.load_markets()
        started = time.monotonic()
        logger.info(
            "demo bot trading %s on %s, scenario %s",
            ", ".join(SYMBOLS),
            self.exchange_url,
            self.scenario.name,
        )
        while duration == 0 or time.monotonic() - started < duration:
            tick = time.monotonic()
            self._apply_due_steps(tick - started)
            self._tick()
            time.sleep(max(0.0, TICK_SECONDS - (time.monotonic() - tick)))
        logger.info("demo bot stopped after %.0f s", time.monotonic() - started)

    def _apply_due_steps(self, elapsed: float) -> None:
        while self.steps and self.steps[0].at <= elapsed:
            self._apply(self.steps.pop(0))

    def _apply(self, step: Step) -> None:
        logger.warning("scenario %s: %s", self.scenario.name, step)
        if step.die:
            os._exit(1)  # a crash: no flush, no shutdown hooks
        if step.exposure is not None:
            self.targets.exposure = step.exposure
        if step.concentrate is not None:
            self.targets.concentrate = step.concentrate
        if step.market:
            self.control.set_market(**step.market)
        if step.shock:
            self.control.set_prices(
                **{
                    self.exchange.market_id(symbol): self.prices[symbol] * (1 + move)
                    for symbol, move in step.shock.items()
                }
            )
        for fault in step.faults:
            self.control.fault(**fault)

    def _tick(self) -> None:
        try:
            tickers = self.exchange.fetch_tickers(list(SYMBOLS))
        except ccxt.BaseError as error:
            logger.error("market data unavailable: %s", error)
            return
        prices = {symbol: float(tickers[symbol]["last"]) for symbol in SYMBOLS}
        for symbol, price in prices.items():
            previous = self.prices.get(symbol)
            if previous:
                self.ensemble.observe(symbol, price / previous - 1.0)
        self.prices = prices
        self.metrics.record_prices(prices)
        for symbol in SYMBOLS:
            self._trade(symbol)
        self.metrics.record_portfolio_value(self.book.value(prices))
        self.metrics.set_positions(self.book.exposures(prices))

    def _trade(self, symbol: str) -> None:
        price = self.prices[symbol]
        with tracer.start_as_current_span(
            "trade " + symbol, attributes={attributes.SYMBOL: symbol}
        ) as root:
            with tracer.start_as_current_span("signal") as signal:
                vote = self.ensemble.vote(symbol)
                if vote is not None:
                    signal.set_attributes(
                        {
                            "signal.direction": vote.direction.value,
                            "signal.consensus": vote.consensus,
                        }
                    )
            direction = vote.direction if vote and vote.consensus >= MIN_CONSENSUS else None
            fraction = self.targets.fraction(symbol, direction)
            if fraction is None:
                root.set_attribute("decision", "hold")
                return
            held = self.book.positions.get(symbol, Position()).amount
            equity = self.book.value(self.prices)
            amount = fraction * equity / price - held
            if abs(amount) * price < max(MIN_NOTIONAL, REBALANCE_BAND * equity):
                root.set_attribute("decision", "hold")
                return
            side = "buy" if amount > 0 else "sell"
            with tracer.start_as_current_span("risk_check") as risk:
                amount = self._within_limits(side, abs(amount), price)
                risk.set_attributes({"risk.approved": amount > 0, attributes.ORDER_AMOUNT: amount})
                if amount * price < MIN_NOTIONAL:
                    root.set_attribute("decision", "rejected by risk check")
                    logger.warning("risk check rejected a %s of %s: not enough cash", side, symbol)
                    return
            root.set_attribute("decision", side)
            self._place(root, symbol, side, amount, price)

    def _within_limits(self, side: str, amount: float, price: float) -> float:
        """The order amount the book allows: no buying on credit (spot), a fee's margin kept."""
        if side == "buy":
            return min(amount, max(0.0, self.book.cash * 0.99) / price)
        return amount

    def _place(self, root: trace.Span, symbol: str, side: str, amount: float, price: float) -> None:
        market = self.exchange.market(symbol)
        amount = float(self.exchange.amount_to_precision(symbol, amount))
        if amount <= 0 or amount < (market["limits"]["amount"]["min"] or 0):
            root.set_attribute("decision", "hold")
            return
        try:
            with expected_price(price):
                order = self.exchange.create_order(symbol, "market", side, amount)
        except ccxt.BaseError as error:  # counted as a failed order by the instrumentation
            root.set_status(Status(StatusCode.ERROR, type(error).__name__))
            logger.error(
                "order rejected by the exchange: %s",
                error,
                extra={"symbol": symbol, "side": side, "amount": amount},
            )
            return
        with tracer.start_as_current_span("fill") as fill:
            filled = float(order.get("filled") or 0.0)
            average = float(order.get("average") or price)
            realised = self.book.fill(symbol, side, filled, average) if filled else None
            if realised is not None:
                self.metrics.record_trade(realised, trade_id=str(order["id"]), symbol=symbol)
            fill.set_attributes(
                {attributes.ORDER_FILLED: filled, attributes.ORDER_AVERAGE_PRICE: average}
            )
        # trading_orders_total needs no line here: the ccxt instrumentation counts the order.
        status = "filled" if order.get("status") == "closed" else str(order.get("status"))
        logger.info(
            "order %s: %s %s %s at %s",
            status,
            side,
            filled,
            symbol,
            average,
            extra={"order_id": str(order["id"]), "symbol": symbol, "side": side},
        )
