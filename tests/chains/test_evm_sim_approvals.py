"""EVM simulation of the approvals before a swap: the reset of a leftover allowance runs
first on both paths (anvil fork and ``eth_simulateV1``), and an approve must return true, or
nothing where the token is known to return nothing (mainnet USDT)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest

from rebalancer.chains.base import SwapLegs
from rebalancer.chains.evm import EvmChain
from rebalancer.chains.evm_sim import _approve_returned, simulate_fork, simulate_rpc
from rebalancer.chains.registry import Registry
from rebalancer.core.errors import SimulationError
from rebalancer.dex.oneinch import OneInch
from tests.dex.test_oneinch import oneinch_url, request
from tests.dex.test_oneinch_quirks import DEPLOYER, ROUTER, USDT, WALLET, send_as

__all__ = ["oneinch_url"]

REG = Registry.load()
TRUE = "0x" + "00" * 31 + "01"


def test_an_approve_must_return_true_or_nothing_where_the_token_says_so() -> None:
    usdt, usdc = REG.by_symbol("ethereum", "USDT"), REG.by_symbol("ethereum", "USDC")
    assert usdt is not None and usdc is not None
    _approve_returned("ethereum", "approval", usdc, TRUE)
    _approve_returned("ethereum", "approval", usdt, "0x")
    _approve_returned("ethereum", "approval", usdt, TRUE)
    with pytest.raises(SimulationError, match="returned no data"):
        _approve_returned("ethereum", "approval", usdc, "0x")
    with pytest.raises(SimulationError, match="not true"):
        _approve_returned("ethereum", "approval reset", usdc, "0x" + "00" * 32)
    with pytest.raises(SimulationError, match="not true"):
        _approve_returned("ethereum", "approval", usdt, "0x" + "00" * 32)


async def _legs(oneinch_url: str) -> SwapLegs:
    req = request("ethereum", "USDT", "WETH", 2_000 * 10**6)
    async with httpx.AsyncClient() as client:
        api = OneInch(client, base_url=oneinch_url, api_key="local")
        built = await api.build(await api.quote(req))
    assert built.approval is not None and built.approval_reset is not None
    return SwapLegs(WALLET, req.sell, req.buy, built.tx, built.approval, built.approval_reset)


async def test_both_paths_run_the_reset_first(
    evm_isolated: dict[str, Any], oneinch_url: str, tmp_path: Path
) -> None:
    node = evm_isolated["ethereum"]["url"]
    assert send_as(node, DEPLOYER, USDT, "mint(address,uint256)", WALLET, 10_000 * 10**6) == "0x1"
    assert send_as(node, WALLET, USDT, "approve(address,uint256)", ROUTER, 10**6) == "0x1"
    legs = await _legs(oneinch_url)
    assert legs.proposals == (legs.approval_reset, legs.approval, legs.swap)
    async with httpx.AsyncClient() as client:
        adapter = EvmChain(REG.chains["ethereum"], node, client, work_dir=tmp_path)
        for simulate in (simulate_fork, simulate_rpc):
            sim = await simulate(adapter, legs)
            assert sim.out > 0 and sim.gas_used > 0, simulate.__name__
            assert sim.reset_gas_used > 0 and sim.approval_gas_used > 0, simulate.__name__
            assert sim.gas_per_proposal(legs) == [
                sim.reset_gas_used,
                sim.approval_gas_used,
                sim.gas_used,
            ]
            without = dataclasses.replace(legs, approval_reset=None)
            with pytest.raises(SimulationError, match="reverts"):
                await simulate(adapter, without)
