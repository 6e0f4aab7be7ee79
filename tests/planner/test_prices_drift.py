"""Price sources and their sanity check; drift rows; the triggers' formulas."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from rebalancer.chains.registry import Registry
from rebalancer.core.errors import ConfigError, RefusedError
from rebalancer.planner.config import MomentumTilt, StrategyConfig, Triggers, VolatilityBands
from rebalancer.planner.drift import compute_drift
from rebalancer.planner.model import Portfolio, Targets, validate_all
from rebalancer.planner.prices import ManualPrices, PriceDisagreementError, check_agreement
from rebalancer.planner.snapshot import Snapshot
from rebalancer.planner.triggers import (
    calendar,
    momentum_return,
    realised_vol,
    tilt,
    vol_multiplier,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def test_price_sources_must_agree() -> None:
    a = ManualPrices({"BTC": Decimal(100000), "ETH": Decimal(3500)}, "snapshot")
    b = ManualPrices({"BTC": Decimal(101000), "ETH": Decimal(3000)}, "quotes")
    assert check_agreement(a, b, ["BTC"], Decimal(2))["BTC"] == 100000
    with pytest.raises(PriceDisagreementError) as exc:
        check_agreement(a, b, ["BTC", "ETH"], Decimal(2))
    assert isinstance(exc.value, RefusedError) and exc.value.exit_code == 3
    assert "price of ETH" in str(exc.value)


def test_manual_prices_refuse_nonsense() -> None:
    with pytest.raises(ConfigError, match=re.escape("prices.BTC")):
        ManualPrices({"BTC": Decimal(-1)}, "prices")


def test_drift_of_the_example(
    snapshot: Snapshot, targets: Targets, strategy: StrategyConfig
) -> None:
    pf = Portfolio.build(snapshot.holdings, snapshot.prices)
    d = compute_drift(pf, targets, strategy, now=snapshot.as_of)
    rows = {(r.kind, r.name): r for r in d.rows}
    assert d.total_usd == Decimal(190400)
    btc = rows[("class", "BTC")]
    assert btc.value_usd == Decimal(115000)
    assert btc.drift_pp is not None and abs(btc.drift_pp - Decimal("20.3992")) < Decimal("0.001")
    assert btc.triggered and d.triggered
    assert rows[("asset", "USDC")].target_pct is None  # inside a whole-class target
    assert [t.name for t in d.triggers][:2] == ["threshold", "calendar"]


def test_calendar_min_blocks_and_max_forces(
    snapshot: Snapshot, targets: Targets, registry: Registry
) -> None:
    pf = Portfolio.build(snapshot.holdings, snapshot.prices)
    s = StrategyConfig(triggers=Triggers(min_interval_days=Decimal(30)))
    d = compute_drift(pf, targets, s, now=NOW, last_rebalance=NOW - timedelta(days=3))
    assert not d.triggered
    assert any(t.name == "calendar_min" for t in d.triggers)
    # within bands, but overdue
    balanced = Portfolio.build(
        [h for h in snapshot.holdings if h.token.asset == "USDC"], snapshot.prices
    )
    s = StrategyConfig.model_validate(
        {"targets": {"STABLES": 100}, "triggers": {"max_interval_days": 90}}
    )
    t = validate_all(s, registry)
    d = compute_drift(balanced, t, s, now=NOW, last_rebalance=NOW - timedelta(days=120))
    assert d.triggered
    d = compute_drift(balanced, t, s, now=NOW, last_rebalance=NOW - timedelta(days=10))
    assert not d.triggered


def test_calendar_formula() -> None:
    cfg = Triggers(min_interval_days=Decimal(7), max_interval_days=Decimal(30))
    c = calendar(NOW, NOW - timedelta(days=10), cfg)
    assert (c.blocked, c.due, c.elapsed_days) == (False, False, Decimal("10.00"))
    assert calendar(NOW, NOW - timedelta(days=2), cfg).blocked
    assert calendar(NOW, NOW - timedelta(days=31), cfg).due
    assert calendar(NOW, None, cfg).due  # never rebalanced and a maximum is set


def test_volatility_multiplier_formula() -> None:
    cfg = VolatilityBands(
        window=4, reference_vol_pct=Decimal(50), max_multiplier=Decimal(3), periods_per_year=365
    )
    prices = [Decimal(p) for p in (100, 110, 99, 108.9, 98)]
    logs = [
        math.log(b / a) for a, b in zip([100, 110, 99, 108.9], [110, 99, 108.9, 98], strict=True)
    ]
    mean = sum(logs) / 4
    expected = math.sqrt(sum((x - mean) ** 2 for x in logs) / 3) * math.sqrt(365)
    sigma = realised_vol(prices, cfg)
    assert sigma is not None and abs(float(sigma) - expected) < 1e-5
    assert vol_multiplier(sigma, cfg) == min(
        Decimal(3), max(Decimal(1), sigma / Decimal("0.5"))
    ).quantize(Decimal("0.000001"))
    assert vol_multiplier(None, cfg) == 1
    flat = [Decimal(100)] * 10
    assert vol_multiplier(realised_vol(flat, cfg), cfg) == 1


def test_volatile_history_widens_the_band(snapshot: Snapshot, registry: Registry) -> None:
    pf = Portfolio.build(snapshot.holdings, snapshot.prices)
    s = StrategyConfig.model_validate(
        {"triggers": {"volatility": {"window": 10, "reference_vol_pct": 20, "max_multiplier": 2}}}
    )
    t = validate_all(s, registry)
    wild = [Decimal(100 + (15 if i % 2 else -15)) for i in range(12)]
    d = compute_drift(pf, t, s, history={"BTC": wild})
    rows = {(r.kind, r.name): r for r in d.rows}
    assert rows[("class", "BTC")].band_pp == Decimal(10)
    assert rows[("class", "ETH")].band_pp == Decimal(5)


def test_momentum_tilt_formula_and_renormalisation(snapshot: Snapshot, registry: Registry) -> None:
    cfg = MomentumTilt(lookback=2, strength=Decimal(1), max_tilt_pct=Decimal(10))
    assert momentum_return([Decimal(100), Decimal(150), Decimal(120)], cfg) == Decimal("0.2")
    assert tilt(Decimal("0.2"), cfg) == Decimal("0.1")
    assert tilt(Decimal("-0.05"), cfg) == Decimal("-0.05")
    assert momentum_return([Decimal(1)], cfg) is None
    pf = Portfolio.build(snapshot.holdings, snapshot.prices)
    s = StrategyConfig.model_validate({"triggers": {"momentum": {"lookback": 2, "strength": 1}}})
    t = validate_all(s, registry)
    d = compute_drift(pf, t, s, history={"BTC": [Decimal(100), Decimal(100), Decimal(110)]})
    targets = {r.name: r.target_pct for r in d.rows if r.kind == "class"}
    assert targets["BTC"] is not None and targets["BTC"] > 40
    assert abs(sum(v for v in targets.values() if v is not None) - 100) < Decimal("0.0001")
