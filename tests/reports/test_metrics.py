"""The statistics against values worked out by hand on small series."""

from __future__ import annotations

import math

import pytest

from rebalancer.reports import metrics as m

# 100 -> 110 -> 99 -> 108.9: returns +10%, -10%, +10%.
VALUES = [100.0, 110.0, 99.0, 108.9]


def test_returns_and_twr() -> None:
    r = m.returns_from_values(VALUES)
    assert list(r) == pytest.approx([0.1, -0.1, 0.1])
    # 1.1 * 0.9 * 1.1 - 1
    assert m.twr(r) == pytest.approx(0.089)


def test_volatility_sharpe_sortino_by_hand() -> None:
    r = m.returns_from_values(VALUES)
    # mean 1/30; deviations 1/15, -2/15, 1/15; sample variance (6/225) / 2 = 1/75
    sd = math.sqrt(1 / 75)
    assert m.volatility(r, 1) == pytest.approx(sd)
    assert m.volatility(r, 365) == pytest.approx(sd * math.sqrt(365))
    assert m.sharpe(r, 1) == pytest.approx((1 / 30) / sd)
    # downside deviation: sqrt((0 + 0.01 + 0) / 3)
    assert m.sortino(r, 1) == pytest.approx((1 / 30) / math.sqrt(0.01 / 3))


def test_risk_free_rate_is_per_period() -> None:
    r = [0.01, 0.03]
    rf_p = (1.05) ** (1 / 12) - 1
    sd = math.sqrt(((0.01 - 0.02) ** 2 + (0.03 - 0.02) ** 2) / 1)
    assert m.per_period_rate(0.05, 12) == pytest.approx(rf_p)
    assert m.sharpe(r, 12, 0.05) == pytest.approx((0.02 - rf_p) / sd * math.sqrt(12))


def test_max_drawdown_by_hand() -> None:
    # peak 120, trough 84: 30%; the later 130 -> 117 fall is only 10%
    assert m.max_drawdown([100, 120, 90, 84, 130, 117]) == pytest.approx(0.30)
    assert m.max_drawdown([1, 2, 3]) == 0.0
    idx = m.growth_index(m.returns_from_values(VALUES))
    assert m.max_drawdown(idx) == pytest.approx(0.10)


def test_annualised_and_summary() -> None:
    r = m.returns_from_values(VALUES)
    s = m.summarise(r, 365)
    assert s.periods == 3
    assert s.total_return == pytest.approx(0.089)
    assert s.annualised_return == pytest.approx(1.089 ** (365 / 3) - 1)
    assert s.max_drawdown == pytest.approx(0.10)


def test_too_little_data_gives_none() -> None:
    assert m.volatility([0.1], 365) is None
    assert m.sharpe([0.1], 365) is None
    assert m.sharpe([0.01, 0.01], 365) is None  # no variation
    assert m.sortino([0.01, 0.02], 365) is None  # never below the rate
    s = m.summarise([], 365)
    assert s.total_return == 0.0 and s.volatility is None and s.annualised_return is None
