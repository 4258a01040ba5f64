"""freqtrade, monitored with no code in the strategy: ``opentelemetry-instrument freqtrade trade``.

Registered as the ``freqtrade`` instrumentor. It imports nothing of freqtrade: ``wrapt`` post-import
hooks patch freqtrade's classes when freqtrade itself imports them, so a process that never
imports freqtrade pays nothing, and a process that does is patched before its first iteration.
It knows freqtrade :data:`SUPPORTED_VERSIONS`; with any other it stands aside (one warning
naming the version) and freqtrade runs untouched (its ccxt calls are still traced, one trace
each). ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=freqtrade`` turns it off.

What it hooks, and what comes out:

- ``FreqtradeBot.process`` (one bot iteration, every ``internals.process_throttle_secs``): a span
  :data:`ITERATION_SPAN` made current for the iteration, so the ccxt calls made during it (REST,
  sync and async: freqtrade's ``ccxt.pro`` client runs its coroutines in this thread) are its
  children and the log lines written during it carry its trace id. After the iteration, still in
  its span, from what freqtrade holds in memory and with no exchange call: the portfolio value
  (spot: every wallet balance at its price in the stake currency; futures: the stake wallet plus
  the open trades' unrealised profit), the positions (signed exposure by pair), and the prices of
  the whitelisted pairs (freqtrade's exit-rate cache, which it refreshes each iteration for the
  pairs it holds, else its entry-rate cache, which holds a pair entered this iteration, else the
  last close of the analysed candles), through
  :class:`~tbmon.instrumentation.trading.TradingMetrics` labelled ``strategy`` (the strategy's
  name) and ``exchange`` (the ccxt id): every trading and risk metric of the seed follows.
  With a stake currency outside :data:`~tbmon.instrumentation._internal.ccxt_book.USD` (BTC,
  EUR...) the values are converted to USD with the stake's price against a dollar that freqtrade
  holds (:meth:`_Hooks.usd_rate`: exit-rate cache, cached candles, cached tickers); until there
  is one, the portfolio and positions wait, with one warning.
- ``RPCManager.send_msg`` (freqtrade's own events, the ones its Telegram and webhooks get): each
  order's outcome once in ``trading_orders_total{status}`` (``filled`` on ``entry_fill`` and
  ``exit_fill``, ``canceled`` on ``entry_cancel`` and ``exit_cancel``), a closed trade's profit
  (``exit_fill`` that is the final exit) to the win rate and profit factor, and per fill or
  cancel a span ``order_fill`` in the order's trace (the child of its ``create_order`` span:
  live, the ccxt instrumentation's, told by :data:`~tbmon.instrumentation._internal.ccxt_book.
  PLACED`; in dry run, the stand-in's) with an ``order.filled`` (or ``order.canceled``) event.
- ``Exchange.create_order`` (freqtrade's, live and dry run): the rate freqtrade proposed becomes
  :data:`~tbmon.attributes.ORDER_EXPECTED_PRICE`, which the execution-quality processor compares
  with the fill for slippage. Live, it is handed to the ccxt instrumentation's ``create_order``
  span (:func:`tbmon.instrumentation.ccxt.expected_price`), and a limit order that rests is
  measured on its ``order_fill`` span's event, which carries both prices; in dry run no exchange
  sees the order, so a ``create_order`` span of the same contract stands for it, with
  :data:`~tbmon.attributes.ORDER_DRY_RUN`. A dry-run limit order that rests (not marketable
  yet) keeps that span open until its fill or cancel, which ends it dated at the placement's end
  with the fill price: its slippage is measured on the fill, its latency is the placement's. An
  order the exchange refuses is ``failed``, one it answers ``rejected`` or ``expired`` unfilled
  is ``rejected``.
- FreqAI, where used (``IFreqaiModel.start``): each prediction of the model class is timed as
  ``model_inference_duration_seconds{model=<class name>}``. FreqAI keeps no accuracy figure of
  its own, so ``agent_prediction_accuracy`` stays empty (docs/instrumentation.md).

Measured (``python -m bench freqtrade``, docs/performance.md, "freqtrade"): the instrumentor's own
work is 40-80 us of the bot thread's CPU per iteration, and it makes no exchange request. Side by
side, an idle bot's process spends about 1 ms more per iteration than without the hooks: the
export of its iteration span, one gRPC call a second with the distro's 1 s batch delay (0.2 ms
with ``OTEL_BSP_SCHEDULE_DELAY=5000``).

An error inside a hook never reaches freqtrade: it is counted in
``tbmon_instrumentation_hook_errors_total{instrumentation="freqtrade", hook}``, the first of each
hook logged with its traceback, and freqtrade goes on as if uninstrumented.
``_uninstrument`` restores every patched method.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import Token
from dataclasses import dataclass
from typing import Any

import wrapt
from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.metrics import Counter, MeterProvider
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from tbmon import attributes
from tbmon.instrumentation import instruments
from tbmon.instrumentation._internal import ccxt_book
from tbmon.instrumentation._internal.ccxt_book import USD
from tbmon.instrumentation.trading import FACTS, TradingMetrics, trading_metrics
from tbmon.version import __version__

#: The freqtrade releases whose hooks this module was written and tested against.
SUPPORTED_VERSIONS = frozenset({"2026.9"})
#: The span of one bot iteration (``FreqtradeBot.process``).
ITERATION_SPAN = "bot_iteration"
#: The span standing for a dry-run order, named as ccxt's (the execution-quality pattern).
ORDER_SPAN = "create_order"
#: The span of one fill or cancel, in the order's trace.
FILL_SPAN = attributes.ORDER_FILL_SPAN
HOOK_ERRORS = "tbmon_instrumentation_hook_errors"
FRAMEWORK = "freqtrade"
#: Orders awaiting their fill whose trace is kept (the oldest are forgotten beyond it).
MAX_PENDING_ORDERS = 1000

#: (module, attribute path) of each method patched.
TARGETS = (
    ("freqtrade.freqtradebot", "FreqtradeBot.process"),
    ("freqtrade.rpc.rpc_manager", "RPCManager.send_msg"),
    ("freqtrade.exchange.exchange", "Exchange.create_order"),
    ("freqtrade.freqai.freqai_interface", "IFreqaiModel.start"),
)
#: The currencies of USD a non-USD stake currency is valued in, the most traded first.
USD_QUOTES = ("USDT", "USDC", "USD", *sorted(USD - {"USDT", "USDC", "USD"}))
_FILLS = {"entry_fill": "entry", "exit_fill": "exit"}
_CANCELS = {"entry_cancel": "entry", "exit_cancel": "exit"}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Bot:
    """What the labels and the valuation need to know of one FreqtradeBot, read once."""

    strategy: str
    exchange: str
    stake_currency: str
    timeframe: str
    dry_run: bool
    futures: bool


def _bot_of(bot: Any) -> _Bot:
    config = bot.config
    return _Bot(
        strategy=str(bot.strategy.get_strategy_name()),
        exchange=str(bot.exchange.id),
        stake_currency=str(config["stake_currency"]),
        timeframe=str(config.get("timeframe") or bot.strategy.timeframe),
        dry_run=bool(config.get("dry_run")),
        futures=str(config.get("trading_mode", "spot")) == "futures",
    )


@dataclass
class _Placement:
    """An order placed and awaiting its fill or cancel: its trace and freqtrade's price."""

    context: SpanContext | None
    expected: float | None
    #: A dry-run order's stand-in span, left open while the order rests (a limit order not
    #: marketable yet): it ends at the fill, dated at its placement's end, with the fill price,
    #: so that execution quality measures the slippage on the fill.
    span: Span | None = None
    ended_ns: int = 0

    def close(self) -> None:
        if self.span is not None:
            self.span.end(end_time=self.ended_ns)
            self.span = None


