"""Trading performance and risk formulas: the one implementation tbmon uses everywhere.

The instrumentation derives the seed's gauges from a bot's raw inputs with these functions, and
the trading-analytics processor derives the same gauges from raw telemetry with them, so a number
never differs between the two paths: both sample values on a :class:`ReturnGrid` (the period,
its annualisation, the window and the sample sizes are defined here only) and publish
:func:`value_gauges`, :func:`trade_gauges` and :func:`correlation_gauge`.

Conventions (as in quantstats and nautilus_trader, not freqtrade):

- ``returns`` are simple returns per period of a calendar grid; the risk-free rate is 0 unless
  given (annual, divided by ``periods_per_year`` per period); ``periods_per_year`` is a calendar
  year of periods (365 daily, 525,600 by the minute) unless set (a compressed clock, as the
  demo's). The grid is calendar time: a market's closed hours are periods whose value carried
  over, so the calendar count is right for stocks too (252 would annualise a calendar grid
  wrongly).
- Losses (drawdown, VaR, expected shortfall) are positive fractions: 0.1 means 10 %.
- A value that is undefined for its input (too few returns, zero deviation, no losing
  trade...) is ``None``: callers emit no sample, so Prometheus never sees NaN or infinity.

Checked against numpy (``tests/test_analytics.py``) on intraday and daily series, and
against quantstats 0.0.86 and empyrical-reloaded 0.7.1 (equal to float precision when both are
given the same periods per year; their VaR and drawdown are negative numbers where these are
positive losses).

The annualised Sharpe ratio of N returns has a standard error of about
``sqrt((1 + SR_period**2 / 2) * periods_per_year / N)`` (Lo, 2002): about one over the square
root of the years of history, whatever the grid. Thirty one-minute returns make a figure, not a
verdict: its error is about 130; after a day of minutes about 19, after a month about 3.5.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from statistics import NormalDist, fmean

TRADING_DAYS_PER_YEAR = 252
CALENDAR_DAYS_PER_YEAR = 365


def simple_returns(values: Sequence[float]) -> list[float]:
    """Period-over-period simple returns of a value series (portfolio values, prices).

    A period that starts at a non-positive value has no defined return and is skipped.
    """
    return [current / previous - 1.0 for previous, current in pairwise(values) if previous > 0]


def total_return(values: Sequence[float]) -> float | None:
    """Last value over first, minus one; None without two values or a positive start."""
    if len(values) < 2 or values[0] <= 0:
        return None
    return values[-1] / values[0] - 1.0


def sharpe_ratio(
    returns: Sequence[float],
    periods_per_year: float = TRADING_DAYS_PER_YEAR,
    risk_free_rate: float = 0.0,
) -> float | None:
    """Annualised Sharpe ratio: mean excess return over its sample deviation, times sqrt(P).

    ``risk_free_rate`` is annual and is turned into a per-period rate. None with fewer than two
    returns or zero deviation.
    """
    if len(returns) < 2:
        return None
    per_period = risk_free_rate / periods_per_year
    excess = [r - per_period for r in returns]
    deviation = _sample_std(excess)
    if _negligible(deviation, excess):
        return None
    return fmean(excess) / deviation * math.sqrt(periods_per_year)


def sortino_ratio(
    returns: Sequence[float], periods_per_year: float = TRADING_DAYS_PER_YEAR
) -> float | None:
    """Annualised Sortino ratio: mean return over the downside deviation (all N periods).

    None with fewer than two returns or without a single losing period.
    """
    if len(returns) < 2:
        return None
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    if downside == 0:
        return None
    return fmean(returns) / downside * math.sqrt(periods_per_year)


def max_drawdown(returns: Iterable[float]) -> float:
    """Largest fall from a running peak of the equity curve prod(1 + r), the peak starting at 1.

    A positive fraction; 0.0 for a curve that never falls (or no returns at all).
    """
    equity = peak = 1.0
    worst = 0.0
    for r in returns:
        equity *= 1.0 + r
        peak = max(peak, equity)
        worst = max(worst, (peak - equity) / peak)
    return worst


def max_drawdown_of_values(values: Sequence[float]) -> float:
    """:func:`max_drawdown` of a value series (portfolio values), the peak starting at the first."""
    return max_drawdown(simple_returns(values))


def current_drawdown(values: Sequence[float], peak: float | None = None) -> float:
    """How far the latest value sits below its high-water mark, as a positive fraction.

    The high-water mark is the highest of ``values`` and of ``peak``, the highest value before
    them (:attr:`Sampled.peak`: the periods that left the analytics window, and what a bot
    remembered across a restart), so the drawdown stays for as long as the portfolio has not
    recovered, however long ago its peak was. 0.0 without values or without a positive peak.
    """
    if not values:
        return 0.0
    high = max(values) if peak is None else max(peak, *values)
    return (high - values[-1]) / high if high > 0 else 0.0


def cagr(returns: Sequence[float], periods_per_year: float = TRADING_DAYS_PER_YEAR) -> float | None:
    """Compound annual growth rate of the returns; None without returns, after a total loss, or
    when a year of such growth is beyond a float (a short, steep history extrapolated)."""
    if not returns:
        return None
    growth = math.prod(1.0 + r for r in returns)
    if growth <= 0 or not math.isfinite(growth):
        return None
    try:
        return growth ** (periods_per_year / len(returns)) - 1.0
    except OverflowError:
        return None


def calmar_ratio(
    returns: Sequence[float], periods_per_year: float = TRADING_DAYS_PER_YEAR
) -> float | None:
    """CAGR over max drawdown; None without a drawdown or a defined CAGR."""
    growth = cagr(returns, periods_per_year)
    drawdown = max_drawdown(returns)
    if growth is None or drawdown == 0:
        return None
    return growth / drawdown


def win_rate(pnls: Sequence[float]) -> float | None:
    """Share of closed trades with a profit; None without closed trades."""
    if not pnls:
        return None
    return sum(1 for pnl in pnls if pnl > 0) / len(pnls)


def profit_factor(pnls: Iterable[float]) -> float | None:
    """Gross profit over absolute gross loss; None without a losing trade."""
    profit = loss = 0.0
    for pnl in pnls:
        if pnl > 0:
            profit += pnl
        else:
            loss -= pnl
    if loss == 0:
        return None
    return profit / loss


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (numpy's default)."""
    if not values:
        raise ValueError("quantile of an empty sequence")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile level must be within [0, 1], got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def historical_var(returns: Sequence[float], confidence: float = 0.95) -> float | None:
    """Historical Value at Risk: -quantile(r, 1 - c), the loss fraction at confidence c.

    Positive for a loss; negative when even the 1 - c quantile is a gain (every return
    positive), as the standard formula has it. None with fewer than two returns.
    """
    _check_confidence(confidence)
    if len(returns) < 2:
        return None
    return 0.0 - quantile(returns, 1.0 - confidence)  # never -0.0


