"""A keyed RPC URL never reaches a child's command line: during a fork simulation every
process's ``/proc/*/cmdline`` is read again and again, and no part of the key shows."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

import httpx

from rebalancer.chains import evm_sim
from rebalancer.chains.evm import EvmChain
from rebalancer.localnet.latency_proxy import LatencyProxy
from tests.chains.test_evm_sim_equivalence import REG, _legs
from tests.dex.test_oneinch import oneinch_url

__all__ = ["oneinch_url"]

SECRET = "s3cr3t-api-key-7731"


def _cmdlines() -> list[bytes]:
    out = []
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            out.append(p.read_bytes())
    return out


async def test_a_fork_of_a_keyed_url_shows_no_key(
    evm_isolated: dict[str, Any], oneinch_url: str, tmp_path: Path
) -> None:
    legs = await _legs(oneinch_url, "ethereum", "USDC", "WETH", 2_000 * 10**6)
    seen: list[bytes] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            seen.extend(c for c in _cmdlines() if b"anvil" in c)
            done.wait(0.005)

    with LatencyProxy(evm_isolated["ethereum"]["url"]) as world:
        port = world.url.rsplit(":", 1)[1]
        keyed = f"http://user:{SECRET}@127.0.0.1:{port}/v2/{SECRET}?apikey={SECRET}"
        watcher = threading.Thread(target=poll)
        watcher.start()
        try:
            async with httpx.AsyncClient() as client:
                adapter = EvmChain(REG.chains["ethereum"], keyed, client, work_dir=tmp_path)
                try:
                    for simulate in (evm_sim.simulate_fork, evm_sim.simulate_warm):
                        sim = await simulate(adapter, legs)
                        assert sim.out > 0
                        await asyncio.sleep(0)
                finally:
                    await adapter.aclose()
        finally:
            done.set()
            watcher.join()
    assert any(b"--fork-url" in c for c in seen), "the poll never saw the fork running"
    assert not [c for c in seen if SECRET.encode() in c or b"user:" in c]
    logs = b"".join(p.read_bytes() for p in tmp_path.glob("*.log"))
    assert SECRET.encode() not in logs
