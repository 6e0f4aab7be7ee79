"""Why the bands cannot be reached: each cause named, in the plan's text and JSON alike.

Markets too shallow for the move (price impact), a wallet without gas, ``min_trade_usd``, the
run limit and tokens left out of ``strategy.tradable`` are told apart; each reason names what
to change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.chains.registry import Registry
from rebalancer.cli import main
from rebalancer.planner.config import StrategyConfig, TradeLimits
from rebalancer.planner.model import validate_all
from rebalancer.planner.plan import Plan, make_plan
from rebalancer.planner.render import plan_json, plan_text
from rebalancer.planner.skips import GoalSkip
from tests.planner.conftest import portfolio
from tests.planner.test_plan import _check_hard_constraints

NOW = datetime(2025, 6, 1, tzinfo=UTC)
ONLY_ETH_USDC: dict[str, Any] = {
    "targets": {"ETH": 40, "STABLES": 60},
    "tradable": {"ethereum": ["ETH", "USDC"]},
}


def _plan(
    registry: Registry,
    strategy: dict[str, Any],
    rows: list[tuple[str, str, str, str]],
    limits: TradeLimits | None = None,
) -> Plan:
    s = StrategyConfig.model_validate(strategy)
    pf = portfolio(registry, rows)
    plan = make_plan(pf, validate_all(s, registry), s, registry, now=NOW, limits=limits)
    _check_hard_constraints(pf, plan, s, registry)
    return plan


def _goals(plan: Plan) -> dict[str, GoalSkip]:
    return {s.name: s for s in plan.skipped if isinstance(s, GoalSkip)}


def _said_first(plan: Plan) -> str:
    """The why, checked to be the same in the text (its first line) and the JSON."""
    assert not plan.reachable and plan.unreachable_why
    doc = plan_json(plan, NOW)
    assert doc["reachable"] is False and doc["unreachable_why"] == plan.unreachable_why
    text = plan_text(plan)
    assert text.startswith(f"bands NOT reachable: {plan.unreachable_why}\n")
    return plan.unreachable_why


def test_a_billion_eth_is_told_the_markets_are_too_shallow(registry: Registry) -> None:
    # 3.5e12 USD of ETH through the default 10M USD markets: no swap that size is ever made
    plan = _plan(
        registry,
        ONLY_ETH_USDC,
        [("ethereum", "w", "ETH", "1000000000"), ("ethereum", "w", "USDC", "5000")],
    )
    why = _said_first(plan)
    assert "min_trade_usd" not in why and "costs more than it fixes" not in why
    eth = _goals(plan)["ETH"]
    assert eth.reason == "depth"
    for words in (
        "the markets are too shallow",
        "price impact",
        "ETH on ethereum (depth 10000000 USD) against USDC (depth 10000000 USD)",
        "a swap losing half is never made",
        "strategy.costs.ethereum.depth_usd (now 10000000)",
        "policy.max_run_usd = 50000 loses about 1% a run",
    ):
        assert words in eth.detail, eth.detail
    assert f"ETH: {eth.detail}" in why
    doc = plan_json(plan, NOW)
    assert {"name": "ETH", "reason": "depth"}.items() <= next(
        s for s in doc["skipped"] if s.get("name") == "ETH"
    ).items()


@pytest.mark.parametrize(
    ("costs", "key"),
    [
        ({"depth_usd": 150000}, "strategy.costs.ethereum.depth_usd (now 150000)"),
        (
            {"depth_usd_by_asset": {"ETH": 50000}},
            "strategy.costs.ethereum.depth_usd_by_asset.ETH (now 50000)",
        ),
        (
            {"depth_usd_by_pair": {"ETH/USDC": 60000}},
            'strategy.costs.ethereum.depth_usd_by_pair."ETH/USDC" (now 60000)',
        ),
    ],
)
def test_a_tiny_depth_is_named_with_its_config_key(
    registry: Registry, costs: dict[str, Any], key: str
) -> None:
    # 30 ETH = 105k USD: 55.5k USD must move; every depth here makes that lose over half
    strategy = {**ONLY_ETH_USDC, "costs": {"ethereum": {"gas_per_swap_usd": 6, **costs}}}
    plan = _plan(
        registry, strategy, [("ethereum", "w", "ETH", "30"), ("ethereum", "w", "USDC", "5000")]
    )
    why = _said_first(plan)
    assert plan.trades == ()
    eth = _goals(plan)["ETH"]
    assert eth.reason == "depth" and key in eth.detail and "too shallow" in eth.detail, eth.detail
    assert "would lose at least" in why or "more than the value it moves" in why
    assert "several runs" in why and "min_trade_usd" not in why


def test_impact_that_eats_what_the_swaps_buy_is_named(registry: Registry) -> None:
    # deep enough that each swap goes through, shallow enough that impact leaves a row short
    strategy = {
        **ONLY_ETH_USDC,
        "costs": {"ethereum": {"gas_per_swap_usd": 6, "depth_usd": 300000}},
    }
    plan = _plan(
        registry, strategy, [("ethereum", "w", "ETH", "30"), ("ethereum", "w", "USDC", "5000")]
    )
    _said_first(plan)
    assert plan.trades and sum(t.impact_usd for t in plan.trades) > 10_000
    assert {g.reason for g in _goals(plan).values()} == {"depth"}
    assert all("price impact" in g.detail for g in _goals(plan).values())


def test_a_wallet_without_gas_is_named_not_nothing_sellable(registry: Registry) -> None:
    # 1 WBTC to sell, but 0.001 ETH: below the 0.01 ETH reserve plus one swap's gas
    plan = _plan(
        registry,
        {"targets": {"BTC": 40, "STABLES": 60}, "tradable": {"ethereum": ["ETH", "USDC", "WBTC"]}},
        [("ethereum", "w", "WBTC", "1"), ("ethereum", "w", "ETH", "0.001")],
    )
    why = _said_first(plan)
    assert "nothing sellable" not in why
    btc = _goals(plan)["BTC"]
    assert btc.reason == "reserve"
    for words in ("cannot pay gas", "ethereum w", "0.001", "strategy.gas_reserve.ethereum"):
        assert words in btc.detail, btc.detail
    assert any(s.reason == "reserve" and not isinstance(s, GoalSkip) for s in plan.skipped)


def test_gas_spent_by_the_plan_itself_is_named(registry: Registry) -> None:
    # enough ETH above the reserve for two swaps of 20k USD, far from the 90k USD to move
    plan = _plan(
        registry,
        {
            "targets": {"BTC": 10, "STABLES": 90},
            "tradable": {"ethereum": ["ETH", "USDC", "WBTC"]},
            "min_trade_usd": 10,
        },
        [("ethereum", "w", "WBTC", "1"), ("ethereum", "w", "ETH", "0.0135")],
        TradeLimits(max_trade_usd=Decimal(20_000)),
    )
    why = _said_first(plan)
    assert len(plan.trades) == 2
    btc = _goals(plan)["BTC"]
    assert btc.reason == "reserve" and "can pay more gas" in btc.detail, btc.detail
    assert "strategy.gas_reserve.ethereum" in why and "min_trade_usd" not in why


def test_a_gap_under_min_trade_usd_keeps_its_message(registry: Registry) -> None:
    plan = _plan(
        registry,
        {**ONLY_ETH_USDC, "min_trade_usd": 200_000},
        [("ethereum", "w", "ETH", "30"), ("ethereum", "w", "USDC", "5000")],
    )
    why = _said_first(plan)
    assert {g.reason for g in _goals(plan).values()} == {"under_minimum"}
    assert "trades under min_trade_usd = 200000" in why and "shallow" not in why


@pytest.mark.parametrize("depth", [10_000_000, 1_000_000])
def test_rows_left_for_the_next_run_say_the_run_limit(registry: Registry, depth: int) -> None:
    # at 1M USD of depth the whole move loses over 10% to impact, yet one run without the
    # limit reaches the bands: the limit is the reason, not the market
    plan = _plan(
        registry,
        {**ONLY_ETH_USDC, "costs": {"ethereum": {"gas_per_swap_usd": 6, "depth_usd": depth}}},
        [("ethereum", "w", "ETH", "30"), ("ethereum", "w", "USDC", "5000")],
        TradeLimits(max_trade_usd=Decimal(20_000), max_run_usd=Decimal(30_000)),
    )
    assert plan.reachable and plan.left_usd is not None
    goals = _goals(plan)
    assert goals and {g.reason for g in goals.values()} == {"run_limit"}
    assert all("policy.max_run_usd = 30000 reached" in g.detail for g in goals.values())


def test_a_run_limit_over_a_shallow_market_counts_the_runs(registry: Registry) -> None:
    plan = _plan(
        registry,
        ONLY_ETH_USDC,
        [("ethereum", "w", "ETH", "1000000000"), ("ethereum", "w", "USDC", "5000")],
        TradeLimits(max_run_usd=Decimal(50_000)),
    )
    why = _said_first(plan)
    assert plan.trades and sum(t.value_usd for t in plan.trades) <= 50_000
    assert _goals(plan)["ETH"].reason == "depth"
    assert "at policy.max_run_usd = 50000, about 38,500,000 runs" in why


def test_tokens_left_out_of_tradable_are_named(registry: Registry) -> None:
    plan = _plan(
        registry,
        {
            "targets": {"ETH": 40, "BTC": 30, "STABLES": 30},
            "tradable": {"ethereum": ["ETH", "WBTC"]},
        },
        [("ethereum", "w", "ETH", "10"), ("ethereum", "w", "USDT", "10")],
    )
    _said_first(plan)
    stables = _goals(plan)["STABLES"]
    assert stables.reason == "no_route"
    assert "not in strategy.tradable: " in stables.detail and "USDC" in stables.detail


def test_the_cli_says_so_in_text_and_json(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snap = tmp_path / "snap.json"
    snap.write_text(
        json.dumps(
            {
                "as_of": "2025-06-01T00:00:00Z",
                "prices": {"ETH": "3500", "USDC": "1"},
                "holdings": [
                    {"chain": "ethereum", "wallet": "demo", "token": "ETH", "amount": "1000000000"},
                    {"chain": "ethereum", "wallet": "demo", "token": "USDC", "amount": "5000"},
                ],
            }
        )
    )
    config_file.write_text(
        config_file.read_text()
        + "\n[strategy]\ntargets = { ETH = 40, STABLES = 60 }\n"
        + '\n[strategy.tradable]\nethereum = ["ETH", "USDC"]\n'
    )
    assert main(["plan", "-c", str(config_file), "--snapshot", str(snap), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["reachable"] is False and "too shallow" in doc["unreachable_why"]
    assert "strategy.costs.ethereum.depth_usd" in doc["unreachable_why"]
    assert {s["reason"] for s in doc["skipped"] if "name" in s} == {"depth"}
    assert main(["plan", "-c", str(config_file), "--snapshot", str(snap)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("bands NOT reachable: ETH: over its goal") and "too shallow" in out


def test_shallow_markets_that_can_reach_the_bands_do(registry: Registry) -> None:
    """Through 1M USD markets a $58k ETH sale loses ~8% to impact. The MILP charges rows no
    impact, so its plan (ETH into USDC, USDT and LINK) ended STABLES 3.7 points short; the
    polish, which charges each bought row its share, buys enough and is now kept because the
    two are compared under the pooled model, not by their own objectives."""
    strategy = {
        "targets": {"ETH": 40, "STABLES": 60},
        "costs": {"ethereum": {"gas_per_swap_usd": 6, "depth_usd": 1_000_000}},
    }
    plan = _plan(
        registry, strategy, [("ethereum", "w", "ETH", "30"), ("ethereum", "w", "USDC", "5000")]
    )
    assert plan.reachable
    assert float(plan.solver["violation_pp"]) <= 1e-6  # type: ignore[arg-type]
    assert not _goals(plan)
