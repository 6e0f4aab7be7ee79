"""The living demo's speed: checks per second, and where the time goes (the market's chain steps
versus the tool's watch checks), against the way a check ran before (a baseline measured in the
same run on the same worlds).

Starts the local worlds in a temporary directory with ``localnet.manager.up`` (stopped in
``finally``), plays ``--days`` simulated days of the market's story with a watch check every 6
simulated hours exactly as ``rebalancer demo --days`` does (one event loop, one client and
Services; a check with nothing to do stops after the oracles), then times ``--baseline`` checks
made the way ``rebalancer run --execute`` makes one: the config loaded, a new event loop,
client and Services, and the full read (quotes and measured costs) every time. Prints figures
for a person, and as its last line one JSON object of them. Run with
`.venv/bin/python bench/living_demo.py [--days 120] [--baseline 5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--baseline", type=int, default=5, help="checks made the old way")
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-living-") as tmp:
        os.environ["REBALANCER_LOCALNET_DIR"] = str(Path(tmp) / "localnet")
        os.environ["REBALANCER_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ["REBALANCER_STATE_DIR"] = str(Path(tmp) / "state")
        os.environ.setdefault("REBALANCER_DEMO_PASSPHRASE", "demo")

        from rebalancer.commands.demo import packaged_config
        from rebalancer.commands.execution import run_once
        from rebalancer.commands.living import (
            backtest_of,
            every,
            parse_check_every,
            price_path,
            session,
        )
        from rebalancer.config import load_config
        from rebalancer.localnet import manager

        state_dir = manager.default_dir()
        config_path = packaged_config(Path(tmp) / "data", "living.toml", "living")
        config, registry = load_config(str(config_path))
        args = argparse.Namespace(prices=None, seed=None)
        path = price_path(args, opts.days)
        k = every(list(path), parse_check_every("6h"))
        t0 = time.perf_counter()
        manager.up(state_dir)
        try:
            up_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            steps, run = asyncio.run(session(config, registry, state_dir, path, k, lambda _m: None))
            play_s = time.perf_counter() - t1
            t2 = time.perf_counter()
            bt, bt_twr = backtest_of(config, registry, steps, k, run)
            backtest_s = time.perf_counter() - t2

            base = []
            ns = argparse.Namespace(config=str(config_path), force=False)
            for _ in range(opts.baseline):
                b0 = time.perf_counter()
                report, _doc = run_once(ns, lambda _m: None, execute_trades=True, yes=True)
                base.append(time.perf_counter() - b0)
                assert not report.results, "the baseline checks must have nothing to do"
        finally:
            manager.down(state_dir)

    quiet_ms = 1000 * run.quiet_s / max(run.quiet_checks, 1)
    base_ms = 1000 * sorted(base)[len(base) // 2] if base else None
    figures = {
        "days": opts.days,
        "steps": len(steps),
        "checks": run.checks,
        "rebalances": len(run.rebalances),
        "worlds_up_s": round(up_s, 2),
        "play_s": round(play_s, 2),
        "checks_per_s": round(run.checks / play_s, 2) if play_s else None,
        "market_s": round(run.market_s, 2),
        "tool_s": round(run.tool_s, 2),
        "market_share": round(run.market_s / (run.market_s + run.tool_s), 3),
        "market_ms_per_step": round(1000 * run.market_s / max(len(steps), 1), 1),
        "quiet_check_ms": round(quiet_ms, 1),
        "baseline_check_ms": None if base_ms is None else round(base_ms, 1),
        "baseline_over_quiet": None if base_ms is None else round(base_ms / quiet_ms, 1),
        "backtest_ms": round(1000 * backtest_s, 1),
        "live_vs_backtest_twr_pp": round(
            float(run.values[-1] / run.start_value - 1) * 100 - bt_twr * 100, 2
        )
        if run.values and run.start_value
        else None,
    }
    print(f"living demo, {opts.days} simulated days: {run.checks} checks, {len(bt.events)} and "
          f"{len(run.rebalances)} rebalances (backtest, live)")  # fmt: skip
    print(
        f"  played in {play_s:.1f} s ({figures['checks_per_s']} checks/s; worlds up in "
        f"{up_s:.1f} s, not counted)"
    )
    print(
        f"  market steps {run.market_s:.1f} s ({figures['market_ms_per_step']} ms/step), "
        f"tool {run.tool_s:.1f} s: market share {figures['market_share']:.0%}"
    )
    print(
        f"  a check with nothing to do: {quiet_ms:.1f} ms; the same check as `run --execute` "
        f"makes it (baseline): {figures['baseline_check_ms']} ms "
        f"(x{figures['baseline_over_quiet']})"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
