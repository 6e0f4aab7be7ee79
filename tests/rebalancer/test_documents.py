"""Typed documents: the PLAN file, journal rows, the export manifest, the planner's skip entries.

A malformed plan file is one line naming the field, exit 2, whatever is wrong with it (missing,
wrong type, absurd number, unknown field); a plan written by ``plan -o`` reads back equal, byte
for byte; journal rows come back as the models that went in, old journals included.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.cli import main
from rebalancer.core.documents import parse
from rebalancer.core.errors import ConfigError
from rebalancer.documents.journal import (
    ExportSummary,
    NewTrade,
    PortfolioSnapshot,
    RunSummary,
    SnapshotKind,
    TradeOutcome,
    TradeRow,
)
from rebalancer.documents.manifest import EvmEntry, Manifest, SolanaEntry
from rebalancer.documents.plan import PlanFile
from rebalancer.documents.status import RunMode, RunStatus, TradeStatus
from rebalancer.journal import Journal
from rebalancer.planner.skips import AccountSkip, GoalSkip, SkipReason, TradeSkip
from tests.planner.conftest import CONFIG_TOML, EXAMPLE

PRICES = """
[prices]
BTC = "100000"
ETH = "3500"
SOL = "180"
AVAX = "35"
LINK = "20"
USDC = "1"
JUP = "0.8"
"""


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REBALANCER_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "rebalancer.toml"
    path.write_text(CONFIG_TOML + PRICES + "\n[strategy]\nmin_trade_usd = 5000\nband_pp = 1\n")
    return path


@pytest.fixture
def plan_file(cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "plan.json"
    assert main(["plan", "-c", str(cfg), "--snapshot", str(EXAMPLE), "-o", str(out)]) == 0
    capsys.readouterr()
    return out


def test_a_plan_file_reads_back_equal_byte_for_byte(
    cfg: Path, plan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = plan_file.read_text()
    plan = PlanFile.read(plan_file)
    assert plan.text() == text
    assert plan.trades and all(t.amount_in > 0 and t.wallet_name for t in plan.trades)
    assert PlanFile.of(json.loads(text), "again") == plan
    # --json prints the very same document
    assert main(["plan", "-c", str(cfg), "--snapshot", str(EXAMPLE), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(text)
    assert {k: v for k, v in printed.items() if k != "created_at"} == {
        k: v for k, v in saved.items() if k != "created_at"
    }


def test_a_hand_written_plan_with_only_what_a_trade_needs_is_a_plan() -> None:
    doc = {
        "created_at": "2026-01-01T00:00:00+00:00",
        "trades": [
            {
                "id": "t1",
                "chain": "ethereum",
                "wallet": "0xabc",
                "sell": {"symbol": "USDC", "id": "x", "asset": "USDC", "decimals": 6},
                "buy": {"symbol": "WETH", "id": "y", "asset": "ETH", "decimals": 18},
                "amount_in": "1000000",
                "min_out": "0",
            }
        ],
    }
    plan = PlanFile.of(doc, "plan")
    assert plan.trades[0].min_out == 0 and plan.as_json() == doc
    # a JSON integer is an amount too (written back as the string it means)
    doc["trades"][0]["min_out"] = 0
    assert PlanFile.of(doc, "plan") == plan


def _edit(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set (or, with ``...``, delete) the field at a dotted path such as ``trades.0.sell.id``."""
    *parents, last = path.split(".")
    node: Any = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value


MALFORMED = [
    # missing
    ("created_at", ..., "created_at: missing"),
    ("trades", ..., "trades: missing"),
    ("trades.0.amount_in", ..., "trades[0].amount_in: missing"),
    ("trades.0.sell.id", ..., "trades[0].sell.id: missing"),
    ("trades.0.min_out", ..., "trades[0].min_out: missing"),
    # wrong type
    ("trades.0.amount_in", 12.5, "trades[0].amount_in = 12.5"),
    ("trades.0.amount_in", True, "trades[0].amount_in = True"),
    ("trades.0.min_out", None, "trades[0].min_out = None"),
    ("trades.0.chain", 1, "trades[0].chain = 1"),
    ("trades.0.sell", "WBTC", "trades[0].sell = 'WBTC'"),
    ("trades.0.sell.decimals", "8", "trades[0].sell.decimals = '8'"),
    ("trades", {}, "trades"),
    ("triggered", "yes", "triggered = 'yes'"),
    ("created_at", "yesterday", "created_at = 'yesterday'"),
    ("skipped.0.reason", "bored", "skipped[0].reason = 'bored'"),
    ("before.0.kind", "coin", "before[0].kind = 'coin'"),
    # absurd numbers
    ("trades.0.amount_in", "1e400", "trades[0].amount_in = '1e400'"),
    ("trades.0.amount_in", "1" + "0" * 90, "trades[0].amount_in"),
    ("trades.0.amount_in", str(2**256), "trades[0].amount_in"),
    ("trades.0.amount_in", "-5", "trades[0].amount_in = '-5': must be positive"),
    ("trades.0.min_out", "-1", "trades[0].min_out = '-1'"),
    ("trades.0.value_usd", "NaN", "trades[0].value_usd = 'NaN'"),
    ("trades.0.value_usd", "1e400", "trades[0].value_usd = '1e400'"),
    ("trades.0.sell.decimals", 10**6, "trades[0].sell.decimals = 1000000"),
    # unknown fields
    ("surprise", 1, "surprise: unknown field"),
    ("trades.0.price_usd", "1", "trades[0].price_usd: unknown field"),
    ("trades.0.sell.address", "0x", "trades[0].sell.address: unknown field"),
    # values the engine must never see
    ("trades.0.id", "../../escape", "trades[0].id = '../../escape'"),
]


