"""``rebalancer backtest --prices CSV``: replay a price history under the configured rules.

Compares strategies (threshold bands, calendar, volatility-scaled bands, buy-and-hold) with the
planner's triggers and the chain's cost model; ``--sweep`` tunes the band width and check
interval with an in-sample / out-of-sample split. The modelling choices and the ``--json`` keys
are in ``rebalancer.reports.backtest``; the CSV format in ``rebalancer.reports.prices_csv``.

Without a config file at the default path, the default strategy is used (and said so), so a
first try needs only a CSV: ``rebalancer backtest --prices examples/prices.csv``.
"""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from rebalancer.core.errors import ConfigError
from rebalancer.output import progress_unless

STRATEGY_NAMES = ("threshold", "calendar", "volatility", "buy-and-hold")
DEFAULT_CONFIG = "rebalancer.toml"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags (kept here so the command owns them; the CLI imports this lazily)."""
    p.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help="portfolio config for targets, bands and costs (default: rebalancer.toml; "
        "without it the default strategy)",
    )
    p.add_argument(
        "--prices",
        required=True,
        metavar="CSV",
        help="daily prices: date,symbol,price_usd (see examples/prices.csv)",
    )
    p.add_argument(
        "--strategy",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"strategies to compare: {', '.join(STRATEGY_NAMES)} (default: all)",
    )
    p.add_argument(
        "--capital", default="100000", metavar="USD", help="starting value (default 100000)"
    )
    p.add_argument("--chain", metavar="NAME", help="whose cost model trades (default: ethereum)")
    p.add_argument("--band", metavar="PP", help="band width in points for threshold/volatility")
    p.add_argument("--every", metavar="DAYS", help="calendar interval in days (default 30)")
    p.add_argument(
        "--check-every",
        type=int,
        default=1,
        metavar="DAYS",
        help="threshold rules look at the drift every N days (default 1)",
    )
    p.add_argument(
        "--max-gap",
        type=int,
        default=3,
        metavar="DAYS",
        help="missing days filled with the last price before a gap is an error (default 3)",
    )
    p.add_argument(
        "--risk-free",
        default="0",
        metavar="PCT",
        help="annual risk-free rate in %% for Sharpe and Sortino (default 0)",
    )
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    p.add_argument("--png", metavar="DIR", help="write the charts as PNG files")
    p.add_argument(
        "--sweep",
        action="store_true",
        help="try a grid of band widths and check intervals, in and out of sample",
    )
    p.add_argument(
        "--bands", default="1,2,3,5,7.5,10", metavar="LIST", help="sweep: band widths (points)"
    )
    p.add_argument(
        "--intervals", default="1,7,30", metavar="LIST", help="sweep: check intervals (days)"
    )
    p.add_argument(
        "--split",
        type=float,
        default=0.7,
        metavar="FRACTION",
        help="sweep: share of the history used in sample (default 0.7)",
    )


def _decimal(text: str, flag: str, *, positive: bool = True) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{flag} = {text!r}: not a number") from None
    if not value.is_finite() or (value <= 0 if positive else value < 0):
        raise ConfigError(f"{flag} = {text!r}: must be a {'positive' if positive else ''} number")
    return value


def _load(args: argparse.Namespace) -> tuple[Any, Any, list[str]]:
    """(strategy, registry, configured chains): the config's, or the defaults without one."""
    from rebalancer.chains.registry import Registry
    from rebalancer.config import load_config
    from rebalancer.output import warn
    from rebalancer.planner.config import StrategyConfig

    if args.config == DEFAULT_CONFIG and not Path(args.config).exists():
        if not args.json:
            warn(f"no {DEFAULT_CONFIG} here: using the default strategy (pass -c FILE)")
        return StrategyConfig(), Registry.load(), []
    config, registry = load_config(args.config)
    return config.strategy, registry, list(config.chains)


