"""Move a local world's market on purpose: the faults a real market causes between a quote and
a send (someone trades first). Uses the world's deployer, which owns the local tokens."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from rebalancer.localnet.rpc import Rpc
from rebalancer.localnet.worlds import PRICES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "evm"


def pump(url: str, chain: str, buy_symbol: str, move_pct: Decimal) -> None:
    """Make ``buy_symbol`` dearer by about ``move_pct`` in every pool that holds it, by buying
    it with the pool's other token (a constant-product pool moves ~2x the share traded)."""
    world: dict[str, Any] = json.loads((FIXTURES / f"{chain}.world.json").read_text())
    me = world["deployer"]
    tokens = world["tokens"]
    c = world["contracts"]
    wrapped = "WETH" if chain == "ethereum" else "WAVAX"
    if buy_symbol in ("ETH", "AVAX"):
        buy_symbol = wrapped
    from rebalancer.chains.registry import Registry

    reg = Registry.load()
    rpc = Rpc(url)
    try:
        for pool in world["pools"]:
            if buy_symbol not in (pool["token0"], pool["token1"]):
                continue
            other = pool["token1"] if pool["token0"] == buy_symbol else pool["token0"]
            tok = reg.by_symbol(chain, other)
            assert tok is not None
            usd = Decimal(pool["usd_per_side"]) * move_pct / 200
            amount = int(usd / PRICES[tok.asset] * Decimal(10) ** tok.decimals)
            if other == wrapped:
                rpc.call("anvil_setBalance", me, hex(amount + 10**22))
                rpc.transact(me, tokens[other], "deposit()", value=amount)
            else:
                rpc.transact(me, tokens[other], "mint(address,uint256)", me, amount)
            if pool["kind"] == "v3":
                rpc.transact(me, tokens[other], "approve(address,uint256)", c["SwapRouter"], amount)
                rpc.transact(
                    me,
                    c["SwapRouter"],
                    "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,"
                    "uint160))",
                    (tokens[other], tokens[buy_symbol], pool["fee"], me, 2**40, amount, 0, 0),
                )
            else:
                router = c["UniswapV2Router02"]
                rpc.transact(me, tokens[other], "approve(address,uint256)", router, amount)
                rpc.transact(
                    me,
                    router,
                    "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
                    amount,
                    0,
                    [tokens[other], tokens[buy_symbol]],
                    me,
                    2**40,
                )
    finally:
        rpc.close()
