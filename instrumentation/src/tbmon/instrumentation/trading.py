"""The seed's trading, risk and agent metrics, derived from what a bot knows anyway.

A bot reports raw facts: its portfolio value, each closed trade's P&L, its positions, prices,
orders, predictions and rewards. :class:`TradingMetrics` keeps them (one lock, one append) and
derives the seed's gauges only when the SDK collects metrics (every 2 s), with the formulas of
:mod:`tbmon.analytics`, the one implementation the trading-analytics processor uses too:

==============================  ==========================================================
metric (as Prometheus shows it)  from
==============================  ==========================================================
trading_portfolio_value_usd     the latest :meth:`~TradingMetrics.record_portfolio_value`
trading_total_return,           the portfolio's values on :class:`tbmon.analytics.ReturnGrid`
trading_sharpe_ratio,           (a period chosen from the data unless
                                TBMON_ANALYTICS_PERIOD_SECONDS sets it; the newest
                                TBMON_ANALYTICS_WINDOW returns), each after its sample size
trading_sortino_ratio,
trading_calmar_ratio,
trading_max_drawdown,
trading_current_drawdown,
risk_var_95_percent,
risk_var_99_percent
trading_win_rate,               closed trades (:meth:`~TradingMetrics.record_trade`)
trading_profit_factor
trading_open_positions,         positions (:meth:`~TradingMetrics.set_positions`), leverage
risk_position_concentration,    against the latest portfolio value; concentration is the
risk_position_herfindahl_index, largest position's share of gross exposure
risk_leverage_ratio
risk_correlation_score          prices (:meth:`~TradingMetrics.record_prices`): mean pairwise
                                correlation of the held symbols' period returns
trading_orders_total            :meth:`~TradingMetrics.record_order`, or the ccxt calls
agent_prediction_accuracy       :meth:`~TradingMetrics.record_prediction`, the last 100
agent_cumulative_reward         :meth:`~TradingMetrics.add_reward`
ensemble_consensus_score        :meth:`~TradingMetrics.set_ensemble_consensus`
model_inference_duration_       :meth:`~TradingMetrics.inference`
seconds
==============================  ==========================================================

Every gauge carries the ``strategy`` label (TBMON_STRATEGY unless a call names another), or
``agent``; fractions are fractions (0.1 = 10 %). A value the formulas leave undefined (too
few returns, no losing trade...) has no sample, so Prometheus never sees NaN. Order and
trade ids never become labels: :meth:`~TradingMetrics.record_trade` puts them on the current
span as a ``trade.closed`` event. A value no metric can hold (NaN, a non-positive price...) never
raises into the bot's loop: the call ignores it, counts it in
``tbmon_trading_values_rejected_total{call}`` and names the first of each call in a warning.

The current drawdown is measured from each strategy's high-water mark, the highest portfolio
value since the bot first ran, kept beyond the analytics window and across restarts in
:envvar:`TBMON_STATE_DIR` (one small JSON file per service, written at a collection that raised a
mark): a crash stays a drawdown until the portfolio recovers, however long that takes and
however often the bot restarts. A new service name, strategy or exchange starts a new mark;
:meth:`~TradingMetrics.reset_high_water_mark` starts one afresh (after a deposit or a
withdrawal, which the portfolio value cannot tell from a gain or a loss).

An instrumentation may derive the orders, portfolio value, positions and prices for the bot
(the ccxt instrumentation does, from the answers of its exchange calls) through
:meth:`~TradingMetrics.derived_order` and :meth:`~TradingMetrics.derived_book`; each of
:data:`FACTS` yields to the bot's own report of it, so nothing is counted twice.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_NAMESPACE, Resource

from tbmon import analytics, attributes
from tbmon.instrumentation import environment_variables as env
from tbmon.instrumentation import instruments
from tbmon.instrumentation.settings import InstrumentationSettings, get_settings
from tbmon.marks import MarkFile

#: Predictions per agent that ``agent_prediction_accuracy`` averages over.
ACCURACY_WINDOW = 100

AGENT_GAUGES = {
    "agent_prediction_accuracy": f"Share of an agent's last {ACCURACY_WINDOW} predictions right.",
    "agent_cumulative_reward": "Reward an RL agent has accumulated.",
}
ENSEMBLE_CONSENSUS = "ensemble_consensus_score"


logger = logging.getLogger(__name__)

#: The facts an instrumentation may derive for a bot (the ccxt instrumentation, from the answers
#: of its exchange calls). Each yields to the bot's own report: the first call of
#: ``record_order``, ``record_portfolio_value``, ``set_positions`` or ``record_prices`` drops
#: what was derived of that fact and derives no more of it, so nothing is counted twice.
ORDERS, PORTFOLIO, POSITIONS, PRICES = "orders", "portfolio", "positions", "prices"
FACTS = (ORDERS, PORTFOLIO, POSITIONS, PRICES)


def _finite(value: object) -> float | None:
    """``value`` as a finite float, or None (NaN, infinity, not a number at all)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


