"""The seed's trading, risk and agent metrics, derived from what a bot knows anyway.

A bot reports raw facts: its portfolio value, each closed trade's P&L, its positions, prices,
orders, predictions and rewards. :class:`TradingMetrics` keeps them (one lock, one append) and
derives the seed's gauges only when the SDK collects metrics (every 5 s), with the formulas of
:mod:`tbmon.analytics`, the one implementation the trading-analytics processor uses too:

==============================  ==========================================================
metric (as Prometheus shows it)  from
==============================  ==========================================================
trading_portfolio_value_usd     the latest :meth:`~TradingMetrics.record_portfolio_value`
trading_total_return,           the portfolio's period values (TBMON_ANALYTICS_PERIOD_SECONDS,
trading_sharpe_ratio,           daily by default; the newest TBMON_ANALYTICS_WINDOW periods)
trading_sortino_ratio,
trading_calmar_ratio,
trading_max_drawdown,
trading_current_drawdown,
risk_var_95_percent,
risk_var_99_percent
trading_win_rate,               closed trades (:meth:`~TradingMetrics.record_trade`)
trading_profit_factor
trading_open_positions,         positions (:meth:`~TradingMetrics.set_positions`), leverage
risk_position_concentration,    against the latest portfolio value
risk_leverage_ratio
risk_correlation_score          prices (:meth:`~TradingMetrics.record_prices`): mean pairwise
                                correlation of the held symbols' period returns
trading_orders_total            :meth:`~TradingMetrics.record_order`
agent_prediction_accuracy       :meth:`~TradingMetrics.record_prediction`, the last 100
agent_cumulative_reward         :meth:`~TradingMetrics.add_reward`
ensemble_consensus_score        :meth:`~TradingMetrics.set_ensemble_consensus`
model_inference_duration_       :meth:`~TradingMetrics.inference`
seconds
==============================  ==========================================================

Every gauge carries the ``strategy`` label (TBMON_STRATEGY unless a call names another), or
``agent``; fractions are fractions (0.1 = 10 %). A value the formulas leave undefined (fewer
than two periods, no losing trade...) has no sample, so Prometheus never sees NaN. Order and
trade ids never become labels: :meth:`~TradingMetrics.record_trade` puts them on the current
span as a ``trade.closed`` event. A value no metric can hold (NaN, a non-positive price...) never
raises into the bot's loop: the call ignores it, counts it in
``tbmon_trading_values_rejected_total{call}`` and names the first of each call in a warning.
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

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from tbmon import analytics
from tbmon.instrumentation import instruments
from tbmon.instrumentation.settings import InstrumentationSettings, get_settings

#: Predictions per agent that ``agent_prediction_accuracy`` averages over.
ACCURACY_WINDOW = 100

#: Gauges of one strategy that are not period-value or trade statistics -> description.
POSITION_GAUGES = {
    "trading_portfolio_value_usd": "Current portfolio value in USD.",
    "trading_open_positions": "Number of open positions.",
    "risk_position_concentration": "Herfindahl index of the positions' absolute exposures.",
    "risk_leverage_ratio": "Gross exposure over portfolio value.",
    "risk_correlation_score": "Mean pairwise correlation of the held symbols' returns.",
}
AGENT_GAUGES = {
    "agent_prediction_accuracy": f"Share of an agent's last {ACCURACY_WINDOW} predictions right.",
    "agent_cumulative_reward": "Reward an RL agent has accumulated.",
}
ENSEMBLE_CONSENSUS = "ensemble_consensus_score"


logger = logging.getLogger(__name__)


def _finite(value: object) -> float | None:
    """``value`` as a finite float, or None (NaN, infinity, not a number at all)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass
class _Strategy:
    """What one strategy has reported."""

    portfolio: analytics.PeriodSeries
    pnls: deque[float]
    prices: dict[str, analytics.PeriodSeries] = field(default_factory=dict)
    latest_value: float | None = None
    exposures: dict[str, float] = field(default_factory=dict)

    def gauges(self, settings: InstrumentationSettings) -> dict[str, float]:
        values: dict[str, float | None] = {
            **analytics.value_gauges(
                self.portfolio.values(), settings.periods_per_year, settings.risk_free_rate
            ),
            **analytics.trade_gauges(self.pnls),
            "trading_portfolio_value_usd": self.latest_value,
        }
        if self.exposures or self.latest_value is not None:
            held = {symbol: e for symbol, e in self.exposures.items() if e != 0}
            values["trading_open_positions"] = len(held)
            values["risk_position_concentration"] = analytics.position_concentration(held.values())
            if self.latest_value is not None:
                values["risk_leverage_ratio"] = analytics.leverage_ratio(
                    held.values(), self.latest_value
                )
            returns = {
                symbol: analytics.simple_returns(series.values())
                for symbol, series in self.prices.items()
                if symbol in held or not held
            }
            values["risk_correlation_score"] = analytics.average_correlation(returns)
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
        self._period_ns = round(self.settings.analytics_period_seconds * 1e9)
        self._lock = threading.Lock()
        #: By (strategy, exchange): the exchange is a label only where a call named one.
        self._strategies: dict[tuple[str, str | None], _Strategy] = {}
        self._predictions: dict[str, deque[bool]] = {}
        self._rewards: dict[str, float] = {}
        self._consensus: float | None = None
        self._snapshot: dict[str, list[Observation]] | None = None
        self._orders = instruments.orders(meter_provider)
        self._rejected = instruments.rejected_values(meter_provider)
        self._warned: set[str] = set()
        self._inference = instruments.model_inference_duration(meter_provider)
        self._api_requests = instruments.api_request_duration(meter_provider)
        meter = instruments.meter(meter_provider)
        descriptions = {
            **analytics.VALUE_GAUGES,
            **analytics.TRADE_GAUGES,
            **POSITION_GAUGES,
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
            event: dict[str, str | float] = {"trade.pnl_usd": pnl, "strategy": name}
            if trade_id is not None:
                event["trade.id"] = trade_id
            if symbol is not None:
                event["symbol"] = symbol
            span.add_event("trade.closed", event)

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
        with self._lock:
            state = self._strategy(strategy, exchange)
            for symbol, price in prices.items():
                series = state.prices.get(symbol)
                if series is None:
                    series = state.prices[symbol] = self._series()
                series.add(at, float(price))
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
        """One order sent to ``exchange``; ``status`` is its outcome (filled, open, failed...)."""
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
            state = self._strategies[key] = _Strategy(self._series(), pnls)
        return state

    def _series(self) -> analytics.PeriodSeries:
        return analytics.PeriodSeries(self._period_ns, self.settings.analytics_window)

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return self._observations().get(name, [])

        return observe

    def _observations(self) -> dict[str, list[Observation]]:
        """Every gauge's observations, derived once per change rather than once per gauge."""
        with self._lock:
            if self._snapshot is None:
                self._snapshot = self._derive()
            return self._snapshot

    def _derive(self) -> dict[str, list[Observation]]:
        observations: dict[str, list[Observation]] = {}

        def add(name: str, value: float, attributes: dict[str, str]) -> None:
            observations.setdefault(name, []).append(Observation(value, attributes))

        for (strategy, exchange), state in self._strategies.items():
            labels = (
                {"strategy": strategy}
                if exchange is None
                else {
                    "strategy": strategy,
                    "exchange": exchange,
                }
            )
            for name, value in state.gauges(self.settings).items():
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
