"""The check seam: each aggregator checks what it built with its own decoding on top of the
family checks and refuses the other family's transaction."""

from __future__ import annotations

import httpx
import pytest
from eth_abi import encode

from rebalancer.chains.registry import Registry
from rebalancer.core.errors import SuspiciousResponseError
from rebalancer.dex.base import BuiltSwap, EvmTx, Quote, SolanaTx, SwapPolicy, SwapRequest
from rebalancer.dex.jupiter import Jupiter
from rebalancer.dex.oneinch import OneInch
from rebalancer.dex.oneinch_checks import ONEINCH_V6, check_oneinch_swap

REG = Registry.load()
WALLET = "0x38933fB3600db971A459767D149B492e58e40b76"
OUT = 3 * 10**18


def unoswap() -> BuiltSwap:
    usdc, weth = REG.by_symbol("ethereum", "USDC"), REG.by_symbol("ethereum", "WETH")
    assert usdc is not None and weth is not None
    amount = 10_000 * 10**6
    words = [int(str(usdc.address), 16), amount, OUT * 995 // 1000, 1 << 253]
    data = bytes.fromhex("83800a8e") + encode(["uint256"] * 4, words)
    req = SwapRequest("ethereum", 1, WALLET, usdc, weth, amount, 100)
    return BuiltSwap(Quote(req, OUT), EvmTx(1, WALLET, ONEINCH_V6, data, 0, 200_000, 10**9), OUT)


async def test_each_aggregator_checks_its_own_family() -> None:
    built = unoswap()
    async with httpx.AsyncClient() as client:
        oneinch, jupiter = OneInch(client), Jupiter(client)
        policy = SwapPolicy()
        checked = oneinch.check(built, policy)
        assert checked == check_oneinch_swap(built, policy)
        assert checked.simulation_must_show == "that unoswap buys WETH"
        with pytest.raises(SuspiciousResponseError, match="expected a Solana transaction"):
            jupiter.check(built, SwapPolicy())
        solana = BuiltSwap(built.quote, SolanaTx(b""), OUT)
        with pytest.raises(SuspiciousResponseError, match="expected an EVM transaction"):
            oneinch.check(solana, SwapPolicy())
