"""The journal: every run and every trade's state, in SQLite, written before anything is sent.

    planned -> approved -> signed -> sent -> confirmed
                                         \\-> failed | dropped
                                         \\-> pending (not confirmed in time: the next run
                                                      settles it before planning)
    planned -> simulated   (a dry run: nothing was signed)
    planned -> refused     (a check or a simulation said no: nothing was signed)
    planned -> skipped     (no route, or the run stopped)
    planned -> not_executed  (the run was interrupted or ended in an error before it)

A trade's signed transaction (raw bytes and hash) is committed durably *before* it is
broadcast. A later run that finds a trade ``signed`` or ``sent`` never signs it again: it asks
the chain about that hash and, if the chain has not seen it and it can still land, broadcasts
the very same bytes (same nonce or blockhash: it cannot execute twice).

Rows go in and come out as the models of :mod:`rebalancer.documents.journal`; states are
:class:`~rebalancer.documents.status.TradeStatus` (stored as their string values).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from rebalancer.core.documents import dump, load_json, parse, without_unknown
from rebalancer.core.errors import ConfigError
from rebalancer.documents.journal import (
    ExportSummary,
    NewTrade,
    PortfolioSnapshot,
    RunRow,
    RunSummary,
    SnapshotKind,
    SnapshotRow,
    TradeRow,
)
from rebalancer.documents.lots import LotRow, LotSource
from rebalancer.documents.manifest import Manifest
from rebalancer.documents.plan import PlanFile
from rebalancer.documents.status import (
    FINAL_STATES,
    IN_FLIGHT_STATES,
    OPEN_STATES,
    RunMode,
    RunStatus,
    TradeStatus,
)

__all__ = ["FINAL_STATES", "OPEN_STATES", "Journal", "NewTrade", "RunRow", "TradeRow"]
M = TypeVar("M", bound=BaseModel)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  REAL NOT NULL,
    finished_at REAL,
    mode        TEXT NOT NULL,
    status      TEXT NOT NULL,
    plan        TEXT NOT NULL,
    summary     TEXT
);
CREATE TABLE IF NOT EXISTS trades (
    run_id       INTEGER NOT NULL REFERENCES runs(id),
    trade_id     TEXT NOT NULL,
    chain        TEXT NOT NULL,
    wallet       TEXT NOT NULL,
    sell         TEXT NOT NULL,
    buy          TEXT NOT NULL,
    amount_in    TEXT NOT NULL,
    min_out      TEXT,
    state        TEXT NOT NULL,
    tx_hash      TEXT,
    raw_tx       TEXT,
    nonce        INTEGER,
    approval_tx  TEXT,
    simulated_out TEXT,
    realised_out TEXT,
    fee_native   TEXT,
    sent_via     TEXT,
    block_time   REAL,
    error        TEXT,
    updated_at   REAL NOT NULL,
    PRIMARY KEY (run_id, trade_id)
);
CREATE TABLE IF NOT EXISTS lots (
    id             TEXT PRIMARY KEY,
    asset          TEXT NOT NULL,
    amount         TEXT NOT NULL,
    acquired       TEXT NOT NULL,
    cost_basis_usd TEXT,
    imported_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    run_id   INTEGER NOT NULL REFERENCES runs(id),
    taken_at REAL NOT NULL,
    kind     TEXT NOT NULL,
    data     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS price_points (
    asset  TEXT NOT NULL,
    at     INTEGER NOT NULL,
    usd    TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (asset, source, at)
);
CREATE TABLE IF NOT EXISTS swap_gas (
    tx         TEXT PRIMARY KEY,
    chain      TEXT NOT NULL,
    aggregator TEXT NOT NULL,
    gas        INTEGER NOT NULL,
    at         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS backfills (
    asset TEXT PRIMARY KEY,
    at    INTEGER NOT NULL
);
"""


def _columns(r: sqlite3.Row) -> dict[str, Any]:
    # NOTE: .keys(): iterating an sqlite3.Row yields its values, not its column names
    return {k: r[k] for k in r.keys()}  # noqa: SIM118


def _json(doc: BaseModel) -> str:
    return json.dumps(dump(doc))