def run(args: argparse.Namespace) -> int:
    from rebalancer.planner.model import validate_all
    from rebalancer.reports import backtest as bt
    from rebalancer.reports.prices_csv import parse_prices_csv

    strategy, registry, chains = _load(args)
    targets = validate_all(strategy, registry)
    capital = _decimal(args.capital, "--capital")
    risk_free = float(_decimal(args.risk_free, "--risk-free", positive=False)) / 100
    if args.check_every < 1:
        raise ConfigError(f"--check-every = {args.check_every}: must be at least 1")
    if args.max_gap < 0:
        raise ConfigError(f"--max-gap = {args.max_gap}: must be 0 or more")
    names = [n for part in args.strategy or STRATEGY_NAMES for n in part.split(",") if n]
    chain = args.chain or ("ethereum" if not chains or "ethereum" in chains else chains[0])
    if chain not in registry.chains:
        raise ConfigError(
            f"--chain = {chain!r}: unknown chain (known: {', '.join(registry.chains)})"
        )
    native = registry.chains[chain].native_asset

    path = Path(args.prices)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"prices file {args.prices!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"prices file {args.prices!r}: {exc}") from None
    table = parse_prices_csv(text, path.name, known_assets=registry.assets)
    costs = bt.Costs.of(strategy, chain, native)
    held = [
        a
        for r in targets.rows
        if r.leaf and r.target is not None and r.target > 0
        for a in sorted(r.assets)
        if a in table.rows
    ]
    symbols = list(dict.fromkeys(held))
    if costs.native is not None and costs.native not in symbols and costs.native in table.rows:
        symbols.append(costs.native)
    book = bt.Book.build(targets, symbols)
    history = table.history(symbols, args.max_gap)
    rules = bt.make_rules(
        strategy,
        names,
        band_pp=None if args.band is None else _decimal(args.band, "--band"),
        calendar_days=None if args.every is None else _decimal(args.every, "--every"),
        check_every=args.check_every,
    )
    cap = float(capital)
    say = progress_unless(args.json)
    say(f"backtest: {len(history)} day(s) of {', '.join(history.symbols)}")
    results = []
    for i, r in enumerate(rules, 1):
        say(f"backtest: strategy {i}/{len(rules)} {r.name}")
        results.append(bt.simulate(history, book, r, costs, cap, risk_free))
    swept = None
    if args.sweep:
        bands = [_decimal(b.strip(), "--bands") for b in args.bands.split(",") if b.strip()]
        intervals = [int(_decimal(i.strip(), "--intervals")) for i in args.intervals.split(",")]
        say(
            f"backtest: sweeping {len(bands)} band(s) x {len(intervals)} interval(s) "
            "in and out of sample"
        )
        swept = bt.sweep(
            history,
            book,
            strategy,
            costs,
            bands=bands,
            intervals=intervals,
            split=args.split,
            capital=cap,
            risk_free=risk_free,
        )
    doc = {
        "prices": str(path),
        "start": history.dates[0].isoformat(),
        "end": history.dates[-1].isoformat(),
        "days": len(history),
        "assets": list(history.symbols),
        "capital_usd": str(capital),
        "chain": chain,
        "filled_prices": history.filled,
        "strategies": [r.as_dict() for r in results],
        "sweep": None if swept is None else bt.sweep_json(swept),
    }
    if args.html or args.png:
        say("backtest: drawing the charts")
    charts = _charts(book, strategy, results, swept) if args.html or args.png else []
    if args.png:
        from rebalancer.reports.html import write_pngs

        write_pngs(args.png, charts)
    if args.html:
        _html(args.html, doc, results, swept, charts)
    if args.json:
        from rebalancer.output import emit_json

        emit_json(doc)
    else:
        print(_text(doc, results, swept, costs))
        if args.html:
            print(f"\nHTML report: {args.html}")
        if args.png:
            print(f"charts: {args.png}/")
    return 0


