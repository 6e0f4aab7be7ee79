"""Solana: HTTP requests per balance refresh against the naive way, and node throughput.

The adapter reads 1, 10 and 100 wallets (SOL, every registry token, SPL Token and Token-2022)
in one JSON-RPC batch; the naive way is one request per wallet per program (getBalance plus
getTokenAccountsByOwner for each token program). Throughput is transfers per second through
sendTransaction until getSignatureStatuses reports them. Prints figures for a person, and as
its last line one JSON object of them. Run with `.venv/bin/python bench/solana_balances.py`
(starts and stops its own node).
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from rebalancer.chains.anvil import start_listening, stop_pid
from rebalancer.chains.oracles import OracleFeed, feeds_on
from rebalancer.chains.registry import Registry
from rebalancer.chains.solana import TOKEN_2022_PROGRAM, TOKEN_PROGRAM, SolanaChain
from rebalancer.localnet.pyth_fixtures import PYTH_PATH
from rebalancer.localnet.solana_fixtures import DEMO_PATH, demo_keypair

SIZES = (1, 10, 100)
REPEATS = 5
N_TX = 400
SOL = 10**9


def wallets_of(n: int) -> list[str]:
    return [str(demo_keypair().pubkey()), *(str(Keypair().pubkey()) for _ in range(n - 1))]


async def adapter_refresh(
    url: str, wallets: list[str], feeds: Sequence[OracleFeed] = ()
) -> tuple[int, float]:
    """(HTTP requests of one refresh, median ms of a refresh) for the batched adapter, with
    the Pyth accounts of ``feeds`` in the same batch."""
    registry = Registry.load()
    seen: list[httpx.Request] = []

    async def hook(req: httpx.Request) -> None:
        seen.append(req)

    async with httpx.AsyncClient(event_hooks={"request": [hook]}, timeout=30) as client:
        adapter = SolanaChain(registry.chains["solana"], url, client)
        await adapter.balances(wallets, registry.tokens_on("solana"), feeds)  # genesis check
        seen.clear()
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            got = await adapter.balances(wallets, registry.tokens_on("solana"), feeds)
            assert all(r.usd is not None for r in got.oracles)
            times.append((time.perf_counter() - start) * 1000)
        return len(seen) // REPEATS, statistics.median(times)


async def naive_refresh(url: str, wallets: list[str]) -> tuple[int, float]:
    """The same reads, one request per wallet per program, one after another."""
    cfg = {"encoding": "base64", "commitment": "confirmed"}
    count = 0
    async with httpx.AsyncClient(timeout=30) as client:

        async def post(method: str, params: list[Any]) -> None:
            nonlocal count
            count += 1
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            (await client.post(url, json=body)).raise_for_status()

        times = []
        for _ in range(REPEATS):
            count = 0
            start = time.perf_counter()
            for w in wallets:
                await post("getBalance", [w, {"commitment": "confirmed"}])
                for program in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
                    await post("getTokenAccountsByOwner", [w, {"programId": program}, cfg])
            times.append((time.perf_counter() - start) * 1000)
    return count, statistics.median(times)


def rpc(client: httpx.Client, url: str, method: str, *params: Any) -> Any:
    answer = client.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    )
    data = answer.json()
    if "error" in data:
        raise RuntimeError(f"{method}: {data['error']}")
    return data["result"]


def throughput(url: str) -> tuple[float, float]:
    """(transfers per second sent then confirmed, median ms of one send + confirm)."""
    with httpx.Client(timeout=30) as client:
        payers = [Keypair() for _ in range(4)]
        for p in payers:
            rpc(client, url, "requestAirdrop", str(p.pubkey()), 1_000 * SOL)
        blockhash = Hash.from_string(rpc(client, url, "getLatestBlockhash")["value"]["blockhash"])

        def tx(i: int) -> str:
            payer = payers[i % len(payers)]
            ix = transfer(
                TransferParams(
                    from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=SOL
                )
            )
            signed = VersionedTransaction(
                Message.new_with_blockhash([ix], payer.pubkey(), blockhash), [payer]
            )
            return base64.b64encode(bytes(signed)).decode()

        # one at a time: send, then poll the status until it is there
        latencies = []
        for i in range(50):
            raw = tx(i)
            start = time.perf_counter()
            sig = rpc(client, url, "sendTransaction", raw, {"encoding": "base64"})
            while rpc(client, url, "getSignatureStatuses", [sig])["value"][0] is None:
                time.sleep(0.001)
            latencies.append((time.perf_counter() - start) * 1000)
        # many: send them all, then confirm them in getSignatureStatuses batches of 256
        raws = [tx(1000 + i) for i in range(N_TX)]
        start = time.perf_counter()
        sigs = [rpc(client, url, "sendTransaction", r, {"encoding": "base64"}) for r in raws]
        pending = list(sigs)
        while pending:
            still = []
            for i in range(0, len(pending), 256):
                chunk = pending[i : i + 256]
                statuses = rpc(client, url, "getSignatureStatuses", chunk)["value"]
                still += [s for s, st in zip(chunk, statuses, strict=True) if st is None]
            pending = still
        elapsed = time.perf_counter() - start
    return N_TX / elapsed, statistics.median(latencies)


def main() -> int:
    figures: dict[str, Any] = {
        "requests_per_refresh": {},
        "naive_requests": {},
        "ratio": {},
        "refresh_ms": {},
        "naive_ms": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            sys.executable,
            "-m",
            "rebalancer.localnet.solana_node",
            "--port",
            "0",
            "--quiet",
            "--snapshot",
            str(DEMO_PATH),
            "--snapshot",
            str(PYTH_PATH),
        ]
        node = start_listening("solana", argv, Path(tmp) / "solana.log", timeout=20)
        try:
            print("Solana balance refresh (SOL + 8 registry tokens, Token and Token-2022):")
            for n in SIZES:
                wallets = wallets_of(n)
                requests, ms = asyncio.run(adapter_refresh(node.url, wallets))
                naive, naive_ms = asyncio.run(naive_refresh(node.url, wallets))
                key = str(n)
                figures["requests_per_refresh"][key] = requests
                figures["naive_requests"][key] = naive
                figures["ratio"][key] = round(naive / requests, 1)
                figures["refresh_ms"][key] = round(ms, 2)
                figures["naive_ms"][key] = round(naive_ms, 2)
                print(
                    f"  {n:>3} wallets: {requests} HTTP request ({ms:.1f} ms) vs naive "
                    f"{naive} requests ({naive_ms:.1f} ms): {naive / requests:.0f}x fewer"
                )
            feeds = feeds_on("solana")
            wallets = wallets_of(1)
            _, plain_ms = asyncio.run(adapter_refresh(node.url, wallets))
            priced, priced_ms = asyncio.run(adapter_refresh(node.url, wallets, feeds))
            figures["requests_1w_pyth"] = priced
            figures["refresh_ms_1w_same_run"] = round(plain_ms, 2)
            figures["refresh_ms_1w_pyth"] = round(priced_ms, 2)
            print(
                f"  1 wallet + {len(feeds)} Pyth accounts: {priced} HTTP request "
                f"({priced_ms:.1f} ms against {plain_ms:.1f} ms without)"
            )
            tps, latency = throughput(node.url)
            figures["tx_per_s"] = round(tps, 1)
            figures["send_confirm_ms_median"] = round(latency, 2)
            print(
                f"Node throughput: {tps:.0f} transfers/s sent and confirmed ({N_TX} transfers); "
                f"one send + confirm: {latency:.2f} ms median"
            )
        finally:
            stop_pid(node.pid)
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