#: A strategy's key: its name and the exchange a call named (None: none did).
_Key = tuple[str, str | None]


class HighWaterMarks:
    """Each strategy's portfolio high-water mark, kept across the bot's restarts in one JSON
    file per service (``<state dir>/<service>.high-water-marks.json``, a
    :class:`tbmon.marks.MarkFile`).

    The file is read once, at start, and written whole (a temporary file renamed over it) when
    a mark rose. A directory that cannot be read or written never stops the bot: one warning,
    and the marks live in memory only.
    """

    def __init__(self, directory: Path | None, service: str) -> None:
        self.path = (
            None
            if directory is None
            else directory / f"{quote(service, safe='')}.high-water-marks.json"
        )
        self._file = MarkFile(self.path, ("strategy", "exchange"), env.TBMON_STATE_DIR)
        self._merging = threading.Lock()  # the collection and a reset may save at once

    def get(self, key: _Key) -> float | None:
        """The mark ``key`` had when the bot last ran, None if none."""
        return self._file.marks.get(key)

    def save(self, marks: Mapping[_Key, float | None]) -> None:
        """Write ``marks`` if they differ from what the file holds: a mark of None is gone, a
        strategy not in ``marks`` (not reported since the start) keeps its mark."""
        with self._merging:
            kept = {key: peak for key, peak in self._file.marks.items() if key not in marks}
            kept |= {key: peak for key, peak in marks.items() if peak is not None}
            self._file.save(dict(sorted(kept.items(), key=str)))


def service_identity() -> str:
    """The bot's ``job``, as Prometheus names it: ``service.namespace/service.name`` (the
    resource the SDK builds from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES)."""
    attributes = Resource.create().attributes
    name = str(attributes.get(SERVICE_NAME, "unknown_service"))
    namespace = attributes.get(SERVICE_NAMESPACE)
    return f"{namespace}/{name}" if namespace else name


@dataclass
class _Strategy:
    """What one strategy has reported."""

    portfolio: analytics.PeriodSeries
    pnls: deque[float]
    prices: dict[str, analytics.PeriodSeries] = field(default_factory=dict)
    latest_value: float | None = None
    exposures: dict[str, float] = field(default_factory=dict)
    #: Facts (of :data:`FACTS`) whose values came from an instrumentation, not from the bot.
    derived: set[str] = field(default_factory=set)
    #: The portfolio's high-water mark at the latest derivation (the one it started from
    #: before that; None without one).
    high_water_mark: float | None = None

    def __post_init__(self) -> None:
        self.high_water_mark = self.portfolio.peak

    def forget(self, fact: str, series: Callable[[], analytics.PeriodSeries]) -> None:
        """Drop what an instrumentation derived of ``fact``: the bot reports it now."""
        if fact not in self.derived:
            return
        self.derived.discard(fact)
        if fact == PORTFOLIO:
            self.portfolio, self.latest_value = series(), None
            self.high_water_mark = self.portfolio.peak
        elif fact == POSITIONS:
            self.exposures = {}
        elif fact == PRICES:
            self.prices = {}

    def gauges(self, grid: analytics.ReturnGrid) -> dict[str, float]:
        sampled = self.portfolio.sample()
        self.high_water_mark = self.portfolio.peak if sampled is None else sampled.high_water_mark()
        values: dict[str, float | None] = {
            **analytics.value_gauges(sampled, grid),
            **analytics.trade_gauges(self.pnls),
            "trading_portfolio_value_usd": self.latest_value,
        }
        if self.exposures or self.latest_value is not None:
            held = {symbol: e for symbol, e in self.exposures.items() if e != 0}
            values["trading_open_positions"] = len(held)
            values[analytics.POSITION_CONCENTRATION] = analytics.position_concentration(
                held.values()
            )
            values[analytics.POSITION_HERFINDAHL] = analytics.herfindahl_index(held.values())
            if self.latest_value is not None:
                values["risk_leverage_ratio"] = analytics.leverage_ratio(
                    held.values(), self.latest_value
                )
            values["risk_correlation_score"] = analytics.correlation_gauge(
                [series for symbol, series in self.prices.items() if symbol in held or not held]
            )
        return {name: v for name, v in values.items() if v is not None and math.isfinite(v)}


