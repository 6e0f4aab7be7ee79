"""The demo's dry run (`rebalancer run -c examples/local.toml`: plan + simulate, nothing signed)
against distant nodes: every chain's RPC behind a loopback proxy that waits ``DELAY`` before
forwarding each request and counts them (localnet/latency_proxy.py).

For each EVM simulation way (``auto``: ``eth_simulateV1`` where the RPC has it, as anvil does;
``warm``: the warm local copy, forced; ``fork``: the old ``anvil --fork-url``) at 0 and 50 ms
per request: upstream requests per simulated EVM trade, simulation wall time per trade, and
the whole dry run's wall time (median of 3, after one untimed run); the baseline is the same
way at 0 ms in the same run (target: at most 5 requests per EVM trade, and the dry run at
50 ms at most 1.5x its time at 0 ms).

Prints figures for a person, and as its last line one JSON object of them.
`.venv/bin/python bench/remote_latency.py` starts and stops its own worlds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rebalancer.chains.base import ChainAdapter
from rebalancer.commands.demo import DEMO_ENV
from rebalancer.localnet import manager
from rebalancer.localnet.latency_proxy import LatencyProxy
from rebalancer.services import injected

ROOT = Path(__file__).resolve().parent.parent
DELAYS_MS = (0, 50)
WAYS = ("auto", "warm", "fork")
REPEAT = 3  # dry runs per way and delay; the median is shown
CHAINS = ("ethereum", "avalanche", "solana")
WALLET = "0x38933fB3600db971A459767D149B492e58e40b76"  # the demo wallet
TRADES = [  # (chain, sell, buy, amount): each way simulates these alone, one adapter per way
    ("ethereum", "ETH", "WBTC", 10**18),
    ("ethereum", "USDC", "WETH", 2_000 * 10**6),  # an approval, then the swap
    ("ethereum", "LINK", "WBTC", 100 * 10**18),
    ("avalanche", "USDC", "AVAX", 500 * 10**6),
]


async def _trades(urls: dict[str, str], oneinch: str, tmp: Path) -> dict[str, Any]:
    """The TRADES simulated each way at each delay: requests, JSON-RPC calls, ms per trade."""
    import httpx

    from rebalancer.chains.base import SwapLegs
    from rebalancer.chains.evm import EvmChain
    from rebalancer.chains.registry import Registry
    from rebalancer.dex.base import SwapRequest
    from rebalancer.dex.oneinch import OneInch

    reg = Registry.load()
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=60) as client:
        api = OneInch(client, base_url=oneinch, api_key="local")
        legs = []
        for chain, sell, buy, amount in TRADES:
            s, b = reg.by_symbol(chain, sell), reg.by_symbol(chain, buy)
            assert s is not None and b is not None
            req = SwapRequest(chain, reg.chains[chain].chain_id, WALLET, s, b, amount, 50)
            built = await api.build(await api.quote(req))
            legs.append(SwapLegs(WALLET, s, b, built.tx, built.approval, built.approval_reset))
        for way in WAYS:
            for delay in DELAYS_MS:
                per: list[tuple[int, int, float]] = []
                proxies = {c: LatencyProxy(urls[c], delay_s=delay / 1000) for c in urls}
                try:
                    adapters = {
                        c: EvmChain(reg.chains[c], p.url, client, simulation=way)
                        for c, p in proxies.items()
                        if c != "solana"
                    }
                    for a in adapters.values():
                        a.work_dir = tmp  # kept warm node per adapter, as in a command
                    for leg, (chain, *_rest) in zip(legs, TRADES, strict=True):
                        p = proxies[chain]
                        n, c, t = p.requests, p.calls, time.perf_counter()
                        await adapters[chain].simulate(leg)
                        per.append((p.requests - n, p.calls - c, time.perf_counter() - t))
                    for a in adapters.values():
                        await a.aclose()
                finally:
                    for p in proxies.values():
                        p.close()
                out[f"{way}-{delay}"] = {
                    "requests_per_trade": [r for r, _, _ in per],
                    "rpc_calls_per_trade": [c for _, c, _ in per],
                    "ms_per_trade": [round(t * 1000) for _, _, t in per],
                }
    return out


def _config(tmp: Path, run: str, urls: dict[str, str], way: str) -> Path:
    text = (ROOT / "examples" / "local.toml").read_text()
    text = text.replace('journal = ".demo-journal.sqlite"', f'journal = "{tmp}/{run}.sqlite"')
    text = text.replace('file = "keys/', f'file = "{ROOT}/examples/keys/')
    for chain, url in urls.items():
        text = text.replace(f'rpc = "localnet:{chain}"', f'rpc = "{url}"')
    text = text.replace("[policy]\n", f'[policy]\nevm_simulation = "{way}"\n')
    path = tmp / f"{run}.toml"
    path.write_text(text)
    return path


def main() -> int:
    for k, v in DEMO_ENV.items():
        os.environ.setdefault(k, v)
    proxies: dict[str, LatencyProxy] = {}
    sims: list[dict[str, Any]] = []

    class Counted:
        """A chain adapter whose simulations are timed and whose upstream requests counted."""

        def __init__(self, inner: ChainAdapter) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

        async def simulate(self, legs: Any) -> Any:
            chain = self._inner.info.name
            proxy = proxies[chain]
            n, c, t = proxy.requests, proxy.calls, time.perf_counter()
            try:
                return await self._inner.simulate(legs)
            finally:
                sims.append(
                    {
                        "chain": chain,
                        "requests": proxy.requests - n,
                        "calls": proxy.calls - c,
                        "s": time.perf_counter() - t,
                    }
                )

    def wrap(part: Any) -> Any:
        return Counted(part) if isinstance(part, ChainAdapter) else part

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_s, injected(wrap=wrap):
        tmp = Path(tmp_s)
        worlds = tmp / "worlds"
        os.environ["REBALANCER_LOCALNET_DIR"] = str(worlds)
        manifest = manager.up(worlds)
        urls = {w["name"]: w["url"] for w in manifest["worlds"] if w["name"] in CHAINS}
        import web3  # noqa: F401

        import rebalancer.commands.execution

        # NOTE: imported before the clock starts (see bench/execution.py).
        import rebalancer.dex.jupiter
        import rebalancer.dex.oneinch
        import rebalancer.planner.plan  # noqa: F401
        from rebalancer.cli import main as cli

        try:
            import asyncio

            oneinch = next(w["url"] for w in manifest["worlds"] if w["name"] == "1inch")
            evm_urls = {c: u for c, u in urls.items() if c != "solana"}
            figures["trades"] = asyncio.run(_trades(evm_urls, oneinch, tmp))
            for way in WAYS:
                for delay in DELAYS_MS:
                    proxies.clear()
                    for chain, url in urls.items():
                        proxies[chain] = LatencyProxy(url, delay_s=delay / 1000)
                    sims.clear()
                    try:
                        run = f"{way}-{delay}"
                        walls = []
                        for i in range(-1 if run == "auto-0" else 0, REPEAT):
                            cfg = _config(
                                tmp, f"{run}-{i}", {c: p.url for c, p in proxies.items()}, way
                            )
                            sims.clear()
                            t0 = time.perf_counter()
                            with contextlib.redirect_stdout(io.StringIO()) as out:
                                code = cli(["run", "-c", str(cfg), "--json"])
                            if i >= 0:  # -1: a first run, untimed (first use of each import)
                                walls.append(time.perf_counter() - t0)
                            doc = json.loads(out.getvalue())
                        wall = statistics.median(walls)
                    finally:
                        for p in proxies.values():
                            p.close()
                    evm = [s for s in sims if s["chain"] != "solana"]
                    figures[run] = {
                        "exit_code": code,
                        "dry_run_s": round(wall, 2),
                        "evm_trades": len(evm),
                        "evm_requests_per_trade_max": max((s["requests"] for s in evm), default=0),
                        "evm_requests_per_trade_median": statistics.median(
                            [s["requests"] for s in evm] or [0]
                        ),
                        "evm_sim_ms_per_trade_median": round(
                            statistics.median([s["s"] for s in evm] or [0]) * 1000, 1
                        ),
                        "solana_requests_per_trade_median": statistics.median(
                            [s["requests"] for s in sims if s["chain"] == "solana"] or [0]
                        ),
                        "methods": sorted({str(t.get("simulation")) for t in doc["trades"]}),
                        "evm_rpc_calls_per_trade_max": max((s["calls"] for s in evm), default=0),
                        "upstream_requests": sum(p.requests for p in proxies.values()),
                    }
        finally:
            manager.down(worlds)
    print("four trades alone (ETH->WBTC, USDC->WETH with approval, LINK->WBTC, USDC->AVAX):")
    for run, f in figures["trades"].items():
        print(
            f"  {run:8}: requests {f['requests_per_trade']}, JSON-RPC calls "
            f"{f['rpc_calls_per_trade']}, ms {f['ms_per_trade']}"
        )
    print("the demo's dry run (run -c examples/local.toml):")
    for way in WAYS:
        slow, fast = figures[f"{way}-50"], figures[f"{way}-0"]
        figures[f"{way}_dry_run_ratio_50ms"] = round(slow["dry_run_s"] / fast["dry_run_s"], 2)
        print(
            f"  {way:5}: EVM requests per trade (max) {slow['evm_requests_per_trade_max']} "
            f"({slow['evm_rpc_calls_per_trade_max']} JSON-RPC calls), "
            f"EVM simulation per trade {fast['evm_sim_ms_per_trade_median']} ms at 0 ms / "
            f"{slow['evm_sim_ms_per_trade_median']} ms at 50 ms; dry run {fast['dry_run_s']} s "
            f"/ {slow['dry_run_s']} s ({figures[f'{way}_dry_run_ratio_50ms']}x); "
            f"methods {', '.join(slow['methods'])}"
        )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
