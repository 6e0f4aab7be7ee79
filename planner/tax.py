"""Tax lots: parsing, lot selection (FIFO, HIFO, specific), realised gains, loss harvesting.

Lots are per asset, not per chain or token: BTC bought as WBTC and later bridged to cbBTC is
still the same BTC lot. The CSV has the columns ``date, asset, amount, cost_basis_usd`` (and an
optional ``id``); ``amount`` is in whole units and ``cost_basis_usd`` is the lot's total cost.

Lot selection methods:

- ``fifo``: oldest lot first.
- ``hifo``: highest cost per unit first (smallest gains first).
- ``specific``: the planner picks the lots with the least tax: largest losses per unit first,
  then the smallest taxed gains (gain per unit times the short- or long-term rate).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from rebalancer.core import bounds
from rebalancer.core.errors import ConfigError
from rebalancer.planner.config import TaxConfig

_REQUIRED = ("date", "asset", "amount", "cost_basis_usd")


@dataclass(frozen=True, slots=True)
class Lot:
    """One purchase of an asset: when, how much, and what it cost in total."""

    id: str
    date: date
    asset: str
    amount: Decimal
    cost_basis_usd: Decimal

    @property
    def unit_basis(self) -> Decimal:
        return self.cost_basis_usd / self.amount


def _parse_date(text: str) -> date:
    text = text.strip()
    try:
        if "T" in text or " " in text:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError("not a date (YYYY-MM-DD)") from None


def _parse_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError("not a number") from None
    if not value.is_finite():
        raise ValueError("not a finite number")
    return value


def parse_lot(
    fields: Mapping[str, object], where: str, known_assets: Iterable[str] | None, index: int
) -> Lot:
    """One lot from a CSV row or a JSON object; errors name ``where`` and the field."""
    for key in _REQUIRED:
        if fields.get(key) in (None, ""):
            raise ConfigError(f"{where}: {key} is missing")
    values: dict[str, object] = {}
    for key in _REQUIRED:
        raw = str(fields[key]).strip()
        try:
            if key == "date":
                values[key] = _parse_date(raw)
            elif key == "asset":
                values[key] = raw
            else:
                values[key] = _parse_decimal(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: {key} = {raw!r}: {exc}") from None
    amount = values["amount"]
    basis = values["cost_basis_usd"]
    assert isinstance(amount, Decimal) and isinstance(basis, Decimal)
    if amount <= 0:
        raise ConfigError(f"{where}: amount = {fields['amount']!r}: must be positive")
    if basis < 0:
        raise ConfigError(f"{where}: cost_basis_usd = {fields['cost_basis_usd']!r}: negative")
    if amount > bounds.MAX_UNITS:
        raise ConfigError(f"{where}: amount = {fields['amount']!r}: over {bounds.MAX_UNITS:,}")
    if basis > bounds.MAX_VALUE_USD:
        raise ConfigError(
            f"{where}: cost_basis_usd = {fields['cost_basis_usd']!r}: over "
            f"${bounds.MAX_VALUE_USD:,}"
        )
    asset = str(values["asset"])
    if known_assets is not None and asset not in set(known_assets):
        raise ConfigError(f"{where}: asset = {asset!r}: unknown asset")
    lot_date = values["date"]
    assert isinstance(lot_date, date)
    lot_id = str(fields.get("id") or "").strip() or f"L{index}"
    return Lot(lot_id, lot_date, asset, amount, basis)


def parse_lots_csv(
    text: str,
    source: str = "lots.csv",
    known_assets: Iterable[str] | None = None,
    *,
    today: date | None = None,
    held: Mapping[str, Decimal] | None = None,
) -> list[Lot]:
    """Parse a lots CSV; every error names the file, the line and the field.

    With ``today``, a lot dated after it is an error; with ``held`` (units per asset), so are
    lots that add up to more of an asset than is held (the row that goes over is named)."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    for col in _REQUIRED:
        if col not in header:
            raise ConfigError(f"{source}: missing column {col!r} (need {', '.join(_REQUIRED)})")
    reader.fieldnames = header
    known = None if known_assets is None else set(known_assets)
    lots: list[Lot] = []
    seen: set[str] = set()
    for n, row in enumerate(reader, start=2):
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        lot = parse_lot(row, f"{source} line {n}", known, n - 1)
        if lot.id in seen:
            raise ConfigError(f"{source} line {n}: id = {lot.id!r}: duplicate lot id")
        seen.add(lot.id)
        if today is not None and lot.date > today:
            raise ConfigError(f"{source} line {n}: date = {lot.date.isoformat()}: in the future")
        if held is not None:
            total = lot.amount + sum((x.amount for x in lots if x.asset == lot.asset), Decimal(0))
            if total > held.get(lot.asset, Decimal(0)):
                raise ConfigError(
                    f"{source} line {n}: asset = {lot.asset!r}: lots add up to {total}, more "
                    f"than the {held.get(lot.asset, Decimal(0))} held"
                )
        lots.append(lot)
    return lots


@dataclass(frozen=True, slots=True)
class LotUse:
    """The part of one lot a sale consumed."""

    lot_id: str
    amount: Decimal
    basis_usd: Decimal
    proceeds_usd: Decimal
    long_term: bool

    @property
    def gain_usd(self) -> Decimal:
        return self.proceeds_usd - self.basis_usd


