"""The lot book as documents: a lot (imported or made by a confirmed swap), a disposal, and the
``lots --json`` / ``tax --json`` answers.

A lot's ``cost_basis_usd`` is ``None`` when its basis is unknown (never invented); a disposal's
``basis_usd`` and ``gain_usd`` are then ``None`` too, and ``unknown_basis`` flags it.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING

from rebalancer.core.documents import DecimalText, Document, Str

if TYPE_CHECKING:
    from rebalancer.planner.lot_formats import ImportedLot
    from rebalancer.planner.tax import Lot


class LotSource(StrEnum):
    IMPORT = "import"
    """From ``rebalancer lots import CSV``."""
    TRADE = "trade"
    """Bought by a confirmed swap of this tool."""


class Term(StrEnum):
    SHORT = "short"
    LONG = "long"


class LotRow(Document):
    """One open lot of the book (``amount``: what is left of it, whole units)."""

    id: Str
    asset: Str
    amount: DecimalText
    acquired: date
    cost_basis_usd: DecimalText | None
    """Of the amount left; None: unknown."""
    source: LotSource
    trade_id: Str | None = None
    """``run<N>:<trade id>`` of the swap that bought it."""

    @classmethod
    def imported(cls, lot: Lot | ImportedLot) -> LotRow:
        """The row of a lot read from an imported file (CSV or an exchange's export)."""
        return cls(
            id=lot.id,
            asset=lot.asset,
            amount=lot.amount,
            acquired=lot.date,
            cost_basis_usd=lot.cost_basis_usd,
            source=LotSource.IMPORT,
        )


class Disposal(Document):
    """The part of one lot a confirmed swap sold (or, with no lot left, the unknown rest)."""

    asset: Str
    amount: DecimalText
    acquired: date | None
    """None: no lot (unknown basis)."""
    disposed: date
    proceeds_usd: DecimalText
    basis_usd: DecimalText | None
    gain_usd: DecimalText | None
    term: Term
    trade_id: Str
    tx: Str | None
    lot_id: Str | None = None
    unknown_basis: bool = False


class LotsDoc(Document):
    lots: list[LotRow]


class TermTotals(Document):
    proceeds_usd: DecimalText
    basis_usd: DecimalText
    gain_usd: DecimalText
    unknown_basis_proceeds_usd: DecimalText
    """Proceeds of disposals without a known basis (not in ``gain_usd``)."""


class TaxDoc(Document):
    year: int | None
    method: Str
    disposals: list[Disposal]
    totals: dict[Term, TermTotals]