def parametric_var(returns: Sequence[float], confidence: float = 0.95) -> float | None:
    """Gaussian Value at Risk: -(mean + z_(1-c) * sample deviation); None with < 2 returns."""
    _check_confidence(confidence)
    if len(returns) < 2:
        return None
    z = NormalDist().inv_cdf(1.0 - confidence)
    return -(fmean(returns) + z * _sample_std(returns))


def expected_shortfall(returns: Sequence[float], confidence: float = 0.95) -> float | None:
    """Expected shortfall (CVaR): minus the mean of the returns at or below the VaR quantile."""
    _check_confidence(confidence)
    if len(returns) < 2:
        return None
    cutoff = quantile(returns, 1.0 - confidence)
    tail = [r for r in returns if r <= cutoff]
    return -fmean(tail)


def position_concentration(exposures: Iterable[float]) -> float:
    """The largest position's share of gross exposure (the sum of absolute exposures), in
    [1/n, 1].

    1.0 means everything sits in one position (a bot with one open trade reads 1.0), 0.5 two
    equal positions, 1/n an even spread over n; 0.0 without positions.
    """
    sizes = [abs(exposure) for exposure in exposures]
    gross = sum(sizes)
    if gross == 0:
        return 0.0
    return max(sizes) / gross


def herfindahl_index(exposures: Iterable[float]) -> float:
    """Herfindahl-Hirschman index of the positions' absolute exposures: the sum of their squared
    shares of gross exposure, in [1/n, 1]; 1/HHI is the effective number of positions.

    1.0 means everything sits in one position, 1/n an even spread over n; 0.0 without positions.
    """
    sizes = [abs(exposure) for exposure in exposures]
    gross = sum(sizes)
    if gross == 0:
        return 0.0
    return sum((size / gross) ** 2 for size in sizes)


