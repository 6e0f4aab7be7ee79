"""The plan against an exact optimum of the same cost model, built independently here.

The reference is a MILP over *every* (wallet, sell, buy) pair of every chain, no pruning at all:
one binary per swap (gas, minimum size), impact ``k * V**2`` per pool on the volume ``V`` of
every swap through it (a pair's pool when the pair has a depth, else each asset's market on the
chain) by tangent cuts (which under-estimate it, so the reference's bound is a lower bound of
the true optimum; capped by the chord, so no plan can "burn" value to shrink the total), gas
and native sales out of the native coin above its reserve, band rows hard at the planner's
goals against the total after costs, each chain's bought assets losing its whole impact
between them (at most half of what each buys), however the shares fall. Whenever it is
feasible, the plan must reach the bands and cost at most 1.01x its bound (plus a cent of
rounding to base units).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_array

from rebalancer.chains.registry import Registry
from rebalancer.core.types import Holding
from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.context import PlanContext, make_context
from rebalancer.planner.drift import compute_drift
from rebalancer.planner.model import Portfolio, from_base_units, validate_all
from rebalancer.planner.plan import make_plan
from tests.planner.conftest import PRICES
from tests.planner.test_plan import _check_hard_constraints

NOW = datetime(2025, 6, 1, tzinfo=UTC)
REGISTRY = Registry.load()
WALLETS = {"ethereum": ["e1"], "avalanche": ["a1"], "solana": ["s1"]}
# The case: Ethereum swaps cost $8 of gas, Avalanche $0.30, Solana $0.01.
EDGE_COSTS = {
    "ethereum": {"gas_per_swap_usd": 8, "fee_bps": 10},
    "avalanche": {"gas_per_swap_usd": "0.30", "fee_bps": 10},
    "solana": {"gas_per_swap_usd": "0.01", "fee_bps": 10},
}
STRATEGIES = [
    StrategyConfig.model_validate({"min_trade_usd": 20, "costs": EDGE_COSTS}),
    StrategyConfig.model_validate(
        {"targets": {"BTC": 50, "ETH": 20, "STABLES": 30}, "min_trade_usd": 50, "band_pp": 3}
    ),
    StrategyConfig.model_validate(
        {
            "targets": {"BTC": 30, "ETH": 30, "STABLES": 20, "ALTS": {"SOL": 10, "AVAX": 10}},
            "min_trade_usd": 25,
            "costs": EDGE_COSTS,
            "mode": "target",
            "target_tolerance_pp": 2,
        }
    ),
]
_TANGENT_STEP = 2.0**0.25
"""Tangent points from the minimum size to the cap at this ratio: impact under-estimated by
under ((r - 1) / (r + 1))**2 = 0.75%."""


def reference_bound(ctx: PlanContext) -> float | None:
    """Lower bound (USD) of the cheapest plan meeting the solver's goals, or None if none."""
    pf, s, u = ctx.portfolio, ctx.strategy, ctx.universe
    total = float(ctx.total)
    scale = 100 / total  # work in points of the total, like any sane LP
    m = float(s.min_trade_usd) * scale
    swaps = []  # (chain, wallet, sell token, buy token, cap)
    native_cap: dict[tuple[str, str], float] = {}
    for chain, wallet in pf.accounts:
        native = u.native(chain)
        price_n = float(pf.prices.get(native.asset, 0))
        nat_raw = ctx.held.get((chain, wallet, native.id), 0)
        gas = float(ctx.gas_usd[chain]) * scale
        above = float(from_base_units(nat_raw - ctx.reserve[chain], native.decimals)) * price_n
        if nat_raw - ctx.reserve[chain] < ctx.gas_raw[chain]:
            continue  # cannot pay one swap's gas: this wallet cannot trade
        native_cap[(chain, wallet)] = above * scale
        for sell in ctx.tradable[chain]:
            raw = ctx.held.get((chain, wallet, sell.id), 0)
            value = float(from_base_units(raw, sell.decimals)) * float(pf.prices[sell.asset])
            cap = (above if sell.is_native else value) * scale
            if sell.is_native:
                cap -= gas
            if cap < m or cap <= 0:
                continue
            for buy in ctx.tradable[chain]:
                if buy.asset != sell.asset:
                    swaps.append((chain, wallet, sell, buy, cap))
    if not swaps:
        return None
    n = len(swaps)
    # pools: what each swap goes through, written out here from the config's depths
    pool_of: dict[tuple[str, str], int] = {}
    pool_k: list[float] = []
    through: list[list[int]] = []
    for c, _, a, b, _ in swaps:
        model = s.cost_model(c)
        pair = next(
            (
                model.depth_usd_by_pair[key]
                for key in (f"{a.asset}/{b.asset}", f"{b.asset}/{a.asset}")
                if key in model.depth_usd_by_pair
            ),
            None,
        )
        if pair is not None:
            legs = [(f"pair:{'/'.join(sorted((a.asset, b.asset)))}", 1 / float(pair))]
        else:
            legs = [(f"asset:{x}", 1 / float(model.depth(x))) for x in (a.asset, b.asset)]
        mine = []
        for name, k in legs:
            if (c, name) not in pool_of:
                pool_of[(c, name)] = len(pool_k)
                pool_k.append(k / scale)
            mine.append(pool_of[(c, name)])
        through.append(mine)
    n_pool = len(pool_k)
    pool_cap = [0.0] * n_pool
    counted: set[tuple[str, str, str, int]] = set()
    for p, (c, w, a, _, cap) in enumerate(swaps):
        for q in through[p]:
            if (c, w, a.id, q) not in counted:
                counted.add((c, w, a.id, q))
                pool_cap[q] += cap
    # what each (chain, asset) bought loses to impact (its swaps' shares of every pool)
    bear_of: dict[tuple[str, str], int] = {}
    for c, _, _, b, _ in swaps:
        bear_of.setdefault((c, b.asset), len(bear_of))
    # variables: x (n), on (n), imp and volume (one each per pool), cost, bears
    imp0 = 2 * n
    vol0 = imp0 + n_pool
    cost_v = vol0 + n_pool
    bear0 = cost_v + 1
    nv = bear0 + len(bear_of)
    cost_c = np.zeros(nv)
    cost_c[cost_v] = 1.0
    lb = np.zeros(nv)
    ub = np.full(nv, np.inf)
    ub[n : 2 * n] = 1.0
    integ = np.zeros(nv)
    integ[n : 2 * n] = 1
    rows: list[dict[int, float]] = []
    lo: list[float] = []
    hi: list[float] = []
    fee = [float(s.cost_model(c).fee_bps) / 10_000 for c, *_ in swaps]
    gas = [float(ctx.gas_usd[c]) * scale for c, *_ in swaps]
    for p, (_, _, _, _, cap) in enumerate(swaps):
        rows.append({p: 1.0, n + p: -cap})  # x <= cap * on
        lo.append(-np.inf)
        hi.append(0.0)
        rows.append({p: 1.0, n + p: -m})  # x >= m * on
        lo.append(0.0)
        hi.append(np.inf)
    for q in range(n_pool):
        k, cap = pool_k[q], pool_cap[q]
        row = {vol0 + q: -1.0}  # the pool's volume: every swap through it
        for p in range(n):
            if q in through[p]:
                row[p] = 1.0
        rows.append(row)
        lo.append(0.0)
        hi.append(0.0)
        rows.append({imp0 + q: 1.0, vol0 + q: -k * cap})  # imp <= k cap V: no burning money
        lo.append(-np.inf)
        hi.append(0.0)
        points = m * _TANGENT_STEP ** np.arange(0, np.log(cap / m) / np.log(_TANGENT_STEP) + 1)
        for t in [0.0, *points]:  # imp >= k (2 t V - t^2): tangents
            rows.append({imp0 + q: 1.0, vol0 + q: -2 * k * t})
            lo.append(-k * t * t)
            hi.append(np.inf)
    # a chain's bought assets together lose its whole impact (sum of shares = sum k V**2),
    # each at most half of what it buys (the evaluation refuses a swap losing more): a
    # relaxation of the shares, however they fall
    for c in {c for c, _ in bear_of}:
        row = {bear0 + i: 1.0 for (c2, _), i in bear_of.items() if c2 == c}
        for (c2, _), q in pool_of.items():
            if c2 == c:
                row[imp0 + q] = -1.0
        rows.append(row)
        lo.append(0.0)
        hi.append(0.0)
    for (c, asset), i in bear_of.items():
        row = {bear0 + i: -1.0}
        for p, (c2, _, _, b, _) in enumerate(swaps):
            if c2 == c and b.asset == asset:
                row[p] = 0.5
        rows.append(row)
        lo.append(0.0)
        hi.append(np.inf)
    costrow = {cost_v: -1.0}
    for p in range(n):
        costrow[p] = fee[p]
        costrow[n + p] = gas[p]
    for q in range(n_pool):
        costrow[imp0 + q] = 1.0
    rows.append(costrow)
    lo.append(0.0)
    hi.append(0.0)
    sold: dict[tuple[str, str, str], list[int]] = {}
    for p, (c, w, a, _, _cap) in enumerate(swaps):
        sold.setdefault((c, w, a.id), []).append(p)
    for ps in sold.values():
        cap = swaps[ps[0]][4]
        rows.append(dict.fromkeys(ps, 1.0))
        lo.append(-np.inf)
        hi.append(cap)
    for (c, w), above in native_cap.items():
        row: dict[int, float] = {}
        for p, (c2, w2, a, _, _) in enumerate(swaps):
            if (c2, w2) == (c, w):
                row[n + p] = row.get(n + p, 0.0) + gas[p]
                if a.is_native:
                    row[p] = row.get(p, 0.0) + 1.0
        if row:
            rows.append(row)
            lo.append(-np.inf)
            hi.append(above)
    values = pf.value_by_asset()
    for r in ctx.drift.targets.targeted:
        key = f"{r.kind}:{r.name}"
        g_lo, g_hi = (float(v) for v in ctx.solver_goals[key])
        v = sum(float(values.get(a, 0)) for a in r.assets) * scale
        for bound, sign in ((g_lo, 1.0), (g_hi, -1.0)):
            row = {cost_v: sign * bound / 100}
            for (_, asset), i in bear_of.items():
                if asset in r.assets:
                    row[bear0 + i] = -sign
            for p, (c, _, a, b, _) in enumerate(swaps):
                if b.asset in r.assets:
                    row[p] = row.get(p, 0.0) + sign * (1 - fee[p])
                if a.asset in r.assets:
                    row[p] = row.get(p, 0.0) - sign
                if u.native(c).asset in r.assets:
                    row[n + p] = row.get(n + p, 0.0) - sign * gas[p]
            rows.append(row)
            lo.append(sign * (bound - v))
            hi.append(np.inf)
    a_mat = lil_array((len(rows), nv))
    for i, row in enumerate(rows):
        for j, val in row.items():
            a_mat[i, j] = val
    res = milp(
        cost_c,
        integrality=integ,
        bounds=Bounds(lb, ub),
        constraints=LinearConstraint(a_mat.tocsr(), np.array(lo), np.array(hi)),
        options={"mip_rel_gap": 2e-3},  # its dual bound is what counts
    )
    if res.status != 0 or res.x is None:
        return None
    bound = getattr(res, "mip_dual_bound", None)
    best = float(res.fun) if bound is None or not np.isfinite(bound) else float(bound)
    return best / scale


