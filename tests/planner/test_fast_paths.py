"""The planner's fast paths give the same numbers as the plain ones they replace.

Dense plans copy ~10^4 trades and sum ~10^4 positions many times, so those steps have faster
forms (one positional ``Trade()`` call, sums done once per portfolio); these tests pin them to the
plain forms, to the last digit.
"""

from __future__ import annotations

import gc
from dataclasses import replace
from decimal import Decimal

from rebalancer.planner.config import TradeLimits
from rebalancer.planner.model import Portfolio, Position, from_base_units, validate_all
from rebalancer.planner.plan import Plan, _named, make_plan
from tests.planner.synthetic import make_portfolio, make_strategy, make_universe


def _dense() -> tuple[Portfolio, Plan]:
    u = make_universe(3, 20, 1)
    s = make_strategy(u)
    holdings, prices = make_portfolio(u, 4, 1, density=1.0)
    pf = Portfolio.build(holdings, prices)
    plan = make_plan(pf, validate_all(s, u), s, u, limits=TradeLimits(max_trade_usd=Decimal(9000)))
    return pf, plan


def test_portfolio_sums_match_adding_positions_one_by_one() -> None:
    pf, _ = _dense()
    total = sum((p.value for p in pf.positions), Decimal(0))
    by_asset: dict[str, Decimal] = {}
    for p in pf.positions:
        by_asset[p.token.asset] = by_asset.get(p.token.asset, Decimal(0)) + p.value
    assert pf.total == total and str(pf.total) == str(total)
    assert pf.value_by_asset() == by_asset
    assert [str(v) for v in pf.value_by_asset().values()] == [str(v) for v in by_asset.values()]
    pf.value_by_asset().clear()  # callers get a copy: the cached sums stay
    assert pf.value_by_asset() == by_asset


def test_position_value_and_equality() -> None:
    pf, _ = _dense()
    p = pf.positions[0]
    assert p.value == from_base_units(p.raw, p.token.decimals) * p.price
    same = Position(p.chain, p.wallet, p.token, p.raw, p.price)
    assert same == p and hash(same) == hash(p)
    bigger = replace(p, raw=p.raw * 2)
    assert bigger.value == from_base_units(p.raw * 2, p.token.decimals) * p.price


def test_named_trade_equals_a_dataclass_replace() -> None:
    _, plan = _dense()
    assert plan.trades
    for t in plan.trades:
        assert _named(t, "x1", "why") == replace(t, id="x1", reason="why")


def test_make_plan_restores_the_garbage_collector() -> None:
    assert gc.isenabled()
    _dense()
    assert gc.isenabled()
    gc.disable()
    try:
        _dense()
        assert not gc.isenabled()
    finally:
        gc.enable()
