"""``lots import`` of a Coinbase transaction history export: the format detected from the
header, the history replayed into open lots, bad rows refused naming the line."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from rebalancer.cli import main
from rebalancer.core.errors import ConfigError
from rebalancer.planner.config import TaxConfig
from rebalancer.planner.lot_formats import parse_lots_file
from tests.reports.conftest import DEFAULT_STRATEGY, config_text

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tax" / "coinbase-transactions.csv"
ASSETS = ("BTC", "ETH", "USDC", "SOL")
TODAY = date(2026, 12, 1)


def _parse(text: str, method: str = "fifo", held: dict[str, Decimal] | None = None) -> list:
    kind, lots = parse_lots_file(
        text, "cb.csv", ASSETS, TaxConfig(method=method), today=TODAY, held=held
    )
    assert kind == "coinbase"
    return lots


def test_the_fixture_replays_into_open_lots() -> None:
    lots = {x.id: x for x in _parse(FIXTURE.read_text())}
    # line 4: 0.5 BTC for 25,150 (fees in); FIFO: the 0.1 BTC sold on line 6 came from it
    assert lots["coinbase:line4"].amount == Decimal("0.4")
    assert lots["coinbase:line4"].cost_basis_usd == Decimal("20120.00")
    assert lots["coinbase:line5"].amount == Decimal("0.4")
    assert lots["coinbase:line5"].cost_basis_usd == Decimal("8060.00")
    assert lots["coinbase:line4"].date == date(2021, 3, 1)
    # 2 ETH, 1 converted to USDC; the USDC lot is the convert's total
    assert lots["coinbase:line7"].amount == Decimal(1)
    assert lots["coinbase:line7"].cost_basis_usd == Decimal("1623.76")
    assert lots["coinbase:line8:to"].asset == "USDC"
    assert lots["coinbase:line8:to"].amount == Decimal(1850)
    assert lots["coinbase:line8:to"].cost_basis_usd == Decimal("1850.00")
    assert lots["coinbase:line9"].cost_basis_usd == Decimal("19.50")  # staking at market value
    # the send (to one's own wallet) keeps its lots; the USD deposit is skipped
    assert sum(x.amount for x in lots.values() if x.asset == "BTC") == Decimal("0.8")
    assert len(lots) == 5


def test_hifo_sells_the_dearer_lot() -> None:
    lots = {x.id: x for x in _parse(FIXTURE.read_text(), method="hifo")}
    assert lots["coinbase:line4"].amount == Decimal("0.4")  # 50,300/BTC beats 20,150/BTC


def test_newer_shape_ids_dollars_and_negative_sells() -> None:
    text = (
        "ID,Timestamp,Transaction Type,Asset,Quantity Transacted,Price Currency,"
        "Price at Transaction,Subtotal,Total (inclusive of fees and/or spread),"
        "Fees and/or Spread,Notes\n"
        'a1,2024-01-10 09:00:00 UTC,Buy,SOL,10,USD,$100.00,"$1,000.00","$1,010.00",$10.00,\n'
        "a2,2024-02-10 09:00:00 UTC,Receive,SOL,2,USD,$110.00,$220.00,$220.00,$0.00,\n"
        'a3,2024-03-10 09:00:00 UTC,Sell,SOL,-11,USD,$120.00,"$1,320.00","$1,310.00",$10.00,\n'
    )
    (lot,) = _parse(text)
    # the sale took the 10 bought, then 1 of the 2 received: 1 left, basis unknown
    assert lot.id == "coinbase:a2" and lot.amount == Decimal(1) and lot.cost_basis_usd is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2023-09-01T00:00:00Z,Buy,DOGE,10,USD,0.1,1,1,0,", "line 12: asset = 'DOGE': unknown"),
        ("2023-09-01T00:00:00Z,Sell,BTC,5,USD,1,5,5,0,", "line 12: sells 4.2 BTC more than"),
        ("2029-09-01T00:00:00Z,Buy,BTC,1,USD,1,1,1,0,", "line 12: date = 2029-09-01: in the fut"),
        ("2023-09-01T00:00:00Z,Buy,BTC,-,USD,1,1,1,0,", "line 12: Quantity Transacted = '-'"),
        ("2023-09-01T00:00:00Z,Airdrop,BTC,1,USD,1,1,1,0,", "line 12: Transaction Type = 'Air"),
        ("2023-09-01T00:00:00Z,Buy,BTC,1,EUR,1,1,1,0,", "line 12: price currency = 'EUR'"),
        ("2023-09-01T00:00:00Z,Convert,BTC,0.1,USD,1,1,1,0,swap", "line 12: Convert: Notes"),
        ("yesterday,Buy,BTC,1,USD,1,1,1,0,", "line 12: Timestamp = 'yesterday'"),
    ],
)
def test_bad_rows_are_refused_naming_the_line(row: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _parse(FIXTURE.read_text() + row + "\n")
    assert message in err.value.message


def test_more_than_held_is_refused_naming_the_lot_row() -> None:
    with pytest.raises(ConfigError) as err:
        _parse(FIXTURE.read_text(), held={"BTC": Decimal("0.5"), "ETH": Decimal(2)})
    assert "cb.csv line 5: asset = 'BTC': open lots add up to 0.8, more than the 0.5" in str(
        err.value.message
    )


def test_cli_imports_the_export_and_a_bad_one_imports_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "rebalancer.toml"
    cfg.write_text(config_text(DEFAULT_STRATEGY, journal=str(tmp_path / "j.sqlite")))
    assert main(["lots", "import", str(FIXTURE), "-c", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"imported": 5, "format": "coinbase"}
    bad = tmp_path / "bad.csv"
    bad.write_text(FIXTURE.read_text() + "2023-09-01T00:00:00Z,Buy,DOGE,10,USD,0.1,1,1,0,\n")
    assert main(["lots", "import", str(bad), "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.csv line 12: asset = 'DOGE'" in err[0]
    assert main(["lots", "-c", str(cfg), "--json"]) == 0
    lots = json.loads(capsys.readouterr().out)["lots"]
    assert len(lots) == 5 and all(x["id"].startswith("coinbase:") for x in lots)
