"""The trading formulas, against the notes' check values and numpy as an independent oracle."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from tbmon import analytics

RETURNS = [0.01, -0.02, 0.015, -0.005, 0.025]
PNLS = [10.0, -20.0, 30.0, -40.0]


def test_sharpe_matches_the_reference_value() -> None:
    assert analytics.sharpe_ratio(RETURNS, 252) == pytest.approx(4.48998886412873, abs=1e-9)


def test_sharpe_subtracts_the_per_period_risk_free_rate() -> None:
    expected = (np.mean(RETURNS) - 0.0252 / 252) / np.std(RETURNS, ddof=1) * math.sqrt(252)
    assert analytics.sharpe_ratio(RETURNS, 252, 0.0252) == pytest.approx(expected, abs=1e-9)


def test_sortino_uses_every_period_in_the_downside_deviation() -> None:
    r = np.array(RETURNS)
    expected = r.mean() / math.sqrt((np.minimum(r, 0) ** 2).sum() / len(r)) * math.sqrt(365)
    assert analytics.sortino_ratio(RETURNS, 365) == pytest.approx(expected, abs=1e-9)


def test_max_drawdown_reference_and_values() -> None:
    assert analytics.max_drawdown([0.10, -0.10]) == pytest.approx(0.10, abs=1e-12)
    assert analytics.max_drawdown_of_values([100, 110, 99, 120, 90]) == pytest.approx(
        0.25, abs=1e-9
    )
    assert analytics.max_drawdown([0.05, 0.02]) == 0.0
    assert analytics.max_drawdown([]) == 0.0


def test_current_drawdown_is_below_the_running_peak() -> None:
    assert analytics.current_drawdown([100, 120, 90]) == pytest.approx(0.25, abs=1e-9)
    assert analytics.current_drawdown([]) == 0.0


def test_win_rate_and_profit_factor_reference_values() -> None:
    assert analytics.win_rate(PNLS) == 0.5
    assert analytics.profit_factor(PNLS) == pytest.approx(0.6666666666666666, abs=1e-9)


def test_total_return_and_simple_returns() -> None:
    assert analytics.total_return([100.0, 90.0, 125.0]) == pytest.approx(0.25, abs=1e-9)
    assert analytics.simple_returns([100.0, 110.0, 99.0]) == pytest.approx([0.1, -0.1], abs=1e-9)


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_var_and_expected_shortfall_match_numpy(confidence: float) -> None:
    rng = random.Random(7)
    returns = [rng.gauss(0.0005, 0.02) for _ in range(500)]
    cutoff = np.percentile(returns, (1 - confidence) * 100)
    assert analytics.historical_var(returns, confidence) == pytest.approx(-cutoff, abs=1e-12)
    z = {0.95: -1.6448536269514722, 0.99: -2.3263478740408408}[confidence]
    parametric = -(np.mean(returns) + z * np.std(returns, ddof=1))
    assert analytics.parametric_var(returns, confidence) == pytest.approx(parametric, abs=1e-9)
    tail = np.array(returns)[np.array(returns) <= cutoff]
    assert analytics.expected_shortfall(returns, confidence) == pytest.approx(
        -tail.mean(), abs=1e-12
    )


def test_quantile_matches_numpy_linear_interpolation() -> None:
    values = [3.0, -1.0, 7.5, 2.0, 0.0, 4.25]
    for q in (0.0, 0.01, 0.05, 0.33, 0.5, 0.99, 1.0):
        assert analytics.quantile(values, q) == pytest.approx(np.quantile(values, q), abs=1e-12)


def test_calmar_is_cagr_over_drawdown() -> None:
    cagr = (1 + np.array(RETURNS)).prod() ** (252 / len(RETURNS)) - 1
    expected = cagr / analytics.max_drawdown(RETURNS)
    assert analytics.calmar_ratio(RETURNS, 252) == pytest.approx(expected, abs=1e-9)


def test_concentration_is_the_largest_positions_share_of_gross_exposure() -> None:
    # Two equal positions (long and short alike): each is half, exactly; the alert's "above
    # 50%" does not fire on them.
    assert analytics.position_concentration([50.0, -50.0]) == 0.5
    assert analytics.position_concentration([25_000.0, 25_000.0]) == 0.5
    assert analytics.position_concentration([60_000.0, -20_000.0, 20_000.0]) == 0.6
    assert analytics.position_concentration([100.0]) == 1.0  # one open trade
    assert analytics.position_concentration([]) == 0.0


def test_the_herfindahl_index_sums_the_squared_shares() -> None:
    assert analytics.herfindahl_index([50.0, -50.0]) == pytest.approx(0.5, abs=1e-12)
    assert analytics.herfindahl_index([60_000.0, -20_000.0, 20_000.0]) == pytest.approx(
        0.36 + 0.04 + 0.04, abs=1e-12
    )
    assert analytics.herfindahl_index([100.0]) == 1.0
    assert analytics.herfindahl_index([]) == 0.0


def test_leverage() -> None:
    assert analytics.leverage_ratio([3000.0, -1000.0], 2000.0) == pytest.approx(2.0, abs=1e-9)


def test_average_correlation_matches_numpy() -> None:
    rng = random.Random(3)
    a = [rng.gauss(0, 1) for _ in range(50)]
    b = [x + rng.gauss(0, 0.5) for x in a]
    c = [rng.gauss(0, 1) for _ in range(50)]
    matrix = np.corrcoef([a, b, c])
    expected = np.mean([matrix[0, 1], matrix[0, 2], matrix[1, 2]])
    result = analytics.average_correlation({"a": a, "b": b, "c": c})
    assert result == pytest.approx(expected, abs=1e-9)


def test_undefined_cases_give_none_never_nan() -> None:
    flat = [0.01, 0.01, 0.01]
    assert analytics.sharpe_ratio([0.01]) is None
    assert analytics.sharpe_ratio(flat) is None
    assert analytics.sortino_ratio(flat) is None
    assert analytics.historical_var([0.01]) is None
    assert analytics.parametric_var([]) is None
    assert analytics.expected_shortfall([0.02]) is None
    assert analytics.win_rate([]) is None
    assert analytics.profit_factor([5.0, 7.0]) is None
    assert analytics.total_return([0.0, 10.0]) is None
    assert analytics.total_return([10.0]) is None
    assert analytics.leverage_ratio([100.0], 0.0) is None
    assert analytics.calmar_ratio([0.01, 0.02]) is None
    assert analytics.cagr([-1.0]) is None
    # Five 5-second returns of 1 % as a year: beyond a float, no figure (it raised OverflowError
    # and took every trading gauge of the collection with it).
    assert analytics.cagr([0.01] * 5, periods_per_year=365 * 86400 / 5) is None
    assert analytics.calmar_ratio([0.01, -0.005] * 3, periods_per_year=365 * 86400 / 5) is None
    assert analytics.average_correlation({"a": [0.1, 0.2]}) is None
    assert analytics.average_correlation({"a": [0.1, 0.2], "b": [0.3, 0.3]}) is None


def test_invalid_levels_are_rejected() -> None:
    with pytest.raises(ValueError, match="confidence"):
        analytics.historical_var(RETURNS, 1.0)
    with pytest.raises(ValueError, match="quantile level"):
        analytics.quantile(RETURNS, 1.5)
    with pytest.raises(ValueError, match="empty"):
        analytics.quantile([], 0.5)


def test_steady_growth_has_no_sharpe_ratio_rather_than_float_noise() -> None:
    values = [100.0 * 1.01**period for period in range(30)]  # returns differ in the 17th digit
    assert analytics.sharpe_ratio(analytics.simple_returns(values), 365) is None
    assert (
        analytics.average_correlation(
            {"A": analytics.simple_returns(values), "B": [0.01, -0.02] * 14 + [0.03]}
        )
        is None
    )


def test_var_of_returns_that_are_all_gains_is_negative_and_of_flat_ones_zero() -> None:
    assert analytics.historical_var([0.01, 0.02, 0.03], 0.95) == pytest.approx(-0.011, abs=1e-12)
    flat = analytics.historical_var([0.0, 0.0, 0.0], 0.99)
    assert flat == 0.0
    assert math.copysign(1.0, flat or 0.0) == 1.0  # not -0.0


# -- the return grid: one definition for the bot and the pipeline --------------------------------

MINUTE_NS = 60 * 10**9
DAY_NS = 86400 * 10**9
#: A Monday, 00:00 UTC: grid periods start on multiples of their length since the epoch.
T0 = 1_767_571_200 * 10**9


def _walk(count: int, seed: int, sigma: float, start: float = 100_000.0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(start * np.cumprod(1 + rng.normal(0.0002, sigma, count)))


def _numpy_gauges(values: list[float], per_year: float, per_day: float) -> dict[str, float]:
    """The gauges from numpy alone, on values already on their grid."""
    v = np.array(values)
    r = v[1:] / v[:-1] - 1
    peak = np.maximum.accumulate(v)
    gauges = {
        "trading_total_return": v[-1] / v[0] - 1,
        "trading_max_drawdown": float(np.max((peak - v) / peak)),
        "trading_current_drawdown": (v.max() - v[-1]) / v.max(),
        "trading_sharpe_ratio": r.mean() / r.std(ddof=1) * math.sqrt(per_year),
        "trading_sortino_ratio": r.mean()
        / math.sqrt(np.mean(np.minimum(r, 0) ** 2))
        * math.sqrt(per_year),
    }
    for name, confidence in (("risk_var_95_percent", 95), ("risk_var_99_percent", 99)):
        if len(r) * (100 - confidence) / 100 >= 2.5:
            gauges[name] = -np.percentile(r, 100 - confidence) * math.sqrt(per_day)
    return gauges


def test_one_minute_samples_give_minute_returns_annualised_over_a_calendar_year() -> None:
    # A bot on 1-minute candles reporting every 5 s: six hours of it. The grid is 1 min, each
    # minute's value its last sample, annualised with 525,600 minutes, VaR over one day.
    closes = _walk(361, seed=1, sigma=0.001)
    series = analytics.PeriodSeries(analytics.ReturnGrid())
    rng = np.random.default_rng(2)
    for minute, close in enumerate(closes):
        for second in range(0, 60, 5):
            series.add(T0 + minute * MINUTE_NS + second * 10**9, close * rng.uniform(0.99, 1.01))
        series.add(T0 + minute * MINUTE_NS + 59 * 10**9, close)  # the minute's last
    sampled = series.sample()
    assert sampled is not None
    assert sampled.period_seconds == 60
    assert sampled.values == closes
    gauges = analytics.value_gauges(sampled, analytics.ReturnGrid())
    expected = _numpy_gauges(closes, per_year=525_600, per_day=1440)
    assert set(gauges) == set(expected)  # Calmar needs a month of returns
    for name, value in expected.items():
        assert gauges[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_daily_samples_give_daily_returns_with_365_periods_a_year() -> None:
    # A bot reporting once a day at varying hours: the grid is a day.
    closes = _walk(400, seed=3, sigma=0.02)
    rng = np.random.default_rng(4)
    series = analytics.PeriodSeries(analytics.ReturnGrid())
    for day, close in enumerate(closes):
        series.add(T0 + day * DAY_NS + int(rng.uniform(0, 86_000)) * 10**9, close)
    sampled = series.sample()
    assert sampled is not None
    assert sampled.period_seconds == 86400
    gauges = analytics.value_gauges(sampled, analytics.ReturnGrid())
    expected = _numpy_gauges(closes, per_year=365, per_day=1)
    r = np.diff(closes) / np.array(closes[:-1])
    cagr = np.prod(1 + r) ** (365 / len(r)) - 1
    expected["trading_calmar_ratio"] = cagr / expected["trading_max_drawdown"]
    assert set(gauges) == set(expected)
    for name, value in expected.items():
        assert gauges[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize(
    ("spacing_seconds", "grid_seconds"),
    [(5, 60), (30, 60), (90, 300), (600, 900), (3600, 3600), (7200, 14400), (86400, 86400)],
)
def test_the_grid_is_the_finest_the_samples_fill(spacing_seconds: int, grid_seconds: int) -> None:
    series = analytics.PeriodSeries(analytics.ReturnGrid())
    for i in range(100):
        series.add(T0 + i * spacing_seconds * 10**9 + 10**9, 100.0 + i)
    sampled = series.sample()
    assert sampled is not None
    assert sampled.period_seconds == grid_seconds
    assert sum(sampled.observed) >= 0.9 * len(sampled.observed)


def test_a_set_period_and_annualisation_are_used_as_given() -> None:
    grid = analytics.ReturnGrid(period_seconds=1.0, periods_per_year=365.0)  # the demo's clock
    series = analytics.PeriodSeries(grid)
    closes = _walk(60, seed=5, sigma=0.03)
    for second, close in enumerate(closes):
        series.add(T0 + second * 10**9, close)
    gauges = analytics.value_gauges(series.sample(), grid)
    expected = _numpy_gauges(closes, per_year=365, per_day=1)
    for name, value in expected.items():
        assert gauges[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    with pytest.raises(ValueError, match="needs a set period"):
        analytics.ReturnGrid(periods_per_year=252)


def test_a_reporting_gap_carries_the_value_over_rather_than_merging_periods() -> None:
    # Minutes 0-39 reported, 40-49 silent, 50-89 reported: the silent minutes are periods with a
    # zero return, the first minute back takes the whole move; the old binning made the 50-minute
    # gap one "period".
    closes = _walk(90, seed=6, sigma=0.002)
    series = analytics.PeriodSeries(analytics.ReturnGrid())
    for minute, close in enumerate(closes):
        if not 40 <= minute < 50:
            series.add(T0 + minute * MINUTE_NS, close)
    sampled = series.sample()
    assert sampled is not None
    assert sampled.period_seconds == 60
    carried = closes[:40] + [closes[39]] * 10 + closes[50:]
    assert sampled.values == carried
    assert sampled.observed_returns() == 89 - 10
    gauges = analytics.value_gauges(sampled, analytics.ReturnGrid())
    expected = _numpy_gauges(carried, per_year=525_600, per_day=1440)
    assert gauges["trading_sharpe_ratio"] == pytest.approx(expected["trading_sharpe_ratio"])


@pytest.mark.parametrize(
    ("minutes", "published"),
    [
        (2, {"trading_total_return", "trading_max_drawdown", "trading_current_drawdown"}),
        (30, {"trading_total_return", "trading_max_drawdown", "trading_current_drawdown"}),
        (31, {"trading_sharpe_ratio", "trading_sortino_ratio"}),
        (51, {"trading_sharpe_ratio", "risk_var_95_percent"}),
        (251, {"risk_var_95_percent", "risk_var_99_percent"}),
    ],
)
def test_nothing_is_published_before_its_sample_size(minutes: int, published: set[str]) -> None:
    series = analytics.PeriodSeries(analytics.ReturnGrid())
    for minute, close in enumerate(_walk(minutes, seed=8, sigma=0.001)):
        series.add(T0 + minute * MINUTE_NS, close)
    gauges = analytics.value_gauges(series.sample(), analytics.ReturnGrid())
    assert published <= set(gauges)
    returns = minutes - 1
    assert ("trading_sharpe_ratio" in gauges) == (returns >= analytics.MIN_RETURNS)
    assert ("risk_var_95_percent" in gauges) == (returns >= 50)
    assert ("risk_var_99_percent" in gauges) == (returns >= 250)
    assert "trading_calmar_ratio" not in gauges  # minutes are not a month


def test_carried_periods_do_not_count_towards_the_sample_size() -> None:
    # Ten reports an hour apart on a set one-minute grid: 540 periods, 9 observed returns.
    grid = analytics.ReturnGrid(period_seconds=60)
    series = analytics.PeriodSeries(grid)
    for hour, close in enumerate(_walk(10, seed=9, sigma=0.01)):
        series.add(T0 + hour * 60 * MINUTE_NS, close)
    gauges = analytics.value_gauges(series.sample(), grid)
    assert "trading_sharpe_ratio" not in gauges
    assert "trading_total_return" in gauges


def test_the_window_holds_the_newest_returns_and_memory_stays_bounded() -> None:
    grid = analytics.ReturnGrid(window=100)
    series = analytics.PeriodSeries(grid)
    closes = _walk(1000, seed=10, sigma=0.001)
    for minute, close in enumerate(closes):
        series.add(T0 + minute * MINUTE_NS, close)
        assert len(series._cells) <= 6 * 101
    sampled = series.sample()
    assert sampled is not None
    assert sampled.values == closes[-101:]  # 100 returns
    assert len(series._cells) <= 101


def test_correlation_on_a_common_grid_matches_numpy() -> None:
    rng = np.random.default_rng(11)
    common = rng.normal(0, 0.001, 200)
    a = 100 * np.cumprod(1 + common + rng.normal(0, 0.0005, 200))
    b = 50 * np.cumprod(1 + common + rng.normal(0, 0.0005, 200))
    grid = analytics.ReturnGrid()
    first, second = analytics.PeriodSeries(grid), analytics.PeriodSeries(grid)
    for minute in range(200):
        first.add(T0 + minute * MINUTE_NS, float(a[minute]))
        if minute >= 20:  # the second symbol is held from minute 20: aligned by time
            second.add(T0 + minute * MINUTE_NS + 30 * 10**9, float(b[minute]))
    ra, rb = (np.diff(x[20:]) / x[20:-1] for x in (a, b))
    expected = float(np.corrcoef(ra, rb)[0, 1])
    assert analytics.correlation_gauge([first, second]) == pytest.approx(expected, abs=1e-9)
    young = analytics.PeriodSeries(grid)
    for minute in range(10):
        young.add(T0 + minute * MINUTE_NS, 1.0 + minute)
    assert analytics.correlation_gauge([first, young]) is None  # ten returns are no figure


def test_a_crash_stays_a_drawdown_after_its_peak_leaves_the_window() -> None:
    """The current drawdown is below the high-water mark, not below the window's highest: a
    crash with no recovery stays a drawdown however long ago the peak was; a recovery ends it."""
    grid = analytics.ReturnGrid(period_seconds=1, window=5)
    series = analytics.PeriodSeries(grid)
    second = 10**9
    values = [100.0, 120.0, 84.0] + [84.0] * 20  # a 30 % crash, then flat for 20 windows' worth
    for t, value in enumerate(values):
        series.add(t * second, value)
        gauges = analytics.value_gauges(series.sample(), grid)
    assert gauges["trading_max_drawdown"] == 0.0  # the window has no fall in it any more
    assert gauges["trading_current_drawdown"] == pytest.approx(0.3, abs=1e-12)
    assert series.peak == 120.0
    for t, value in enumerate([100.0, 119.0, 121.0], start=len(values)):
        series.add(t * second, value)
        gauges = analytics.value_gauges(series.sample(), grid)
        if value == 119.0:
            assert gauges["trading_current_drawdown"] == pytest.approx(1 / 120, abs=1e-12)
    assert gauges["trading_current_drawdown"] == 0.0  # a new peak: recovered


def test_a_peak_given_at_creation_is_where_the_drawdown_starts() -> None:
    """What a restarted bot remembered: its first value is already measured from the mark."""
    grid = analytics.ReturnGrid(period_seconds=1, window=5)
    series = analytics.PeriodSeries(grid, peak=200.0)
    series.add(0, 150.0)
    sampled = series.sample()
    assert sampled is not None
    assert sampled.high_water_mark() == 200.0
    assert analytics.value_gauges(sampled, grid) == {"trading_current_drawdown": 0.25}
    assert analytics.current_drawdown([160.0, 150.0], peak=None) == pytest.approx(1 / 16)
    assert analytics.current_drawdown([160.0, 150.0], peak=200.0) == pytest.approx(0.25)
    assert analytics.current_drawdown([160.0, 150.0], peak=100.0) == pytest.approx(1 / 16)
