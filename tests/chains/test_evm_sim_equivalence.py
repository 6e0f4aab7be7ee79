"""The three EVM simulations agree: ``eth_simulateV1``, the warm local copy and the anvil fork
give the same output and gas for the same trades on the local worlds, each behind a proxy
that counts the requests reaching the node; the warm copy makes at most a handful, and when a
trade reads state outside what it fetched (its budget spent) the fork's result is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from rebalancer.chains import evm_sim
from rebalancer.chains.base import SimResult, SwapLegs
from rebalancer.chains.evm import EvmChain
from rebalancer.chains.registry import Registry
from rebalancer.dex.oneinch import OneInch
from rebalancer.localnet.latency_proxy import LatencyProxy
from tests.dex.test_oneinch import WALLET, oneinch_url, request

__all__ = ["oneinch_url"]

REG = Registry.load()

TRADES = [
    ("ethereum", "ETH", "WBTC", 10**18),  # no approval
    ("ethereum", "USDC", "WETH", 2_000 * 10**6),  # approval, then the swap
    ("ethereum", "LINK", "WBTC", 100 * 10**18),
    ("avalanche", "USDC", "AVAX", 500 * 10**6),  # buys the native coin
]


async def _legs(oneinch_url: str, chain: str, sell: str, buy: str, amount: int) -> SwapLegs:
    req = request(chain, sell, buy, amount)
    async with httpx.AsyncClient() as client:
        api = OneInch(client, base_url=oneinch_url, api_key="local")
        built = await api.build(await api.quote(req))
    return SwapLegs(WALLET, req.sell, req.buy, built.tx, built.approval, built.approval_reset)


def _close(a: int, b: int, tolerance: float) -> bool:
    return abs(a - b) <= tolerance * max(a, b)


@pytest.mark.parametrize(("chain", "sell", "buy", "amount"), TRADES)
async def test_every_way_gives_the_same_output_and_gas(
    evm_isolated: dict[str, Any],
    oneinch_url: str,
    tmp_path: Path,
    chain: str,
    sell: str,
    buy: str,
    amount: int,
) -> None:
    legs = await _legs(oneinch_url, chain, sell, buy, amount)
    results: dict[str, tuple[SimResult, int]] = {}
    async with httpx.AsyncClient() as client:
        for how, simulate in (
            ("eth_simulateV1", evm_sim.simulate_rpc),
            ("warm", evm_sim.simulate_warm),
            ("fork", evm_sim.simulate_fork),
        ):
            with LatencyProxy(evm_isolated[chain]["url"]) as proxy:
                adapter = EvmChain(REG.chains[chain], proxy.url, client, work_dir=tmp_path)
                try:
                    results[how] = (await simulate(adapter, legs), proxy.requests)
                finally:
                    await adapter.aclose()
    fork, _ = results["fork"]
    assert fork.method == "anvil fork" and fork.out > 0
    for how, (sim, _) in results.items():
        assert _close(sim.out, fork.out, 1e-6), (how, sim, fork)
        assert _close(sim.gas_used, fork.gas_used, 0.02), (how, sim, fork)
        assert _close(sim.approval_gas_used, fork.approval_gas_used, 0.02), (how, sim, fork)
    assert results["warm"][0].method == "warm local copy"
    assert results["eth_simulateV1"][1] == 1
    assert results["warm"][1] <= evm_sim.WARM_MAX_REQUESTS, results
    assert results["fork"][1] > results["warm"][1], results


async def test_state_read_outside_the_access_lists_is_found_and_the_fork_used(
    evm_isolated: dict[str, Any], oneinch_url: str, tmp_path: Path
) -> None:
    """Without prestate traces the swap's access list, taken before its approval, stops at
    ``transferFrom``: the local run reads pools nobody fetched, which its trace shows; past
    the request budget the fork's result is what is returned."""
    legs = await _legs(oneinch_url, "ethereum", "USDC", "WETH", 2_000 * 10**6)
    async with httpx.AsyncClient() as client:
        with LatencyProxy(evm_isolated["ethereum"]["url"]) as proxy:
            adapter = EvmChain(REG.chains["ethereum"], proxy.url, client, work_dir=tmp_path)
            adapter.has_trace_call = False  # an RPC without debug_traceCall
            try:
                sim = await evm_sim.simulate_warm(adapter, legs)
                fork = await evm_sim.simulate_fork(adapter, legs)
            finally:
                await adapter.aclose()
    assert sim.method == evm_sim.OUTSIDE
    assert sim.out == fork.out and sim.gas_used == fork.gas_used


async def test_one_warm_node_per_command_reverted_between_trades(
    evm_isolated: dict[str, Any], oneinch_url: str, tmp_path: Path
) -> None:
    from rebalancer.chains.anvil import pid_alive

    trades = [t for t in TRADES if t[0] == "ethereum"]
    legs = [await _legs(oneinch_url, *t) for t in trades]
    async with httpx.AsyncClient() as client:
        adapter = EvmChain(REG.chains["ethereum"], evm_isolated["ethereum"]["url"], client)
        adapter.work_dir = tmp_path
        pids = set()
        for leg in [*legs, *legs]:  # twice: nothing of one trade stays for the next
            warm = await evm_sim.simulate_warm(adapter, leg)
            rpc = await evm_sim.simulate_rpc(adapter, leg)
            assert warm.method == "warm local copy" and _close(warm.out, rpc.out, 1e-6)
            assert _close(warm.gas_used, rpc.gas_used, 0.02)
            pids.add(adapter.warm_node.node.pid)
        assert len(pids) == 1
        await adapter.aclose()
    assert not pid_alive(pids.pop())
