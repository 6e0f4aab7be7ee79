"""Aggregators: milliseconds per quote and per build on the local stand-ins, per chain.

Ethereum and Avalanche go through the 1inch stand-in with ``dex.oneinch.OneInch`` (build
includes the allowance look-up and the approval it needs); Solana goes through the Jupiter
stand-in with ``dex.jupiter.Jupiter`` (build includes the stand-in's simulation for the
dynamic compute-unit limit). Nothing is signed or sent. Starts the local worlds in a temporary
directory with ``localnet.manager.up`` and stops them in ``finally``. Prints figures for a
person, and as its last line one JSON object of them. Run with
`.venv/bin/python bench/aggregators.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rebalancer.chains.registry import Registry
from rebalancer.dex.base import SwapAggregator, SwapRequest
from rebalancer.dex.jupiter import Jupiter
from rebalancer.dex.oneinch import OneInch
from rebalancer.localnet import manager
from rebalancer.localnet.solana_fixtures import demo_keypair
from rebalancer.localnet.worlds import demo_evm_address

# (chain, sell, buy, amount in base units)
CASES = [
    ("ethereum", "USDC", "WETH", 2_000 * 10**6),
    ("avalanche", "USDC", "AVAX", 500 * 10**6),
    ("solana", "SOL", "USDC", 2 * 10**9),
]


def _request(registry: Registry, chain: str, sell: str, buy: str, amount: int) -> SwapRequest:
    def tok(symbol: str) -> Any:
        native = registry.native(chain)
        return native if symbol == native.symbol else registry.by_symbol(chain, symbol)

    wallet = str(demo_keypair().pubkey()) if chain == "solana" else demo_evm_address()
    info = registry.chains[chain]
    return SwapRequest(chain, info.chain_id, wallet, tok(sell), tok(buy), amount, 50)


async def _time(api: SwapAggregator, req: SwapRequest, runs: int) -> dict[str, float]:
    """Median milliseconds of quote, build and the two together (after one warm-up)."""
    quotes, builds = [], []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        q = await api.quote(req)
        t1 = time.perf_counter()
        await api.build(q)
        t2 = time.perf_counter()
        if i:
            quotes.append((t1 - t0) * 1000)
            builds.append((t2 - t1) * 1000)
    totals = [a + b for a, b in zip(quotes, builds, strict=True)]
    return {
        "quote_ms": round(statistics.median(quotes), 2),
        "build_ms": round(statistics.median(builds), 2),
        "quote_build_ms": round(statistics.median(totals), 2),
    }


async def measure(worlds: dict[str, Any], runs: int) -> dict[str, Any]:
    registry = Registry.load()
    figures: dict[str, Any] = {"runs": runs}
    async with httpx.AsyncClient(timeout=30) as client:
        oneinch = OneInch(client, base_url=worlds["1inch"]["url"], api_key="local")
        v1 = str(worlds["jupiter"]["url"]).removesuffix("/swap/v2") + "/swap/v1"
        jupiter = Jupiter(client, base_url=v1, api_key="local")
        for chain, sell, buy, amount in CASES:
            api: SwapAggregator = jupiter if chain == "solana" else oneinch
            timed = await _time(api, _request(registry, chain, sell, buy, amount), runs)
            figures |= {f"{chain}_{k}": v for k, v in timed.items()}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/aggregators.py")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-aggregators-") as tmp:
        state = Path(tmp)
        try:
            t0 = time.perf_counter()
            manifest = manager.up(state)
            up_ms = (time.perf_counter() - t0) * 1000
            worlds = {w["name"]: w for w in manifest["worlds"]}
            figures = asyncio.run(measure(worlds, args.runs))
        finally:
            manager.down(state)
    figures["localnet_up_ms"] = round(up_ms, 1)

    print(f"Quote + build on the local stand-ins (median of {args.runs}, after one warm-up)")
    for chain, sell, buy, _amount in CASES:
        via = "Jupiter" if chain == "solana" else "1inch"
        print(
            f"  {chain:<10} {sell}->{buy:<5} via {via:<8}"
            f" quote {figures[f'{chain}_quote_ms']:>7} ms"
            f"   build {figures[f'{chain}_build_ms']:>7} ms"
            f"   together {figures[f'{chain}_quote_build_ms']:>7} ms"
        )
    print(f"(starting the local worlds took {figures['localnet_up_ms']} ms)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
