"""Same-asset harvest swaps in the pure planner: the saving against the modelled cost, the
repurchase wait, and the plan's own trades left alone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from rebalancer.chains.registry import Registry
from rebalancer.core.types import Holding
from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.harvest import with_harvest
from rebalancer.planner.model import Portfolio, validate_all
from rebalancer.planner.plan import make_plan
from rebalancer.planner.tax import Lot

WALLET = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
PRICES = {"BTC": Decimal(100000), "ETH": Decimal(3500), "USDC": Decimal(1)}
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _setup(registry: Registry, basis: Decimal, **tax: object) -> tuple:
    wbtc = registry.by_symbol("ethereum", "WBTC")
    assert wbtc is not None
    holdings = [
        Holding("ethereum", WALLET, registry.native("ethereum"), 2 * 10**18),
        Holding("ethereum", WALLET, wbtc, 10**8),
    ]
    portfolio = Portfolio.build(holdings, PRICES)
    strategy = StrategyConfig.model_validate(
        {
            "targets": {"BTC": 93, "ETH": 7},
            "band_pp": 50,
            "tax": {"aware": True, "harvest": True, "method": "specific", **tax},
        }
    )
    targets = validate_all(strategy, registry)
    lots = [Lot("L1", date(2026, 6, 1), "BTC", Decimal(1), basis)]
    plan = make_plan(portfolio, targets, strategy, registry, now=NOW, lots=lots)
    assert not plan.trades  # nothing triggers: only a harvest swap can trade
    return plan, portfolio, strategy, lots, wbtc


def test_a_loss_worth_more_than_the_swap_is_harvested_into_another_btc_token(
    registry: Registry,
) -> None:
    plan, portfolio, strategy, lots, wbtc = _setup(registry, Decimal(120000))
    out, swaps = with_harvest(plan, portfolio, strategy, registry, lots, NOW.date())
    (swap,) = swaps
    assert swap.sell == wbtc and swap.buy is not None and swap.buy.asset == "BTC"
    assert swap.buy.id != wbtc.id and swap.buy.chain == "ethereum"
    assert swap.loss_usd == Decimal(20000)
    assert swap.saving_usd == Decimal(6000)  # 30% short-term rate
    assert Decimal(0) < swap.cost_usd < swap.saving_usd and swap.net_usd > 0
    (t,) = out.trades
    assert t.sell == wbtc and t.buy == swap.buy and t.amount_in == 10**8
    assert t.realised is not None and t.realised.gain_usd == Decimal(-20000)
    assert out.est_tax_usd == Decimal(-6000) and out.est_cost_usd == t.est_cost_usd
    assert t.reason.startswith("harvest:")


def test_a_loss_smaller_than_the_cost_is_not(registry: Registry) -> None:
    plan, portfolio, strategy, lots, _ = _setup(registry, Decimal(100010), harvest_min_loss_usd=0)
    out, (swap,) = with_harvest(plan, portfolio, strategy, registry, lots, NOW.date())
    assert not out.trades and not swap.trades
    assert swap.saving_usd == Decimal(3) and "does not beat the cost" in swap.note


def test_the_repurchase_wait_blocks_the_substitutes(registry: Registry) -> None:
    plan, portfolio, strategy, lots, wbtc = _setup(registry, Decimal(120000))
    others = {
        t.id: date(2026, 12, 20)
        for t in registry.tokens_on("ethereum")
        if t.asset == "BTC" and t.id != wbtc.id
    }
    out, (swap,) = with_harvest(plan, portfolio, strategy, registry, lots, NOW.date(), None, others)
    assert not out.trades and not swap.trades
    assert "repurchase wait:" in swap.note and "until 2026-12-20" in swap.note
    # a token itself in its wait is left alone too
    out, swaps = with_harvest(
        plan, portfolio, strategy, registry, lots, NOW.date(), None, {wbtc.id: date(2026, 12, 20)}
    )
    assert not out.trades and not swaps


def test_off_unless_aware_and_harvest(registry: Registry) -> None:
    plan, portfolio, strategy, lots, _ = _setup(registry, Decimal(120000))
    off = strategy.model_copy(update={"tax": strategy.tax.model_copy(update={"harvest": False})})
    out, swaps = with_harvest(plan, portfolio, off, registry, lots, NOW.date())
    assert out is plan and swaps == []
