"""Property tests of the plan's invariants on generated portfolios over the real registry.

Never sells more than held; reserves kept; no trade under the minimum; every weight within its
band whenever the holdings of each wallet allow it; never costlier than the naive plan when the
naive plan meets the bands; same input, same plan.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rebalancer.chains.registry import Registry
from rebalancer.core.types import Holding
from rebalancer.planner import optimise
from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.context import make_context
from rebalancer.planner.drift import compute_drift
from rebalancer.planner.model import HUNDRED, Portfolio, validate_all
from rebalancer.planner.plan import build_problem, make_plan
from rebalancer.planner.render import plan_json
from tests.planner.conftest import PRICES
from tests.planner.test_plan import _check_hard_constraints

NOW = datetime(2025, 6, 1, tzinfo=UTC)
REGISTRY = Registry.load()
WALLETS = {"ethereum": ["e1", "e2"], "avalanche": ["e1"], "solana": ["s1"]}

STRATEGIES = [
    StrategyConfig(min_trade_usd=Decimal(20)),
    StrategyConfig.model_validate(
        {
            "targets": {
                "BTC": 30,
                "ETH": 30,
                "STABLES": 20,
                "ALTS": {"SOL": 10, "AVAX": 5, "LINK": 5},
            },
            "min_trade_usd": 50,
            "band_rel_pct": 25,
        }
    ),
    StrategyConfig(mode="target", min_trade_usd=Decimal(20), target_tolerance_pp=Decimal(1)),
    StrategyConfig.model_validate(
        {
            "targets": {"BTC": 50, "STABLES": 50},
            "min_trade_usd": 100,
            "band_pp": 3,
            "gas_reserve": {"ethereum": "0.05"},
        }
    ),
]


@st.composite
def portfolios(draw: st.DrawFn) -> list[Holding]:
    out = []
    for chain, wallets in WALLETS.items():
        tokens = REGISTRY.tokens_on(chain)
        for wallet in wallets:
            picked = draw(st.lists(st.sampled_from(tokens), min_size=1, max_size=5, unique=True))
            native = tokens[0]
            if native not in picked and draw(st.booleans()):
                picked.append(native)
            for token in picked:
                usd = draw(st.integers(min_value=50, max_value=60_000))
                amount = Decimal(usd) / PRICES[token.asset]
                raw = int(amount.scaleb(token.decimals))
                if raw > 0:
                    out.append(Holding(chain, wallet, token, raw))
    return out


def _allows(pf: Portfolio, s: StrategyConfig) -> bool:
    """Would the bands be met at half their width with free swaps inside each wallet (no costs,
    no minimum)? Then the plan must meet the full bands."""
    targets = validate_all(s, REGISTRY)
    drift = compute_drift(pf, targets, s, now=NOW)
    ctx = make_context(pf, s, REGISTRY, drift, None, NOW.date())
    problem, _ = build_problem(ctx)
    for acc in problem.accounts:
        # a wallet must be able to pay gas for a swap per token it could trade
        if acc.native_avail_pp < 8 * acc.gas_pp:
            acc.locked = True
    rows = []
    for r in problem.rows:
        lo, hi = ctx.goals[r.key]
        mid = Decimal(repr(r.target))
        half_lo = float(mid - (mid - lo) / 2)
        half_hi = float(mid + (hi - mid) / 2)
        rows.append(
            optimise.ConRow(r.key, r.assets, r.value_pp, half_lo, half_hi, r.target, r.leaf)
        )
    min_pp = float(s.min_trade_usd * HUNDRED / pf.total)
    return min_pp < 0.5 and optimise.pooled_feasible(problem, rows, "account")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(holdings=portfolios(), which=st.integers(min_value=0, max_value=len(STRATEGIES) - 1))
def test_plan_invariants(holdings: list[Holding], which: int) -> None:
    s = STRATEGIES[which]
    pf = Portfolio.build(holdings, PRICES)
    targets = validate_all(s, REGISTRY)
    plan = make_plan(pf, targets, s, REGISTRY, now=NOW, force=True)
    _check_hard_constraints(pf, plan, s, REGISTRY)
    violation = float(plan.solver.get("violation_pp", 0.0))  # type: ignore[arg-type]
    naive_violation = plan.solver.get("naive_violation_pp")
    if _allows(pf, s):
        assert violation <= 1e-6, plan.skipped
    if naive_violation is not None and float(naive_violation) <= 1e-6:  # type: ignore[arg-type]
        assert violation <= 1e-6
        assert plan.naive_cost_usd is not None and plan.est_cost_usd <= plan.naive_cost_usd
    again = make_plan(pf, targets, s, REGISTRY, now=NOW, force=True)
    assert plan_json(plan, NOW) == plan_json(again, NOW)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10_000))
def test_synthetic_portfolios(seed: int) -> None:
    from tests.planner.synthetic import make_portfolio, make_strategy, make_universe

    u = make_universe(3, 12, seed)
    s = make_strategy(u)
    holdings, prices = make_portfolio(u, 2, seed)
    pf = Portfolio.build(holdings, prices)
    plan = make_plan(pf, validate_all(s, u), s, u, force=True)
    held = {(p.chain, p.wallet, p.token.id): p.raw for p in pf.positions}
    for t in plan.trades:
        held[(t.chain, t.wallet, t.sell.id)] -= t.amount_in
        assert held[(t.chain, t.wallet, t.sell.id)] >= 0
        assert t.value_usd >= s.min_trade_usd
    naive_violation = plan.solver.get("naive_violation_pp")
    if naive_violation is not None and float(naive_violation) <= 1e-6:  # type: ignore[arg-type]
        assert plan.naive_cost_usd is not None and plan.est_cost_usd <= plan.naive_cost_usd


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=10_000), n_assets=st.sampled_from([20, 50]))
def test_dense_portfolios_are_decomposed_and_end_inside_the_bands(seed: int, n_assets: int) -> None:
    """Every wallet holds every token: far above the exact MILP's size, the decomposed plan
    keeps every invariant, ends inside the bands and reports its gap against its bound."""
    from tests.planner.synthetic import make_portfolio, make_strategy, make_universe

    u = make_universe(3, n_assets, seed)
    s = make_strategy(u)
    holdings, prices = make_portfolio(u, 4, seed, density=1.0)
    pf = Portfolio.build(holdings, prices)
    plan = make_plan(pf, validate_all(s, u), s, u, force=True)
    assert plan.solver["method"] == "decomposed"
    gap = plan.solver["gap"]
    assert isinstance(gap, float) and gap >= 0
    assert float(plan.solver["violation_pp"]) <= 1e-6, plan.skipped  # type: ignore[arg-type]
    held = {(p.chain, p.wallet, p.token.id): p.raw for p in pf.positions}
    for t in plan.trades:
        held[(t.chain, t.wallet, t.sell.id)] -= t.amount_in
        assert held[(t.chain, t.wallet, t.sell.id)] >= 0
        assert t.value_usd >= s.min_trade_usd
    for (chain, _, tid), raw in held.items():
        if tid == u.native(chain).id:
            assert raw >= 0
