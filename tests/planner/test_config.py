"""StrategyConfig validation and the registry-dependent checks: bad input names field and value."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from rebalancer.chains.registry import Registry
from rebalancer.config import load_config
from rebalancer.core.errors import ConfigError
from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.model import reserve_raw, resolve_targets, validate_all
from tests.planner.conftest import CONFIG_TOML


def test_defaults_keep_the_existing_fields() -> None:
    s = StrategyConfig()
    assert s.band_pp == 5
    assert sum(Decimal(v) for v in s.targets.values() if not isinstance(v, dict)) == 100


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"targets": {"BTC": 50, "ETH": 30}}, "targets sum to 80"),
        ({"targets": {"BTC": 110, "ETH": -10}}, "is negative"),
        ({"band_pp": -1}, "band_pp = -1"),
        ({"band_pp": 80}, "band_pp = 80"),
        ({"band_rel_pct": 0}, "band_rel_pct = 0"),
        ({"slippage_bps": 9000}, "slippage_bps"),
        ({"mode": "sideways"}, "mode"),
        ({"surprise": 1}, "surprise"),
        (
            {"costs": {"ethereum": {"gas_per_swap_usd": 1, "gas_per_swap_native": "0.001"}}},
            "not both",
        ),
        ({"triggers": {"min_interval_days": 10, "max_interval_days": 5}}, "max_interval_days"),
        ({"gas_reserve": {"ethereum": "-1"}}, "gas_reserve.ethereum"),
    ],
)
def test_bad_strategy_is_refused(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError) as exc:
        StrategyConfig.model_validate(data)
    assert needle in str(exc.value)


def test_split_class_targets(registry: Registry) -> None:
    s = StrategyConfig.model_validate(
        {
            "targets": {
                "BTC": 40,
                "ETH": 30,
                "STABLES": 10,
                "ALTS": {"SOL": 10, "AVAX": 5, "LINK": 5},
            }
        }
    )
    t = resolve_targets(s, registry)
    by = {(r.kind, r.name): r for r in t.rows}
    assert by[("class", "ALTS")].target == 20 and not by[("class", "ALTS")].leaf
    assert by[("asset", "SOL")].target == 10 and by[("asset", "SOL")].leaf
    assert by[("asset", "UNI")].target == 0
    assert by[("asset", "USDC")].target is None
    assert by[("class", "STABLES")].leaf


def test_asset_named_alone_splits_its_class(registry: Registry) -> None:
    s = StrategyConfig.model_validate({"targets": {"BTC": 50, "ETH": 30, "SOL": 20}})
    by = {(r.kind, r.name): r for r in resolve_targets(s, registry).rows}
    assert by[("class", "ALTS")].target == 20
    assert by[("asset", "SOL")].target == 20
    assert by[("class", "STABLES")].target == 0


@pytest.mark.parametrize(
    ("targets", "needle"),
    [
        ({"BTC": 50, "DOGE": 50}, "strategy.targets.DOGE: unknown asset or class"),
        ({"BTC": 50, "ETH": 30, "STABLES": {"SOL": 20}}, "strategy.targets.STABLES.SOL"),
        ({"BTC": 50, "ALTS": 30, "SOL": 20}, "class ALTS has its own target"),
        ({"BTC": 50, "SOL": {"X": 50}}, "a split must be a class"),
    ],
)
def test_unknown_names_are_config_errors(
    registry: Registry, targets: dict[str, object], needle: str
) -> None:
    s = StrategyConfig.model_validate({"targets": targets})
    with pytest.raises(ConfigError) as exc:
        validate_all(s, registry)
    assert needle in str(exc.value)
    assert exc.value.exit_code == 2


def test_tradable_names_are_checked(registry: Registry) -> None:
    s = StrategyConfig.model_validate({"tradable": {"ethereum": ["WBTC", "NOPE"]}})
    needle = "strategy.tradable.ethereum: unknown token 'NOPE'"
    with pytest.raises(ConfigError, match=re.escape(needle)):
        validate_all(s, registry)
    s = StrategyConfig.model_validate({"costs": {"mars": {}}})
    with pytest.raises(ConfigError, match=re.escape("strategy.costs.mars: unknown chain")):
        validate_all(s, registry)


def test_relative_band_is_the_tighter_one() -> None:
    s = StrategyConfig(band_pp=Decimal(5), band_rel_pct=Decimal(25))
    assert s.band_for(Decimal(40)) == 5
    assert s.band_for(Decimal(10)) == Decimal("2.5")
    assert s.band_for(Decimal(1)) == Decimal("0.5")  # the floor
    assert s.band_for(Decimal(0)) == 5


def test_gas_reserve_in_base_units(registry: Registry) -> None:
    s = StrategyConfig.model_validate({"gas_reserve": {"ethereum": "0.02", "solana": 0.05}})
    assert reserve_raw(s, registry, "ethereum") == 2 * 10**16
    assert reserve_raw(s, registry, "solana") == 5 * 10**7
    assert reserve_raw(s, registry, "avalanche") == 5 * 10**17  # the default


def test_strategy_errors_through_load_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG_TOML + "\n[strategy]\nband_pp = -3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "strategy.band_pp" in str(exc.value) and "-3" in str(exc.value)
    path.write_text(CONFIG_TOML + "\n[strategy.targets]\nBTC = 60\nETH = 30\n")
    with pytest.raises(ConfigError, match=re.escape("targets sum to 90")):
        load_config(path)
