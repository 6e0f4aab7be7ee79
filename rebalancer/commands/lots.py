"""``rebalancer lots [import CSV]`` and ``rebalancer tax``: the lot book kept from the journal.

The book itself (imported lots plus every confirmed swap) is :mod:`rebalancer.reports.taxbook`.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from rebalancer.clock import now_for
from rebalancer.core.errors import ConfigError
from rebalancer.output import emit_json

if TYPE_CHECKING:
    from rebalancer.config import Config
    from rebalancer.journal import Journal
    from rebalancer.reports.taxbook import Book


def add_lots_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        nargs="?",
        choices=["import"],
        help="import: replace the imported lots by those of CSV (date,asset,amount,"
        "cost_basis_usd[,id], or a Coinbase transaction history export, detected from its "
        "header); without it: show the book",
    )
    p.add_argument("file", nargs="?", metavar="CSV", help="import: the lots file")


def add_tax_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--year", type=int, metavar="Y", help="only disposals in that calendar year")
    p.add_argument("--csv", metavar="FILE", help="also write the disposals as a tax-form CSV")


def _open(config: Config) -> Journal:
    from rebalancer.journal import Journal
    from rebalancer.services import journal_path

    return Journal(journal_path(config, os.environ))


def _book(config: Config, registry: object, journal: Journal, now: datetime) -> Book:
    from rebalancer.reports.taxbook import build_book

    return build_book(
        journal.imported_lots(),
        journal.runs_with_plans(),
        journal.trades(),
        journal.snapshots(),
        config.strategy,
        registry,
        now=now,
    )


def read_book(config: Config, registry: object, now: datetime) -> Book | None:
    """The journal's lot book for the planner (``plan``, ``run``, ``harvest``); None when no
    journal exists yet (a read-only command does not create one)."""
    from rebalancer.journal import Journal
    from rebalancer.services import journal_path

    path = journal_path(config, os.environ)
    if not path.exists():
        return None
    journal = Journal(path)
    try:
        return _book(config, registry, journal, now)
    finally:
        journal.close()


def run(args: argparse.Namespace) -> int:
    from rebalancer.config import load_config
    from rebalancer.documents.lots import LotsDoc

    config, registry = load_config(args.config)
    if args.action == "import":
        if not args.file:
            raise ConfigError("lots import: give the CSV file")
        return _import(args, config, registry)
    if args.file:
        raise ConfigError(f"lots: unexpected argument {args.file!r} (did you mean lots import?)")
    now = now_for(config, registry)
    journal = _open(config)
    try:
        book = _book(config, registry, journal, now)
    finally:
        journal.close()
    if args.json:
        emit_json(LotsDoc(lots=book.lots).as_json())
        return 0
    if not book.lots:
        print("no lots (import some with `rebalancer lots import CSV`)")
        return 0
    print(f"{'id':<28} {'asset':<6} {'amount':>18} {'acquired':<10} {'basis USD':>12} source")
    for lot in book.lots:
        basis = "unknown" if lot.cost_basis_usd is None else f"{lot.cost_basis_usd:,.2f}"
        print(
            f"{lot.id:<28} {lot.asset:<6} {lot.amount:>18} {lot.acquired.isoformat():<10} "
            f"{basis:>12} {lot.source.value}"
        )
    return 0


def _import(args: argparse.Namespace, config: Config, registry: object) -> int:
    from rebalancer.documents.lots import LotRow
    from rebalancer.planner.lot_formats import parse_lots_file

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else exc
        raise ConfigError(f"lots file {args.file!r}: {why or exc}") from None
    journal = _open(config)
    try:
        held = _held(journal)
        kind, lots = parse_lots_file(
            text,
            path.name,
            registry.assets,  # type: ignore[attr-defined]
            config.strategy.tax,
            today=now_for(config, registry).date(),
            held=held,
        )
        rows = [LotRow.imported(lot) for lot in lots]
        journal.import_lots(rows)
    finally:
        journal.close()
    if args.json:
        emit_json({"imported": len(rows), "format": kind})
    else:
        print(f"imported {len(rows)} lots from {path.name} ({kind} format)")
    return 0


def _held(journal: Journal) -> dict[str, Decimal] | None:
    """Units per asset of the latest journalled snapshot (None: none yet, nothing to check)."""
    snaps = journal.snapshots()
    if not snaps:
        return None
    held: dict[str, Decimal] = {}
    for h in snaps[-1].data.holdings:
        held[h.asset] = held.get(h.asset, Decimal(0)) + Decimal(h.raw).scaleb(-h.decimals)
    return {a: Decimal(format(v.normalize(), "f")) for a, v in held.items()}


def tax(args: argparse.Namespace) -> int:
    from rebalancer.config import load_config
    from rebalancer.documents.lots import TaxDoc
    from rebalancer.reports.taxbook import totals

    config, registry = load_config(args.config)
    now = now_for(config, registry)
    journal = _open(config)
    try:
        book = _book(config, registry, journal, now)
    finally:
        journal.close()
    disposals = [d for d in book.disposals if args.year is None or d.disposed.year == args.year]
    doc = TaxDoc(
        year=args.year,
        method=config.strategy.tax.method,
        disposals=disposals,
        totals=totals(disposals),
    )
    if args.csv:
        _write_csv(Path(args.csv), doc)
    if args.json:
        emit_json(doc.as_json())
        return 0
    for d in disposals:
        basis = "unknown" if d.basis_usd is None else f"{d.basis_usd:,.2f}"
        gain = "unknown" if d.gain_usd is None else f"{d.gain_usd:,.2f}"
        acquired = "unknown" if d.acquired is None else d.acquired.isoformat()
        print(
            f"{d.disposed.isoformat()} sold {d.amount} {d.asset} (acquired {acquired}, "
            f"{d.term.value}): proceeds {d.proceeds_usd:,.2f} basis {basis} gain {gain}"
            f"{'  [unknown basis]' if d.unknown_basis else ''}"
        )
    for term, t in doc.totals.items():
        extra = (
            f", proceeds without basis {t.unknown_basis_proceeds_usd:,.2f}"
            if t.unknown_basis_proceeds_usd
            else ""
        )
        print(f"{term.value}-term: gain {t.gain_usd:,.2f} USD{extra}")
    if args.csv:
        print(f"CSV: {args.csv}")
    return 0


def _write_csv(path: Path, doc: object) -> None:
    """Columns of a Form 8949-style list; unknown basis left blank (never invented)."""
    from rebalancer.documents.lots import TaxDoc

    assert isinstance(doc, TaxDoc)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        ["description", "date_acquired", "date_sold", "proceeds", "cost_basis", "gain", "term"]
    )
    for d in doc.disposals:
        w.writerow(
            [
                f"{d.amount} {d.asset}",
                "" if d.acquired is None else d.acquired.isoformat(),
                d.disposed.isoformat(),
                f"{d.proceeds_usd:.2f}",
                "" if d.basis_usd is None else f"{d.basis_usd:.2f}",
                "" if d.gain_usd is None else f"{d.gain_usd:.2f}",
                d.term.value,
            ]
        )
    try:
        path.write_text(buf.getvalue(), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--csv {str(path)!r}: {exc.strerror or exc}") from None
