"""The demo's rebalance on the local worlds: wall time (node start excluded) and the latency of
each trade's simulation, against the naive way (no simulation would be unsafe, so the
comparison is the whole run against its simulations).

Prints figures for a person, and as its last line one JSON object of them.
`.venv/bin/python bench/execution.py` starts and stops its own worlds.
"""

from __future__ import annotations

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
from rebalancer.services import injected

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    for k, v in DEMO_ENV.items():
        os.environ.setdefault(k, v)
    sims: list[float] = []

    class Timed:
        """A chain adapter whose simulations are timed (handed to Services by ``injected``)."""

        def __init__(self, inner: ChainAdapter) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

        async def simulate(self, legs: Any) -> Any:
            t = time.perf_counter()
            try:
                return await self._inner.simulate(legs)
            finally:
                sims.append(time.perf_counter() - t)

    def wrap(part: Any) -> Any:
        return Timed(part) if isinstance(part, ChainAdapter) else part

    with tempfile.TemporaryDirectory() as tmp, injected(wrap=wrap):
        worlds = Path(tmp) / "worlds"
        os.environ["REBALANCER_LOCALNET_DIR"] = str(worlds)
        t0 = time.perf_counter()
        manager.up(worlds)
        start_s = time.perf_counter() - t0
        config = Path(tmp) / "demo.toml"
        text = (ROOT / "examples" / "local.toml").read_text()
        text = text.replace('journal = ".demo-journal.sqlite"', f'journal = "{tmp}/j.sqlite"')
        text = text.replace('file = "keys/', f'file = "{ROOT}/examples/keys/')
        config.write_text(text)
        import web3  # noqa: F401

        import rebalancer.commands.execution

        # NOTE: imported before the clock starts: the figure is the rebalance, not Python's
        # first import of web3, scipy and solders (~2 s on these machines, once per process).
        import rebalancer.dex.jupiter
        import rebalancer.dex.oneinch
        import rebalancer.planner.plan
        import rebalancer.wallet.factory  # noqa: F401
        from rebalancer.cli import main as cli

        try:
            t1 = time.perf_counter()
            code = cli(["run", "-c", str(config), "--execute", "--yes", "--json"])
            run_s = time.perf_counter() - t1
        finally:
            manager.down(worlds)
    figures = {
        "exit_code": code,
        "worlds_start_s": round(start_s, 2),
        "rebalance_wall_s": round(run_s, 2),
        "trades_simulated": len(sims),
        "simulation_median_ms": round(statistics.median(sims) * 1000, 1) if sims else None,
        "simulation_max_ms": round(max(sims) * 1000, 1) if sims else None,
        "simulation_share": round(sum(sims) / run_s, 2) if sims else None,
    }
    print(f"local worlds start: {figures['worlds_start_s']} s (excluded)")
    print(
        f"demo rebalance (plan, quote, build, check, simulate, sign, send, confirm): "
        f"{figures['rebalance_wall_s']} s, exit {code}"
    )
    print(
        f"simulations: {len(sims)}, median {figures['simulation_median_ms']} ms, "
        f"max {figures['simulation_max_ms']} ms, {figures['simulation_share']} of the run"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