@dataclass(frozen=True, slots=True)
class Realised:
    """What one sale realises: gains split short/long, the tax, and any amount without lots."""

    uses: tuple[LotUse, ...]
    short_term_gain_usd: Decimal
    long_term_gain_usd: Decimal
    tax_usd: Decimal
    uncovered_amount: Decimal

    @property
    def gain_usd(self) -> Decimal:
        return self.short_term_gain_usd + self.long_term_gain_usd


@dataclass
class LotBook:
    """Open lots per asset; ``sell`` consumes them in the configured order."""

    lots: Sequence[Lot]
    cfg: TaxConfig
    as_of: date
    remaining: dict[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.remaining = {lot.id: lot.amount for lot in self.lots}

    def is_long(self, lot: Lot) -> bool:
        return (self.as_of - lot.date).days > self.cfg.long_term_days

    def rate(self, lot: Lot) -> Decimal:
        pct = self.cfg.long_term_rate_pct if self.is_long(lot) else self.cfg.short_term_rate_pct
        return pct / 100

    def order(self, asset: str, price: Decimal, method: str | None = None) -> list[Lot]:
        """Open lots of ``asset`` in the order a sale consumes them."""
        lots = [lot for lot in self.lots if lot.asset == asset and self.remaining[lot.id] > 0]
        method = method or self.cfg.method
        if method == "fifo":
            return sorted(lots, key=lambda lot: (lot.date, lot.id))
        if method == "hifo":
            return sorted(lots, key=lambda lot: (-lot.unit_basis, lot.date, lot.id))
        return sorted(
            lots, key=lambda lot: ((price - lot.unit_basis) * self.rate(lot), lot.date, lot.id)
        )

    def sell(self, asset: str, amount: Decimal, proceeds_usd: Decimal) -> Realised:
        """Consume lots for a sale of ``amount`` units that brings ``proceeds_usd``."""
        unit_price = proceeds_usd / amount if amount > 0 else Decimal(0)
        left = amount
        uses = []
        short = long = tax = Decimal(0)
        for lot in self.order(asset, unit_price):
            if left <= 0:
                break
            take = min(left, self.remaining[lot.id])
            self.remaining[lot.id] -= take
            left -= take
            use = LotUse(lot.id, take, lot.unit_basis * take, unit_price * take, self.is_long(lot))
            uses.append(use)
            if use.long_term:
                long += use.gain_usd
            else:
                short += use.gain_usd
            tax += use.gain_usd * self.rate(lot)
        return Realised(tuple(uses), short, long, tax, max(left, Decimal(0)))

    def copy(self) -> LotBook:
        """A fresh book over the same lots (a plan's sales never consume the caller's book)."""
        return LotBook(self.lots, self.cfg, self.as_of)

    def tax_segments(self, asset: str, price: Decimal) -> list[tuple[Decimal, Decimal]]:
        """Convex pieces (USD capacity, tax per USD sold) of selling ``asset`` now, for the
        optimiser: the method's lots sorted by tax per USD (a loss counts as no tax, so the
        optimiser never trades just to realise one), then unbounded value taxed at the
        short-term rate (held without known lots). For FIFO/HIFO the sort is an approximation
        (the true order may not be cheapest first); the plan reports the true tax."""
        pieces = []
        for lot in self.order(asset, price):
            gain_frac = max(Decimal(0), 1 - lot.unit_basis / price)
            pieces.append((self.remaining[lot.id] * price, gain_frac * self.rate(lot)))
        pieces.sort(key=lambda p: p[1])
        pieces.append((Decimal(-1), self.cfg.short_term_rate_pct / 100))
        return pieces


def realise_sales(
    book: LotBook, sales: Sequence[tuple[str, Decimal, Decimal]]
) -> tuple[list[Realised], Decimal]:
    """Each sale ``(asset, units, proceeds USD)`` in order against a copy of ``book``: what it
    realises, and the plan's total tax."""
    fresh = book.copy()
    out = [fresh.sell(asset, amount, proceeds) for asset, amount, proceeds in sales]
    return out, sum((r.tax_usd for r in out), Decimal(0))


@dataclass(frozen=True, slots=True)
class HarvestCandidate:
    """An asset whose loss lots could be sold to realise a loss, and what to hold instead."""

    asset: str
    klass: str
    amount: Decimal
    value_usd: Decimal
    unrealised_loss_usd: Decimal
    lot_ids: tuple[str, ...]
    substitute: str | None
    note: str
    planned_sell_usd: Decimal


def unrealised_losses(
    lots: Sequence[Lot], held: Mapping[str, Decimal], prices: Mapping[str, Decimal]
) -> dict[str, tuple[Decimal, Decimal, list[str]]]:
    """Per asset: (amount in loss lots, loss in USD as a positive number, lot ids), counting at
    most the amount actually held, largest loss per unit first."""
    out: dict[str, tuple[Decimal, Decimal, list[str]]] = {}
    for asset in sorted({lot.asset for lot in lots}):
        price = prices.get(asset)
        if price is None:
            continue
        left = held.get(asset, Decimal(0))
        losing = sorted(
            (lot for lot in lots if lot.asset == asset and lot.unit_basis > price),
            key=lambda lot: (price - lot.unit_basis, lot.date, lot.id),
        )
        amount = loss = Decimal(0)
        ids = []
        for lot in losing:
            if left <= 0:
                break
            take = min(left, lot.amount)
            left -= take
            amount += take
            loss += (lot.unit_basis - price) * take
            ids.append(lot.id)
        if loss > 0:
            out[asset] = (amount, loss, ids)
    return out