def leverage_ratio(exposures: Iterable[float], equity: float) -> float | None:
    """Gross exposure (sum of absolute position values) over equity; None unless equity > 0."""
    if equity <= 0:
        return None
    return sum(abs(exposure) for exposure in exposures) / equity


def average_correlation(returns_by_asset: Mapping[str, Sequence[float]]) -> float | None:
    """Mean pairwise Pearson correlation of the assets' returns (aligned on their last periods).

    None with fewer than two assets that each have two or more returns and non-zero deviation.
    """
    series = [list(r) for r in returns_by_asset.values() if len(r) >= 2]
    length = min((len(s) for s in series), default=0)
    aligned = [
        s[-length:]
        for s in series
        if length >= 2 and not _negligible(_sample_std(s[-length:]), s[-length:])
    ]
    pairs = [
        _pearson(aligned[i], aligned[j])
        for i in range(len(aligned))
        for j in range(i + 1, len(aligned))
    ]
    return fmean(pairs) if pairs else None


#: The gauges :func:`value_gauges` derives from a portfolio's values -> description.
VALUE_GAUGES = {
    "trading_total_return": "Total return over the window, a fraction.",
    "trading_sharpe_ratio": "Annualised Sharpe ratio of the period returns.",
    "trading_sortino_ratio": "Annualised Sortino ratio of the period returns.",
    "trading_calmar_ratio": "CAGR over max drawdown.",
    "trading_max_drawdown": "Largest fall from a peak within the window, a fraction.",
    "trading_current_drawdown": (
        "Fall of the latest value below its high-water mark (the highest since the bot started, "
        "beyond the window), a fraction."
    ),
    "risk_var_95_percent": "Historical 95% one-day Value at Risk, a fraction.",
    "risk_var_99_percent": "Historical 99% one-day Value at Risk, a fraction.",
}
#: The gauges :func:`trade_gauges` derives from closed trades' P&L -> description.
TRADE_GAUGES = {
    "trading_win_rate": "Share of closed trades with a profit.",
    "trading_profit_factor": "Gross profit over gross loss of closed trades.",
}
#: The positions' concentration: the largest position's share of gross exposure (the seed's
#: metric), and the Herfindahl index of all their shares.
POSITION_CONCENTRATION = "risk_position_concentration"
POSITION_HERFINDAHL = "risk_position_herfindahl_index"
#: The gauges of one strategy's positions (and prices) -> description.
POSITION_GAUGES = {
    "trading_portfolio_value_usd": "Current portfolio value in USD.",
    "trading_open_positions": "Number of open positions.",
    POSITION_CONCENTRATION: "The largest position's share of gross exposure (absolute values).",
    POSITION_HERFINDAHL: "Herfindahl index of the positions' shares of gross exposure.",
    "risk_leverage_ratio": "Gross exposure over portfolio value.",
    "risk_correlation_score": "Mean pairwise correlation of the held symbols' returns.",
}

# -- the return grid ----------------------------------------------------------------------------

DAY_SECONDS = 86400
#: A calendar year: crypto trades every day, so a year of daily periods is 365.
YEAR_SECONDS = CALENDAR_DAYS_PER_YEAR * DAY_SECONDS
#: The grids returns are sampled on when no period is set, finest first: the finest one the
#: samples' spacing fills is chosen (a bot reporting every few seconds gets minutes, one
#: reporting daily gets days).
GRID_SECONDS = (60, 300, 900, 3600, 14400, DAY_SECONDS)
#: Periods (returns) the derived metrics look back on: a day of minutes, four years of days.
DEFAULT_WINDOW = 1440
#: Fewest observed returns behind a Sharpe or Sortino ratio, or a correlation: below 30 the
#: sample deviation itself is too unsteady to divide by.
MIN_RETURNS = 30
#: Returns expected beyond the VaR quantile before it is published: N * (1 - c) >= 2.5, as in
#: Basel's 250 days for a 99 % VaR: 50 returns at 95 %, 250 at 99 % (with fewer, the 99 % VaR
#: is the worst return or close to it).
VAR_TAIL_RETURNS = 2.5
#: Span of returns a Calmar ratio needs: its CAGR extrapolates to a year, and from less than a
#: month of returns that extrapolation is no figure (1 % in an hour is 10^38 a year).
MIN_CALMAR_DAYS = 30


