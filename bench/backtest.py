"""Benchmark: replay 5 years of daily prices of 20 assets under 4 strategies (target: < 5 s).

The universe, the strategy and the prices are generated from fixed seeds
(``tests.planner.synthetic`` and correlated random walks), so the figures compare from run to run.
Also times the CSV parser on the same history written out as ``date,symbol,price_usd`` (part
of the 5 s target) and the default ``--sweep`` grid (18 rules, in and out of sample; not part
of it).
The LAST line printed is one JSON object of the figures.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rebalancer.planner.model import resolve_targets
from rebalancer.reports import backtest as bt
from rebalancer.reports.prices_csv import parse_prices_csv
from tests.planner.synthetic import make_strategy, make_universe

YEARS = 5
ASSETS = 20
TARGET_S = 5.0


def prices_csv(symbols: list[str], days: int, seed: int = 7) -> str:
    """Correlated daily random walks (about 60% annualised volatility) as a prices CSV."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.025, days)
    lines = ["date,symbol,price_usd"]
    paths = []
    for k in range(len(symbols)):
        r = common + rng.normal(0.0008 + 0.0002 * (k % 5 - 2), 0.02, days)
        r[0] = 0.0
        paths.append(10.0 ** rng.uniform(-1, 4) * np.exp(np.cumsum(r)))
    start = date(2020, 1, 1)
    for t in range(days):
        day = (start + timedelta(days=t)).isoformat()
        for s, path in zip(symbols, paths, strict=True):
            lines.append(f"{day},{s},{path[t]:.8g}")
    return "\n".join(lines) + "\n"


def main() -> None:
    universe = make_universe(1, ASSETS)
    strategy = make_strategy(universe)
    targets = resolve_targets(strategy, universe)
    symbols = [a for assets in universe.classes.values() for a in assets]
    days = YEARS * 365 + 1
    text = prices_csv(symbols, days)

    t0 = time.perf_counter()
    table = parse_prices_csv(text, "bench.csv", known_assets=symbols)
    history = table.history(symbols)
    parse_ms = (time.perf_counter() - t0) * 1000

    book = bt.Book.build(targets, history.symbols)
    costs = bt.Costs.of(strategy, "chain0", None)
    rules = bt.make_rules(strategy)
    figures: dict[str, object] = {
        "days": days,
        "assets": ASSETS,
        "strategies": len(rules),
        "csv_rows": days * ASSETS,
        "parse_ms": round(parse_ms, 1),
    }
    t_all = time.perf_counter()
    for rule in rules:
        t0 = time.perf_counter()
        res = bt.simulate(history, book, rule, costs)
        ms = (time.perf_counter() - t0) * 1000
        key = rule.name.replace("-", "_")
        figures[f"{key}_ms"] = round(ms, 1)
        figures[f"{key}_rebalances"] = len(res.events)
        figures[f"{key}_sharpe"] = None if res.stats.sharpe is None else round(res.stats.sharpe, 4)
        print(
            f"{rule.name:13s} {ms:8.1f} ms  {len(res.events):4d} rebalances  "
            f"final {res.values[-1]:>12,.0f} USD  costs {res.cost_usd:>10,.0f} USD  "
            f"Sharpe {res.stats.sharpe if res.stats.sharpe is not None else float('nan'):.3f}"
        )
    replay_ms = (time.perf_counter() - t_all) * 1000
    total_ms = replay_ms + parse_ms
    t0 = time.perf_counter()
    swept = bt.sweep(history, book, strategy, costs)
    sweep_ms = (time.perf_counter() - t0) * 1000
    figures["sweep_cells"] = len(swept.points)
    figures["sweep_ms"] = round(sweep_ms, 1)
    print(
        f"sweep of {len(swept.points)} threshold rules in and out of sample: {sweep_ms:.0f} ms "
        f"(best in sample: {swept.best.band_pp} pp every {swept.best.check_every} d, "
        f"out-of-sample rank {swept.best_out_rank})"
    )
    figures["replay_ms"] = round(replay_ms, 1)
    figures["total_ms"] = round(total_ms, 1)
    figures["target_ms"] = TARGET_S * 1000
    figures["within_target"] = total_ms < TARGET_S * 1000
    print(
        f"{YEARS} years x {ASSETS} assets x {len(rules)} strategies: replay {replay_ms:.0f} ms, "
        f"CSV parse ({days * ASSETS} rows) {parse_ms:.0f} ms, total {total_ms:.0f} ms "
        f"(target < {TARGET_S:g} s)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
