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
