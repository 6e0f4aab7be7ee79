"""``rebalancer demo --days N``: the living demo, months of a moving market in a minute or two.

Starts the local worlds, then walks a price path (``--prices CSV``, a seeded random walk with
``--seed``, or the market's story: a rally, a sharp drop, a quiet stretch): at each step the
market (``rebalancer.localnet.market``) moves every chain's clock, oracle and pool to the step's
prices, and every ``--check-every`` (6 simulated hours) one watch check runs on the chains'
clock: the same code path as ``watch --execute`` (recover, fresh balances, triggers, plan,
simulate, sign, send, journal), in this one event loop with one client and Services. At the end:
each rebalance, the performance against buy-and-hold, and the backtest of the same path and
rules, run in-process from the same starting portfolio.

A world that dies mid-run ends the demo with exit 4 (the journal is consistent: every sent
transaction is journalled before it is sent); a rerun continues from the chains' clock, skipping
the steps already played. ``--json``: the last stdout line is one object (keys in CLI.md).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rebalancer.core.errors import ChainError, ConfigError, RebalancerError, RefusedError
from rebalancer.output import progress, table, warn

_PP = Decimal("0.01")
Step = tuple[datetime, dict[str, Decimal]]


@dataclass
class Rebalance:
    """One check that traded: when, why, what, and the drift and value around it."""

    at: datetime
    triggers: list[str]
    trades: list[dict[str, Any]]
    before_max_drift_pp: Decimal
    after_max_drift_pp: Decimal
    cost_usd: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "triggers": self.triggers,
            "trades": self.trades,
            "before_max_drift_pp": str(self.before_max_drift_pp.quantize(_PP)),
            "after_max_drift_pp": str(self.after_max_drift_pp.quantize(_PP)),
            "cost_usd": str(self.cost_usd.quantize(_PP)),
        }


@dataclass
class Run:
    """What the living demo saw, check by check."""

    checks: int = 0
    skipped: int = 0
    """Steps a rerun found already played (the chains' clock was past them)."""
    at: list[datetime] = field(default_factory=list)
    values: list[Decimal] = field(default_factory=list)
    """The portfolio's value after each check (at that check's prices)."""
    start_value: Decimal | None = None
    start_units: dict[str, Decimal] = field(default_factory=dict)
    """Units per asset before the first check (buy-and-hold keeps them)."""
    last_prices: dict[str, Decimal] = field(default_factory=dict)
    """The path's prices at the last step played."""
    last_usd: dict[str, Decimal] = field(default_factory=dict)
    """Every held asset's price at the last check, as the tool priced it (stablecoins too)."""
    rebalances: list[Rebalance] = field(default_factory=list)
    after_max_drift_pp: Decimal = Decimal(0)
    refusals: list[str] = field(default_factory=list)
    market_s: float = 0.0
    """Wall seconds in the market's steps."""
    tool_s: float = 0.0
    """Wall seconds in the checks (and the re-read after a rebalance)."""
    quiet_checks: int = 0
    quiet_s: float = 0.0
    """Checks with nothing to do, and the wall seconds they took."""


def parse_check_every(text: str) -> timedelta:
    from rebalancer.commands.watch import parse_interval

    try:
        seconds = parse_interval(text)
    except ConfigError:
        raise ConfigError(
            f"--check-every {text!r}: use a number with s, m, h or d (e.g. 6h)"
        ) from None
    if seconds <= 0:
        raise ConfigError(f"--check-every {text!r}: must be above 0")
    return timedelta(seconds=seconds)


def price_path(args: argparse.Namespace, days: int) -> Any:
    """The ``PricePath`` to play: ``--prices CSV``, ``--seed S`` or the story, cut to ``days``
    (a bad row of a CSV is one line naming the row, before anything starts)."""
    from rebalancer.localnet import market  # NOTE: lazy on purpose: product code never needs it

    if args.prices is not None:
        path = market.load_path(Path(args.prices), timedelta(hours=6))
    elif args.seed is not None:
        path = market.random_walk(days=days, seed=args.seed)
    else:
        path = market.default_story(days=days)
    path = path.head(days)
    if len(path) < 2:
        raise ConfigError(f"{path.source}: the price path needs at least two steps")
    return path


def every(steps: Sequence[Step], interval: timedelta) -> int:
    """How many path steps one check interval spans (at least 1)."""
    step = steps[1][0] - steps[0][0]
    if step <= timedelta(0):
        raise ConfigError("the price path's dates must increase")
    return max(1, round(interval / step))


def _units(portfolio: Any) -> dict[str, Decimal]:
    value = portfolio.value_by_asset()
    return {a: v / portfolio.prices[a] for a, v in value.items() if portfolio.prices.get(a, 0) > 0}


async def play(
    config: Any,
    registry: Any,
    market: Any,
    steps: Sequence[Step],
    k: int,
    say: Any,
) -> Run:
    """Walk ``steps`` with the open market, one watch check every ``k`` steps, in this event
    loop with one client and Services; steps the chains' clock is already past are skipped
    (a rerun continues where the last run stopped)."""
    from rebalancer.journal import Journal
    from rebalancer.services import journal_path

    run = Run()
    reached = await market.now()
    # NOTE: one connection held for the whole walk: the checks' own connections then close
    # without a WAL checkpoint each (the last connection to close checkpoints)
    keeper = Journal(journal_path(config, os.environ), durable=False)
    try:
        await _walk(config, registry, market, steps, k, say, run, reached)
    finally:
        keeper.close()
    return run


async def _walk(
    config: Any,
    registry: Any,
    market: Any,
    steps: Sequence[Step],
    k: int,
    say: Any,
    run: Run,
    reached: datetime | None,
) -> None:
    from rebalancer.commands.drift import live_inputs
    from rebalancer.commands.execution import check
    from rebalancer.runs import open_services, recovered_journal

    async with open_services(config, registry) as services:
        for i, (at, prices) in enumerate(steps):
            if reached is not None and at <= reached:
                run.skipped += 1
                continue
            t0 = time.perf_counter()
            try:
                await market.step(at, prices)
            except RebalancerError:
                raise
            except Exception as exc:  # NOTE: a world that died: say which step, exit 4
                raise ChainError(
                    f"the local market stopped at {at.isoformat()} (step {i + 1} of "
                    f"{len(steps)}): {type(exc).__name__}: {exc}; the journal is "
                    "consistent: run the demo again to continue from the chains' clock"
                ) from exc
            t1 = time.perf_counter()
            run.market_s += t1 - t0
            run.last_prices = prices
            if i % k:
                continue
            services.config = config  # NOTE: each check prices afresh (no stale [prices])
            try:
                async with recovered_journal(services, lambda _m: None) as (journal, rec):
                    report, _doc, inputs = await check(
                        services,
                        journal,
                        rec,
                        lambda _m: None,
                        execute_trades=True,
                        yes=True,
                        lazy=True,
                    )
                    confirmed = [r for r in report.results if r.status == "confirmed"]
                    after = inputs
                    if confirmed:
                        services.config = config
                        after = await live_inputs(services, record=False, lazy=True)
            except RefusedError as exc:
                # NOTE: a refusal ends this check, not the demo (as in watch)
                run.refusals.append(f"{at.isoformat()}: {exc.message}")
                warn(f"{at:%Y-%m-%d %H:%M}: {exc.message}")
                run.tool_s += time.perf_counter() - t1
                continue
            run.checks += 1
            if run.start_value is None:
                run.start_value = inputs.portfolio.total
                run.start_units = _units(inputs.portfolio)
            run.at.append(at)
            run.values.append(after.portfolio.total)
            run.last_usd = dict(after.portfolio.prices)
            run.after_max_drift_pp = after.drift().max_drift_pp
            if confirmed:
                before = inputs.drift()
                fired = [t.name for t in before.triggers if t.fired]
                rb = Rebalance(
                    at=at,
                    triggers=fired,
                    trades=[
                        {
                            "chain": r.chain,
                            "sell": _symbol(registry, r.sell),
                            "buy": _symbol(registry, r.buy),
                            "status": r.status,
                            "tx": r.tx,
                        }
                        for r in confirmed
                    ],
                    before_max_drift_pp=before.max_drift_pp,
                    after_max_drift_pp=run.after_max_drift_pp,
                    cost_usd=inputs.portfolio.total - after.portfolio.total,
                )
                run.rebalances.append(rb)
                say(
                    f"{at:%Y-%m-%d %H:%M}: rebalanced ({', '.join(fired) or 'forced'}): "
                    f"{len(confirmed)} trade(s), drift {rb.before_max_drift_pp:.2f} -> "
                    f"{rb.after_max_drift_pp:.2f} pp, cost ${rb.cost_usd:.2f}"
                )
            elif run.checks % 20 == 1:
                say(
                    f"{at:%Y-%m-%d %H:%M}: check {run.checks}, max drift "
                    f"{run.after_max_drift_pp:.2f} pp, ${after.portfolio.total:,.0f}"
                )
            spent = time.perf_counter() - t1
            run.tool_s += spent
            if not report.results:
                run.quiet_checks += 1
                run.quiet_s += spent


def _symbol(registry: Any, token_id: str) -> str:
    token = registry.by_id(token_id)
    return token.symbol if token is not None else token_id


def backtest_of(
    config: Any, registry: Any, steps: Sequence[Step], k: int, run: Run
) -> tuple[Any, float]:
    """The backtest of the same path and rules from the same starting portfolio: the result
    and its TWR (from the starting value, so the first rebalance's cost counts, as live)."""
    import numpy as np

    from rebalancer.localnet.market import STABLES
    from rebalancer.planner.model import validate_all
    from rebalancer.reports.backtest import Book, Costs, Rule, simulate
    from rebalancer.reports.prices_csv import PriceHistory

    strategy = config.strategy
    targets = validate_all(strategy, registry)
    wanted = {a for r in targets.rows if r.target for a in r.assets}
    # NOTE: the market keeps stablecoins at 1 unless the path prices them
    fixed = {a: Decimal(1) for a in STABLES if a in wanted or a in run.start_units}
    priced = [{**fixed, **p} for _at, p in steps]
    symbols = sorted(a for a in priced[0] if a in wanted or a in run.start_units)
    grid = np.array([[float(p[s]) for s in symbols] for p in priced], dtype=float)
    step_days = (steps[1][0] - steps[0][0]) / timedelta(days=1)
    history = PriceHistory(tuple(at for at, _p in steps), tuple(symbols), grid, 0, step_days)
    book = Book.build(targets, symbols)
    units = [float(run.start_units.get(s, Decimal(0))) for s in symbols]
    start_usd = [u * grid[0, j] for j, u in enumerate(units)]
    total = sum(start_usd)
    start = np.array(start_usd) / total if total > 0 else None
    capital = float(run.start_value or Decimal(total or 100_000))
    rule = Rule(
        "live rules",
        strategy.model_copy(
            update={"triggers": strategy.triggers.model_copy(update={"momentum": None})}
        ),
        k,
        "the demo config's triggers",
    )
    chain = "ethereum" if "ethereum" in config.chains else next(iter(config.chains))
    info = registry.chains.get(chain)
    costs = Costs.of(strategy, chain, info.native_asset if info is not None else None)
    result = simulate(history, book, rule, costs, capital, 0.0, start, near_edge=True)
    return result, float(result.values[-1]) / capital - 1.0


def summary(config: Any, run: Run, bt: Any, bt_twr: float, interval: timedelta) -> dict[str, Any]:
    from rebalancer.reports.metrics import summarise

    start = run.start_value or Decimal(0)
    end = run.values[-1] if run.values else start
    twr = (end / start - 1) * 100 if start > 0 else Decimal(0)
    hold_end = sum(
        (u * run.last_usd.get(a, Decimal(0)) for a, u in run.start_units.items()), Decimal(0)
    )
    hold = (hold_end / start - 1) * 100 if start > 0 else Decimal(0)
    per_year = 365 * 86400 / interval.total_seconds()
    series = [float(start), *(float(v) for v in run.values)]
    returns = [b / a - 1 for a, b in itertools.pairwise(series) if a > 0]
    stats = summarise(returns, per_year)
    return {
        "twr": twr,
        "hold": hold,
        "stats": stats,
        "cost_usd": sum((r.cost_usd for r in run.rebalances), Decimal(0)),
        "bt_twr": Decimal(repr(bt_twr * 100)),
    }


def document(
    config: Any, steps: Sequence[Step], days: int, run: Run, figures: dict[str, Any], bt: Any
) -> dict[str, Any]:
    first, last = steps[0][1], run.last_prices or steps[-1][1]
    return {
        "days": days,
        "checks": run.checks,
        "rebalances": [r.as_dict() for r in run.rebalances],
        "prices": {a: [f"{first[a]:f}", f"{last.get(a, first[a]):f}"] for a in sorted(first)},
        "after_max_drift_pp": str(run.after_max_drift_pp.quantize(_PP)),
        "band_pp": str(config.strategy.band_pp),
        "twr_pct": str(figures["twr"].quantize(_PP)),
        "buy_and_hold_pct": str(figures["hold"].quantize(_PP)),
        "backtest": {
            "twr_pct": str(figures["bt_twr"].quantize(_PP)),
            "rebalances": [
                {"at": bt.dates[e.day].isoformat(), "triggers": e.trigger.split(",")}
                for e in bt.events
            ],
        },
    }


def text(doc: dict[str, Any], figures: dict[str, Any], bt: Any) -> str:
    from rebalancer.reports.metrics import fmt_pct, fmt_ratio

    lines = [f"\n== the living demo: {doc['days']} simulated days, {doc['checks']} checks"]
    rows = [
        (
            r["at"][:16].replace("T", " "),
            ", ".join(r["triggers"]),
            len(r["trades"]),
            r["before_max_drift_pp"],
            r["after_max_drift_pp"],
            r["cost_usd"],
        )
        for r in doc["rebalances"]
    ]
    if rows:
        lines.append(
            table(
                ["when", "triggers", "trades", "drift before pp", "after pp", "cost $"],
                rows,
                right=(2, 3, 4, 5),
            )
        )
    else:
        lines.append("no rebalance: no trigger fired")
    moves = ", ".join(f"{a} {p[0]} -> {p[1]}" for a, p in doc["prices"].items())
    lines.append(f"\nprices: {moves}")
    s, b = figures["stats"], bt.stats
    lines.append("\n== performance")
    lines.append(
        table(
            ["", "TWR", "volatility", "Sharpe", "max drawdown", "costs $", "rebalances"],
            [
                (
                    "live",
                    f"{doc['twr_pct']}%",
                    fmt_pct(s.volatility),
                    fmt_ratio(s.sharpe),
                    fmt_pct(s.max_drawdown),
                    f"{figures['cost_usd']:.2f}",
                    len(doc["rebalances"]),
                ),
                ("buy and hold", f"{doc['buy_and_hold_pct']}%", "", "", "", "0.00", 0),
                (
                    "backtest",
                    f"{doc['backtest']['twr_pct']}%",
                    fmt_pct(b.volatility),
                    fmt_ratio(b.sharpe),
                    fmt_pct(b.max_drawdown),
                    f"{bt.cost_usd:.2f}",
                    len(bt.events),
                ),
            ],
            right=(1, 2, 3, 4, 5, 6),
        )
    )
    lines.append(
        f"\nmax drift at the end {doc['after_max_drift_pp']} pp (band {doc['band_pp']} pp); "
        "`rebalancer report --html FILE` draws the simulated months"
    )
    return "\n".join(lines)


def _fresh_journal(config: Any, now: datetime | None) -> None:
    """Move aside a journal written on another timeline (runs dated after the chains' clock:
    an earlier living demo on worlds since restarted), so its dates do not block the calendar."""
    from rebalancer.journal import Journal
    from rebalancer.services import journal_path

    path = journal_path(config, os.environ)
    if now is None or not path.exists():
        return
    journal = Journal(path)
    try:
        runs = journal.runs(limit=1)
    finally:
        journal.close()
    if runs and runs[0].started_at > now.timestamp() + 60:
        aside = path.with_name(f"{path.name}.{int(time.time())}.old")
        path.rename(aside)
        for tail in ("-wal", "-shm"):
            extra = Path(str(path) + tail)
            if extra.exists():
                extra.unlink()
        progress(f"the journal {path} was from an earlier run of the worlds: moved to {aside}")


def run(args: argparse.Namespace) -> int:
    from rebalancer.commands.demo import DEMO_ENV, packaged_config
    from rebalancer.config import load_config
    from rebalancer.localnet import manager

    days = int(args.days)
    if days < 1 or days > 3650:
        raise ConfigError(f"--days {days}: use 1 to 3650 simulated days")
    interval = parse_check_every(args.check_every)
    for key, value in DEMO_ENV.items():
        os.environ.setdefault(key, value)
    if args.config is None:
        from rebalancer.services import data_dir

        args.config = str(packaged_config(data_dir(os.environ), "living.toml", "living"))
    config, registry = load_config(args.config)
    path = price_path(args, days)
    k = every(list(path), interval)
    say = progress
    state_dir = manager.default_dir()
    started = time.perf_counter()
    manager.up(state_dir, progress=say)
    try:
        steps, played = asyncio.run(session(config, registry, state_dir, path, k, say))
        bt, bt_twr = backtest_of(config, registry, steps, k, played)
        figures = summary(config, played, bt, bt_twr, interval)
        doc = document(config, steps, days, played, figures, bt)
        took = time.perf_counter() - started
        say(
            f"{played.checks} checks in {took:.1f} s (market {played.market_s:.1f} s, "
            f"tool {played.tool_s:.1f} s)"
        )
        if args.json:
            print(json.dumps(doc), flush=True)
        else:
            print(text(doc, figures, bt))
        return 0
    finally:
        if args.stop:
            say("stopping the local worlds")
            manager.down(state_dir)
        else:
            say("the local worlds keep running: `rebalancer localnet down` stops them")


def placed_start(section: Mapping[str, Any], path: Any, now: datetime) -> datetime | None:
    """Where the manifest's market ``section`` placed ``path`` on the chains' clock, when a run
    of it is still under way at ``now`` (a rerun continues); None: start afresh."""
    from rebalancer.localnet import market as market_mod

    if section.get("path") != path.source or not section.get("start"):
        return None
    start = market_mod.from_iso(str(section["start"]))
    if start + (path.steps[-1][0] - path.start) <= now or start > now:
        return None  # NOTE: that run ended, or another timeline
    return start


async def session(
    config: Any, registry: Any, state_dir: Path, path: Any, k: int, say: Any
) -> tuple[list[Step], Run]:
    """Open the market, place the path on the chains' clock (where an earlier run of the same
    path placed it, so a rerun continues), and play it."""
    from rebalancer.localnet import market as market_mod
    from rebalancer.localnet.manager import read_manifest

    market = await market_mod.Market.open(state_dir)
    try:
        now = await market.now()
        section = (read_manifest(state_dir) or {}).get("market") or {}
        start = placed_start(section, path, now)
        if start is None:
            start = market_mod.start_after(now)
            market.describe(path, start)
            _fresh_journal(config, now)
        else:
            say(f"continuing {path.source} from {now:%Y-%m-%d %H:%M} (the chains' clock)")
        steps = [(at, dict(p)) for at, p in path.shifted(start)]
        say(
            f"the living demo: {path.source}, {len(steps)} steps from {start:%Y-%m-%d %H:%M}, "
            f"a watch check every {k} step(s)"
        )
        return steps, await play(config, registry, market, steps, k, say)
    finally:
        await market.aclose()