class Journal:
    """One SQLite file; every write is its own committed transaction (synchronous=FULL)."""

    def __init__(
        self, path: str | Path, clock: Callable[[], float] | None = None, *, durable: bool = True
    ) -> None:
        self.path = Path(path)
        self.clock: Callable[[], float] = clock or time.time
        """Unix seconds for the rows this journal writes (the chains' time on simulated
        worlds: ``rebalancer.clock``)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"journal {str(self.path)!r}: cannot open: {exc}") from None
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # NOTE: every commit reaches the disk before a transaction is sent (FULL). Only the
        # simulated local worlds (nothing real to lose, months in a minute) skip the fsync.
        self.db.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
        try:
            self.db.executescript(_SCHEMA)
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(trades)").fetchall()}
            if "fee_native" not in columns:  # a journal written before fees were recorded
                self.db.execute("ALTER TABLE trades ADD COLUMN fee_native TEXT")
            if "sent_via" not in columns:  # ... or before send_rpc
                self.db.execute("ALTER TABLE trades ADD COLUMN sent_via TEXT")
            if "block_time" not in columns:  # ... or before the chain's clock dated lots
                self.db.execute("ALTER TABLE trades ADD COLUMN block_time REAL")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"journal {str(self.path)!r} is not a rebalancer journal: {exc}"
            ) from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _load(self, model: type[M], text: str, where: str) -> M:
        """A JSON column as its model; a row this tool did not write is exit 2, naming it.

        Fields it does not know are dropped rather than refused: the plan column keeps the plan
        file a run applied, and older versions applied files with keys added by hand."""
        try:
            doc = load_json(text)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"journal {str(self.path)!r}: {where}: not JSON: {exc}") from None
        return parse(model, without_unknown(model, doc), f"journal {str(self.path)!r}: {where}")

    def _run_row(self, r: sqlite3.Row) -> RunRow:
        cols = _columns(r)
        mode = RunMode(cols["mode"])
        if cols.get("summary"):
            summary_model = ExportSummary if mode == RunMode.EXPORT else RunSummary
            cols["summary"] = self._load(summary_model, cols["summary"], f"run {r['id']} summary")
        if "plan" in cols:
            plan_model = Manifest if mode == RunMode.SUBMIT else PlanFile
            cols["plan"] = self._load(plan_model, cols["plan"], f"run {r['id']} plan")
        return parse(RunRow, cols, f"journal {str(self.path)!r}: run {r['id']}")

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, mode: RunMode, plan: PlanFile | Manifest) -> int:
        """A new run, ``running``, with the plan it runs (a submit: the export's manifest)."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (started_at, mode, status, plan) VALUES (?, ?, ?, ?)",
                (self.clock(), RunMode(mode), RunStatus.RUNNING, _json(plan)),
            )
            return int(cur.lastrowid or 0)

    def finish_run(
        self, run_id: int, status: RunStatus, summary: RunSummary | ExportSummary
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
                (self.clock(), RunStatus(status), _json(summary), run_id),
            )

    def snapshot(self, run_id: int, kind: SnapshotKind, data: PortfolioSnapshot) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO snapshots (run_id, taken_at, kind, data) VALUES (?, ?, ?, ?)",
                (run_id, self.clock(), SnapshotKind(kind), _json(data)),
            )

    def runs(self, limit: int = 20) -> list[RunRow]:
        """The latest runs, newest first, with their summaries."""
        rows = self.db.execute(
            "SELECT id, started_at, finished_at, mode, status, summary FROM runs "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [self._run_row(r) for r in rows]

    def runs_with_plans(self) -> list[RunRow]:
        """Every run, oldest first, with its stored plan document (for reports)."""
        rows = self.db.execute(
            "SELECT id, started_at, finished_at, mode, status, plan FROM runs ORDER BY id"
        ).fetchall()
        return [self._run_row(r) for r in rows]

    def exported(self, manifest_sha256: str) -> bool:
        """Whether an export of this journal wrote a manifest of that hash."""
        return any(
            isinstance(r.summary, ExportSummary) and r.summary.manifest_sha256 == manifest_sha256
            for r in self.runs(limit=100_000)
            if r.mode == RunMode.EXPORT
        )

    def last_rebalance(self) -> float | None:
        """When the last run that confirmed a trade finished (for the calendar trigger)."""
        row = self.db.execute(
            "SELECT MAX(r.finished_at) FROM runs r WHERE r.mode = ? AND EXISTS "
            "(SELECT 1 FROM trades t WHERE t.run_id = r.id AND t.state = ?)",
            (RunMode.EXECUTE, TradeStatus.CONFIRMED),
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def snapshots(self, kind: SnapshotKind | None = None) -> list[SnapshotRow]:
        sql = "SELECT run_id, taken_at, kind, data FROM snapshots"
        args: tuple[Any, ...] = ()
        if kind:
            sql += " WHERE kind = ?"
            args = (SnapshotKind(kind),)
        rows = self.db.execute(sql + " ORDER BY taken_at", args).fetchall()
        out = []
        for r in rows:
            cols = _columns(r)
            where = f"snapshot of run {r['run_id']}"
            cols["data"] = self._load(PortfolioSnapshot, r["data"], where)
            out.append(parse(SnapshotRow, cols, f"journal {str(self.path)!r}: {where}"))
        return out

    # -- imported lots --------------------------------------------------------------------------
    def import_lots(self, lots: list[LotRow]) -> None:
        """Replace the imported lots by these, in one transaction (a bad file imports nothing).

        Lots bought by swaps are not stored: the book derives them from confirmed trades."""
        with self._tx() as db:
            db.execute("DELETE FROM lots")
            db.executemany(
                "INSERT INTO lots (id, asset, amount, acquired, cost_basis_usd, imported_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        lot.id,
                        lot.asset,
                        str(lot.amount),
                        lot.acquired.isoformat(),
                        None if lot.cost_basis_usd is None else str(lot.cost_basis_usd),
                        self.clock(),
                    )
                    for lot in lots
                ],
            )

    def imported_lots(self) -> list[LotRow]:
        rows = self.db.execute(
            "SELECT id, asset, amount, acquired, cost_basis_usd FROM lots ORDER BY acquired, id"
        ).fetchall()
        where = f"journal {str(self.path)!r}: lot"
        return [
            parse(LotRow, {**_columns(r), "source": LotSource.IMPORT}, f"{where} {r['id']}")
            for r in rows
        ]

    # -- price history -------------------------------------------------------------------------
    def record_prices(self, at: int, prices: Mapping[str, Decimal], source: str) -> None:
        """The prices one refresh used (``source`` "live"), or past oracle rounds ("backfill");
        a point already recorded for that asset, source and second is kept as it was."""
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO price_points (asset, at, usd, source) VALUES (?, ?, ?, ?)",
                [(a, int(at), str(p), source) for a, p in prices.items()],
            )

    def record_points(self, asset: str, points: Sequence[tuple[int, Decimal]], source: str) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO price_points (asset, at, usd, source) VALUES (?, ?, ?, ?)",
                [(asset, int(at), str(p), source) for at, p in points],
            )

    def record_swap_gas(self, tx: str, chain: str, aggregator: str, gas: int) -> None:
        """The gas (EVM) or compute units (Solana) one landed swap used."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO swap_gas (tx, chain, aggregator, gas, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (tx, chain, aggregator, int(gas), int(self.clock())),
            )

    def swap_gas(self, chain: str, aggregator: str, last: int = 20) -> list[int]:
        """The gas of the last ``last`` swaps recorded for that chain and aggregator."""
        rows = self.db.execute(
            "SELECT gas FROM swap_gas WHERE chain = ? AND aggregator = ? ORDER BY at DESC LIMIT ?",
            (chain, aggregator, last),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def backfilled(self, asset: str) -> bool:
        """Whether the asset's oracle history was walked back already (done once)."""
        row = self.db.execute("SELECT 1 FROM backfills WHERE asset = ?", (asset,)).fetchone()
        return row is not None

    def mark_backfilled(self, asset: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO backfills (asset, at) VALUES (?, ?)",
                (asset, int(self.clock())),
            )

    def price_points(self, since: int = 0) -> dict[str, list[tuple[int, Decimal]]]:
        """Every recorded price since ``since`` (unix seconds), per asset, oldest first."""
        out: dict[str, list[tuple[int, Decimal]]] = {}
        for r in self.db.execute(
            "SELECT asset, at, usd FROM price_points WHERE at >= ? ORDER BY asset, at", (since,)
        ):
            out.setdefault(r["asset"], []).append((int(r["at"]), Decimal(r["usd"])))
        return out

    # -- trades --------------------------------------------------------------------------------
    def add_trade(self, run_id: int, trade: NewTrade) -> None:
        """Journal a trade as ``planned``, before anything about it is signed."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO trades (run_id, trade_id, chain, wallet, sell, buy, amount_in, "
                "min_out, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    trade.id,
                    trade.chain,
                    trade.wallet,
                    trade.sell,
                    trade.buy,
                    str(trade.amount_in),
                    None if trade.min_out is None else str(trade.min_out),
                    TradeStatus.PLANNED,
                    self.clock(),
                ),
            )

    def update(self, run_id: int, trade_id: str, state: TradeStatus, **fields: Any) -> None:
        """Move a trade to ``state`` (and set fields), committed before this returns."""
        allowed = {
            "tx_hash",
            "raw_tx",
            "nonce",
            "approval_tx",
            "simulated_out",
            "realised_out",
            "error",
            "min_out",
            "sent_via",
        }
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown journal fields {sorted(bad)}")
        cols = ["state = ?", "updated_at = ?"] + [f"{k} = ?" for k in fields]
        values = [TradeStatus(state), self.clock()] + [
            str(v) if isinstance(v, int) and k != "nonce" else v for k, v in fields.items()
        ]
        with self._tx() as db:
            db.execute(
                f"UPDATE trades SET {', '.join(cols)} WHERE run_id = ? AND trade_id = ?",
                (*values, run_id, trade_id),
            )

    def set_fee(self, run_id: int, trade_id: str, fee_native: int) -> None:
        """The network fee a landed transaction paid, in the native coin's base units."""
        with self._tx() as db:
            db.execute(
                "UPDATE trades SET fee_native = ? WHERE run_id = ? AND trade_id = ?",
                (str(fee_native), run_id, trade_id),
            )

    def set_block_time(self, run_id: int, trade_id: str, at: int) -> None:
        """The timestamp (unix seconds) of the block that included the landed transaction: the
        chain's clock, which dates the lot it bought and the disposal it made."""
        with self._tx() as db:
            db.execute(
                "UPDATE trades SET block_time = ? WHERE run_id = ? AND trade_id = ?",
                (float(at), run_id, trade_id),
            )

    def trades(
        self, run_id: int | None = None, states: tuple[TradeStatus, ...] = ()
    ) -> list[TradeRow]:
        sql = "SELECT * FROM trades"
        where: list[str] = []
        args: list[Any] = []
        if run_id is not None:
            where.append("run_id = ?")
            args.append(run_id)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(states)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.execute(sql + " ORDER BY run_id, rowid", args).fetchall()
        where_ = f"journal {str(self.path)!r}: trade"
        return [parse(TradeRow, _columns(r), where_) for r in rows]

    def unfinished(self) -> list[TradeRow]:
        """Trades a crash may have left between signing and confirmation."""
        return self.trades(states=IN_FLIGHT_STATES)

    def unfinished_runs(self) -> list[RunRow]:
        """Executing runs that never reached their end (killed, interrupted, an error) and
        were not resumed or closed yet, oldest first, each with its plan and summary."""
        rows = self.db.execute(
            "SELECT id, started_at, finished_at, mode, status, plan, summary FROM runs "
            "WHERE mode = ? AND status IN (?, ?, ?) ORDER BY id",
            (RunMode.EXECUTE, RunStatus.RUNNING, RunStatus.INTERRUPTED, RunStatus.ERROR),
        ).fetchall()
        runs = [self._run_row(r) for r in rows]
        return [
            r
            for r in runs
            if not (isinstance(r.summary, RunSummary) and r.summary.resumed_by is not None)
        ]

    def mark_resumed(
        self, run_id: int, by: int, summary: RunSummary | ExportSummary | None
    ) -> None:
        """Close an unfinished run as ``interrupted``, naming the run that finished its plan
        (``by`` 0: closed without a resume)."""
        base = summary if isinstance(summary, RunSummary) else RunSummary(trades=[])
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished_at = COALESCE(finished_at, ?), summary = ? "
                "WHERE id = ?",
                (
                    RunStatus.INTERRUPTED,
                    self.clock(),
                    _json(base.model_copy(update={"resumed_by": by})),
                    run_id,
                ),
            )