@st.composite
def portfolios(draw: st.DrawFn) -> list[Holding]:
    out = []
    for chain, wallets in WALLETS.items():
        tokens = REGISTRY.tokens_on(chain)
        for wallet in wallets:
            picked = draw(
                st.lists(st.sampled_from(tokens[1:]), min_size=1, max_size=3, unique=True)
            )
            for token in [tokens[0], *picked]:
                # cheap chains often hold only part of what is needed
                top = 60_000 if chain == "ethereum" else 15_000
                usd = draw(st.integers(min_value=30, max_value=top))
                amount = Decimal(usd) / PRICES[token.asset]
                raw = int(amount.scaleb(token.decimals))
                if raw > 0:
                    out.append(Holding(chain, wallet, token, raw))
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(holdings=portfolios(), which=st.integers(min_value=0, max_value=len(STRATEGIES) - 1))
def test_plan_costs_the_exact_optimum(holdings: list[Holding], which: int) -> None:
    s = STRATEGIES[which]
    pf = Portfolio.build(holdings, PRICES)
    targets = validate_all(s, REGISTRY)
    plan = make_plan(pf, targets, s, REGISTRY, now=NOW, force=True)
    _check_hard_constraints(pf, plan, s, REGISTRY)
    drift = compute_drift(pf, targets, s, now=NOW)
    ctx = make_context(pf, s, REGISTRY, drift, None, NOW.date())
    bound = reference_bound(ctx)
    if bound is None:
        return  # the goals cannot be met in the model: nothing to compare
    assert plan.reachable and float(plan.solver["violation_pp"]) <= 1e-6, plan.skipped  # type: ignore[arg-type]
    assert float(plan.est_cost_usd) <= 1.01 * bound + 0.01, (plan.est_cost_usd, bound)
