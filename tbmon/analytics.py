"""Trading performance and risk formulas: the one implementation tbmon uses everywhere.

The instrumentation derives the seed's gauges from a bot's raw inputs with these functions, and
the trading-analytics processor derives the same gauges from raw telemetry with them, so a number
never differs between the two paths.

Conventions (as in quantstats and nautilus_trader, not freqtrade):

- ``returns`` are simple returns per period (daily bins unless stated); the risk-free rate is 0
  unless given; ``periods_per_year`` is 252 for markets with trading days, 365 for crypto.
- Losses (drawdown, VaR, expected shortfall) are positive fractions: 0.1 means 10 %.
- A value that is undefined for its input (fewer than two returns, zero deviation, no losing
  trade...) is ``None``: callers emit no sample, so Prometheus never sees NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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


def current_drawdown(values: Sequence[float]) -> float:
    """How far the latest value sits below the highest so far, as a positive fraction."""
    if not values:
        return 0.0
    peak = max(values)
    return (peak - values[-1]) / peak if peak > 0 else 0.0


def cagr(returns: Sequence[float], periods_per_year: float = TRADING_DAYS_PER_YEAR) -> float | None:
    """Compound annual growth rate of the returns; None without returns or after a total loss."""
    if not returns:
        return None
    growth = math.prod(1.0 + r for r in returns)
    if growth <= 0:
        return None
    return growth ** (periods_per_year / len(returns)) - 1.0


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


#: The gauges :func:`value_gauges` derives from a portfolio's period values -> description.
VALUE_GAUGES = {
    "trading_total_return": "Total return over the window, a fraction.",
    "trading_sharpe_ratio": "Annualised Sharpe ratio of the period returns.",
    "trading_sortino_ratio": "Annualised Sortino ratio of the period returns.",
    "trading_calmar_ratio": "CAGR over max drawdown.",
    "trading_max_drawdown": "Largest fall from a peak, a fraction.",
    "trading_current_drawdown": "Fall of the latest value from the peak, a fraction.",
    "risk_var_95_percent": "Historical 95% Value at Risk of one period, a fraction.",
    "risk_var_99_percent": "Historical 99% Value at Risk of one period, a fraction.",
}
#: The gauges :func:`trade_gauges` derives from closed trades' P&L -> description.
TRADE_GAUGES = {
    "trading_win_rate": "Share of closed trades with a profit.",
    "trading_profit_factor": "Gross profit over gross loss of closed trades.",
}


def value_gauges(
    values: Sequence[float],
    periods_per_year: float = CALENDAR_DAYS_PER_YEAR,
    risk_free_rate: float = 0.0,
) -> dict[str, float]:
    """The seed's performance and risk gauges of one portfolio's period values, by metric name.

    The instrumentation and the trading-analytics processor both publish exactly this, so the
    two paths never disagree. Undefined values are left out (no sample, never NaN).
    """
    if len(values) < 2:
        return {}
    returns = simple_returns(values)
    return _defined(
        {
            "trading_total_return": total_return(values),
            "trading_sharpe_ratio": sharpe_ratio(returns, periods_per_year, risk_free_rate),
            "trading_sortino_ratio": sortino_ratio(returns, periods_per_year),
            "trading_calmar_ratio": calmar_ratio(returns, periods_per_year),
            "trading_max_drawdown": max_drawdown_of_values(values),
            "trading_current_drawdown": current_drawdown(values),
            "risk_var_95_percent": historical_var(returns, 0.95),
            "risk_var_99_percent": historical_var(returns, 0.99),
        }
    )


def trade_gauges(pnls: Sequence[float]) -> dict[str, float]:
    """Win rate and profit factor of closed trades' P&L, by metric name (undefined left out)."""
    return _defined(
        {"trading_win_rate": win_rate(pnls), "trading_profit_factor": profit_factor(pnls)}
    )


@dataclass
class PeriodSeries:
    """A value series binned into fixed periods: the latest sample of each, the newest ``window``.

    Returns are taken between periods (daily by default), whatever rate the bot samples at.
    """

    period_ns: int
    window: int
    _periods: dict[int, tuple[int, float]] = field(default_factory=dict)

    def add(self, time_unix_nano: int, value: float) -> None:
        index = time_unix_nano // self.period_ns
        latest = self._periods.get(index)
        if latest is None or time_unix_nano >= latest[0]:
            self._periods[index] = (time_unix_nano, value)
        while len(self._periods) > self.window:
            del self._periods[min(self._periods)]

    def values(self) -> list[float]:
        """The periods' values, oldest first."""
        return [self._periods[index][1] for index in sorted(self._periods)]

    def latest(self) -> float | None:
        return self._periods[max(self._periods)][1] if self._periods else None


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
