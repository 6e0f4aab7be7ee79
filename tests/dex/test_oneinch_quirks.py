"""1inch on mainnet USDT's rules (local Ethereum world): with an allowance left over, an
exact-amount approval alone reverts; the adapter puts ``approve(router, 0)`` before it, the
checks hold both to the request, and the three transactions land in order."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from eth_abi import encode

from rebalancer.core.errors import SuspiciousResponseError
from rebalancer.dex.base import SwapPolicy
from rebalancer.dex.oneinch import OneInch
from rebalancer.dex.oneinch_checks import check_oneinch_swap
from rebalancer.localnet.rpc import calldata
from tests.conftest import rpc_call
from tests.dex.test_oneinch import WALLET, holding, oneinch_url, request, sign_and_send

__all__ = ["oneinch_url"]

USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
ROUTER = "0x111111125421cA6dc452d289314280a0f8842A65"
DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def allowance(url: str, token: str = USDT) -> int:
    data = calldata("allowance(address,address)", WALLET, ROUTER)
    return int(rpc_call(url, "eth_call", {"to": token, "data": data}, "latest"), 16)


def send_as(url: str, sender: str, to: str, signature: str, *args: Any) -> str:
    rpc_call(url, "anvil_impersonateAccount", sender)
    tx = {"from": sender, "to": to, "data": calldata(signature, *args), "gas": hex(200_000)}
    status = rpc_call(url, "eth_getTransactionReceipt", rpc_call(url, "eth_sendTransaction", tx))
    rpc_call(url, "anvil_stopImpersonatingAccount", sender)
    return str(status["status"])


async def test_leftover_usdt_allowance_is_reset_first(
    evm_isolated: dict[str, Any], oneinch_url: str
) -> None:
    node = evm_isolated["ethereum"]["url"]
    assert send_as(node, DEPLOYER, USDT, "mint(address,uint256)", WALLET, 10_000 * 10**6) == "0x1"
    assert send_as(node, WALLET, USDT, "approve(address,uint256)", ROUTER, 10**6) == "0x1"
    req = request("ethereum", "USDT", "WETH", 2_000 * 10**6)
    async with httpx.AsyncClient() as client:
        api = OneInch(client, base_url=oneinch_url, api_key="local")
        built = await api.build(await api.quote(req))
    assert built.approval is not None and built.approval_reset is not None
    checked = check_oneinch_swap(built, SwapPolicy(max_slippage_bps=100))
    # Mainnet's rule, on the local world: the exact approval over the leftover reverts.
    call = {"from": WALLET, "to": USDT, "data": "0x" + built.approval.data.hex()}
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [call, "latest"]}
    assert "error" in httpx.post(node, json=body, timeout=10).json()
    before = holding(node, req.buy)
    assert sign_and_send(node, built.approval_reset)["status"] == "0x1"
    assert allowance(node) == 0
    assert sign_and_send(node, built.approval)["status"] == "0x1"
    assert allowance(node) == req.amount_in
    assert sign_and_send(node, built.tx)["status"] == "0x1"
    assert allowance(node) == 0
    assert holding(node, req.buy) - before >= checked.min_out > 0


async def test_no_reset_without_a_leftover_or_for_tokens_without_the_rule(
    evm_isolated: dict[str, Any], oneinch_url: str
) -> None:
    node = evm_isolated["ethereum"]["url"]
    usdc = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
    assert send_as(node, DEPLOYER, USDT, "mint(address,uint256)", WALLET, 10_000 * 10**6) == "0x1"
    assert send_as(node, WALLET, usdc, "approve(address,uint256)", ROUTER, 10**6) == "0x1"
    async with httpx.AsyncClient() as client:
        api = OneInch(client, base_url=oneinch_url, api_key="local")
        for sell in ("USDT", "USDC"):  # USDT: no leftover; USDC: leftover, but no rule
            built = await api.build(await api.quote(request("ethereum", sell, "WETH", 10**9)))
            assert built.approval is not None and built.approval_reset is None, sell


async def test_a_reset_that_is_not_approve_router_zero_is_refused(
    evm_isolated: dict[str, Any], oneinch_url: str
) -> None:
    node = evm_isolated["ethereum"]["url"]
    assert send_as(node, DEPLOYER, USDT, "mint(address,uint256)", WALLET, 10_000 * 10**6) == "0x1"
    assert send_as(node, WALLET, USDT, "approve(address,uint256)", ROUTER, 10**6) == "0x1"
    req = request("ethereum", "USDT", "WETH", 2_000 * 10**6)
    async with httpx.AsyncClient() as client:
        api = OneInch(client, base_url=oneinch_url, api_key="local")
        built = await api.build(await api.quote(req))
    reset = built.approval_reset
    assert reset is not None
    selector = reset.data[:4]
    attacker = "0x000000000000000000000000000000000000dEaD"
    hostile = {
        "not zero": selector + encode(["address", "uint256"], [ROUTER, 1]),
        "other spender": selector + encode(["address", "uint256"], [attacker, 0]),
        "not approve": b"\xa9\x05\x9c\xbb" + encode(["address", "uint256"], [ROUTER, 0]),
    }
    for what, data in hostile.items():
        bad = dataclasses.replace(built, approval_reset=dataclasses.replace(reset, data=data))
        with pytest.raises(SuspiciousResponseError, match="approval reset"):
            check_oneinch_swap(bad, SwapPolicy())
        assert what
    alone = dataclasses.replace(built, approval=None)
    with pytest.raises(SuspiciousResponseError, match="without the approval"):
        check_oneinch_swap(alone, SwapPolicy())
    elsewhere = dataclasses.replace(reset, to="0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48")
    with pytest.raises(SuspiciousResponseError, match="not the token"):
        check_oneinch_swap(dataclasses.replace(built, approval_reset=elsewhere), SwapPolicy())