class TradingMetrics:
    """Records a bot's raw trading facts and publishes the seed's metrics from them.

    One per meter provider: use :func:`trading_metrics` for the global one. Every method is
    cheap (a lock and an append); the derivations run at metric collection.
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        settings: InstrumentationSettings | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._grid = self.settings.return_grid()
        self._marks = HighWaterMarks(self.settings.state_path(), service_identity())
        self._lock = threading.Lock()
        #: By (strategy, exchange): the exchange is a label only where a call named one.
        self._strategies: dict[tuple[str, str | None], _Strategy] = {}
        self._predictions: dict[str, deque[bool]] = {}
        self._rewards: dict[str, float] = {}
        self._consensus: float | None = None
        self._snapshot: dict[str, list[Observation]] | None = None
        self._claimed: set[str] = set()
        self._derived: set[str] = set()  # facts derived at least once
        #: Derived order outcomes since the last collection: labels -> (labels, count, the
        #: latest call's context, for the exemplar). Bounded by the labels' cardinality.
        self._derived_orders: dict[tuple[str, ...], tuple[dict[str, str], int, Context | None]]
        self._derived_orders = {}
        self._orders = instruments.orders(meter_provider)
        self._rejected = instruments.rejected_values(meter_provider)
        self._warned: set[str] = set()
        self._inference = instruments.model_inference_duration(meter_provider)
        self._api_requests = instruments.api_request_duration(meter_provider)
        meter = instruments.meter(meter_provider)
        descriptions = {
            **analytics.VALUE_GAUGES,
            **analytics.TRADE_GAUGES,
            **analytics.POSITION_GAUGES,
            **AGENT_GAUGES,
            ENSEMBLE_CONSENSUS: "Share of the ensemble's agents that agree with its decision.",
        }
        for name, description in descriptions.items():
            meter.create_observable_gauge(
                name, callbacks=[self._observer(name)], description=description
            )

    def _reject(self, call: str, problem: str) -> None:
        """A value no metric can hold: never an exception in the bot's loop, but counted, and
        the first of each call named in a warning."""
        self._rejected.add(1, {"call": call})
        with self._lock:
            first = call not in self._warned
            self._warned.add(call)
        if first:
            logger.warning(
                "tbmon: %s ignored a value: %s (the bot goes on; further ones are counted in "
                "%s_total{call=%r})",
                call,
                problem,
                instruments.REJECTED_VALUES,
                call,
            )

    # -- portfolio and risk -------------------------------------------------------------------

    def record_portfolio_value(
        self,
        value_usd: float,
        *,
        strategy: str | None = None,
        timestamp: float | None = None,
        exchange: str | None = None,
    ) -> None:
        """The portfolio's value now (or at Unix time ``timestamp``), in USD."""
        value = _finite(value_usd)
        if value is None:
            self._reject(
                "record_portfolio_value", f"value_usd must be a finite number: {value_usd!r}"
            )
            return
        at = time.time_ns() if timestamp is None else round(timestamp * 1e9)
        self._claim(PORTFOLIO)
        with self._lock:
            state = self._strategy(strategy, exchange)
            state.portfolio.add(at, value)
            state.latest_value = value
            self._snapshot = None

    def record_trade(
        self,
        pnl_usd: float,
        *,
        strategy: str | None = None,
        trade_id: str | None = None,
        symbol: str | None = None,
        exchange: str | None = None,
    ) -> None:
        """A closed trade's realised profit (or loss, negative) in USD.

        ``trade_id`` and ``symbol`` go to the current span (a ``trade.closed`` event), never to
        a metric label.
        """
        pnl = _finite(pnl_usd)
        if pnl is None:
            self._reject("record_trade", f"pnl_usd must be a finite number: {pnl_usd!r}")
            return
        name = strategy or self.settings.strategy
        with self._lock:
            self._strategy(name, exchange).pnls.append(pnl)
            self._snapshot = None
        span = trace.get_current_span()
        if span.is_recording():
            event: dict[str, str | float] = {
                attributes.TRADE_PNL_USD: pnl,
                attributes.STRATEGY: name,
            }
            if trade_id is not None:
                event[attributes.TRADE_ID] = trade_id
            if symbol is not None:
                event[attributes.SYMBOL] = symbol
            span.add_event(attributes.TRADE_CLOSED_EVENT, event)

    def set_positions(
        self,
        exposures_usd: Mapping[str, float],
        *,
        strategy: str | None = None,
        exchange: str | None = None,
    ) -> None:
        """Every open position's signed exposure in USD by symbol (short is negative)."""
        checked = {symbol: _finite(e) for symbol, e in exposures_usd.items()}
        exposures = {symbol: e for symbol, e in checked.items() if e is not None}
        if len(exposures) < len(checked):
            invalid = next(symbol for symbol in checked if symbol not in exposures)
            self._reject("set_positions", f"exposure of {invalid} must be a finite number")
            return
        self._claim(POSITIONS)
        with self._lock:
            self._strategy(strategy, exchange).exposures = exposures
            self._snapshot = None

    def record_prices(
        self,
        prices: Mapping[str, float],
        *,
        strategy: str | None = None,
        timestamp: float | None = None,
        exchange: str | None = None,
    ) -> None:
        """Market prices by symbol, for the correlation of the held symbols' returns."""
        for symbol, price in prices.items():
            number = _finite(price)
            if number is None or number <= 0:
                self._reject("record_prices", f"price of {symbol} must be positive: {price!r}")
                return
        at = time.time_ns() if timestamp is None else round(timestamp * 1e9)
        self._claim(PRICES)
        with self._lock:
            self._add_prices(self._strategy(strategy, exchange), prices, at)
            self._snapshot = None

    # -- orders and exchange calls -------------------------------------------------------------

    def record_order(
        self,
        *,
        symbol: str,
        side: str,
        status: str,
        exchange: str,
        strategy: str | None = None,
    ) -> None:
        """One order sent to ``exchange``; ``status`` is its outcome (filled, open, failed...).

        Orders placed through ccxt are counted by the ccxt instrumentation already: the first
        call of this method stops that (see :data:`FACTS`), so call it for every order or none.
        """
        self._claim(ORDERS)
        self._orders.add(
            1,
            {
                "strategy": strategy or self.settings.strategy,
                "symbol": symbol,
                "side": side,
                "exchange": exchange,
                "status": status,
            },
        )

    def record_api_request(
        self, seconds: float, *, exchange: str, endpoint: str, status: str = "ok"
    ) -> None:
        """An exchange call made without ccxt (the ccxt instrumentation records its own)."""
        duration = _finite(seconds)
        if duration is None or duration < 0:
            self._reject("record_api_request", f"seconds must be a duration: {seconds!r}")
            return
        self._api_requests.record(
            duration, {"exchange": exchange, "endpoint": endpoint, "status": status}
        )

    # -- facts derived by an instrumentation ---------------------------------------------------

    def derived_order(
        self,
        *,
        symbol: str,
        side: str,
        status: str,
        exchange: str,
        context: Context | None = None,
    ) -> None:
        """An order outcome an instrumentation saw (the ccxt instrumentation: an answer or an
        exception of ``create_order``, a later answer showing how a resting order ended).

        Counted in ``trading_orders_total`` at the next collection (``context``, the exchange
        call's, gives it its exemplar), unless the bot calls :meth:`record_order` before: then
        its own count wins and nothing is counted twice.
        """
        if ORDERS in self._claimed:
            return
        labels = {
            "strategy": self.settings.strategy,
            "symbol": symbol,
            "side": side,
            "exchange": exchange,
            "status": status,
        }
        key = tuple(labels.values())
        with self._lock:
            if ORDERS not in self._claimed:
                counted = self._derived_orders.get(key)
                count = 1 if counted is None else counted[1] + 1
                self._derived_orders[key] = (labels, count, context)
                self._derived.add(ORDERS)

    def derived_book(
        self,
        value_usd: float,
        exposures_usd: Mapping[str, float],
        prices: Mapping[str, float],
        *,
        timestamp: float | None = None,
    ) -> None:
        """Portfolio value, positions and prices an instrumentation derived (the ccxt
        instrumentation: balances valued at the prices in the bot's answers), for the default
        strategy; each is ignored once the bot reports it itself (:data:`FACTS`)."""
        at = time.time_ns() if timestamp is None else round(timestamp * 1e9)
        with self._lock:
            state = self._strategy(None)
            if PORTFOLIO not in self._claimed:
                state.portfolio.add(at, value_usd)
                state.latest_value = value_usd
                state.derived.add(PORTFOLIO)
            if POSITIONS not in self._claimed:
                state.exposures = dict(exposures_usd)
                state.derived.add(POSITIONS)
            if PRICES not in self._claimed and prices:
                self._add_prices(state, prices, at)
                state.derived.add(PRICES)
            self._derived.update(state.derived)
            self._snapshot = None

    def claim(self, *facts: str) -> None:
        """Say up front that the bot (or a framework's instrumentation) reports these
        :data:`FACTS` itself: nothing of them is derived from its exchange calls any more, not
        even what the first report would otherwise have raced with."""
        unknown = set(facts) - set(FACTS)
        if unknown:
            raise ValueError(f"unknown facts {sorted(unknown)}: choose from {FACTS}")
        for fact in facts:
            self._claim(fact)

    def _claim(self, fact: str) -> None:
        """The bot reports ``fact`` itself: what was derived of it goes, and no more is."""
        if fact in self._claimed:  # the common case, without the lock
            return
        with self._lock:
            if fact in self._claimed:
                return
            self._claimed.add(fact)
            if fact == ORDERS:
                self._derived_orders.clear()
            for key, state in self._strategies.items():
                state.forget(fact, lambda key=key: self._portfolio_series(key))  # type: ignore[misc]
            self._snapshot = None
            derived = fact in self._derived
        logger.log(
            logging.INFO if derived else logging.DEBUG,  # news only if some were derived
            "tbmon: the bot reports its %s itself; none are derived from its exchange calls now",
            fact,
        )

    def _add_prices(self, state: _Strategy, prices: Mapping[str, float], at: int) -> None:
        for symbol, price in prices.items():
            series = state.prices.get(symbol)
            if series is None:
                series = state.prices[symbol] = self._series()
            series.add(at, float(price))

    # -- agents --------------------------------------------------------------------------------

    def record_prediction(self, agent: str, *, correct: bool) -> None:
        """Whether one of ``agent``'s predictions turned out right."""
        with self._lock:
            history = self._predictions.get(agent)
            if history is None:
                history = self._predictions[agent] = deque(maxlen=ACCURACY_WINDOW)
            history.append(correct)
            self._snapshot = None

    def add_reward(self, agent: str, reward: float) -> None:
        """A reinforcement-learning agent's reward for one step."""
        value = _finite(reward)
        if value is None:
            self._reject("add_reward", f"reward must be a finite number: {reward!r}")
            return
        with self._lock:
            self._rewards[agent] = self._rewards.get(agent, 0.0) + value
            self._snapshot = None

    def set_ensemble_consensus(self, score: float) -> None:
        """Share of the ensemble's agents that agree with its decision, in [0, 1]."""
        value = _finite(score)
        if value is None or not 0.0 <= value <= 1.0:
            self._reject("set_ensemble_consensus", f"score must be within [0, 1]: {score!r}")
            return
        with self._lock:
            self._consensus = value
            self._snapshot = None

    @contextmanager
    def inference(self, model: str) -> Iterator[None]:
        """Times the block as one prediction of ``model`` (``model_inference_duration_seconds``)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self._inference.record(time.perf_counter() - started, {"model": model})

    # -- collection ----------------------------------------------------------------------------

    def _strategy(self, name: str | None, exchange: str | None = None) -> _Strategy:
        key = (name or self.settings.strategy, exchange)
        state = self._strategies.get(key)
        if state is None:
            pnls: deque[float] = deque(maxlen=self.settings.analytics_window)
            state = self._strategies[key] = _Strategy(self._portfolio_series(key), pnls)
        return state

    def _series(self) -> analytics.PeriodSeries:
        return analytics.PeriodSeries(self._grid)

    def _portfolio_series(self, key: _Key) -> analytics.PeriodSeries:
        """A portfolio series that starts from the mark the bot left at its last run."""
        return analytics.PeriodSeries(self._grid, peak=self._marks.get(key))

    def reset_high_water_mark(
        self, *, strategy: str | None = None, exchange: str | None = None
    ) -> None:
        """Start the portfolio's high-water mark (and its window) afresh from the next value.

        For a deposit or a withdrawal: the portfolio value cannot tell one from a gain or a
        loss, so without a reset a withdrawal reads as a drawdown until the value is back.
        """
        key = (strategy or self.settings.strategy, exchange)
        with self._lock:
            state = self._strategy(*key)
            state.portfolio = self._series()
            state.high_water_mark = None
            self._snapshot = None
            marks = self._high_water_marks()
        self._marks.save(marks)

    def _high_water_marks(self) -> dict[_Key, float | None]:
        return {key: state.high_water_mark for key, state in self._strategies.items()}

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return self._observations().get(name, [])

        return observe

    def _observations(self) -> dict[str, list[Observation]]:
        """Every gauge's observations, derived once per change rather than once per gauge.

        The derived orders waiting since the last collection are counted here too, before the
        SDK reads the counter (the observable gauges' callbacks run first).
        """
        marks = None
        with self._lock:
            orders, self._derived_orders = self._derived_orders, {}
            if self._snapshot is None:
                self._snapshot = self._derive()
                marks = self._high_water_marks()
            snapshot = self._snapshot
        for labels, count, context in orders.values():
            self._orders.add(count, labels, context=context)
        if marks is not None:
            self._marks.save(marks)  # outside the lock: the bot's calls never wait on a disk
        return snapshot

    def _derive(self) -> dict[str, list[Observation]]:
        observations: dict[str, list[Observation]] = {}

        def add(name: str, value: float, attributes: dict[str, str]) -> None:
            observations.setdefault(name, []).append(Observation(value, attributes))

        for (strategy, exchange), state in self._strategies.items():
            labels = {"strategy": strategy}
            if exchange is not None:
                labels["exchange"] = exchange
            for name, value in state.gauges(self._grid).items():
                add(name, value, labels)
        for agent, history in self._predictions.items():
            add("agent_prediction_accuracy", sum(history) / len(history), {"agent": agent})
        for agent, reward in self._rewards.items():
            add("agent_cumulative_reward", reward, {"agent": agent})
        if self._consensus is not None:
            add(ENSEMBLE_CONSENSUS, self._consensus, {})
        return observations


@lru_cache(maxsize=1)
def trading_metrics() -> TradingMetrics:
    """The process-wide :class:`TradingMetrics` on the global meter provider."""
    return TradingMetrics()
