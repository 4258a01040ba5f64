"""Trading analytics: the seed's performance and risk gauges, derived from a bot's raw telemetry.

For bots that emit only raw data, with :mod:`tbmon.analytics` (the one implementation of the
formulas). The raw input contract:

- **Portfolio value**: the metric ``trading_portfolio_value_usd`` (a gauge, or a non-monotonic
  sum), one series per resource and data point attributes (for example ``strategy``). Samples are
  put on the calendar grid of :class:`tbmon.analytics.ReturnGrid` by their own timestamps, as
  the instrumentation puts a bot's values: PROCESSORS_ANALYTICS_PERIOD_SECONDS (unset: chosen
  from the samples' spacing, so minutes for a bot exported every few seconds), a period's value
  its latest sample (or the one before it carried over), simple returns over the last
  PROCESSORS_ANALYTICS_WINDOW_PERIODS (1440) periods, annualised over a calendar year of periods
  unless PROCESSORS_ANALYTICS_PERIODS_PER_YEAR says otherwise (with a set period only).
- **Closed trades**: a log record or a span event carrying the attribute ``trade.pnl_usd``
  (realised profit or loss in USD, a number); optional ``trade.id`` (identity, so a retried batch
  is not counted twice) and ``strategy`` (one trade series per strategy).
- **Positions**: the metric ``trading_position_exposure_usd`` (a gauge, or a non-monotonic sum),
  one data point per open position: attribute ``symbol`` (required) and the position's signed
  exposure in USD (short is negative), plus the attributes of the portfolio series it belongs to
  (for example ``strategy``). A symbol's latest sample (by timestamp) is its position; report 0
  when a position closes (a symbol that stops being reported keeps its last exposure until the
  bot is forgotten).

Derived gauges (unit-less; fractions, 0.1 = 10 %), sent every PROCESSORS_DERIVE_INTERVAL_SECONDS
under the bot's own resource (so ``job`` and ``instance`` are the bot's):

- from portfolio values: ``trading_total_return``, ``trading_sharpe_ratio``,
  ``trading_sortino_ratio``, ``trading_calmar_ratio``, ``trading_max_drawdown``,
  ``trading_current_drawdown``, ``risk_var_95_percent``, ``risk_var_99_percent`` (one-day
  historical VaR), with the portfolio series' attributes, each once its sample size is reached
  (:func:`tbmon.analytics.value_gauges`: 30 returns for the ratios, 50 and 250 for the VaRs);
- from closed trades: ``trading_win_rate``, ``trading_profit_factor`` (``strategy`` attribute when
  the trades carry one);
- from positions: ``trading_open_positions`` (non-zero exposures), ``risk_position_concentration``
  (the largest position's share of gross exposure), ``risk_position_herfindahl_index`` (the sum
  of the squared shares) and, when the portfolio series with the same attributes has a value,
  ``risk_leverage_ratio`` (gross exposure over that latest value), with the positions' attributes
  less ``symbol``: the instrumentation's formulas, so both paths agree.

The current drawdown is measured from the portfolio's high-water mark, the highest period value
since the processor first saw the bot, beyond the window (``PeriodSeries.peak``). A bot is its
``service.namespace`` and ``service.name`` (its ``job``) and the series' attributes, not its
process: a restarted bot (a new ``service.instance.id``) goes on from its mark, and a crash stays a
drawdown until the portfolio recovers. The marks of up to PROCESSORS_ANALYTICS_MAX_MARKS (10,000)
series are kept, least recent out. With PROCESSORS_ANALYTICS_STATE_DIR set (the local stack, Compose
and the Kubernetes chart set it) they outlive the host's restarts too: read once at start from
``<dir>/trading-analytics.high-water-marks.json`` (:class:`tbmon.marks.MarkFile`, the file the
instrumentation keeps a bot's own marks in), and written whole, on a thread of their own, after a
collection that raised a mark (at most once per PROCESSORS_DERIVE_INTERVAL_SECONDS) and when the
host stops; a crash loses at most the rises of the last interval. Unset or ``off``, or a directory
that cannot be written (one warning): in memory only, and a restart starts them afresh from the
values it sees.

No duplicate series: a name the bot emits itself (seen in any of its metric batches) is never
derived for that bot. A value the formulas leave undefined (too few periods, no losing trade...)
is not sent at all, so Prometheus never sees NaN.

This module imports nothing of the bot side (``tbmon.instrumentation``): the formulas, the grid and
the gauges' names and descriptions are :mod:`tbmon.analytics`'.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, ResourceMetrics
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from tbmon import analytics, attributes
from tbmon.marks import Key, MarkFile, state_directory
from tbmon.processors.api import (
    Batch,
    ExportLogsServiceRequest,
    ExportMetricsServiceRequest,
    ExportTraceServiceRequest,
    Processor,
)
from tbmon.processors.otlp import (
    PerResource,
    attribute,
    gauge,
    key_values,
    number,
    number_points,
    point_value,
    resource_metrics,
)
from tbmon.settings import TbmonSettings, read_settings
from tbmon.version import __version__

PORTFOLIO_METRIC = "trading_portfolio_value_usd"
POSITIONS_METRIC = "trading_position_exposure_usd"
SYMBOL_ATTRIBUTE = attributes.SYMBOL
PNL_ATTRIBUTE = attributes.TRADE_PNL_USD
TRADE_ID_ATTRIBUTE = attributes.TRADE_ID
STRATEGY_ATTRIBUTE = attributes.STRATEGY
SCOPE = "tbmon.processors.trading_analytics"
#: The file of the high-water marks in PROCESSORS_ANALYTICS_STATE_DIR; each mark's identity
#: (:func:`_identity`) as hexadecimal bytes.
MARKS_FILE = "trading-analytics.high-water-marks.json"
_MARK_FIELDS = ("service", "series")

_FROM_POSITIONS = (
    "trading_open_positions",
    analytics.POSITION_CONCENTRATION,
    analytics.POSITION_HERFINDAHL,
    "risk_leverage_ratio",
)
#: Derived gauge -> description.
DERIVED = {
    name: f"{text[:-1]} (derived by tbmon)."
    for name, text in {
        **analytics.VALUE_GAUGES,
        **analytics.TRADE_GAUGES,
        **{name: analytics.POSITION_GAUGES[name] for name in _FROM_POSITIONS},
    }.items()
}


class AnalyticsSettings(TbmonSettings):
    """``PROCESSORS_ANALYTICS_*``."""

    model_config = SettingsConfigDict(env_prefix="PROCESSORS_ANALYTICS_")

    period_seconds: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Length of one return period; unset: chosen from the data (ReturnGrid).",
    )
    periods_per_year: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Annualisation, with a set period only; unset: a calendar year of periods.",
    )
    window_periods: int = Field(
        default=analytics.DEFAULT_WINDOW, ge=2, description="Returns looked back on."
    )
    max_trades: int = Field(default=1000, ge=1, description="Closed trades kept per series.")
    risk_free_rate: float = Field(default=0.0, description="Annual risk-free rate for Sharpe.")
    idle_seconds: float = Field(
        default=900.0,
        gt=0,
        description="A bot silent this long is forgotten and its derived series stop.",
    )
    max_marks: int = Field(
        default=10_000,
        ge=1,
        description="Portfolio high-water marks kept (one per bot and series), least recent out.",
    )
    state_dir: str | None = Field(
        default=None,
        description=f"Directory keeping the high-water marks across restarts ({MARKS_FILE}); "
        "unset or off: in memory only.",
    )

    @field_validator("periods_per_year")
    @classmethod
    def _needs_a_period(cls, per_year: float | None, info: ValidationInfo) -> float | None:
        analytics.check_period(info.data.get("period_seconds"), per_year)
        return per_year

    def return_grid(self) -> analytics.ReturnGrid:
        """The grid portfolio values are sampled on: the instrumentation's definition."""
        return analytics.ReturnGrid(
            self.period_seconds, self.periods_per_year, self.window_periods, self.risk_free_rate
        )


