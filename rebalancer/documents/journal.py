"""Journal rows as models: a trade going in, trades and runs coming out, and the JSON a run
row holds (its plan document and its summary).

SQLite keeps amounts as decimal text (they can exceed its 64-bit integers) and states as their
string values; these models turn them back into ints and StrEnums, so a journal written
before them reads the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from rebalancer.core.documents import DecimalText, Document, Int, IntText, Str
from rebalancer.documents.manifest import Manifest
from rebalancer.documents.plan import PlanFile
from rebalancer.documents.status import RunMode, RunStatus, TradeStatus


class NewTrade(Document):
    """A trade (or its approval, ``<id>/approve``) as it is journalled, before any signature."""

    id: Str
    chain: Str
    wallet: Str
    sell: Str
    """CAIP-19 token ids."""
    buy: Str
    amount_in: IntText
    min_out: IntText | None = None


class TradeRow(Document):
    """One row of the trades table."""

    run_id: Int
    trade_id: Str
    chain: Str
    wallet: Str
    sell: Str
    buy: Str
    amount_in: IntText
    min_out: IntText | None
    state: TradeStatus
    tx_hash: Str | None
    raw_tx: Str | None
    """Hex of the signed bytes, written before they are broadcast."""
    nonce: Int | None
    approval_tx: Str | None
    simulated_out: IntText | None
    realised_out: IntText | None
    error: Str | None
    updated_at: float
    fee_native: IntText | None = None
    """The network fee the landed transaction paid (native base units)."""
    sent_via: Str | None = None
    """Where the signed bytes were sent, redacted (``send_rpc``, else the reading ``rpc``)."""
    block_time: float | None = None
    """Unix time of the block that included it (the chain's clock; None: not recorded)."""


class TradeOutcome(Document):
    """What became of one trade in a run: an entry of the ``run``/``apply``/``submit --json``
    document, and of the run's summary in the journal."""

    id: Str
    chain: Str
    wallet: Str
    sell: Str
    """Token symbols."""
    buy: Str
    amount_in: IntText
    status: TradeStatus
    tx: Str | None
    min_out: IntText | None
    quoted_out: IntText | None
    simulated_out: IntText | None
    realised_out: IntText | None
    simulation: Str | None
    reason: Str | None
    sell_decimals: Int | None = None
    """The tokens' decimals, so a reader (a notice) can show token units; absent in runs
    journalled before them."""
    buy_decimals: Int | None = None


class RunSummary(Document):
    """A simulate, execute or submit run's summary: its trades."""

    trades: list[TradeOutcome]
    error: dict[str, Int | Str] | None = None
    """How a run that ended early ended: ``{exit_code, message}``."""
    resumed_by: Int | None = None
    """An unfinished run: the run that finished its plan (0: closed, not resumed)."""

    @classmethod
    def of(cls, trades: Iterable[Mapping[str, Any]]) -> RunSummary:
        return cls(trades=[TradeOutcome.model_validate(t) for t in trades])


class ExportSummary(Document):
    """An export run's summary: where it wrote, and the hash ``submit`` checks the manifest by."""

    dir: Str
    manifest_sha256: Str
    transactions: Int


class RunRow(Document):
    """One row of the runs table; ``summary`` (``runs``) or ``plan`` (``runs_with_plans``)."""

    id: Int
    started_at: float
    finished_at: float | None
    mode: RunMode
    status: RunStatus
    summary: RunSummary | ExportSummary | None = None
    plan: PlanFile | Manifest | None = None
    """The plan document it ran (a submit run: the export's manifest)."""


class SnapshotKind(StrEnum):
    PORTFOLIO_BEFORE = "portfolio_before"
    """An executing run's portfolio before its first trade."""
    PORTFOLIO_AFTER = "portfolio_after"


class SnapshotHolding(Document):
    chain: Str
    wallet: Str
    asset: Str
    symbol: Str
    token: Str
    """The CAIP-19 token id."""
    decimals: Int
    raw: IntText
    value_usd: DecimalText | None
    """None where the asset had no price."""


class PortfolioSnapshot(Document):
    """Holdings at the config's prices, as an executing run recorded them (reports read these)."""

    prices: dict[str, DecimalText]
    holdings: list[SnapshotHolding]
    total_usd: DecimalText


class SnapshotRow(Document):
    run_id: Int
    taken_at: float
    kind: SnapshotKind
    data: PortfolioSnapshot
