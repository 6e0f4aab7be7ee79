"""Balance refresh on a local anvil: HTTP requests per refresh (with and without the Chainlink
feeds riding in the same batch), and time against the naive way.

Prints figures for a person, and as its last line one JSON object of them. Run with
`.venv/bin/python bench/balances.py` (starts and stops its own anvil).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from eth_account import Account
from eth_utils import to_checksum_address

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rebalancer.chains.anvil import start_anvil, stop_pid
from rebalancer.chains.evm import EvmChain
from rebalancer.chains.oracles import OracleFeed, feeds_on
from rebalancer.chains.registry import Registry
from rebalancer.core.types import Token
from rebalancer.localnet.manager import unpack_state
from rebalancer.localnet.rpc import Rpc

ERC20_ABI = [
    {
        "name": "balanceOf",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "a", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    }
]


def make_tokens(rpc: Rpc, template: str, n: int) -> list[Token]:
    """``n`` ERC-20 contracts (copies of a real token's code) at fresh addresses."""
    code = rpc.call("eth_getCode", template, "latest")
    tokens = []
    for i in range(n):
        address = to_checksum_address("0x" + f"{0xB000000 + i:040x}")
        rpc.call("anvil_setCode", address, code)
        tokens.append(Token("ethereum", "eip155:1", f"T{i}", "X", address, 18))
    return tokens


async def count_requests(
    url: str, wallets: list[str], tokens: list[Token], feeds: Sequence[OracleFeed] = ()
) -> int:
    seen: list[httpx.Request] = []

    async def hook(req: httpx.Request) -> None:
        seen.append(req)

    reg = Registry.load()
    async with httpx.AsyncClient(event_hooks={"request": [hook]}) as client:
        got = await EvmChain(reg.chains["ethereum"], url, client).balances(wallets, tokens, feeds)
    assert all(r.usd is not None for r in got.oracles) and len(got.oracles) == len(feeds)
    return len(seen)


async def time_ours(
    url: str, wallet: str, tokens: list[Token], runs: int, feeds: Sequence[OracleFeed] = ()
) -> float:
    reg = Registry.load()
    async with httpx.AsyncClient() as client:
        adapter = EvmChain(reg.chains["ethereum"], url, client)
        await adapter.balances([wallet], tokens, feeds)  # warm-up and the one chain-id check
        samples = []
        for _ in range(runs):
            t = time.perf_counter()
            await adapter.balances([wallet], tokens, feeds)
            samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


async def time_cold(url: str, wallet: str, tokens: list[Token], runs: int) -> float:
    """A first refresh by a new adapter: builds its calldata and checks the chain id."""
    reg = Registry.load()
    samples = []
    async with httpx.AsyncClient() as client:
        await client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
        for _ in range(runs):
            t = time.perf_counter()
            await EvmChain(reg.chains["ethereum"], url, client).balances([wallet], tokens)
            samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def time_naive(url: str, wallet: str, tokens: list[Token], runs: int) -> float:
    """One balanceOf call per token through web3.py's contract API."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url))
    contracts = [w3.eth.contract(address=str(t.address), abi=ERC20_ABI) for t in tokens]
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        for c in contracts:
            c.functions.balanceOf(wallet).call()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def time_help(runs: int = 5) -> float:
    exe = Path(sys.executable).with_name("rebalancer")
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([str(exe), "--help"], capture_output=True, check=True)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def main() -> int:
    figures: dict[str, float | int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        node = start_anvil(
            "bench",
            Path(tmp) / "anvil.log",
            chain_id=1,
            load_state=unpack_state("ethereum", Path(tmp)),
        )
        rpc = Rpc(node.url)
        try:
            usdc = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
            tokens = make_tokens(rpc, usdc, 1000)
            wallet = Account.create().address
            wallets20 = [Account.create().address for _ in range(20)]
            figures["requests_1w_200t"] = asyncio.run(
                count_requests(node.url, [wallet], tokens[:200])
            )
            figures["requests_20w_50t"] = asyncio.run(
                count_requests(node.url, wallets20, tokens[:50])
            )
            # NOTE: the committed world carries the Chainlink feeds at their real addresses
            # (dated at build time; freshness is checked above the adapter, not here).
            feeds = feeds_on("ethereum")
            figures["oracle_feeds"] = len(feeds)
            figures["requests_1w_200t_oracles"] = asyncio.run(
                count_requests(node.url, [wallet], tokens[:200], feeds)
            )
            plain = asyncio.run(time_ours(node.url, wallet, tokens[:200], 30))
            with_feeds = asyncio.run(time_ours(node.url, wallet, tokens[:200], 30, feeds))
            figures["ours_ms_200_same_run"] = round(plain, 2)
            figures["ours_ms_200_oracles"] = round(with_feeds, 2)
            figures["oracle_cost_ratio"] = round(with_feeds / plain, 2)
            for n, runs in ((200, 30), (1000, 15)):
                ours = asyncio.run(time_ours(node.url, wallet, tokens[:n], runs))
                naive = time_naive(node.url, wallet, tokens[:n], 3 if n == 200 else 1)
                figures[f"ours_ms_{n}"] = round(ours, 2)
                figures[f"ours_cold_ms_{n}"] = round(
                    asyncio.run(time_cold(node.url, wallet, tokens[:n], runs)), 2
                )
                figures[f"naive_ms_{n}"] = round(naive, 1)
                figures[f"ratio_{n}"] = round(naive / ours, 1)
        finally:
            rpc.close()
            stop_pid(node.pid)
    figures["help_ms"] = round(time_help(), 1)

    print("HTTP requests per balance refresh (target: at most 2 per chain)")
    print(f"  1 wallet x 200 tokens:  {figures['requests_1w_200t']}")
    print(f"  20 wallets x 50 tokens: {figures['requests_20w_50t']}")
    print(
        f"  1 wallet x 200 tokens + {figures['oracle_feeds']} Chainlink feeds: "
        f"{figures['requests_1w_200t_oracles']}  (one request per chain, oracles included)"
    )
    print(
        f"  oracles in the batch: {figures['ours_ms_200_oracles']} ms against "
        f"{figures['ours_ms_200_same_run']} ms without, ratio {figures['oracle_cost_ratio']}x"
    )
    print("Time to read one wallet's balances on a local anvil (median)")
    for n in (200, 1000):
        print(
            f"  {n:>5} tokens: ours {figures[f'ours_ms_{n}']:>7} ms "
            f"(first refresh {figures[f'ours_cold_ms_{n}']} ms)   "
            f"naive web3.py balanceOf loop {figures[f'naive_ms_{n}']:>8} ms   "
            f"ratio {figures[f'ratio_{n}']}x"
        )
    print("  (reference on these machines: multicall.py ~4.3 ms for 200, ~17 ms for 1,000)")
    print(f"rebalancer --help: {figures['help_ms']} ms (target < 500 ms)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