def periods_per_year(period_seconds: float) -> float:
    """Periods of ``period_seconds`` in a calendar year: 365 daily, 8,760 hourly, 525,600 by the
    minute. A market that closes adds periods with a zero return (the value carries over), so
    the calendar count is also right for it."""
    return YEAR_SECONDS / period_seconds


def var_min_returns(confidence: float) -> int:
    """Observed returns a historical VaR at ``confidence`` needs (:data:`VAR_TAIL_RETURNS`)."""
    return math.ceil(VAR_TAIL_RETURNS / (1.0 - confidence) - 1e-9)


@dataclass(frozen=True)
class ReturnGrid:
    """How a value series becomes period returns: the one definition the bot and the pipeline
    share (the instrumentation's ``TBMON_ANALYTICS_*`` and the processors'
    ``PROCESSORS_ANALYTICS_*`` settings both build one).

    Values are sampled on a calendar grid of ``period_seconds`` (None: the finest of
    :data:`GRID_SECONDS` the samples fill), the latest sample of each period counting; a period
    without a sample carries the previous value over (a zero return), so a reporting gap is
    never merged into one period. Returns are annualised with ``periods_per_year`` (None: a
    calendar year of periods, :func:`periods_per_year`), which needs a set period. ``window``
    is the number of returns looked back on.
    """

    period_seconds: float | None = None
    periods_per_year: float | None = None
    window: int = DEFAULT_WINDOW
    risk_free_rate: float = 0.0

    def __post_init__(self) -> None:
        check_period(self.period_seconds, self.periods_per_year)
        if self.window < 2:
            raise ValueError(f"the window must hold at least two returns, got {self.window}")

    def annualisation(self, period_seconds: float) -> float:
        """Periods per year of a grid of ``period_seconds``."""
        if self.periods_per_year is not None:
            return self.periods_per_year
        return periods_per_year(period_seconds)


def check_period(period_seconds: float | None, per_year: float | None) -> None:
    """Raise ValueError for a period or annualisation no grid can use."""
    if period_seconds is not None and not (math.isfinite(period_seconds) and period_seconds > 0):
        raise ValueError(f"the period must be a positive number of seconds, got {period_seconds}")
    if per_year is not None:
        if not (math.isfinite(per_year) and per_year > 0):
            raise ValueError(f"periods per year must be positive, got {per_year}")
        if period_seconds is None:
            raise ValueError(
                "periods per year needs a set period: the chosen grid's own annualisation "
                "applies otherwise"
            )


@dataclass(frozen=True)
class Sampled:
    """A value series on its grid: one value per period, oldest first, from grid index
    ``start``; ``observed[i]`` says whether period i had a sample of its own (else its value
    was carried over from the period before). ``peak`` is the high-water mark before the
    window (:attr:`PeriodSeries.peak`), None if nothing came before it."""

    period_seconds: float
    start: int
    values: list[float]
    observed: list[bool]
    peak: float | None = None

    def high_water_mark(self) -> float | None:
        """The highest value so far: the window's values and the peak before them."""
        if not self.values:
            return self.peak
        return max(self.values) if self.peak is None else max(self.peak, *self.values)

    def returns(self) -> list[float]:
        """Simple returns between consecutive periods (none after a non-positive value)."""
        return simple_returns(self.values)

    def between(self, first: int, last: int) -> Sampled:
        """The periods from grid index ``first`` to ``last``, both included."""
        head, tail = first - self.start, last - self.start + 1
        return Sampled(
            self.period_seconds, first, self.values[head:tail], self.observed[head:tail], self.peak
        )

    def observed_returns(self) -> int:
        """Returns ending in a period that had a sample: the sample size of the statistics."""
        return sum(
            1
            for previous, seen in zip(self.values, self.observed[1:], strict=False)
            if seen and previous > 0
        )


