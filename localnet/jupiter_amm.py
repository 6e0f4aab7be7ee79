"""The local market maker's price book: constant-product pools kept in a fixture.

The Jupiter stand-in fills every swap as an RFQ trade with one maker; the maker prices from
``x * y = k`` pools (``fixtures/solana/amm.json``) whose reserves sit at the snapshot's prices
(SOL 180, BTC 95000, ETH 3200, JUP 0.8, BONK 0.00002, stables 1). Routes are the best of the
direct pool and two hops through a hub token (USDC, USDT). All arithmetic is on integers in
base units, with the pool fee taken from the input like Uniswap V2. Reserves stay as the
fixture says (the book does not move with fills): quotes are reproducible run to run, until a
simulated market (``localnet.market``) moves the book to its prices (``Book.repriced``).

    python -m rebalancer.localnet.jupiter_amm            # rewrite fixtures/solana/amm.json
    python -m rebalancer.localnet.jupiter_amm --check    # fail if it is out of date
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from rebalancer.core.resources import fixture_path

AMM_PATH = fixture_path("solana", "amm.json")
HUBS = ("USDC", "USDT")

# Prices of the demo snapshot (USD per whole token) and each pool's depth per side (USD).
_PRICES = {
    "wSOL": Decimal(180),
    "USDC": Decimal(1),
    "USDT": Decimal(1),
    "cbBTC": Decimal(95_000),
    "WBTC": Decimal(95_000),
    "WETH": Decimal(3_200),
    "JUP": Decimal("0.8"),
    "BONK": Decimal("0.00002"),
}
_POOLS: list[tuple[str, str, int, int]] = [  # (a, b, depth USD per side, fee bps)
    ("wSOL", "USDC", 40_000_000, 4),
    ("wSOL", "USDT", 10_000_000, 5),
    ("USDT", "USDC", 50_000_000, 1),
    ("cbBTC", "USDC", 20_000_000, 5),
    ("WBTC", "USDC", 5_000_000, 10),
    ("WETH", "USDC", 8_000_000, 10),
    ("JUP", "USDC", 6_000_000, 25),
    ("BONK", "wSOL", 3_000_000, 25),
    ("BONK", "USDC", 2_000_000, 30),
]


@dataclass(frozen=True, slots=True)
class Pool:
    """One constant-product pool between two mints; reserves in base units."""

    key: str
    mint_a: str
    mint_b: str
    reserve_a: int
    reserve_b: int
    fee_bps: int
    label: str

    def out(self, mint_in: str, amount_in: int) -> tuple[int, int]:
        """(amount out, fee taken from the input) for ``amount_in`` of ``mint_in``."""
        if mint_in == self.mint_a:
            r_in, r_out = self.reserve_a, self.reserve_b
        elif mint_in == self.mint_b:
            r_in, r_out = self.reserve_b, self.reserve_a
        else:
            raise ValueError(f"{mint_in} is not in pool {self.key}")
        fee = amount_in * self.fee_bps // 10_000
        net = amount_in - fee
        return net * r_out // (r_in + net), fee

    def other(self, mint: str) -> str:
        return self.mint_b if mint == self.mint_a else self.mint_a


@dataclass(frozen=True, slots=True)
class Hop:
    """One leg of a route: ``amount_in`` of ``mint_in`` through ``pool``."""

    pool: Pool
    mint_in: str
    mint_out: str
    amount_in: int
    amount_out: int
    fee: int


class Book:
    """The pools of the fixture and the best route through them."""

    def __init__(self, pools: list[Pool], hubs: list[str]) -> None:
        self.pools = pools
        self.hubs = hubs
        self.mints = {m for p in pools for m in (p.mint_a, p.mint_b)}

    @classmethod
    def load(cls, path: Path = AMM_PATH) -> Book:
        data = json.loads(path.read_text())
        mints: dict[str, str] = data["mints"]
        pools = [
            Pool(
                key=p["key"],
                mint_a=mints[p["a"]],
                mint_b=mints[p["b"]],
                reserve_a=int(p["reserve_a"]),
                reserve_b=int(p["reserve_b"]),
                fee_bps=int(p["fee_bps"]),
                label=p.get("label", "JupiterZ"),
            )
            for p in data["pools"]
        ]
        return cls(pools, [mints[h] for h in data["hubs"]])

    def repriced(self, usd: Mapping[str, Decimal], decimals: Mapping[str, int]) -> Book:
        """The same pools moved to new USD prices by mint (a simulated market's step): each
        keeps its ``k = reserve_a * reserve_b`` (its depth) and takes the reserves at which its
        marginal price is the ratio of the two prices. Mints without a price keep theirs."""
        pools = []
        for p in self.pools:
            if p.mint_a not in usd or p.mint_b not in usd:
                pools.append(p)
                continue
            # raw units of b per raw unit of a
            ratio = (
                usd[p.mint_a]
                / usd[p.mint_b]
                * Decimal(10) ** (decimals[p.mint_b] - decimals[p.mint_a])
            )
            k = Decimal(p.reserve_a) * Decimal(p.reserve_b)
            reserve_a = int((k / ratio).sqrt())
            reserve_b = int((k * ratio).sqrt())
            pools.append(replace(p, reserve_a=reserve_a, reserve_b=reserve_b))
        return Book(pools, self.hubs)

    def _between(self, a: str, b: str) -> list[Pool]:
        return [p for p in self.pools if {p.mint_a, p.mint_b} == {a, b}]

    def _walk(self, mints: list[str], pools: list[Pool], amount: int) -> list[Hop]:
        hops: list[Hop] = []
        for mint_in, pool in zip(mints, pools, strict=False):
            out, fee = pool.out(mint_in, amount)
            hops.append(Hop(pool, mint_in, pool.other(mint_in), amount, out, fee))
            amount = out
        return hops

    def best(self, mint_in: str, mint_out: str, amount: int) -> list[Hop] | None:
        """The route giving the most ``mint_out``; None when no pool path exists."""
        candidates: list[list[Hop]] = [
            self._walk([mint_in], [p], amount) for p in self._between(mint_in, mint_out)
        ]
        for hub in self.hubs:
            if hub in (mint_in, mint_out):
                continue
            for p1 in self._between(mint_in, hub):
                for p2 in self._between(hub, mint_out):
                    candidates.append(self._walk([mint_in, hub], [p1, p2], amount))
        candidates = [c for c in candidates if c[-1].amount_out > 0]
        if not candidates:
            return None
        return max(candidates, key=lambda hops: hops[-1].amount_out)

    def mid_out(self, hops: list[Hop]) -> Decimal:
        """What the route would pay at the pools' marginal prices, without fees or impact
        (for ``priceImpactPct``; display only)."""
        amount = Decimal(hops[0].amount_in)
        for h in hops:
            p = h.pool
            r_in, r_out = (
                (p.reserve_a, p.reserve_b) if h.mint_in == p.mint_a else (p.reserve_b, p.reserve_a)
            )
            amount = amount * r_out / r_in
        return amount


def build_fixture() -> dict[str, Any]:
    """The fixture as a JSON-ready dict (deterministic: reserves from prices and depth)."""
    from rebalancer.chains.registry import Registry

    registry = Registry.load()
    tokens = {t.symbol: t for t in registry.tokens_on("solana") if t.address is not None}
    pools = []
    for a, b, depth, fee in _POOLS:
        ta, tb = tokens[a], tokens[b]
        reserve_a = int(Decimal(depth) / _PRICES[a] * Decimal(10) ** ta.decimals)
        reserve_b = int(Decimal(depth) / _PRICES[b] * Decimal(10) ** tb.decimals)
        pools.append(
            {
                "key": f"{a}-{b}",
                "a": a,
                "b": b,
                "reserve_a": str(reserve_a),
                "reserve_b": str(reserve_b),
                "fee_bps": fee,
                "label": "JupiterZ",
            }
        )
    return {
        "source": "generated by python -m localnet.jupiter_amm: constant-product reserves at the "
        "demo snapshot's prices, depth per side in USD as listed; the local RFQ maker prices "
        "from them",
        "prices_usd": {k: str(v) for k, v in _PRICES.items()},
        "mints": {s: tokens[s].address for s in _PRICES},
        "hubs": list(HUBS),
        "pools": pools,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rebalancer.localnet.jupiter_amm")
    parser.add_argument("--out", type=Path, default=AMM_PATH)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = json.dumps(build_fixture(), indent=1) + "\n"
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        print(f"{args.out} is {'up to date' if current == text else 'out of date'}")
        return 0 if current == text else 1
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
