"""The policy's limits as planning constraints, and plans that cannot reach the bands."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from rebalancer.chains.registry import Registry
from rebalancer.cli import main
from rebalancer.planner.config import StrategyConfig, TradeLimits
from rebalancer.planner.model import validate_all
from rebalancer.planner.plan import make_plan
from rebalancer.planner.render import plan_json, plan_text
from tests.planner.conftest import portfolio
from tests.planner.test_plan import _check_hard_constraints

NOW = datetime(2025, 6, 1, tzinfo=UTC)
ONLY_ETH_USDC = {
    "targets": {"ETH": 40, "STABLES": 60},
    "tradable": {"ethereum": ["ETH", "USDC"]},
    "min_trade_usd": 50,
}


def _eth_heavy(registry: Registry) -> object:
    # 30 ETH = $105k and $5k USDC: ETH 95% against a 40% target, one pair to trade
    return portfolio(registry, [("ethereum", "w", "ETH", "30"), ("ethereum", "w", "USDC", "5000")])


def test_a_trade_over_max_trade_usd_becomes_slices_each_paying_gas(registry: Registry) -> None:
    s = StrategyConfig.model_validate(ONLY_ETH_USDC)
    pf = _eth_heavy(registry)
    t = validate_all(s, registry)
    free = make_plan(pf, t, s, registry, now=NOW)  # type: ignore[arg-type]
    assert len(free.trades) == 1 and free.trades[0].value_usd > 50_000
    limited = make_plan(
        pf,  # type: ignore[arg-type]
        t,
        s,
        registry,
        now=NOW,
        limits=TradeLimits(max_trade_usd=Decimal(50_000)),
    )
    _check_hard_constraints(pf, limited, s, registry)  # type: ignore[arg-type]
    assert len(limited.trades) == 2
    assert all(x.value_usd <= 50_000 and x.gas_usd == Decimal(6) for x in limited.trades)
    assert limited.est_cost_usd == sum(x.est_cost_usd for x in limited.trades)
    assert limited.reachable and limited.left_usd is None
    assert all(not r.triggered for r in limited.after)


def test_the_run_stays_within_max_run_usd_and_says_what_is_left(registry: Registry) -> None:
    s = StrategyConfig.model_validate(ONLY_ETH_USDC)
    pf = _eth_heavy(registry)
    limits = TradeLimits(max_trade_usd=Decimal(20_000), max_run_usd=Decimal(30_000))
    plan = make_plan(pf, validate_all(s, registry), s, registry, now=NOW, limits=limits)  # type: ignore[arg-type]
    assert sum(x.value_usd for x in plan.trades) <= 30_000
    assert all(x.value_usd <= 20_000 for x in plan.trades)
    assert plan.reachable and plan.left_usd is not None and plan.left_usd > 20_000
    assert any(x.reason == "run_limit" for x in plan.skipped)
    doc = plan_json(plan, NOW)
    assert doc["reachable"] is True and Decimal(doc["left_for_next_run_usd"]) > 20_000
    assert "left for the next run" in plan_text(plan)


@pytest.mark.parametrize("rule", ["best_effort", "refuse"])
def test_unreachable_bands_are_said_first(registry: Registry, rule: str) -> None:
    # STABLES cannot be bought (USDC is not tradable), so the bands cannot be met
    s = StrategyConfig.model_validate(
        {
            "targets": {"ETH": 40, "BTC": 30, "STABLES": 30},
            "tradable": {"ethereum": ["ETH", "WBTC"]},
            "min_trade_usd": 20,
            "on_unreachable": rule,
        }
    )
    pf = portfolio(registry, [("ethereum", "w", "ETH", "10")])
    plan = make_plan(pf, validate_all(s, registry), s, registry, now=NOW)
    assert not plan.reachable and plan.unreachable_why and "STABLES" in plan.unreachable_why
    doc = plan_json(plan, NOW)
    assert doc["reachable"] is False and doc["unreachable_why"] == plan.unreachable_why
    assert plan_text(plan).startswith("bands NOT reachable: ")
    if rule == "refuse":
        assert plan.trades == () and plan.method == "none"
        assert any(x.reason == "unreachable" for x in plan.skipped)
    else:  # today's behaviour: trade what brings the other rows closer
        assert plan.trades and all(x.buy.symbol == "WBTC" for x in plan.trades)


def test_min_trade_above_max_trade_is_a_config_error(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file.write_text(
        config_file.read_text()
        + "\n[strategy]\nmin_trade_usd = 2000\n\n[policy]\nmax_trade_usd = 1000\n"
    )
    assert main(["plan", "-c", str(config_file), "--snapshot", "examples/snapshot.json"]) == 2
    err = capsys.readouterr().err
    assert "strategy.min_trade_usd = 2000" in err and "policy.max_trade_usd = 1000" in err
