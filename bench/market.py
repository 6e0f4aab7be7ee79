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

from rebalancer.localnet import manager
from rebalancer.localnet.market import Market, StepReport, default_story, start_after

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 160


async def interleaved(state_dir: Path, n: int) -> dict[str, list[Any]]:
    """``n`` rounds of three steps each, 6 h apart: a bare one (``evm_mine`` at the step's
    time on each anvil world and ``localnet_warpClock`` on the Solana node, concurrently, timed
    per chain), a market step with the pools left alone (oracles only), and a full market
    step. Interleaved so the machine's load falls on all three alike."""
    manifest = manager.read_manifest(state_dir)
    assert manifest is not None
    nodes = [(w["name"], w["url"], w["kind"]) for w in manifest["worlds"]]
    nodes = [n for n in nodes if n[2] in ("anvil", "solana")]
    out: dict[str, list[Any]] = {"bare": [], "bare_chain": [], "oracles": [], "full": []}
    market = await Market.open(state_dir)
    client = market.client
    path = list(default_story(days=n * 3 / 4, step=timedelta(hours=6)))
    at = start_after(await market.now())

    async def bare_one(name: str, url: str, kind: str, stamp: int) -> tuple[str, float]:
        t0 = time.perf_counter()
        method = "evm_mine" if kind == "anvil" else "localnet_warpClock"
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": [stamp]}
        (await client.post(url, json=body)).raise_for_status()
        return name, time.perf_counter() - t0

    try:
        for i in range(n):
            at += timedelta(hours=6)
            t0 = time.perf_counter()
            chains = await asyncio.gather(
                *(bare_one(name, url, kind, int(at.timestamp())) for name, url, kind in nodes)
            )
            out["bare"].append(time.perf_counter() - t0)
            out["bare_chain"].append(dict(chains))
            for kind, pools in (("oracles", False), ("full", True)):
                at += timedelta(hours=6)
                market.move_pools = pools
                out[kind].append(await market.step(at, path[min(3 * i + 2, len(path) - 1)][1]))
    finally:
        await market.aclose()
    return out


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


def chain_ms(reports: list[StepReport]) -> dict[str, float]:
    """Mean milliseconds per step each chain took, all its phases together."""
    return {c: round(sum(ph.values()), 2) for c, ph in shares(reports).items()}


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
            runs = asyncio.run(interleaved(state_dir, STEPS))
        finally:
            manager.down(state_dir)
    full: list[StepReport] = runs["full"]
    step_ms = [r.seconds * 1000 for r in full]
    base_ms = [s * 1000 for s in runs["bare"]]
    bare_chain = {
        c: round(statistics.mean(d[c] for d in runs["bare_chain"]) * 1000, 2)
        for c in runs["bare_chain"][0]
    }
    full_chain = chain_ms(full)
    oracle_chain = chain_ms(runs["oracles"])
    phases: dict[str, dict[str, float]] = {}
    for c, ms in full_chain.items():
        if c == "jupiter":
            phases[c] = {"maker": ms}
        elif c == "solana":
            sol = shares(full)["solana"]
            phases[c] = {"clock": sol["clock"], "oracles": sol["oracles"]}
        else:
            phases[c] = {
                "clock": bare_chain[c],
                "oracles": round(oracle_chain[c] - bare_chain[c], 2),
                "arbitrage": round(ms - oracle_chain[c], 2),
            }
    median = statistics.median(step_ms)
    figures = {
        "steps": len(full),
        "steps_per_s": round(1000 / statistics.mean(step_ms), 2),
        "step_ms_median": round(median, 2),
        "step_ms_p95": round(p95(step_ms), 2),
        "oracles_only_step_ms_median": round(
            statistics.median(r.seconds * 1000 for r in runs["oracles"]), 2
        ),
        "baseline_ms_median": round(statistics.median(base_ms), 2),
        "ratio_to_baseline": round(median / statistics.median(base_ms), 2),
        "projected_480_steps_s": round(480 * statistics.mean(step_ms) / 1000, 1),
        "ms_by_chain": full_chain,
        "ms_by_chain_and_phase": phases,
        "open_s": round(open_s, 2),
        "localnet_up_s": round(up_s, 2),
    }
    print(f"localnet up {up_s:.1f} s; first Market.open (arbitrageurs deployed) {open_s:.2f} s")
    print(
        f"{len(full)} market steps: {figures['steps_per_s']} steps/s, median "
        f"{figures['step_ms_median']} ms, p95 {figures['step_ms_p95']} ms per step "
        f"(oracles only: {figures['oracles_only_step_ms_median']} ms)"
    )
    print(
        f"baseline (bare evm_mine + Solana warp): median {figures['baseline_ms_median']} ms; "
        f"a market step costs {figures['ratio_to_baseline']}x"
    )
    print(f"480 steps (120 days at 6 h) would take {figures['projected_480_steps_s']} s")
    print("mean ms per step, by chain and phase (the chains step concurrently):")
    for chain, ph in phases.items():
        print(
            f"  {chain:<10} {full_chain[chain]:>6} ms: "
            + ", ".join(f"{p} {v}" for p, v in ph.items())
        )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
