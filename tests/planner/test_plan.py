"""The plan on the example and on hand-made portfolios: constraints, skip reasons, tax."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from rebalancer.chains.registry import Registry
from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.model import Portfolio, from_base_units, reserve_raw, validate_all
from rebalancer.planner.plan import Plan, make_plan
from rebalancer.planner.render import plan_json
from rebalancer.planner.snapshot import Snapshot
from rebalancer.planner.tax import parse_lots_csv
from tests.planner.conftest import DRIFT_ROW_KEYS, PLAN_KEYS, TRADE_KEYS, portfolio

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _check_hard_constraints(pf: Portfolio, plan: Plan, s: StrategyConfig, reg: Registry) -> None:
    held = {(p.chain, p.wallet, p.token.id): p.raw for p in pf.positions}
    for t in plan.trades:
        key = (t.chain, t.wallet, t.sell.id)
        held[key] = held.get(key, 0) - t.amount_in
        buy = (t.chain, t.wallet, t.buy.id)
        held[buy] = held.get(buy, 0) + t.expected_out
        nat = (t.chain, t.wallet, reg.native(t.chain).id)
        held[nat] = held.get(nat, 0) - t.gas_native
        assert t.value_usd >= s.min_trade_usd
        assert 0 < t.min_out <= t.expected_out
        assert t.sell.chain == t.buy.chain == t.chain
    for (chain, wallet, tid), raw in held.items():
        assert raw >= 0
        if tid == reg.native(chain).id:
            before = next(
                (
                    p.raw
                    for p in pf.positions
                    if (p.chain, p.wallet, p.token.id) == (chain, wallet, tid)
                ),
                0,
            )
            if before >= reserve_raw(s, reg, chain):
                assert raw >= reserve_raw(s, reg, chain)


def test_example_plan_meets_bands(snapshot: Snapshot, registry: Registry) -> None:
    s = StrategyConfig()
    t = validate_all(s, registry)
    pf = Portfolio.build(snapshot.holdings, snapshot.prices)
    plan = make_plan(pf, t, s, registry, now=NOW)
    assert plan.trades and plan.method == "optimised"
    assert all(not r.triggered for r in plan.after)
    assert plan.after_max_drift_pp <= 5
    assert plan.naive_cost_usd is not None and plan.est_cost_usd <= plan.naive_cost_usd
    _check_hard_constraints(pf, plan, s, registry)
    doc = plan_json(plan, NOW)
    assert set(doc) >= PLAN_KEYS
    assert set(doc["trades"][0]) >= TRADE_KEYS
    assert set(doc["after"][0]) >= DRIFT_ROW_KEYS


def test_same_input_same_plan(snapshot: Snapshot, registry: Registry) -> None:
    s = StrategyConfig()
    t = validate_all(s, registry)
    pf = Portfolio.build(snapshot.holdings, snapshot.prices)
    a = plan_json(make_plan(pf, t, s, registry, now=NOW), NOW)
    b = plan_json(make_plan(pf, t, s, registry, now=NOW), NOW)
    assert a == b


def test_in_band_portfolio_has_no_trades(registry: Registry) -> None:
    pf = portfolio(
        registry,
        [
            ("ethereum", "w", "ETH", "1"),
            ("ethereum", "w", "WBTC", "0.04"),
            ("ethereum", "w", "USDC", "1000"),
            ("ethereum", "w", "LINK", "100"),
        ],
    )  # 3500 ETH, 4000 BTC, 1000 USDC, 2000 LINK: 33/38/9.5/19
    s = StrategyConfig()
    plan = make_plan(pf, validate_all(s, registry), s, registry, now=NOW)
    assert plan.trades == () and plan.method == "none"


def test_target_mode_goes_to_target(snapshot: Snapshot, registry: Registry) -> None:
    s = StrategyConfig(mode="target", target_tolerance_pp=Decimal(1))
    pf = Portfolio.build(snapshot.holdings, snapshot.prices)
    plan = make_plan(pf, validate_all(s, registry), s, registry, now=NOW)
    for r in plan.after:
        if r.kind == "class":
            assert r.drift_pp is not None and abs(r.drift_pp) <= 1
    _check_hard_constraints(pf, plan, s, registry)


def test_reserve_is_kept_and_locked_wallet_reported(registry: Registry) -> None:
    s = StrategyConfig.model_validate(
        {
            "targets": {"ETH": 50, "STABLES": 50},
            "gas_reserve": {"ethereum": "0.5"},
            "min_trade_usd": 10,
        }
    )
    pf = portfolio(
        registry,
        [
            ("ethereum", "a", "ETH", "3"),  # 10500: ETH far over
            ("ethereum", "a", "USDC", "500"),
            ("ethereum", "b", "ETH", "0.4"),  # below its reserve: cannot trade
            ("ethereum", "b", "WETH", "2"),
        ],
    )
    plan = make_plan(pf, validate_all(s, registry), s, registry, now=NOW)
    _check_hard_constraints(pf, plan, s, registry)
    assert all(t.wallet == "a" for t in plan.trades)
    eth = registry.native("ethereum")
    sold = sum(t.amount_in for t in plan.trades if t.sell == eth)
    gas = sum(t.gas_native for t in plan.trades)
    assert 3 * 10**18 - sold - gas >= 5 * 10**17
    assert any(x.reason == "reserve" and x.wallet == "b" for x in plan.skipped)


def test_needs_bridge_when_only_another_chain_has_the_asset(registry: Registry) -> None:
    # JUP only exists on Solana; the Solana wallet holds almost nothing to sell.
    s = StrategyConfig.model_validate(
        {"targets": {"ETH": 50, "ALTS": {"JUP": 50}}, "min_trade_usd": 10}
    )
    pf = portfolio(
        registry,
        [
            ("ethereum", "w", "ETH", "10"),
            ("solana", "s", "SOL", "0.1"),
        ],
    )
    plan = make_plan(pf, validate_all(s, registry), s, registry, now=NOW)
    reasons = {x.reason for x in plan.skipped}
    assert "needs_bridge" in reasons
    bridge = next(x for x in plan.skipped if x.reason == "needs_bridge")
    assert bridge.name in {"ALTS", "JUP", "ETH"} and Decimal(bridge.amount_usd) > 0


def test_no_route_when_not_tradable(registry: Registry) -> None:
    s = StrategyConfig.model_validate(
        {
            "targets": {"ETH": 50, "STABLES": 50},
            "tradable": {"ethereum": ["ETH", "WETH"]},
            "min_trade_usd": 10,
        }
    )
    pf = portfolio(registry, [("ethereum", "w", "ETH", "10")])
    plan = make_plan(pf, validate_all(s, registry), s, registry, now=NOW)
    assert not plan.trades
    assert any(x.reason == "no_route" and x.name == "STABLES" for x in plan.skipped)


def test_under_minimum(registry: Registry) -> None:
    s = StrategyConfig.model_validate(
        {"targets": {"ETH": 50, "STABLES": 50}, "min_trade_usd": 5000, "band_pp": 1}
    )
    pf = portfolio(registry, [("ethereum", "w", "ETH", "1"), ("ethereum", "w", "USDC", "3000")])
    plan = make_plan(pf, validate_all(s, registry), s, registry, now=NOW)
    assert not plan.trades
    assert {x.reason for x in plan.skipped} == {"under_minimum"}


def test_tax_aware_prefers_the_loss_lot(registry: Registry) -> None:
    # ALTS is over; LINK is held at a loss, UNI at a large gain: tax-aware sells LINK.
    s_plain = StrategyConfig.model_validate(
        {
            "targets": {"ALTS": 50, "STABLES": 50},
            "min_trade_usd": 10,
            "tax": {"method": "specific", "aware": False},
        }
    )
    s_aware = s_plain.model_copy(update={"tax": s_plain.tax.model_copy(update={"aware": True})})
    pf = portfolio(
        registry,
        [
            ("ethereum", "w", "ETH", "1"),
            ("ethereum", "w", "LINK", "1750"),  # 35000
            ("ethereum", "w", "UNI", "3500"),  # 35000
            ("ethereum", "w", "USDC", "30000"),
        ],
    )
    lots = parse_lots_csv(
        "date,asset,amount,cost_basis_usd\n2025-05-01,LINK,1750,42000\n2025-05-01,UNI,3500,5000\n"
    )
    plain = make_plan(pf, validate_all(s_plain, registry), s_plain, registry, now=NOW, lots=lots)
    aware = make_plan(pf, validate_all(s_aware, registry), s_aware, registry, now=NOW, lots=lots)
    assert aware.est_tax_usd <= plain.est_tax_usd
    sold_link = sum(t.value_usd for t in aware.trades if t.sell.asset == "LINK")
    sold_uni = sum(t.value_usd for t in aware.trades if t.sell.asset == "UNI")
    assert sold_link > 0 and sold_uni == 0
    assert all(t.realised is not None for t in aware.trades)
    assert aware.est_tax_usd < 0


def test_amounts_are_exact_integers(snapshot: Snapshot, registry: Registry) -> None:
    s = StrategyConfig()
    pf = Portfolio.build(snapshot.holdings, snapshot.prices)
    plan = make_plan(pf, validate_all(s, registry), s, registry, now=NOW)
    for t in plan.trades:
        assert isinstance(t.amount_in, int) and isinstance(t.expected_out, int)
        value = from_base_units(t.amount_in, t.sell.decimals) * snapshot.prices[t.sell.asset]
        assert value == t.value_usd