@pytest.mark.parametrize(("field", "value", "named"), MALFORMED)
def test_a_malformed_plan_file_is_one_line_naming_the_field_exit_2(
    cfg: Path,
    plan_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: Any,
    named: str,
) -> None:
    doc = json.loads(plan_file.read_text())
    doc["skipped"].append(
        {
            "reason": "reserve",
            "chain": "ethereum",
            "wallet": "demo",
            "detail": "0.01 ETH held, 0.02 needed",
        }
    )
    assert doc["trades"] and doc["before"]
    _edit(doc, field, value)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc, indent=2))
    for argv in (["simulate"], ["apply", "--yes"], ["export", "--unsigned", str(tmp_path / "x")]):
        assert main([*argv, str(bad), "-c", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert "plan file" in err and named in err, err


def test_a_json_number_beyond_float_range_is_named(
    cfg: Path, plan_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(plan_file.read_text())
    doc["trades"][0]["amount_in"] = "@"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc).replace('"@"', "1e400"))
    assert main(["simulate", str(bad), "-c", str(cfg)]) == 2
    assert "trades[0].amount_in = inf" in capsys.readouterr().err


def test_duplicate_trade_ids_and_non_objects_are_not_plans(
    cfg: Path, plan_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(plan_file.read_text())
    doc["trades"].append(copy.deepcopy(doc["trades"][0]))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["simulate", str(bad), "-c", str(cfg)]) == 2
    assert "appears twice" in capsys.readouterr().err
    for text in ("[]", '"plan"', "{", "", "[" * 100_000 + "]" * 100_000):
        bad.write_text(text)
        assert main(["simulate", str(bad), "-c", str(cfg)]) == 2
        assert "not a plan" in capsys.readouterr().err


def test_a_well_formed_plan_gets_past_parsing(
    cfg: Path, plan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the config's nodes do not answer: an outside party failed (4), the file was fine
    assert main(["simulate", str(plan_file), "-c", str(cfg)]) == 4
    assert "plan file" not in capsys.readouterr().err


# -- journal -----------------------------------------------------------------------------------
def _outcome(status: TradeStatus) -> TradeOutcome:
    return TradeOutcome.model_validate(
        {
            "id": "t1",
            "chain": "ethereum",
            "wallet": "0xabc",
            "sell": "USDC",
            "buy": "WETH",
            "amount_in": "1000000",
            "status": status,
            "tx": "0x01",
            "min_out": "5",
            "quoted_out": "7",
            "simulated_out": str(2**200),
            "realised_out": None,
            "simulation": "anvil fork",
            "reason": None,
        }
    )


def test_journal_rows_round_trip(plan_file: Path, tmp_path: Path) -> None:
    plan = PlanFile.read(plan_file)
    j = Journal(tmp_path / "j.sqlite")
    try:
        run = j.start_run(RunMode.EXECUTE, plan)
        big = 2**200  # beyond SQLite's 64-bit integers
        trade = NewTrade(
            id="t1", chain="ethereum", wallet="0xabc", sell="a", buy="b", amount_in=big
        )
        j.add_trade(run, trade)
        (row,) = j.trades(run)
        assert isinstance(row, TradeRow) and row.state is TradeStatus.PLANNED
        assert (row.trade_id, row.amount_in, row.min_out) == ("t1", big, None)
        j.update(run, "t1", TradeStatus.SIGNED, tx_hash="0x01", raw_tx="02", nonce=7)
        assert [r.state for r in j.unfinished()] == [TradeStatus.SIGNED]
        j.update(run, "t1", TradeStatus.CONFIRMED, realised_out=big + 1)
        j.set_fee(run, "t1", 21_000)
        (row,) = j.trades(states=(TradeStatus.CONFIRMED,))
        assert (row.nonce, row.realised_out, row.fee_native) == (7, big + 1, 21_000)
        summary = RunSummary(trades=[_outcome(TradeStatus.CONFIRMED)])
        j.finish_run(run, RunStatus.OK, summary)
        exported = j.start_run(RunMode.EXPORT, plan)
        j.finish_run(
            exported,
            RunStatus.EXPORTED,
            ExportSummary(dir="d", manifest_sha256="ab", transactions=2),
        )
        latest, first = j.runs()
        assert (first.mode, first.status, first.summary) == (RunMode.EXECUTE, RunStatus.OK, summary)
        assert first.summary is not None and first.summary.as_json() == {
            "trades": [_outcome(TradeStatus.CONFIRMED).as_json()]
        }
        assert isinstance(latest.summary, ExportSummary) and j.exported("ab")
        assert not j.exported("cd")
        with_plans = j.runs_with_plans()
        assert [r.plan for r in with_plans] == [plan, plan]
        snap = PortfolioSnapshot.model_validate(
            {
                "prices": {"ETH": "3500"},
                "holdings": [
                    {
                        "chain": "ethereum",
                        "wallet": "0xabc",
                        "asset": "ETH",
                        "symbol": "ETH",
                        "token": "eip155:1/slip44:60",
                        "decimals": 18,
                        "raw": str(big),
                        "value_usd": None,
                    }
                ],
                "total_usd": "0",
            }
        )
        j.snapshot(run, SnapshotKind.PORTFOLIO_AFTER, snap)
        (got,) = j.snapshots(SnapshotKind.PORTFOLIO_AFTER)
        assert (got.run_id, got.kind, got.data) == (run, SnapshotKind.PORTFOLIO_AFTER, snap)
        assert not j.snapshots(SnapshotKind.PORTFOLIO_BEFORE)
    finally:
        j.close()


def test_an_old_journal_reads_its_states_as_enums(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "INSERT INTO runs (started_at, finished_at, mode, status, plan, summary) VALUES "
            "(1.0, 2.0, 'execute', 'partial', ?, ?)",
            (
                json.dumps({"created_at": "2025-01-01T00:00:00+00:00", "trades": []}),
                json.dumps({"trades": [_outcome(TradeStatus.PENDING).as_json()]}),
            ),
        )
        db.execute(
            "INSERT INTO trades (run_id, trade_id, chain, wallet, sell, buy, amount_in, state, "
            "tx_hash, updated_at) VALUES (1, 't1', 'ethereum', '0xabc', 'a', 'b', '5', 'sent', "
            "'0x01', 3.0)"
        )
    db.close()
    j = Journal(path)
    try:
        (row,) = j.unfinished()
        assert row.state is TradeStatus.SENT and row.amount_in == 5
        (run,) = j.runs()
        assert run.status is RunStatus.PARTIAL and run.mode is RunMode.EXECUTE
        assert run.summary is not None
        assert isinstance(run.summary, RunSummary)
        assert run.summary.trades[0].status is TradeStatus.PENDING
    finally:
        j.close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE trades SET state = 'lost'")
        db.execute("""UPDATE runs SET summary = '{"trades": [{"id": "t1"}]}'""")
    db.close()
    j = Journal(path)
    try:
        with pytest.raises(ConfigError, match=r"state = 'lost'"):
            j.trades()
        with pytest.raises(ConfigError, match=r"run 1 summary: trades\[0\]\.chain: missing"):
            j.runs()
    finally:
        j.close()


def test_a_journal_refuses_a_state_it_does_not_know(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    try:
        run = j.start_run(
            RunMode.SIMULATE, PlanFile.of({"created_at": "2025-01-01", "trades": []}, "")
        )
        j.add_trade(run, NewTrade(id="t", chain="c", wallet="w", sell="a", buy="b", amount_in=1))
        with pytest.raises(ValueError):
            j.update(run, "t", "lost")  # type: ignore[arg-type]
    finally:
        j.close()


# -- export manifest ---------------------------------------------------------------------------
MANIFEST = {
    "format": "rebalancer-unsigned/1",
    "created_at": "2026-01-01T00:00:00+00:00",
    "plan_created_at": "2025-12-31T23:59:00.123456+00:00",
    "chains": {
        "ethereum": {"family": "evm", "chain_id": 1},
        "solana": {"family": "solana", "chain_id": None},
    },
    "transactions": [
        {
            "id": "t1-approve",
            "trade": "t1",
            "chain": "ethereum",
            "family": "evm",
            "wallet": "0xabc",
            "sell": "eip155:1/erc20:0xa",
            "buy": "eip155:1/erc20:0xb",
            "amount_in": "1000",
            "kind": "approve",
            "min_out": None,
            "simulated_out": None,
            "simulation": "anvil fork",
            "nonce": 4,
            "expiry": None,
            "files": {
                "unsigned": "t1-approve.unsigned.json",
                "payload": "t1-approve.unsigned.rlp",
                "signed": "t1-approve.signed.hex",
            },
            "sha256": "00" * 32,
        },
        {
            "id": "t2",
            "trade": "t2",
            "chain": "solana",
            "family": "solana",
            "wallet": "So1",
            "sell": "solana:x/slip44:501",
            "buy": "solana:x/token:y",
            "amount_in": "2000000000",
            "kind": "swap",
            "min_out": "5",
            "simulated_out": "6",
            "simulation": "simulateTransaction",
            "expiry": {"last_valid_block_height": 150},
            "files": {
                "unsigned": "t2.unsigned.b64",
                "message": "t2.message.b64",
                "signed": "t2.signed.b64",
                "signature": "t2.signature.b58",
            },
            "sha256": "11" * 32,
            "unsigned_sha256": "22" * 32,
        },
    ],
    "skipped": [{"id": "t3", "reason": "no_route: none"}],
}


def test_a_manifest_reads_back_equal_and_refuses_what_it_does_not_know() -> None:
    m = Manifest.model_validate(MANIFEST)
    evm, sol = m.transactions
    assert isinstance(evm, EvmEntry) and isinstance(sol, SolanaEntry)
    assert (evm.nonce, sol.amount_in, sol.expiry.last_valid_block_height) == (4, 2 * 10**9, 150)
    assert json.dumps(m.as_json(), indent=2) == json.dumps(MANIFEST, indent=2)
    bad = copy.deepcopy(MANIFEST)
    bad["transactions"][1]["nonce"] = 3  # a Solana transaction has no nonce
    with pytest.raises(ConfigError, match=r"transactions\[1\]\.nonce: unknown field"):
        parse(Manifest, bad, "manifest.json")


# -- skipped entries ---------------------------------------------------------------------------
def test_skip_entries_keep_their_keys_in_order() -> None:
    trade = TradeSkip(
        chain="ethereum",
        wallet="w",
        sell="ETH",
        buy="USDC",
        reason=SkipReason.UNDER_MINIMUM,
        value_usd=Decimal("12.30"),
        detail="below min_trade_usd = 50",
    )
    account = AccountSkip(reason=SkipReason.RESERVE, chain="ethereum", wallet="w", detail="d")
    goal = GoalSkip(
        name="ALTS",
        kind="class",
        amount_usd=Decimal("10.00"),
        weight_pct=Decimal("4.0000"),
        reason=SkipReason.NEEDS_BRIDGE,
        chains="solana",
        detail="d",
    )
    doc = {"created_at": "2026-01-01T00:00:00", "trades": []}
    doc["skipped"] = [s.model_dump(mode="json", exclude_none=True) for s in (trade, account, goal)]
    plan = PlanFile.of(doc, "plan")
    assert plan.skipped == [trade, account, goal]
    assert json.dumps(plan.as_json()) == json.dumps(doc)
    assert list(doc["skipped"][0]) == [
        "chain",
        "wallet",
        "sell",
        "buy",
        "reason",
        "value_usd",
        "detail",
    ]
    assert list(doc["skipped"][1]) == ["reason", "chain", "wallet", "detail"]
    assert list(doc["skipped"][2])[-3:] == ["reason", "chains", "detail"]


def test_a_journal_keeps_reading_plans_with_keys_added_by_hand(
    plan_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    doc = json.loads(plan_file.read_text())
    plan = PlanFile.of(doc, "plan")
    doc["note"] = "checked by Ann"
    doc["trades"][0]["comment"] = "ok"
    doc["skipped"] = [{"reason": "reserve", "chain": "c", "wallet": "w", "detail": "d", "x": 1}]
    Journal(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "INSERT INTO runs (started_at, mode, status, plan) VALUES (1.0, 'execute', 'ok', ?)",
            (json.dumps(doc),),
        )
    db.close()
    j = Journal(path)
    try:
        (run,) = j.runs_with_plans()
        assert isinstance(run.plan, PlanFile) and run.plan.trades == plan.trades
        assert run.plan.skipped == [
            AccountSkip(reason=SkipReason.RESERVE, chain="c", wallet="w", detail="d")
        ]
    finally:
        j.close()
