"""1inch ``unoswap`` routes: the calldata's sold token, amount, receiver and minReturn are held
to the request; the token bought can only be shown by a simulation, so the check says so."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode

from rebalancer.chains.registry import Registry
from rebalancer.core.errors import SuspiciousResponseError
from rebalancer.dex.base import BuiltSwap, EvmTx, Quote, SwapPolicy, SwapRequest
from rebalancer.dex.oneinch_checks import ONEINCH_V6, check_oneinch_swap

REG = Registry.load()
WALLET = "0x38933fB3600db971A459767D149B492e58e40b76"
USDC = REG.by_symbol("ethereum", "USDC")
WETH = REG.by_symbol("ethereum", "WETH")
ETH = REG.native("ethereum")
POOL = 0x88E6A0C2DDD26FEEB64F039A2C41296FCB3F5640 | (1 << 253)  # a pool word with flag bits
OUT = 3_000_000_000_000_000_000


def built(sell: Any, selector: str, words: list[int], value: int = 0) -> BuiltSwap:
    assert sell is not None and WETH is not None
    req = SwapRequest(
        "ethereum", 1, WALLET, sell, WETH, 10_000 * 10**6 if value == 0 else value, 100
    )
    data = bytes.fromhex(selector) + encode(["uint256"] * len(words), words)
    tx = EvmTx(1, WALLET, ONEINCH_V6, data, value, 200_000, 10**9)
    return BuiltSwap(Quote(req, OUT), tx, OUT)


def addr(a: str) -> int:
    return int(a, 16)


def test_unoswap_and_eth_unoswap_to_pass_with_a_simulation_duty() -> None:
    assert USDC is not None
    ok = built(USDC, "83800a8e", [addr(str(USDC.address)), 10_000 * 10**6, OUT * 995 // 1000, POOL])
    checked = check_oneinch_swap(ok, SwapPolicy())
    assert checked.min_out == OUT * 995 // 1000
    assert checked.simulation_must_show == "that unoswap buys WETH"
    eth = built(ETH, "175accdc", [addr(WALLET), OUT * 99 // 100, POOL], value=10**18)
    assert check_oneinch_swap(eth, SwapPolicy()).simulation_must_show


@pytest.mark.parametrize(
    ("selector", "words", "value", "why"),
    [
        (
            "83800a8e",
            [addr("0xdAC17F958D2ee523a2206206994597C13D831ec7"), 10_000 * 10**6, OUT, POOL],
            0,
            "sells",
        ),
        ("83800a8e", ["usdc", 10**6, OUT, POOL], 0, "amount"),
        ("83800a8e", ["usdc", 10_000 * 10**6, 0, POOL], 0, "minReturn is 0"),
        ("83800a8e", ["usdc", 10_000 * 10**6, OUT // 2, POOL], 0, "below the quote"),
        ("83800a8e", ["usdc", 10_000 * 10**6, OUT, POOL, POOL], 0, "calldata has"),
        (
            "e2c95c82",
            [addr("0x000000000000000000000000000000000000dEaD"), "usdc", 10_000 * 10**6, OUT, POOL],
            0,
            "pays",
        ),
        (
            "e2c95c82",
            [addr(WALLET) | (1 << 200), "usdc", 10_000 * 10**6, OUT, POOL],
            0,
            "flag bits",
        ),
        ("a76dfc3b", [OUT, POOL], 0, "sells the native coin"),
    ],
)
def test_hostile_unoswaps_are_refused(
    selector: str, words: list[Any], value: int, why: str
) -> None:
    assert USDC is not None
    ints = [addr(str(USDC.address)) if w == "usdc" else w for w in words]
    with pytest.raises(SuspiciousResponseError, match=why):
        check_oneinch_swap(built(USDC, selector, ints, value), SwapPolicy())