@dataclass
class _Series:
    """One portfolio-value series: its point attributes, its period values and its identity
    across the bot's restarts (:func:`_identity`)."""

    attributes: list[KeyValue]
    periods: analytics.PeriodSeries
    identity: tuple[bytes, bytes]


@dataclass
class _Trades:
    """Closed trades of one (bot, strategy): P&L in arrival order, and identities seen."""

    limit: int
    pnls: deque[float] = field(init=False)
    seen: set[object] = field(default_factory=set)
    order: deque[object] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.pnls = deque(maxlen=self.limit)

    def add(self, identity: object, pnl: float) -> None:
        if identity in self.seen:
            return  # the same batch again (a retry)
        self.seen.add(identity)
        self.order.append(identity)
        if len(self.order) > 4 * self.limit:
            self.seen.discard(self.order.popleft())
        self.pnls.append(pnl)


@dataclass
class _Positions:
    """The open positions of one portfolio series: symbol -> (sample time, signed exposure)."""

    attributes: list[KeyValue]
    latest: dict[str, tuple[int, float]] = field(default_factory=dict)

    def add(self, symbol: str, time_unix_nano: int, exposure: float) -> None:
        known = self.latest.get(symbol)
        if known is None or time_unix_nano >= known[0]:
            self.latest[symbol] = (time_unix_nano, exposure)

    def held(self) -> list[float]:
        return [exposure for _, exposure in self.latest.values() if exposure != 0]


