"""The planner's fast paths give the same numbers as the plain ones they replace.

Dense plans copy ~10^4 trades and sum ~10^4 positions many times, so those steps have faster
forms (one positional ``Trade()`` call through a written-out ``__init__``, sums done once per
portfolio, HiGHS called without ``linprog``'s wrapper); these tests pin them to the plain forms,
to the last digit.
"""

from __future__ import annotations

import gc
from dataclasses import FrozenInstanceError, fields, replace
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from scipy.sparse import csr_array

from rebalancer.planner import lp
from rebalancer.planner.config import TradeLimits
from rebalancer.planner.context import PlanContext, is_locked, make_context, unpriced_gas
from rebalancer.planner.drift import compute_drift
from rebalancer.planner.evaluate import Trade, _Pools, _walk, evaluate, sliced
from rebalancer.planner.model import HUNDRED, Portfolio, Position, from_base_units, validate_all
from rebalancer.planner.naive import naive_proposals
from rebalancer.planner.plan import Plan, _named, make_plan
from rebalancer.planner.problem import build_problem
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


def test_trade_init_sets_every_field_by_position_or_keyword() -> None:
    _, plan = _dense()
    for t in plan.trades[:50]:
        values = {f.name: getattr(t, f.name) for f in fields(Trade)}
        by_kw = Trade(**values)
        by_pos = Trade(*values.values())
        assert by_kw == t == by_pos and hash(by_kw) == hash(t)
        assert {f.name: getattr(by_pos, f.name) for f in fields(Trade)} == values
    default = Trade(*list(values.values())[:-1])
    assert default.realised is None
    with pytest.raises(FrozenInstanceError):
        t.id = "x"  # type: ignore[misc]


def _lps(monkeypatch: pytest.MonkeyPatch) -> list[list[np.ndarray]]:
    """The LPs (as ``linprog_ds`` arguments) of a decomposed plan with limits."""
    seen: list[list[np.ndarray]] = []
    direct = lp._dual_simplex

    def spy(*args: np.ndarray) -> object:
        seen.append([a.copy() for a in args])
        return direct(*args)

    monkeypatch.setattr(lp, "_dual_simplex", spy)
    _dense()
    monkeypatch.undo()
    return seen


def test_direct_highs_call_equals_linprog(monkeypatch: pytest.MonkeyPatch) -> None:
    got = _lps(monkeypatch)
    assert got and lp._highs is not None
    for args in got:
        fast = lp._dual_simplex(*[a.copy() for a in args])
        plain = lp.linprog_ds(*[a.copy() for a in args])
        assert np.array_equal(fast.x, plain.x)
        assert (fast.fun, fast.status, fast.message) == (plain.fun, plain.status, plain.message)


def test_direct_highs_call_reports_like_linprog_when_infeasible() -> None:
    # x0 + x1 <= 1 and x0 + x1 >= 3 with 0 <= x <= 5
    a_ub = csr_array(np.array([[1.0, 1.0], [-1.0, -1.0]]))
    args = [np.ones(2), a_ub, np.array([1.0, -3.0]), csr_array((0, 2)), np.zeros(0)]
    bounds = np.array([[0.0, 5.0], [0.0, np.inf]])
    fast = lp._dual_simplex(*[a.copy() for a in args], bounds.copy())
    plain = lp.linprog_ds(*[a.copy() for a in args], bounds.copy())
    assert fast.x is None and plain.x is None
    assert (fast.status, fast.message) == (plain.status, plain.message) and fast.status == 2


def _knapsack(start: tuple[np.ndarray, np.ndarray] | None) -> Any:
    """max 5 a + 4 b + 3 c, 2 a + 3 b + c <= 4 (binaries) with a continuous slack column:
    the optimum is a = c = 1 (8)."""
    b = lp.Builder()
    on = b.vars([-5.0, -4.0, -3.0], 0.0, 1.0, integer=True)
    slack = b.var(0.0, 0.0, 10.0)
    b.rows(np.zeros(4, dtype=np.int64), [*on, slack], [2.0, 3.0, 1.0, 1.0], [-np.inf], 4.0)
    return b.solve(True, {"node_limit": 100, "mip_rel_gap": 0.0}, start)


@pytest.mark.parametrize(
    "values",
    [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]],
    ids=["best", "poor", "infeasible"],
)
def test_a_mip_start_changes_where_the_milp_begins_not_its_answer(values: list[float]) -> None:
    """``Builder.solve`` with a MIP start goes through HiGHS's bindings (``milp`` takes none):
    from the optimum, a poorer point or an infeasible one, the same optimum as ``milp``."""
    plain = _knapsack(None)
    started = _knapsack((np.arange(3), np.array(values)))
    assert plain.status == 0 and started.status == 0
    assert started.fun == pytest.approx(plain.fun) == -8.0
    assert np.allclose(started.x[:3], plain.x[:3])
    assert started.mip_dual_bound == pytest.approx(-8.0)


