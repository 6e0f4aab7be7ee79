"""``rebalancer lots`` and ``rebalancer tax`` on the hand-built journal of the report tests."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.cli import main
from tests.reports.conftest import DEFAULT_STRATEGY, config_text
from tests.reports.test_report import build_journal

# the journal: 1 BTC held at first; run 1 (2023-11-14) sells 0.2 BTC (value 10,000 USD, plan
# gas 6 USD) for 499 LINK; the latest snapshot holds 0.8 BTC
HEAD = "date,asset,amount,cost_basis_usd"
LOTS = f"{HEAD},id\n2020-01-01,BTC,0.5,10000,old\n2023-06-01,BTC,0.3,15000,new\n"


def _cfg(tmp_path: Path, method: str = "fifo") -> Path:
    cfg = tmp_path / "rebalancer.toml"
    strategy = DEFAULT_STRATEGY + f'\n[strategy.tax]\nmethod = "{method}"\n'
    cfg.write_text(config_text(strategy, journal="j.sqlite"))
    build_journal(tmp_path / "j.sqlite")
    return cfg


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _import(tmp_path: Path, cfg: Path, text: str) -> int:
    f = tmp_path / "lots.csv"
    f.write_text(text)
    return main(["lots", "import", str(f), "-c", str(cfg)])


def test_fifo_book_and_disposals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _cfg(tmp_path)
    assert _import(tmp_path, cfg, LOTS) == 0
    capsys.readouterr()
    lots = {x["id"]: x for x in _json(capsys, "lots", "-c", str(cfg))["lots"]}
    assert lots["old"] == {
        "id": "old",
        "asset": "BTC",
        "amount": "0.3",
        "acquired": "2020-01-01",
        "cost_basis_usd": "6000.00",
        "source": "import",
        "trade_id": None,
    }
    link = lots["run1:t1"]
    assert link["asset"] == "LINK" and link["source"] == "trade" and link["trade_id"] == "run1:t1"
    assert link["acquired"] == "2023-11-14" and link["amount"] == "499"
    assert link["cost_basis_usd"] == "10006.00"  # value given up + the plan's gas
    assert lots["unknown:BTC"]["amount"] == "0.2"  # held at first, covered by no lot
    assert lots["unknown:BTC"]["cost_basis_usd"] is None
    doc = _json(capsys, "tax", "-c", str(cfg), "--csv", str(tmp_path / "8949.csv"))
    assert doc["disposals"] == [
        {
            "asset": "BTC",
            "amount": "0.2",
            "acquired": "2020-01-01",
            "disposed": "2023-11-14",
            "proceeds_usd": "10000.00",
            "basis_usd": "4000.00",
            "gain_usd": "6000.00",
            "term": "long",
            "trade_id": "run1:t1",
            "tx": "0x01",
            "lot_id": "old",
            "unknown_basis": False,
        }
    ]
    assert doc["totals"]["long"]["gain_usd"] == "6000.00"
    assert doc["totals"]["short"]["gain_usd"] == "0"
    rows = list(csv.DictReader((tmp_path / "8949.csv").open()))
    assert rows == [
        {
            "description": "0.2 BTC",
            "date_acquired": "2020-01-01",
            "date_sold": "2023-11-14",
            "proceeds": "10000.00",
            "cost_basis": "4000.00",
            "gain": "6000.00",
            "term": "long",
        }
    ]
    assert _json(capsys, "tax", "-c", str(cfg), "--year", "2024")["disposals"] == []


def test_hifo_sells_the_dear_lot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _cfg(tmp_path, "hifo")
    assert _import(tmp_path, cfg, LOTS) == 0
    capsys.readouterr()
    (d,) = _json(capsys, "tax", "-c", str(cfg))["disposals"]
    assert (d["lot_id"], d["basis_usd"], d["gain_usd"], d["term"]) == (
        "new",
        "10000.00",
        "0.00",
        "short",
    )


def test_a_sale_beyond_the_lots_has_unknown_basis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _cfg(tmp_path)
    assert _import(tmp_path, cfg, f"{HEAD}\n2020-01-01,BTC,0.05,500\n") == 0
    capsys.readouterr()
    doc = _json(capsys, "tax", "-c", str(cfg))
    known, rest = doc["disposals"]
    assert (known["amount"], known["gain_usd"]) == ("0.05", "2000.00")
    assert rest["unknown_basis"] is True and rest["amount"] == "0.15"
    assert rest["basis_usd"] is None and rest["gain_usd"] is None
    assert rest["proceeds_usd"] == "7500.00"
    assert doc["totals"]["long"]["gain_usd"] == "2000.00"
    assert doc["totals"]["short"]["unknown_basis_proceeds_usd"] == "7500.00"


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("2020-01-01,DOGE,1,10", "line 3: asset = 'DOGE': unknown asset"),
        ("2020-01-01,ETH,-1,10", "line 3: amount = '-1': must be positive"),
        ("2999-01-01,ETH,1,10", "line 3: date = 2999-01-01: in the future"),
        (
            "2020-01-01,BTC,0.9,10",
            "line 3: asset = 'BTC': lots add up to 0.9, more than the 0.8 held",
        ),
    ],
)
def test_bad_lots_import_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str, words: str
) -> None:
    cfg = _cfg(tmp_path)
    assert _import(tmp_path, cfg, "date,asset,amount,cost_basis_usd\n2020-01-01,ETH,1,100\n") == 0
    capsys.readouterr()
    bad = f"date,asset,amount,cost_basis_usd\n2021-01-01,ETH,2,100\n{row}\n"
    assert _import(tmp_path, cfg, bad) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
    lots = _json(capsys, "lots", "-c", str(cfg))["lots"]
    assert [x["amount"] for x in lots if x["asset"] == "ETH" and x["source"] == "import"] == [
        "1",
        "9",
    ]


@pytest.mark.parametrize("method", ["fifo", "hifo"])
def test_report_realised_equals_tax(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str
) -> None:
    cfg = _cfg(tmp_path, method)
    assert _import(tmp_path, cfg, LOTS) == 0
    capsys.readouterr()
    tax = _json(capsys, "tax", "-c", str(cfg))["totals"]
    gains = Decimal(tax["short"]["gain_usd"]) + Decimal(tax["long"]["gain_usd"])
    pnl = _json(capsys, "report", "-c", str(cfg))["pnl"]
    assert pnl["basis"] == "lots"
    assert Decimal(pnl["realised_usd"]) == gains == Decimal("6000" if method == "fifo" else "0")


def test_swaps_are_dated_by_their_block_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The chain's clock dates the disposal and the lot bought, not the journal's own time."""
    from datetime import UTC, datetime

    from rebalancer.journal import Journal

    cfg = _cfg(tmp_path)
    assert _import(tmp_path, cfg, LOTS) == 0
    block = datetime(2025, 3, 9, 12, 0, tzinfo=UTC)
    j = Journal(tmp_path / "j.sqlite")
    try:
        j.set_block_time(1, "t1", int(block.timestamp()))
    finally:
        j.close()
    capsys.readouterr()
    (d,) = _json(capsys, "tax", "-c", str(cfg))["disposals"]
    assert d["disposed"] == "2025-03-09" and d["term"] == "long"
    lots = {x["id"]: x for x in _json(capsys, "lots", "-c", str(cfg))["lots"]}
    assert lots["run1:t1"]["acquired"] == "2025-03-09"


def test_a_journal_without_block_times_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    from rebalancer.journal import Journal

    _cfg(tmp_path)
    db = sqlite3.connect(tmp_path / "j.sqlite")
    db.execute("ALTER TABLE trades DROP COLUMN block_time")  # as written before the column
    db.commit()
    db.close()
    j = Journal(tmp_path / "j.sqlite")
    try:
        columns = {r[1] for r in j.db.execute("PRAGMA table_info(trades)").fetchall()}
        assert "block_time" in columns
        assert all(t.block_time is None for t in j.trades())
        j.set_block_time(1, "t1", 1_700_000_000)
        assert j.trades(run_id=1)[0].block_time == 1_700_000_000
    finally:
        j.close()
