"""The moving market's cost per step on the local worlds: steps per second of ``Market.step``
(every clock, oracle, pool and the Jupiter maker), the share of each chain and phase, and an
oracles-only variant (pools left alone) that splits the EVM transaction into oracles and
arbitrage. Baseline, measured in the same run: a bare step, ``evm_mine`` at the next timestamp
on both anvil worlds and ``localnet_warpClock`` on the Solana node, concurrently.

The living demo needs 480 steps (120 days at 6 h) beside its 480 watch checks in under two
minutes on 2 cores: a step should cost well under 100 ms. Prints figures for a person, and as
its last line one JSON object of them. ``.venv/bin/python bench/market.py [STEPS]`` starts and
stops its own worlds.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from rebalancer.localnet import manager
from rebalancer.localnet.market import Market, StepReport, default_story, start_after

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 120


async def bare_steps(state_dir: Path, n: int) -> list[float]:
    """``n`` steps that only move the clocks: evm_mine at a timestamp, warp the Solana clock."""
    manifest = manager.read_manifest(state_dir)
    assert manifest is not None
    anvils = [w["url"] for w in manifest["worlds"] if w["kind"] == "anvil"]
    solana = [w["url"] for w in manifest["worlds"] if w["kind"] == "solana"]
    times = []
    async with httpx.AsyncClient(timeout=30) as client:

        async def call(url: str, method: str, *params: Any) -> Any:
            r = await client.post(
                url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
            )
            return r.json()["result"]

        block = await call(anvils[0], "eth_getBlockByNumber", "latest", False)
        stamp = int(block["timestamp"], 16) + 3600
        for _ in range(n):
            stamp += 6 * 3600
            t0 = time.perf_counter()
            await asyncio.gather(
                *(call(u, "evm_mine", stamp) for u in anvils),
                *(call(u, "localnet_warpClock", stamp) for u in solana),
            )
            times.append(time.perf_counter() - t0)
    return times


async def market_steps(state_dir: Path, n: int, *, pools: bool) -> list[StepReport]:
    market = await Market.open(state_dir, pools=pools)
    try:
        path = default_story(days=n / 4, step=timedelta(hours=6))
        start = start_after(await market.now())
        reports = []
        for at, prices in list(path.shifted(start))[:n]:
            reports.append(await market.step(at, prices))
        return reports
    finally:
        await market.aclose()


async def _open_once(state_dir: Path) -> None:
    market = await Market.open(state_dir)
    await market.aclose()


def shares(reports: list[StepReport]) -> dict[str, dict[str, float]]:
    """Mean milliseconds per step by chain and phase."""
    total: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in reports:
        for chain, phases in r.timings.items():
            for phase, seconds in phases.items():
                total[chain][phase] += seconds * 1000 / len(reports)
    return {c: {p: round(v, 2) for p, v in ph.items()} for c, ph in total.items()}


def p95(values: list[float]) -> float:
    return sorted(values)[max(int(len(values) * 0.95) - 1, 0)]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="rebalancer-bench-market-") as tmp:
        state_dir = Path(tmp)
        t0 = time.perf_counter()
        manager.up(state_dir)
        up_s = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            asyncio.run(_open_once(state_dir))  # the one-time arbitrageur setup
            open_s = time.perf_counter() - t0
            baseline = asyncio.run(bare_steps(state_dir, STEPS))
            t0 = time.perf_counter()
            full = asyncio.run(market_steps(state_dir, STEPS, pools=True))
            full_s = time.perf_counter() - t0
            oracles_only = asyncio.run(market_steps(state_dir, max(STEPS // 3, 10), pools=False))
        finally:
            manager.down(state_dir)
    step_ms = [r.seconds * 1000 for r in full]
    base_ms = [s * 1000 for s in baseline]
    by_chain = shares(full)
    oracle_chain = shares(oracles_only)
    evm_tx = {
        c: by_chain[c]["oracles+arbitrage"] for c in by_chain if "oracles+arbitrage" in by_chain[c]
    }
    evm_oracles = {c: oracle_chain[c]["oracles+arbitrage"] for c in evm_tx}
    steps_per_s = len(full) / full_s
    figures = {
        "steps": len(full),
        "steps_per_s": round(steps_per_s, 2),
        "step_ms_median": round(statistics.median(step_ms), 2),
        "step_ms_p95": round(p95(step_ms), 2),
        "baseline_ms_median": round(statistics.median(base_ms), 2),
        "ratio_to_baseline": round(statistics.median(step_ms) / statistics.median(base_ms), 2),
        "projected_480_steps_s": round(480 / steps_per_s, 1),
        "ms_by_chain_and_phase": by_chain,
        "evm_oracles_only_ms": evm_oracles,
        "evm_arbitrage_ms": {c: round(evm_tx[c] - evm_oracles[c], 2) for c in evm_tx},
        "open_s": round(open_s, 2),
        "localnet_up_s": round(up_s, 2),
    }
    print(f"localnet up {up_s:.1f} s; first Market.open (arbitrageurs deployed) {open_s:.2f} s")
    print(
        f"{len(full)} market steps: {steps_per_s:.1f} steps/s, median "
        f"{figures['step_ms_median']} ms, p95 {figures['step_ms_p95']} ms per step"
    )
    print(
        f"baseline (bare evm_mine + Solana warp): median {figures['baseline_ms_median']} ms; "
        f"a market step costs {figures['ratio_to_baseline']}x"
    )
    print(f"480 steps (120 days at 6 h) would take {figures['projected_480_steps_s']} s")
    for chain, phases in by_chain.items():
        print(f"  {chain:<10} " + ", ".join(f"{p} {ms} ms" for p, ms in phases.items()))
    for c in evm_tx:
        print(
            f"  {c:<10} of its transaction: oracles alone {evm_oracles[c]} ms, "
            f"arbitrage {figures['evm_arbitrage_ms'][c]} ms"
        )
    print("(chains step concurrently: a step lasts as long as its slowest chain)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
