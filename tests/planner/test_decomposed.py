"""The decomposed path (planner.aggregate) forced on portfolios small enough for the exact MILP:
no invariant broken, and inside the bands whenever the exact plan is."""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal
from typing import Any

import pytest

from rebalancer.planner import aggregate, lp, optimise
from rebalancer.planner.config import TradeLimits
from rebalancer.planner.model import Portfolio, validate_all
from rebalancer.planner.plan import Plan, make_plan
from rebalancer.planner.render import plan_text
from tests.planner.synthetic import make_portfolio, make_strategy, make_universe
from tests.planner.test_plan import _check_hard_constraints


@pytest.mark.parametrize(("seed", "n_assets", "wallets"), [(0, 12, 2), (1, 20, 3), (7, 15, 2)])
def test_decomposed_plan_keeps_invariants_and_bands(
    monkeypatch: pytest.MonkeyPatch, seed: int, n_assets: int, wallets: int
) -> None:
    u = make_universe(3, n_assets, seed)
    s = make_strategy(u)
    t = validate_all(s, u)
    holdings, prices = make_portfolio(u, wallets, seed)
    pf = Portfolio.build(holdings, prices)
    monkeypatch.setattr(optimise, "DECOMPOSED_BESIDE", 10**9)  # the exact path's own plan
    monkeypatch.setattr(optimise, "POOLED_EXACT_MAX_SWAPS", 10**9)  # up to 1,200 swaps
    exact = make_plan(pf, t, s, u, force=True)
    assert exact.solver["method"] == "exact"
    if exact.method == "optimised" and exact.solver["gap"] == 0.0:
        assert "method optimised (exact optimum)" in plan_text(exact).splitlines()[0]
    monkeypatch.setattr(optimise, "EXACT_MAX_SWAPS", 0)
    plan = make_plan(pf, t, s, u, force=True)
    assert plan.solver["method"] == "decomposed"
    _check_hard_constraints(pf, plan, s, u)  # type: ignore[arg-type]
    gap = plan.solver["gap"]
    assert gap is None or (isinstance(gap, float) and gap >= 0)
    if float(exact.solver["violation_pp"]) <= 1e-6:  # type: ignore[arg-type]
        assert float(plan.solver["violation_pp"]) <= 1e-6, plan.skipped  # type: ignore[arg-type]
    assert make_plan(pf, t, s, u, force=True).trades == plan.trades


@pytest.mark.parametrize(
    ("max_trade", "max_run"),
    [(Decimal(4000), None), (None, Decimal(60_000)), (Decimal(3000), Decimal(90_000))],
)
def test_decomposed_plan_keeps_the_size_limits(
    monkeypatch: pytest.MonkeyPatch, max_trade: Decimal | None, max_run: Decimal | None
) -> None:
    u = make_universe(3, 12, 3)
    s = make_strategy(u)
    t = validate_all(s, u)
    holdings, prices = make_portfolio(u, 2, 3)
    pf = Portfolio.build(holdings, prices)
    limits = TradeLimits(max_trade_usd=max_trade, max_run_usd=max_run)
    monkeypatch.setattr(optimise, "EXACT_MAX_SWAPS", 0)
    plan = make_plan(pf, t, s, u, force=True, limits=limits)
    assert plan.solver["method"] == "decomposed"
    _check_hard_constraints(pf, plan, s, u)  # type: ignore[arg-type]
    if max_trade is not None:
        assert all(tr.value_usd <= max_trade for tr in plan.trades)
    if max_run is not None:
        assert sum((tr.value_usd for tr in plan.trades), Decimal(0)) <= max_run


