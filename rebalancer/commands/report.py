"""``rebalancer report``: performance from the journal: P&L, returns, risk, costs, charts.

How each figure is made, and the ``--json`` keys: ``rebalancer.reports.tracking``. A journal
that does not exist yet is an empty report, not an error (and is not created).
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebalancer.commands import config_arg
from rebalancer.core.errors import ConfigError

if TYPE_CHECKING:
    from rebalancer.documents.journal import RunRow, SnapshotRow, TradeRow


def add_arguments(p: argparse.ArgumentParser) -> None:
    config_arg(p)
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    p.add_argument("--png", metavar="DIR", help="write the charts as PNG files")
    p.add_argument("--lots", metavar="CSV", help="tax lots (date,asset,amount,cost_basis_usd)")
    p.add_argument(
        "--risk-free",
        default="0",
        metavar="PCT",
        help="annual risk-free rate in %% for Sharpe and Sortino (default 0)",
    )


def _journal_rows(path: Path) -> tuple[list[RunRow], list[TradeRow], list[SnapshotRow]]:
    from rebalancer.journal import Journal

    if not path.exists():
        return [], [], []
    journal = Journal(path)
    try:
        return journal.runs_with_plans(), journal.trades(), journal.snapshots()
    finally:
        journal.close()


def _book(
    imported: list[Any],
    runs: list[RunRow],
    trades: list[TradeRow],
    snapshots: list[SnapshotRow],
    strategy: Any,
    registry: Any,
    now: datetime,
) -> tuple[Any, dict[str, Any], list[Any]]:
    """The lot book of these imported lots (the journal's, or ``--lots CSV`` as an override)
    over the journal's swaps: the imported lots of known basis, the realised gain per asset
    (the figures ``tax`` shows) and the open lots."""
    from decimal import Decimal

    from rebalancer.planner.tax import Lot
    from rebalancer.reports.taxbook import build_book

    book = build_book(imported, runs, trades, snapshots, strategy, registry, now=now)
    realised: dict[str, Decimal] = {}
    for d in book.disposals:
        if d.gain_usd is not None:
            realised[d.asset] = realised.get(d.asset, Decimal(0)) + d.gain_usd
    lots = [
        Lot(x.id, x.acquired, x.asset, x.amount, x.cost_basis_usd)
        for x in imported
        if x.cost_basis_usd is not None
    ]
    return lots, realised, book.open_lots()


def _imported(path: Path) -> list[Any]:
    from rebalancer.journal import Journal

    if not path.exists():
        return []
    journal = Journal(path)
    try:
        return journal.imported_lots()
    finally:
        journal.close()


def run(args: argparse.Namespace) -> int:
    import os
    from decimal import Decimal, InvalidOperation

    from rebalancer.clock import now_for
    from rebalancer.config import load_config
    from rebalancer.planner.model import validate_all
    from rebalancer.planner.tax import parse_lots_csv
    from rebalancer.reports.tracking import build_report
    from rebalancer.services import journal_path

    config, registry = load_config(args.config)
    targets = validate_all(config.strategy, registry)
    try:
        risk_free = Decimal(args.risk_free)
    except InvalidOperation:
        raise ConfigError(f"--risk-free = {args.risk_free!r}: not a number") from None
    if not risk_free.is_finite() or risk_free < 0:
        raise ConfigError(f"--risk-free = {args.risk_free!r}: must be 0 or more")
    path = journal_path(config, os.environ)
    imported: list[Any] = []
    if args.lots:
        from rebalancer.documents.lots import LotRow

        try:
            text = Path(args.lots).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"lots file {args.lots!r}: {exc.strerror or exc}") from None
        imported = [
            LotRow.imported(x)
            for x in parse_lots_csv(text, Path(args.lots).name, known_assets=registry.assets)
        ]
    else:
        imported = _imported(path)
    runs, trades, snapshots = _journal_rows(path)
    now = now_for(config, registry)
    lots = book_realised = book_open = None
    if imported:
        lots, book_realised, book_open = _book(
            imported, runs, trades, snapshots, config.strategy, registry, now
        )
        if args.lots:
            # NOTE: realised gains from the book either way; the unrealised basis of a --lots
            # CSV stays the walk's (swap lots at the value given up, without gas), as before
            book_open = None
    report = build_report(
        journal_path=str(path),
        runs=runs,
        trades=trades,
        snapshots=snapshots,
        strategy=config.strategy,
        targets=targets,
        registry=registry,
        lots=lots,
        prices=dict(config.prices),
        risk_free=float(risk_free) / 100,
        book_realised=book_realised,
        book_open=book_open,
        now=now,
    )
    doc = report.as_json()
    charts = _charts(report, float(config.strategy.band_pp)) if args.html or args.png else []
    if args.png:
        from rebalancer.reports.html import write_pngs

        write_pngs(args.png, charts)
    if args.html:
        _html(args.html, doc, charts)
    if args.json:
        from rebalancer.output import emit_json

        emit_json(doc)
        return 0
    print(text_report(doc))
    if args.html:
        print(f"\nHTML report: {args.html}")
    if args.png:
        print(f"charts: {args.png}/")
    return 0


def _usd(v: str | None) -> str:
    return "-" if v is None else f"{float(v):,.2f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.2f}%"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _sections(doc: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], tuple[int, ...]]]:
    """The report's tables: (title, headers, rows, right-aligned columns)."""
    from decimal import Decimal

    from rebalancer.core.display import fixed_units

    v, r, c, p = doc["value"], doc["returns"], doc["costs"], doc["pnl"]
    summary = [
        ["value at the start", _usd(v["start_usd"])],
        ["value at the end", _usd(v["end_usd"])],
        ["net deposits (+) / withdrawals (-)", _usd(v["net_flows_usd"])],
        ["buy-and-hold of the first holdings", _usd(v["buy_and_hold_usd"])],
        ["time-weighted return", _pct(r["twr"])],
        ["annualised return", _pct(r["annualised"])],
        ["volatility (annualised)", _pct(r["volatility"])],
        ["Sharpe ratio", _ratio(r["sharpe"])],
        ["Sortino ratio", _ratio(r["sortino"])],
        ["maximum drawdown", _pct(r["max_drawdown"])],
    ]
    costs = [
        ["confirmed trades (count)", str(c["trades"])],
        ["value traded", _usd(c["traded_usd"])],
        ["turnover (% of average value)", _pct(c["turnover"])],
        ["fees (est.)", _usd(c["fees_usd"])],
        ["price impact (est.)", _usd(c["impact_usd"])],
        ["gas (est.)", _usd(c["gas_usd"])],
        ["received below expected", _usd(c["slippage_vs_expected_usd"])],
        ["total cost", _usd(c["total_cost_usd"])],
    ]
    pnl = [
        [
            a["asset"],
            fixed_units(Decimal(a["amount"]), 8),
            _usd(a["price_usd"]),
            _usd(a["value_usd"]),
            _usd(a["cost_basis_usd"]),
            _usd(a["unrealised_usd"]),
            _usd(a["realised_usd"]),
        ]
        for a in p["assets"]
    ]
    pnl.append(["total", "", "", "", "", _usd(p["unrealised_usd"]), _usd(p["realised_usd"])])
    alloc = [
        [a["name"], a["kind"], a["weight_pct"], a["target_pct"], a["band_pp"], a["drift_pp"]]
        for a in doc["allocation"]
    ]
    basis = "tax lots" if p["basis"] == "lots" else "average cost since the first snapshot"
    return [
        ("Performance", ["figure", "value"], summary, (1,)),
        ("Costs", ["cost", "USD"], costs, (1,)),
        (
            f"P&L per asset ({basis})",
            ["asset", "amount", "price", "value", "cost basis", "unrealised", "realised"],
            pnl,
            (1, 2, 3, 4, 5, 6),
        ),
        (
            "Allocation now",
            ["row", "kind", "weight %", "target %", "band pp", "drift pp"],
            alloc,
            (2, 3, 4, 5),
        ),
    ]


def _headline(doc: dict[str, Any]) -> str:
    period = doc["period"]
    when = (
        f"{period['start'][:19]} to {period['end'][:19]} UTC ({period['days']} days)"
        if period["start"]
        else "no snapshots yet"
    )
    r = doc["returns"]
    return (
        f"journal {doc['journal']}: {period['runs']} runs, {period['executed_runs']} executed, "
        f"{period['snapshots']} snapshots; {when}. Returns over {r['periods']} period(s) between "
        f"runs; risk-free rate {(r['risk_free'] or 0) * 100:g}%"
        + ("" if r["annualised"] is not None else "; annualised figures need a day of history")
    )


def text_report(doc: dict[str, Any]) -> str:
    from rebalancer.output import table

    out = [_headline(doc)]
    if not doc["period"]["runs"]:
        out.append("nothing to report yet: executing runs record snapshots and trades")
        return "\n".join(out)
    for title, headers, rows, right in _sections(doc):
        if title.startswith("Allocation") and not rows:
            continue
        out += ["", title, table(headers, rows, right=right)]
    return "\n".join(out)


def _charts(report: Any, band_pp: float) -> list[tuple[str, bytes]]:
    from datetime import UTC, datetime

    from rebalancer.reports import charts

    if not report.points:
        return []
    xs = [datetime.fromtimestamp(p.snap.at, UTC) for p in report.points]
    last = report.points[-1]
    names = [n for n, _t, _b in report.leaf_rows]
    return [
        (
            "allocation",
            charts.allocation(
                names,
                [float(t) for _n, t, _b in report.leaf_rows],
                [float(b) for _n, _t, b in report.leaf_rows],
                {"now": [float(last.drift.get(n, 0)) + float(t) for n, t, _b in report.leaf_rows]},
            ),
        ),
        (
            "drift",
            charts.drift(
                xs, {n: [float(p.drift.get(n, 0)) for p in report.points] for n in names}, band_pp
            ),
        ),
        (
            "value",
            charts.value(
                xs,
                {
                    "portfolio (time-weighted, flows removed)": [
                        float(p.index) for p in report.points
                    ],
                    "portfolio value": [float(p.snap.total) for p in report.points],
                    "buy-and-hold": [float(p.hold) for p in report.points],
                },
            ),
        ),
    ]


def _html(path: str, doc: dict[str, Any], charts: list[tuple[str, bytes]]) -> None:
    from rebalancer.reports.html import Page

    page = Page("Portfolio performance", _headline(doc))
    for title, headers, rows, right in _sections(doc):
        page.heading(title)
        page.table(headers, rows, right)
    titles = {
        "allocation": "Allocation against target and bands",
        "drift": "Drift over time",
        "value": "Value against buy-and-hold",
    }
    for name, png in charts:
        page.heading(titles.get(name, name))
        page.image(png, titles.get(name, name))
    if not charts:
        page.paragraph("No portfolio snapshots yet: executing runs record them.")
    page.paragraph(
        "Returns chain the market move between runs and each run's trading cost, so deposits "
        "and withdrawals are not counted as returns. Costs are the plan's estimates of fees, "
        "impact and gas for confirmed trades, plus what arrived below the expected amount."
    )
    page.write(path)
