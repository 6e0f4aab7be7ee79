"""Shared fixtures for the planner tests: the real registry, the example snapshot, a config."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from rebalancer.chains.registry import Registry
from rebalancer.core.types import Holding
from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.model import Portfolio, Targets, validate_all
from rebalancer.planner.snapshot import Snapshot, parse_snapshot

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "snapshot.json"

PRICES = {
    "BTC": Decimal(100000),
    "ETH": Decimal(3500),
    "SOL": Decimal(180),
    "AVAX": Decimal(35),
    "LINK": Decimal(20),
    "UNI": Decimal(10),
    "AAVE": Decimal(250),
    "JUP": Decimal("0.8"),
    "BONK": Decimal("0.00002"),
    "USDC": Decimal(1),
    "USDT": Decimal(1),
}

# The keys the plan and drift JSON promise to scripts (the CLI and ``planner.render`` alike).
PLAN_KEYS = {"created_at", "trades", "skipped", "after", "est_cost_usd"}
TRADE_KEYS = {
    "id",
    "chain",
    "wallet",
    "sell",
    "buy",
    "amount_in",
    "expected_out",
    "min_out",
    "value_usd",
    "est_cost_usd",
    "reason",
}
DRIFT_ROW_KEYS = {"name", "kind", "value_usd", "weight_pct", "target_pct", "drift_pp", "triggered"}

CONFIG_TOML = """
[chains.ethereum]
rpc = "http://127.0.0.1:9"

[chains.avalanche]
rpc = "http://127.0.0.1:9"

[chains.solana]
rpc = "http://127.0.0.1:9"

[[wallets]]
name = "demo"
address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
chains = ["ethereum", "avalanche"]

[[wallets]]
name = "demo-sol"
address = "So11111111111111111111111111111111111111112"
chains = ["solana"]
"""


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture(scope="session")
def snapshot(registry: Registry) -> Snapshot:
    return parse_snapshot(EXAMPLE.read_text(), registry)


@pytest.fixture()
def strategy() -> StrategyConfig:
    return StrategyConfig()


@pytest.fixture()
def targets(strategy: StrategyConfig, registry: Registry) -> Targets:
    return validate_all(strategy, registry)


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "rebalancer.toml"
    path.write_text(CONFIG_TOML)
    return path


def holdings(registry: Registry, rows: list[tuple[str, str, str, str]]) -> list[Holding]:
    """(chain, wallet, symbol, amount in units) -> Holdings."""
    out = []
    for chain, wallet, symbol, amount in rows:
        token = registry.by_symbol(chain, symbol)
        assert token is not None, symbol
        raw = int(Decimal(amount).scaleb(token.decimals))
        out.append(Holding(chain, wallet, token, raw))
    return out


def portfolio(registry: Registry, rows: list[tuple[str, str, str, str]]) -> Portfolio:
    return Portfolio.build(holdings(registry, rows), PRICES)