def _solutions(monkeypatch: pytest.MonkeyPatch) -> list[optimise.Solution]:
    """The optimiser's answers of the plans made while the patch holds."""
    seen: list[optimise.Solution] = []
    solve = optimise.solve

    def spy(*args: object, **kwargs: object) -> optimise.Solution:
        sol = solve(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(sol)
        return sol

    monkeypatch.setattr(optimise, "solve", spy)
    return seen


@pytest.mark.parametrize(
    ("seed", "n_assets", "wallets"), [(0, 10, 2), (1, 15, 3), (4, 20, 2), (7, 15, 3)]
)
def test_decomposed_bound_is_never_above_the_exact_optimum(
    monkeypatch: pytest.MonkeyPatch, seed: int, n_assets: int, wallets: int
) -> None:
    """The bound the decomposed path measures its gap against is a true lower bound: never
    above the cost of the exact MILP's plan of the same portfolio, and the decomposed plan
    is never below it."""
    u = make_universe(3, n_assets, seed)
    s = make_strategy(u)
    t = validate_all(s, u)
    pf = Portfolio.build(*make_portfolio(u, wallets, seed))
    seen = _solutions(monkeypatch)
    monkeypatch.setattr(optimise, "POOLED_EXACT_MAX_SWAPS", 10**9)  # up to 1,200 swaps
    exact = make_plan(pf, t, s, u, force=True)
    monkeypatch.setattr(optimise, "EXACT_MAX_SWAPS", 0)
    make_plan(pf, t, s, u, force=True)
    by_exact, by_parts = seen
    assert by_exact.method == "exact" and by_parts.method == "decomposed"
    assert float(exact.solver["violation_pp"]) <= 1e-6  # type: ignore[arg-type]
    assert by_exact.cost_pp is not None and by_parts.cost_pp is not None
    assert by_parts.bound_cost_pp is not None
    assert by_parts.bound_cost_pp <= by_exact.cost_pp * (1 + 1e-6)
    assert by_parts.bound_cost_pp <= by_parts.cost_pp * (1 + 1e-6)


def test_dense_plan_is_within_a_few_per_cent_of_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dense portfolio (every wallet holds every token: the decomposed path) ends inside
    its bands at a cost within 5% of the bound (20-25% before the bound counted the impact
    the bought rows lose)."""
    u = make_universe(3, 50, 0)
    s = make_strategy(u)
    t = validate_all(s, u)
    pf = Portfolio.build(*make_portfolio(u, 10, 0, density=1.0))
    seen = _solutions(monkeypatch)
    plan = make_plan(pf, t, s, u)
    (sol,) = seen
    assert sol.method == "decomposed"
    assert float(plan.solver["violation_pp"]) <= 1e-6  # type: ignore[arg-type]
    assert sol.gap is not None and 0 <= sol.gap <= 0.05
    # the person reading the plan is told how far from the least cost it may be
    first = plan_text(plan).splitlines()[0]
    assert f"method optimised (decomposed: cost within {sol.gap * 100:.2g}% of a lower bound)" in (
        first
    )


def test_decomposed_plan_through_pair_pools_claims_no_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With pair depths (``depth_usd_by_pair``) the decomposed path still plans (the exact
    evaluation charges the pair pools), but its bound prices asset pools: it says there is
    none rather than print a gap that does not hold."""
    u = make_universe(3, 12, 0)
    s = make_strategy(u)
    assets = sorted({tok.asset for toks in u.tokens.values() for tok in toks})
    pairs = {f"{a}/{b}": Decimal(2_000_000) for a in assets for b in assets if a < b}
    costs = {c: m.model_copy(update={"depth_usd_by_pair": pairs}) for c, m in s.costs.items()}
    s = s.model_copy(update={"costs": costs})
    t = validate_all(s, u)
    pf = Portfolio.build(*make_portfolio(u, 2, 0))
    monkeypatch.setattr(optimise, "EXACT_MAX_SWAPS", 0)
    plan = make_plan(pf, t, s, u, force=True)
    assert plan.solver["method"] == "decomposed" and plan.trades
    _check_hard_constraints(pf, plan, s, u)  # type: ignore[arg-type]
    assert plan.solver["gap"] is None
    assert "pair pools" in str(plan.solver["status"])
    assert "(decomposed, no lower bound)" in plan_text(plan).splitlines()[0]


def _synthetic(n_assets: int, wallets: int, seed: int) -> tuple[Any, Any, Any, Any]:
    """A synthetic portfolio of 3 chains: (portfolio, targets, strategy, universe)."""
    u = make_universe(3, n_assets, seed)
    s = make_strategy(u)
    return Portfolio.build(*make_portfolio(u, wallets, seed)), validate_all(s, u), s, u


def _decomposed_in_bands(pf: Any, t: Any, s: Any, u: Any) -> Plan:
    """The plan, made by the decomposed path, its invariants kept and inside the bands."""
    plan = make_plan(pf, t, s, u, force=True)
    assert plan.solver["method"] == "decomposed"
    _check_hard_constraints(pf, plan, s, u)
    assert float(plan.solver["violation_pp"]) <= 1e-6  # type: ignore[arg-type]
    return plan


def test_gas_heavy_decomposed_plan_reselects_its_swaps(monkeypatch: pytest.MonkeyPatch) -> None:
    """3 chains x 30 tokens x 3 wallets is above the exact path's size, and gas is a good
    share of its cost: the relaxation prices no gas for what is bought, so its swaps spread
    purchases over more pools than they are worth (85 swaps, 2.6% above the exact MILP's
    plan, which takes ~13 s here). The MILP over the plan's own pairs (gas a fixed cost of
    each) picks fewer, and the exact evaluation keeps whichever is cheaper."""
    pf, t, s, u = _synthetic(30, 3, 1)
    plan = _decomposed_in_bands(pf, t, s, u)
    assert "reselected" in str(plan.solver["status"])
    gap = plan.solver["gap"]
    assert isinstance(gap, float) and 0 <= gap <= 0.03
    monkeypatch.setattr(aggregate, "_RESELECT_GAS", math.inf)
    spread = make_plan(pf, t, s, u, force=True)
    assert "reselected" not in str(spread.solver["status"])
    assert len(plan.trades) < len(spread.trades)
    assert plan.est_cost_usd <= spread.est_cost_usd * Decimal("0.97")


def test_exact_path_keeps_the_decomposed_plan_when_it_is_cheaper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exact MILP's optimum is of its own model (rows charged no impact, chords of impact).
    From ``DECOMPOSED_BESIDE`` candidate swaps the decomposed plan is made beside it, and the
    exact evaluation keeps the better: on 3 chains x 12 tokens x 3 wallets (420 candidate
    swaps) the decomposed one, ~1.9% cheaper."""
    monkeypatch.setattr(optimise, "POOLED_EXACT_MAX_SWAPS", 10**9)  # the exact path
    pf, t, s, u = _synthetic(12, 3, 0)
    plan = _decomposed_in_bands(pf, t, s, u)
    monkeypatch.setattr(optimise, "DECOMPOSED_BESIDE", 10**9)
    exact = make_plan(pf, t, s, u, force=True)
    assert exact.solver["method"] == "exact"
    assert plan.est_cost_usd <= exact.est_cost_usd * Decimal("0.99")


def test_mid_size_plans_are_decomposed_unless_tax_or_pair_pools(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above ``POOLED_EXACT_MAX_SWAPS`` candidate swaps (3 chains x 20 tokens x 2 wallets:
    ~630) a plan without tax or pair pools is decomposed: within 0.06% of the exact path's
    cost there, ~0.5 s instead of ~2.4 s (bench/planner.py ``mid_size``). Tax-aware plans and
    plans through pair pools stay exact up to ``EXACT_MAX_SWAPS``."""
    problems: list[optimise.Problem] = []
    limit = optimise.exact_max_swaps

    def spy(problem: optimise.Problem) -> int:
        problems.append(problem)
        return limit(problem)

    monkeypatch.setattr(optimise, "exact_max_swaps", spy)
    pf, t, s, u = _synthetic(20, 2, 0)
    _decomposed_in_bands(pf, t, s, u)
    problem = problems[0]
    candidates = optimise.pair_bound(problem, sliced=False)
    assert optimise.POOLED_EXACT_MAX_SWAPS < candidates <= optimise.EXACT_MAX_SWAPS
    assert limit(problem) == optimise.POOLED_EXACT_MAX_SWAPS
    assert limit(dataclasses.replace(problem, pair_pools=True)) == optimise.EXACT_MAX_SWAPS
    taxed = dataclasses.replace(problem, tax={"BTC": [(1.0, 0.1)]})
    assert limit(taxed) == optimise.EXACT_MAX_SWAPS


def test_the_exact_milp_begins_from_the_decomposed_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """From ``DECOMPOSED_BESIDE`` candidate swaps the decomposed plan is made first and the
    exact MILP begins from it (a MIP start): the same 0.5% gap proven, sooner (3 chains x 10
    tokens x 3 wallets, ~250 candidate swaps: ~0.1 s instead of ~0.5 s)."""
    pf, t, s, u = _synthetic(10, 3, 1)
    milps: list[tuple[int, bool, optimise.Solution]] = []
    program = optimise.program

    def spy(problem: Any, swaps: Any, kind: str, *args: Any, **kwargs: Any) -> optimise.Solution:
        sol = program(problem, swaps, kind, *args, **kwargs)
        if kind == "milp":
            milps.append((len(swaps), bool(kwargs.get("start")), sol))
        return sol

    starts: list[object] = []
    mip_from = lp._mip_from

    def started_at(*args: Any) -> Any:
        starts.append(args[-1])
        return mip_from(*args)

    monkeypatch.setattr(optimise, "program", spy)
    monkeypatch.setattr(lp, "_mip_from", started_at)
    started = make_plan(pf, t, s, u, force=True)
    assert len(starts) == 1  # the exact path's MILP (a reselection has no start)
    monkeypatch.setattr(lp, "_highs", None)  # scipy's milp, which takes no start
    plain = make_plan(pf, t, s, u, force=True)
    assert len(starts) == 1
    exact = [m for m in milps if m[0] >= optimise.DECOMPOSED_BESIDE]
    assert [m[1] for m in exact] == [True, True]
    for _, _, sol in exact:
        assert sol.status == "optimal" and sol.objective is not None and sol.bound is not None
        assert sol.objective - sol.bound <= optimise.MIP_GAP * abs(sol.objective) + 1e-12
    a, b = (m[2].objective for m in exact)
    assert a is not None and b is not None
    assert abs(a - b) <= optimise.MIP_GAP * max(abs(a), abs(b))
    for plan in (started, plain):
        _check_hard_constraints(pf, plan, s, u)
        assert float(plan.solver["violation_pp"]) <= 1e-6  # type: ignore[arg-type]
