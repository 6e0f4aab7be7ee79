"""The backtest runs the planner's own steps: its goals, its pairing and its cost model."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from rebalancer.planner.goals import row_goals
from rebalancer.planner.pairing import north_west
from rebalancer.reports import backtest as bt
from tests.reports.conftest import generated_prices
from tests.reports.test_backtest import STRATEGY, _setup


def test_north_west_matches_amounts_in_order() -> None:
    d = [Decimal(x) for x in (5, 3)]
    assert north_west(d, [Decimal(4), Decimal(4)]) == [
        (0, 0, Decimal(4)),
        (0, 1, Decimal(1)),
        (1, 1, Decimal(3)),
    ]
    assert north_west([], [Decimal(1)]) == []


@pytest.mark.parametrize("skew", [1.6, 0.5])
def test_band_edge_aims_inside_the_planners_goals(skew: float) -> None:
    """An out-of-band BTC is traded into the planner's aim interval, every row ends inside
    its band, and the event's costs are the cost model's."""
    history, book, costs = _setup(STRATEGY, generated_prices(40, seed=4))
    (rule,) = bt.make_rules(STRATEGY, ["threshold"])
    replay = bt._Replay(history, book, rule, costs, 100_000.0, 0.0)
    t = 10
    units = 100_000.0 * book.start_weights / history.prices[0]
    units[book.symbols.index("BTC")] *= skew
    drift = replay._verdict(units, t, 0)
    assert drift.triggered
    goals = row_goals(drift, STRATEGY)
    values = units * history.prices[t]
    new_w = replay._aim(values / values.sum(), drift)
    for k, w in zip(book.leaf_keys, book.leaves @ new_w, strict=True):
        lo, hi = goals.aim[k]
        assert float(lo) / 100 - 1e-9 <= w <= float(hi) / 100 + 1e-9, k
    for k, w in zip(book.row_keys, book.rows @ new_w, strict=True):
        lo, hi = goals.hard[k]
        assert float(lo) / 100 - 1e-9 <= w <= float(hi) / 100 + 1e-9, k
    _, event = replay._trade(units, t, drift)
    assert event is not None and event.swaps > 0
    model = costs.model
    assert event.gas_usd == pytest.approx(float(model.gas_usd(None)) * event.swaps)
    assert event.fee_usd == pytest.approx(float(model.fee_usd(Decimal(repr(event.traded_usd)))))
    assert np.isfinite(event.impact_usd) and event.impact_usd > 0
