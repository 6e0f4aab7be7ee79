"""Lots files for ``rebalancer lots import``, their format detected from the header.

- The lots CSV: ``date,asset,amount,cost_basis_usd[,id]`` (``planner.tax.parse_lots_csv``).
- Coinbase's transaction history export (Statements -> Transactions -> CSV; Coinbase Help,
  https://help.coinbase.com/en/coinbase/taxes/tools/statements). A few preamble lines, then
  the header ``[ID,]Timestamp,Transaction Type,Asset,Quantity Transacted,Spot Price Currency,
  Spot Price at Transaction,Subtotal,Total (inclusive of fees and/or spread),Fees and/or
  Spread,Notes``; older and newer exports name some columns a little differently ("Total
  (inclusive of fees)", "Fees", "Price Currency", "Price at Transaction") and newer ones write
  money as ``$1,234.50`` and sales as negative quantities. Columns as read by public importers
  (VibeNL/GhostfolioSidekick ``Parsers/Coinbase/CoinbaseRecord.cs``, dickwolff/Export-To-
  Ghostfolio ``src/models/coinbaseRecord.ts``) and described in "How Coinbase, Binance and
  Kraken tax CSVs actually differ" (safefinancehub.com, 2026: "Convert" is one row naming both
  assets in its notes). Sample: ``fixtures/tax/coinbase-transactions.csv``.

The export is a history, not a list of lots: it is replayed in time order. A buy is a lot at
its total paid (fees included); rewards and staking income a lot at their subtotal (market
value); a receive a lot of unknown basis; a sell or the sold side of a convert consumes lots
by ``strategy.tax.method`` (known bases first, then unknown ones), and a convert's bought side
is a lot at the convert's total. Sends and withdrawals are transfers (coins sent to your own
wallet keep their lots). Rows of a fiat currency are skipped. What is open at the end is
imported; every row the replay cannot understand is refused, naming its line, and nothing is
imported.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from rebalancer.core import bounds
from rebalancer.core.errors import ConfigError
from rebalancer.planner.config import TaxConfig
from rebalancer.planner.tax import Lot, LotBook, _parse_date, _parse_decimal, parse_lots_csv

_FIAT = frozenset({"USD", "EUR", "GBP", "CAD", "AUD", "CHF", "JPY", "SGD"})
_BUY = frozenset({"buy", "advanced trade buy"})
_INCOME = frozenset(
    {
        "rewards income",
        "reward income",
        "staking income",
        "coinbase earn",
        "learning reward",
        "inflation reward",
    }
)
_RECEIVE = frozenset({"receive", "deposit"})
_SELL = frozenset({"sell", "advanced trade sell"})
_TRANSFER = frozenset({"send", "withdrawal"})
_CONVERTED = re.compile(r"converted\s+([\d.,]+)\s+(\S+)\s+to\s+([\d.,]+)\s+(\S+)", re.IGNORECASE)
_COINBASE_KEYS = ("timestamp", "transaction type", "asset", "quantity transacted")


@dataclass(frozen=True, slots=True)
class ImportedLot:
    """An open lot a file leaves: ``cost_basis_usd`` None when its basis is unknown."""

    id: str
    date: date
    asset: str
    amount: Decimal
    cost_basis_usd: Decimal | None


def parse_lots_file(
    text: str,
    source: str,
    known_assets: Iterable[str],
    tax: TaxConfig,
    *,
    today: date,
    held: Mapping[str, Decimal] | None = None,
) -> tuple[str, list[ImportedLot]]:
    """``(format name, open lots)`` of a lots CSV or a Coinbase export; errors name the line."""
    rows = list(csv.reader(io.StringIO(text)))
    for n, row in enumerate(rows[:20], start=1):
        cells = [c.strip().lower() for c in row]
        if all(k in cells for k in _COINBASE_KEYS):
            lots = _coinbase(rows[n:], n, row, source, set(known_assets), tax, today, held)
            return "coinbase", lots
    plain = parse_lots_csv(text, source, known_assets, today=today, held=held)
    return "lots", [ImportedLot(x.id, x.date, x.asset, x.amount, x.cost_basis_usd) for x in plain]


def _money(text: str) -> Decimal:
    """``1234.5``, ``$1,234.50`` or ``-$3.00``: the absolute value."""
    cleaned = text.strip().replace("$", "").replace(",", "")
    return abs(_parse_decimal(cleaned))


@dataclass
class _Open:
    line: int
    lot_id: str
    asset: str
    when: date
    amount: Decimal


def _coinbase(
    body: list[list[str]],
    header_line: int,
    header: list[str],
    source: str,
    known: set[str],
    tax: TaxConfig,
    today: date,
    held: Mapping[str, Decimal] | None,
) -> list[ImportedLot]:
    names = [h.strip().lower() for h in header]

    def col(*options: str, prefix: bool = False) -> int | None:
        for i, name in enumerate(names):
            if any(name == o or (prefix and name.startswith(o)) for o in options):
                return i
        return None

    i_id = col("id")
    i_ts, i_type, i_asset, i_qty = (col(k) for k in _COINBASE_KEYS)
    i_ccy = col("spot price currency", "price currency")
    i_sub = col("subtotal")
    i_total = col("total", prefix=True)
    i_notes = col("notes")
    for name, idx in (("Subtotal", i_sub), ("Total (inclusive of fees...)", i_total)):
        if idx is None:
            raise ConfigError(f"{source} line {header_line}: Coinbase export without {name}")
    assert None not in (i_ts, i_type, i_asset, i_qty, i_sub, i_total)
    parsed = []
    for offset, row in enumerate(body, start=header_line + 1):
        if not any(c.strip() for c in row):
            continue
        where = f"{source} line {offset}"

        def cell(i: int | None, row: list[str] = row) -> str:
            return row[i].strip() if i is not None and i < len(row) else ""

        try:
            when = _parse_date(cell(i_ts).removesuffix(" UTC"))
        except ValueError as exc:
            raise ConfigError(f"{where}: Timestamp = {cell(i_ts)!r}: {exc}") from None
        parsed.append((when, offset, where, row, cell))
    parsed.sort(key=lambda p: (p[0], p[1]))
    book = LotBook([], tax, today)
    meta: dict[str, _Open] = {}
    unknown: list[_Open] = []

    def value(i: int | None, what: str, where: str, cell: object) -> Decimal:
        assert callable(cell)
        raw = cell(i)
        try:
            v = _money(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: {what} = {raw!r}: {exc}") from None
        if v > bounds.MAX_VALUE_USD:
            raise ConfigError(f"{where}: {what} = {raw!r}: over ${bounds.MAX_VALUE_USD:,}")
        return v

    def asset_of(symbol: str, where: str) -> str:
        if symbol not in known:
            raise ConfigError(f"{where}: asset = {symbol!r}: unknown asset")
        return symbol

    def add(
        asset: str, amount: Decimal, basis: Decimal | None, when: date, line: int, ref: str
    ) -> None:
        if when > today:
            raise ConfigError(f"{source} line {line}: date = {when.isoformat()}: in the future")
        lot_id = f"coinbase:{ref}" if ref else f"coinbase:line{line}"
        if lot_id in meta or any(u.lot_id == lot_id for u in unknown):
            raise ConfigError(f"{source} line {line}: id = {ref!r}: duplicate transaction id")
        o = _Open(line, lot_id, asset, when, amount)
        if basis is None:
            unknown.append(o)
            return
        book.lots = [*book.lots, Lot(lot_id, when, asset, amount, basis)]
        book.remaining[lot_id] = amount
        meta[lot_id] = o

    def dispose(asset: str, amount: Decimal, proceeds: Decimal, when: date, where: str) -> None:
        book.as_of = when
        left = book.sell(asset, amount, proceeds).uncovered_amount
        for u in unknown:
            if left <= 0:
                break
            if u.asset == asset and u.amount > 0:
                take = min(left, u.amount)
                u.amount -= take
                left -= take
        if left > 0:
            raise ConfigError(
                f"{where}: sells {left} {asset} more than the rows before it bought or received"
            )

    for when, line, where, _row, cell in parsed:
        kind = cell(i_type).lower()
        symbol = cell(i_asset)
        if symbol.upper() in _FIAT or not symbol:
            continue
        if cell(i_ccy) and cell(i_ccy).upper() != "USD":
            raise ConfigError(f"{where}: price currency = {cell(i_ccy)!r}: only USD is supported")
        try:
            qty = abs(_parse_decimal(cell(i_qty).replace(",", "")))
        except ValueError as exc:
            raise ConfigError(f"{where}: Quantity Transacted = {cell(i_qty)!r}: {exc}") from None
        if qty <= 0 or qty > bounds.MAX_UNITS:
            raise ConfigError(f"{where}: Quantity Transacted = {cell(i_qty)!r}: out of range")
        ref = cell(i_id)
        if kind in _TRANSFER:
            continue
        asset = asset_of(symbol, where)
        if kind in _BUY:
            add(asset, qty, value(i_total, "Total", where, cell), when, line, ref)
        elif kind in _INCOME:
            add(asset, qty, value(i_sub, "Subtotal", where, cell), when, line, ref)
        elif kind in _RECEIVE:
            add(asset, qty, None, when, line, ref)
        elif kind in _SELL:
            dispose(asset, qty, value(i_sub, "Subtotal", where, cell), when, where)
        elif kind == "convert":
            m = _CONVERTED.search(cell(i_notes))
            if m is None:
                raise ConfigError(
                    f"{where}: Convert: Notes = {cell(i_notes)!r}: expected "
                    "'Converted <amount> <asset> to <amount> <asset>'"
                )
            total = value(i_total, "Total", where, cell)
            dispose(asset, qty, total, when, where)
            got = asset_of(m.group(4), where)
            try:
                got_qty = _parse_decimal(m.group(3).replace(",", ""))
            except ValueError as exc:
                raise ConfigError(f"{where}: Convert: Notes amount {m.group(3)!r}: {exc}") from None
            if got.upper() not in _FIAT:
                add(got, got_qty, total, when, line, f"{ref}:to" if ref else f"line{line}:to")
        else:
            raise ConfigError(f"{where}: Transaction Type = {cell(i_type)!r}: not understood")
    out: list[tuple[int, ImportedLot]] = []
    for lot in book.lots:
        left = book.remaining[lot.id]
        if left > 0:
            out.append(
                (
                    meta[lot.id].line,
                    ImportedLot(lot.id, lot.date, lot.asset, left, lot.unit_basis * left),
                )
            )
    out.extend(
        (u.line, ImportedLot(u.lot_id, u.when, u.asset, u.amount, None))
        for u in unknown
        if u.amount > 0
    )
    out.sort(key=lambda p: p[0])
    if held is not None:
        totals: dict[str, Decimal] = {}
        for line, x in out:
            totals[x.asset] = totals.get(x.asset, Decimal(0)) + x.amount
            if totals[x.asset] > held.get(x.asset, Decimal(0)):
                raise ConfigError(
                    f"{source} line {line}: asset = {x.asset!r}: open lots add up to "
                    f"{totals[x.asset]}, more than the {held.get(x.asset, Decimal(0))} held"
                )
    return [x for _, x in out]
