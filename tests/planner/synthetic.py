"""Generated universes and portfolios for the benchmark and the property tests.

Deterministic for a seed (``random.Random``), and built only from planner and core types, so
the benchmark needs no registry file and no chain. Test-only, so it lives with the tests;
bench/ imports it from here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

from rebalancer.core.types import ChainInfo, Holding, Token
from rebalancer.planner.config import CostModel, StrategyConfig
from rebalancer.planner.model import to_base_units


@dataclass
class SyntheticUniverse:
    """A registry look-alike: ``n_chains`` chains, ``n_assets`` assets in 5 classes, every asset
    with one token on every chain (the chain's own asset is its native coin)."""

    chains: dict[str, ChainInfo]
    classes: dict[str, list[str]]
    tokens: dict[str, list[Token]] = field(default_factory=dict)

    def native(self, chain: str) -> Token:
        return self.tokens[chain][0]

    def tokens_on(self, chain: str) -> list[Token]:
        return list(self.tokens[chain])

    def by_symbol(self, chain: str, symbol: str) -> Token | None:
        return next((t for t in self.tokens[chain] if t.symbol.lower() == symbol.lower()), None)

    def class_of(self, asset: str) -> str | None:
        return next((k for k, v in self.classes.items() if asset in v), None)


CLASS_NAMES = ("K0", "K1", "K2", "K3", "K4")


def make_universe(n_chains: int, n_assets: int, seed: int = 0) -> SyntheticUniverse:
    rng = random.Random(seed)
    assets = [f"A{i:03d}" for i in range(n_assets)]
    classes = {
        k: [a for i, a in enumerate(assets) if i % len(CLASS_NAMES) == n]
        for n, k in enumerate(CLASS_NAMES)
    }
    decimals = {a: rng.choice((6, 8, 9, 18)) for a in assets}
    chains: dict[str, ChainInfo] = {}
    tokens: dict[str, list[Token]] = {}
    for c in range(n_chains):
        name = f"chain{c}"
        native_asset = assets[c]
        info = ChainInfo(
            name,
            "evm",
            f"eip155:{900 + c}",
            900 + c,
            native_asset,
            native_asset,
            decimals[native_asset],
            60 + c,
        )
        chains[name] = info
        native = Token(
            name, info.caip2, native_asset, native_asset, None, decimals[native_asset], 60 + c
        )
        others = [
            Token(name, info.caip2, f"{a}x{c}", a, f"0x{c:02x}{i:038x}", decimals[a])
            for i, a in enumerate(assets)
            if a != native_asset
        ]
        tokens[name] = [native, *others]
    return SyntheticUniverse(chains, classes, tokens)


def make_strategy(universe: SyntheticUniverse, **overrides: object) -> StrategyConfig:
    """Class targets 30/25/20/15/10 with K2 split over its first three assets."""
    k2 = universe.classes["K2"][:3]
    split = dict(zip(k2, (Decimal(10), Decimal(6), Decimal(4)), strict=False))
    targets: dict[str, object] = {"K0": 30, "K1": 25, "K3": 15, "K4": 10}
    if len(split) == 3:
        targets["K2"] = split
    else:
        targets["K2"] = 20
    gas = (Decimal(5), Decimal("0.1"), Decimal("0.02"))
    costs = {
        name: CostModel(
            gas_per_swap_usd=gas[i % 3],
            fee_bps=Decimal(10 + 5 * (i % 3)),
            depth_usd=Decimal(5_000_000),
        )
        for i, name in enumerate(universe.chains)
    }
    reserve = {name: Decimal("0.01") for name in universe.chains}
    data: dict[str, object] = {
        "targets": targets,
        "costs": costs,
        "gas_reserve": reserve,
        "min_trade_usd": 25,
    }
    data.update(overrides)
    return StrategyConfig.model_validate(data)


def make_portfolio(
    universe: SyntheticUniverse,
    n_wallets: int,
    seed: int = 0,
    density: float = 0.3,
    skew: float = 3.0,
) -> tuple[list[Holding], dict[str, Decimal]]:
    """Random holdings (about ``density`` of the tokens per wallet) worth 100 to 100k USD
    each, class K0 inflated by ``skew`` so the portfolio is out of band, and prices."""
    rng = random.Random(seed)
    assets = [a for v in universe.classes.values() for a in v]
    prices = {a: Decimal(str(round(10 ** rng.uniform(-2, 4.7), 6))) for a in sorted(assets)}
    k0 = set(universe.classes["K0"])
    holdings = []
    for chain in universe.chains:
        for w in range(n_wallets):
            wallet = f"w{w}"
            for token in universe.tokens_on(chain):
                if not token.is_native and rng.random() > density:
                    continue
                usd = 10 ** rng.uniform(2, 5) * (skew if token.asset in k0 else 1.0)
                if token.is_native:
                    usd = max(usd, 500.0)
                amount = Decimal(str(round(usd, 2))) / prices[token.asset]
                raw = to_base_units(amount, token.decimals)
                if raw > 0:
                    holdings.append(Holding(chain, wallet, token, raw))
    return holdings, prices
