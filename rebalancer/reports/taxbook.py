"""The lot book, derived on read from the journal: imported lots plus every confirmed swap.

Nothing about a trade's lots is written when it confirms: the book is computed from the
journalled ``confirmed`` rows each time (crash-safe, and the engine stays untouched). In order
of confirmation, each swap

- disposes of lots of the asset sold by ``strategy.tax.method`` (FIFO, HIFO, specific). The
  proceeds are the plan's USD value of the trade (the value given up). Known-basis lots go
  first, then the unknown-basis lot of the holdings no import covered; anything beyond is a
  disposal with ``basis_usd: null``, flagged ``unknown_basis`` (never invented);
- creates a lot of the asset bought (``realised_out`` units) with basis = the value given up
  plus the network fee actually paid for the swap and its approval (the report's gas figure).

Dates follow the chain's clock: a swap's lot and disposal are dated by the timestamp of the
block that included it (journalled as ``block_time`` when it landed); a row from before that
column existed falls back to the time it was journalled as confirmed.

Holdings without a lot: where the earliest journalled portfolio snapshot holds more of an asset
than the imported lots cover, the rest is one lot of unknown basis dated that snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from rebalancer.documents.journal import RunRow, SnapshotKind, SnapshotRow, TradeRow
from rebalancer.documents.lots import Disposal, LotRow, LotSource, Term, TermTotals
from rebalancer.planner.config import StrategyConfig
from rebalancer.planner.tax import Lot, LotBook
from rebalancer.reports.tracking import _fills

_ZERO = Decimal(0)
_CENT = Decimal("0.01")
_APPROVALS = ("-approve", "-approve-reset", "/approve")


def _day(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def usd(v: Decimal) -> Decimal:
    return v.quantize(_CENT)


def units(v: Decimal) -> Decimal:
    """An amount without trailing zeros (0.30000000 -> 0.3), never in exponent form."""
    return Decimal(format(v.normalize(), "f"))


@dataclass(frozen=True, slots=True)
class LossSale:
    """A confirmed swap that sold a token at a net loss (for a repurchase-wait rule)."""

    token_id: str
    asset: str
    at: datetime
    loss_usd: Decimal


@dataclass
class Book:
    lots: list[LotRow] = field(default_factory=list)
    """Open lots (what is left of each)."""
    disposals: list[Disposal] = field(default_factory=list)
    loss_sales: list[LossSale] = field(default_factory=list)
    """Swaps whose known-basis disposals add up to a loss, oldest first."""

    def open_lots(self) -> list[Lot]:
        """The open lots of known basis as the planner's lots (what is left of each)."""
        return [
            Lot(x.id, x.acquired, x.asset, x.amount, x.cost_basis_usd)
            for x in self.lots
            if x.cost_basis_usd is not None and x.amount > 0
        ]

    def blocked_buys(self, now: datetime, wait_days: int) -> dict[str, datetime]:
        """Token id -> when the wait ends, for each token sold at a loss less than
        ``wait_days`` before ``now`` (0: no rule, nothing blocked)."""
        if wait_days <= 0:
            return {}
        out: dict[str, datetime] = {}
        for s in self.loss_sales:
            until = s.at + timedelta(days=wait_days)
            if until > now:
                out[s.token_id] = max(until, out.get(s.token_id, until))
        return out

    def realised_usd(self, year: int | None = None) -> Decimal:
        return sum(
            (d.gain_usd for d in self.disposals if d.gain_usd is not None and _in(d, year)),
            _ZERO,
        )


def _in(d: Disposal, year: int | None) -> bool:
    return year is None or d.disposed.year == year


