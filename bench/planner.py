"""Planner benchmark: plan time on generated portfolios, and cost saved against the naive plan.

Sizes: 3 chains x 50 assets x 10 wallets (target under 50 ms) and 3 x 500 x 10 (under 1 s),
and *dense* portfolios (every wallet holds every token): 1,500, 4,500, 15,000 and 45,000
positions (issue 16's targets: 15,000 under 1 s, 45,000 under 3 s, at most 5x per 10x), their
markets' depth scaled with the portfolio (``dense_strategy``). Each
size prints wall and CPU time, the best of three plans and the first (the machine is shared
and its CPU speed varies run to run: the best is the steadier figure), the solver
path (``exact`` MILP or ``decomposed``), its measured gap, and whether the plan ends inside the
bands; the growth ratios compare 10x more positions. Gas-heavy portfolios just above the exact
path's size compare the decomposed plan with and without its swaps reselected by the MILP;
mid-size portfolios, the decomposed plan with the exact path's; the exact path's MILP with
and without its start from the decomposed plan.
Portfolios come from ``tests.planner.synthetic`` (deterministic per seed): every wallet holds about
30% of the tokens of each chain, 100 to 100k USD each, with one class inflated so that every
class is out of band. The naive plan sells what is over and buys what is under, wallet by wallet,
pro rata. Prints for a person, then one JSON object of the figures as the last line.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rebalancer.planner import aggregate, lp, optimise
from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.model import Portfolio, validate_all
from rebalancer.planner.plan import Plan, make_plan
from tests.planner.synthetic import (
    SyntheticUniverse,
    make_portfolio,
    make_strategy,
    make_universe,
)


def dense_strategy(u: SyntheticUniverse, n_assets: int) -> StrategyConfig:
    """The synthetic strategy with each market's depth scaled with the portfolio (5M USD per
    50 assets): under the pooled model a chain's whole move in an asset goes through one
    pool, so at a fixed depth the larger portfolios could not reach their bands at any cost
    (a 300M USD portfolio buying 10% of one asset through 5M USD markets); scaled, every size
    is the same market relative to what it holds."""
    s = make_strategy(u)
    scale = Decimal(n_assets) / 50
    costs = {c: m.model_copy(update={"depth_usd": m.depth_usd * scale}) for c, m in s.costs.items()}
    return s.model_copy(update={"costs": costs})


def dense(n_assets: int, runs: int = 3) -> dict[str, object]:
    """Plans of a dense portfolio (3 chains x ``n_assets`` x 10 wallets, every token held):
    the first run's wall time, and the best of ``runs`` (wall and CPU: on a shared machine whose
    CPU speed varies run to run, the best is the steadier figure; every run plans the same)."""
    u = make_universe(3, n_assets, 0)
    s = dense_strategy(u, n_assets)
    t = validate_all(s, u)
    holdings, prices = make_portfolio(u, 10, 0, density=1.0)
    pf = Portfolio.build(holdings, prices)
    walls, cpus = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        plan = make_plan(pf, t, s, u)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    wall, cpu = min(walls), min(cpus)
    return {
        "positions": len(pf.positions),
        "first_wall_s": round(walls[0], 2),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "method": plan.solver.get("method"),
        "gap": plan.solver.get("gap"),
        "lp_routes": plan.solver.get("candidates"),
        "trades": len(plan.trades),
        "cost_usd": round(float(plan.est_cost_usd)),
        "naive_cost_usd": None
        if plan.naive_cost_usd is None
        else round(float(plan.naive_cost_usd)),
        "in_bands": bool(float(plan.solver.get("violation_pp", 1.0)) <= 1e-6),  # type: ignore[arg-type]
        "after_max_drift_pp": round(float(plan.after_max_drift_pp), 2),
    }


def time_plan(n_assets: int, wallets: int, seeds: range, repeats: int) -> dict[str, object]:
    """Median and max wall time of ``make_plan`` (after one warm-up) over seeds and repeats."""
    times = []
    cpu = []
    trades = []
    positions = []
    for seed in seeds:
        u = make_universe(3, n_assets, seed)
        s = dense_strategy(u, n_assets)  # 50 assets: the plain synthetic strategy
        t = validate_all(s, u)
        holdings, prices = make_portfolio(u, wallets, seed)
        pf = Portfolio.build(holdings, prices)
        make_plan(pf, t, s, u)
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            plan = make_plan(pf, t, s, u)
            times.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
        trades.append(len(plan.trades))
        positions.append(len(pf.positions))
    return {
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
        "cpu_median_ms": round(statistics.median(cpu), 1),
        "positions": round(statistics.mean(positions)),
        "trades": round(statistics.mean(trades)),
    }


def savings(n_assets: int, wallets: int, seeds: range) -> dict[str, object]:
    """Cost of the plan vs the naive plan, on portfolios where the naive plan meets the bands
    (elsewhere the two are not comparable: the naive plan leaves rows out of band)."""
    ratios = []
    saved = Decimal(0)
    naive_total = Decimal(0)
    naive_misses = 0
    for seed in seeds:
        u = make_universe(3, n_assets, seed)
        s = make_strategy(u)
        holdings, prices = make_portfolio(u, wallets, seed)
        pf = Portfolio.build(holdings, prices)
        plan = make_plan(pf, validate_all(s, u), s, u)
        naive_violation = float(plan.solver.get("naive_violation_pp", 0.0))  # type: ignore[arg-type]
        assert plan.naive_cost_usd is not None
        if naive_violation > 1e-6:
            naive_misses += 1
            continue
        saved += plan.naive_cost_usd - plan.est_cost_usd
        naive_total += plan.naive_cost_usd
        ratios.append(float(plan.est_cost_usd / plan.naive_cost_usd))
    return {
        "portfolios": len(seeds),
        "compared": len(ratios),
        "naive_missed_bands": naive_misses,
        "mean_cost_ratio": round(statistics.mean(ratios), 4) if ratios else None,
        "saved_pct": round(float(saved / naive_total * 100), 2) if naive_total else None,
    }


def _paired(
    cases: Sequence[tuple[int, int, int]], variants: Sequence[Callable[[], object]]
) -> tuple[list[list[Plan]], list[list[float]]]:
    """Each (tokens, wallets, seed) portfolio of 3 chains planned once under each variant (a
    function that sets it up), in order: the plans and wall times, per variant."""
    plans: list[list[Plan]] = [[] for _ in variants]
    times: list[list[float]] = [[] for _ in variants]
    for n_assets, wallets, seed in cases:
        u = make_universe(3, n_assets, seed)
        s = make_strategy(u)
        t = validate_all(s, u)
        pf = Portfolio.build(*make_portfolio(u, wallets, seed))
        for k, setup in enumerate(variants):
            setup()
            start = time.perf_counter()
            plans[k].append(make_plan(pf, t, s, u, force=True))
            times[k].append(time.perf_counter() - start)
    return plans, times


def _ratios(plans: Sequence[Plan], against: Sequence[Plan]) -> list[float]:
    return [float(a.est_cost_usd / b.est_cost_usd) for a, b in zip(plans, against, strict=True)]


def reselection() -> dict[str, object]:
    """Gas-heavy portfolios just above the exact path's size (3 chains x 25-40 tokens x 2-4
    wallets): the decomposed plan with its swaps reselected by the MILP against without
    (``aggregate._RESELECT_GAS``), cost and time."""
    cases = [(25, 3, 1), (30, 3, 0), (30, 3, 1), (30, 4, 1), (35, 2, 1), (40, 3, 0), (40, 3, 1)]
    share = aggregate._RESELECT_GAS
    try:
        (spread, with_plans), (without_s, with_s) = _paired(
            cases,
            [
                lambda: setattr(aggregate, "_RESELECT_GAS", float("inf")),
                lambda: setattr(aggregate, "_RESELECT_GAS", share),
            ],
        )
    finally:
        aggregate._RESELECT_GAS = share
    ratios = _ratios(with_plans, spread)
    return {
        "portfolios": len(cases),
        "reselected": sum("reselected" in str(p.solver.get("status")) for p in with_plans),
        "mean_cost_ratio": round(statistics.mean(ratios), 4),
        "min_cost_ratio": round(min(ratios), 4),
        "median_s": round(statistics.median(with_s), 2),
        "median_s_without": round(statistics.median(without_s), 2),
    }


def mid_size() -> dict[str, object]:
    """Portfolios above the exact path's size without tax or pair pools (3 chains x 12-25
    tokens x 2-4 wallets, ~480-930 candidate swaps): the decomposed plan made now against
    the exact MILP's path (``optimise.POOLED_EXACT_MAX_SWAPS`` raised for it; from
    ``DECOMPOSED_BESIDE`` it keeps the better of its MILP and the decomposed plan), cost and
    time."""
    cases = [(12, 4, 1), (15, 3, 2), (20, 2, 0), (25, 2, 0), (20, 3, 0), (15, 4, 0)]
    limit = optimise.POOLED_EXACT_MAX_SWAPS
    try:
        (now, exact), (now_s, exact_s) = _paired(
            cases,
            [
                lambda: setattr(optimise, "POOLED_EXACT_MAX_SWAPS", limit),
                lambda: setattr(optimise, "POOLED_EXACT_MAX_SWAPS", optimise.EXACT_MAX_SWAPS),
            ],
        )
    finally:
        optimise.POOLED_EXACT_MAX_SWAPS = limit
    assert all(p.solver["method"] == "decomposed" for p in now), [p.solver for p in now]
    ratios = _ratios(now, exact)
    return {
        "portfolios": len(cases),
        "mean_cost_ratio": round(statistics.mean(ratios), 4),
        "max_cost_ratio": round(max(ratios), 4),
        "median_s": round(statistics.median(now_s), 2),
        "max_s": round(max(now_s), 2),
        "median_s_exact": round(statistics.median(exact_s), 2),
        "max_s_exact": round(max(exact_s), 2),
    }


def mip_start() -> dict[str, object]:
    """The exact path from ``DECOMPOSED_BESIDE`` candidate swaps (3 chains x 8-10 tokens x 3
    wallets, ~150-300, the seeds in order): its MILP begun from the decomposed plan against
    the same MILP from nothing (``Builder.solve`` given no start), cost and time."""
    cases = [(8, 3, seed) for seed in range(10, 14)] + [(10, 3, 10), (10, 3, 11), (10, 3, 13)]
    cases += [(9, 3, seed) for seed in range(10, 13)]
    started_solve = lp.Builder.solve

    def from_nothing(
        self: lp.Builder, integer: bool, options: Any = None, start: Any = None
    ) -> Any:
        return started_solve(self, integer, options)

    try:
        (started, plain), (with_s, without_s) = _paired(
            cases,
            [
                lambda: setattr(lp.Builder, "solve", started_solve),
                lambda: setattr(lp.Builder, "solve", from_nothing),
            ],
        )
    finally:
        lp.Builder.solve = started_solve  # type: ignore[method-assign]
    ratios = _ratios(started, plain)
    return {
        "portfolios": len(cases),
        "mean_cost_ratio": round(statistics.mean(ratios), 4),
        "max_cost_ratio": round(max(ratios), 4),
        "total_s": round(sum(with_s), 2),
        "total_s_without": round(sum(without_s), 2),
        "max_s": round(max(with_s), 2),
        "max_s_without": round(max(without_s), 2),
    }


def main() -> None:
    small = time_plan(50, 10, range(3), repeats=5)
    large = time_plan(500, 10, range(2), repeats=2)
    cost = savings(20, 3, range(20))
    cost_50 = savings(50, 10, range(5))
    sizes = {n: dense(n) for n in (50, 150, 500, 1500)}
    resel = reselection()
    mid = mid_size()
    started = mip_start()
    for name, r, target in (("3 x 50 x 10 ", small, 50), ("3 x 500 x 10", large, 1000)):
        print(
            f"{name}: median {r['median_ms']} ms wall ({r['cpu_median_ms']} ms CPU), max "
            f"{r['max_ms']} ms; {r['positions']} positions, {r['trades']} trades; "
            f"target < {target} ms"
        )
    for d in sizes.values():
        print(
            f"dense {d['positions']:>6} positions: {d['wall_s']} s wall, {d['cpu_s']} s CPU "
            f"(best of 3; first run {d['first_wall_s']} s wall), "
            f"{d['method']} (gap {d['gap']}), {d['trades']} trades, cost {d['cost_usd']} USD "
            f"(naive {d['naive_cost_usd']}), in bands: {d['in_bands']} "
            f"(max drift after {d['after_max_drift_pp']} pp)"
        )
    growth = {
        f"{a}->{b}": round(float(sizes[b]["cpu_s"]) / max(float(sizes[a]["cpu_s"]), 1e-9), 1)  # type: ignore[arg-type]
        for a, b in ((50, 500), (150, 1500))
    }
    wall_growth = {
        f"{a}->{b}": round(float(sizes[b]["wall_s"]) / max(float(sizes[a]["wall_s"]), 1e-9), 1)  # type: ignore[arg-type]
        for a, b in ((50, 500), (150, 1500))
    }
    print(
        f"growth per 10x positions (1.5k->15k, 4.5k->45k): CPU {list(growth.values())}, wall "
        f"{list(wall_growth.values())} (target <= 5); exact MILP up to "
        f"{optimise.POOLED_EXACT_MAX_SWAPS} candidate swaps ({optimise.EXACT_MAX_SWAPS} with "
        "tax or pair pools), decomposed above"
    )
    print(
        f"mid-size (3 x 12-25 x 2-4, ~480-930 candidate swaps): decomposed plan "
        f"{mid['mean_cost_ratio']}x the exact path's cost (at most {mid['max_cost_ratio']}x), "
        f"median {mid['median_s']} s (max {mid['max_s']}) against the exact path's "
        f"{mid['median_s_exact']} s (max {mid['max_s_exact']})"
    )
    print(
        f"exact path, 150-300 candidate swaps ({started['portfolios']} portfolios): the MILP "
        f"begun from the decomposed plan {started['total_s']} s in all (max "
        f"{started['max_s']}) against {started['total_s_without']} s (max "
        f"{started['max_s_without']}) from nothing, cost {started['mean_cost_ratio']}x (at most "
        f"{started['max_cost_ratio']}x)"
    )
    print(
        f"gas-heavy decomposed plans (3 x 25-40 x 2-4): {resel['reselected']} of "
        f"{resel['portfolios']} reselected by the MILP, cost {resel['mean_cost_ratio']}x "
        f"(best {resel['min_cost_ratio']}x) of the plan without, median {resel['median_s']} s "
        f"(without {resel['median_s_without']} s)"
    )
    for name, c in (("3 x 20 x 3", cost), ("3 x 50 x 10", cost_50)):
        print(
            f"cost vs naive, {name}: {c['compared']} of {c['portfolios']} portfolios "
            f"comparable, mean cost ratio {c['mean_cost_ratio']}, saved {c['saved_pct']}% "
            f"(naive plan missed the bands on {c['naive_missed_bands']})"
        )
    print(
        json.dumps(
            {
                "small_median_ms": small["median_ms"],
                "small_max_ms": small["max_ms"],
                "small_cpu_median_ms": small["cpu_median_ms"],
                "small_positions": small["positions"],
                "small_trades": small["trades"],
                "large_median_ms": large["median_ms"],
                "large_max_ms": large["max_ms"],
                "large_cpu_median_ms": large["cpu_median_ms"],
                "large_positions": large["positions"],
                "large_trades": large["trades"],
                "cost_ratio_vs_naive_20x3": cost["mean_cost_ratio"],
                "saved_pct_vs_naive_20x3": cost["saved_pct"],
                "compared_20x3": cost["compared"],
                "cost_ratio_vs_naive_50x10": cost_50["mean_cost_ratio"],
                "saved_pct_vs_naive_50x10": cost_50["saved_pct"],
                "compared_50x10": cost_50["compared"],
                **{
                    f"dense_{d['positions']}_{k}": v
                    for d in sizes.values()
                    for k, v in d.items()
                    if k != "positions"
                },
                "dense_cpu_growth_per_10x": list(growth.values()),
                "dense_wall_growth_per_10x": list(wall_growth.values()),
                "exact_max_swaps": optimise.EXACT_MAX_SWAPS,
                "pooled_exact_max_swaps": optimise.POOLED_EXACT_MAX_SWAPS,
                **{f"mid_size_{k}": v for k, v in mid.items()},
                **{f"mip_start_{k}": v for k, v in started.items()},
                **{f"reselection_{k}": v for k, v in resel.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