@dataclass
class _Bot:
    own: set[str] = field(default_factory=set)
    series: dict[bytes, _Series] = field(default_factory=dict)
    trades: dict[str | None, _Trades] = field(default_factory=dict)
    positions: dict[bytes, _Positions] = field(default_factory=dict)


#: The resource attributes that name a bot across its processes (Prometheus's ``job``).
_IDENTITY_ATTRIBUTES = ("service.namespace", "service.name")


def _identity(resource: Resource, series: bytes) -> tuple[bytes, bytes]:
    """A portfolio series' identity across restarts: the bot's service and the series' key."""
    service = [kv for kv in resource.attributes if kv.key in _IDENTITY_ATTRIBUTES]
    return _series_key(service), series


def _series_key(attributes: Sequence[KeyValue]) -> bytes:
    """Identity of a series by its attributes, whatever order they come in."""
    ordered = sorted(attributes, key=lambda kv: kv.key)
    return b"".join(kv.SerializeToString(deterministic=True) for kv in ordered)


class TradingAnalyticsProcessor(Processor):
    """Derives performance and risk gauges from raw portfolio values and closed trades."""

    #: Bounded work, no I/O in the hooks (see Processor.runs_inline): the marks' file is
    #: written on a thread of its own.
    runs_inline = True

    def __init__(self, settings: AnalyticsSettings | None = None) -> None:
        self.settings = settings or read_settings(AnalyticsSettings)
        self._grid = self.settings.return_grid()
        self._bots: PerResource[_Bot] = PerResource(_Bot, self.settings.idle_seconds)
        directory = state_directory(self.settings.state_dir)
        self._mark_file = MarkFile(
            None if directory is None else directory / MARKS_FILE,
            _MARK_FIELDS,
            AnalyticsSettings.variable("state_dir"),
        )
        #: High-water marks by series identity, kept beyond a bot's process (least recent first).
        self._marks = self._read_marks()
        self._marks_rose = False
        self._writer = (
            None
            if directory is None
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="analytics-marks")
        )
        self._writing: Future[None] | None = None
        self._metric_needles = tuple(
            name.encode() for name in (PORTFOLIO_METRIC, POSITIONS_METRIC, *DERIVED)
        )
        self._pnl_needle = PNL_ATTRIBUTE.encode()

    # -- raw input ----------------------------------------------------------------------------

    def process_metrics(
        self, batch: Batch[ExportMetricsServiceRequest]
    ) -> Batch[ExportMetricsServiceRequest]:
        if not batch.contains(*self._metric_needles):
            return batch
        for resource_metrics_ in batch.read().resource_metrics:
            bot = self._bots.get(resource_metrics_.resource)
            for scope_metrics in resource_metrics_.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name in DERIVED:
                        bot.own.add(metric.name)
                    elif metric.name == PORTFOLIO_METRIC:
                        self._add_values(resource_metrics_.resource, bot, metric)
                    elif metric.name == POSITIONS_METRIC:
                        self._add_positions(bot, metric)
        return batch

    def _add_values(self, resource: Resource, bot: _Bot, metric: Metric) -> None:
        for point in number_points(metric):
            key = _series_key(point.attributes)
            series = bot.series.get(key)
            if series is None:
                identity = _identity(resource, key)
                periods = analytics.PeriodSeries(self._grid, peak=self._marks.get(identity))
                series = bot.series[key] = _Series(list(point.attributes), periods, identity)
            series.periods.add(point.time_unix_nano, point_value(point))

    def _add_positions(self, bot: _Bot, metric: Metric) -> None:
        for point in number_points(metric):
            symbol = attribute(point.attributes, SYMBOL_ATTRIBUTE)
            exposure = point_value(point)
            if symbol is None or not math.isfinite(exposure):
                continue
            rest = [kv for kv in point.attributes if kv.key != SYMBOL_ATTRIBUTE]
            key = _series_key(rest)
            book = bot.positions.get(key)
            if book is None:
                book = bot.positions[key] = _Positions(rest)
            book.add(symbol.string_value, point.time_unix_nano, exposure)

    def process_logs(
        self, batch: Batch[ExportLogsServiceRequest]
    ) -> Batch[ExportLogsServiceRequest]:
        if not batch.contains(self._pnl_needle):
            return batch
        for resource_logs in batch.read().resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    time = record.time_unix_nano or record.observed_time_unix_nano
                    self._add_trade(resource_logs.resource, record.attributes, (time,))
        return batch

    def process_spans(
        self, batch: Batch[ExportTraceServiceRequest]
    ) -> Batch[ExportTraceServiceRequest]:
        if not batch.contains(self._pnl_needle):
            return batch
        for resource_spans in batch.read().resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    for event in span.events:
                        identity = (span.trace_id, span.span_id, event.time_unix_nano)
                        self._add_trade(resource_spans.resource, event.attributes, identity)
        return batch

    def _add_trade(
        self, resource: Resource, attributes: Sequence[KeyValue], identity: tuple[object, ...]
    ) -> None:
        pnl = number(attribute(attributes, PNL_ATTRIBUTE))
        if pnl is None or not math.isfinite(pnl):
            return
        trade_id = attribute(attributes, TRADE_ID_ATTRIBUTE)
        strategy_value = attribute(attributes, STRATEGY_ATTRIBUTE)
        strategy = strategy_value.string_value if strategy_value is not None else None
        bot = self._bots.get(resource)
        trades = bot.trades.get(strategy)
        if trades is None:
            trades = bot.trades[strategy] = _Trades(self.settings.max_trades)
        key = ("id", trade_id.SerializeToString()) if trade_id is not None else (*identity, pnl)
        trades.add(key, pnl)

    # -- derived output -----------------------------------------------------------------------

    def collect_metrics(self, now_unix_nano: int) -> Sequence[ResourceMetrics]:
        results = []
        for resource, bot in self._bots.live():
            points: dict[str, list[tuple[list[KeyValue], float]]] = {}
            for series in bot.series.values():
                sampled = series.periods.sample()
                self._keep_mark(series.identity, sampled)
                derived = analytics.value_gauges(sampled, self._grid)
                for name, value in derived.items():
                    points.setdefault(name, []).append((series.attributes, value))
            for strategy, trades in bot.trades.items():
                labels = key_values({} if strategy is None else {STRATEGY_ATTRIBUTE: strategy})
                for name, value in analytics.trade_gauges(list(trades.pnls)).items():
                    points.setdefault(name, []).append((labels, value))
            for key, book in bot.positions.items():
                portfolio = bot.series.get(key)
                equity = portfolio.periods.latest() if portfolio is not None else None
                for name, value in _position_gauges(book.held(), equity).items():
                    points.setdefault(name, []).append((book.attributes, value))
            metrics = [
                gauge(name, values, now_unix_nano, description=DERIVED[name])
                for name, values in points.items()
                if name not in bot.own
            ]
            if metrics:
                results.append(resource_metrics(resource, SCOPE, metrics, __version__))
        self._save_marks()
        return results

    def _keep_mark(self, identity: tuple[bytes, bytes], sampled: analytics.Sampled | None) -> None:
        mark = None if sampled is None else sampled.high_water_mark()
        if mark is None:
            return
        known = self._marks.get(identity)
        if known is None or mark > known:
            self._marks[identity] = mark
            self._marks_rose = True
        self._marks.move_to_end(identity)
        while len(self._marks) > self.settings.max_marks:
            self._marks.popitem(last=False)

    # -- the marks' file ----------------------------------------------------------------------

    def _read_marks(self) -> OrderedDict[tuple[bytes, bytes], float]:
        """The marks the file holds (the newest max_marks of them), decoded."""
        try:
            marks = OrderedDict(
                (_decoded(key), peak) for key, peak in self._mark_file.marks.items()
            )
        except ValueError as error:
            self._mark_file.warn(f"cannot read {self._mark_file.path}: {error}")
            return OrderedDict()
        while len(marks) > self.settings.max_marks:
            marks.popitem(last=False)
        return marks

    def _save_marks(self) -> None:
        """Hand the marks to the writer's thread when one rose, so the host's loop never waits
        on a disk; while a write is under way, a later collection hands them over."""
        if self._writer is None or not self._marks_rose:
            return
        if self._writing is not None and not self._writing.done():
            return
        self._marks_rose = False
        self._writing = self._writer.submit(self._write_marks, list(self._marks.items()))

    def _write_marks(self, marks: list[tuple[tuple[bytes, bytes], float]]) -> None:
        self._mark_file.save(
            {(service.hex(), series.hex()): peak for (service, series), peak in marks}
        )

    def close(self) -> None:
        """Wait for the write under way, then write the marks that rose since (the values
        received after the last collection included)."""
        if self._writer is None:
            return
        self._writer.shutdown(wait=True)
        for _, bot in self._bots.live():
            for series in bot.series.values():
                self._keep_mark(series.identity, series.periods.sample())
        if self._marks_rose:
            self._marks_rose = False
            self._write_marks(list(self._marks.items()))


def _decoded(key: Key) -> tuple[bytes, bytes]:
    """A mark's identity from its file's fields (hexadecimal); ValueError if it is none."""
    service, series = key
    if service is None or series is None:
        raise ValueError(f"a mark needs both {' and '.join(_MARK_FIELDS)}")
    return bytes.fromhex(service), bytes.fromhex(series)


def _position_gauges(held: list[float], equity: float | None) -> dict[str, float]:
    """Open positions, concentration and (with a portfolio value) leverage of the exposures."""
    gauges = {
        "trading_open_positions": float(len(held)),
        analytics.POSITION_CONCENTRATION: analytics.position_concentration(held),
        analytics.POSITION_HERFINDAHL: analytics.herfindahl_index(held),
    }
    leverage = analytics.leverage_ratio(held, equity) if equity is not None else None
    if leverage is not None:
        gauges["risk_leverage_ratio"] = leverage
    return gauges