def _row_table(results: list[Any]) -> tuple[list[str], list[list[str]]]:
    from rebalancer.reports.metrics import fmt_pct, fmt_ratio

    headers = [
        "strategy",
        "rule",
        "final USD",
        "return",
        "annual",
        "volatility",
        "Sharpe",
        "Sortino",
        "max DD",
        "rebal.",
        "swaps",
        "turnover/yr",
        "costs USD",
    ]
    rows = []
    for r in results:
        s = r.stats
        rows.append(
            [
                r.rule.name,
                r.rule.label,
                f"{r.values[-1]:,.0f}",
                fmt_pct(s.total_return),
                fmt_pct(s.annualised_return),
                fmt_pct(s.volatility),
                fmt_ratio(s.sharpe),
                fmt_ratio(s.sortino),
                fmt_pct(s.max_drawdown),
                str(len(r.events)),
                str(sum(e.swaps for e in r.events)),
                fmt_pct(r.turnover_annual, 0),
                f"{r.cost_usd:,.2f}",
            ]
        )
    return headers, rows


def _sweep_rows(s: Any) -> tuple[list[str], list[list[str]]]:
    from rebalancer.reports.metrics import fmt_pct, fmt_ratio

    headers = [
        "band pp",
        "check days",
        "IS Sharpe",
        "IS return",
        "IS costs",
        "OOS Sharpe",
        "OOS return",
        "OOS costs",
    ]
    rows = []
    for p in s.points:
        mark = " *" if p is s.best else ""
        rows.append(
            [
                f"{p.band_pp.normalize():f}{mark}",
                str(p.check_every),
                fmt_ratio(p.in_sample.stats.sharpe),
                fmt_pct(p.in_sample.stats.total_return),
                f"{p.in_sample.cost_usd:,.0f}",
                fmt_ratio(p.out_sample.stats.sharpe),
                fmt_pct(p.out_sample.stats.total_return),
                f"{p.out_sample.cost_usd:,.0f}",
            ]
        )
    rows.append(
        [
            "buy-and-hold",
            "-",
            fmt_ratio(s.hold_in.stats.sharpe),
            fmt_pct(s.hold_in.stats.total_return),
            "0",
            fmt_ratio(s.hold_out.stats.sharpe),
            fmt_pct(s.hold_out.stats.total_return),
            "0",
        ]
    )
    return headers, rows


def _costs_line(costs: Any) -> str:
    m = costs.model
    gas = (
        f"{costs.gas_usd.normalize():f} USD"
        if costs.gas_usd is not None
        else f"{m.gas_per_swap_native.normalize():f} {costs.native}"
    )
    return (
        f"costs of {costs.chain}: {m.fee_bps.normalize():f} bps fee, gas {gas} per swap, "
        f"depth {m.depth_usd:,.0f} USD, min trade {costs.min_trade_usd:g} USD"
    )


def _text(doc: dict[str, Any], results: list[Any], swept: Any, costs: Any) -> str:
    from rebalancer.output import table

    lines = [
        f"backtest of {doc['prices']}: {doc['start']} to {doc['end']} ({doc['days']} days, "
        f"{', '.join(doc['assets'])}), {float(doc['capital_usd']):,.0f} USD on target at the "
        "start",
        _costs_line(costs)
        + (
            f"; {doc['filled_prices']} missing prices forward-filled"
            if doc["filled_prices"]
            else ""
        ),
        "",
    ]
    headers, rows = _row_table(results)
    lines.append(table(headers, rows, right=tuple(range(2, 13))))
    lines.append(
        "\nreturns after costs; annualised over 365 days; Sharpe and Sortino at the risk-free "
        f"rate {results[0].stats.risk_free * 100:g}%"
    )
    if swept is not None:
        headers, rows = _sweep_rows(swept)
        b = swept.best
        lines += [
            "",
            f"sweep: threshold rules, in sample to {swept.split_date} (exclusive), "
            "out of sample from it, each part starting on target",
            table(headers, rows, right=tuple(range(2, 8))),
            "",
            f"best in sample (by Sharpe after costs): band {b.band_pp.normalize():f} pp checked "
            f"every {b.check_every} day(s); out of sample it ranks {swept.best_out_rank} of "
            f"{len(swept.points)}",
            f"warning: {swept.warning}",
        ]
    return "\n".join(lines)