class PeriodSeries:
    """A value series kept for a :class:`ReturnGrid`: the latest sample of each base period.

    The base period is the grid's period, or the finest of :data:`GRID_SECONDS` when the grid is
    chosen from the data. :meth:`sample` puts the series on its grid; adding is a dict update.
    Memory is bounded: what lies before the window is dropped when sampled, and at most
    :data:`_SPARE` times ``window`` base periods are ever kept.

    What leaves the window is not forgotten entirely: :attr:`peak`, the high-water mark, keeps
    the highest period value dropped (and a ``peak`` given at creation: what a bot remembered
    of its portfolio before a restart), so :func:`current_drawdown` measures from the highest
    value since the series began, not from the window's. Nothing but a new series resets it.
    """

    #: Base periods kept per grid period of the window, at most: the largest step between two
    #: grids of :data:`GRID_SECONDS` (4 h to a day).
    _SPARE = 6

    def __init__(self, grid: ReturnGrid, peak: float | None = None) -> None:
        self.grid = grid
        #: The highest period value that left the window (or was given): the high-water mark
        #: before the window.
        self.peak = peak
        self._base_seconds = grid.period_seconds or float(GRID_SECONDS[0])
        self._base_ns = round(self._base_seconds * 1e9)
        self._steps = (
            (1,)
            if grid.period_seconds is not None
            else tuple(round(seconds / GRID_SECONDS[0]) for seconds in GRID_SECONDS)
        )
        self._limit = self._SPARE * (grid.window + 1)
        self._cells: dict[int, tuple[int, float]] = {}

    def add(self, time_unix_nano: int, value: float) -> None:
        index = time_unix_nano // self._base_ns
        latest = self._cells.get(index)
        if latest is None:
            self._cells[index] = (time_unix_nano, value)
            if len(self._cells) > self._limit:
                self._raise_peak(self._cells.pop(min(self._cells))[1])
        elif time_unix_nano >= latest[0]:
            self._cells[index] = (time_unix_nano, value)

    def latest(self) -> float | None:
        """The newest sample's value."""
        return self._cells[max(self._cells)][1] if self._cells else None

    def step(self) -> int:
        """The grid's period in base periods: the finest grid at least as long as nine in ten
        of the spacings between the latest samples (1 with a set period)."""
        if len(self._steps) == 1 or len(self._cells) < 2:
            return self._steps[0]
        recent = sorted(self._cells)[-(_SPACINGS + 1) :]
        spacings = sorted(b - a for a, b in pairwise(recent))
        typical = spacings[math.ceil(0.9 * len(spacings)) - 1]
        return next((step for step in self._steps if step >= typical), self._steps[-1])

    def sample(self, step: int | None = None) -> Sampled | None:
        """The series on its grid (or on ``step`` base periods), the newest ``window`` returns;
        None while it is empty. Drops what lies before the window."""
        if not self._cells:
            return None
        step = step or self.step()
        by_period: dict[int, float] = {}
        for index in sorted(self._cells):  # later base periods overwrite earlier ones
            by_period[index // step] = self._cells[index][1]
        periods = list(by_period)
        last = periods[-1]
        start = max(periods[0], last - self.grid.window)
        carried = None
        for period in periods:
            if period >= start:
                break
            carried = period
        values: list[float] = []
        observed: list[bool] = []
        value = by_period[carried] if carried is not None else by_period[start]
        for period in range(start, last + 1):
            seen = period in by_period
            if seen:
                value = by_period[period]
            values.append(value)
            observed.append(seen)
        keep_from = (start if start in by_period or carried is None else carried) * step
        for period in periods:
            if period * step >= keep_from:
                break
            self._raise_peak(by_period[period])  # a whole period leaves: its value is final
        for index in [index for index in self._cells if index < keep_from]:
            del self._cells[index]
        return Sampled(self._base_seconds * step, start, values, observed, self.peak)

    def _raise_peak(self, value: float) -> None:
        if self.peak is None or value > self.peak:
            self.peak = value


#: Spacings between the latest samples that choose a series' grid.
_SPACINGS = 256


def value_gauges(series: Sampled | None, grid: ReturnGrid) -> dict[str, float]:
    """The seed's performance and risk gauges of one portfolio's values on its grid, by name.

    The instrumentation and the trading-analytics processor both publish exactly this, so the
    two paths never disagree. Total return and drawdowns need two periods; the others need the
    sample sizes above (:data:`MIN_RETURNS`, :func:`var_min_returns`, :data:`MIN_CALMAR_DAYS`),
    counted in observed returns. VaR is of one day: the one-period historical VaR scaled by the
    square root of the periods in a day (the square-root-of-time rule), so that its meaning and
    the alert thresholds do not change with the grid. The current drawdown is measured from the
    series' high-water mark (:attr:`Sampled.peak` too), so it is defined from the first value
    when a peak came before it. Undefined values are left out (no sample, never NaN).
    """
    if series is None or not series.values:
        return {}
    values = series.values
    if len(values) < 2:
        if series.peak is None:
            return {}
        return {"trading_current_drawdown": current_drawdown(values, series.peak)}
    returns = series.returns()
    count = series.observed_returns()
    per_year = grid.annualisation(series.period_seconds)
    day = math.sqrt(max(1.0, per_year / CALENDAR_DAYS_PER_YEAR))
    gauges: dict[str, float | None] = {
        "trading_total_return": total_return(values),
        "trading_max_drawdown": max_drawdown_of_values(values),
        "trading_current_drawdown": current_drawdown(values, series.peak),
    }
    if count >= MIN_RETURNS:
        gauges["trading_sharpe_ratio"] = sharpe_ratio(returns, per_year, grid.risk_free_rate)
        gauges["trading_sortino_ratio"] = sortino_ratio(returns, per_year)
        if len(returns) / per_year * CALENDAR_DAYS_PER_YEAR >= MIN_CALMAR_DAYS:
            gauges["trading_calmar_ratio"] = calmar_ratio(returns, per_year)
    for name, confidence in (("risk_var_95_percent", 0.95), ("risk_var_99_percent", 0.99)):
        if count >= var_min_returns(confidence):
            var = historical_var(returns, confidence)
            gauges[name] = None if var is None else var * day
    return _defined(gauges)


def correlation_gauge(series: Sequence[PeriodSeries]) -> float | None:
    """Mean pairwise correlation of the series' returns on a common grid (the coarsest of
    theirs), over the periods they all cover; series with fewer than :data:`MIN_RETURNS`
    observed returns are left out. None unless two series remain with that many returns
    observed in both."""
    present = [s for s in series if s.latest() is not None]
    if len(present) < 2:
        return None
    step = max(s.step() for s in present)
    sampled = [
        s
        for s in (p.sample(step) for p in present)
        if s is not None and s.observed_returns() >= MIN_RETURNS
    ]
    if len(sampled) < 2:
        return None
    first = max(s.start for s in sampled)
    last = min(s.start + len(s.values) - 1 for s in sampled)
    shared = [s.between(first, last) for s in sampled]
    if sum(all(seen) for seen in zip(*(s.observed[1:] for s in shared), strict=True)) < MIN_RETURNS:
        return None
    return average_correlation({str(i): s.returns() for i, s in enumerate(shared)})


def trade_gauges(pnls: Sequence[float]) -> dict[str, float]:
    """Win rate and profit factor of closed trades' P&L, by metric name (undefined left out)."""
    return _defined(
        {"trading_win_rate": win_rate(pnls), "trading_profit_factor": profit_factor(pnls)}
    )


def _defined(values: Mapping[str, float | None]) -> dict[str, float]:
    return {name: v for name, v in values.items() if v is not None and math.isfinite(v)}


#: A deviation this small relative to the values it describes is float noise, not variation:
#: returns of a steady 1 % a period differ in their 17th digit, and their Sharpe ratio is
#: undefined, not 10^15.
_RELATIVE_NOISE = 1e-12


def _negligible(deviation: float, values: Sequence[float]) -> bool:
    return deviation <= _RELATIVE_NOISE * max((abs(v) for v in values), default=0.0)


def _sample_std(values: Sequence[float]) -> float:
    mean = fmean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _pearson(a: Sequence[float], b: Sequence[float]) -> float:
    mean_a, mean_b = fmean(a), fmean(b)
    covariance = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True))
    spread_a = math.sqrt(sum((x - mean_a) ** 2 for x in a))
    spread_b = math.sqrt(sum((y - mean_b) ** 2 for y in b))
    return covariance / (spread_a * spread_b)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")