def build_book(
    imported: Sequence[LotRow],
    runs: Sequence[RunRow],
    trades: Sequence[TradeRow],
    snapshots: Sequence[SnapshotRow],
    strategy: StrategyConfig,
    registry: Any = None,
    *,
    now: datetime,
) -> Book:
    """The open lots and every disposal (pure: the journal's rows in, the book out; ``now``
    is the tool's clock, the chains' on simulated worlds: the book's date before the first
    swap)."""
    cfg = strategy.tax
    known = [x for x in imported if x.cost_basis_usd is not None]
    lots = [Lot(x.id, x.acquired, x.asset, x.amount, x.cost_basis_usd or _ZERO) for x in known]
    start = now.date()
    book = LotBook(lots, cfg, start)
    meta: dict[str, tuple[LotSource, str | None]] = {x.id: (x.source, None) for x in known}
    # unknown-basis lots: id -> [asset, amount left, acquired]
    unknown: dict[str, tuple[str, date]] = {}
    unknown_left: dict[str, Decimal] = {}
    for x in imported:
        if x.cost_basis_usd is None:
            unknown[x.id] = (x.asset, x.acquired)
            unknown_left[x.id] = x.amount
    first = next(
        (
            s
            for s in sorted(snapshots, key=lambda s: s.taken_at)
            if s.kind == SnapshotKind.PORTFOLIO_BEFORE
        ),
        None,
    )
    if first is not None:
        held: dict[str, Decimal] = {}
        for h in first.data.holdings:
            held[h.asset] = held.get(h.asset, _ZERO) + Decimal(h.raw).scaleb(-h.decimals)
        for asset, held_units in sorted(held.items()):
            covered = sum((x.amount for x in imported if x.asset == asset), _ZERO)
            if held_units > covered:
                lot_id = f"unknown:{asset}"
                unknown[lot_id] = (asset, _day(first.taken_at))
                unknown_left[lot_id] = held_units - covered
    txs = {(t.run_id, t.trade_id): t.tx_hash for t in trades}
    rows = {(t.run_id, t.trade_id): t for t in trades}

    def at(run_id: int, trade_id: str, journalled: float) -> float:
        row = rows.get((run_id, trade_id))
        return row.block_time if row is not None and row.block_time is not None else journalled

    fills, _states = _fills(runs, trades, registry)
    book_out = Book()
    for f in sorted(fills, key=lambda f: (at(f.run_id, f.trade_id, f.at), f.run_id)):
        if f.trade_id.endswith(_APPROVALS):
            continue
        ts = at(f.run_id, f.trade_id, f.at)
        when = _day(ts)
        trade_ref = f"run{f.run_id}:{f.trade_id}"
        tx = txs.get((f.run_id, f.trade_id))
        book.as_of = when
        if f.sold > 0:
            r = book.sell(f.sell, f.sold, f.value_usd)
            unit_price = f.value_usd / f.sold
            by_id = {lot.id: lot for lot in book.lots}
            for use in r.uses:
                lot = by_id[use.lot_id]
                book_out.disposals.append(
                    Disposal(
                        asset=f.sell,
                        amount=units(use.amount),
                        acquired=lot.date,
                        disposed=when,
                        proceeds_usd=usd(use.proceeds_usd),
                        basis_usd=usd(use.basis_usd),
                        gain_usd=usd(use.proceeds_usd) - usd(use.basis_usd),
                        term=Term.LONG if use.long_term else Term.SHORT,
                        trade_id=trade_ref,
                        tx=tx,
                        lot_id=lot.id,
                        unknown_basis=False,
                    )
                )
            row = rows.get((f.run_id, f.trade_id))
            if r.uses and r.gain_usd < 0 and row is not None:
                book_out.loss_sales.append(
                    LossSale(row.sell, f.sell, datetime.fromtimestamp(ts, UTC), -r.gain_usd)
                )
            left = r.uncovered_amount
            for lot_id, (asset, acquired) in unknown.items():
                if left <= 0 or asset != f.sell or unknown_left[lot_id] <= 0:
                    continue
                take = min(left, unknown_left[lot_id])
                unknown_left[lot_id] -= take
                left -= take
                long = (when - acquired).days > cfg.long_term_days
                book_out.disposals.append(
                    _unknown(f.sell, take, acquired, when, unit_price, long, trade_ref, tx, lot_id)
                )
            if left > 0:
                book_out.disposals.append(
                    _unknown(f.sell, left, None, when, unit_price, False, trade_ref, tx, None)
                )
        if f.bought > 0:
            lot = Lot(trade_ref, when, f.buy, f.bought, f.value_usd + f.gas_usd)
            book.lots = [*book.lots, lot]
            book.remaining[lot.id] = lot.amount
            meta[lot.id] = (LotSource.TRADE, trade_ref)
    for lot in book.lots:
        left = book.remaining.get(lot.id, _ZERO)
        if left > 0:
            source, ref = meta[lot.id]
            book_out.lots.append(
                LotRow(
                    id=lot.id,
                    asset=lot.asset,
                    amount=units(left),
                    acquired=lot.date,
                    cost_basis_usd=usd(lot.unit_basis * left),
                    source=source,
                    trade_id=ref,
                )
            )
    for lot_id, (asset, acquired) in unknown.items():
        if unknown_left[lot_id] > 0:
            book_out.lots.append(
                LotRow(
                    id=lot_id,
                    asset=asset,
                    amount=units(unknown_left[lot_id]),
                    acquired=acquired,
                    cost_basis_usd=None,
                    source=LotSource.IMPORT,
                )
            )
    book_out.lots.sort(key=lambda x: (x.asset, x.acquired, x.id))
    return book_out


def _unknown(
    asset: str,
    amount: Decimal,
    acquired: date | None,
    when: date,
    unit_price: Decimal,
    long: bool,
    trade_ref: str,
    tx: str | None,
    lot_id: str | None,
) -> Disposal:
    return Disposal(
        asset=asset,
        amount=units(amount),
        acquired=acquired,
        disposed=when,
        proceeds_usd=usd(unit_price * amount),
        basis_usd=None,
        gain_usd=None,
        term=Term.LONG if long else Term.SHORT,
        trade_id=trade_ref,
        tx=tx,
        lot_id=lot_id,
        unknown_basis=True,
    )


def totals(disposals: Sequence[Disposal]) -> dict[Term, TermTotals]:
    """Proceeds, basis and gain per term (unknown-basis proceeds apart)."""
    out = {}
    for term in Term:
        ds = [d for d in disposals if d.term == term]
        out[term] = TermTotals(
            proceeds_usd=sum((d.proceeds_usd for d in ds if not d.unknown_basis), _ZERO),
            basis_usd=sum((d.basis_usd or _ZERO for d in ds), _ZERO),
            gain_usd=sum((d.gain_usd or _ZERO for d in ds), _ZERO),
            unknown_basis_proceeds_usd=sum((d.proceeds_usd for d in ds if d.unknown_basis), _ZERO),
        )
    return out