def _charts(book: Any, strategy: Any, results: list[Any], swept: Any) -> list[tuple[str, bytes]]:
    import numpy as np

    from rebalancer.reports import charts

    dates = list(results[0].dates)
    out = [
        (
            "value",
            charts.value(
                dates,
                {r.rule.name: r.values for r in results},
                "Portfolio value by strategy (after costs)",
            ),
        ),
        (
            "drift",
            charts.drift(
                dates,
                {r.rule.name: np.max(np.abs(r.drift_pp), axis=1) for r in results},
                float(strategy.band_pp),
                "Largest drift of any row",
                "max |drift| (percentage points)",
                absolute=True,
            ),
        ),
    ]
    leaf_idx = [book.row_keys.index(k) for k in book.leaf_keys]
    leaf_idx = [i for i in leaf_idx if book.row_target[i] > 0]
    names = [book.row_keys[i].split(":", 1)[1] for i in leaf_idx]
    targets = [float(book.row_target[i]) * 100 for i in leaf_idx]
    bands = []
    by_key = {f"{r.kind}:{r.name}": r.target for r in book.targets.rows}
    for i in leaf_idx:
        bands.append(float(strategy.band_for(by_key[book.row_keys[i]])))
    out.append(
        (
            "allocation",
            charts.allocation(
                names,
                targets,
                bands,
                {r.rule.name: [float(r.final_weights[i]) * 100 for i in leaf_idx] for r in results},
                "Allocation at the end against target and bands",
            ),
        )
    )
    if swept is not None:
        bands_s = sorted({p.band_pp for p in swept.points})
        every_s = sorted({p.check_every for p in swept.points})
        cell = {(p.band_pp, p.check_every): p for p in swept.points}
        for part in ("in_sample", "out_sample"):
            grid = [[getattr(cell[(b, k)], part).stats.sharpe for k in every_s] for b in bands_s]
            out.append(
                (
                    f"sweep_{part}",
                    charts.heatmap(
                        [f"{b.normalize():f}" for b in bands_s],
                        [str(k) for k in every_s],
                        grid,
                        f"Sharpe after costs, {part.replace('_', ' ')}",
                        "check every (days)",
                        "band (pp)",
                    ),
                )
            )
    return out


def _html(
    path: str, doc: dict[str, Any], results: list[Any], swept: Any, charts: list[tuple[str, bytes]]
) -> None:
    from rebalancer.reports.html import Page

    page = Page(
        "Backtest of the rebalancing rules",
        f"{doc['prices']}: {doc['start']} to {doc['end']}, {doc['days']} days, "
        f"{', '.join(doc['assets'])}; {float(doc['capital_usd']):,.0f} USD; costs of "
        f"{doc['chain']}",
    )
    page.heading("Strategies")
    headers, rows = _row_table(results)
    page.table(headers, rows, right=range(2, 13))
    page.paragraph(
        "Returns are after fees, price impact and gas; annualised over 365 days; Sharpe and "
        f"Sortino at an annual risk-free rate of {results[0].stats.risk_free * 100:g}%."
    )
    images = dict(charts)
    page.heading("Value")
    page.image(images["value"], "portfolio value by strategy")
    page.heading("Drift")
    page.image(images["drift"], "largest drift by strategy")
    page.heading("Allocation")
    page.image(images["allocation"], "allocation at the end against target")
    if swept is not None:
        page.heading("Sweep: band width and check interval")
        headers, rows = _sweep_rows(swept)
        page.table(headers, rows, right=range(2, 8))
        page.paragraph(f"Split at {swept.split_date}; * marks the best in sample.")
        page.paragraph(swept.warning, "warning")
        page.image(images["sweep_in_sample"], "in-sample Sharpe grid")
        page.image(images["sweep_out_sample"], "out-of-sample Sharpe grid")
    page.write(path)