def test_a_mip_start_on_an_infeasible_model_reports_no_solution() -> None:
    b = lp.Builder()
    on = b.vars([1.0, 1.0], 0.0, 1.0, integer=True)
    b.rows(np.zeros(2, dtype=np.int64), on, [1.0, 1.0], [3.0], np.inf)  # a + b >= 3
    res = b.solve(True, {"node_limit": 10}, (on, np.ones(2)))
    assert res.x is None and res.status != 0 and not res.success


def _context(limits: TradeLimits | None = None) -> PlanContext:
    u = make_universe(3, 20, 1)
    s = make_strategy(u)
    holdings, prices = make_portfolio(u, 4, 1, density=0.6)
    pf = Portfolio.build(holdings, prices)
    drift = compute_drift(pf, validate_all(s, u), s)
    return make_context(pf, s, u, drift, None, date(2026, 1, 1), limits)


def test_problem_slots_equal_the_plain_computation() -> None:
    ctx = _context()
    problem, index = build_problem(ctx)
    pp = HUNDRED / ctx.total
    assert any(s.value_pp == 0.0 for s in problem.slots)  # tokens not held are slots too
    for (chain, wallet, _), i in index.items():
        s = problem.slots[i]
        raw = ctx.held.get((chain, wallet, s.token.id), 0)
        value = from_base_units(raw, s.token.decimals) * ctx.portfolio.prices[s.asset]
        assert s.value_pp == float(value * pp)
        if not s.token.is_native:
            assert s.avail_pp == s.value_pp
            assert s.can_sell == (raw > 0 and value >= ctx.strategy.min_trade_usd and value > 0)


def test_naive_plan_buys_each_chains_first_token_of_a_leaf() -> None:
    ctx = _context()
    proposals = naive_proposals(ctx)
    assert proposals
    leaf_of = {a: r.name for r in ctx.drift.targets.leaves for a in r.assets}
    for p in proposals:
        first = next(
            t for t in ctx.tradable[p.chain] if leaf_of.get(t.asset) == leaf_of[p.buy.asset]
        )
        assert p.buy == first


def test_portfolio_after_equals_the_trades_applied_one_by_one() -> None:
    ctx = _context(TradeLimits(max_trade_usd=Decimal(9000)))
    out = evaluate(ctx, naive_proposals(ctx))
    assert out.trades
    held = dict(ctx.held)
    for t in out.trades:
        native = ctx.universe.native(t.chain).id
        held[(t.chain, t.wallet, t.sell.id)] -= t.amount_in
        key = (t.chain, t.wallet, t.buy.id)
        held[key] = held.get(key, 0) + t.expected_out
        held[(t.chain, t.wallet, native)] -= t.gas_native
    want = sorted((k, raw) for k, raw in held.items() if raw > 0)
    got = [((p.chain, p.wallet, p.token.id), p.raw) for p in out.after.positions]
    assert got == want
    assert list(ctx.held) == [(p.chain, p.wallet, p.token.id) for p in ctx.portfolio.positions]


def test_unpriced_gas_is_the_wallet_independent_part_of_is_locked() -> None:
    ctx = _context()
    chain = next(iter(ctx.gas_usd))
    native = ctx.universe.chains[chain].native_asset
    unpriced = replace(
        ctx,
        portfolio=Portfolio(
            ctx.portfolio.positions, {a: v for a, v in ctx.portfolio.prices.items() if a != native}
        ),
    )
    for c in (ctx, unpriced):
        for nat in (0, c.reserve[chain], c.reserve[chain] + c.gas_raw[chain], 10**30):
            plain = is_locked(c, chain, nat)
            assert plain == (
                unpriced_gas(c, chain)
                or nat - c.reserve[chain] < c.gas_raw[chain]
                or nat < c.reserve[chain]
            )
    assert unpriced_gas(unpriced, chain) and not unpriced_gas(ctx, chain)


def test_walk_volumes_equal_the_pools_volumes_of_its_trades() -> None:
    ctx = _context(TradeLimits(max_trade_usd=Decimal(9000)))
    proposals = sliced(ctx, naive_proposals(ctx))
    pools = _Pools(ctx)
    walk = _walk(ctx, proposals, pools, {})
    assert walk.trades
    plain = pools.volumes(
        (t.p.chain, t.p.sell.asset, t.p.buy.asset, t.value_in) for t in walk.trades
    )
    assert walk.volume == plain
    assert [str(v) for v in walk.volume.values()] == [str(v) for v in plain.values()]