@dataclass
class _Placing:
    """One ``create_order`` call under way."""

    pair: str
    side: str
    expected: float | None
    span: Span | None
    scope: AbstractContextManager[Any]
    token: Token[Context] | None
    placed: Token[Context | None]
    keep: bool = False

    def end(self) -> None:
        try:
            if self.span is not None and not self.keep:
                self.span.end()
            if self.token is not None:
                context.detach(self.token)
        finally:
            ccxt_book.PLACED.reset(self.placed)


def _resting(order: Any) -> bool:
    """True for an order placed and not filled yet (freqtrade's dry run: ``open``, ``filled``
    below ``amount``)."""
    if not isinstance(order, dict) or order.get("status") != "open":
        return False
    return float(order.get("filled") or 0) < float(order.get("amount") or 0)


def _side(kind: str, msg: dict[str, Any]) -> str:
    """The order's side: an entry buys a long and sells a short; an exit the opposite."""
    short = msg.get("direction") == "Short"
    return "sell" if short == (kind == "entry") else "buy"


class _Hooks:
    """The wrappers, bound to one instrument() call's telemetry."""

    def __init__(
        self, tracer: trace.Tracer, metrics: TradingMetrics, errors: Counter, iterations: int = 0
    ) -> None:
        self.tracer, self.metrics, self.errors = tracer, metrics, errors
        self.active = True
        self.iterations = iterations
        self._bots: weakref.WeakKeyDictionary[Any, _Bot] = weakref.WeakKeyDictionary()
        self._latest: _Bot | None = None
        #: (pair, order side) -> the order placed
        self._pending: OrderedDict[tuple[str, str], _Placement] = OrderedDict()
        self._lock = threading.Lock()
        self._reported: set[str] = set()
        self._timed: list[type] = []
        #: pair -> (the analysis's time, its last close)
        self._closes: dict[str, tuple[Any, float | None]] = {}
        self._unconverted: str | None = None

    # -- failing safe ------------------------------------------------------------------------

    @contextmanager
    def guard(self, hook: str) -> Iterator[None]:
        """Our own failure stays here: counted, the first of each hook logged in full."""
        try:
            yield
        except Exception:
            try:
                self.errors.add(1, {"instrumentation": FRAMEWORK, "hook": hook})
                if hook in self._reported:
                    logger.debug("freqtrade instrumentation: %s failed again", hook, exc_info=True)
                else:
                    self._reported.add(hook)
                    logger.exception(
                        "tbmon: the freqtrade instrumentation's %s hook failed; freqtrade goes "
                        "on (further failures are counted in %s_total{hook=%r})",
                        hook,
                        HOOK_ERRORS,
                        hook,
                    )
            except Exception:  # noqa: S110 - reporting must not fail the bot either
                pass

    def bot(self, bot: Any) -> _Bot:
        try:
            known = self._bots.get(bot)
            if known is None:
                known = self._bots[bot] = _bot_of(bot)
        except TypeError:  # not weakly referable: read each time
            known = _bot_of(bot)
        self._latest = known
        return known

    # -- the iteration -----------------------------------------------------------------------

    def process(
        self, wrapped: Callable[..., Any], bot: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not self.active:
            return wrapped(*args, **kwargs)
        if bot is None and args:  # called on the class: FreqtradeBot.process(bot)
            bot = args[0]
        span: Span | None = None
        token = None
        info: _Bot | None = None
        with self.guard("iteration span"):
            info = self.bot(bot)
            self.iterations += 1
            span = self.tracer.start_span(
                ITERATION_SPAN,
                attributes={
                    attributes.BOT_FRAMEWORK: FRAMEWORK,
                    attributes.BOT_ITERATION: self.iterations,
                    attributes.BOT_DRY_RUN: info.dry_run,
                    attributes.STRATEGY: info.strategy,
                    attributes.EXCHANGE: info.exchange,
                },
            )
            token = context.attach(trace.set_span_in_context(span))
        try:
            return wrapped(*args, **kwargs)
        except BaseException as error:
            if span is not None:
                with self.guard("iteration span"):
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, str(error)))
            raise
        finally:
            if info is not None:
                with self.guard("portfolio"):
                    self.record_state(bot, info)
            with self.guard("iteration span"):
                if span is not None:
                    span.end()
                if token is not None:
                    context.detach(token)

    def record_state(self, bot: Any, info: _Bot) -> None:
        """Portfolio value, positions and prices from freqtrade's memory: no exchange call."""
        prices: dict[str, float] = {}
        for pair in bot.active_pair_whitelist:
            price = self.price(bot, info, pair)
            if price is not None:
                prices[pair] = price
        stake = info.stake_currency
        value, exposures = (self.futures if info.futures else self.spot)(bot, info, prices)
        strategy, exchange = info.strategy, info.exchange
        if prices:
            self.metrics.record_prices(prices, strategy=strategy, exchange=exchange)
        rate = 1.0 if stake in USD else self.usd_rate(bot, stake)
        if rate is None:
            return  # warned once: the portfolio and its positions wait for a USD price
        if rate != 1.0:
            value *= rate
            exposures = {pair: exposure * rate for pair, exposure in exposures.items()}
        self.metrics.record_portfolio_value(value, strategy=strategy, exchange=exchange)
        self.metrics.set_positions(exposures, strategy=strategy, exchange=exchange)

    def usd_rate(self, bot: Any, stake: str) -> float | None:
        """USD for one unit of ``stake`` (a stake currency not of :data:`USD`: BTC, EUR...),
        from freqtrade's memory only: the exit-rate cache, the candles the data provider holds
        (any timeframe: an informative pair's too), or the tickers a pairlist fetched, of
        ``stake`` against a currency of USD (either way round). None, with one warning, while
        none is there."""
        exchange = bot.exchange
        for quote in USD_QUOTES:
            for pair, inverse in ((f"{stake}/{quote}", False), (f"{quote}/{stake}", True)):
                price = _cached_price(exchange, pair)
                if price is not None:
                    self._unconverted = None
                    return 1.0 / price if inverse else price
        if self._unconverted != stake:
            self._unconverted = stake
            logger.warning(
                "tbmon: freqtrade's stake currency %s has no USD price in freqtrade's memory "
                "(no %s/USDT rate, candles or cached ticker); the portfolio value and positions "
                "(*_usd) are not published until one is there. Add %s/USDT to the strategy's "
                "informative pairs, or use a pairlist that fetches tickers",
                stake,
                stake,
                stake,
            )
        return None

    def futures(
        self, bot: Any, info: _Bot, prices: dict[str, float]
    ) -> tuple[float, dict[str, float]]:
        """The value (the stake wallet, which holds the collateral, plus the open trades'
        unrealised profit) and the signed exposures (notional: amount x price, shorts negative)
        in the stake currency."""
        balances = bot.wallets.get_all_balances()
        stake = info.stake_currency
        value = float(balances[stake].total) if stake in balances else 0.0
        exposures: dict[str, float] = {}
        for position in bot.wallets.get_all_positions().values():
            price = prices.get(position.symbol) or self.price(bot, info, position.symbol)
            if price is not None:
                exposure = float(position.position) * price
                exposures[position.symbol] = -exposure if position.side == "short" else exposure
        return value + self._unrealised(prices), exposures

    def spot(
        self, bot: Any, info: _Bot, prices: dict[str, float]
    ) -> tuple[float, dict[str, float]]:
        """The value (every wallet at its price) and the exposures, in the stake currency; a
        currency held is priced against the stake and added to ``prices``."""
        stake = info.stake_currency
        value = 0.0
        exposures: dict[str, float] = {}
        for currency, wallet in bot.wallets.get_all_balances().items():
            total = float(wallet.total or 0.0)
            if not total:
                continue
            if currency == stake:
                value += total
                continue
            pair = f"{currency}/{stake}"
            price = prices.get(pair) or self.price(bot, info, pair)
            if price is None:
                continue  # no candles or rate of it in memory: not valued
            value += total * price
            exposures[pair] = total * price
            prices[pair] = price
        return value, exposures

    @staticmethod
    def _unrealised(prices: dict[str, float]) -> float:
        """The open trades' profit at ``prices`` (futures: the stake wallet holds collateral)."""
        from freqtrade.persistence import Trade  # noqa: PLC0415 - freqtrade is running

        total = 0.0
        for trade in Trade.get_open_trades():
            price = prices.get(trade.pair)
            if price is not None and trade.amount:
                total += float(trade.calc_profit(rate=price))
        return total

    def price(self, bot: Any, info: _Bot, pair: str) -> float | None:
        """``pair``'s latest price in memory: the rate freqtrade fetched for it
        (:func:`_fetched_rate`), else the close of the last analysed candle (read once per
        analysis: a pandas column lookup costs tens of microseconds)."""
        rate = _fetched_rate(bot.exchange, pair)
        if rate is not None:
            return rate
        frame, analysed = bot.dataprovider.get_analyzed_dataframe(pair, info.timeframe)
        known = self._closes.get(pair)
        if known is not None and known[0] == analysed:
            return known[1]
        close: float | None = None
        if len(frame):
            close = float(frame["close"].iat[-1])
            close = close if close > 0 else None
        self._closes[pair] = (analysed, close)
        return close

    # -- orders ------------------------------------------------------------------------------

    def create_order(
        self,
        wrapped: Callable[..., Any],
        exchange: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if not self.active or args:  # freqtrade passes keywords only
            return wrapped(*args, **kwargs)
        info = self._latest
        placing: _Placing | None = None
        with self.guard("order"):
            placing = self._placing(exchange, kwargs)
        try:
            with placing.scope if placing is not None else nullcontext():
                order = wrapped(*args, **kwargs)
        except Exception as error:
            with self.guard("order"):
                self._order_outcome(exchange, info, kwargs, "failed")
                if placing is not None and placing.span is not None:
                    placing.span.record_exception(error)
                    placing.span.set_attribute("error.type", type(error).__name__)
                    placing.span.set_status(Status(StatusCode.ERROR, str(error)))
            raise
        else:
            if placing is not None:
                with self.guard("order"):
                    self._placed(exchange, info, kwargs, placing, order)
            return order
        finally:
            if placing is not None:
                with self.guard("order"):
                    placing.end()

    def _placing(self, exchange: Any, kwargs: dict[str, Any]) -> _Placing:
        """Before the order goes out: its stand-in span (dry run) or its proposed price for the
        ccxt instrumentation's span (live)."""
        rate = kwargs.get("rate")
        expected = float(rate) if rate else None
        span: Span | None = None
        token: Token[Context] | None = None
        scope: AbstractContextManager[Any] = nullcontext()
        if exchange._config["dry_run"]:
            span = self.tracer.start_span(
                ORDER_SPAN, kind=SpanKind.INTERNAL, attributes=_order_attributes(kwargs)
            )
            if expected is not None:
                span.set_attribute(attributes.ORDER_EXPECTED_PRICE, expected)
            span.set_attribute(attributes.EXCHANGE, str(exchange.id))
            token = context.attach(trace.set_span_in_context(span))
        elif expected is not None:
            from tbmon.instrumentation.ccxt import expected_price  # noqa: PLC0415

            scope = expected_price(expected)
        return _Placing(
            str(kwargs["pair"]),
            str(kwargs["side"]),
            expected,
            span,
            scope,
            token,
            ccxt_book.PLACED.set(None),
        )

    def _placed(
        self,
        exchange: Any,
        info: _Bot | None,
        kwargs: dict[str, Any],
        placing: _Placing,
        order: Any,
    ) -> None:
        """The order is out: a refusal counted; its trace remembered for its fill."""
        span = placing.span
        if isinstance(order, dict):
            status = order.get("status")
            if status in ("rejected", "expired") and not float(order.get("filled") or 0):
                self._order_outcome(exchange, info, kwargs, "rejected")
            if span is not None:
                span.set_attributes(_result_attributes(order))
        # The order's trace: the stand-in span (dry run), else the ccxt instrumentation's
        # create_order span (live), else the iteration's.
        if span is not None:
            where = span.get_span_context()
        elif (ccxt_call := ccxt_book.PLACED.get()) is not None:
            where = trace.get_current_span(ccxt_call).get_span_context()
        else:
            where = trace.get_current_span().get_span_context()
        placing.keep = span is not None and _resting(order)
        kept = span if placing.keep else None
        self._remember(
            placing.pair, placing.side, _Placement(where, placing.expected, kept, time.time_ns())
        )

    def _remember(self, pair: str, side: str, placement: _Placement) -> None:
        ended: list[_Placement] = []
        with self._lock:
            replaced = self._pending.pop((pair, side), None)
            if replaced is not None:
                ended.append(replaced)
            self._pending[pair, side] = placement
            while len(self._pending) > MAX_PENDING_ORDERS:
                ended.append(self._pending.popitem(last=False)[1])
        for old in ended:
            old.close()

    def close(self) -> None:
        """End the stand-in spans of the dry-run orders still resting (at uninstrument)."""
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for placement in pending:
            placement.close()

    def _order_outcome(
        self, exchange: Any, info: _Bot | None, kwargs: dict[str, Any], status: str
    ) -> None:
        self.metrics.record_order(
            symbol=str(kwargs["pair"]),
            side=str(kwargs["side"]),
            status=status,
            exchange=str(exchange.id),
            strategy=info.strategy if info else None,
        )

    def send_msg(
        self,
        wrapped: Callable[..., Any],
        manager: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        result = wrapped(*args, **kwargs)
        if self.active:
            with self.guard("rpc message"):
                msg = args[0] if args else kwargs["msg"]
                kind = str(msg.get("type"))
                if kind in _FILLS or kind in _CANCELS:
                    self.on_order_event(self.bot(manager._rpc._freqtrade), kind, msg)
        return result

    def on_order_event(self, info: _Bot, kind: str, msg: dict[str, Any]) -> None:
        filled = kind in _FILLS
        side = _side(_FILLS.get(kind) or _CANCELS[kind], msg)
        pair = str(msg["pair"])
        labels = {"strategy": info.strategy, "exchange": info.exchange}
        self.metrics.record_order(
            symbol=pair, side=side, status="filled" if filled else "canceled", **labels
        )
        with self._lock:
            placed = self._pending.pop((pair, side), None)
        placement = placed.context if placed is not None else None
        expected = placed.expected if placed is not None else None
        rate, amount = msg.get("order_rate"), msg.get("amount")
        if placed is not None and placed.span is not None:
            # A dry-run order that rested: its fill (or cancel) completes its span, now.
            placed.span.set_attribute(attributes.ORDER_STATUS, "closed" if filled else "canceled")
            if filled and rate:
                placed.span.set_attribute(attributes.ORDER_AVERAGE_PRICE, float(rate))
            if filled and amount:
                placed.span.set_attribute(attributes.ORDER_FILLED, float(amount))
            placed.close()
        parent = (
            trace.set_span_in_context(trace.NonRecordingSpan(placement))
            if placement is not None and placement.is_valid
            else None
        )
        trade_id = str(msg.get("trade_id"))
        span = self.tracer.start_span(
            FILL_SPAN,
            context=parent,
            attributes={
                attributes.EXCHANGE: info.exchange,
                attributes.SYMBOL: pair,
                attributes.SIDE: side,
                attributes.TRADE_ID: trade_id,
                attributes.ORDER_STATUS: "closed" if filled else "canceled",
            },
        )
        event: dict[str, AttributeValue] = {attributes.TRADE_ID: trade_id}
        if rate:
            event[attributes.ORDER_AVERAGE_PRICE if filled else attributes.ORDER_PRICE] = float(
                rate
            )
        if amount:
            event[attributes.ORDER_FILLED if filled else attributes.ORDER_AMOUNT] = float(amount)
        if expected is not None:
            event[attributes.ORDER_EXPECTED_PRICE] = expected
        span.add_event(
            attributes.ORDER_FILLED_EVENT if filled else attributes.ORDER_CANCELED_EVENT, event
        )
        try:
            if kind == "exit_fill" and msg.get("is_final_exit"):
                with trace.use_span(span):
                    self.metrics.record_trade(
                        float(msg["profit_amount"]), trade_id=trade_id, symbol=pair, **labels
                    )
        finally:
            span.end()

    # -- FreqAI ------------------------------------------------------------------------------

    def freqai_start(
        self, wrapped: Callable[..., Any], model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if self.active:
            with self.guard("freqai"):
                self._time_predictions(type(model))
        return wrapped(*args, **kwargs)

    def _time_predictions(self, cls: type) -> None:
        """Wrap ``predict`` where ``cls`` defines (or inherits) it, once per defining class."""
        owner = next((c for c in cls.__mro__ if "predict" in vars(c)), None)
        if owner is None or owner in self._timed:
            return
        metrics = self.metrics

        def predict(
            wrapped: Callable[..., Any], model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            if not self.active:
                return wrapped(*args, **kwargs)
            with metrics.inference(type(model).__name__):
                return wrapped(*args, **kwargs)

        wrapt.wrap_function_wrapper(owner, "predict", predict)
        self._timed.append(owner)

    def untime_predictions(self) -> None:
        for owner in self._timed:
            unwrap(owner, "predict")
        self._timed.clear()


def _order_attributes(kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {
        attributes.SYMBOL: str(kwargs["pair"]),
        attributes.SIDE: str(kwargs["side"]),
        attributes.ORDER_TYPE: str(kwargs.get("ordertype")),
        attributes.ORDER_DRY_RUN: True,
    }
    if kwargs.get("amount"):
        found[attributes.ORDER_AMOUNT] = float(kwargs["amount"])
    if kwargs.get("ordertype") != "market" and kwargs.get("rate"):
        found[attributes.ORDER_PRICE] = float(kwargs["rate"])
    return found


def _result_attributes(order: dict[str, Any]) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {}
    if order.get("id") is not None:
        found[attributes.ORDER_ID] = str(order["id"])
    if order.get("status"):
        found[attributes.ORDER_STATUS] = str(order["status"])
    filled = float(order.get("filled") or 0)
    found[attributes.ORDER_FILLED] = filled
    if filled and order.get("average"):
        found[attributes.ORDER_AVERAGE_PRICE] = float(order["average"])
    return found


def _fetched_rate(exchange: Any, pair: str) -> float | None:
    """The rate freqtrade fetched for ``pair`` lately: the exit rate, which it fetches each
    iteration for a pair it holds, else the entry rate, fetched as it entered the pair. A
    position opened in this very iteration has only the latter; the last closed candle's close
    can be a candle's length (a minute, an hour...) older, and once put a bot's first portfolio
    value 0.6 % off freqtrade's own valuation (its total return with it)."""
    for cache in (exchange._exit_rate_cache, exchange._entry_rate_cache):
        rate = cache.get(pair)
        if rate:
            return float(rate)
    return None


def _cached_price(exchange: Any, pair: str) -> float | None:
    """``pair``'s latest price that freqtrade's exchange object holds, without a request."""
    rate = _fetched_rate(exchange, pair)
    if rate is not None:
        return rate
    for key, frame in list(exchange._klines.items()):
        if key[0] == pair and len(frame):
            close = float(frame["close"].iat[-1])
            if close > 0:
                return close
    with exchange._cache_lock:
        tickers = exchange._fetch_tickers_cache.get("fetch_tickers") or {}
    ticker = tickers.get(pair) or {}
    for price in (ticker.get("last"), ticker.get("close")):
        if price:
            return float(price)
    if ticker.get("bid") and ticker.get("ask"):
        return (float(ticker["bid"]) + float(ticker["ask"])) / 2
    return None


def _target(module: Any, path: str) -> tuple[Any, str]:
    owner_name, _, name = path.rpartition(".")
    return getattr(module, owner_name), name


class FreqtradeInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Registered as the ``freqtrade`` instrumentor (entry-point group
    ``opentelemetry_instrumentor``); active only where freqtrade is imported."""

    _hooks: _Hooks | None = None
    #: The (module, path) pairs patched so far, to undo; and the version warned about.
    _patched: list[tuple[str, str]] = []  # noqa: RUF012 - class state, as BaseInstrumentor's
    _warned: str | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        # Checked by hand at import (see _on_import): freqtrade is no requirement of tbmon, and
        # opentelemetry-instrument skips this check anyway.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.get("tracer_provider")
        meter_provider: MeterProvider | None = kwargs.get("meter_provider")
        metrics = trading_metrics() if meter_provider is None else TradingMetrics(meter_provider)
        errors = instruments.meter(meter_provider).create_counter(
            HOOK_ERRORS,
            description="Failures inside tbmon's hooks in a bot framework (the bot went on).",
        )
        tracer = trace.get_tracer(__name__, __version__, tracer_provider=tracer_provider)
        cls = FreqtradeInstrumentor
        cls._hooks = _Hooks(tracer, metrics, errors)
        # A dry-run order still resting when freqtrade stops: its span ends before the SDK's
        # own exit handler (registered earlier, so run later) flushes the spans.
        atexit.register(cls._hooks.close)
        for module_name, _ in TARGETS:
            wrapt.register_post_import_hook(self._on_import, module_name)

    def _uninstrument(self, **kwargs: Any) -> None:
        cls = FreqtradeInstrumentor
        hooks = cls._hooks
        if hooks is not None:
            hooks.active = False
            hooks.untime_predictions()
            hooks.close()
            atexit.unregister(hooks.close)
        for module_name, path in cls._patched:
            owner, name = _target(sys.modules[module_name], path)
            unwrap(owner, name)
        cls._patched = []
        cls._hooks = None

    @classmethod
    def _on_import(cls, module: Any) -> None:
        """A post-import hook: patch ``module``'s targets, once, on a known freqtrade."""
        hooks = cls._hooks
        if hooks is None or not hooks.active:
            return
        version = str(getattr(sys.modules.get("freqtrade"), "__version__", "unknown"))
        if version not in SUPPORTED_VERSIONS:
            if cls._warned != version:
                cls._warned = version
                logger.warning(
                    "tbmon: freqtrade %s is not a version the freqtrade instrumentation knows "
                    "(%s); it stands aside: no iteration spans or trading metrics from freqtrade "
                    "(its ccxt calls are still traced)",
                    version,
                    ", ".join(sorted(SUPPORTED_VERSIONS)),
                )
            return
        wrappers = {
            "FreqtradeBot.process": hooks.process,
            "RPCManager.send_msg": hooks.send_msg,
            "Exchange.create_order": hooks.create_order,
            "IFreqaiModel.start": hooks.freqai_start,
        }
        for module_name, path in TARGETS:
            if module_name != module.__name__ or (module_name, path) in cls._patched:
                continue
            with hooks.guard("instrument"):
                wrapt.wrap_function_wrapper(module, path, wrappers[path])
                cls._patched.append((module_name, path))
                if path == "FreqtradeBot.process":  # this process runs freqtrade
                    # Its orders, portfolio, positions and prices come from freqtrade's state
                    # and events: none are derived from the ccxt calls (counted twice else).
                    hooks.metrics.claim(*FACTS)
