"""The journal: every run and every trade's state, in SQLite, written before anything is sent.

    planned -> approved -> signed -> sent -> confirmed
                                         \\-> failed | dropped
    planned -> simulated   (a dry run: nothing was signed)
    planned -> refused     (a check or a simulation said no: nothing was signed)
    planned -> skipped     (no route, or the run stopped)

A trade's signed transaction (raw bytes and hash) is committed durably *before* it is
broadcast. A later run that finds a trade ``signed`` or ``sent`` never signs it again: it asks
the chain about that hash and, if the chain has not seen it and it can still land, broadcasts
the very same bytes (same nonce or blockhash: it cannot execute twice).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebalancer.core.errors import ConfigError

OPEN_STATES = ("planned", "approved", "signed", "sent", "pending")
FINAL_STATES = ("confirmed", "failed", "dropped", "refused", "skipped", "simulated")

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
    error        TEXT,
    updated_at   REAL NOT NULL,
    PRIMARY KEY (run_id, trade_id)
);
CREATE TABLE IF NOT EXISTS snapshots (
    run_id   INTEGER NOT NULL REFERENCES runs(id),
    taken_at REAL NOT NULL,
    kind     TEXT NOT NULL,
    data     TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class TradeRow:
    run_id: int
    trade_id: str
    chain: str
    wallet: str
    sell: str
    buy: str
    amount_in: int
    min_out: int | None
    state: str
    tx_hash: str | None
    raw_tx: str | None
    nonce: int | None
    approval_tx: str | None
    simulated_out: int | None
    realised_out: int | None
    error: str | None
    updated_at: float
    fee_native: int | None = None
    sent_via: str | None = None
    """Where the signed bytes were sent, redacted (``send_rpc`` or the reading ``rpc``)."""


# Columns stored as decimal text (amounts can exceed SQLite's 64-bit integers).
_INT_COLUMNS = frozenset({"amount_in", "min_out", "simulated_out", "realised_out", "fee_native"})


def _trade_row(r: sqlite3.Row) -> TradeRow:
    """A trades-table row as a TradeRow (its columns are the dataclass's fields)."""
    # NOTE: .keys(): iterating an sqlite3.Row yields its values, not its column names
    fields: dict[str, Any] = {
        k: _int(r[k]) if k in _INT_COLUMNS else r[k]
        for k in r.keys()  # noqa: SIM118
    }
    return TradeRow(**fields)


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


class Journal:
    """One SQLite file; every write is its own committed transaction (synchronous=FULL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"journal {str(self.path)!r}: cannot open: {exc}") from None
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        try:
            self.db.executescript(_SCHEMA)
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(trades)").fetchall()}
            if "fee_native" not in columns:  # a journal written before fees were recorded
                self.db.execute("ALTER TABLE trades ADD COLUMN fee_native TEXT")
            if "sent_via" not in columns:  # ... or before send_rpc
                self.db.execute("ALTER TABLE trades ADD COLUMN sent_via TEXT")
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

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, mode: str, plan: Mapping[str, Any]) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (started_at, mode, status, plan) VALUES (?, ?, 'running', ?)",
                (time.time(), mode, json.dumps(plan, default=str)),
            )
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, summary: Mapping[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
                (time.time(), status, json.dumps(summary, default=str), run_id),
            )

    def snapshot(self, run_id: int, kind: str, data: Mapping[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO snapshots (run_id, taken_at, kind, data) VALUES (?, ?, ?, ?)",
                (run_id, time.time(), kind, json.dumps(data, default=str)),
            )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, started_at, finished_at, mode, status, summary FROM runs "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            {**dict(r), "summary": json.loads(r["summary"]) if r["summary"] else None} for r in rows
        ]

    def runs_with_plans(self) -> list[dict[str, Any]]:
        """Every run, oldest first, with its stored plan document (for reports)."""
        rows = self.db.execute(
            "SELECT id, started_at, finished_at, mode, status, plan FROM runs ORDER BY id"
        ).fetchall()
        return [dict(r) for r in rows]

    def last_rebalance(self) -> float | None:
        """When the last run that confirmed a trade finished (for the calendar trigger)."""
        row = self.db.execute(
            "SELECT MAX(r.finished_at) FROM runs r WHERE r.mode = 'execute' AND EXISTS "
            "(SELECT 1 FROM trades t WHERE t.run_id = r.id AND t.state = 'confirmed')"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def snapshots(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT run_id, taken_at, kind, data FROM snapshots"
        args: tuple[Any, ...] = ()
        if kind:
            sql += " WHERE kind = ?"
            args = (kind,)
        rows = self.db.execute(sql + " ORDER BY taken_at", args).fetchall()
        return [{**dict(r), "data": json.loads(r["data"])} for r in rows]

    # -- trades --------------------------------------------------------------------------------
    def add_trade(self, run_id: int, trade: Mapping[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO trades (run_id, trade_id, chain, wallet, sell, buy, amount_in, "
                "min_out, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'planned', ?)",
                (
                    run_id,
                    trade["id"],
                    trade["chain"],
                    trade["wallet"],
                    trade["sell"],
                    trade["buy"],
                    str(trade["amount_in"]),
                    str(trade["min_out"]) if trade.get("min_out") is not None else None,
                    time.time(),
                ),
            )

    def update(self, run_id: int, trade_id: str, state: str, **fields: Any) -> None:
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
        values = [state, time.time()] + [
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

    def trades(self, run_id: int | None = None, states: tuple[str, ...] = ()) -> list[TradeRow]:
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
        return [_trade_row(r) for r in rows]

    def unfinished(self) -> list[TradeRow]:
        """Trades a crash may have left between signing and confirmation."""
        return self.trades(states=("signed", "sent", "pending"))
